//! Copies of the cached store balances in query-api's memory, so that a hot read — one
//! product's stock, a store's whole inventory that has not changed — costs no Redis
//! round trip. The copies follow Redis, never lead it:
//!
//! - A store's copy is its Redis hash as read whole (by a store inventory read, or in the
//!   background after a one-product read missed), with the hash's version.
//! - The processors publish a [`BalancesChanged`] notice after every write to the hashes;
//!   a notice naming a store drops its copy, and the next read goes to Redis again.
//! - A copy read from Redis is kept only if no notice for its store arrived since just
//!   before the read began: a read may race a write, never outlive it.
//! - While the subscription is down (Redis gone, connection lost) there are no copies:
//!   reads go to Redis, or Postgres, as before. Notices lost in flight are caught by an
//!   audit each second that compares every copy's version with Redis's.
//! - Answers carry as freshness the progress the notices reported (taken at subscription
//!   time, then advanced by each notice): every batch they count has been seen, so every
//!   copy still held includes it. A consistency token these do not cover yet bypasses
//!   the copies.
//!
//! Bounded: past `QUERY_REPLICA_MAX_BALANCES` balances, the copies held longest go first.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use schemas::cache::{self, BalancesChanged};
use schemas::consistency::ConsistencyToken;
use service_kit::redis::Redis;
use tokio_util::sync::CancellationToken;

use crate::balances::{Balance, Freshness, Source, parse_all, store_keys};
use crate::consistency::covers;
use crate::metrics::QueryMetrics;

mod following;

/// How often every copy's version is compared with Redis's.
const AUDIT_EVERY: Duration = Duration::from_secs(1);
/// How long after losing the subscription the copies try again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// The longest a background read of a store's hash may take.
const READ_WAIT: Duration = Duration::from_millis(500);

/// A store's balances as Redis held them at `version`, by product id.
#[derive(Debug)]
pub struct Snapshot {
    pub balances: Arc<Vec<(i64, Balance)>>,
    pub version: String,
}

impl Snapshot {
    pub fn get(&self, product: i64) -> Option<&Balance> {
        self.balances
            .binary_search_by_key(&product, |(id, _)| *id)
            .ok()
            .map(|at| &self.balances[at].1)
    }
}

/// Taken before reading a store's hash; the read is kept only if nothing changed since.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    epoch: u64,
    seq: u64,
}

#[derive(Debug, Default)]
struct Copies {
    /// Subscribed, and the progress below read after subscribing.
    live: bool,
    /// Changes at every subscription and loss of it.
    epoch: u64,
    /// Counts notices.
    seq: u64,
    stores: HashMap<i64, Arc<Snapshot>>,
    /// Store → `seq` of the last notice naming it.
    changed: HashMap<i64, u64>,
    /// Copies in the order they were taken (some may have been dropped or replaced since).
    order: VecDeque<(i64, Weak<Snapshot>)>,
    balances: usize,
    progress: Arc<BTreeMap<i32, i64>>,
}

impl Copies {
    fn drop_store(&mut self, store: i64) {
        if let Some(old) = self.stores.remove(&store) {
            self.balances -= old.balances.len();
        }
    }

    /// Whether `store`'s copy is still `taken`.
    fn holds(&self, store: i64, taken: &Weak<Snapshot>) -> bool {
        self.stores
            .get(&store)
            .is_some_and(|current| std::ptr::eq(Arc::as_ptr(current), taken.as_ptr()))
    }

    fn freshness(&self) -> Freshness {
        Freshness {
            source: Source::Cache,
            processed: BTreeMap::clone(&self.progress),
        }
    }

    fn clear(&mut self, live: bool) {
        self.live = live;
        self.epoch += 1;
        self.stores.clear();
        self.order.clear();
        self.balances = 0;
    }
}

#[derive(Debug)]
pub struct BalanceCopies {
    redis: Redis,
    progress_key: String,
    channel: String,
    max_balances: usize,
    metrics: QueryMetrics,
    copies: RwLock<Copies>,
    /// Stores being read in the background.
    reading: Mutex<HashSet<i64>>,
}

