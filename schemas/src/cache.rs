//! What the processors write to Redis and the APIs read: key names (under the
//! deployment's `REDIS_KEY_PREFIX`) and values. Redis is a cache; Postgres holds the same
//! facts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::StoreId;

/// Hash of a store's current balances: field = product id, value = [`CachedBalance`]
/// JSON. Written whole when a processor takes the store on, then field by field; absent
/// while nobody has written it (readers then ask Postgres).
pub fn balances_key(store: StoreId) -> String {
    format!("balances:{store}")
}

/// A version the processors set — a value never used before — after every change to
/// [`balances_key`] of `store` (in the same pipeline, after the hash writes): a reader
/// that saw version `v` before reading the hash holds data at least as new as `v`, so a
/// rendering of it may be reused while the key still says `v`.
pub fn balances_version_key(store: StoreId) -> String {
    format!("balances_version:{store}")
}

/// Channel on which the processors publish a [`BalancesChanged`] notice after every
/// write to the cached balances (after the writes, in the same pipeline): a reader that
/// keeps copies of store hashes drops a store's copy on a notice naming it.
pub fn balances_changed_channel() -> String {
    "balances_changed".to_owned()
}

/// Channel on which the outcome of `movement_id` is published ([`OutcomeNotice`] JSON).
pub fn outcome_channel(movement_id: Uuid) -> String {
    format!("outcome:{movement_id}")
}

/// Hash of the next offset to process per partition of `topic` (committed in Postgres).
pub fn progress_key(topic: &str) -> String {
    format!("progress:{topic}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBalance {
    pub quantity: i64,
    pub average_unit_cost_paise: Option<i64>,
    pub last_movement_id: Uuid,
    pub updated_at: DateTime<Utc>,
}

/// Published on [`balances_changed_channel`]: these stores' hashes changed, and these
/// partitions were committed up to (not including) these offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancesChanged {
    pub stores: Vec<i64>,
    /// Partition → next offset to process.
    pub progress: Vec<(i32, i64)>,
}

/// A movement's outcome, published after the batch that decided it committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeNotice {
    pub movement_id: Uuid,
    /// Position of the record it decides on `inventory.movements.v1`.
    pub partition: i32,
    pub offset: i64,
    /// `applied`, `rejected`, `duplicate` or `conflict`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_quantity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_after: Option<i64>,
    /// For a duplicate: the status of the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_status: Option<String>,
}
