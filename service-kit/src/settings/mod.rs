//! Settings from environment variables (12-factor). A service runs as production unless
//! told `BAZAAR_ENV=development`. Most variables have a default that works with
//! `deploy/local`; those defaults are for development only, and production refuses to run
//! on any of them. There is no default signing key: `JWT_SECRET` (or a public key) is
//! always given — `make up` generates one for development.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Development-only defaults. They match `deploy/local` and are refused in production.
pub mod defaults {
    pub const DATABASE_URL: &str = "postgres://bazaar:bazaar-dev-only@127.0.0.1:15432/bazaar";
    pub const REDIS_URL: &str = "redis://127.0.0.1:16379/0";
    pub const KAFKA_BROKERS: &str = "127.0.0.1:19092";
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
    pub auth: AuthSettings,
    pub rate_limits: RateLimitSettings,
    pub movements: MovementSettings,
    pub processor: ProcessorSettings,
    pub query: QuerySettings,
}

/// query-api's own.
#[derive(Debug, Clone, Copy)]
pub struct QuerySettings {
    /// Most balances held in memory as copies of the Redis hashes (about 64 bytes each):
    /// `QUERY_REPLICA_MAX_BALANCES`, 1000000; 0 turns the copies off.
    pub replica_max_balances: usize,
    /// How long a read with a consistency token waits for the standby
    /// (`DATABASE_READ_URL`) to replay it before the primary answers instead:
    /// `QUERY_STANDBY_WAIT_MS`, 500.
    pub standby_wait: Duration,
}

/// How the processors cut their input into batches and publish their outputs.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// Most movements in one batch (one Postgres transaction): `PROCESSOR_BATCH_MAX`, 5000.
    pub batch_max: usize,
    /// Longest a batch waits to fill once its first movement arrived:
    /// `PROCESSOR_BATCH_WAIT_MS`, 20.
    pub batch_wait: Duration,
    /// Postgres transactions one batch is written in at once, each with whole partitions
    /// and their offsets: `PROCESSOR_COMMIT_PARALLELISM`, 2.
    pub commit_parallelism: usize,
    /// How long the broker may hold a fetch for data (`fetch.wait.max.ms`):
    /// `PROCESSOR_FETCH_WAIT_MS`, 10.
    pub fetch_wait: Duration,
    /// The `transactional.id` of this processor's output producer:
    /// `PROCESSOR_TRANSACTIONAL_ID`, by default the consumer group and a random suffix.
    /// Unique per running processor; a processor restarted with the same one (a
    /// StatefulSet's pod name, say) fences its predecessor's open transaction at once.
    pub transactional_id: Option<String>,
    /// How long an output transaction may stay open before the broker aborts it (a
    /// processor that died mid-transaction holds `read_committed` readers of the output
    /// partitions back at most this long): `PROCESSOR_TRANSACTION_TIMEOUT_MS`, by default
    /// the session timeout — the dead processor's transaction is then aborted by the time
    /// its partitions move, and their new owner need not wait for it.
    pub transaction_timeout: Duration,
}

/// What ingest accepts of a movement's event time, and how fresh its catalog stays.
#[derive(Debug, Clone, Copy)]
pub struct MovementSettings {
    /// Oldest `occurred_at` accepted (POS devices go offline): `MOVEMENT_MAX_AGE_DAYS`, 30.
    pub max_age: Duration,
    /// How far in the future `occurred_at` may be (device clocks drift):
    /// `MOVEMENT_MAX_FUTURE_SKEW_SECONDS`, 300.
    pub max_future_skew: Duration,
    /// How often ingest's catalog cache and query-api's catalog view read catalog changes: `CATALOG_REFRESH_MS`, 250.
    pub catalog_refresh: Duration,
}

