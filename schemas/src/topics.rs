//! Topic names, their layout, and record keys: defined here once.

use std::time::Duration;

use crate::events::{
    BALANCE_SCHEMA, LEDGER_ENTRY_HISTORY, LEDGER_ENTRY_SCHEMA, STOCK_ALERT_HISTORY,
    STOCK_ALERT_SCHEMA, STOCK_MOVEMENT_HISTORY, STOCK_MOVEMENT_SCHEMA,
};
use crate::ids::{ProductId, StoreId};

/// One topic of the pipeline and how it is laid out: the declaration the topic command
/// (`bazaar-topics`) creates and checks a cluster against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    /// Default partition count; movements' partitions are the unit of parallelism.
    pub partitions: i32,
    /// `cleanup.policy=compact`: only the latest record per key is kept.
    pub compacted: bool,
    /// `retention.ms`: how long records are kept (`None`: forever, for compacted topics).
    pub retention: Option<Duration>,
    /// The Avro schema of its values, registered in the schema registry under
    /// `<topic>-value` (`None`: the dead-letter topic keeps the bytes it was given).
    pub value: Option<ValueSchema>,
}

/// A topic's value schema: every version this build knows, as `avro/*.avsc` hold them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSchema {
    /// The versions before the current one, oldest first (`avro/history`).
    pub earlier: &'static [&'static str],
    /// The version this build writes.
    pub current: &'static str,
}

impl ValueSchema {
    /// Oldest first, the current one last: the order they are registered in.
    pub fn versions(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.earlier.iter().copied().chain([self.current])
    }
}

impl TopicSpec {
    /// `cleanup.policy` as Kafka spells it.
    pub const fn cleanup_policy(&self) -> &'static str {
        if self.compacted { "compact" } else { "delete" }
    }

    /// `retention.ms` as Kafka spells it (`-1`: forever).
    pub fn retention_ms(&self) -> String {
        self.retention
            .map_or_else(|| "-1".to_owned(), |keep| keep.as_millis().to_string())
    }
}

/// `min.insync.replicas` for a topic replicated `replication_factor` times: an
/// acknowledged write survives the loss of any one broker (two in-sync copies of three),
/// while one broker down still accepts writes.
pub const fn min_insync_replicas(replication_factor: i32) -> i32 {
    if replication_factor >= 3 { 2 } else { 1 }
}

pub const MOVEMENTS: TopicSpec = TopicSpec {
    name: "inventory.movements.v1",
    partitions: 12,
    compacted: false,
    // A processor down for a long weekend still finds its input.
    retention: Some(Duration::from_secs(7 * 86_400)),
    value: Some(ValueSchema {
        earlier: STOCK_MOVEMENT_HISTORY,
        current: STOCK_MOVEMENT_SCHEMA,
    }),
};
pub const LEDGER: TopicSpec = TopicSpec {
    name: "inventory.ledger.v1",
    partitions: 12,
    compacted: false,
    // Analytics reload a month; Postgres keeps the whole ledger.
    retention: Some(Duration::from_secs(30 * 86_400)),
    value: Some(ValueSchema {
        earlier: LEDGER_ENTRY_HISTORY,
        current: LEDGER_ENTRY_SCHEMA,
    }),
};
pub const BALANCES: TopicSpec = TopicSpec {
    name: "inventory.balances.v1",
    partitions: 12,
    compacted: true,
    retention: None,
    value: Some(ValueSchema {
        earlier: &[],
        current: BALANCE_SCHEMA,
    }),
};
pub const ALERTS: TopicSpec = TopicSpec {
    name: "inventory.alerts.v1",
    partitions: 3,
    compacted: false,
    retention: Some(Duration::from_secs(7 * 86_400)),
    value: Some(ValueSchema {
        earlier: STOCK_ALERT_HISTORY,
        current: STOCK_ALERT_SCHEMA,
    }),
};
pub const MOVEMENTS_DLQ: TopicSpec = TopicSpec {
    name: "inventory.movements.dlq.v1",
    partitions: 3,
    compacted: false,
    // Operators need time to look at what was refused.
    retention: Some(Duration::from_secs(30 * 86_400)),
    value: None,
};

/// Every topic of the pipeline.
pub const ALL: [TopicSpec; 5] = [MOVEMENTS, LEDGER, BALANCES, ALERTS, MOVEMENTS_DLQ];

/// The topic names in use, under an optional prefix (tests use a unique prefix each, so
/// they never see each other's records).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn name(&self, spec: TopicSpec) -> String {
        format!("{}{}", self.prefix, spec.name)
    }

    pub fn movements(&self) -> String {
        self.name(MOVEMENTS)
    }
    pub fn ledger(&self) -> String {
        self.name(LEDGER)
    }
    pub fn balances(&self) -> String {
        self.name(BALANCES)
    }
    pub fn alerts(&self) -> String {
        self.name(ALERTS)
    }
    pub fn movements_dlq(&self) -> String {
        self.name(MOVEMENTS_DLQ)
    }

    /// The schema registry's subject of `spec`'s values (the topic-name strategy:
    /// `<topic>-value`), what every Confluent-format client looks its schema up by.
    pub fn value_subject(&self, spec: TopicSpec) -> String {
        format!("{}-value", self.name(spec))
    }
}

/// Key of movements, ledger entries and alerts: the store id in decimal UTF-8, so every
/// Kafka client hashes it to the same partition and tools show it readably.
pub fn store_key(store_id: StoreId) -> String {
    store_id.to_string()
}

/// The partition a store's records land on among `partitions`: Kafka's Java partitioner
/// (`toPositive(murmur2(key)) % partitions`) over [`store_key`], which ingest's producer
/// uses too (`murmur2_random`), as does every Kafka client by default.
pub fn store_partition(store_id: StoreId, partitions: u32) -> i32 {
    ((murmur2(store_key(store_id).as_bytes()) & 0x7fff_ffff) % partitions.max(1)) as i32
}

/// Kafka's `Utils.murmur2`.
fn murmur2(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut hash: u32 = 0x9747_b28c ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (index, byte) in rest.iter().enumerate().rev() {
            hash ^= u32::from(*byte) << (8 * index);
        }
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash
}

/// Key of the compacted balances topic: `"{store_id}:{product_id}"`.
pub fn balance_key(store_id: StoreId, product_id: ProductId) -> String {
    format!("{store_id}:{product_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // Kafka's own UtilsTest vectors (Java ints).
        for (key, java) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()) as i32, java, "{key}");
        }
    }

    #[test]
    fn topic_names_carry_the_prefix() {
        let topics = Topics::new("test-1.");
        assert_eq!(topics.movements(), "test-1.inventory.movements.v1");
        assert_eq!(Topics::default().balances(), "inventory.balances.v1");
    }

    #[test]
    fn topics_are_declared_with_kafka_spelled_configs() {
        assert_eq!(MOVEMENTS.cleanup_policy(), "delete");
        assert_eq!(MOVEMENTS.retention_ms(), "604800000");
        assert_eq!(BALANCES.cleanup_policy(), "compact");
        assert_eq!(BALANCES.retention_ms(), "-1");
        assert_eq!(min_insync_replicas(1), 1);
        assert_eq!(min_insync_replicas(3), 2);
    }

    #[test]
    fn keys_are_readable_decimal_text() {
        assert_eq!(store_key(StoreId(42)), "42");
        assert_eq!(balance_key(StoreId(42), ProductId(7)), "42:7");
    }
}
