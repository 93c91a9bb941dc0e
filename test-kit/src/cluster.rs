//! A Kafka cluster of a test's own, whose brokers it may kill and restart.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

/// An Apache Kafka cluster of a test's own, started by `deploy/local/kafka.sh` (the script
/// `make up` uses) on a loopback address no other test uses, so that the test may kill
/// and restart its brokers. Stopped and deleted on drop (kept with `KAFKA_KEEP_DIR=1`).
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
            .env("KAFKA_JVM_OPTS", TEST_JVM_OPTS)
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

/// A test's brokers live a few minutes: they compile with C1 only. The C2 compiler's warm-up
/// cost the broker-loss test (alone) a quarter of its CPU — 297 CPU-s against 219, 167 s
/// against 131. (Not the stacks' brokers, which serve every test: C1-only, the whole suite
/// took more CPU, 699 CPU-s against ~640.)
const TEST_JVM_OPTS: &str = "-XX:TieredStopAtLevel=1";

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
        // `KAFKA_KEEP_DIR=1` keeps the brokers' logs to read what they did.
        if std::env::var_os("KAFKA_KEEP_DIR").is_some() {
            eprintln!("the cluster's directory is kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
