//! How the services reach Apache Kafka: brokers, topics, timeouts, and security.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{Environment, Service, SettingsError, defaults, parse_or};

/// The codecs this build of librdkafka has (zstd is not built in: its C build does not
/// take the sanitizer flags of the fuzz targets' build).
pub(super) const COMPRESSIONS: [&str; 4] = ["lz4", "snappy", "gzip", "none"];

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
    /// `KAFKA_SESSION_TIMEOUT_MS`, 15000.
    pub session_timeout: Duration,
    /// How the clients reach the brokers: plaintext, TLS, SASL.
    pub security: KafkaSecurity,
    /// `SCHEMA_REGISTRY_URL`: the schema registry's Confluent-compatible API (Apicurio
    /// Registry's is `…/apis/ccompat/v7`), where the topics' value schemas are registered.
    pub schema_registry: String,
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
            schema_registry: schema_registry_url(get("SCHEMA_REGISTRY_URL"))?,
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
                15_000,
            )?),
        })
    }
}

/// `SCHEMA_REGISTRY_URL`, an `http(s)://` base URL without a trailing slash.
fn schema_registry_url(value: Option<String>) -> Result<String, SettingsError> {
    let Some(url) = value else {
        return Ok(defaults::SCHEMA_REGISTRY_URL.to_owned());
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(SettingsError::Invalid {
            var: "SCHEMA_REGISTRY_URL",
            problem: format!("`{url}`: expected an http:// or https:// URL"),
        });
    }
    Ok(url.trim_end_matches('/').to_owned())
}
