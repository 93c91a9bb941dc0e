//! Is the group processing every partition? The processors' own lag only covers the
//! partitions they fetch: a partition nobody owns looks caught up. So every few seconds
//! each processor compares the end of every partition of the input topic (asked of the
//! broker) with the offsets the group committed in Postgres, exports that as
//! `bazaar_processor_group_lag{partition}`, and notes partitions whose committed offset has
//! not moved for `STALL` while they have lag. A processor that owns no partition while one
//! is stalled is not ready: the group has work it is not doing (a member that never got
//! its partitions back after a rebalance, say).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::ProcessorMetrics;

/// How often the group's lag is measured.
const EVERY: Duration = Duration::from_secs(5);

/// How long a partition with lag may keep its committed offset before it counts as stalled.
pub const STALL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Seen {
    /// The partitions this processor owns now.
    owned: BTreeSet<i32>,
    /// Per partition: the committed offset, since when it has been that, and the lag then.
    committed: BTreeMap<i32, (i64, Instant, i64)>,
}

/// What this processor knows of its group, shared by the processing loop, the measuring
/// task and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Liveness(Arc<Mutex<Seen>>);

impl Liveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The processing loop tells which partitions it owns.
    pub fn owned(&self, partitions: impl Iterator<Item = i32>) {
        self.lock().owned = partitions.collect();
    }

    /// Partitions with lag whose committed offset has not moved for `STALL`.
    pub fn stalled(&self, now: Instant) -> Vec<i32> {
        self.lock()
            .committed
            .iter()
            .filter(|(_, (_, since, lag))| *lag > 0 && now.duration_since(*since) >= STALL)
            .map(|(partition, _)| *partition)
            .collect()
    }

    fn observe(&self, partition: i32, committed: i64, lag: i64, now: Instant) {
        let mut seen = self.lock();
        let entry = seen
            .committed
            .entry(partition)
            .or_insert((committed, now, lag));
        if entry.0 != committed {
            *entry = (committed, now, lag);
        } else {
            entry.2 = lag;
        }
    }

    /// Required for readiness: owning nothing while the group has stalled partitions.
    pub fn readiness_check(
        &self,
    ) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
        let liveness = self.clone();
        move || {
            let idle = liveness.lock().owned.is_empty();
            let stalled = liveness.stalled(Instant::now());
            async move {
                if idle && !stalled.is_empty() {
                    Err(format!(
                        "this processor owns no partition while partitions {stalled:?} have lag \
                         and have not moved for {} s",
                        STALL.as_secs()
                    ))
                } else {
                    Ok(())
                }
            }
            .boxed()
        }
    }
}

/// What measuring the group's lag needs.
pub struct GroupWatch {
    pub liveness: Liveness,
    /// A client that never joins the group: it only asks for the ends of the partitions.
    pub reader: BaseConsumer,
    pub pool: PgPool,
    pub group: String,
    pub topic: String,
    pub metrics: ProcessorMetrics,
}

impl std::fmt::Debug for GroupWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWatch")
            .field("group", &self.group)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl GroupWatch {
    /// Measures the group's lag every `EVERY` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let reader = Arc::new(self.reader);
        let mut every = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let ends = {
                let (reader, topic) = (reader.clone(), self.topic.clone());
                tokio::task::spawn_blocking(move || ends(&reader, &topic)).await
            };
            let ends = match ends {
                Ok(Ok(ends)) => ends,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "Reading the ends of the partitions failed.");
                    continue;
                }
                Err(_) => continue,
            };
            let committed: HashMap<i32, i64> = match sqlx::query_as::<_, (i32, i64)>(
                "SELECT partition, next_offset FROM processor_offsets \
                 WHERE consumer_group = $1 AND topic = $2",
            )
            .bind(&self.group)
            .bind(&self.topic)
            .fetch_all(&self.pool)
            .await
            {
                Ok(rows) => rows.into_iter().collect(),
                Err(error) => {
                    tracing::debug!(%error, "Reading the group's offsets failed.");
                    continue;
                }
            };
            let now = Instant::now();
            for (partition, (low, high)) in ends {
                // A partition never claimed starts at the earliest record Kafka has.
                let position = committed.get(&partition).copied().unwrap_or(low);
                let lag = (high - position).max(0);
                self.metrics
                    .group_lag
                    .with_label_values(&[&partition.to_string()])
                    .set(lag);
                self.liveness.observe(partition, position, lag, now);
            }
        }
    }
}

/// A partition's earliest offset and the offset its next record will get.
type Bounds = (i64, i64);

/// The bounds of every partition of `topic`.
fn ends(
    reader: &BaseConsumer,
    topic: &str,
) -> Result<Vec<(i32, Bounds)>, rdkafka::error::KafkaError> {
    let metadata = reader.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|topic| topic.partitions().iter().map(|partition| partition.id()))
        .collect();
    partitions
        .into_iter()
        .map(|partition| {
            let bounds = reader.fetch_watermarks(topic, partition, Duration::from_secs(5))?;
            Ok((partition, bounds))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_with_lag_that_does_not_move_is_stalled_and_an_idle_member_unready() {
        let liveness = Liveness::default();
        let start = Instant::now();
        liveness.observe(0, 10, 5, start);
        liveness.observe(1, 10, 0, start);
        liveness.observe(2, 10, 5, start);
        liveness.observe(2, 12, 3, start + Duration::from_secs(20));
        let later = start + STALL + Duration::from_secs(1);
        assert_eq!(
            liveness.stalled(later),
            [0],
            "1 has no lag; 2 moved 20 s ago"
        );
        liveness.owned([3].into_iter());
        assert!(!liveness.lock().owned.is_empty());
    }
}
