//! The Redis cache writer. After each commit: the current balances of the stores this processor holds (for
//! hot reads), every movement's outcome (for ingest's `?wait`), and how far each partition
//! has been committed (for read-your-writes). Redis is a cache: a failure here never fails
//! or slows a batch for long. The processor marks the cache stale, goes on, and rebuilds
//! what it holds from Postgres once Redis answers again.

use std::time::{Duration, Instant};

use schemas::StoreId;
use serde::Serialize;
use service_kit::redis::Redis;
use sqlx::PgPool;
use uuid::Uuid;

use crate::decide::{Holding, Outcome};
use crate::ledger::{Progress, Record};
use crate::metrics::ProcessorMetrics;

/// The longest a batch waits on Redis.
const REDIS_WAIT: Duration = Duration::from_millis(500);
/// How often a stale cache tries Redis again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

pub use schemas::cache::{BalancesChanged, CachedBalance, OutcomeNotice};

fn notice(record: &Record, outcome: &Outcome) -> OutcomeNotice {
    let recorded = outcome.recorded();
    OutcomeNotice {
        movement_id: record.movement.movement_id,
        partition: record.partition,
        offset: record.offset,
        status: outcome.status().as_str().to_owned(),
        reject_reason: recorded.reject_reason.map(str::to_owned),
        available_quantity: recorded.available_quantity,
        balance_after: recorded.balance_after,
        original_status: recorded.original_status.map(str::to_owned),
    }
}

pub fn balances_key(redis: &Redis, store: StoreId) -> String {
    redis.key(&schemas::cache::balances_key(store))
}

pub fn balances_version_key(redis: &Redis, store: StoreId) -> String {
    redis.key(&schemas::cache::balances_version_key(store))
}

pub fn outcome_channel(redis: &Redis, movement_id: Uuid) -> String {
    redis.key(&schemas::cache::outcome_channel(movement_id))
}

pub fn progress_key(redis: &Redis, topic: &str) -> String {
    redis.key(&schemas::cache::progress_key(topic))
}

#[derive(Debug)]
pub struct CacheWriter {
    redis: Redis,
    pool: PgPool,
    group: String,
    topic: String,
    metrics: ProcessorMetrics,
    /// The cache missed writes: rebuild before trusting it again.
    stale: bool,
    last_try: Option<Instant>,
}

impl CacheWriter {
    pub fn new(
        redis: Redis,
        pool: PgPool,
        group: String,
        topic: String,
        metrics: ProcessorMetrics,
    ) -> Self {
        Self {
            redis,
            pool,
            group,
            topic,
            metrics,
            // The first batch writes whole stores anyway; nothing to rebuild at start.
            stale: false,
            last_try: None,
        }
    }

    /// The cache may have missed writes: rebuild it before trusting it again.
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// After a commit: `loaded` are stores whose whole state this batch loaded (their
    /// cache entry is written whole), `held` every store this processor holds.
    pub async fn after_commit(
        &mut self,
        records: &[Record],
        outcomes: &[Outcome],
        changed: &[(&Record, Holding)],
        progress: &[Progress],
        loaded: &[(StoreId, Vec<(schemas::ProductId, CachedBalance)>)],
        held: impl FnOnce() -> Vec<StoreId>,
    ) {
        if !self.recover(held).await {
            return;
        }
        let mut pipe = redis::pipe();
        for (store, balances) in loaded {
            let key = balances_key(&self.redis, *store);
            pipe.del(&key).ignore();
            for (product, balance) in balances {
                pipe.hset(&key, product.get(), json(balance)).ignore();
            }
        }
        for (record, holding) in changed {
            let movement = &record.movement;
            let balance = CachedBalance {
                quantity: holding.quantity,
                average_unit_cost_paise: holding.average_cost,
                last_movement_id: movement.movement_id,
                updated_at: record.recorded_at,
            };
            pipe.hset(
                balances_key(&self.redis, movement.store_id),
                movement.product_id.get(),
                json(&balance),
            )
            .ignore();
        }
        let touched: std::collections::BTreeSet<StoreId> = loaded
            .iter()
            .map(|(store, _)| *store)
            .chain(changed.iter().map(|(record, _)| record.movement.store_id))
            .collect();
        let progress: Vec<(i32, i64)> = progress
            .iter()
            .map(|step| (step.partition, step.next))
            .collect();
        self.versions_and_progress(&mut pipe, &touched, &progress);
        for (record, outcome) in records.iter().zip(outcomes) {
            pipe.publish(
                outcome_channel(&self.redis, record.movement.movement_id),
                json(&notice(record, outcome)),
            )
            .ignore();
        }
        if let Err(error) = self.run(&pipe).await {
            self.metrics.error("redis");
            tracing::warn!(%error, "Redis is unavailable; processing goes on, the cache will be rebuilt.");
            self.stale = true;
            self.last_try = Some(Instant::now());
        }
    }

