//! The output topics are the committed ledger: Postgres is the outbox. A batch's ledger
//! entries, balances and alerts are published only after the batch committed, in one
//! Kafka transaction that also commits the input partitions' offsets to the group
//! (KIP-447): the group's committed offset of a partition is how far the outputs have
//! been published, Postgres's is how far the ledger is.
//!
//! - A transaction that fails is aborted: `read_committed` consumers never see its
//!   records, and the partition's published position stays where it was.
//! - A partition whose published position is behind the ledger (a crash between commit
//!   and publish, an aborted transaction, a new owner) is published again from its
//!   ledger rows, in offset order, before anything newer of it.
//! - A processor that lost a partition cannot publish for it: its transaction carries the
//!   group generation it read the batch under, and the group coordinator refuses the
//!   offsets of a stale generation, which aborts the whole transaction. The new owner
//!   reads the published position only once no transaction of it is pending.
//!
//! Each ledger row therefore reaches `read_committed` consumers exactly once, in order
//! per store; `read_uncommitted` consumers may also see aborted records and dedupe by
//! (`source_partition`, `source_offset`).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use schemas::topics::{balance_key, store_key};
use schemas::{
    Balance, LedgerEntry, LedgerStatus, SchemaIds, StockAlert, StockMovement, Topics, WireFormat,
};
use service_kit::{Settings, kafka};
use sqlx::PgPool;

use crate::batch::Batch;
use crate::decide::Outcome;
use crate::effects;
use crate::ledger::{self, Progress};
use crate::metrics::ProcessorMetrics;
use crate::outputs::{self, QUEUE_WAIT};

mod queue;
mod records;

pub(crate) use queue::PublishQueue;

/// Ledger rows published again per transaction.
const REPUBLISH_CHUNK: i64 = 5_000;

/// A written batch and the runs of it that committed (with their partitions' progress).
pub(crate) type Committed = (Batch, Vec<(Range<usize>, Vec<Progress>)>);

/// Batches being published: how far it takes each partition's outputs, or an error if the
/// producer cannot go on.
pub(crate) type Publishing = tokio::task::JoinHandle<anyhow::Result<Vec<(i32, i64)>>>;

/// The group's membership a transaction's offsets are committed under.
pub(crate) type Membership = Arc<ConsumerGroupMetadata>;

/// Publishes committed outputs in transactions. One per processor and consumer: its
/// transactions run one at a time (a batch is published only after the one before it).
#[derive(Clone)]
pub(crate) struct Publisher {
    producer: FutureProducer,
    pool: PgPool,
    source: String,
    ledger: String,
    balances: String,
    alerts: String,
    timeout: Duration,
    /// The ids the outputs are written with.
    schema_ids: Arc<SchemaIds>,
    metrics: ProcessorMetrics,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A transactional producer with `transactional_id` whose transactions time out after
    /// `timeout`, its transactions initialised (blocks until the broker answers).
    pub(crate) fn new(
        settings: &Settings,
        timeout: Duration,
        transactional_id: &str,
        pool: PgPool,
        schema_ids: Arc<SchemaIds>,
        metrics: ProcessorMetrics,
    ) -> anyhow::Result<Self> {
        let producer = kafka::transactional_producer(
            &settings.kafka,
            "processors-outputs",
            transactional_id,
            timeout,
        )?;
        let topics: Topics = settings.topics();
        Ok(Self {
            producer,
            pool,
            source: topics.movements(),
            ledger: topics.ledger(),
            balances: topics.balances(),
            alerts: topics.alerts(),
            timeout,
            schema_ids,
            metrics,
        })
    }

