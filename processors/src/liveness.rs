//! Is the group processing every partition? The processors' own lag only covers the
//! partitions they fetch: a partition nobody owns looks caught up. So every few seconds
//! each processor measures the group's lag on every partition
//! ([`service_kit::kafka::group_lag`], exported as `bazaar_processor_group_lag`), and
//! notes partitions whose committed offset has not moved for `STALL` while they have lag. A processor that owns no partition while one
//! is stalled is not ready: the group has work it is not doing (a member that never got
//! its partitions back after a rebalance, say).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use service_kit::kafka::group_lag::GroupLag;
use tokio_util::sync::CancellationToken;

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

/// Measures the group's lag every few seconds until `stop` and notes what it saw.
pub async fn watch(liveness: Liveness, lag: GroupLag, stop: CancellationToken) {
    lag.run(stop, |measured| {
        let now = Instant::now();
        for partition in measured {
            liveness.observe(partition.partition, partition.committed, partition.lag, now);
        }
    })
    .await;
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
