//! The publish queue: committed batches wait here for the next output transaction.
//! Publishing runs beside committing, one transaction at a time: when the one in flight is
//! done, every batch committed meanwhile goes in the next, in order (so publishing costs a
//! transaction per round, not per batch). The ledger never waits for the outputs: when more
//! than `max_queued` records wait behind a transaction that takes long (a broker's
//! failover), they are let go from memory and published later from their ledger rows —
//! Postgres is the outbox. While the loop is idle, the queue publishes again, from
//! Postgres, what the output topics lack; that too runs beside the loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use tokio::runtime::Handle;

use super::{Committed, Publisher, Publishing};
use crate::rebalance::Kafka;

pub(crate) struct PublishQueue {
    publisher: Publisher,
    runtime: Handle,
    /// Records that may wait in memory behind a transaction in flight.
    max_queued: usize,
    /// Per owned partition, the first offset whose outputs are not on the output topics
    /// yet. At most the position; kept when a partition is read again.
    published: HashMap<i32, i64>,
    /// The transaction in flight, with how far it takes each partition's outputs.
    publishing: Option<Publishing>,
    /// Batches committed since, waiting for the next transaction, and their records.
    waiting: Vec<Committed>,
    waiting_records: usize,
    /// No catching up from Postgres before this (a second after the last one started).
    republish_after: Option<Instant>,
}

impl PublishQueue {
    pub(crate) fn new(publisher: Publisher, runtime: Handle, max_queued: usize) -> Self {
        Self {
            publisher,
            runtime,
            max_queued,
            published: HashMap::new(),
            publishing: None,
            waiting: Vec::new(),
            waiting_records: 0,
            republish_after: None,
        }
    }

    /// A partition assigned here, published up to `published` (as Postgres holds it).
    pub(crate) fn assigned(&mut self, partition: i32, published: i64) {
        self.published.insert(partition, published);
    }

    pub(crate) fn revoked(&mut self, partitions: &[i32]) {
        for partition in partitions {
            self.published.remove(partition);
        }
    }

    /// How far the output topics have `partition` (`None`: not owned here).
    pub(crate) fn published(&self, partition: i32) -> Option<i64> {
        self.published.get(&partition).copied()
    }

    /// Every owned partition with how far its outputs are published.
    pub(crate) fn published_all(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.published
            .iter()
            .map(|(partition, published)| (*partition, *published))
    }

    /// Queues what of a landed batch committed, and starts a transaction if none is in
    /// flight.
    pub(crate) fn push(&mut self, consumer: &Kafka, committed: Committed) -> anyhow::Result<()> {
        if !committed.1.is_empty() {
            self.waiting_records += committed.0.records.len();
            self.waiting.push(committed);
        }
        self.pump(consumer)
    }

    /// Starts the next transaction with everything waiting once the one in flight is done;
    /// lets what waits go if that is more than `max_queued` records meanwhile.
    fn pump(&mut self, consumer: &Kafka) -> anyhow::Result<()> {
        if self
            .publishing
            .as_ref()
            .is_some_and(|task| task.is_finished())
        {
            self.settle()?;
        }
        if self.publishing.is_some() {
            if self.waiting_records > self.max_queued {
                tracing::warn!(
                    records = self.waiting_records,
                    "The output transaction in flight takes long; the committed records waiting \
                     behind it will be published from Postgres."
                );
                self.waiting.clear();
                self.waiting_records = 0;
            }
            return Ok(());
        }
        if self.waiting.is_empty() {
            return Ok(());
        }
        let Some(membership) = consumer.group_metadata().map(Arc::new) else {
            return Ok(());
        };
        let mut batches = std::mem::take(&mut self.waiting);
        self.waiting_records = 0;
        for step in batches
            .iter_mut()
            .flat_map(|(_, committed)| committed.iter_mut())
            .flat_map(|(_, progress)| progress.iter_mut())
        {
            step.published = self.published.get(&step.partition).copied();
        }
        let publisher = self.publisher.clone();
        self.publishing = Some(self.runtime.spawn(async move {
            let mut clock = Instant::now();
            let reached = publisher.committed(&membership, &batches).await;
            publisher.metrics().stage("publish", &mut clock);
            reached
        }));
        Ok(())
    }

    /// Waits for the transaction in flight and takes in how far it got; an error if the
    /// output producer cannot go on.
    fn settle(&mut self) -> anyhow::Result<()> {
        let Some(task) = self.publishing.take() else {
            return Ok(());
        };
        let reached = self
            .runtime
            .block_on(task)
            .map_err(|error| anyhow::anyhow!("publishing panicked: {error}"))??;
        for (partition, reached) in reached {
            if let Some(published) = self.published.get_mut(&partition) {
                *published = (*published).max(reached);
            }
        }
        Ok(())
    }

    /// Publishes everything committed: nothing waiting, nothing in flight.
    pub(crate) fn drain(&mut self, consumer: &Kafka) -> anyhow::Result<()> {
        while self.publishing.is_some() || !self.waiting.is_empty() {
            self.settle()?;
            self.pump(consumer)?;
            self.forget_if_not_a_member();
        }
        Ok(())
    }

    /// After `pump`: nothing in flight while batches wait means this consumer is not a
    /// member of the group (now); what waits is published by whoever owns it next.
    fn forget_if_not_a_member(&mut self) {
        if self.publishing.is_none() {
            self.waiting.clear();
            self.waiting_records = 0;
        }
    }

    /// While idle: starts publishing what waits and takes in a finished transaction, but
    /// never waits for one in flight — a broker failover can hold its abort for many
    /// seconds, and the partitions that still flow must not wait for it. With nothing in
    /// flight or waiting, starts publishing again what the outputs lack (`catch_up`).
    pub(crate) fn idle(
        &mut self,
        consumer: &Kafka,
        positions: &HashMap<i32, i64>,
    ) -> anyhow::Result<()> {
        self.pump(consumer)?;
        self.forget_if_not_a_member();
        if self.publishing.is_some() {
            return Ok(());
        }
        self.catch_up(consumer, positions)
    }

    /// While idle: publishes again, from Postgres, what the output topics lack of owned
    /// partitions (after an aborted transaction, records let go or a crash between commit
    /// and publish), up to `positions`, as the transaction in flight; at most once a second.
    fn catch_up(&mut self, consumer: &Kafka, positions: &HashMap<i32, i64>) -> anyhow::Result<()> {
        if self
            .republish_after
            .is_some_and(|after| Instant::now() < after)
        {
            return Ok(());
        }
        let behind: Vec<i32> = self
            .published
            .iter()
            .filter(|(partition, published)| {
                positions
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
        let ranges: Vec<(i32, i64, i64)> = consumer
            .context()
            .stored_offsets(&behind)
            .into_iter()
            .filter_map(|(partition, stored)| {
                let from = *self.published.get(&partition)?;
                (from < stored.next).then_some((partition, from, stored.next))
            })
            .collect();
        if ranges.is_empty() {
            return Ok(());
        }
        self.republish_after = Some(Instant::now() + Duration::from_secs(1));
        let publisher = self.publisher.clone();
        self.publishing = Some(self.runtime.spawn(async move {
            let mut reached = Vec::with_capacity(ranges.len());
            for (partition, from, to) in ranges {
                let to = publisher
                    .republish(&membership, partition, from, to)
                    .await?;
                reached.push((partition, to));
            }
            Ok(reached)
        }));
        Ok(())
    }
}
