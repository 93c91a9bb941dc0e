//! The processing loop. One thread owns the Kafka consumer; each batch goes: poll
//! (bounded by count and time) → read what the batch needs from Postgres → decide in
//! memory → produce its dead letters → commit the batch and the partitions' next offsets
//! (in up to `PROCESSOR_COMMIT_PARALLELISM` transactions of whole partitions) → update
//! Redis → publish what committed in a Kafka transaction (`publish`). Committing and
//! caching run in the background while the next batch goes through the first four steps,
//! so Postgres and the processor work at once; a batch is written only after the one
//! before it landed. Publishing runs beside both, one transaction at a time, each with
//! every batch committed since the one before. While idle, the loop publishes again from
//! Postgres what the output topics lack.
//!
//! Rebalances are handled inside `poll`, which may now run while a batch is being
//! written. On assignment the consumer seeks to the offsets stored in Postgres, never to
//! Kafka's. A commit that finds another processor moved an offset first is refused by
//! Postgres, so even a processor that lost its partitions while writing cannot write a
//! batch twice: the new owner's first commit, or this one, is refused and re-read.
//!
//! Beside it, one job each: `batch` (preparing a batch: reads, decide, dead letters),
//! `commit` (writing it), `landing` (a written batch counted and queued, a failed one
//! rewound and tried again), `publish` (the publish queue and its transactions),
//! `rebalance` (the consumer, assignments and revocations), `state` (what is held between
//! batches), `isolation` (taking a failed batch apart), `halts` and `liveness` (partitions
//! that cannot go on, and a group that does not).

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use schemas::StoreId;
use service_kit::Settings;
use service_kit::redis::Redis;
use service_kit::schema_registry::SchemaCache;
use service_kit::settings::ProcessorSettings;
use sqlx::PgPool;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::batch::{Decoded, Pending, Preparer};
use crate::cache_writer::CacheWriter;
use crate::commit::Committer;
use crate::halts::Halts;
use crate::isolation;
use crate::landing::InFlight;
use crate::liveness::Liveness;
use crate::metrics::ProcessorMetrics;
use crate::outputs::DeadLetters;
use crate::poll;
use crate::publish::{PublishQueue, Publisher};
use crate::rebalance::{Assignment, Kafka, STATISTICS_INTERVAL};
use crate::state::State;

/// Batches' worth of committed records (`PROCESSOR_BATCH_MAX` each) that may wait in memory
/// to be published; beyond it they are published later from Postgres.
const UNPUBLISHED_MAX: usize = 4;

#[derive(Debug)]
pub struct Processor {
    pub settings: Settings,
    /// How it batches and publishes.
    pub processing: ProcessorSettings,
    /// The input topic's name.
    pub topic: String,
    pub pool: PgPool,
    pub redis: Redis,
    pub dead_letters: DeadLetters,
    /// The schema ids records are read and written with (asked of the registry at start).
    pub schemas: SchemaCache,
    /// The output producer's `transactional.id` (`publish`).
    pub transactional_id: String,
    pub metrics: ProcessorMetrics,
    pub runtime: Handle,
    pub shutdown: CancellationToken,
    /// Partitions halted on a position Kafka no longer has (also read by `/readyz`).
    pub halts: Halts,
    /// The partitions owned here, for `/readyz` beside the group's lag.
    pub liveness: Liveness,
}

impl Processor {
    pub(crate) fn group(&self) -> &str {
        &self.settings.kafka.consumer_group
    }

