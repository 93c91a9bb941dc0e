//! Writing a batch, in the background while the loop decides the next: the ledger and
//! everything else of the batch in Postgres — in up to `PROCESSOR_COMMIT_PARALLELISM`
//! transactions of whole partitions, each with its partitions' offsets — then the cache.

use std::collections::HashMap;
use std::time::Instant;

use schemas::StoreId;
use sqlx::PgPool;

use crate::batch::Batch;
use crate::cache_writer::CacheWriter;
use crate::decide::{self, Holding};
use crate::effects;
use crate::ledger::{self, Progress, Record};
use crate::metrics::ProcessorMetrics;

/// A written batch (or not), with the cache it borrowed.
pub(crate) struct Landed {
    pub(crate) cache: CacheWriter,
    pub(crate) batch: Batch,
    /// The runs of `batch.records` (with their partitions' progress) now in Postgres.
    pub(crate) committed: Vec<(std::ops::Range<usize>, Vec<Progress>)>,
    pub(crate) result: anyhow::Result<()>,
}

/// Writes batches: Postgres, then Redis.
pub(crate) struct Committer {
    pub(crate) pool: PgPool,
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) parallelism: usize,
    pub(crate) metrics: ProcessorMetrics,
}

impl Committer {
    /// Commits `batch` in up to `parallelism` transactions at once, each with whole
    /// partitions (their records are one run of `records`) and their offsets; then brings
    /// the cache up to what committed.
    pub(crate) async fn write(
        self,
        mut cache: CacheWriter,
        batch: Batch,
        held: Vec<StoreId>,
    ) -> Landed {
        let mut clock = Instant::now();
        let runs = split(&batch.records, &batch.progress, self.parallelism);
        let parts: Vec<Part<'_>> = runs
            .iter()
            .map(|(range, progress)| {
                let records = &batch.records[range.clone()];
                let outcomes = &batch.outcomes[range.clone()];
                Part {
                    records,
                    outcomes,
                    changed: effects::changed_balances(records, outcomes),
                    alerts: effects::raised_alerts(records, outcomes, &batch.catalog),
                    progress: progress.clone(),
                    voided: &batch.voided,
                }
            })
            .collect();
        let (pool, group, topic) = (&self.pool, self.group.as_str(), self.topic.as_str());
        let results = futures::future::join_all(parts.iter().map(|part| {
            let decided = part.decided();
            async move { ledger::commit(pool, group, topic, &decided).await }
        }))
        .await;
        self.metrics.stage("commit", &mut clock);

        let held = move || held;
        let mut committed = Vec::new();
        let result = if results.iter().all(Result::is_ok) {
            let changed: Vec<(&Record, Holding)> = parts
                .iter()
                .flat_map(|part| part.changed.iter().copied())
                .collect();
            cache
                .after_commit(
                    &batch.records,
                    &batch.outcomes,
                    &changed,
                    &batch.progress,
                    &batch.loaded,
                    held,
                )
                .await;
            self.metrics.applied(&batch.records);
            committed.push((0..batch.records.len(), batch.progress.clone()));
            Ok(())
        } else {
            // Some parts committed and some did not: the cache follows what committed; the
            // batch fails, and its partitions are read again from Postgres — where the
            // committed parts already are.
            let part_of: HashMap<StoreId, usize> = parts
                .iter()
                .enumerate()
                .flat_map(|(at, part)| {
                    part.records
                        .iter()
                        .map(move |record| (record.movement.store_id, at))
                })
                .collect();
            let mut loaded_by_part: Vec<Vec<_>> = parts.iter().map(|_| Vec::new()).collect();
            for entry in &batch.loaded {
                let at = part_of.get(&entry.0).copied().unwrap_or(0);
                loaded_by_part[at].push(entry.clone());
            }
            let mut failure = None;
            for (((part, result), loaded), (range, _)) in
                parts.iter().zip(results).zip(loaded_by_part).zip(&runs)
            {
                if let Err(error) = result {
                    failure.get_or_insert(error);
                    continue;
                }
                cache
                    .after_commit(
                        part.records,
                        part.outcomes,
                        &part.changed,
                        &part.progress,
                        &loaded,
                        held.clone(),
                    )
                    .await;
                self.metrics.applied(part.records);
                committed.push((range.clone(), part.progress.clone()));
            }
            Err(failure.map_or_else(|| anyhow::anyhow!("a part failed"), anyhow::Error::from))
        };
        self.metrics.stage("cache", &mut clock);
        drop(parts);
        Landed {
            cache,
            batch,
            committed,
            result,
        }
    }
}

