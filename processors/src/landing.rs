//! A batch lands: the one written in the background is waited for, counted and queued for
//! publishing — or, failed, its partitions go back to the offsets Postgres holds and it is
//! tried again, after a backoff if the failure may pass, taken apart if it cannot
//! (`isolation`).

use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::consumer::Consumer;

use crate::cache_writer::CacheWriter;
use crate::commit::Landed;
use crate::consumer::Processor;
use crate::isolation::{self, Span};
use crate::ledger::CommitError;
use crate::publish::PublishQueue;
use crate::rebalance::Kafka;
use crate::state::State;

impl Processor {
    /// Waits for the batch in flight to be written, counts it and queues what committed
    /// for publishing. `Ok(false)`: it failed, and its partitions were rewound to
    /// Postgres's offsets (so was its cache state).
    pub(crate) fn finish_write(
        &self,
        flight: InFlight,
        state: &mut State,
        consumer: &Kafka,
        cache: &mut Option<CacheWriter>,
        queue: &mut PublishQueue,
    ) -> anyhow::Result<bool> {
        let InFlight {
            partitions,
            spans,
            started,
            task,
        } = flight;
        let landed: Landed = match self.runtime.block_on(task) {
            Ok(landed) => landed,
            Err(error) => {
                // The task panicked: its cache writer is gone; a fresh one rebuilds the cache.
                let mut fresh = self.cache_writer();
                fresh.mark_stale();
                *cache = Some(fresh);
                self.rewind(consumer, state, &partitions)?;
                anyhow::bail!("committing a batch panicked: {error}");
            }
        };
        *cache = Some(landed.cache);
        let batch = &landed.batch;
        for (range, _) in &landed.committed {
            let all = range.len() == batch.records.len();
            self.metrics.count_outcomes(
                &batch.records[range.clone()],
                &batch.outcomes[range.clone()],
                if all { batch.dead.len() } else { 0 },
            );
        }
        let count = batch.count;
        queue.push(consumer, (landed.batch, landed.committed))?;
        match landed.result {
            Ok(()) => {
                state.failures = 0;
                self.metrics.batch_size.observe(count as f64);
                self.metrics
                    .batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(true)
            }
            Err(error) => {
                self.retry_failed(&error, consumer, state, &partitions, &spans)?;
                Ok(false)
            }
        }
    }

    /// A batch failed: its partitions go back to what Postgres holds, and it is tried
    /// again — after a backoff if the failure may pass, taken apart if it cannot
    /// (`isolation`).
    pub(crate) fn retry_failed(
        &self,
        error: &anyhow::Error,
        consumer: &Kafka,
        state: &mut State,
        partitions: &[i32],
        spans: &[Span],
    ) -> anyhow::Result<()> {
        let fenced = matches!(error.downcast_ref(), Some(CommitError::Fenced));
        self.metrics
            .error(if fenced { "fenced" } else { component(error) });
        self.rewind(consumer, state, partitions)?;
        if let Some(reason) = isolation::deterministic(error) {
            state.isolation.failed(spans, reason);
            return Ok(());
        }
        tracing::warn!(
            error = format!("{error:#}"),
            ?partitions,
            "A batch failed; reloading its partitions from Postgres and trying again."
        );
        // 200 ms, doubling up to 5 s while Postgres or Kafka stay away.
        let backoff = Duration::from_millis(200)
            .saturating_mul(1 << state.failures.min(5))
            .min(Duration::from_secs(5));
        state.failures = state.failures.saturating_add(1);
        std::thread::sleep(backoff);
        Ok(())
    }

    /// Fetches each partition again from the offset given.
    pub(crate) fn seek(&self, consumer: &Kafka, offsets: &[(i32, i64)]) -> anyhow::Result<()> {
        for (partition, offset) in offsets {
            consumer.seek(
                &self.topic,
                *partition,
                Offset::Offset(*offset),
                Duration::from_secs(5),
            )?;
        }
        Ok(())
    }

    /// After a failed batch: forget the held state of its partitions and go back to the
    /// offsets Postgres holds for them.
    pub(crate) fn rewind(
        &self,
        consumer: &Kafka,
        state: &mut State,
        partitions: &[i32],
    ) -> anyhow::Result<()> {
        // Only partitions still ours are sought (one revoked meanwhile belongs elsewhere).
        let owned: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|partition| state.positions.contains_key(partition))
            .collect();
        state.drop_partitions(partitions);
        let offsets = consumer.context().stored_offsets(&owned);
        let topic = &self.topic;
        for (partition, stored) in offsets {
            consumer.seek(
                topic,
                partition,
                Offset::Offset(stored.next),
                Duration::from_secs(5),
            )?;
            state.positions.insert(partition, stored.next);
        }
        Ok(())
    }
}

/// The batch being written in the background.
pub(crate) struct InFlight {
    pub(crate) partitions: Vec<i32>,
    pub(crate) spans: Vec<Span>,
    pub(crate) started: Instant,
    pub(crate) task: tokio::task::JoinHandle<Landed>,
}

/// Which dependency an error came from, for the errors metric.
fn component(error: &anyhow::Error) -> &'static str {
    if error.downcast_ref::<sqlx::Error>().is_some()
        || matches!(error.downcast_ref(), Some(CommitError::Database(_)))
    {
        "postgres"
    } else {
        "kafka"
    }
}
