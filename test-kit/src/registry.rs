//! A schema registry of a test's own — Apicurio Registry in memory on a port of its own,
//! started by `deploy/local/registry.sh` — for a test that takes it away (the stack's is
//! shared by every test running at the time).

use std::process::Command;

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