    /// Runs until `shutdown`: finishes the batch in flight, commits it and leaves the
    /// group. A consumer that fails is dropped and a new one joins.
    pub fn run(self) {
        let mut cache = Some(self.cache_writer());
        while !self.shutdown.is_cancelled() {
            let mut state = State::default();
            match self.consume(&mut state, &mut cache) {
                Ok(()) => break,
                Err(error) => {
                    self.metrics.error("kafka");
                    tracing::error!(
                        error = format!("{error:#}"),
                        "The consumer failed; joining again."
                    );
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        tracing::info!("The processing loop stopped.");
    }

    /// The loop. Batches are pipelined two deep: while batch N is committed (then cached
    /// and published) in the background, batch N+1 is polled, read and decided on the
    /// state N left in memory; N+1 goes to Postgres only once N has committed. If N fails,
    /// N+1 is dropped unwritten and the partitions of both are read again from Postgres.
    fn consume(&self, state: &mut State, cache: &mut Option<CacheWriter>) -> anyhow::Result<()> {
        let publisher = Publisher::new(
            &self.settings,
            self.processing.transaction_timeout,
            &self.transactional_id,
            self.pool.clone(),
            self.schemas.ids(),
            self.metrics.clone(),
        )?;
        let mut queue = PublishQueue::new(
            publisher,
            self.runtime.clone(),
            UNPUBLISHED_MAX * self.processing.batch_max,
        );
        let preparer = Preparer {
            pool: self.pool.clone(),
            dead_letters: self.dead_letters.clone(),
            schemas: self.schemas.clone(),
            metrics: self.metrics.clone(),
        };
        let consumer = self.consumer()?;
        let mut lag_measured = Instant::now();
        let mut in_flight: Option<InFlight> = None;
        // What the batch in flight decided: not in Postgres yet, but seen.
        let mut pending = Pending::default();
        let result = loop {
            if self.shutdown.is_cancelled() {
                break Ok(());
            }
            if lag_measured.elapsed() >= STATISTICS_INTERVAL {
                let high = consumer.context().high_watermarks.lock();
                let high = high.unwrap_or_else(PoisonError::into_inner);
                self.metrics
                    .set_lag(&high, &state.positions, queue.published_all());
                lag_measured = Instant::now();
            }
            let mut polling = Instant::now();
            let (messages, out_of_range) =
                poll::poll_batch(&consumer, &self.processing, &self.metrics);
            self.take_assignments(&consumer, state, &mut queue);
            if out_of_range {
                self.halts.halt_out_of_range(
                    &consumer,
                    &self.topic,
                    &state.positions,
                    &self.metrics,
                );
            }
            let mut batch = poll::in_order(messages, &state.positions);
            if state.isolation.is_active() {
                let refetch = state.isolation.narrow(&mut batch, &state.positions);
                if let Err(error) = self.seek(&consumer, &refetch) {
                    break Err(error);
                }
            }
            // Idle, nothing in flight: partitions whose position passed transaction markers
            // only move their offsets over them, as a batch of no record.
            let passed = if batch.is_empty() && in_flight.is_none() && !state.isolation.is_active()
            {
                poll::markers_passed(&consumer, &state.positions, |p| self.halts.contains(p))
            } else {
                Vec::new()
            };
            if batch.is_empty() && passed.is_empty() {
                let idle = match in_flight.take() {
                    Some(flight) => {
                        pending.clear();
                        self.finish_write(flight, state, &consumer, cache, &mut queue)
                            .map(|_| ())
                    }
                    None => {
                        if let Some(cache) = cache.as_mut() {
                            let held = || state.balances.keys().copied().collect();
                            self.runtime.block_on(cache.recover(held));
                        }
                        queue.idle(&consumer, &state.positions)
                    }
                };
                if let Err(error) = idle {
                    break Err(error);
                }
                continue;
            }
            self.metrics.stage("poll", &mut polling);
            let started = Instant::now();
            let (partitions, spans, decoded) = if batch.is_empty() {
                let partitions = passed.iter().map(|(partition, ..)| *partition).collect();
                (partitions, Vec::new(), Decoded::markers(&passed))
            } else {
                let partitions: Vec<i32> = batch.keys().copied().collect();
                let spans = isolation::spans(&batch);
                preparer.learn_schema_ids(&self.runtime, &batch);
                (partitions, spans, preparer.decode(state, batch))
            };
            // A void of a movement the batch in flight decided, or a count, waits for that
            // batch: what they need is read from the ledger. (Both are rare; the pipeline
            // stalls once each.)
            if decoded.waits_for(&pending)
                && let Some(flight) = in_flight.take()
            {
                self.metrics.drained.inc();
                pending.clear();
                match self.finish_write(flight, state, &consumer, cache, &mut queue) {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Err(error) = self.rewind(&consumer, state, &partitions) {
                            break Err(error);
                        }
                        continue;
                    }
                    Err(error) => break Err(error),
                }
            }
            let prepared = self
                .runtime
                .block_on(preparer.prepare(state, &pending, decoded));
            // N+1 is decided; N must be in Postgres before it.
            let previous_written = match in_flight.take() {
                Some(flight) => {
                    match self.finish_write(flight, state, &consumer, cache, &mut queue) {
                        Ok(written) => written,
                        Err(error) => break Err(error),
                    }
                }
                None => true,
            };
            match prepared {
                Ok((mut batch, seen)) if previous_written => {
                    pending = seen;
                    let held: Vec<StoreId> = state.balances.keys().copied().collect();
                    let Some(taken) = cache.take() else {
                        break Err(anyhow::anyhow!("the cache writer is missing"));
                    };
                    // Where the outputs stand now that the batch before is published.
                    for step in &mut batch.progress {
                        step.published = queue.published(step.partition);
                    }
                    let committer = self.committer();
                    let task = self
                        .runtime
                        .spawn(async move { committer.write(taken, batch, held).await });
                    in_flight = Some(InFlight {
                        partitions,
                        spans,
                        started,
                        task,
                    });
                }
                Ok(_) => {
                    // Decided on top of a batch that did not commit.
                    pending.clear();
                    if let Err(error) = self.rewind(&consumer, state, &partitions) {
                        break Err(error);
                    }
                }
                Err(error) => {
                    pending.clear();
                    if let Err(error) =
                        self.retry_failed(&error, &consumer, state, &partitions, &spans)
                    {
                        break Err(error);
                    }
                }
            }
        };
        // Whatever is in flight finishes (or fails) before the group is left.
        let finished = in_flight
            .map(|flight| self.finish_write(flight, state, &consumer, cache, &mut queue))
            .transpose()
            .and_then(|_| queue.drain(&consumer));
        // Leave the group now (the partitions move at once), not after a session timeout.
        consumer.unsubscribe();
        self.liveness.owned(std::iter::empty());
        for change in consumer.context().take() {
            if let Assignment::Revoked(partitions) = change {
                state.drop_partitions(&partitions);
            }
        }
        finished?;
        result
    }

    /// Takes in the assignments and revocations the last poll made.
    fn take_assignments(&self, consumer: &Kafka, state: &mut State, queue: &mut PublishQueue) {
        for change in consumer.context().take() {
            match change {
                Assignment::Assigned(offsets) => {
                    let partitions: Vec<i32> = offsets.keys().copied().collect();
                    self.halts.release(&partitions, &self.metrics);
                    for (partition, stored) in offsets {
                        state.positions.insert(partition, stored.next);
                        queue.assigned(partition, stored.published);
                    }
                }
                Assignment::Revoked(partitions) => {
                    self.halts.release(&partitions, &self.metrics);
                    queue.revoked(&partitions);
                    // A rewind keeps what isolation learnt; a partition gone forgets it.
                    state.isolation.forget(&partitions);
                    state.drop_partitions(&partitions);
                }
            }
        }
        self.liveness.owned(state.positions.keys().copied());
    }

    pub(crate) fn cache_writer(&self) -> CacheWriter {
        CacheWriter::new(
            self.redis.clone(),
            self.pool.clone(),
            self.group().to_owned(),
            self.topic.clone(),
            self.metrics.clone(),
        )
    }

    fn committer(&self) -> Committer {
        Committer {
            pool: self.pool.clone(),
            group: self.group().to_owned(),
            topic: self.topic.clone(),
            parallelism: self.processing.commit_parallelism,
            metrics: self.metrics.clone(),
        }
    }
}
