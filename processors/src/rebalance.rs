//! Rebalances: the partitions the group gives and takes. Inside `poll` (on the processing
//! thread), an assignment reads each partition's next offset from Postgres — the only place
//! the ledger's offsets are kept — and starts the partition there, and reads how far its
//! outputs are published from the group's offsets in Kafka (`publish`); the change is handed to the loop,
//! which applies it between batches. librdkafka's statistics bring the partitions' high
//! watermarks on the way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::consumer::Processor;
use crate::ledger::{self, Stored};

/// What a rebalance changed, for the loop to apply between batches.
#[derive(Debug)]
pub(crate) enum Assignment {
    /// Partitions now ours: the next offset stored in Postgres, and how far the output
    /// topics are published (the group's offset committed in Kafka).
    Assigned(HashMap<i32, Stored>),
    Revoked(Vec<i32>),
}

/// Reads the stored offsets when partitions are assigned (inside `poll`, on the
/// processing thread) and hands the change to the loop; keeps the partitions' high
/// watermarks from librdkafka's statistics.
pub(crate) struct RebalanceContext {
    pub(crate) pool: PgPool,
    pub(crate) runtime: Handle,
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) changes: Mutex<Vec<Assignment>>,
    /// The input partitions' high watermarks, as the broker's fetch responses last told.
    pub(crate) high_watermarks: Mutex<HashMap<i32, i64>>,
    pub(crate) shutdown: CancellationToken,
    /// How long reading the published offsets may wait for pending transactions.
    pub(crate) published_wait: Duration,
}

impl ClientContext for RebalanceContext {
    /// Every `STATISTICS_INTERVAL`, during `poll`: the high watermarks every fetch response
    /// carries, so measuring lag costs no broker round trip.
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut high = self
            .high_watermarks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (partition, stats) in &topic.partitions {
            // -1 is librdkafka's "not known yet" (and the internal UA partition is -1).
            if *partition >= 0 && stats.hi_offset >= 0 {
                high.insert(*partition, stats.hi_offset);
            }
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let partitions = self.partitions_in(list);
                let mut offsets = self.stored_offsets(&partitions);
                for mut element in list.elements() {
                    if let Some(stored) = offsets.get(&element.partition())
                        && let Err(error) = element.set_offset(Offset::Offset(stored.next))
                    {
                        tracing::error!(%error, "Setting a start offset failed.");
                    }
                }
                for (partition, published) in self.published(consumer, &partitions) {
                    if let Some(stored) = offsets.get_mut(&partition) {
                        stored.published = published;
                    }
                }
                tracing::info!(
                    ?offsets,
                    "Partitions assigned; starting at the offsets stored in Postgres."
                );
                self.push(Assignment::Assigned(offsets));
            }
            Rebalance::Revoke(list) => {
                let partitions = self.partitions_in(list);
                tracing::info!(?partitions, "Partitions revoked.");
                self.push(Assignment::Revoked(partitions));
            }
            Rebalance::Error(error) => tracing::warn!(%error, "Rebalance error."),
        }
    }
}

impl RebalanceContext {
    fn push(&self, change: Assignment) {
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(change);
    }

    /// The input topic's partitions in a rebalance's list.
    fn partitions_in(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements_for_topic(&self.topic)
            .iter()
            .map(|element| element.partition())
            .collect()
    }

    pub(crate) fn take(&self) -> Vec<Assignment> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How far the output topics are published: the group's offsets committed in Kafka,
    /// with the output transactions. Kafka answers once no transaction of these partitions
    /// is pending (`require_stable`, from `isolation.level=read_committed`), so this may
    /// wait for a dead owner's transaction to time out. A partition Kafka has no offset
    /// for (a new group, offsets expired) is left out: Postgres's record of it stands.
    fn published(&self, consumer: &BaseConsumer<Self>, partitions: &[i32]) -> Vec<(i32, i64)> {
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            list.add_partition(&self.topic, *partition);
        }
        let mut wait = Duration::from_millis(100);
        loop {
            match consumer.committed_offsets(list.clone(), self.published_wait) {
                Ok(committed) => {
                    return committed
                        .elements_for_topic(&self.topic)
                        .iter()
                        .filter_map(|element| match element.offset() {
                            Offset::Offset(offset) => Some((element.partition(), offset)),
                            _ => None,
                        })
                        .collect();
                }
                Err(error) if !self.shutdown.is_cancelled() => {
                    tracing::warn!(%error, "Reading the group's committed offsets failed; retrying.");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(_) => return Vec::new(),
            }
        }
    }

    /// Postgres is the only place the ledger's offsets are kept; without it the processor
    /// cannot start a partition, so it waits (until shutdown).
    pub(crate) fn stored_offsets(&self, partitions: &[i32]) -> HashMap<i32, Stored> {
        let mut wait = Duration::from_millis(100);
        loop {
            let claim = ledger::stored_offsets(&self.pool, &self.group, &self.topic, partitions);
            match self.runtime.block_on(claim) {
                Ok(offsets) => return offsets,
                Err(error) if !self.shutdown.is_cancelled() => {
                    tracing::warn!(%error, "Reading the stored offsets failed; retrying.");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(_) => return HashMap::new(),
            }
        }
    }
}

/// The processors' consumer.
pub(crate) type Kafka = BaseConsumer<RebalanceContext>;

/// How often librdkafka reports its statistics (the high watermarks lag is measured from)
/// and the lag gauges are set.
pub(crate) const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);

impl Processor {
    /// The group's consumer, subscribed to the input topic, its rebalances handled here.
    pub(crate) fn consumer(&self) -> anyhow::Result<Arc<Kafka>> {
        let context = RebalanceContext {
            pool: self.pool.clone(),
            runtime: self.runtime.clone(),
            group: self.group().to_owned(),
            topic: self.topic.clone(),
            changes: Mutex::new(Vec::new()),
            high_watermarks: Mutex::new(HashMap::new()),
            shutdown: self.shutdown.clone(),
            published_wait: self.processing.transaction_timeout * 3,
        };
        let mut config =
            service_kit::kafka::consumer_config(&self.settings.kafka, "processors", self.group());
        config
            // Members join and leave without revoking everyone's partitions: only the
            // partitions that move stop, for as long as their hand-over takes.
            .set("partition.assignment.strategy", "cooperative-sticky")
            // Every start position comes from Postgres; one Kafka no longer has is an
            // error to halt on (`halts`), never a jump Kafka decides for us.
            .set("auto.offset.reset", "error");
        // A short wait: latency, not fetch size, matters.
        config.set(
            "fetch.wait.max.ms",
            self.processing.fetch_wait.as_millis().to_string(),
        );
        config.set(
            "statistics.interval.ms",
            STATISTICS_INTERVAL.as_millis().to_string(),
        );
        let consumer: Kafka = config.create_with_context(context)?;
        consumer.subscribe(&[&self.topic])?;
        Ok(Arc::new(consumer))
    }
}
