//! What each service reads, declared once: the shared [`Settings`] and the sections of its
//! own. A service parses exactly its declaration (and `--help`, the deployment checks and
//! docs/configuration.md follow from it), so ingest holds no processor settings and the
//! processors no token keys.

use std::time::Duration;

use super::{ApiSettings, Service, Settings, SettingsError, lookup, parse_or};

/// Everything ingest reads: the shared settings, the API's, and what it accepts of
/// movements.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub shared: Settings,
    pub api: ApiSettings,
    pub movements: MovementSettings,
}

/// Everything the processors read: the shared settings and how they batch and publish.
#[derive(Debug, Clone)]
pub struct ProcessorsSettings {
    pub shared: Settings,
    pub processing: ProcessorSettings,
}

/// Everything query-api reads: the shared settings, the API's, and its own.
#[derive(Debug, Clone)]
pub struct QueryApiSettings {
    pub shared: Settings,
    pub api: ApiSettings,
    pub query: QuerySettings,
}

/// Reads `service`'s whole declaration from `lookup_var` and keeps nothing: whether a
/// deployment's variables would start it, and which variables it asks for.
pub fn validate(
    service: Service,
    lookup_var: impl Fn(&str) -> Option<String>,
) -> Result<(), SettingsError> {
    match service {
        Service::Ingest => IngestSettings::from_lookup(lookup_var).map(drop),
        Service::Processors => ProcessorsSettings::from_lookup(lookup_var).map(drop),
        Service::QueryApi => QueryApiSettings::from_lookup(lookup_var).map(drop),
    }
}

impl IngestSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    pub fn from_lookup(lookup_var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = lookup(lookup_var);
        Ok(Self {
            shared: Settings::read(Service::Ingest, &get)?,
            api: ApiSettings::from_lookup(&get)?,
            movements: MovementSettings::from_lookup(&get)?,
        })
    }
}

impl ProcessorsSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    pub fn from_lookup(lookup_var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = lookup(lookup_var);
        let shared = Settings::read(Service::Processors, &get)?;
        let processing = ProcessorSettings::from_lookup(&get, &shared)?;
        Ok(Self { shared, processing })
    }
}

impl QueryApiSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    pub fn from_lookup(lookup_var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = lookup(lookup_var);
        Ok(Self {
            shared: Settings::read(Service::QueryApi, &get)?,
            api: ApiSettings::from_lookup(&get)?,
            query: QuerySettings::from_lookup(&get)?,
        })
    }
}

/// query-api's own.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// Most balances held in memory as copies of the Redis hashes (about 64 bytes each):
    /// `QUERY_REPLICA_MAX_BALANCES`, 1000000; 0 turns the copies off.
    pub replica_max_balances: usize,
    /// How long a read with a consistency token waits for the standby
    /// (`DATABASE_READ_URL`) to replay it before the primary answers instead:
    /// `QUERY_STANDBY_WAIT_MS`, 500.
    pub standby_wait: Duration,
    /// How often query-api's catalog view reads catalog changes: `CATALOG_REFRESH_MS`, 250.
    pub catalog_refresh: Duration,
    /// Event streams (`GET /v1/stores/{id}/events`) one token subject may hold open at
    /// once: `QUERY_EVENT_STREAMS_PER_SUBJECT`, 16.
    pub event_streams_per_subject: usize,
    /// The built dashboard to serve under `/app/`: `QUERY_DASHBOARD_DIR`, none (not served).
    pub dashboard_dir: Option<std::path::PathBuf>,
    /// Where the dashboard sends sign-ins and movements (ingest's URL, where ingest is not
    /// on the dashboard's origin): `QUERY_DASHBOARD_INGEST_URL`, none (same origin).
    pub dashboard_ingest_url: String,
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
    /// A sale or removal received longer than this after it occurred was made while its
    /// till was offline (it is never rejected for want of stock):
    /// `MOVEMENT_OFFLINE_AFTER_SECONDS`, 600.
    pub offline_after: Duration,
    /// How often ingest's catalog cache reads catalog changes: `CATALOG_REFRESH_MS`, 250.
    pub catalog_refresh: Duration,
}

impl MovementSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        Ok(Self {
            max_age: Duration::from_secs(
                86_400 * parse_or::<u64>(get, "MOVEMENT_MAX_AGE_DAYS", 30)?,
            ),
            max_future_skew: Duration::from_secs(parse_or(
                get,
                "MOVEMENT_MAX_FUTURE_SKEW_SECONDS",
                300,
            )?),
            offline_after: Duration::from_secs(parse_or(
                get,
                "MOVEMENT_OFFLINE_AFTER_SECONDS",
                600,
            )?),
            catalog_refresh: catalog_refresh(get)?,
        })
    }
}

/// How often the catalog is read again for changes: `CATALOG_REFRESH_MS`, 250.
fn catalog_refresh(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, SettingsError> {
    Ok(Duration::from_millis(parse_or(
        get,
        "CATALOG_REFRESH_MS",
        250,
    )?))
}

impl ProcessorSettings {
    fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        shared: &Settings,
    ) -> Result<Self, SettingsError> {
        let session_ms =
            u64::try_from(shared.kafka.session_timeout.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            batch_max: parse_or(get, "PROCESSOR_BATCH_MAX", 5_000)?.max(1),
            batch_wait: Duration::from_millis(parse_or(get, "PROCESSOR_BATCH_WAIT_MS", 20)?),
            commit_parallelism: parse_or(get, "PROCESSOR_COMMIT_PARALLELISM", 2)?.max(1),
            fetch_wait: Duration::from_millis(parse_or(get, "PROCESSOR_FETCH_WAIT_MS", 10)?),
            transactional_id: get("PROCESSOR_TRANSACTIONAL_ID").filter(|id| !id.is_empty()),
            transaction_timeout: Duration::from_millis(
                parse_or(get, "PROCESSOR_TRANSACTION_TIMEOUT_MS", session_ms)?.max(1_000),
            ),
        })
    }
}

impl QuerySettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        Ok(Self {
            replica_max_balances: parse_or(get, "QUERY_REPLICA_MAX_BALANCES", 1_000_000)?,
            standby_wait: Duration::from_millis(parse_or(get, "QUERY_STANDBY_WAIT_MS", 500)?),
            catalog_refresh: catalog_refresh(get)?,
            event_streams_per_subject: parse_or(get, "QUERY_EVENT_STREAMS_PER_SUBJECT", 16)?,
            dashboard_dir: get("QUERY_DASHBOARD_DIR")
                .filter(|dir| !dir.is_empty())
                .map(Into::into),
            dashboard_ingest_url: get("QUERY_DASHBOARD_INGEST_URL").unwrap_or_default(),
        })
    }
}
