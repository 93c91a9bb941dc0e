//! Partitions the processor will not move on its own. When the position stored in
//! Postgres is one Kafka no longer has — retention removed records nobody processed, or
//! the topic was recreated behind the ledger's back — jumping to the earliest or latest
//! record would silently drop or replay movements. The consumer runs with
//! `auto.offset.reset=error`, so Kafka tells instead of deciding; the partition is
//! paused and named in the log, in `bazaar_processor_partition_halted` and in `/readyz`,
//! and the other partitions go on. An operator decides (docs/operations.md, "A halted partition").

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::Consumer;

use crate::metrics::ProcessorMetrics;
use crate::rebalance::Kafka;

/// Why a partition stopped: its position against what the broker still has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Halt {
    pub position: i64,
    /// The earliest offset the broker has (the log start).
    pub earliest: i64,
    /// The offset the next record will get (the high watermark).
    pub next: i64,
}

impl Halt {
    /// A position outside `[earliest, next]` cannot be fetched.
    pub fn of(position: i64, earliest: i64, next: i64) -> Option<Self> {
        (position < earliest || position > next).then_some(Self {
            position,
            earliest,
            next,
        })
    }

    pub fn describe(&self, partition: i32) -> String {
        if self.position < self.earliest {
            format!(
                "partition {partition}: the stored position {} is gone (the broker keeps offsets \
                 {} to {}); {} movements were removed before they were processed",
                self.position,
                self.earliest,
                self.next,
                self.earliest - self.position
            )
        } else {
            format!(
                "partition {partition}: the stored position {} is past the end of the log ({}); \
                 was the topic recreated?",
                self.position, self.next
            )
        }
    }
}

/// The halted partitions, shared by the processing loop and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Halts(Arc<Mutex<BTreeMap<i32, Halt>>>);

impl Halts {
    pub fn insert(&self, partition: i32, halt: Halt) {
        self.lock().insert(partition, halt);
    }

    /// The partitions are no longer this processor's (revoked, or read again).
    pub fn clear(&self, partitions: &[i32]) {
        let mut halted = self.lock();
        for partition in partitions {
            halted.remove(partition);
        }
    }

    /// [`Halts::clear`], and the partitions' gauges back to 0.
    pub(crate) fn release(&self, partitions: &[i32], metrics: &ProcessorMetrics) {
        self.clear(partitions);
        for partition in partitions {
            metrics
                .partition_halted
                .with_label_values(&[&partition.to_string()])
                .set(0);
        }
    }

    /// Kafka refused a position: asks the broker for the bounds of every owned partition
    /// not halted yet, and pauses each whose position lies outside them.
    pub(crate) fn halt_out_of_range(
        &self,
        consumer: &Kafka,
        topic: &str,
        positions: &HashMap<i32, i64>,
        metrics: &ProcessorMetrics,
    ) {
        for (&partition, &position) in positions {
            if self.contains(partition) {
                continue;
            }
            let (earliest, next) =
                match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
                    Ok(bounds) => bounds,
                    Err(error) => {
                        tracing::warn!(%error, partition, "Reading a partition's bounds failed.");
                        continue;
                    }
                };
            let Some(halt) = Halt::of(position, earliest, next) else {
                continue;
            };
            let mut paused = TopicPartitionList::new();
            paused.add_partition(topic, partition);
            if let Err(error) = consumer.pause(&paused) {
                tracing::warn!(%error, partition, "Pausing a partition failed.");
            }
            self.insert(partition, halt);
            metrics
                .partition_halted
                .with_label_values(&[&partition.to_string()])
                .set(1);
            tracing::error!(
                partition,
                position,
                earliest,
                next,
                "Halted {}. Its movements wait until an operator moves the stored position \
                 (docs/operations.md, \"A halted partition\"); the other partitions go on.",
                halt.describe(partition)
            );
        }
    }

    pub fn contains(&self, partition: i32) -> bool {
        self.lock().contains_key(&partition)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Halt>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A readiness check: degraded while any partition is halted, naming each.
    pub fn readiness_check(
        &self,
    ) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
        let halts = self.clone();
        move || {
            let halted = halts.lock().clone();
            async move {
                if halted.is_empty() {
                    return Ok(());
                }
                let described: Vec<String> = halted
                    .iter()
                    .map(|(partition, halt)| halt.describe(*partition))
                    .collect();
                Err(format!("halted {}", described.join("; ")))
            }
            .boxed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_position_outside_the_log_halts() {
        assert_eq!(Halt::of(10, 0, 20), None);
        assert_eq!(Halt::of(0, 0, 0), None, "an empty partition at its start");
        assert_eq!(Halt::of(20, 0, 20), None, "caught up");
        let gone = Halt::of(3, 8, 20).unwrap();
        assert!(
            gone.describe(4).contains("5 movements were removed"),
            "{}",
            gone.describe(4)
        );
        assert!(
            Halt::of(25, 0, 20)
                .unwrap()
                .describe(1)
                .contains("past the end")
        );
    }
}
