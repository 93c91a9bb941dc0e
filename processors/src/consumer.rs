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
//! Beside it: `rebalance` (assignments and revocations), `state` (what is held between
//! batches), `commit` (writing a batch), `isolation` (taking a failed batch apart),
//! `halts` and `liveness` (partitions that cannot go on, and a group that does not).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use schemas::{AvroRecord, ProductId, StockMovement, StoreId};
use service_kit::Settings;
use service_kit::redis::Redis;
use sqlx::PgPool;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::commit::{Batch, Committer, Landed};
use crate::decide;
use crate::halts::{Halt, Halts};
use crate::isolation::{self, Span};
use crate::ledger::{self, CommitError, Progress, Record};
use crate::liveness::Liveness;
use crate::metrics::ProcessorMetrics;
use crate::notify::Notifier;
use crate::outputs::{DeadLetter, DeadLetters};
use crate::publish::Publisher;
use crate::rebalance::{Assignment, Kafka, RebalanceContext};
use crate::state::State;

/// How long an idle poll blocks before the loop looks at the shutdown signal again.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Batches' worth of committed records (`PROCESSOR_BATCH_MAX` each) that may wait to be
/// published before committing waits for publishing.
const UNPUBLISHED_MAX: usize = 4;

/// How often librdkafka reports its statistics (the high watermarks lag is measured from)
/// and the lag gauges are set.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Processor {
    pub settings: Settings,
    /// The input topic's name.
    pub topic: String,
    pub pool: PgPool,
    pub redis: Redis,
    pub dead_letters: DeadLetters,
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
    fn group(&self) -> &str {
        &self.settings.kafka.consumer_group
    }

    /// Runs until `shutdown`: finishes the batch in flight, commits it and leaves the
    /// group. A consumer that fails is dropped and a new one joins.
    pub fn run(self) {
        let mut notifier = Some(Notifier::new(
            self.redis.clone(),
            self.pool.clone(),
            self.group().to_owned(),
            self.topic.clone(),
            self.metrics.clone(),
        ));
        while !self.shutdown.is_cancelled() {
            let mut state = State::default();
            match self.consume(&mut state, &mut notifier) {
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

    fn consumer(&self) -> anyhow::Result<Arc<Kafka>> {
        let context = RebalanceContext {
            pool: self.pool.clone(),
            runtime: self.runtime.clone(),
            group: self.group().to_owned(),
            topic: self.topic.clone(),
            changes: Mutex::new(Vec::new()),
            high_watermarks: Mutex::new(HashMap::new()),
            shutdown: self.shutdown.clone(),
            published_wait: self.settings.processor.transaction_timeout * 3,
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
            self.settings.processor.fetch_wait.as_millis().to_string(),
        );
        config.set(
            "statistics.interval.ms",
            STATISTICS_INTERVAL.as_millis().to_string(),
        );
        let consumer: Kafka = config.create_with_context(context)?;
        consumer.subscribe(&[&self.topic])?;
        Ok(Arc::new(consumer))
    }

    /// The loop. Batches are pipelined two deep: while batch N is committed (then cached
    /// and published) in the background, batch N+1 is polled, read and decided on the
    /// state N left in memory; N+1 goes to Postgres only once N has committed. If N fails,
    /// N+1 is dropped unwritten and the partitions of both are read again from Postgres.
    fn consume(&self, state: &mut State, notifier: &mut Option<Notifier>) -> anyhow::Result<()> {
        let publisher = Publisher::new(
            &self.settings,
            &self.transactional_id,
            self.pool.clone(),
            self.metrics.clone(),
        )?;
        let consumer = self.consumer()?;
        let mut lag_measured = Instant::now();
        let mut in_flight: Option<InFlight> = None;
        // The first outcomes of the batch in flight: not in Postgres yet, but seen.
        let mut pending: HashMap<uuid::Uuid, decide::Original> = HashMap::new();
        let result = loop {
            if self.shutdown.is_cancelled() {
                break Ok(());
            }
            if lag_measured.elapsed() >= STATISTICS_INTERVAL {
                self.measure_lag(&consumer, state);
                lag_measured = Instant::now();
            }
            let mut polling = Instant::now();
            let (messages, out_of_range) = self.poll_batch(&consumer);
            for change in consumer.context().take() {
                match change {
                    Assignment::Assigned(offsets) => {
                        let partitions: Vec<i32> = offsets.keys().copied().collect();
                        self.clear_halts(&partitions);
                        for (partition, stored) in offsets {
                            state.positions.insert(partition, stored.next);
                            state.published.insert(partition, stored.published);
                        }
                    }
                    Assignment::Revoked(partitions) => {
                        self.clear_halts(&partitions);
                        for partition in &partitions {
                            state.published.remove(partition);
                        }
                        // A rewind keeps what isolation learnt; a partition gone forgets it.
                        state.isolation.forget(&partitions);
                        state.drop_partitions(&partitions);
                    }
                }
            }
            self.liveness.owned(state.positions.keys().copied());
            if out_of_range {
                self.halt_out_of_range(&consumer, &state.positions);
            }
            let mut batch = in_order(messages, &state.positions);
            if state.isolation.is_active() {
                let refetch = state.isolation.narrow(&mut batch, &state.positions);
                if let Err(error) = self.seek(&consumer, &refetch) {
                    break Err(error);
                }
            }
            if batch.is_empty() {
                if let Some(flight) = in_flight.take() {
                    pending.clear();
                    if let Err(error) = self.land(flight, state, &consumer, notifier, &publisher) {
                        break Err(error);
                    }
                } else {
                    if let Some(notifier) = notifier.as_mut() {
                        let held = || state.balances.keys().copied().collect();
                        self.runtime.block_on(notifier.recover(held));
                    }
                    let caught_up = self
                        .publish_all(&consumer, &publisher, state)
                        .and_then(|()| self.catch_up(&consumer, &publisher, state));
                    if let Err(error) = caught_up {
                        break Err(error);
                    }
                }
                continue;
            }
            self.metrics.stage("poll", &mut polling);
            let started = Instant::now();
            let partitions: Vec<i32> = batch.keys().copied().collect();
            let spans = isolation::spans(&batch);
            let prepared = self.runtime.block_on(self.prepare(state, &pending, batch));
            // N+1 is decided; N must be in Postgres before it.
            let previous_landed = match in_flight.take() {
                Some(flight) => match self.land(flight, state, &consumer, notifier, &publisher) {
                    Ok(landed) => landed,
                    Err(error) => break Err(error),
                },
                None => true,
            };
            match prepared {
                Ok((mut batch, seen)) if previous_landed => {
                    pending = seen;
                    let held: Vec<StoreId> = state.balances.keys().copied().collect();
                    let Some(taken) = notifier.take() else {
                        break Err(anyhow::anyhow!("the cache notifier is missing"));
                    };
                    // Where the outputs stand now that the batch before is published.
                    for step in &mut batch.progress {
                        step.published = state.published.get(&step.partition).copied();
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
                    if let Err(error) = self.failed(&error, &consumer, state, &partitions, &spans) {
                        break Err(error);
                    }
                }
            }
        };
        // Whatever is in flight finishes (or fails) before the group is left.
        let landed = in_flight
            .map(|flight| self.land(flight, state, &consumer, notifier, &publisher))
            .transpose()
            .and_then(|_| self.publish_all(&consumer, &publisher, state));
        // Leave the group now (the partitions move at once), not after a session timeout.
        consumer.unsubscribe();
        self.liveness.owned(std::iter::empty());
        for change in consumer.context().take() {
            if let Assignment::Revoked(partitions) = change {
                state.drop_partitions(&partitions);
            }
        }
        landed?;
        result
    }

    /// Waits for the batch in flight. `Ok(false)`: it failed, and its partitions were
    /// rewound to Postgres's offsets (so was its cache state).
    fn land(
        &self,
        flight: InFlight,
        state: &mut State,
        consumer: &Kafka,
        notifier: &mut Option<Notifier>,
        publisher: &Publisher,
    ) -> anyhow::Result<bool> {
        let InFlight {
            partitions,
            spans,
            started,
            task,
        } = flight;
        let landed = match self.runtime.block_on(task) {
            Ok(landed) => landed,
            Err(error) => {
                // The task panicked: its notifier is gone; a fresh one rebuilds the cache.
                *notifier = Some(self.notifier_marked_stale());
                self.rewind(consumer, state, &partitions)?;
                anyhow::bail!("committing a batch panicked: {error}");
            }
        };
        *notifier = Some(landed.notifier);
        let batch = &landed.batch;
        for (range, _) in &landed.committed {
            let all = range.len() == batch.records.len();
            let dead: &[DeadLetter] = if all { &batch.dead } else { &[] };
            self.observe(
                &batch.records[range.clone()],
                &batch.outcomes[range.clone()],
                dead,
            );
        }
        let count = batch.count;
        self.publish(consumer, publisher, state, landed.batch, landed.committed)?;
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
                self.failed(&error, consumer, state, &partitions, &spans)?;
                Ok(false)
            }
        }
    }

    /// A batch failed: its partitions go back to what Postgres holds, and it is tried
    /// again — after a backoff if the failure may pass, taken apart if it cannot
    /// (`isolation`).
    fn failed(
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
    fn seek(&self, consumer: &Kafka, offsets: &[(i32, i64)]) -> anyhow::Result<()> {
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

    fn notifier_marked_stale(&self) -> Notifier {
        let mut notifier = Notifier::new(
            self.redis.clone(),
            self.pool.clone(),
            self.group().to_owned(),
            self.topic.clone(),
            self.metrics.clone(),
        );
        notifier.mark_stale();
        notifier
    }

    fn committer(&self) -> Committer {
        Committer {
            pool: self.pool.clone(),
            group: self.group().to_owned(),
            topic: self.topic.clone(),
            parallelism: self.settings.processor.commit_parallelism,
            metrics: self.metrics.clone(),
        }
    }

    /// Up to `batch_max` messages: waits up to `IDLE_POLL` for the first one, then at most
    /// `batch_wait` for the rest. `true`: Kafka refused a partition's position (it says
    /// which partition only in its log; `halt_out_of_range` finds it).
    fn poll_batch(&self, consumer: &Kafka) -> (Vec<OwnedMessage>, bool) {
        let limits = &self.settings.processor;
        let mut messages = Vec::new();
        let mut deadline: Option<Instant> = None;
        while messages.len() < limits.batch_max {
            let wait = match deadline {
                None => IDLE_POLL,
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            };
            match consumer.poll(wait) {
                Some(Ok(message)) => {
                    messages.push(message.detach());
                    deadline.get_or_insert_with(|| Instant::now() + limits.batch_wait);
                }
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    return (messages, true);
                }
                Some(Err(error)) => {
                    self.metrics.error("kafka");
                    tracing::warn!(%error, "Polling failed.");
                    if messages.is_empty() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    break;
                }
                None => break,
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
        }
        (messages, false)
    }

    /// After a failed batch: forget the held state of its partitions and go back to the
    /// offsets Postgres holds for them.
    fn rewind(
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

    /// Batch N+1 up to its write: read what it needs (its movement ids also among
    /// `pending`, the first outcomes of the batch in flight), decide it on the state in
    /// memory, produce its dead letters. Moves the positions on.
    /// Returns the batch to write and the first outcomes it decided.
    async fn prepare(
        &self,
        state: &mut State,
        pending: &HashMap<uuid::Uuid, decide::Original>,
        batch: BTreeMap<i32, Vec<OwnedMessage>>,
    ) -> anyhow::Result<(Batch, HashMap<uuid::Uuid, decide::Original>)> {
        let mut clock = Instant::now();
        let mut records = Vec::new();
        let mut dead = Vec::new();
        let mut progress = Vec::with_capacity(batch.len());
        let mut count = 0;
        for (partition, messages) in batch {
            let expected = state.positions.get(&partition).copied().unwrap_or(0);
            let next = messages.last().map_or(expected, |last| last.offset() + 1);
            progress.push(Progress {
                partition,
                expected,
                next,
                published: None,
            });
            count += messages.len();
            for message in messages {
                if let Some(reason) = state.isolation.take_poisoned(partition, message.offset()) {
                    self.metrics.poisoned.inc();
                    dead.push(DeadLetter::of(&message, "refused_by_database", reason));
                    continue;
                }
                match read(message) {
                    Ok(record) => records.push(record),
                    Err(letter) => dead.push(letter),
                }
            }
        }

        // What the batch needs from Postgres, read concurrently.
        let mut ids: Vec<uuid::Uuid> = records.iter().map(|r| r.movement.movement_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let stores: Vec<i64> = unique(records.iter().map(|r| r.movement.store_id.get()));
        let products: Vec<i64> = unique(records.iter().map(|r| r.movement.product_id.get()));
        let pairs: Vec<(i64, i64)> = records
            .iter()
            .map(|r| (r.movement.store_id.get(), r.movement.product_id.get()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let missing: Vec<i64> = stores
            .iter()
            .copied()
            .filter(|store| !state.balances.contains_key(&StoreId(*store)))
            .collect();
        let since = state
            .settings_read
            .map(|at| at - service_kit::postgres::CHANGE_OVERLAP);
        let (mut seen, mut catalog, stored, points, (read_at, changes)) = tokio::try_join!(
            ledger::seen(&self.pool, &ids),
            ledger::catalog(&self.pool, &stores, &products),
            ledger::balances(&self.pool, &missing),
            ledger::settings(&self.pool, &missing),
            ledger::settings_changed(&self.pool, since),
        )?;
        // Changes to the stores held before this batch; the stores it takes on are read
        // whole, at least as new.
        state.settings_read = Some(read_at);
        for change in changes {
            if let Some(settings) = state.settings.get_mut(&change.store) {
                match change.setting {
                    Some(setting) => settings.insert(change.product, setting),
                    None => settings.remove(&change.product),
                };
            }
        }
        for store in &missing {
            state.settings.entry(StoreId(*store)).or_default();
        }
        for (store, product, setting) in points {
            state
                .settings
                .entry(store)
                .or_default()
                .insert(product, setting);
        }
        catalog.reorder_points = pairs
            .iter()
            .filter_map(|(store, product)| {
                let (store, product) = (StoreId(*store), ProductId(*product));
                let point = state.settings.get(&store)?.get(&product)?.reorder_point?;
                Some(((store, product), point))
            })
            .collect();
        for id in &ids {
            if let Some(original) = pending.get(id) {
                seen.entry(*id).or_insert(*original);
            }
        }
        self.metrics.stage("read", &mut clock);
        let loaded = state.hold(&missing, stored);
        for record in &records {
            state
                .partition_of
                .insert(record.movement.store_id, record.partition);
        }

        let outcomes = decide::decide(
            &mut state.balances,
            &mut seen,
            &catalog,
            records.iter().map(|record| &record.movement),
        );
        // A sale applied without a price is recorded at the store's selling price as the
        // processors hold it now (a duplicate or rejection of it sold nothing).
        for (record, outcome) in records.iter_mut().zip(&outcomes) {
            let movement = &record.movement;
            if matches!(outcome, decide::Outcome::Applied { .. })
                && movement.kind == schemas::MovementKind::Sale
                && movement.unit_price_paise.is_none()
            {
                record.store_price_paise = state
                    .settings
                    .get(&movement.store_id)
                    .and_then(|settings| settings.get(&movement.product_id))
                    .and_then(|setting| setting.selling_price);
            }
        }
        self.metrics.stage("decide", &mut clock);
        if !dead.is_empty() {
            self.dead_letters.send(&dead).await?;
            self.metrics.stage("dead_letters", &mut clock);
        }
        for step in &progress {
            state.positions.insert(step.partition, step.next);
        }
        let batch = Batch {
            records,
            outcomes,
            dead,
            progress,
            catalog,
            loaded,
            count,
        };
        Ok((batch, seen))
    }

    fn observe(&self, records: &[Record], outcomes: &[decide::Outcome], dead: &[DeadLetter]) {
        // Counted per batch, then one labelled counter each: not a label lookup per movement.
        let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for (record, outcome) in records.iter().zip(outcomes) {
            *counts
                .entry((record.movement.kind.as_str(), outcome.status().as_str()))
                .or_default() += 1;
        }
        for ((kind, status), count) in counts {
            self.metrics
                .outcomes
                .with_label_values(&[kind, status])
                .inc_by(count);
        }
        if !dead.is_empty() {
            self.metrics
                .outcomes
                .with_label_values(&["unknown", "dead_lettered"])
                .inc_by(dead.len() as u64);
        }
    }

    /// Queues what of a landed batch committed for publishing (`pump`).
    fn publish(
        &self,
        consumer: &Kafka,
        publisher: &Publisher,
        state: &mut State,
        batch: Batch,
        committed: Vec<(std::ops::Range<usize>, Vec<Progress>)>,
    ) -> anyhow::Result<()> {
        if !committed.is_empty() {
            state.queued_records += batch.records.len();
            state.unpublished.push((batch, committed));
        }
        self.pump(consumer, publisher, state)
    }

    /// Publishing runs beside committing, one transaction at a time: when the one in flight
    /// is done, every batch committed meanwhile goes in the next, in order (so publishing
    /// costs a transaction per round, not per batch). Waits for the one in flight only when
    /// more than `UNPUBLISHED_MAX` batches' worth of records are queued behind it.
    fn pump(
        &self,
        consumer: &Kafka,
        publisher: &Publisher,
        state: &mut State,
    ) -> anyhow::Result<()> {
        let full = state.queued_records > UNPUBLISHED_MAX * self.settings.processor.batch_max;
        if state
            .publishing
            .as_ref()
            .is_some_and(|task| task.is_finished())
            || full
        {
            self.published(state)?;
        }
        if state.publishing.is_some() || state.unpublished.is_empty() {
            return Ok(());
        }
        let Some(membership) = consumer.group_metadata().map(Arc::new) else {
            return Ok(());
        };
        let mut batches = std::mem::take(&mut state.unpublished);
        state.queued_records = 0;
        for step in batches
            .iter_mut()
            .flat_map(|(_, committed)| committed.iter_mut())
            .flat_map(|(_, progress)| progress.iter_mut())
        {
            step.published = state.published.get(&step.partition).copied();
        }
        let publisher = publisher.clone();
        state.publishing = Some(self.runtime.spawn(async move {
            let mut clock = Instant::now();
            let reached = publisher.committed(&membership, &batches).await;
            publisher.metrics().stage("publish", &mut clock);
            reached
        }));
        Ok(())
    }

    /// Waits for the publishing in flight and takes in how far it got; an error if the
    /// output producer cannot go on.
    fn published(&self, state: &mut State) -> anyhow::Result<()> {
        let Some(task) = state.publishing.take() else {
            return Ok(());
        };
        let reached = self
            .runtime
            .block_on(task)
            .map_err(|error| anyhow::anyhow!("publishing panicked: {error}"))??;
        for (partition, reached) in reached {
            if let Some(published) = state.published.get_mut(&partition) {
                *published = (*published).max(reached);
            }
        }
        Ok(())
    }

    /// Publishes everything committed: nothing queued, nothing in flight.
    fn publish_all(
        &self,
        consumer: &Kafka,
        publisher: &Publisher,
        state: &mut State,
    ) -> anyhow::Result<()> {
        while state.publishing.is_some() || !state.unpublished.is_empty() {
            self.published(state)?;
            self.pump(consumer, publisher, state)?;
            if state.publishing.is_none() {
                // Not a member: what is queued is published by whoever owns it next.
                state.unpublished.clear();
                state.queued_records = 0;
            }
        }
        Ok(())
    }

    /// While idle: publishes again, from Postgres, what the output topics lack of owned
    /// partitions (after an aborted transaction or a crash between commit and publish).
    /// An attempt that falls short is tried again a second later.
    fn catch_up(
        &self,
        consumer: &Kafka,
        publisher: &Publisher,
        state: &mut State,
    ) -> anyhow::Result<()> {
        if state
            .republish_after
            .is_some_and(|after| Instant::now() < after)
        {
            return Ok(());
        }
        let behind: Vec<i32> = state
            .published
            .iter()
            .filter(|(partition, published)| {
                state
                    .positions
                    .get(partition)
                    .is_some_and(|position| position > published)
            })
            .map(|(partition, _)| *partition)
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        let Some(membership) = consumer.group_metadata().map(Arc::new) else {
            return Ok(());
        };
        // Up to what Postgres holds: never past the ledger.
        let stored = consumer.context().stored_offsets(&behind);
        let mut short = false;
        for (partition, stored) in stored {
            let Some(&from) = state.published.get(&partition) else {
                continue;
            };
            if from >= stored.next {
                continue;
            }
            let reached = self.runtime.block_on(publisher.republish(
                &membership,
                partition,
                from,
                stored.next,
            ))?;
            short |= reached < stored.next;
            state.published.insert(partition, reached);
        }
        state.republish_after = short.then(|| Instant::now() + Duration::from_secs(1));
        Ok(())
    }
}

impl Processor {
    /// Kafka refused a position: asks the broker for the bounds of every owned partition
    /// not halted yet, and pauses each whose position lies outside them.
    fn halt_out_of_range(&self, consumer: &Kafka, positions: &HashMap<i32, i64>) {
        for (&partition, &position) in positions {
            if self.halts.contains(partition) {
                continue;
            }
            let (earliest, next) =
                match consumer.fetch_watermarks(&self.topic, partition, Duration::from_secs(5)) {
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
            paused.add_partition(&self.topic, partition);
            if let Err(error) = consumer.pause(&paused) {
                tracing::warn!(%error, partition, "Pausing a partition failed.");
            }
            self.halts.insert(partition, halt);
            self.metrics
                .partition_halted
                .with_label_values(&[&partition.to_string()])
                .set(1);
            tracing::error!(
                partition,
                position,
                earliest,
                next,
                "Halted {}. Its movements wait until an operator moves the stored position \
                 (README, \"A halted partition\"); the other partitions go on.",
                halt.describe(partition)
            );
        }
    }

    fn clear_halts(&self, partitions: &[i32]) {
        self.halts.clear(partitions);
        for partition in partitions {
            self.metrics
                .partition_halted
                .with_label_values(&[&partition.to_string()])
                .set(0);
        }
    }

    /// `bazaar_processor_lag`: the partitions' high watermarks (from librdkafka's
    /// statistics, not a broker round trip: this runs on the processing thread) minus the
    /// processor's positions.
    fn measure_lag(&self, consumer: &Kafka, state: &State) {
        let high = consumer
            .context()
            .high_watermarks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (partition, lag) in lag(&high, &state.positions) {
            self.metrics
                .lag
                .with_label_values(&[&partition.to_string()])
                .set(lag);
        }
        for (partition, published) in &state.published {
            if let Some(position) = state.positions.get(partition) {
                self.metrics
                    .unpublished
                    .with_label_values(&[&partition.to_string()])
                    .set((position - published).max(0));
            }
        }
    }
}

/// Records on each owned partition past the processor's position in it, for the
/// partitions whose high watermark is known.
fn lag(high_watermarks: &HashMap<i32, i64>, positions: &HashMap<i32, i64>) -> Vec<(i32, i64)> {
    positions
        .iter()
        .filter_map(|(partition, next)| {
            let high = high_watermarks.get(partition)?;
            Some((*partition, (high - next).max(0)))
        })
        .collect()
}

/// The polled messages of owned partitions, per partition in offset order from each
/// position on (a replay of what the batch before already took is dropped).
///
/// Offsets need not be contiguous: transaction markers and compaction leave holes that are
/// normal on Kafka. Records the broker no longer has are not a hole here: with
/// `auto.offset.reset=error` Kafka refuses the fetch, and the partition halts (`halts`).
fn in_order(
    messages: Vec<OwnedMessage>,
    positions: &HashMap<i32, i64>,
) -> BTreeMap<i32, Vec<OwnedMessage>> {
    let mut cursor: HashMap<i32, i64> = HashMap::new();
    let mut batch: BTreeMap<i32, Vec<OwnedMessage>> = BTreeMap::new();
    for message in messages {
        let partition = message.partition();
        let Some(position) = positions.get(&partition) else {
            continue;
        };
        let next = cursor.entry(partition).or_insert(*position);
        if message.offset() < *next {
            continue;
        }
        *next = message.offset() + 1;
        batch.entry(partition).or_default().push(message);
    }
    batch
}

/// A movement, or the dead letter it becomes.
fn read(message: OwnedMessage) -> Result<Record, DeadLetter> {
    let payload = message.payload().unwrap_or_default();
    let dead = |error, detail: String| DeadLetter::of(&message, error, detail);
    let movement = match StockMovement::decode(payload) {
        Ok(movement) => movement,
        Err(error) => return Err(dead("undecodable", error.to_string())),
    };
    if let Some(problem) = decide::invalid(&movement) {
        return Err(dead(problem, format!("movement {}", movement.movement_id)));
    }
    let recorded_at = message
        .timestamp()
        .to_millis()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or(movement.received_at);
    Ok(Record {
        partition: message.partition(),
        offset: message.offset(),
        recorded_at,
        movement,
        store_price_paise: None,
    })
}

/// The batch being written in the background.
struct InFlight {
    partitions: Vec<i32>,
    spans: Vec<Span>,
    started: Instant,
    task: tokio::task::JoinHandle<Landed>,
}

fn unique(values: impl Iterator<Item = i64>) -> Vec<i64> {
    let set: HashSet<i64> = values.collect();
    set.into_iter().collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::message;

    #[test]
    fn polled_messages_are_taken_from_each_position_on_and_holes_are_normal() {
        let positions = HashMap::from([(0, 10), (1, 5)]);
        let messages = vec![
            message(0, 9), // taken by the batch before: dropped
            message(0, 10),
            message(1, 8), // 5 to 7: a transaction's marker, say
            message(0, 11),
            message(2, 0),  // not ours
            message(0, 11), // fetched twice
            message(1, 9),
            message(0, 13),
        ];
        let offsets: Vec<(i32, Vec<i64>)> = in_order(messages, &positions)
            .iter()
            .map(|(partition, messages)| {
                (*partition, messages.iter().map(Message::offset).collect())
            })
            .collect();
        assert_eq!(offsets, [(0, vec![10, 11, 13]), (1, vec![8, 9])]);
    }

    #[test]
    fn lag_is_the_high_watermark_past_the_position_of_each_owned_partition_known() {
        let high = HashMap::from([(0, 120), (1, 50), (2, 7), (9, 1_000)]);
        let positions = HashMap::from([(0, 100), (1, 50), (2, 9), (3, 4)]);
        let mut lag = lag(&high, &positions);
        lag.sort_unstable();
        assert_eq!(
            lag,
            vec![(0, 20), (1, 0), (2, 0)],
            "a watermark behind the position (an older statistic) is no lag; partition 3's \
             watermark is not known yet; partition 9 is not ours"
        );
    }
}