    /// Whether the cache is usable: if it went stale, tries (at most once a second) to
    /// rebuild `held`'s balances from Postgres. Also called while idle, so the cache
    /// catches up without waiting for traffic.
    pub async fn recover(&mut self, held: impl FnOnce() -> Vec<StoreId>) -> bool {
        if !self.stale {
            return true;
        }
        if self
            .last_try
            .is_some_and(|last| last.elapsed() < RETRY_EVERY)
        {
            return false;
        }
        self.last_try = Some(Instant::now());
        match self.rebuild(&held()).await {
            Ok(()) => {
                tracing::info!("Redis answers again; the balance cache was rebuilt from Postgres.");
                self.stale = false;
                true
            }
            Err(error) => {
                self.metrics.error("redis");
                tracing::debug!(%error, "Redis is still unavailable.");
                false
            }
        }
    }

    async fn run(&self, pipe: &redis::Pipeline) -> anyhow::Result<()> {
        let mut connection = tokio::time::timeout(REDIS_WAIT, self.redis.connection()).await??;
        tokio::time::timeout(REDIS_WAIT, pipe.query_async::<()>(&mut connection)).await??;
        Ok(())
    }

    /// Rewrites the cached balances of `stores` and the progress from Postgres.
    async fn rebuild(&self, stores: &[StoreId]) -> anyhow::Result<()> {
        self.run(redis::pipe().cmd("PING")).await?;
        let ids: Vec<i64> = stores.iter().map(|store| store.get()).collect();
        let rows = crate::ledger::balances(&self.pool, &ids).await?;
        let offsets: Vec<(i32, i64)> =
            service_kit::postgres::committed_offsets(&self.pool, &self.group, &self.topic)
                .await?
                .into_iter()
                .collect();
        let mut pipe = redis::pipe();
        for store in stores {
            pipe.del(balances_key(&self.redis, *store)).ignore();
        }
        for row in rows {
            let balance = CachedBalance {
                quantity: row.quantity,
                average_unit_cost_paise: row.average_unit_cost_paise,
                last_movement_id: row.last_movement_id,
                updated_at: row.updated_at,
            };
            let key = balances_key(&self.redis, StoreId(row.store_id));
            pipe.hset(key, row.product_id, json(&balance)).ignore();
        }
        let stores: std::collections::BTreeSet<StoreId> = stores.iter().copied().collect();
        self.versions_and_progress(&mut pipe, &stores, &offsets);
        self.run(&pipe).await
    }

    /// After the hash writes of `stores`: a new version of each, the progress, and the
    /// notice naming both (for readers holding copies of the hashes).
    fn versions_and_progress(
        &self,
        pipe: &mut redis::Pipeline,
        stores: &std::collections::BTreeSet<StoreId>,
        progress: &[(i32, i64)],
    ) {
        // A version never used before (a counter would restart with Redis).
        let version = Uuid::new_v4().to_string();
        for store in stores {
            pipe.set(balances_version_key(&self.redis, *store), &version)
                .ignore();
        }
        let progress_key = progress_key(&self.redis, &self.topic);
        for (partition, next) in progress {
            pipe.hset(&progress_key, partition, next).ignore();
        }
        if stores.is_empty() && progress.is_empty() {
            return;
        }
        let notice = BalancesChanged {
            stores: stores.iter().map(|store| store.get()).collect(),
            progress: progress.to_vec(),
        };
        pipe.publish(
            self.redis.key(&schemas::cache::balances_changed_channel()),
            json(&notice),
        )
        .ignore();
    }
}

fn json(value: &impl Serialize) -> String {
    // Plain structs of numbers, strings and UUIDs always serialize.
    serde_json::to_string(value).unwrap_or_default()
}