    /// Publishes what of `batches` committed (each with runs of its records and their
    /// partitions' progress), in order. A partition published up to where its first batch
    /// here started goes from memory — every such run of every batch in one transaction;
    /// one behind is first published from its ledger rows. Returns how far each partition
    /// is published now.
    pub(crate) async fn committed(
        &self,
        membership: &Membership,
        batches: &[Committed],
    ) -> anyhow::Result<Vec<(i32, i64)>> {
        let mut reached = Vec::new();
        // How far each partition's outputs will be once what is gathered is published.
        let mut cursor: HashMap<i32, i64> = HashMap::new();
        let mut current: Vec<(usize, Range<usize>)> = Vec::new();
        for (at, (batch, committed)) in batches.iter().enumerate() {
            for (range, progress) in committed {
                let runs = partition_runs(&batch.records[range.clone()], range.start);
                for step in progress {
                    let Some(from) = cursor.get(&step.partition).copied().or(step.published) else {
                        continue;
                    };
                    if from == step.expected {
                        if let Some((_, run)) = runs.iter().find(|(p, _)| *p == step.partition) {
                            current.push((at, run.clone()));
                        }
                        cursor.insert(step.partition, step.next);
                    } else if from < step.next {
                        let to = self
                            .republish(membership, step.partition, from, step.next)
                            .await?;
                        reached.push((step.partition, to));
                        cursor.insert(step.partition, to);
                    }
                }
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &cursor {
            if !reached
                .iter()
                .any(|(done, to)| done == partition && to == next)
            {
                offsets.add_partition_offset(&self.source, *partition, Offset::Offset(*next))?;
            }
        }
        if offsets.count() == 0 {
            return Ok(reached);
        }
        self.begin()?;
        let produced = self.produce_decided(batches, &current).await;
        if self.finish(produced, &offsets, membership).await? {
            reached.extend(
                offsets
                    .elements()
                    .iter()
                    .filter_map(|element| Some((element.partition(), element.offset().to_raw()?))),
            );
        }
        Ok(reached)
    }

    /// Publishes the ledger rows of `partition` from `from` up to `to` (exclusive) again,
    /// with the current balances and the alerts they raised, in transactions of up to
    /// `REPUBLISH_CHUNK` rows. Returns how far it got (short of `to` if Postgres could not
    /// be read or a transaction was aborted); an error only if the producer cannot go on.
    pub(crate) async fn republish(
        &self,
        membership: &Membership,
        partition: i32,
        from: i64,
        to: i64,
    ) -> anyhow::Result<i64> {
        let mut at = from;
        while at < to {
            let stored = async {
                let rows =
                    ledger::ledger_rows(&self.pool, partition, at, to, REPUBLISH_CHUNK).await?;
                let reach = match rows.last() {
                    Some(last) if rows.len() as i64 == REPUBLISH_CHUNK => last.source_offset() + 1,
                    _ => to,
                };
                let entries: Vec<LedgerEntry> =
                    rows.into_iter().map(ledger::LedgerRow::entry).collect();
                let (balances, alerts) = ledger::outputs_of(&self.pool, &entries).await?;
                Ok::<_, sqlx::Error>((reach, entries, balances, alerts))
            };
            // Postgres away is no reason to stop the consumer: what is left is published on
            // a later try.
            let (reach, entries, balances, alerts) = match stored.await {
                Ok(stored) => stored,
                Err(error) => {
                    self.metrics.error("postgres");
                    tracing::warn!(%error, partition, "Reading ledger rows to publish failed.");
                    break;
                }
            };
            let mut offsets = TopicPartitionList::new();
            offsets.add_partition_offset(&self.source, partition, Offset::Offset(reach))?;
            self.begin()?;
            let produced = self.produce_stored(&entries, &balances, &alerts).await;
            if !self.finish(produced, &offsets, membership).await? {
                break;
            }
            self.metrics.republished.inc_by(entries.len() as u64);
            tracing::info!(
                partition,
                from = at,
                to = reach,
                entries = entries.len(),
                "Published ledger rows again from Postgres."
            );
            at = reach;
        }
        Ok(at)
    }

    pub(crate) fn metrics(&self) -> &ProcessorMetrics {
        &self.metrics
    }

    fn begin(&self) -> anyhow::Result<()> {
        self.producer.begin_transaction()?;
        Ok(())
    }

    /// Commits the transaction with `offsets`, or aborts it if producing failed or the
    /// commit is refused. `Ok(false)`: aborted, nothing of it is visible. An error: the
    /// producer cannot go on (fenced, or the abort failed); a new one must replace it.
    async fn finish(
        &self,
        produced: anyhow::Result<()>,
        offsets: &TopicPartitionList,
        membership: &Membership,
    ) -> anyhow::Result<bool> {
        let outcome = match produced {
            Ok(()) => {
                let (offsets, membership) = (offsets.clone(), membership.clone());
                match self
                    .resumed(move |producer, timeout| {
                        producer.send_offsets_to_transaction(&offsets, &membership, timeout)
                    })
                    .await?
                {
                    Ok(()) => self
                        .resumed(|producer, timeout| producer.commit_transaction(timeout))
                        .await?
                        .map_err(anyhow::Error::from),
                    Err(error) => Err(error.into()),
                }
            }
            Err(error) => Err(error),
        };
        let error = match outcome {
            Ok(()) => {
                self.metrics
                    .output_transactions
                    .with_label_values(&["committed"])
                    .inc();
                return Ok(true);
            }
            Err(error) => error,
        };
        if let Some(KafkaError::Transaction(failure)) = error.downcast_ref::<KafkaError>()
            && failure.is_fatal()
        {
            return Err(error.context("the output producer cannot go on"));
        }
        self.metrics
            .output_transactions
            .with_label_values(&["aborted"])
            .inc();
        tracing::warn!(
            error = format!("{error:#}"),
            "An output transaction failed; aborted. Its partitions are published again from Postgres."
        );
        self.resumed(|producer, timeout| producer.abort_transaction(timeout))
            .await??;
        Ok(false)
    }

    /// `call` on the producer, resumed while it only times out (see [`resumed`]).
    async fn resumed<F>(&self, call: F) -> anyhow::Result<Result<(), KafkaError>>
    where
        F: Fn(&FutureProducer, Duration) -> Result<(), KafkaError> + Clone + Send + 'static,
    {
        resumed(&self.producer, self.timeout, call).await
    }
}

/// How many transaction timeouts a transactional call may take, resumed each time one
/// runs out, before the producer is given up (as `kafka::transactional_producer` waits for
/// the coordinator when it starts).
const PATIENCE: u32 = 6;

/// Runs a transactional call of librdkafka's, calling it again while it only timed out
/// ("retry call to resume"; calling anything else meanwhile is refused as conflicting),
/// for up to `PATIENCE` transaction timeouts.
///
/// A broker lost mid-transaction holds these calls longer than one transaction timeout:
/// the coordinator first completes the previous transaction, whose markers wait for the
/// lost broker's partitions to move (KRaft fences it 9 s after its last heartbeat, counted
/// afresh when the node was the active controller), and Apache Kafka 4.1's coordinator has
/// been seen to finish that only when other work woke it, 30 s after the kill. Replacing
/// the producer instead would wait for the same coordinator (`init_transactions` answers
/// "concurrent transactions" until then). The ledger never waits for the outputs.
///
/// An error (the producer is given up; the consumer starts again with a new one, which
/// fences it) if one call does not return within twice its timeout: librdkafka has had
/// calls that never return (a fault-suite run once waited minutes on one).
async fn resumed<P, F>(
    producer: &P,
    timeout: Duration,
    call: F,
) -> anyhow::Result<Result<(), KafkaError>>
where
    P: Clone + Send + 'static,
    F: Fn(&P, Duration) -> Result<(), KafkaError> + Clone + Send + 'static,
{
    let started = std::time::Instant::now();
    let stuck = 2 * timeout;
    loop {
        let (producer, call) = (producer.clone(), call.clone());
        let returned = tokio::time::timeout(
            stuck,
            tokio::task::spawn_blocking(move || call(&producer, timeout)),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "a transactional call did not return within {stuck:?}; the output producer cannot go on"
            )
        })??;
        match returned {
            Err(KafkaError::Transaction(error))
                if error.is_retriable()
                    && !error.txn_requires_abort()
                    && started.elapsed() < PATIENCE * timeout =>
            {
                tracing::warn!(%error, "A transactional call takes long; resuming it.");
                // Never a busy loop, whatever librdkafka answers at once.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return Ok(result),
        }
    }
}

/// Each partition's run of `records` (in partition order), as ranges of the batch
/// (`records` starts at `start` in it).
fn partition_runs(records: &[ledger::Record], start: usize) -> Vec<(i32, Range<usize>)> {
    let mut runs: Vec<(i32, Range<usize>)> = Vec::new();
    for (at, record) in records.iter().enumerate() {
        match runs.last_mut() {
            Some((partition, run)) if *partition == record.partition => run.end = start + at + 1,
            _ => runs.push((record.partition, start + at..start + at + 1)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_transactional_call_that_never_returns_gives_the_producer_up() {
        let timeout = Duration::from_millis(50);
        let stuck = resumed(&(), timeout, |_, _| {
            std::thread::sleep(Duration::from_millis(400));
            Ok(())
        })
        .await;
        let error = stuck.expect_err("a call held past twice its timeout");
        assert!(error.to_string().contains("cannot go on"), "{error:#}");
        let returned = resumed(&(), timeout, |_, _| Ok(())).await;
        assert!(matches!(returned, Ok(Ok(()))), "{returned:?}");
    }

    #[test]
    fn a_batch_in_partition_order_splits_into_one_run_per_partition() {
        let records: Vec<ledger::Record> = [(0, 10), (0, 11), (3, 4), (5, 1), (5, 2), (5, 3)]
            .into_iter()
            .map(|(partition, offset)| crate::test_support::record(partition, offset))
            .collect();
        assert_eq!(
            partition_runs(&records, 0),
            vec![(0, 0..2), (3, 2..3), (5, 3..6)]
        );
        assert_eq!(
            partition_runs(&records[2..], 2),
            vec![(3, 2..3), (5, 3..6)],
            "ranges of the whole batch"
        );
        assert!(partition_runs(&[], 0).is_empty());
    }
}