/// Requests per second and burst, per token subject and per client address (requests
/// without a valid token).
#[derive(Debug, Clone, Copy)]
pub struct RateLimitSettings {
    pub per_subject: crate::ratelimit::Limit,
    pub per_address: crate::ratelimit::Limit,
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

/// The codecs this build of librdkafka has (zstd is not built in: its C build does not
/// take the sanitizer flags of the fuzz targets' build).
const COMPRESSIONS: [&str; 4] = ["lz4", "snappy", "gzip", "none"];

/// `KAFKA_COMPRESSION`, refused at start when the producer could not use it.
fn compression(value: Option<String>) -> Result<String, SettingsError> {
    let value = value.unwrap_or_else(|| "lz4".to_owned());
    if COMPRESSIONS.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(SettingsError::Invalid {
            var: "KAFKA_COMPRESSION",
            problem: format!("`{value}` is not one of {}", COMPRESSIONS.join(", ")),
        })
    }
}

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Prepended to every topic name (empty in deployments, unique per test).
    pub topic_prefix: String,
    pub consumer_group: String,
    pub replication_factor: i32,
    /// How long a produce may wait for the broker's acknowledgement.
    pub message_timeout: Duration,
    /// How long the producer waits to fill a batch: `KAFKA_LINGER_MS`, 2 for ingest and
    /// 5 for the processors ([`Service::default_linger_ms`]).
    pub linger: Duration,
    /// `KAFKA_COMPRESSION`: `lz4` (default), `snappy`, `gzip` or `none`.
    pub compression: String,
    /// How long a silent consumer keeps its partitions before the group moves them:
    /// `KAFKA_SESSION_TIMEOUT_MS`, 10000.
    pub session_timeout: Duration,
    /// How the clients reach the brokers: plaintext, TLS, SASL.
    pub security: KafkaSecurity,
}

/// How every Kafka client of a service connects: librdkafka's own settings, one variable
/// each.
#[derive(Debug, Clone, Default)]
pub struct KafkaSecurity {
    /// `KAFKA_SECURITY_PROTOCOL`: `PLAINTEXT` (default), `SSL`, `SASL_SSL` or
    /// `SASL_PLAINTEXT`.
    pub protocol: String,
    /// `KAFKA_SSL_CA_LOCATION`: PEM file of the CA that signed the brokers' certificates
    /// (by default the system's trust store). Brokers' host names are always verified.
    pub ca_location: Option<String>,
    /// `KAFKA_SSL_CERTIFICATE_LOCATION` and `KAFKA_SSL_KEY_LOCATION`: this client's
    /// certificate and key, for brokers that authenticate clients by TLS (mTLS).
    pub certificate_location: Option<String>,
    pub key_location: Option<String>,
    /// `KAFKA_SASL_MECHANISM`: `SCRAM-SHA-512` (default), `SCRAM-SHA-256` or `PLAIN`
    /// (managed services that issue API keys).
    pub sasl_mechanism: String,
    /// `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD`, required with SASL.
    pub sasl_username: Option<String>,
    pub sasl_password: Option<SecretString>,
}

impl KafkaSecurity {
    fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        environment: Environment,
    ) -> Result<Self, SettingsError> {
        let invalid = |var, problem: String| Err(SettingsError::Invalid { var, problem });
        let protocol = get("KAFKA_SECURITY_PROTOCOL")
            .unwrap_or_else(|| "PLAINTEXT".to_owned())
            .to_ascii_uppercase();
        let sasl = match protocol.as_str() {
            "PLAINTEXT" | "SSL" => false,
            "SASL_SSL" | "SASL_PLAINTEXT" => true,
            other => {
                return invalid(
                    "KAFKA_SECURITY_PROTOCOL",
                    format!("`{other}`: expected PLAINTEXT, SSL, SASL_SSL or SASL_PLAINTEXT"),
                );
            }
        };
        let sasl_mechanism = get("KAFKA_SASL_MECHANISM")
            .unwrap_or_else(|| "SCRAM-SHA-512".to_owned())
            .to_ascii_uppercase();
        if !matches!(
            sasl_mechanism.as_str(),
            "SCRAM-SHA-512" | "SCRAM-SHA-256" | "PLAIN"
        ) {
            return invalid(
                "KAFKA_SASL_MECHANISM",
                format!("`{sasl_mechanism}`: expected SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"),
            );
        }
        let security = Self {
            ca_location: get("KAFKA_SSL_CA_LOCATION"),
            certificate_location: get("KAFKA_SSL_CERTIFICATE_LOCATION"),
            key_location: get("KAFKA_SSL_KEY_LOCATION"),
            sasl_username: get("KAFKA_SASL_USERNAME"),
            sasl_password: get("KAFKA_SASL_PASSWORD").map(SecretString::from),
            protocol,
            sasl_mechanism,
        };
        if sasl && (security.sasl_username.is_none() || security.sasl_password.is_none()) {
            return invalid(
                "KAFKA_SASL_USERNAME",
                format!(
                    "{} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
                    security.protocol
                ),
            );
        }
        if !sasl && (security.sasl_username.is_some() || security.sasl_password.is_some()) {
            return invalid(
                "KAFKA_SECURITY_PROTOCOL",
                "KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set, but the protocol has no \
                 SASL: set SASL_SSL"
                    .to_owned(),
            );
        }
        if security.certificate_location.is_some() != security.key_location.is_some() {
            return invalid(
                "KAFKA_SSL_CERTIFICATE_LOCATION",
                "a client certificate and its key go together: set both or neither".to_owned(),
            );
        }
        if environment == Environment::Production
            && security.protocol == "SASL_PLAINTEXT"
            && security.sasl_mechanism == "PLAIN"
        {
            return invalid(
                "KAFKA_SECURITY_PROTOCOL",
                "SASL_PLAINTEXT with PLAIN sends the password in clear: use SASL_SSL".to_owned(),
            );
        }
        Ok(security)
    }

    /// Sets these on a librdkafka configuration.
    pub fn apply(&self, config: &mut rdkafka::ClientConfig) {
        config.set("security.protocol", &self.protocol);
        if self.protocol.contains("SSL") {
            // librdkafka's default, said aloud: the broker's name must be in its certificate.
            config.set("ssl.endpoint.identification.algorithm", "https");
            for (key, value) in [
                ("ssl.ca.location", &self.ca_location),
                ("ssl.certificate.location", &self.certificate_location),
                ("ssl.key.location", &self.key_location),
            ] {
                if let Some(value) = value {
                    config.set(key, value);
                }
            }
        }
        if let (Some(username), Some(password)) = (&self.sasl_username, &self.sasl_password) {
            config
                .set("sasl.mechanisms", &self.sasl_mechanism)
                .set("sasl.username", username)
                .set("sasl.password", password.expose_secret());
        }
    }
}

