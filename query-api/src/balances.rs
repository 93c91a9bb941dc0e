//! Current balances and how far the processors have got, from Redis when it holds them
//! and from Postgres otherwise — the same facts either way, since the processors write
//! Redis from what they committed. Redis failing (or answering slowly) sends reads to
//! Postgres for a second before Redis is tried again, so an outage costs latency once,
//! not on every request. Hot reads are answered from query-api's own copies of the
//! Redis hashes when it holds them (see [`crate::replica`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use schemas::cache::{self, CachedBalance};
use schemas::consistency::ConsistencyToken;
use serde::Serialize;
use service_kit::problem::ApiError;
use service_kit::redis::Redis;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::balance_copies::{BalanceCopies, Snapshot};
use crate::metrics::QueryMetrics;

/// The longest a read waits on Redis before asking Postgres.
const REDIS_WAIT: Duration = Duration::from_millis(250);
/// How long reads skip Redis after it failed.
const REDIS_PAUSE: Duration = Duration::from_secs(1);

/// Where the answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Redis, written by the processors after each commit, or query-api's copy of it.
    Cache,
    /// Postgres, the truth.
    Database,
}

/// How fresh an answer is: it reflects every movement before `processed` (the next
/// offset to process per partition of `inventory.movements.v1`), and maybe more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Freshness {
    pub source: Source,
    /// Partition → next offset the processors will process.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub processed: BTreeMap<i32, i64>,
}

/// What a store holds of one product.
pub type Balance = CachedBalance;

