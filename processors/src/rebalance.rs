//! Rebalances: the partitions the group gives and takes. Inside `poll` (on the processing
//! thread), an assignment reads each partition's next offset from Postgres — the only place
//! offsets are kept — and starts the partition there; the change is handed to the loop,
//! which applies it between batches. librdkafka's statistics bring the partitions' high
//! watermarks on the way.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::ledger;

/// What a rebalance changed, for the loop to apply between batches.
#[derive(Debug)]
pub(crate) enum Assignment {
    /// Partitions now ours, with the next offsets stored in Postgres.
    Assigned(HashMap<i32, i64>),
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
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let partitions = self.partitions_in(list);
                let offsets = self.stored_offsets(&partitions);
                for mut element in list.elements() {
                    if let Some(offset) = offsets.get(&element.partition())
                        && let Err(error) = element.set_offset(Offset::Offset(*offset))
                    {
                        tracing::error!(%error, "Setting a start offset failed.");
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

    /// Postgres is the only place offsets are kept; without it the processor cannot
    /// start a partition, so it waits (until shutdown).
    pub(crate) fn stored_offsets(&self, partitions: &[i32]) -> HashMap<i32, i64> {
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
