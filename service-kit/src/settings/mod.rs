//! Settings from environment variables (12-factor). A service runs as production unless
//! told `BAZAAR_ENV=development`. Most variables have a default that works with
//! `deploy/local`; those defaults are for development only, and production refuses to run
//! on any of them. There is no default signing key: `JWT_SECRET` (or a public key) is
//! always given — `make up` generates one for development.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

mod api;
mod kafka;
mod services;

pub use api::{ApiSettings, AuthSettings, MIN_JWT_SECRET_BYTES, RateLimitSettings};
pub use kafka::{KafkaSecurity, KafkaSettings};
pub use services::{
    IngestSettings, MovementSettings, ProcessorSettings, ProcessorsSettings, QueryApiSettings,
    QuerySettings, validate,
};

/// Development-only defaults. They match `deploy/local` and are refused in production.
pub mod defaults {
    pub const DATABASE_URL: &str = "postgres://bazaar:bazaar-dev-only@127.0.0.1:15432/bazaar";
    pub const REDIS_URL: &str = "redis://127.0.0.1:16379/0";
    pub const KAFKA_BROKERS: &str = "127.0.0.1:19092";
    pub const SCHEMA_REGISTRY_URL: &str = "http://127.0.0.1:18081/apis/ccompat/v7";
    pub const REDIS_KEY_PREFIX: &str = "bazaar:";
    pub const CONSUMER_GROUP: &str = "bazaar-processors";
}

/// The three services; each has its own listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ingest,
    Processors,
    QueryApi,
}

impl Service {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Processors => "processors",
            Self::QueryApi => "query-api",
        }
    }

    /// The variable that sets this service's listen address.
    pub const fn listen_var(self) -> &'static str {
        match self {
            Self::Ingest => "INGEST_LISTEN_ADDR",
            Self::Processors => "PROCESSORS_LISTEN_ADDR",
            Self::QueryApi => "QUERY_API_LISTEN_ADDR",
        }
    }

    /// How long this service's producer gathers records by default (`KAFKA_LINGER_MS`).
    /// Every POS request waits for its record's acknowledgement, so ingest's linger is
    /// latency each sale pays: 2 ms, where Apache Kafka still takes the requests of
    /// thousands of movements a second in stride (docs/benchmarks.md). The processors
    /// await each batch's acknowledgements, so a linger adds to every batch.
    pub const fn default_linger_ms(self) -> u64 {
        match self {
            Self::Ingest => 2,
            Self::Processors | Self::QueryApi => 5,
        }
    }

    pub const fn default_listen_addr(self) -> &'static str {
        match self {
            Self::Ingest => "127.0.0.1:8081",
            Self::QueryApi => "127.0.0.1:8082",
            Self::Processors => "127.0.0.1:8083",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl Environment {
    /// `BAZAAR_ENV`: not told it is in development, a service behaves as production.
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        match get("BAZAAR_ENV").as_deref() {
            Some("development") | Some("dev") => Ok(Self::Development),
            None | Some("production") | Some("prod") => Ok(Self::Production),
            Some(other) => Err(SettingsError::Invalid {
                var: "BAZAAR_ENV",
                problem: format!("expected `development` or `production`, got `{other}`"),
            }),
        }
    }
}

