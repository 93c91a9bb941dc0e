//! The processors' metrics. Labels are bounded: partition numbers, kinds, statuses and
//! component names — never ids.

use std::collections::{BTreeMap, HashMap};

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::decide::Outcome;
use crate::ledger::Record;

#[derive(Debug, Clone)]
pub struct ProcessorMetrics {
    /// `bazaar_processor_lag{partition}`: records on the partition not yet committed.
    pub lag: IntGaugeVec,
    pub batch_size: Histogram,
    pub batch_seconds: Histogram,
    /// `bazaar_processor_stage_duration_seconds{stage}`: where a batch's time goes —
    /// `poll`, `read` (Postgres), `decide`, `publish` (outputs acknowledged), `commit`
    /// (Postgres), `cache` (Redis).
    pub stage_seconds: prometheus::HistogramVec,
    /// `bazaar_processor_movements_total{kind, status}`; status `dead_lettered` for DLQ.
    pub outcomes: IntCounterVec,
    /// Received by ingest → committed to Postgres (the movements ingest received: not the
    /// transfer-ins the processors write).
    pub end_to_end_seconds: Histogram,
    /// `bazaar_processor_errors_total{component="postgres"|"kafka"|"redis"}`.
    pub errors: IntCounterVec,
    /// `bazaar_processor_partition_halted{partition}`: 1 while the partition waits for an
    /// operator because its stored position is one Kafka no longer has (`halts`).
    pub partition_halted: IntGaugeVec,
    /// `bazaar_processor_poisoned_total`: movements that failed alone in Postgres and went
    /// to the dead-letter topic (`isolation`).
    pub poisoned: IntCounter,
    /// `bazaar_processor_unpublished{partition}`: records of an owned partition read (and
    /// committed, or being committed) whose outputs are not on the output topics yet.
    pub unpublished: IntGaugeVec,
    /// `bazaar_processor_output_transactions_total{outcome="committed"|"aborted"}`.
    pub output_transactions: IntCounterVec,
    /// `bazaar_processor_republished_total`: ledger entries published again from Postgres
    /// (after a crash, an aborted transaction or a rebalance).
    pub republished: IntCounter,
    /// `bazaar_processor_drained_total`: batches that waited for the batch in flight's
    /// commit before they could be decided (they held a count, or a void of a movement that
    /// batch decided): each is a batch whose reads did not overlap the previous write.
    pub drained: IntCounter,
    /// `bazaar_processor_transfers_announced_total`: transfer-ins handed to output
    /// transactions (an aborted transaction's are handed again with the same ids).
    pub transfers_announced: IntCounter,
}

