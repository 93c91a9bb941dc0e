//! Every environment variable the services read, with its default and meaning: the one
//! list behind `--help` of each service and the checks of the deployment files (a
//! variable set in `docker-compose.yml` or a manifest must be one of these). A unit test
//! keeps it equal to what each service's settings declaration ([`crate::settings::validate`]) asks for.

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::Service;

#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: &'static str, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

/// In the order docs/configuration.md lists them (its table is generated from this list).
pub const VARIABLES: &[Variable] = &[
    var(
        "BAZAAR_ENV",
        "production",
        "`development` accepts the local stack's defaults",
    ),
    var(
        "DATABASE_URL",
        "the local stack's (development only)",
        "PostgreSQL primary",
    ),
    var(
        "DATABASE_READ_URL",
        "the primary",
        "a streaming standby for history, reports, alerts and audit (query-api)",
    ),
    var("DATABASE_MAX_CONNECTIONS", "10", "pool size per service"),
    var(
        "DATABASE_ACQUIRE_TIMEOUT_MS",
        "5000",
        "longest wait for a pooled connection",
    ),
    var(
        "REDIS_URL",
        "the local stack's (development only)",
        "Redis (a cache: services work while it is down)",
    ),
    var("REDIS_KEY_PREFIX", "bazaar:", "prefix of every Redis key"),
    var(
        "REDIS_TLS_CA_FILE",
        "(the system's trust store)",
        "PEM file of the CA that signed the server's certificate (rediss://)",
    ),
    var(
        "KAFKA_BROKERS",
        "the local stack's (development only)",
        "bootstrap servers",
    ),
    var("KAFKA_TOPIC_PREFIX", "(none)", "prefix of every topic name"),
    var(
        "SCHEMA_REGISTRY_URL",
        "the local stack's (development only)",
        "the schema registry's Confluent-compatible API (Apicurio Registry: `…/apis/ccompat/v7`)",
    ),
    var(
        "KAFKA_CONSUMER_GROUP",
        "bazaar-processors",
        "the processors' consumer group",
    ),
    var(
        "KAFKA_REPLICATION_FACTOR",
        "1",
        "of the topics bazaar-topics creates",
    ),
    var(
        "KAFKA_MESSAGE_TIMEOUT_MS",
        "5000",
        "how long a produce may wait for the broker",
    ),
    var(
        "KAFKA_LINGER_MS",
        "2 (ingest), 5 (processors)",
        "how long the producer gathers records into a batch",
    ),
    var("KAFKA_COMPRESSION", "lz4", "lz4, snappy, gzip or none"),
    var(
        "KAFKA_SESSION_TIMEOUT_MS",
        "15000",
        "how long a silent consumer keeps its partitions",
    ),
    var(
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_SSL or SASL_PLAINTEXT",
    ),
    var(
        "KAFKA_SSL_CA_LOCATION",
        "(the system's trust store)",
        "PEM file of the CA that signed the brokers' certificates",
    ),
    var(
        "KAFKA_SSL_CERTIFICATE_LOCATION",
        "(none)",
        "this client's certificate, for brokers that ask for one (mTLS)",
    ),
    var(
        "KAFKA_SSL_KEY_LOCATION",
        "(none)",
        "the key of that certificate",
    ),
    var(
        "KAFKA_SASL_MECHANISM",
        "SCRAM-SHA-512",
        "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN",
    ),
    var("KAFKA_SASL_USERNAME", "(none)", "required with SASL"),
    var("KAFKA_SASL_PASSWORD", "(none)", "required with SASL"),
    var(
        "MOVEMENT_MAX_AGE_DAYS",
        "30",
        "oldest occurred_at ingest accepts",
    ),
    var(
        "MOVEMENT_MAX_FUTURE_SKEW_SECONDS",
        "300",
        "how far ahead occurred_at may be",
    ),
    var(
        "MOVEMENT_OFFLINE_AFTER_SECONDS",
        "600",
        "a sale or removal received this long after it occurred was made offline (never rejected for want of stock)",
    ),
    var(
        "CATALOG_REFRESH_MS",
        "250",
        "how often the catalog copies read changes",
    ),
    var(
        "PROCESSOR_BATCH_MAX",
        "5000",
        "most movements per processor batch",
    ),
    var(
        "PROCESSOR_COMMIT_PARALLELISM",
        "2",
        "concurrent transactions a batch is written in",
    ),
    var(
        "PROCESSOR_BATCH_WAIT_MS",
        "20",
        "longest a batch waits to fill after its first movement",
    ),
    var(
        "PROCESSOR_FETCH_WAIT_MS",
        "10",
        "longest the broker holds a fetch for data",
    ),
    var(
        "PROCESSOR_TRANSACTIONAL_ID",
        "group and a random suffix",
        "transactional.id of the output producer, unique per processor",
    ),
    var(
        "PROCESSOR_TRANSACTION_TIMEOUT_MS",
        "KAFKA_SESSION_TIMEOUT_MS",
        "longest an output transaction may stay open",
    ),
    var(
        "QUERY_DASHBOARD_INGEST_URL",
        "(none: same origin)",
        "where the dashboard sends sign-ins and movements: ingest's URL",
    ),
    var(
        "QUERY_EVENT_STREAMS_PER_SUBJECT",
        "16",
        "event streams one token subject may hold open",
    ),
    var(
        "QUERY_DASHBOARD_DIR",
        "(none: not served)",
        "the built dashboard (dashboard/dist) query-api serves under /app/",
    ),
    var(
        "QUERY_STANDBY_WAIT_MS",
        "500",
        "how long a read with a consistency token waits for the standby",
    ),
    var(
        "QUERY_REPLICA_MAX_BALANCES",
        "1000000",
        "balances query-api copies in memory (0: none)",
    ),
    var(
        "CORS_ALLOWED_ORIGINS",
        "(none)",
        "web origins whose pages may call the API, comma-separated (the dashboard's)",
    ),
    var("JWT_ALGORITHM", "HS256", "HS256, RS256 or EdDSA"),
    var(
        "JWT_SECRET",
        "(none: required with HS256)",
        "HS256 signing secret, at least 32 bytes",
    ),
    var(
        "JWT_PUBLIC_KEY",
        "(none)",
        "PEM key that verifies RS256/EdDSA tokens",
    ),
    var(
        "JWT_PRIVATE_KEY",
        "(none)",
        "PEM key to issue RS256/EdDSA tokens here",
    ),
    var("JWT_ISSUER", "bazaar", "required iss"),
    var("JWT_AUDIENCE", "bazaar-api", "required aud"),
    var("JWT_TTL_SECONDS", "900", "lifetime of issued access tokens"),
    var(
        "REFRESH_TTL_SECONDS",
        "1209600",
        "lifetime of an unused refresh token (14 days)",
    ),
    var(
        "SESSION_TTL_SECONDS",
        "2592000",
        "longest a session lasts, however often refreshed (30 days)",
    ),
    var(
        "RATE_LIMIT_SUBJECT_PER_SECOND",
        "2000",
        "requests per token subject",
    ),
    var(
        "RATE_LIMIT_SUBJECT_BURST",
        "4000",
        "burst per token subject",
    ),
    var(
        "RATE_LIMIT_ADDRESS_PER_SECOND",
        "50",
        "requests per address without a valid token",
    ),
    var(
        "RATE_LIMIT_ADDRESS_BURST",
        "100",
        "burst per address without a valid token",
    ),
    var(
        "RATE_LIMITS_SHARED",
        "true",
        "budgets in Redis, shared by every instance (`false`: each instance its own)",
    ),
    var(
        "HTTP_REQUEST_TIMEOUT_MS",
        "30000",
        "a request's deadline (503 beyond)",
    ),
    var(
        "TRUSTED_PROXIES",
        "(none)",
        "CIDRs whose X-Forwarded-For/Forwarded name the client",
    ),
    var("INGEST_LISTEN_ADDR", "127.0.0.1:8081", "ingest's address"),
    var(
        "QUERY_API_LISTEN_ADDR",
        "127.0.0.1:8082",
        "query-api's address",
    ),
    var(
        "PROCESSORS_LISTEN_ADDR",
        "127.0.0.1:8083",
        "the processors' health and metrics",
    ),
    var(
        "METRICS_LISTEN_ADDR",
        "(unset)",
        "serve /metrics here instead of on the service's address",
    ),
    var("RUST_LOG", "info", "log filter"),
    var("LOG_FORMAT", "human", "json for one JSON object per line"),
];

