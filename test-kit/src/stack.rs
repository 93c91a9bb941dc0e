//! One test's slice of the stack `make up` started: its own database (copied from a
//! template migrated once per schema version), topics (a unique prefix), consumer group and
//! Redis key prefix. Tests never see each other's data and never skip: with the stack
//! missing they fail and say how to start it.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use service_kit::settings::{
    IngestSettings, ProcessorsSettings, QueryApiSettings, Service, Settings,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::KafkaCluster;
use crate::database::{await_replica, create_database, with_database};

/// Partitions per topic in tests: enough to exercise several, cheap for the broker.
pub const TEST_PARTITIONS: i32 = 3;

/// Names one Postgres database per schema version; built once, copied per test.
pub(crate) fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in schemas::migrations::MIGRATOR.iter() {
        for byte in migration.checksum.iter() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("bazaar_template_{hash:016x}")
}

pub(crate) fn stack_missing(what: &str, error: impl std::fmt::Display) -> ! {
    panic!("the local stack is not reachable ({what}: {error}); run `make up` first")
}

/// The local stack's links with every one encrypted (`BAZAAR_TLS=1 deploy/local/stack.sh
/// env`): Kafka's SASL_SSL listeners with SCRAM-SHA-512, PostgreSQL with
/// `sslmode=verify-full` and Redis over `rediss://`, each verified against the stack's own
/// CA. For [`TestStack::start_with`].
pub fn local_tls_env() -> Vec<(&'static str, String)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/stack.sh");
    let output = std::process::Command::new("bash")
        .args([script, "env"])
        .env("BAZAAR_TLS", "1")
        .output()
        .unwrap_or_else(|error| panic!("running stack.sh env: {error}"));
    assert!(
        output.status.success(),
        "stack.sh env: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            // The test's own development identity stays its own.
            if ["BAZAAR_ENV", "JWT_SECRET"].contains(&name) {
                return None;
            }
            let variable = service_kit::environment::VARIABLES
                .iter()
                .find(|variable| variable.name == name)
                .unwrap_or_else(|| panic!("stack.sh env printed {name}, which no service reads"));
            Some((variable.name, value.trim_matches('\'').to_owned()))
        })
        .collect()
}

/// `GET url` and its body as text (a service's `/metrics`, `/openapi.json`, …).
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
        .text()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Its headers, values as (lossy) UTF-8 text.
    pub headers: HashMap<String, String>,
}

/// An isolated slice of the local stack for one test.
#[derive(Debug)]
pub struct TestStack {
    /// Settings pointing at this test's database, topics, group and Redis prefix, with
    /// listen addresses on port 0.
    pub settings: Settings,
    pub pool: PgPool,
    pub database_name: String,
    /// The schema ids of this test's value subjects (`<prefix><topic>-value`), registered
    /// at start: what the output topics' records are read with.
    pub schema_ids: schemas::SchemaIds,
    /// The environment variables behind `settings`, to start a service binary with.
    env: HashMap<&'static str, String>,
    admin_url: SecretString,
    dropped: bool,
}

impl TestStack {
    /// Creates the database, the topics and the prefixes. Panics with "run `make up`"
    /// when the stack is not there.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`TestStack::start`] on a Kafka cluster of the test's own.
    pub async fn start_on(cluster: &KafkaCluster) -> Self {
        Self::start_with(&[
            ("KAFKA_BROKERS", cluster.bootstrap()),
            ("KAFKA_REPLICATION_FACTOR", cluster.nodes.to_string()),
        ])
        .await
    }