/// What every service reads: where it listens, and how it reaches PostgreSQL, Redis and
/// Kafka. Each service's own sections are beside it in its declaration (`services`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub service: Service,
    pub environment: Environment,
    pub listen_addr: SocketAddr,
    /// Where `/metrics` is served instead of `listen_addr`, so that scrapes stay on an
    /// internal network while the API faces clients: `METRICS_LISTEN_ADDR`, unset.
    pub metrics_listen_addr: Option<SocketAddr>,
    /// The longest a request may take before it is answered `503 timeout`:
    /// `HTTP_REQUEST_TIMEOUT_MS`, 30000 (beyond the longest `?wait`, 10 s).
    pub request_timeout: Duration,
    /// Proxies whose `X-Forwarded-For`/`Forwarded` are believed: `TRUSTED_PROXIES`
    /// (comma-separated CIDRs), none by default.
    pub trusted_proxies: crate::client::TrustedProxies,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub kafka: KafkaSettings,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// The primary: every write and current state.
    pub url: SecretString,
    /// A read replica for reports and history, when there is one.
    pub read_url: Option<SecretString>,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: SecretString,
    /// Every key this deployment writes starts with it (tests use a unique one each).
    pub key_prefix: String,
    /// `REDIS_TLS_CA_FILE`: the CA that signed the server's certificate, for a `rediss://`
    /// URL (by default the system's trust store).
    pub tls_ca_file: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{var}: {problem}")]
    Invalid { var: &'static str, problem: String },
    #[error("refusing to start in production with development defaults: {0}")]
    DevelopmentDefaultsInProduction(String),
}

impl Settings {
    /// Reads the shared settings of `service` from the process environment (a service
    /// reads its whole declaration: [`IngestSettings`] and its siblings).
    pub fn from_env(service: Service) -> Result<Self, SettingsError> {
        Self::from_lookup(service, |var| std::env::var(var).ok())
    }

    /// Reads the shared settings from any source of variables (tests pass a map).
    pub fn from_lookup(
        service: Service,
        lookup_var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        Self::read(service, &lookup(lookup_var))
    }

    fn read(
        service: Service,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let environment = Environment::from_lookup(get)?;
        let kafka = KafkaSettings::from_lookup(service, get)?;
        let listen_var = service.listen_var();
        let listen_text =
            get(listen_var).unwrap_or_else(|| service.default_listen_addr().to_owned());
        let listen_addr = listen_text
            .parse()
            .map_err(|error| SettingsError::Invalid {
                var: listen_var,
                problem: format!("`{listen_text}` is not an address like 127.0.0.1:8081: {error}"),
            })?;

        let metrics_listen_addr = get("METRICS_LISTEN_ADDR")
            .map(|text| {
                text.parse().map_err(|error| SettingsError::Invalid {
                    var: "METRICS_LISTEN_ADDR",
                    problem: format!("`{text}` is not an address like 0.0.0.0:9090: {error}"),
                })
            })
            .transpose()?;

        let settings = Self {
            service,
            environment,
            listen_addr,
            metrics_listen_addr,
            request_timeout: Duration::from_millis(
                parse_or::<u64>(get, "HTTP_REQUEST_TIMEOUT_MS", 30_000)?.max(1),
            ),
            trusted_proxies: crate::client::TrustedProxies::parse(
                &get("TRUSTED_PROXIES").unwrap_or_default(),
            )
            .map_err(|problem| SettingsError::Invalid {
                var: "TRUSTED_PROXIES",
                problem,
            })?,
            database: DatabaseSettings {
                url: secret(get("DATABASE_URL"), defaults::DATABASE_URL),
                read_url: get("DATABASE_READ_URL").map(SecretString::from),
                max_connections: parse_or(get, "DATABASE_MAX_CONNECTIONS", 10)?,
                acquire_timeout: Duration::from_millis(parse_or(
                    get,
                    "DATABASE_ACQUIRE_TIMEOUT_MS",
                    5_000,
                )?),
            },
            redis: RedisSettings {
                url: secret(get("REDIS_URL"), defaults::REDIS_URL),
                key_prefix: get("REDIS_KEY_PREFIX")
                    .unwrap_or_else(|| defaults::REDIS_KEY_PREFIX.to_owned()),
                tls_ca_file: get("REDIS_TLS_CA_FILE"),
            },
            kafka,
        };
        settings.refuse_development_defaults_in_production()?;
        Ok(settings)
    }

