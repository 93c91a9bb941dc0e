//! Test support: every integration test gets its own database (created from the
//! migrations), its own topics (a unique prefix), consumer group and Redis key prefix, on
//! the stack started by `make up`. Tests never see each other's data and never skip: with
//! the stack missing they fail and say how to start it.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::settings::{Service, Settings};

/// Partitions per topic in tests: enough to exercise several, cheap for the broker.
pub const TEST_PARTITIONS: i32 = 3;

/// Names one Postgres database per schema version; built once, copied per test.
fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in schemas::migrations::MIGRATOR.iter() {
        for byte in migration.checksum.iter() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("bazaar_template_{hash:016x}")
}

fn stack_missing(what: &str, error: impl std::fmt::Display) -> ! {
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
            let variable = crate::environment::VARIABLES
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

/// A binary's command line keeps the conventions an operator relies on: `--help` and
/// `--version` answer and exit 0 (starting nothing), each subcommand has `--help`, and an
/// unknown argument is refused with exit code 2 and a message naming it.
pub fn check_command_line(binary: &str, subcommands: &[&str]) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(binary)
            .args(args)
            .env_clear()
            .output()
            .unwrap_or_else(|error| panic!("running {binary}: {error}"));
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, Some(0), "{binary} --help");
    assert!(help.contains("Usage:"), "{binary} --help: {help}");
    for subcommand in subcommands {
        assert!(
            help.contains(subcommand),
            "{binary} --help names {subcommand}: {help}"
        );
        let (code, sub_help, _) = run(&[subcommand, "--help"]);
        assert_eq!(code, Some(0), "{binary} {subcommand} --help");
        assert!(
            sub_help.contains("Usage:"),
            "{binary} {subcommand} --help: {sub_help}"
        );
    }
    let (code, version, _) = run(&["--version"]);
    assert_eq!(code, Some(0), "{binary} --version");
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "{binary} --version: {version}"
    );
    let (code, _, refusal) = run(&["--no-such-option"]);
    assert_eq!(code, Some(2), "{binary} --no-such-option: {refusal}");
    assert!(
        refusal.contains("unexpected argument '--no-such-option'"),
        "{binary} --no-such-option: {refusal}"
    );
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// An isolated slice of the local stack for one test.
#[derive(Debug)]
pub struct TestStack {
    /// Settings pointing at this test's database, topics, group and Redis prefix, with
    /// listen addresses on port 0.
    pub settings: Settings,
    pub pool: PgPool,
    pub database_name: String,
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

        if let Err(error) =
            crate::kafka::ensure_topics(&settings.kafka, &settings.topics(), Some(TEST_PARTITIONS))
                .await
        {
            stack_missing("Kafka", error);
        }