impl KafkaSettings {
    /// The `KAFKA_*` variables alone (the topic command needs nothing else).
    pub fn from_lookup(
        service: Service,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        Ok(Self {
            security: KafkaSecurity::from_lookup(get, Environment::from_lookup(get)?)?,
            brokers: get("KAFKA_BROKERS").unwrap_or_else(|| defaults::KAFKA_BROKERS.to_owned()),
            topic_prefix: get("KAFKA_TOPIC_PREFIX").unwrap_or_default(),
            consumer_group: get("KAFKA_CONSUMER_GROUP")
                .unwrap_or_else(|| defaults::CONSUMER_GROUP.to_owned()),
            replication_factor: parse_or(get, "KAFKA_REPLICATION_FACTOR", 1)?,
            message_timeout: Duration::from_millis(parse_or(
                get,
                "KAFKA_MESSAGE_TIMEOUT_MS",
                5_000,
            )?),
            linger: Duration::from_millis(parse_or(
                get,
                "KAFKA_LINGER_MS",
                service.default_linger_ms(),
            )?),
            compression: compression(get("KAFKA_COMPRESSION"))?,
            session_timeout: Duration::from_millis(parse_or(
                get,
                "KAFKA_SESSION_TIMEOUT_MS",
                10_000,
            )?),
        })
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `HS256` (default, with `JWT_SECRET`), `RS256` or `EdDSA` (with `JWT_PUBLIC_KEY`).
    pub jwt_algorithm: String,
    /// HS256 signing secret (at least 32 bytes; no default).
    pub jwt_secret: Option<SecretString>,
    /// PEM public key that verifies RS256/EdDSA tokens (from an identity provider, say).
    pub jwt_public_key: Option<String>,
    /// PEM private key, where this deployment issues RS256/EdDSA tokens itself.
    pub jwt_private_key: Option<SecretString>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// How long an issued access token is valid.
    pub jwt_lifetime: Duration,
    /// How long a refresh token is valid if unused (each use issues a new one).
    pub refresh_lifetime: Duration,
    /// How long a session (a login) lasts at most, however often it is refreshed.
    pub session_lifetime: Duration,
}

/// The shortest HS256 secret accepted: 256 bits, as RFC 7518 asks of HS256 keys.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl AuthSettings {
    /// The algorithm and its keys, as a whole: HS256 takes `JWT_SECRET` (at least 32
    /// bytes) and no public or private key; RS256 and EdDSA take `JWT_PUBLIC_KEY` (and
    /// `JWT_PRIVATE_KEY` where this deployment issues tokens) and no secret. Anything else
    /// would verify tokens with a key the operator did not mean.
    fn check(&self) -> Result<(), SettingsError> {
        let invalid = |var, problem: &str| {
            Err(SettingsError::Invalid {
                var,
                problem: problem.to_owned(),
            })
        };
        match self.jwt_algorithm.as_str() {
            "HS256" => {
                if self.jwt_public_key.is_some() || self.jwt_private_key.is_some() {
                    return invalid(
                        "JWT_ALGORITHM",
                        "HS256 (the default) signs with JWT_SECRET, but JWT_PUBLIC_KEY or \
                         JWT_PRIVATE_KEY is set: set JWT_ALGORITHM to RS256 or EdDSA, or \
                         unset the keys",
                    );
                }
                match &self.jwt_secret {
                    None => invalid(
                        "JWT_SECRET",
                        "required for HS256 (there is no default; `make up` generates one \
                         for development in .local/jwt-secret)",
                    ),
                    Some(secret) if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES => {
                        invalid("JWT_SECRET", "shorter than 32 bytes")
                    }
                    Some(_) => Ok(()),
                }
            }
            "RS256" | "EdDSA" => {
                if self.jwt_public_key.is_none() {
                    return invalid("JWT_PUBLIC_KEY", "required for RS256 and EdDSA");
                }
                if self.jwt_secret.is_some() {
                    return invalid(
                        "JWT_SECRET",
                        "set, but RS256 and EdDSA verify with JWT_PUBLIC_KEY: unset it",
                    );
                }
                Ok(())
            }
            other => invalid(
                "JWT_ALGORITHM",
                &format!("`{other}`: expected HS256, RS256 or EdDSA"),
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{var}: {problem}")]
    Invalid { var: &'static str, problem: String },
    #[error("refusing to start in production with development defaults: {0}")]
    DevelopmentDefaultsInProduction(String),
}

impl Settings {
    /// Reads the settings of `service` from the process environment.
    pub fn from_env(service: Service) -> Result<Self, SettingsError> {
        Self::from_lookup(service, |var| std::env::var(var).ok())
    }

    /// Reads the settings from any source of variables (tests pass a map).
    pub fn from_lookup(
        service: Service,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let get = |var: &str| lookup(var).filter(|value| !value.trim().is_empty());

        let environment = Environment::from_lookup(&get)?;

        let kafka = KafkaSettings::from_lookup(service, &get)?;
        let session_ms = u64::try_from(kafka.session_timeout.as_millis()).unwrap_or(u64::MAX);
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
                parse_or::<u64>(&get, "HTTP_REQUEST_TIMEOUT_MS", 30_000)?.max(1),
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
                max_connections: parse_or(&get, "DATABASE_MAX_CONNECTIONS", 10)?,
                acquire_timeout: Duration::from_millis(parse_or(
                    &get,
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
            auth: AuthSettings {
                jwt_algorithm: get("JWT_ALGORITHM").unwrap_or_else(|| "HS256".to_owned()),
                jwt_secret: get("JWT_SECRET").map(SecretString::from),
                jwt_public_key: get("JWT_PUBLIC_KEY"),
                jwt_private_key: get("JWT_PRIVATE_KEY").map(SecretString::from),
                jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| "bazaar".to_owned()),
                jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "bazaar-api".to_owned()),
                jwt_lifetime: Duration::from_secs(parse_or(&get, "JWT_TTL_SECONDS", 900)?),
                refresh_lifetime: Duration::from_secs(parse_or(
                    &get,
                    "REFRESH_TTL_SECONDS",
                    14 * 86_400,
                )?),
                session_lifetime: Duration::from_secs(parse_or(
                    &get,
                    "SESSION_TTL_SECONDS",
                    30 * 86_400,
                )?),
            },
            rate_limits: RateLimitSettings {
                per_subject: limit(
                    &get,
                    "RATE_LIMIT_SUBJECT_PER_SECOND",
                    2_000,
                    "RATE_LIMIT_SUBJECT_BURST",
                    4_000,
                )?,
                per_address: limit(
                    &get,
                    "RATE_LIMIT_ADDRESS_PER_SECOND",
                    50,
                    "RATE_LIMIT_ADDRESS_BURST",
                    100,
                )?,
            },
            movements: MovementSettings {
                max_age: Duration::from_secs(
                    86_400 * parse_or::<u64>(&get, "MOVEMENT_MAX_AGE_DAYS", 30)?,
                ),
                max_future_skew: Duration::from_secs(parse_or(
                    &get,
                    "MOVEMENT_MAX_FUTURE_SKEW_SECONDS",
                    300,
                )?),
                catalog_refresh: Duration::from_millis(parse_or(&get, "CATALOG_REFRESH_MS", 250)?),
            },
            processor: ProcessorSettings {
                batch_max: parse_or(&get, "PROCESSOR_BATCH_MAX", 5_000)?.max(1),
                batch_wait: Duration::from_millis(parse_or(&get, "PROCESSOR_BATCH_WAIT_MS", 20)?),
                commit_parallelism: parse_or(&get, "PROCESSOR_COMMIT_PARALLELISM", 2)?.max(1),
                fetch_wait: Duration::from_millis(parse_or(&get, "PROCESSOR_FETCH_WAIT_MS", 10)?),
                transactional_id: get("PROCESSOR_TRANSACTIONAL_ID").filter(|id| !id.is_empty()),
                transaction_timeout: Duration::from_millis(
                    parse_or(&get, "PROCESSOR_TRANSACTION_TIMEOUT_MS", session_ms)?.max(1_000),
                ),
            },
            query: QuerySettings {
                replica_max_balances: parse_or(&get, "QUERY_REPLICA_MAX_BALANCES", 1_000_000)?,
                standby_wait: Duration::from_millis(parse_or(&get, "QUERY_STANDBY_WAIT_MS", 500)?),
            },
        };
        if service != Service::Processors {
            settings.auth.check()?;
        }
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

fn limit(
    get: &impl Fn(&str) -> Option<String>,
    rate_var: &'static str,
    rate: u32,
    burst_var: &'static str,
    burst: u32,
) -> Result<crate::ratelimit::Limit, SettingsError> {
    let rate = parse_or(get, rate_var, rate)?;
    let burst = parse_or(get, burst_var, burst)?;
    crate::ratelimit::Limit::new(rate, burst).ok_or(SettingsError::Invalid {
        var: rate_var,
        problem: "rate and burst must be at least 1".into(),
    })
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
    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let base = [("BAZAAR_ENV", "development"), ("JWT_SECRET", SECRET)];
        Settings::from_lookup(Service::Ingest, lookup(&base, vars))
    }

    #[test]
    fn a_compression_the_producer_lacks_stops_the_service_at_start() {
        for codec in COMPRESSIONS {
            let settings = settings(&[("KAFKA_COMPRESSION", codec)]).unwrap();
            assert_eq!(settings.kafka.compression, codec);
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

    fn production(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let base = [
            ("DATABASE_URL", "postgres://app:s3cret@db.internal/bazaar"),
            ("REDIS_URL", "redis://cache.internal"),
            ("KAFKA_BROKERS", "kafka-1:9092,kafka-2:9092"),
            ("JWT_SECRET", SECRET),
        ];
        Settings::from_lookup(Service::Ingest, lookup(&base, vars))
    }

    fn refused(result: Result<Settings, SettingsError>, var: &str) {
        match result {
            Err(SettingsError::Invalid { var: named, .. }) => assert_eq!(named, var),
            other => panic!("expected {var} to be refused, got {other:?}"),
        }
    }

    #[test]
    fn a_service_not_told_it_is_in_development_is_production() {
        assert_eq!(
            production(&[]).unwrap().environment,
            Environment::Production
        );
        let error = Settings::from_lookup(Service::Ingest, lookup(&[("JWT_SECRET", SECRET)], &[]))
            .unwrap_err()
            .to_string();
        for var in ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS"] {
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
        let processors = Settings::from_lookup(
            Service::Processors,
            lookup(&[("BAZAAR_ENV", "development")], &[]),
        );
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
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.environment, Environment::Development);
        assert_eq!(settings.listen_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(settings.kafka.brokers, "127.0.0.1:19092");
        assert!(settings.database.url.expose_secret().contains(":15432/"));
        assert!(settings.redis.url.expose_secret().contains(":16379"));
    }

    #[test]
    fn ingest_lingers_less_than_the_processors_unless_told() {
        assert_eq!(
            settings(&[]).unwrap().kafka.linger,
            Duration::from_millis(2)
        );
        let processors = Settings::from_lookup(
            Service::Processors,
            lookup(&[("BAZAAR_ENV", "development")], &[]),
        )
        .unwrap();
        assert_eq!(processors.kafka.linger, Duration::from_millis(5));
        let told = settings(&[("KAFKA_LINGER_MS", "7")]).unwrap();
        assert_eq!(told.kafka.linger, Duration::from_millis(7));
    }

    #[test]
    fn production_refuses_development_defaults() {
        let error = settings(&[("BAZAAR_ENV", "production")]).unwrap_err();
        let message = error.to_string();
        for var in ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS"] {
            assert!(message.contains(var), "{message}");
        }
        let production = production(&[("BAZAAR_ENV", "production")]).unwrap();
        assert_eq!(production.environment, Environment::Production);
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