    fn refuse_development_defaults_in_production(&self) -> Result<(), SettingsError> {
        if self.environment != Environment::Production {
            return Ok(());
        }
        let mut problems = Vec::new();
        if self.database.url.expose_secret() == defaults::DATABASE_URL {
            problems.push("DATABASE_URL is the development default");
        }
        if self.redis.url.expose_secret() == defaults::REDIS_URL {
            problems.push("REDIS_URL is the development default");
        }
        if self.kafka.brokers == defaults::KAFKA_BROKERS {
            problems.push("KAFKA_BROKERS is the development default");
        }
        if self.kafka.schema_registry == defaults::SCHEMA_REGISTRY_URL {
            problems.push("SCHEMA_REGISTRY_URL is the development default");
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::DevelopmentDefaultsInProduction(
                problems.join("; "),
            ))
        }
    }

    /// Topic names under this deployment's prefix.
    pub fn topics(&self) -> schemas::Topics {
        schemas::Topics::new(self.kafka.topic_prefix.clone())
    }
}

/// Reads variables through `lookup_var`, an empty value counting as unset.
fn lookup(lookup_var: impl Fn(&str) -> Option<String>) -> impl Fn(&str) -> Option<String> {
    move |var| lookup_var(var).filter(|value| !value.trim().is_empty())
}

fn secret(value: Option<String>, default: &str) -> SecretString {
    SecretString::from(value.unwrap_or_else(|| default.to_owned()))
}