impl ProcessorMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            lag: IntGaugeVec::new(
                Opts::new(
                    "bazaar_processor_lag",
                    "Movements on the partition after the last committed offset.",
                ),
                &["partition"],
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("bazaar_processor_batch_size", "Movements per batch.").buckets(
                    vec![
                        1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
                    ],
                ),
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "bazaar_processor_batch_duration_seconds",
                    "Time to decide, publish and commit one batch.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            stage_seconds: prometheus::HistogramVec::new(
                HistogramOpts::new(
                    "bazaar_processor_stage_duration_seconds",
                    "Time one batch spent in each stage.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
                &["stage"],
            )?,
            outcomes: IntCounterVec::new(
                Opts::new(
                    "bazaar_processor_movements_total",
                    "Movements processed, by kind and outcome.",
                ),
                &["kind", "status"],
            )?,
            end_to_end_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "bazaar_processor_end_to_end_seconds",
                    "From ingest receiving a movement to its outcome committed in Postgres and announced.",
                )
                // Fine between 250 ms (the steady-state target) and 1 s, where a p99 falls
                // today: a quantile is interpolated within its bucket.
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0,
                    1.5, 2.5, 5.0, 10.0, 30.0,
                ]),
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "bazaar_processor_errors_total",
                    "Failures talking to a dependency, by component.",
                ),
                &["component"],
            )?,
            partition_halted: IntGaugeVec::new(
                Opts::new(
                    "bazaar_processor_partition_halted",
                    "1 while the partition is halted: its stored position is one Kafka no longer has.",
                ),
                &["partition"],
            )?,
            poisoned: IntCounter::new(
                "bazaar_processor_poisoned_total",
                "Movements that failed alone in Postgres and went to the dead-letter topic.",
            )?,
            unpublished: IntGaugeVec::new(
                Opts::new(
                    "bazaar_processor_unpublished",
                    "Records of the partition read by this processor whose outputs are not on the output topics yet.",
                ),
                &["partition"],
            )?,
            output_transactions: IntCounterVec::new(
                Opts::new(
                    "bazaar_processor_output_transactions_total",
                    "Kafka transactions of output records, by outcome.",
                ),
                &["outcome"],
            )?,
            republished: IntCounter::new(
                "bazaar_processor_republished_total",
                "Ledger entries published again from Postgres after a crash, an aborted transaction or a rebalance.",
            )?,
            drained: IntCounter::new(
                "bazaar_processor_drained_total",
                "Batches that waited for the batch in flight's commit before being decided (a count, or a void of a movement it decided).",
            )?,
            transfers_announced: IntCounter::new(
                "bazaar_processor_transfers_announced_total",
                "Transfer-ins handed to output transactions for their destination (an aborted transaction's are handed again, with the same ids).",
            )?,
        };
        registry.register(Box::new(metrics.lag.clone()))?;
        registry.register(Box::new(metrics.batch_size.clone()))?;
        registry.register(Box::new(metrics.batch_seconds.clone()))?;
        registry.register(Box::new(metrics.stage_seconds.clone()))?;
        registry.register(Box::new(metrics.outcomes.clone()))?;
        registry.register(Box::new(metrics.end_to_end_seconds.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.partition_halted.clone()))?;
        registry.register(Box::new(metrics.poisoned.clone()))?;
        registry.register(Box::new(metrics.unpublished.clone()))?;
        registry.register(Box::new(metrics.output_transactions.clone()))?;
        registry.register(Box::new(metrics.republished.clone()))?;
        registry.register(Box::new(metrics.drained.clone()))?;
        registry.register(Box::new(metrics.transfers_announced.clone()))?;
        // At 0 from the start, for the dashboards' rates.
        for component in ["postgres", "kafka", "redis"] {
            metrics.errors.with_label_values(&[component]);
        }
        Ok(metrics)
    }

    /// Observes the time since `since` as `stage` and restarts the clock.
    pub fn stage(&self, stage: &str, since: &mut std::time::Instant) {
        let now = std::time::Instant::now();
        self.stage_seconds
            .with_label_values(&[stage])
            .observe((now - *since).as_secs_f64());
        *since = now;
    }

    /// Observes each record's end-to-end latency: received by ingest → applied (committed
    /// in Postgres and announced through Redis), timed when the batch lands, not when the
    /// processing loop next looks at it. Not a transfer-in's: ingest never received it (it
    /// carries its transfer-out's time, and is written once that is published).
    pub fn applied(&self, records: &[crate::ledger::Record]) {
        let now = chrono::Utc::now();
        for record in records {
            if record.movement.kind == schemas::MovementKind::TransferIn {
                continue;
            }
            let micros = (now - record.movement.received_at)
                .num_microseconds()
                .unwrap_or(0);
            self.end_to_end_seconds.observe(micros.max(0) as f64 / 1e6);
        }
    }

    pub fn error(&self, component: &str) {
        self.errors.with_label_values(&[component]).inc();
    }

    /// Counts a committed run's outcomes (and its batch's dead letters): per batch, then
    /// one labelled counter each, not a label lookup per movement.
    pub fn count_outcomes(&self, records: &[Record], outcomes: &[Outcome], dead_letters: usize) {
        let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for (record, outcome) in records.iter().zip(outcomes) {
            *counts
                .entry((record.movement.kind.as_str(), outcome.status().as_str()))
                .or_default() += 1;
        }
        for ((kind, status), count) in counts {
            self.outcomes
                .with_label_values(&[kind, status])
                .inc_by(count);
        }
        if dead_letters > 0 {
            self.outcomes
                .with_label_values(&["unknown", "dead_lettered"])
                .inc_by(dead_letters as u64);
        }
    }

    /// `bazaar_processor_lag` from the partitions' high watermarks (librdkafka's statistics,
    /// not a broker round trip) and the processor's positions; `bazaar_processor_unpublished`
    /// from the positions and how far the outputs are published.
    pub fn set_lag(
        &self,
        high_watermarks: &HashMap<i32, i64>,
        positions: &HashMap<i32, i64>,
        published: impl Iterator<Item = (i32, i64)>,
    ) {
        for (partition, lag) in lag(high_watermarks, positions) {
            self.lag
                .with_label_values(&[&partition.to_string()])
                .set(lag);
        }
        for (partition, published) in published {
            if let Some(position) = positions.get(&partition) {
                self.unpublished
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

#[cfg(test)]
mod tests {
    use super::*;

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
