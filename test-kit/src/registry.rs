//! The schema registry in the tests: a test's own value subjects on the stack's registry
//! (registered by `TestStack`, deleted with it), and a registry of a test's own — Apicurio
//! Registry in memory on a port of its own, started by `deploy/local/registry.sh` — for a
//! test that takes it away (the stack's is shared by every test running at the time).

use std::process::Command;
use std::time::{Duration, Instant};

use service_kit::Settings;
use service_kit::schema_registry::{RegistryError, SchemaRegistry};

/// The test's value subjects registered as `bazaar-topics ensure` does, and their ids;
/// asked again for a while when the registry does not answer, as the services do (a call
/// once went unanswered in the fault suite, after it had restarted PostgreSQL, the
/// registry's storage).
pub(crate) async fn register_schemas(
    settings: &Settings,
) -> Result<schemas::SchemaIds, RegistryError> {
    let registry = SchemaRegistry::new(&settings.kafka.schema_registry)?;
    let topics = settings.topics();
    let unreachable = |error: &RegistryError| matches!(error, RegistryError::Unreachable { .. });
    service_kit::retry::while_starting(
        Instant::now() + Duration::from_secs(20),
        "The schema registry",
        unreachable,
        || async {
            registry.ensure_value_schemas(&topics).await?;
            registry.schema_ids(&topics, &schemas::topics::ALL).await
        },
    )
    .await
}

/// Deletes the test's value subjects for good (with its topics, at its cleanup).
pub(crate) async fn delete_subjects(settings: &Settings) {
    let Ok(registry) = SchemaRegistry::new(&settings.kafka.schema_registry) else {
        return;
    };
    let topics = settings.topics();
    for spec in schemas::topics::ALL
        .iter()
        .filter(|spec| spec.value.is_some())
    {
        let _ = registry.delete_subject(&topics.value_subject(*spec)).await;
    }
}

#[derive(Debug)]
pub struct OwnRegistry {
    port: u16,
    dir: String,
}

impl OwnRegistry {
    /// Starts one on `port` (and `port + 1` for its management) and waits until it serves.
    pub fn start(port: u16) -> Self {
        let registry = Self {
            port,
            dir: format!(
                "{}/../.local/test-registry-{port}",
                env!("CARGO_MANIFEST_DIR")
            ),
        };
        registry.script("up");
        registry.script("wait");
        registry
    }

    /// Its Confluent-compatible API, for `SCHEMA_REGISTRY_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/apis/ccompat/v7", self.port)
    }

    /// Stops it (everything it held is gone: it keeps schemas in memory).
    pub fn stop(&self) {
        self.script("down");
    }

    fn script(&self, action: &str) {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../deploy/local/registry.sh"
            ))
            .arg(action)
            .env("REGISTRY_DIR", &self.dir)
            .env("REGISTRY_PORT", self.port.to_string())
            .env_remove("REGISTRY_DATABASE_URL")
            .status()
            .unwrap_or_else(|error| panic!("registry.sh {action}: {error}"));
        assert!(status.success(), "registry.sh {action} failed");
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
