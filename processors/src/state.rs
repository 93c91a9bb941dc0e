//! What a processor holds between batches: the balances and settings of the stores its
//! partitions carry, and where each partition stands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schemas::{ProductId, StoreId};

use crate::decide::{Balances, Holding};
use crate::isolation::Isolation;
use crate::ledger;
use crate::notify::CachedBalance;

/// What the processor holds between batches.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) balances: Balances,
    /// The partition each held store's movements come from.
    pub(crate) partition_of: HashMap<StoreId, i32>,
    /// Next offset to process per owned partition (as stored in Postgres).
    pub(crate) positions: HashMap<i32, i64>,
    /// Per owned partition, the first offset whose outputs are not on the output topics
    /// yet (`publish`). At most the position; kept when a partition is read again.
    pub(crate) published: HashMap<i32, i64>,
    /// The committed batches being published (`publish`), with how far they take each
    /// partition's outputs. One transaction at a time.
    pub(crate) publishing: Option<crate::publish::Publishing>,
    /// Batches committed since, waiting for the next transaction, and their records.
    pub(crate) unpublished: Vec<crate::publish::Committed>,
    pub(crate) queued_records: usize,
    /// No republishing from Postgres before this (after an attempt that fell short).
    pub(crate) republish_after: Option<std::time::Instant>,
    /// Each held store's settings (reorder point, selling price), by product.
    pub(crate) settings: HashMap<StoreId, HashMap<ProductId, ledger::Setting>>,
    /// When (by the database's clock) setting changes were last read.
    pub(crate) settings_read: Option<DateTime<Utc>>,
    /// Batches that failed deterministically, being taken apart.
    pub(crate) isolation: Isolation,
    /// Failed batches in a row: the backoff before the next try grows with them.
    pub(crate) failures: u32,
}

impl State {
    /// Forgets what was held for `partitions` (revoked, or to be read again).
    pub(crate) fn drop_partitions(&mut self, partitions: &[i32]) {
        let partition_of = &self.partition_of;
        self.balances.retain(|store, _| {
            partition_of
                .get(store)
                .is_none_or(|partition| !partitions.contains(partition))
        });
        self.settings.retain(|store, _| {
            partition_of
                .get(store)
                .is_none_or(|partition| !partitions.contains(partition))
        });
        self.partition_of
            .retain(|_, partition| !partitions.contains(partition));
        for partition in partitions {
            self.positions.remove(partition);
        }
    }

    /// Adds freshly loaded stores (`missing`, with their `stored` balances) to what is
    /// held; returns them as the cache writes them.
    pub(crate) fn hold(
        &mut self,
        missing: &[i64],
        stored: Vec<ledger::StoredBalance>,
    ) -> Vec<(StoreId, Vec<(ProductId, CachedBalance)>)> {
        let mut loaded: HashMap<StoreId, Vec<(ProductId, CachedBalance)>> = missing
            .iter()
            .map(|store| (StoreId(*store), Vec::new()))
            .collect();
        for row in stored {
            let (store, product) = (StoreId(row.store_id), ProductId(row.product_id));
            self.balances.entry(store).or_default().insert(
                product,
                Holding {
                    quantity: row.quantity,
                    average_cost: row.average_unit_cost_paise,
                },
            );
            loaded.entry(store).or_default().push((
                product,
                CachedBalance {
                    quantity: row.quantity,
                    average_unit_cost_paise: row.average_unit_cost_paise,
                    last_movement_id: row.last_movement_id,
                    updated_at: row.updated_at,
                },
            ));
        }
        for store in missing {
            self.balances.entry(StoreId(*store)).or_default();
        }
        loaded.into_iter().collect()
    }
}