/// The variables `service` reads: what its settings declaration asks for, and the
/// logging variables every service reads before its settings (telemetry).
pub fn read_by(service: Service) -> BTreeSet<String> {
    let mut names = asked(service);
    names.extend(LOGGING.map(str::to_owned));
    names
}

const LOGGING: [&str; 2] = ["RUST_LOG", "LOG_FORMAT"];

/// What `service`'s settings declaration asks a development environment with a signing
/// key for (so that every section is read).
fn asked(service: Service) -> BTreeSet<String> {
    let asked = RefCell::new(BTreeSet::new());
    let read = crate::settings::validate(service, |name| {
        asked.borrow_mut().insert(name.to_owned());
        match name {
            "BAZAAR_ENV" => Some("development".to_owned()),
            "JWT_SECRET" => Some("a-key-for-listing-the-variables-only".to_owned()),
            _ => None,
        }
    });
    debug_assert!(read.is_ok(), "{read:?}");
    asked.into_inner()
}

/// Whether `name` is a variable the services read.
pub fn is_known(name: &str) -> bool {
    VARIABLES.iter().any(|variable| variable.name == name)
}

/// The text `--help` of a service ends with: every variable it reads, its default and
/// meaning.
pub fn help(service: Service) -> String {
    let read = read_by(service);
    let variables = || {
        VARIABLES
            .iter()
            .filter(|variable| read.contains(variable.name))
    };
    let width = variables()
        .map(|variable| variable.name.len())
        .max()
        .unwrap_or(0);
    let mut text = format!(
        "Configured by environment variables (docs/configuration.md has more). \
         {} runs as production unless BAZAAR_ENV=development, and production refuses the \
         development defaults.\n\nEnvironment:\n",
        service.name()
    );
    for variable in variables() {
        text.push_str(&format!(
            "  {:width$}  {} [default: {}]\n",
            variable.name, variable.meaning, variable.default
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: [Service; 3] = [Service::Ingest, Service::Processors, Service::QueryApi];

    /// What the declarations ask for, of every service.
    fn asked() -> BTreeSet<String> {
        SERVICES.into_iter().flat_map(super::asked).collect()
    }

    #[test]
    fn the_list_is_what_the_settings_read() {
        let listed: BTreeSet<String> = VARIABLES
            .iter()
            .map(|variable| variable.name.to_owned())
            .filter(|name| !LOGGING.contains(&name.as_str()))
            .collect();
        assert_eq!(listed, asked());
    }

    /// docs/configuration.md's table: every declared variable, its default, the services
    /// that read it (asked of the settings themselves) and its meaning.
    fn configuration_table() -> String {
        let read: Vec<(Service, BTreeSet<String>)> = SERVICES
            .into_iter()
            .map(|service| (service, read_by(service)))
            .collect();
        let readers = |name: &str| -> Vec<&'static str> {
            read.iter()
                .filter(|(_, read)| read.contains(name))
                .map(|(service, _)| service.name())
                .collect()
        };
        let mut table =
            String::from("| variable | default | read by | meaning |\n|---|---|---|---|\n");
        for variable in VARIABLES {
            table.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                variable.name,
                variable.default.replace('|', "\\|"),
                readers(variable.name).join(", "),
                variable.meaning.replace('|', "\\|"),
            ));
        }
        table
    }

    #[test]
    fn the_configuration_doc_is_generated_from_the_declaration() {
        const BEGIN: &str = "<!-- variables:begin -->\n";
        const END: &str = "<!-- variables:end -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (head, rest) = doc.split_once(BEGIN).expect("the table's begin marker");
        let (_, tail) = rest.split_once(END).expect("the table's end marker");
        let generated = format!("{head}{BEGIN}{}{END}{tail}", configuration_table());
        if std::env::var_os("BAZAAR_WRITE_DOCS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        assert!(
            doc == generated,
            "docs/configuration.md differs from environment::VARIABLES; write it with \
             `BAZAAR_WRITE_DOCS=1 cargo test -p service-kit --lib environment`"
        );
    }

    #[test]
    fn help_names_every_variable_the_service_reads_with_its_default() {
        let help = help(Service::Ingest);
        for name in read_by(Service::Ingest) {
            assert!(help.contains(&name), "{name}");
        }
        assert!(help.contains("[default: 127.0.0.1:8081]"));
        assert!(!help.contains("PROCESSOR_BATCH_MAX"), "{help}");
    }
}