    /// [`TestStack::start`] with some variables set otherwise.
    pub async fn start_with(variables: &[(&'static str, String)]) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        // A development deployment of its own, with a signing key no one else has.
        let mut overrides: HashMap<&'static str, String> = HashMap::from([
            ("BAZAAR_ENV", "development".to_owned()),
            (
                "JWT_SECRET",
                format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
            ),
            // The generated streams span 36 hours and end an hour ago: with the default
            // window (10 minutes) ingest would count every sale in them as made offline. The
            // model says which were (`StockMovement::offline`, sent as `"offline": true`);
            // the window's own test sets it back.
            ("MOVEMENT_OFFLINE_AFTER_SECONDS", (40 * 86_400).to_string()),
        ]);
        overrides.extend(variables.iter().cloned());
        // The overrides, then the process environment (what `make test` evaluated).
        let settings_of = |overrides: &HashMap<&'static str, String>| {
            Settings::from_lookup(Service::Ingest, |var| {
                overrides
                    .get(var)
                    .cloned()
                    .or_else(|| std::env::var(var).ok())
            })
            .unwrap_or_else(|error| panic!("test settings: {error}"))
        };
        let base = settings_of(&overrides);
        let admin_url = base.database.url.clone();
        let database_name = format!("bazaar_test_{id}");
        create_database(&admin_url, &database_name).await;