/// A store's balances as read.
#[derive(Debug)]
pub struct StoreBalances {
    /// By product id.
    pub balances: Arc<Vec<(i64, Balance)>>,
    pub freshness: Freshness,
    /// The cache's version of them; absent when Postgres answered.
    pub version: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Balances {
    redis: Redis,
    pool: PgPool,
    group: Arc<str>,
    topic: Arc<str>,
    progress_key: Arc<str>,
    metrics: QueryMetrics,
    copies: Arc<BalanceCopies>,
    started: Instant,
    /// Milliseconds after `started` before which Redis is not asked.
    pause_until: Arc<AtomicU64>,
}

type BalanceRow = (i64, i64, Option<i64>, Uuid, DateTime<Utc>);

const BALANCE_COLUMNS: &str =
    "product_id, quantity, average_unit_cost_paise, last_movement_id, updated_at";

fn balance(
    (_, quantity, average_unit_cost_paise, last_movement_id, updated_at): BalanceRow,
) -> Balance {
    Balance {
        quantity,
        average_unit_cost_paise,
        last_movement_id,
        updated_at,
    }
}

impl Balances {
    pub fn new(
        redis: Redis,
        pool: PgPool,
        group: &str,
        topic: &str,
        metrics: QueryMetrics,
        copies: Arc<BalanceCopies>,
    ) -> Self {
        let progress_key = redis.key(&cache::progress_key(topic));
        Self {
            copies,
            redis,
            pool,
            group: group.into(),
            topic: topic.into(),
            progress_key: progress_key.into(),
            metrics,
            started: Instant::now(),
            pause_until: Arc::new(AtomicU64::new(0)),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `pipe` on Redis unless Redis is paused; `None` means "ask Postgres".
    async fn redis<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        if self.elapsed_ms() < self.pause_until.load(Ordering::Relaxed) {
            return None;
        }
        let answer = tokio::time::timeout(REDIS_WAIT, async {
            let mut connection = self.redis.connection().await?;
            pipe.query_async::<T>(&mut connection).await
        })
        .await;
        match answer {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => self.pause(&error.to_string()),
            Err(_) => self.pause("no answer in time"),
        }
    }

    fn pause<T>(&self, error: &str) -> Option<T> {
        self.metrics.redis_fallback();
        let until = self.elapsed_ms() + u64::try_from(REDIS_PAUSE.as_millis()).unwrap_or(1_000);
        if self.pause_until.swap(until, Ordering::Relaxed) < self.elapsed_ms() {
            tracing::warn!(error, "Redis failed; reads go to Postgres for a second.");
        }
        None
    }

    fn parse_progress(fields: Vec<(i32, i64)>) -> BTreeMap<i32, i64> {
        fields.into_iter().collect()
    }

    /// The next offset per partition the processors have committed.
    async fn offsets(&self) -> Result<BTreeMap<i32, i64>, ApiError> {
        Ok(service_kit::postgres::committed_offsets(&self.pool, &self.group, &self.topic).await?)
    }

    fn database(processed: BTreeMap<i32, i64>) -> Freshness {
        Freshness {
            source: Source::Database,
            processed,
        }
    }

    /// How far the processors have got.
    pub async fn progress(&self) -> Result<Freshness, ApiError> {
        let mut pipe = redis::pipe();
        pipe.hgetall(&*self.progress_key);
        if let Some((fields,)) = self.redis::<(Vec<(i32, i64)>,)>(&pipe).await {
            return Ok(Freshness {
                source: Source::Cache,
                processed: Self::parse_progress(fields),
            });
        }
        Ok(Self::database(self.offsets().await?))
    }

    /// Every balance of `store`, by product id, and the cache's version of them (absent
    /// when Postgres answered), at least as fresh as `after`.
    pub async fn of_store(
        &self,
        store: i64,
        after: Option<&ConsistencyToken>,
    ) -> Result<StoreBalances, ApiError> {
        if let Some((snapshot, freshness)) = self.copies.get(store, after) {
            return Ok(StoreBalances {
                balances: snapshot.balances.clone(),
                freshness,
                version: Some(snapshot.version.clone()),
            });
        }
        let mark = self.copies.mark();
        let (key, version_key) = store_keys(&self.redis, store);
        let mut pipe = redis::pipe();
        // The processors write the hash, then the version, then the progress: read in the
        // other order, the hash is at least as new as the version and the progress.
        pipe.hgetall(&*self.progress_key)
            .exists(&key)
            .get(&version_key)
            .hgetall(&key);
        type Answer = (Vec<(i32, i64)>, bool, Option<String>, Vec<(i64, String)>);
        if let Some((progress, true, version, fields)) = self.redis::<Answer>(&pipe).await
            && let Some(balances) = parse_all(fields)
        {
            let balances = Arc::new(balances);
            if let (Some(mark), Some(version)) = (mark, &version) {
                let snapshot = Snapshot {
                    balances: balances.clone(),
                    version: version.clone(),
                };
                self.copies.offer(store, mark, Arc::new(snapshot));
            }
            return Ok(StoreBalances {
                balances,
                freshness: Freshness {
                    source: Source::Cache,
                    processed: Self::parse_progress(progress),
                },
                version,
            });
        }
        // Offsets first: the balances read after them are at least as fresh.
        let processed = self.offsets().await?;
        let rows: Vec<BalanceRow> = sqlx::query_as(&format!(
            "SELECT {BALANCE_COLUMNS} FROM balances WHERE store_id = $1 ORDER BY product_id"
        ))
        .bind(store)
        .fetch_all(&self.pool)
        .await?;
        Ok(StoreBalances {
            balances: Arc::new(rows.into_iter().map(|row| (row.0, balance(row))).collect()),
            freshness: Self::database(processed),
            version: None,
        })
    }

    /// The cache's version of `store`'s balances and the progress (in at most one round
    /// trip), at least as fresh as `after`; `None` when Redis has no version (or does not
    /// answer).
    pub async fn store_version(
        &self,
        store: i64,
        after: Option<&ConsistencyToken>,
    ) -> Option<(String, Freshness)> {
        if let Some((snapshot, freshness)) = self.copies.get(store, after) {
            return Some((snapshot.version.clone(), freshness));
        }
        let (_, version_key) = store_keys(&self.redis, store);
        let mut pipe = redis::pipe();
        pipe.hgetall(&*self.progress_key).get(&version_key);
        let (progress, version) = self
            .redis::<(Vec<(i32, i64)>, Option<String>)>(&pipe)
            .await?;
        Some((
            version?,
            Freshness {
                source: Source::Cache,
                processed: Self::parse_progress(progress),
            },
        ))
    }

    /// One product's balance in `store` (`None`: it never moved there), at least as fresh
    /// as `after`.
    pub async fn one(
        &self,
        store: i64,
        product: i64,
        after: Option<&ConsistencyToken>,
    ) -> Result<(Option<Balance>, Freshness), ApiError> {
        if let Some((snapshot, freshness)) = self.copies.get(store, after) {
            return Ok((snapshot.get(product).cloned(), freshness));
        }
        // Next time, from memory.
        self.copies.warm(store);
        let key = self
            .redis
            .key(&cache::balances_key(schemas::StoreId(store)));
        let mut pipe = redis::pipe();
        pipe.hgetall(&*self.progress_key)
            .exists(&key)
            .hget(&key, product);
        type Answer = (Vec<(i32, i64)>, bool, Option<String>);
        if let Some((progress, true, field)) = self.redis::<Answer>(&pipe).await {
            let parsed = field.map(|text| serde_json::from_str::<Balance>(&text));
            if let Some(Err(error)) = &parsed {
                self.pause::<()>(&format!("a cached balance does not parse: {error}"));
            } else {
                let freshness = Freshness {
                    source: Source::Cache,
                    processed: Self::parse_progress(progress),
                };
                return Ok((parsed.and_then(Result::ok), freshness));
            }
        }
        let processed = self.offsets().await?;
        let row: Option<BalanceRow> = sqlx::query_as(&format!(
            "SELECT {BALANCE_COLUMNS} FROM balances WHERE store_id = $1 AND product_id = $2"
        ))
        .bind(store)
        .bind(product)
        .fetch_optional(&self.pool)
        .await?;
        Ok((row.map(balance), Self::database(processed)))
    }

    /// `product`'s balance in each of `stores` that holds it, by store id, at least as
    /// fresh as `after`.
    pub async fn of_product(
        &self,
        stores: &[i64],
        product: i64,
        after: Option<&ConsistencyToken>,
    ) -> Result<(Vec<(i64, Balance)>, Freshness), ApiError> {
        if let Some((snapshots, freshness)) = self.copies.get_all(stores, after) {
            let balances = stores
                .iter()
                .zip(&snapshots)
                .filter_map(|(store, snapshot)| Some((*store, snapshot.get(product)?.clone())))
                .collect();
            return Ok((balances, freshness));
        }
        for store in stores {
            self.copies.warm(*store);
        }
        let mut pipe = redis::pipe();
        pipe.hgetall(&*self.progress_key);
        for store in stores {
            let key = self
                .redis
                .key(&cache::balances_key(schemas::StoreId(*store)));
            pipe.exists(&key).hget(&key, product);
        }
        if let Some(values) = self.redis::<Vec<redis::Value>>(&pipe).await
            && let Some(answer) = from_cache(stores, values)
        {
            return Ok(answer);
        }
        let processed = self.offsets().await?;
        let rows: Vec<BalanceRow> = sqlx::query_as(
            "SELECT store_id, quantity, average_unit_cost_paise, last_movement_id, updated_at
             FROM balances WHERE product_id = $1 AND store_id = ANY($2) ORDER BY store_id",
        )
        .bind(product)
        .bind(stores)
        .fetch_all(&self.pool)
        .await?;
        let balances = rows.into_iter().map(|row| (row.0, balance(row))).collect();
        Ok((balances, Self::database(processed)))
    }
}

/// The Redis keys of `store`'s balance hash and of its version.
pub(crate) fn store_keys(redis: &Redis, store: i64) -> (String, String) {
    let store = schemas::StoreId(store);
    (
        redis.key(&cache::balances_key(store)),
        redis.key(&cache::balances_version_key(store)),
    )
}

pub(crate) fn parse_all(fields: Vec<(i64, String)>) -> Option<Vec<(i64, Balance)>> {
    let mut balances = fields
        .into_iter()
        .map(|(product, text)| Some((product, serde_json::from_str(&text).ok()?)))
        .collect::<Option<Vec<_>>>()?;
    balances.sort_unstable_by_key(|(product, _)| *product);
    Some(balances)
}

/// The multi-store answer from Redis, if every store's hash is there (else Postgres
/// answers the whole question, so that one answer has one source).
fn from_cache(
    stores: &[i64],
    values: Vec<redis::Value>,
) -> Option<(Vec<(i64, Balance)>, Freshness)> {
    use redis::FromRedisValue;
    let mut values = values.into_iter();
    let progress = Vec::<(i32, i64)>::from_redis_value(values.next()?).ok()?;
    let mut balances = Vec::new();
    for store in stores {
        let exists = bool::from_redis_value(values.next()?).ok()?;
        let field = Option::<String>::from_redis_value(values.next()?).ok()?;
        if !exists {
            return None;
        }
        if let Some(text) = field {
            balances.push((*store, serde_json::from_str(&text).ok()?));
        }
    }
    Some((
        balances,
        Freshness {
            source: Source::Cache,
            processed: Balances::parse_progress(progress),
        },
    ))
}