/// The share of a batch written in one transaction: whole partitions, and their offsets.
struct Part<'a> {
    records: &'a [Record],
    outcomes: &'a [decide::Outcome],
    changed: Vec<(&'a Record, Holding)>,
    alerts: Vec<effects::RaisedAlert<'a>>,
    progress: Vec<Progress>,
    voided: &'a std::collections::HashMap<uuid::Uuid, ledger::Voided>,
}

impl Part<'_> {
    fn decided(&self) -> ledger::Decided<'_> {
        ledger::Decided {
            records: self.records,
            outcomes: self.outcomes,
            changed: &self.changed,
            alerts: &self.alerts,
            progress: &self.progress,
            voided: self.voided,
        }
    }
}

/// Cuts `records` (in partition order) into at most `parts` runs of whole partitions of
/// about equal size, each with its partitions' progress (a partition with no records — all
/// dead letters — goes with the first run).
fn split(
    records: &[Record],
    progress: &[Progress],
    parts: usize,
) -> Vec<(std::ops::Range<usize>, Vec<Progress>)> {
    let target = records.len().div_ceil(parts.max(1)).max(1);
    let mut runs: Vec<(std::ops::Range<usize>, Vec<i32>)> = Vec::new();
    let mut start = 0;
    for (at, record) in records.iter().enumerate() {
        let last_of_partition = records
            .get(at + 1)
            .is_none_or(|next| next.partition != record.partition);
        if !last_of_partition {
            continue;
        }
        // A partition joins the current run if that run stays nearer the target with it.
        let count = at + 1 - start;
        let full = runs.len() >= parts;
        match runs.last_mut() {
            Some((range, partitions)) if range.len() + count / 2 < target || full => {
                range.end = at + 1;
                partitions.push(record.partition);
            }
            _ => runs.push((start..at + 1, vec![record.partition])),
        }
        start = at + 1;
    }
    if runs.is_empty() {
        runs.push((0..records.len(), Vec::new()));
    }
    let mut split: Vec<(std::ops::Range<usize>, Vec<Progress>)> = runs
        .iter()
        .map(|(range, _)| (range.clone(), Vec::new()))
        .collect();
    for step in progress {
        let at = runs
            .iter()
            .position(|(_, partitions)| partitions.contains(&step.partition))
            .unwrap_or(0);
        split[at].1.push(*step);
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::record;

    fn step(partition: i32) -> Progress {
        Progress {
            partition,
            expected: 0,
            next: 1,
            published: Some(0),
        }
    }

    #[test]
    fn a_batch_splits_into_runs_of_whole_partitions_each_with_its_offsets() {
        // Partition 0: 3 records, 1: 1, 2: 4, 3: 2; partition 5 has only dead letters.
        let sizes = [(0, 3), (1, 1), (2, 4), (3, 2)];
        let records: Vec<Record> = sizes
            .iter()
            .flat_map(|(partition, count)| {
                (0..*count).map(move |offset| record(*partition, offset))
            })
            .collect();
        let progress: Vec<Progress> = [0, 1, 2, 3, 5].into_iter().map(step).collect();

        let parts = split(&records, &progress, 2);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].0,
            0..4,
            "partitions 0 and 1 (up to half the records)"
        );
        assert_eq!(parts[1].0, 4..10, "partitions 2 and 3");
        let partitions =
            |at: usize| -> Vec<i32> { parts[at].1.iter().map(|p| p.partition).collect() };
        assert_eq!(
            partitions(0),
            vec![0, 1, 5],
            "dead letters only: with the first"
        );
        assert_eq!(partitions(1), vec![2, 3]);
        for (range, progress) in &parts {
            for record in &records[range.clone()] {
                assert!(progress.iter().any(|p| p.partition == record.partition));
            }
        }

        let one = split(&records, &progress, 1);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, 0..10);
        assert_eq!(one[0].1.len(), 5);
        assert_eq!(
            split(&records, &progress, 8).len(),
            4,
            "at most one run per partition"
        );
        let none = split(&[], &progress, 2);
        assert_eq!(none.len(), 1);
        assert_eq!(
            none[0].1.len(),
            5,
            "a batch of dead letters still moves its offsets"
        );
    }
}
