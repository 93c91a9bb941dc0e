//! query-api's own metrics (HTTP request metrics come from service-kit). Labels are
//! bounded: sources and outcomes, never ids.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Debug, Clone)]
pub struct QueryMetrics {
    /// `bazaar_query_redis_fallbacks_total`: Redis failed or was slow, Postgres answered.
    redis_fallbacks: IntCounter,
    /// `bazaar_query_consistency_waits_total{outcome="reached"|"timed_out"}`.
    consistency_waits: IntCounterVec,
    /// How long requests with a consistency token waited for the processors.
    consistency_wait_seconds: Histogram,
    /// `bazaar_query_replica_reads_total{result="hit"|"miss"}`: balance reads answered
    /// from query-api's copies, or not.
    replica_reads: IntCounterVec,
    /// `bazaar_query_replica_balances`: balances held in the copies.
    replica_balances: IntGauge,
    /// `bazaar_query_database_reads_total{server="standby"|"primary", why}`: which
    /// PostgreSQL answered a history, rollup, alert or audit read, and why.
    database_reads: IntCounterVec,
    /// `bazaar_query_standby_lag_bytes`: WAL the standby has yet to replay.
    standby_lag_bytes: IntGauge,
}

impl QueryMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            redis_fallbacks: IntCounter::new(
                "bazaar_query_redis_fallbacks_total",
                "Reads Postgres answered because Redis failed or was slow.",
            )?,
            consistency_waits: IntCounterVec::new(
                Opts::new(
                    "bazaar_query_consistency_waits_total",
                    "Requests that carried a consistency token, by whether the processors reached it in time.",
                ),
                &["outcome"],
            )?,
            consistency_wait_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "bazaar_query_consistency_wait_seconds",
                    "Time a request with a consistency token waited for the processors.",
                )
                .buckets(vec![
                    0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            replica_reads: IntCounterVec::new(
                Opts::new(
                    "bazaar_query_replica_reads_total",
                    "Balance reads answered from query-api's in-memory copies of the Redis hashes (hit) or not (miss).",
                ),
                &["result"],
            )?,
            replica_balances: IntGauge::new(
                "bazaar_query_replica_balances",
                "Balances held in query-api's in-memory copies of the Redis hashes.",
            )?,
            database_reads: IntCounterVec::new(
                Opts::new(
                    "bazaar_query_database_reads_total",
                    "History, rollup, alert and audit reads by the PostgreSQL server that answered (standby or primary) and why.",
                ),
                &["server", "why"],
            )?,
            standby_lag_bytes: IntGauge::new(
                "bazaar_query_standby_lag_bytes",
                "Bytes of the primary's WAL the standby (DATABASE_READ_URL) has not replayed yet, measured each second.",
            )?,
        };
        registry.register(Box::new(metrics.database_reads.clone()))?;
        registry.register(Box::new(metrics.standby_lag_bytes.clone()))?;
        registry.register(Box::new(metrics.redis_fallbacks.clone()))?;
        registry.register(Box::new(metrics.replica_reads.clone()))?;
        registry.register(Box::new(metrics.replica_balances.clone()))?;
        registry.register(Box::new(metrics.consistency_waits.clone()))?;
        registry.register(Box::new(metrics.consistency_wait_seconds.clone()))?;
        Ok(metrics)
    }

    pub fn redis_fallback(&self) {
        self.redis_fallbacks.inc();
    }

    pub fn replica_read(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.replica_reads.with_label_values(&[result]).inc();
    }

    pub fn replica_balances(&self, held: usize) {
        self.replica_balances
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    pub fn database_read(&self, server: &str, why: &str) {
        self.database_reads.with_label_values(&[server, why]).inc();
    }

    pub fn standby_lag_bytes(&self, bytes: i64) {
        self.standby_lag_bytes.set(bytes);
    }

    pub fn consistency_wait(&self, reached: bool, seconds: f64) {
        let outcome = if reached { "reached" } else { "timed_out" };
        self.consistency_waits.with_label_values(&[outcome]).inc();
        self.consistency_wait_seconds.observe(seconds);
    }
}