impl BalanceCopies {
    pub fn new(redis: Redis, topic: &str, max_balances: usize, metrics: QueryMetrics) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            progress_key: redis.key(&cache::progress_key(topic)),
            channel: redis.key(&cache::balances_changed_channel()),
            redis,
            max_balances,
            copies: RwLock::default(),
            reading: Mutex::default(),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Copies> {
        self.copies.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Copies> {
        self.copies.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the copies under the lock and reports how many balances they hold.
    fn change<T>(&self, change: impl FnOnce(&mut Copies) -> T) -> T {
        let mut copies = self.write();
        let result = change(&mut copies);
        self.metrics.replica_balances(copies.balances);
        result
    }

    /// `store`'s copy and how fresh it is, if one is held and it covers `after`.
    pub fn get(
        &self,
        store: i64,
        after: Option<&ConsistencyToken>,
    ) -> Option<(Arc<Snapshot>, Freshness)> {
        let found = {
            let copies = self.read();
            copies
                .stores
                .get(&store)
                .filter(|_| copies.live)
                .map(|snapshot| (snapshot.clone(), copies.freshness()))
        };
        let found = found
            .filter(|(_, freshness)| after.is_none_or(|token| covers(&freshness.processed, token)));
        self.metrics.replica_read(found.is_some());
        found
    }

    /// Copies of every one of `stores`, or `None` if any is missing.
    pub fn get_all(
        &self,
        stores: &[i64],
        after: Option<&ConsistencyToken>,
    ) -> Option<(Vec<Arc<Snapshot>>, Freshness)> {
        let found = {
            let copies = self.read();
            stores
                .iter()
                .map(|store| copies.stores.get(store).cloned())
                .collect::<Option<Vec<_>>>()
                .filter(|_| copies.live)
                .map(|snapshots| (snapshots, copies.freshness()))
        };
        let found = found
            .filter(|(_, freshness)| after.is_none_or(|token| covers(&freshness.processed, token)));
        self.metrics.replica_read(found.is_some());
        found
    }

    /// Call before reading a store's hash whose result may be [`Self::offer`]ed.
    pub fn mark(&self) -> Option<Mark> {
        let copies = self.read();
        copies.live.then_some(Mark {
            epoch: copies.epoch,
            seq: copies.seq,
        })
    }

    /// Keeps `snapshot` as `store`'s copy unless a notice for the store arrived since
    /// `mark` (the read may have missed that write) or the subscription changed.
    pub fn offer(&self, store: i64, mark: Mark, snapshot: Arc<Snapshot>) {
        self.change(|copies| self.keep(copies, store, mark, snapshot));
    }

    fn keep(&self, copies: &mut Copies, store: i64, mark: Mark, snapshot: Arc<Snapshot>) {
        let changed_since = copies
            .changed
            .get(&store)
            .is_some_and(|seq| *seq > mark.seq);
        if !copies.live || copies.epoch != mark.epoch || changed_since {
            return;
        }
        copies.drop_store(store);
        copies.balances += snapshot.balances.len();
        copies.order.push_back((store, Arc::downgrade(&snapshot)));
        copies.stores.insert(store, snapshot);
        while copies.balances > self.max_balances {
            let Some((oldest, taken)) = copies.order.pop_front() else {
                break;
            };
            if copies.holds(oldest, &taken) {
                copies.drop_store(oldest);
            }
        }
        // `order` also names copies dropped or replaced since: keep it bounded.
        if copies.order.len() > 2 * copies.stores.len() + 64 {
            let mut order = std::mem::take(&mut copies.order);
            order.retain(|(store, taken)| copies.holds(*store, taken));
            copies.order = order;
        }
    }

    /// Reads `store`'s hash into a copy in the background (once at a time per store).
    pub fn warm(self: &Arc<Self>, store: i64) {
        let Some(mark) = self.mark() else {
            return;
        };
        if !self
            .reading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(store)
        {
            return;
        }
        let copies = self.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(READ_WAIT, copies.read_store(store)).await {
                Ok(Ok(Some(snapshot))) => copies.offer(store, mark, Arc::new(snapshot)),
                Ok(Ok(None)) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, store, "Reading a store's balances failed.")
                }
                Err(_) => tracing::debug!(store, "Reading a store's balances took too long."),
            }
            copies
                .reading
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&store);
        });
    }

    /// `store`'s hash and version, if Redis holds both and they parse.
    async fn read_store(&self, store: i64) -> redis::RedisResult<Option<Snapshot>> {
        let (key, version_key) = store_keys(&self.redis, store);
        let mut connection = self.redis.connection().await?;
        let (exists, version, fields): (bool, Option<String>, Vec<(i64, String)>) = redis::pipe()
            .exists(&key)
            .get(&version_key)
            .hgetall(&key)
            .query_async(&mut connection)
            .await?;
        Ok(match (exists, version, parse_all(fields)) {
            (true, Some(version), Some(balances)) => Some(Snapshot {
                balances: Arc::new(balances),
                version,
            }),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copies(max_balances: usize) -> Arc<BalanceCopies> {
        let settings = service_kit::settings::RedisSettings {
            url: "redis://127.0.0.1:9/".to_owned().into(),
            key_prefix: "test:".to_owned(),
            tls_ca_file: None,
        };
        let registry = prometheus::Registry::new();
        let metrics = QueryMetrics::register(&registry).unwrap();
        BalanceCopies::new(
            Redis::new(&settings).unwrap(),
            "movements",
            max_balances,
            metrics,
        )
    }

    fn subscribed(copies: &BalanceCopies, progress: &[(i32, i64)]) {
        copies.change(|copies| {
            copies.clear(true);
            copies.progress = Arc::new(progress.iter().copied().collect());
        });
    }

    fn snapshot(products: &[i64], version: &str) -> Arc<Snapshot> {
        let balance = |quantity| Balance {
            quantity,
            average_unit_cost_paise: None,
            last_movement_id: uuid::Uuid::nil(),
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        Arc::new(Snapshot {
            balances: Arc::new(products.iter().map(|id| (*id, balance(*id * 10))).collect()),
            version: version.to_owned(),
        })
    }

    fn changed(stores: &[i64], progress: &[(i32, i64)]) -> BalancesChanged {
        BalancesChanged {
            stores: stores.to_vec(),
            progress: progress.to_vec(),
        }
    }

    #[test]
    fn nothing_is_held_or_answered_without_the_subscription() {
        let copies = copies(100);
        assert!(copies.mark().is_none());
        subscribed(&copies, &[]);
        let mark = copies.mark().unwrap();
        copies.change(|copies| copies.clear(false));
        copies.offer(1, mark, snapshot(&[1], "v1"));
        assert!(copies.get(1, None).is_none());
        subscribed(&copies, &[]);
        copies.offer(1, mark, snapshot(&[1], "v1"));
        assert!(
            copies.get(1, None).is_none(),
            "read before the subscription changed"
        );
    }

    #[test]
    fn a_read_that_may_have_missed_a_write_is_not_kept_and_a_notice_drops_a_copy() {
        let copies = copies(100);
        subscribed(&copies, &[(0, 5)]);
        let before = copies.mark().unwrap();
        copies.apply(&changed(&[1], &[(0, 9)]));
        copies.offer(1, before, snapshot(&[1, 2], "v1"));
        assert!(
            copies.get(1, None).is_none(),
            "store 1 changed during the read"
        );
        copies.offer(2, before, snapshot(&[1, 2], "v1"));
        let (copy, freshness) = copies.get(2, None).expect("store 2 did not change");
        assert_eq!(copy.get(2).map(|balance| balance.quantity), Some(20));
        assert!(copy.get(3).is_none());
        assert_eq!(freshness.processed, BTreeMap::from([(0, 9)]));

        let after = copies.mark().unwrap();
        copies.offer(1, after, snapshot(&[1], "v2"));
        assert!(copies.get(1, None).is_some());
        copies.apply(&changed(&[1], &[(0, 7)]));
        assert!(copies.get(1, None).is_none(), "dropped by the notice");
        assert!(copies.get_all(&[1, 2], None).is_none(), "one store missing");
        let (_, freshness) = copies.get_all(&[2], None).unwrap();
        assert_eq!(
            freshness.processed,
            BTreeMap::from([(0, 9)]),
            "progress never goes back"
        );
    }

    #[test]
    fn a_consistency_token_beyond_the_notices_goes_around_the_copies() {
        let copies = copies(100);
        subscribed(&copies, &[(0, 5), (1, 3)]);
        copies.offer(1, copies.mark().unwrap(), snapshot(&[1], "v1"));
        let token = ConsistencyToken::at(1, 3);
        assert!(copies.get(1, Some(&token)).is_none());
        copies.apply(&changed(&[], &[(1, 4)]));
        assert!(copies.get(1, Some(&token)).is_some());
    }

    #[test]
    fn copies_past_the_budget_go_oldest_first() {
        let copies = copies(5);
        subscribed(&copies, &[]);
        for store in 1..=3 {
            copies.offer(store, copies.mark().unwrap(), snapshot(&[1, 2], "v"));
        }
        assert!(copies.get(1, None).is_none());
        assert!(copies.get(2, None).is_some());
        assert!(copies.get(3, None).is_some());
        // Taking store 2 again makes it the newest.
        copies.offer(2, copies.mark().unwrap(), snapshot(&[1, 2], "w"));
        copies.offer(4, copies.mark().unwrap(), snapshot(&[1, 2], "v"));
        assert!(copies.get(3, None).is_none());
        assert_eq!(copies.get(2, None).unwrap().0.version, "w");
        assert_eq!(copies.read().balances, 4);
    }
}
