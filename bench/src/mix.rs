//! The movements the benchmarks put on the input topic, over many stores and products:
//! stock-ins, sales and removals as before the stock-life kinds, or (`--kinds every`) every
//! kind of a store's life in its proportions, so that what the new kinds cost shows against
//! the same run with the three.

use rand::Rng;
use schemas::{MovementKind, ProductId, StockMovement, StoreId, SupplierId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kinds {
    /// Stock-ins, sales and removals, 4 : 15 : 1.
    Three,
    /// Per thousand: 180 stock-ins, 678 sales (30 of them synced from an offline till), 40
    /// removals, 50 returns (10 not resellable), 40 adjustments up or down, 5 voids (of the
    /// store's latest stock-in), 2 shelf counts and 5 transfers to another store (each
    /// announced at its destination by the processors: one more record to decide; in a
    /// backlog the announcement lands behind it, so no receives are drawn).
    Every,
}

/// Draws movements of one kind mix.
#[derive(Debug)]
pub struct Mix<'a> {
    kinds: Kinds,
    stores: &'a [i64],
    products: &'a [i64],
    supplier: i64,
    /// The latest stock-in not voided yet: what the next void takes back.
    last_stock_in: Option<StockMovement>,
}

impl<'a> Mix<'a> {
    pub fn new(kinds: Kinds, stores: &'a [i64], products: &'a [i64], supplier: i64) -> Self {
        Self {
            kinds,
            stores,
            products,
            supplier,
            last_stock_in: None,
        }
    }

    pub fn next(&mut self, rng: &mut impl Rng) -> StockMovement {
        let draw = rng.random_range(0..1_000);
        let kind = match (self.kinds, draw) {
            (Kinds::Three, 0..200) | (Kinds::Every, 0..180) => MovementKind::StockIn,
            (Kinds::Three, 200..250) | (Kinds::Every, 820..860) => MovementKind::Removal,
            (Kinds::Every, 860..910) => MovementKind::Return,
            (Kinds::Every, 910..950) => MovementKind::Adjustment,
            (Kinds::Every, 950..955) if self.last_stock_in.is_some() => MovementKind::Void,
            (Kinds::Every, 955..957) => MovementKind::Count,
            (Kinds::Every, 957..962) if self.stores.len() > 1 => MovementKind::TransferOut,
            _ => MovementKind::Sale,
        };
        if kind == MovementKind::Void
            && let Some(voided) = self.last_stock_in.take()
        {
            let now = chrono::Utc::now();
            return StockMovement {
                movement_id: uuid::Uuid::new_v4(),
                kind,
                occurred_at: now,
                received_at: now,
                voids_movement_id: Some(voided.movement_id),
                supplier_id: None,
                unit_cost_paise: None,
                ..voided
            };
        }
        let quantity = rng.random_range(
            1..=match kind {
                MovementKind::StockIn | MovementKind::Count => 50,
                _ => 5,
            },
        );
        let signed = if kind == MovementKind::Adjustment && draw % 2 == 0 {
            -quantity
        } else {
            quantity
        };
        let at = rng.random_range(0..self.stores.len());
        let store = StoreId(self.stores[at]);
        // Another store: the next one.
        let destination = StoreId(self.stores[(at + 1) % self.stores.len()]);
        let product = ProductId(self.products[rng.random_range(0..self.products.len())]);
        let movement = StockMovement {
            supplier_id: (kind == MovementKind::StockIn).then_some(SupplierId(self.supplier)),
            unit_cost_paise: (kind == MovementKind::StockIn).then_some(1_800),
            unit_price_paise: (kind == MovementKind::Sale).then_some(2_500),
            reason: match (kind, draw) {
                (MovementKind::Removal, _) | (MovementKind::Return, 860..870) => {
                    Some("damaged".to_owned())
                }
                (MovementKind::Adjustment, _) if draw % 2 == 0 => Some("damaged".to_owned()),
                (MovementKind::Adjustment, _) => Some("found".to_owned()),
                _ => None,
            },
            device_id: Some("till-1".into()),
            offline: kind == MovementKind::Sale && (180..210).contains(&draw),
            restock: (kind == MovementKind::Return).then_some(!(860..870).contains(&draw)),
            transfer_id: (kind == MovementKind::TransferOut).then(uuid::Uuid::new_v4),
            to_store_id: (kind == MovementKind::TransferOut).then_some(destination),
            ..StockMovement::new(
                uuid::Uuid::new_v4(),
                store,
                product,
                "BENCH",
                kind,
                signed,
                chrono::Utc::now(),
                "bench",
            )
        };
        if kind == MovementKind::StockIn && self.kinds == Kinds::Every {
            self.last_stock_in = Some(movement.clone());
        }
        movement
    }
}
