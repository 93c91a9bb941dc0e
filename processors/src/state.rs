//! What a processor holds between batches: the balances and settings of the stores its
//! partitions carry, and where each partition stands. (How far the outputs are published
//! is the publish queue's.)

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use schemas::{ProductId, StoreId};

use crate::cache_writer::CachedBalance;
use crate::decide::{Balances, Holding};
use crate::isolation::Isolation;
use crate::ledger;

/// A store's settings, by product.
pub(crate) type Settings = HashMap<ProductId, ledger::Setting>;

/// What the processor holds between batches.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) balances: Balances,
    /// The partition each held store's movements come from.
    pub(crate) partition_of: HashMap<StoreId, i32>,
    /// Next offset to process per owned partition (as stored in Postgres).
    pub(crate) positions: HashMap<i32, i64>,
    /// Each held store's settings (reorder point, selling price), by product.
    pub(crate) settings: HashMap<StoreId, Settings>,
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

    /// Takes in the settings read for a batch: `changes` (read at `read_at`) to the stores
    /// held before it, and `loaded`, the whole settings of the stores it takes on
    /// (`missing`), which are at least as new.
    pub(crate) fn take_settings(
        &mut self,
        read_at: DateTime<Utc>,
        changes: Vec<ledger::SettingChange>,
        missing: &[i64],
        loaded: Vec<(StoreId, ProductId, ledger::Setting)>,
    ) {
        self.settings_read = Some(read_at);
        for change in changes {
            if let Some(settings) = self.settings.get_mut(&change.store) {
                match change.setting {
                    Some(setting) => settings.insert(change.product, setting),
                    None => settings.remove(&change.product),
                };
            }
        }
        for store in missing {
            self.settings.entry(StoreId(*store)).or_default();
        }
        for (store, product, setting) in loaded {
            self.settings
                .entry(store)
                .or_default()
                .insert(product, setting);
        }
    }

    /// The reorder points held for these store × product pairs (those that have one).
    pub(crate) fn reorder_points(
        &self,
        pairs: &HashSet<(StoreId, ProductId)>,
    ) -> HashMap<(StoreId, ProductId), i64> {
        pairs
            .iter()
            .filter_map(|&(store, product)| {
                let point = self.settings.get(&store)?.get(&product)?.reorder_point?;
                Some(((store, product), point))
            })
            .collect()
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
                    counted_at: row.counted_at,
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