fn parse_or<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, SettingsError>
where
    T::Err: std::fmt::Display,
{
    match get(var) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|error| SettingsError::Invalid {
            var,
            problem: format!("`{text}`: {error}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes-long";

    /// `vars` over `base`.
    fn lookup(
        base: &[(&str, &str)],
        vars: &[(&str, &str)],
    ) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = base
            .iter()
            .chain(vars)
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |var| vars.get(var).cloned()
    }

    /// A development service's settings with `vars`.
    fn settings(vars: &[(&str, &str)]) -> Result<IngestSettings, SettingsError> {
        let base = [("BAZAAR_ENV", "development"), ("JWT_SECRET", SECRET)];
        IngestSettings::from_lookup(lookup(&base, vars))
    }

    #[test]
    fn a_compression_the_producer_lacks_stops_the_service_at_start() {
        for codec in kafka::COMPRESSIONS {
            let settings = settings(&[("KAFKA_COMPRESSION", codec)]).unwrap();
            assert_eq!(settings.shared.kafka.compression, codec);
        }
        let error = settings(&[("KAFKA_COMPRESSION", "zstd")]).unwrap_err();
        assert!(
            matches!(
                error,
                SettingsError::Invalid {
                    var: "KAFKA_COMPRESSION",
                    ..
                }
            ),
            "{error}"
        );
    }

    fn production(vars: &[(&str, &str)]) -> Result<IngestSettings, SettingsError> {
        let base = [
            ("DATABASE_URL", "postgres://app:s3cret@db.internal/bazaar"),
            ("REDIS_URL", "redis://cache.internal"),
            ("KAFKA_BROKERS", "kafka-1:9092,kafka-2:9092"),
            (
                "SCHEMA_REGISTRY_URL",
                "https://registry.internal/apis/ccompat/v7",
            ),
            ("JWT_SECRET", SECRET),
        ];
        IngestSettings::from_lookup(lookup(&base, vars))
    }

    fn refused(result: Result<IngestSettings, SettingsError>, var: &str) {
        match result {
            Err(SettingsError::Invalid { var: named, .. }) => assert_eq!(named, var),
            other => panic!("expected {var} to be refused, got {other:?}"),
        }
    }

    #[test]
    fn a_service_not_told_it_is_in_development_is_production() {
        assert_eq!(
            production(&[]).unwrap().shared.environment,
            Environment::Production
        );
        let error = IngestSettings::from_lookup(lookup(&[("JWT_SECRET", SECRET)], &[]))
            .unwrap_err()
            .to_string();
        for var in [
            "DATABASE_URL",
            "REDIS_URL",
            "KAFKA_BROKERS",
            "SCHEMA_REGISTRY_URL",
        ] {
            assert!(error.contains(var), "{error}");
        }
    }

    #[test]
    fn there_is_no_default_signing_key_in_any_environment() {
        for environment in ["development", "production"] {
            let result = production(&[("BAZAAR_ENV", environment), ("JWT_SECRET", "")]);
            refused(result, "JWT_SECRET");
        }
        refused(settings(&[("JWT_SECRET", "short-secret")]), "JWT_SECRET");
        refused(
            production(&[("JWT_SECRET", "31-bytes-is-one-byte-too-short")]),
            "JWT_SECRET",
        );
        // The processors verify no tokens and need no key.
        let processors =
            ProcessorsSettings::from_lookup(lookup(&[("BAZAAR_ENV", "development")], &[]));
        assert!(processors.is_ok(), "{processors:?}");
    }

    #[test]
    fn the_algorithm_and_its_keys_are_checked_as_a_whole() {
        // A public key with the default algorithm used to fall back to the secret.
        refused(
            production(&[("JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----")]),
            "JWT_ALGORITHM",
        );
        refused(
            production(&[("JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----")]),
            "JWT_ALGORITHM",
        );
        refused(
            production(&[
                ("JWT_ALGORITHM", "RS256"),
                ("JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----"),
            ]),
            "JWT_SECRET",
        );
        refused(
            production(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_SECRET", "")]),
            "JWT_PUBLIC_KEY",
        );
        refused(production(&[("JWT_ALGORITHM", "none")]), "JWT_ALGORITHM");
        refused(production(&[("JWT_ALGORITHM", "HS512")]), "JWT_ALGORITHM");
        let asymmetric = production(&[
            ("JWT_ALGORITHM", "RS256"),
            ("JWT_SECRET", ""),
            ("JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----"),
        ]);
        assert!(asymmetric.is_ok(), "{asymmetric:?}");
    }

    #[test]
    fn defaults_match_the_local_stack() {
        let settings = settings(&[]).unwrap().shared;
        assert_eq!(settings.environment, Environment::Development);
        assert_eq!(settings.listen_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(settings.kafka.brokers, "127.0.0.1:19092");
        assert!(settings.database.url.expose_secret().contains(":15432/"));
        assert!(settings.redis.url.expose_secret().contains(":16379"));
    }

    #[test]
    fn ingest_lingers_less_than_the_processors_unless_told() {
        assert_eq!(
            settings(&[]).unwrap().shared.kafka.linger,
            Duration::from_millis(2)
        );
        let processors =
            ProcessorsSettings::from_lookup(lookup(&[("BAZAAR_ENV", "development")], &[])).unwrap();
        assert_eq!(processors.shared.kafka.linger, Duration::from_millis(5));
        let told = settings(&[("KAFKA_LINGER_MS", "7")]).unwrap();
        assert_eq!(told.shared.kafka.linger, Duration::from_millis(7));
    }

    #[test]
    fn production_refuses_development_defaults() {
        let error = settings(&[("BAZAAR_ENV", "production")]).unwrap_err();
        let message = error.to_string();
        for var in ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS"] {
            assert!(message.contains(var), "{message}");
        }
        let production = production(&[("BAZAAR_ENV", "production")]).unwrap();
        assert_eq!(production.shared.environment, Environment::Production);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let error = settings(&[("INGEST_LISTEN_ADDR", "nowhere")]).unwrap_err();
        assert!(
            error.to_string().starts_with("INGEST_LISTEN_ADDR:"),
            "{error}"
        );
        let error = settings(&[("DATABASE_MAX_CONNECTIONS", "many")]).unwrap_err();
        assert!(
            error.to_string().starts_with("DATABASE_MAX_CONNECTIONS:"),
            "{error}"
        );
    }

    #[test]
    fn secrets_do_not_leak_into_debug_output() {
        let settings = settings(&[("JWT_SECRET", "super-secret-value-for-the-test-1234")]).unwrap();
        assert!(!format!("{settings:?}").contains("super-secret-value"));
    }
}