        let test_url = with_database(&admin_url, &database_name);
        overrides.insert("DATABASE_URL", test_url.clone());
        // The stack's standby (`stack.sh env`) has the test's database once it has replayed
        // its creation: the services start after that.
        if let Some(standby) = &base.database.read_url {
            let standby_url = with_database(standby, &database_name);
            await_replica(&standby_url).await;
            overrides.insert("DATABASE_READ_URL", standby_url);
        }
        overrides.insert("KAFKA_TOPIC_PREFIX", format!("test-{id}."));
        overrides.insert("KAFKA_CONSUMER_GROUP", format!("test-{id}"));
        overrides.insert("REDIS_KEY_PREFIX", format!("bazaar-test:{id}:"));
        for service in [Service::Ingest, Service::Processors, Service::QueryApi] {
            overrides.insert(service.listen_var(), "127.0.0.1:0".into());
        }
        // The caller's variables win over this test's own — but its database URLs were the
        // starting point of the test's own (same server, same TLS, the test's database).
        overrides.extend(
            variables
                .iter()
                .filter(|(var, _)| !["DATABASE_URL", "DATABASE_READ_URL"].contains(var))
                .cloned(),
        );
        let settings = settings_of(&overrides);

        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&test_url)
            .await
            .unwrap_or_else(|error| stack_missing("PostgreSQL", error));

        if let Err(error) = service_kit::kafka::ensure_topics(
            &settings.kafka,
            &settings.topics(),
            Some(TEST_PARTITIONS),
        )
        .await
        {
            stack_missing("Kafka", error);
        }
        let schema_ids = crate::registry::register_schemas(&settings)
            .await
            .unwrap_or_else(|error| stack_missing("the schema registry", error));

        Self {
            settings,
            pool,
            database_name,
            schema_ids,
            env: overrides,
            admin_url,
            dropped: false,
        }
    }

    /// Environment variables that point a service binary at this test's slice of the
    /// stack (listening on port 0).
    pub fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(var, value)| (*var, value.as_str()))
    }

    /// The URL of another database on this test's PostgreSQL, as the test's own connects.
    pub fn database_url(&self, database: &str) -> String {
        with_database(&self.settings.database.url, database)
    }

    /// What ingest reads of this test's environment.
    pub fn ingest_settings(&self) -> IngestSettings {
        IngestSettings::from_lookup(|var| self.variable(var))
            .unwrap_or_else(|error| panic!("test settings: {error}"))
    }

    /// What the processors read of this test's environment.
    pub fn processors_settings(&self) -> ProcessorsSettings {
        ProcessorsSettings::from_lookup(|var| self.variable(var))
            .unwrap_or_else(|error| panic!("test settings: {error}"))
    }

    /// What query-api reads of this test's environment.
    pub fn query_api_settings(&self) -> QueryApiSettings {
        QueryApiSettings::from_lookup(|var| self.variable(var))
            .unwrap_or_else(|error| panic!("test settings: {error}"))
    }

    /// This test's variable, or the process's (what `make test` evaluated).
    fn variable(&self, var: &str) -> Option<String> {
        self.env
            .get(var)
            .cloned()
            .or_else(|| std::env::var(var).ok())
    }

    /// Reads `count` records of `topic` from the beginning of every partition (without
    /// joining a group), or panics after `within`.
    pub async fn read_topic(
        &self,
        topic: &str,
        count: usize,
        within: std::time::Duration,
    ) -> Vec<TopicRecord> {
        use rdkafka::consumer::{Consumer, StreamConsumer};
        use rdkafka::message::Headers;
        use rdkafka::{Message, Offset, TopicPartitionList};
        let settings = &self.settings.kafka;
        let consumer: StreamConsumer = service_kit::kafka::consumer_config(
            settings,
            "test-reader",
            &format!("{}-reader", settings.consumer_group),
        )
        .create()
        .unwrap_or_else(|error| panic!("a reader of {topic}: {error}"));
        let mut partitions = TopicPartitionList::new();
        for partition in 0..TEST_PARTITIONS {
            partitions
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap_or_else(|error| panic!("assigning {topic}: {error}"));
        }
        consumer
            .assign(&partitions)
            .unwrap_or_else(|error| panic!("assigning {topic}: {error}"));
        let mut records = Vec::with_capacity(count);
        let deadline = tokio::time::Instant::now() + within;
        while records.len() < count {
            let message = tokio::time::timeout_at(deadline, consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} records on {topic}", records.len()))
                .unwrap_or_else(|error| panic!("reading {topic}: {error}"));
            records.push(TopicRecord {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|header| {
                                let value = header.value.unwrap_or_default();
                                (
                                    header.key.to_owned(),
                                    String::from_utf8_lossy(value).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        records
    }

    /// Drops the database, the topics and the Redis keys. Also done on drop; calling it
    /// explicitly surfaces errors.
    pub async fn cleanup(mut self) {
        self.dropped = true;
        cleanup(&self.admin_url, &self.database_name, &self.settings).await;
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let database_name = self.database_name.clone();
        let settings = self.settings.clone();
        // Drop cannot await; do it on a runtime of its own and wait, so nothing is left.
        let cleaner = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(cleanup(&admin_url, &database_name, &settings));
            }
        });
        let _ = cleaner.join();
    }
}

async fn cleanup(admin_url: &SecretString, database_name: &str, settings: &Settings) {
    if let Ok(mut admin) = PgConnection::connect(admin_url.expose_secret()).await {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{database_name}\" WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), delete_topics(settings)).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        crate::registry::delete_subjects(settings),
    )
    .await;
    if let Ok(redis) = service_kit::redis::Redis::new(&settings.redis) {
        let _ = tokio::time::timeout(Duration::from_secs(5), delete_prefix(&redis)).await;
    }
}

impl TestStack {
    /// Deletes every Redis key of this test (as if Redis had restarted empty).
    pub async fn delete_redis_keys(&self) {
        let redis = service_kit::redis::Redis::new(&self.settings.redis).unwrap();
        delete_prefix(&redis).await.unwrap();
    }
}

/// Deletes this test's topics (they carry its unique prefix), so a long-lived broker does
/// not gather thousands of them.
async fn delete_topics(settings: &Settings) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let Ok(admin) = service_kit::kafka::client_config(&settings.kafka)
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let topics = settings.topics();
    let names: Vec<String> = schemas::topics::ALL
        .iter()
        .map(|spec| topics.name(*spec))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
}

async fn delete_prefix(redis: &service_kit::redis::Redis) -> redis::RedisResult<()> {
    let mut connection = redis.connection().await?;
    let pattern = format!("{}*", redis.key_prefix());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut connection)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut connection)
            .await?;
    }
    Ok(())
}