        Self {
            settings,
            pool,
            database_name,
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

    /// The same settings, for another service.
    pub fn settings_for(&self, service: Service) -> Settings {
        let mut settings = self.settings.clone();
        settings.service = service;
        settings
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
        use rdkafka::{Message, Offset, TopicPartitionList};
        let settings = &self.settings.kafka;
        let consumer: StreamConsumer = crate::kafka::consumer_config(
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
    if let Ok(redis) = crate::redis::Redis::new(&settings.redis) {
        let _ = tokio::time::timeout(Duration::from_secs(5), delete_prefix(&redis)).await;
    }
}

impl TestStack {
    /// Deletes every Redis key of this test (as if Redis had restarted empty).
    pub async fn delete_redis_keys(&self) {
        let redis = crate::redis::Redis::new(&self.settings.redis).unwrap();
        delete_prefix(&redis).await.unwrap();
    }
}

/// Deletes this test's topics (they carry its unique prefix), so a long-lived broker does
/// not gather thousands of them.
async fn delete_topics(settings: &Settings) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let Ok(admin) =
        crate::kafka::client_config(&settings.kafka).create::<AdminClient<DefaultClientContext>>()
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

async fn delete_prefix(redis: &crate::redis::Redis) -> redis::RedisResult<()> {
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

/// The admin URL pointed at another database.
fn with_database(admin_url: &SecretString, database: &str) -> String {
    let url = admin_url.expose_secret();
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let base = base.rsplit_once('/').map_or(base, |(head, _)| head);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// Waits (bounded) until the standby at `url` lets a client into its database.
async fn await_replica(url: &str) {
    let started = std::time::Instant::now();
    loop {
        match PgConnection::connect(url).await {
            Ok(connection) => {
                let _ = connection.close().await;
                return;
            }
            Err(error) if started.elapsed() > Duration::from_secs(30) => {
                panic!("the standby has not replayed the test's database in 30 s: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Creates `name` as a copy of the migrated template, building the template first if this
/// schema version has none. Test processes run in parallel, so both steps hold an
/// advisory lock.
async fn create_database(admin_url: &SecretString, name: &str) {
    let mut admin = PgConnection::connect(admin_url.expose_secret())
        .await
        .unwrap_or_else(|error| stack_missing("PostgreSQL", error));
    let template = template_name();
    sqlx::query("SELECT pg_advisory_lock(7212026)")
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("locking the test template: {error}"));

    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("looking for the test template: {error}"));
    if !exists {
        let building = format!("{template}_building");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("dropping a half-built template: {error}"));
        sqlx::query(&format!("CREATE DATABASE \"{building}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("creating the test template: {error}"));
        {
            let options: PgConnectOptions = with_database(admin_url, &building)
                .parse()
                .unwrap_or_else(|error| panic!("template URL: {error}"));
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap_or_else(|error| panic!("connecting to the test template: {error}"));
            schemas::migrations::migrate(&pool)
                .await
                .unwrap_or_else(|error| panic!("migrating the test template: {error}"));
            pool.close().await;
        }
        sqlx::query(&format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        ))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("publishing the test template: {error}"));
    }
    let created = sqlx::query(&format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    ))
    .execute(&mut admin)
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(7212026)")
        .execute(&mut admin)
        .await;
    created.unwrap_or_else(|error| panic!("creating the test database: {error}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_repointed_at_another_database() {
        let url = SecretString::from("postgres://u:p@127.0.0.1:15432/bazaar?sslmode=disable");
        assert_eq!(
            with_database(&url, "t1"),
            "postgres://u:p@127.0.0.1:15432/t1?sslmode=disable"
        );
        let url = SecretString::from("postgres://u:p@127.0.0.1:15432/bazaar");
        assert_eq!(
            with_database(&url, "t1"),
            "postgres://u:p@127.0.0.1:15432/t1"
        );
    }
}

/// An Apache Kafka cluster of a test's own, started by `deploy/local/kafka.sh` (the script
/// `make up` uses) on a loopback address no other test uses, so that the test may kill
/// and restart its brokers. Stopped and deleted on drop.
#[derive(Debug)]
pub struct KafkaCluster {
    pub nodes: usize,
    host: String,
    dir: std::path::PathBuf,
}

impl KafkaCluster {
    const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/kafka.sh");
    const PORT: u16 = 9092;

    /// Formats and starts `nodes` (1 or 3) combined broker/controller nodes; returns when
    /// every one serves.
    pub fn start(nodes: usize) -> Self {
        let id = Uuid::new_v4();
        let bytes = id.as_bytes();
        // 127.x.y.1: the whole of 127.0.0.0/8 is loopback; x and y keep clusters apart.
        let host = format!("127.{}.{}.1", 1 + bytes[0] % 250, 1 + bytes[1] % 250);
        let dir = std::env::temp_dir().join(format!("bazaar-kafka-{}", id.simple()));
        let cluster = Self { nodes, host, dir };
        cluster.script(&["up"]);
        cluster
    }

    fn script(&self, args: &[&str]) {
        let output = std::process::Command::new("bash")
            .arg(Self::SCRIPT)
            .args(args)
            .env("KAFKA_DIR", &self.dir)
            .env("KAFKA_NODES", self.nodes.to_string())
            .env("KAFKA_HOST", &self.host)
            .env("KAFKA_PORT", Self::PORT.to_string())
            .env("KAFKA_HEAP", "-Xms128m -Xmx384m")
            .output()
            .unwrap_or_else(|error| panic!("running kafka.sh: {error}"));
        assert!(
            output.status.success(),
            "kafka.sh {args:?} failed (is Java 17 there? `make up` installs it): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Every node's client address, as `host:port,…`.
    pub fn bootstrap(&self) -> String {
        (1..=self.nodes)
            .map(|node| self.address(node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `node`'s client address (nodes count from 1).
    pub fn address(&self, node: usize) -> String {
        let port = usize::from(Self::PORT) + 2 * (node - 1);
        format!("{}:{port}", self.host)
    }

    /// SIGKILL: the node is gone at once, nothing flushed, no controlled shutdown.
    pub fn kill(&self, node: usize) {
        self.script(&["kill", &node.to_string()]);
    }

    /// Starts a killed node again and waits until it serves.
    pub fn restart(&self, node: usize) {
        self.script(&["start", &node.to_string()]);
    }

    /// The node leading the most partitions of `topic`, by the cluster's metadata.
    pub fn busiest_leader(&self, topic: &str) -> usize {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap_or_else(|error| panic!("a metadata client: {error}"));
        let metadata = client
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap_or_else(|error| panic!("metadata of {topic}: {error}"));
        let mut led: HashMap<usize, usize> = HashMap::new();
        for partition in metadata
            .topics()
            .iter()
            .flat_map(|topic| topic.partitions())
        {
            if let Ok(leader) = usize::try_from(partition.leader()) {
                *led.entry(leader).or_default() += 1;
            }
        }
        led.into_iter()
            .max_by_key(|(node, count)| (*count, std::cmp::Reverse(*node)))
            .map_or(1, |(node, _)| node)
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for node in 1..=self.nodes {
            let _ = std::process::Command::new("bash")
                .arg(Self::SCRIPT)
                .args(["kill", &node.to_string()])
                .env("KAFKA_DIR", &self.dir)
                .env("KAFKA_NODES", self.nodes.to_string())
                .env("KAFKA_HOST", &self.host)
                .env("KAFKA_PORT", Self::PORT.to_string())
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A service binary started as a child process, as `make up` starts it.
#[derive(Debug)]
pub struct ChildService {
    child: std::process::Child,
    pub port: u16,
}

impl ChildService {
    /// Starts `binary` with the test's environment and waits (bounded) until it logs the
    /// address it listens on.
    pub fn start(binary: &str, stack: &TestStack) -> Self {
        Self::start_with(binary, stack, &[])
    }

    /// [`ChildService::start`] with more environment variables.
    pub fn start_with(binary: &str, stack: &TestStack, extra: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let mut child = Command::new(binary)
            .envs(stack.env())
            .envs(extra.iter().copied())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {binary}: {error}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{binary} has no stdout"));
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                // Warnings and errors go with the test's output (shown when it fails).
                if event["level"] == "WARN" || event["level"] == "ERROR" {
                    eprintln!("{line}");
                }
                if event["message"] == "Listening." {
                    let port = event["address"]
                        .as_str()
                        .and_then(|address| address.rsplit(':').next())
                        .and_then(|port| port.parse::<u16>().ok());
                    let _ = sender.send(port);
                }
            }
        });
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => Self { child, port },
            other => {
                let _ = child.kill();
                panic!("{binary} did not report its address: {other:?}")
            }
        }
    }

    /// SIGKILL: no graceful path at all.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(
            sent.is_ok_and(|status| status.success()),
            "kill -TERM {pid} failed"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process {pid} did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks the operational routes of a running service: `/healthz` 200, `/readyz` 200
/// with every dependency ok, `/metrics` in Prometheus text format.
pub async fn assert_operational(port: u16, service: &str) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|error| panic!("HTTP client: {error}"));
    let base = format!("http://127.0.0.1:{port}");

    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz: {e}"));
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health
        .json()
        .await
        .unwrap_or_else(|e| panic!("/healthz body: {e}"));
    assert_eq!(body["service"], service);

    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/readyz: {e}"));
    let status = ready.status();
    let body: serde_json::Value = ready
        .json()
        .await
        .unwrap_or_else(|e| panic!("/readyz body: {e}"));
    assert_eq!(status, 200, "/readyz: {body}");
    for (dependency, state) in body["checks"].as_object().into_iter().flatten() {
        assert_eq!(state, "ok", "{dependency} is not ok: {body}");
    }

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    assert_eq!(metrics.status(), 200);
    let text = metrics
        .text()
        .await
        .unwrap_or_else(|e| panic!("/metrics body: {e}"));
    assert!(text.contains("http_server_requests_total"), "{text}");
    assert!(text.contains(&format!("service=\"{service}\"")), "{text}");

    let api = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/openapi.json: {e}"));
    assert_eq!(api.status(), 200);
    let api: serde_json::Value = api
        .json()
        .await
        .unwrap_or_else(|e| panic!("/openapi.json body: {e}"));
    assert_eq!(api["info"]["title"], format!("Bazaar {service}"));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            api["paths"][path]["get"].is_object(),
            "{path} is documented: {api}"
        );
    }
}

/// Runs a service in the background until the returned sender is used or dropped:
/// `let stop = background(|stopped| app.run_until_stopped(stopped));`
pub fn background<F, Fut>(run: F) -> tokio::sync::oneshot::Sender<()>
where
    F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(Box::pin(async move {
        let _ = stopped.await;
    })));
    stop
}

/// The operational tests every service binary must pass, against the real stack:
/// in-process on port 0 it serves health, readiness and metrics and stops when asked;
/// as a process it stops cleanly on SIGTERM.
#[macro_export]
macro_rules! operational_tests {
    ($app:ty, $service:expr, $binary:expr) => {
        #[tokio::test]
        async fn serves_health_readiness_and_metrics_and_stops_when_asked() {
            let stack = $crate::testing::TestStack::start().await;
            let app = <$app>::build(stack.settings_for($service)).await.unwrap();
            let port = app.port();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(app.run_until_stopped(async move {
                let _ = stopped.await;
            }));
            $crate::testing::assert_operational(port, $service.name()).await;
            stop.send(()).unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(30), server)
                .await
                .expect("the service stops within 30 s")
                .unwrap()
                .unwrap();
            assert!(
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_err(),
                "the port is released after shutdown"
            );
        }

        #[test]
        fn the_binary_is_production_unless_told_and_has_no_signing_key_of_its_own() {
            let key = ("JWT_SECRET", "a-test-only-secret-of-at-least-32-bytes");
            let production = $crate::testing::refused_start($binary, &[key]);
            assert!(
                production.contains("production") && production.contains("DATABASE_URL"),
                "{production}"
            );
            if $service != $crate::Service::Processors {
                let keyless =
                    $crate::testing::refused_start($binary, &[("BAZAAR_ENV", "development")]);
                assert!(keyless.contains("JWT_SECRET"), "{keyless}");
            }
        }

        #[tokio::test]
        async fn the_binary_exits_cleanly_on_sigterm() {
            let stack = $crate::testing::TestStack::start().await;
            let child = $crate::testing::ChildService::start($binary, &stack);
            $crate::testing::assert_operational(child.port, $service.name()).await;
            let status = child.terminate();
            assert!(status.success(), "exit status after SIGTERM: {status}");
        }
    };
}

/// Runs `binary` with nothing in its environment but `env` and returns what it printed,
/// panicking unless it refuses to start (exits unsuccessfully within 10 s).
pub fn refused_start(binary: &str, env: &[(&str, &str)]) -> String {
    use std::io::Read;
    let mut child = std::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{binary}: {error}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{binary} started with {env:?}: it should have refused");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut printed = String::new();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        let _ = stream.read_to_string(&mut printed);
    }
    assert!(
        !status.success(),
        "{binary} exited 0 with {env:?}: {printed}"
    );
    printed
}

/// Checks an OpenAPI document: it parses as OpenAPI 3.1 (`oas3`), every `$ref` points at
/// something in the document, and every operation answers something. Panics naming the
/// fault.
pub fn assert_valid_openapi(text: &str) {
    if let Err(error) = oas3::from_json(text) {
        panic!("the OpenAPI document does not parse as OpenAPI 3.1: {error}");
    }
    let document: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON: {error}"));
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    for reference in references {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference} points outside the document"));
        assert!(
            document.pointer(pointer).is_some(),
            "{reference} points at nothing"
        );
    }
    let paths = document["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("the document has no paths"));
    for (path, item) in paths {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let responses = operation["responses"].as_object();
            assert!(
                responses.is_some_and(|responses| !responses.is_empty()),
                "{method} {path} describes no response"
            );
        }
    }
}

fn collect_references(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(reference)) = map.get("$ref") {
                into.push(reference.clone());
            }
            map.values()
                .for_each(|value| collect_references(value, into));
        }
        serde_json::Value::Array(items) => items
            .iter()
            .for_each(|value| collect_references(value, into)),
        _ => {}
    }
}
