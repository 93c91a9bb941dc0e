//! The independent model of what must come out of the pipeline — written from the
//! specification, not from the processors' code — and the checks of Postgres against it.

// The model's maps and rows mirror the rollups' and the ledger's columns, tuple for column.
#![allow(clippy::type_complexity)]

use std::collections::{BTreeMap, HashMap};

use chrono::{FixedOffset, NaiveDate};
use schemas::{MovementKind, StockMovement};
use uuid::Uuid;

use crate::*;

/// What the model says about one movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub status: &'static str,
    pub reject_reason: Option<&'static str>,
    pub balance_after: Option<i64>,
}

/// The independent model: written from the specification, not from the processor's code.
#[derive(Debug, Default)]
pub struct Model {
    pub outcomes: Vec<Expected>,
    /// (store, product) → (quantity, average cost).
    pub balances: BTreeMap<(i64, i64), (i64, Option<i64>)>,
    /// (store, local day, product) → (units sold, revenue, cost of goods, sales, units removed).
    pub sales: BTreeMap<(i64, NaiveDate, i64), (i64, i64, i64, i64, i64)>,
    /// (store, local day, supplier (none: a cash purchase), product) → (units, cost of the
    /// units with one, units without a cost, stock-ins).
    pub sourcing: BTreeMap<(i64, NaiveDate, Option<i64>, i64), (i64, i64, i64, i64)>,
    /// (store, local day, change, reason, product) → (units, their value at the average
    /// cost, units without a cost, movements), for removals, adjustments and returns.
    pub changes:
        BTreeMap<(i64, NaiveDate, &'static str, Option<String>, i64), (i64, i64, i64, i64)>,
    /// Alert kinds in order, per (store, product).
    pub alerts: BTreeMap<(i64, i64), Vec<&'static str>>,
    /// The transfer-in the processors announce at its destination for each applied
    /// transfer-out: (its movement id, the destination).
    pub announced: Vec<(Uuid, i64)>,
    /// Applied sales: id → (store, product, quantity sold, quantity returned so far).
    sold: HashMap<Uuid, (i64, i64, i64, i64)>,
    /// Every first outcome's store, and what it did when it was applied.
    firsts: HashMap<Uuid, (i64, Option<Counted>)>,
    /// Movements a void reversed.
    voided: std::collections::HashSet<Uuid>,
    /// Per (store, product): when each applied movement occurred and what it changed, and
    /// when the product was last counted.
    applied: HashMap<(i64, i64), Vec<(chrono::DateTime<chrono::Utc>, i64)>>,
    counted: HashMap<(i64, i64), chrono::DateTime<chrono::Utc>>,
}

/// An applied movement as the rollups count it.
#[derive(Debug, Clone)]
struct Counted {
    store: i64,
    day: NaiveDate,
    product: i64,
    kind: MovementKind,
    quantity: i64,
    /// Its change to sellable stock.
    change: i64,
    restock: Option<bool>,
    reason: Option<String>,
    supplier: Option<i64>,
    unit_cost: Option<i64>,
    unit_price: Option<i64>,
    /// Its product's average cost before it (the same after, but for a stock-in).
    average: Option<i64>,
    /// A return's sale, which a void of the return gives its units back to return.
    sale: Option<Uuid>,
}

impl Model {
    pub fn of(movements: &[StockMovement]) -> Self {
        let mut model = Self::default();
        let mut first: HashMap<Uuid, Expected> = HashMap::new();
        for movement in movements {
            let expected = match first.get(&movement.movement_id) {
                Some(original) => Expected {
                    status: "duplicate",
                    ..original.clone()
                },
                None => {
                    let outcome = model.apply(movement);
                    first.insert(movement.movement_id, outcome.clone());
                    model
                        .firsts
                        .entry(movement.movement_id)
                        .or_insert((movement.store_id.get(), None));
                    outcome
                }
            };
            model.outcomes.push(expected);
        }
        model
    }

    fn apply(&mut self, movement: &StockMovement) -> Expected {
        let (store, product) = (movement.store_id.get(), movement.product_id.get());
        let (_, timezone, offset, policy) = STORES
            .iter()
            .find(|(id, ..)| *id == store)
            .copied()
            .unwrap();
        let _ = timezone;
        // A return naming its sale takes back at most what that sale (an applied one, of
        // this store and product) sold, less its earlier returns.
        let sale = movement
            .original_movement_id
            .filter(|_| movement.kind == MovementKind::Return);
        if let Some(sale) = sale {
            let refused = match self.sold.get(&sale) {
                Some(&(sold_in, sold_product, sold, returned))
                    if (sold_in, sold_product) == (store, product) =>
                {
                    (movement.quantity > sold - returned).then_some("return_exceeds_sale")
                }
                _ => Some("unknown_sale"),
            };
            if let Some(reason) = refused {
                return Expected {
                    status: "rejected",
                    reject_reason: Some(reason),
                    balance_after: None,
                };
            }
        }
        let rejected = |reason| Expected {
            status: "rejected",
            reject_reason: Some(reason),
            balance_after: None,
        };
        // A void reverses one applied movement of its store, product and quantity, once; a
        // void is not undone.
        let mut voids = None;
        if let (MovementKind::Void, Some(target)) = (movement.kind, movement.voids_movement_id) {
            let reversed = match self.firsts.get(&target) {
                Some((first_store, _)) if *first_store != store => Err("unknown_movement"),
                None => Err("unknown_movement"),
                Some((_, None)) => Err("not_voidable"),
                Some((_, Some(counted)))
                    if matches!(
                        counted.kind,
                        MovementKind::Void
                            | MovementKind::Count
                            | MovementKind::TransferOut
                            | MovementKind::TransferIn
                            | MovementKind::TransferReceive
                    ) =>
                {
                    Err("not_voidable")
                }
                Some((_, Some(counted)))
                    if counted.product != product
                        || counted.quantity.abs() != movement.quantity =>
                {
                    Err("void_mismatch")
                }
                Some(_) if self.voided.contains(&target) => Err("already_voided"),
                Some((_, Some(counted))) => Ok(counted.clone()),
            };
            match reversed {
                Ok(counted) => voids = Some((target, counted)),
                Err(reason) => return rejected(reason),
            }
        }
        // The product's latest count saw the shelf after a movement that occurred before it.
        if self
            .counted
            .get(&(store, product))
            .is_some_and(|counted| movement.occurred_at <= *counted)
        {
            return rejected("superseded_by_count");
        }
        let existed = self.balances.contains_key(&(store, product));
        let (quantity, average) = self
            .balances
            .get(&(store, product))
            .copied()
            .unwrap_or((0, None));
        // What the kind does to sellable stock; a void, the reverse of what it voids; a
        // count, what it counted less the book as of its time (the book now less what the
        // movements that occurred later changed).
        let change = match (movement.kind, &voids) {
            (MovementKind::Void, Some((_, counted))) => -counted.change,
            (MovementKind::Count, _) => {
                let later: i64 = self.applied.get(&(store, product)).map_or(0, |applied| {
                    applied
                        .iter()
                        .filter(|(at, _)| *at > movement.occurred_at)
                        .map(|(_, change)| change)
                        .sum()
                });
                movement.quantity - (quantity - later)
            }
            (MovementKind::StockIn | MovementKind::Adjustment, _) => movement.quantity,
            (MovementKind::Return, _) if movement.restock == Some(false) => 0,
            (MovementKind::Return, _) => movement.quantity,
            _ => -movement.quantity,
        };
        let after = quantity + change;
        // Under `reject` a live movement may not take more than the book holds; one made
        // offline already happened: it is applied, and says the book was wrong.
        let short = change < 0 && after < 0 && policy == "reject";
        if short && !movement.offline && movement.kind != MovementKind::Count {
            return rejected("insufficient_stock");
        }
        let day = movement
            .occurred_at
            .with_timezone(&FixedOffset::east_opt(offset).unwrap())
            .date_naive();
        let mut new_average = average;
        if let (MovementKind::StockIn, Some(cost)) = (movement.kind, movement.unit_cost_paise) {
            // Units without a cost join at the average so far.
            new_average = Some(match average {
                Some(average) if quantity > 0 => {
                    let total =
                        quantity as f64 * average as f64 + movement.quantity as f64 * cost as f64;
                    (total / (quantity + movement.quantity) as f64).round() as i64
                }
                _ => cost,
            });
        }
        let counted = Counted {
            store,
            day,
            product,
            kind: movement.kind,
            quantity: movement.quantity,
            change,
            restock: movement.restock,
            reason: movement.reason.clone(),
            supplier: movement.supplier_id.map(|id| id.get()),
            unit_cost: movement.unit_cost_paise,
            unit_price: movement.unit_price_paise,
            average,
            sale,
        };
        match &voids {
            Some((target, reversed)) => {
                self.count(reversed, -1);
                self.voided.insert(*target);
                if let Some(line) = reversed.sale.and_then(|sale| self.sold.get_mut(&sale)) {
                    line.3 -= reversed.quantity;
                }
            }
            None => self.count(&counted, 1),
        }
        self.firsts
            .insert(movement.movement_id, (store, Some(counted)));
        self.applied
            .entry((store, product))
            .or_default()
            .push((movement.occurred_at, change));
        if movement.kind == MovementKind::Count {
            self.counted.insert((store, product), movement.occurred_at);
        }
        let point = (store == 1).then_some(REORDER_POINT);
        let level = |quantity: i64| {
            if quantity <= 0 {
                "out_of_stock"
            } else if point.is_some_and(|point| quantity <= point) {
                "low_stock"
            } else {
                "recovered"
            }
        };
        let before = if existed {
            level(quantity)
        } else {
            "recovered"
        };
        if short {
            self.alerts
                .entry((store, product))
                .or_default()
                .push("phantom_stock");
        } else if level(after) != before {
            self.alerts
                .entry((store, product))
                .or_default()
                .push(level(after));
        }
        self.balances.insert((store, product), (after, new_average));
        if movement.kind == MovementKind::Sale {
            self.sold
                .insert(movement.movement_id, (store, product, movement.quantity, 0));
        }
        if let Some(line) = sale.and_then(|sale| self.sold.get_mut(&sale)) {
            line.3 += movement.quantity;
        }
        // A transfer-out leaves like a removal (no rollup of its own) and is announced at
        // its destination.
        if let (MovementKind::TransferOut, Some(transfer), Some(destination)) =
            (movement.kind, movement.transfer_id, movement.to_store_id)
        {
            self.announced
                .push((schemas::transfer_in_id(transfer), destination.get()));
        }
        Expected {
            status: "applied",
            reject_reason: None,
            balance_after: Some(after),
        }
    }
}

impl Model {
    /// An applied movement's place in the rollups, counted (`sign` 1) or taken back by a
    /// void (−1): sales and removals, stock-ins by supplier, and removals, adjustments and
    /// returns valued at the average cost (which none of them changes).
    fn count(&mut self, counted: &Counted, sign: i64) {
        let Counted {
            store,
            day,
            product,
            kind,
            quantity,
            ..
        } = *counted;
        let signed = quantity * sign;
        match kind {
            MovementKind::StockIn => {
                let entry = self
                    .sourcing
                    .entry((store, day, counted.supplier, product))
                    .or_default();
                entry.0 += signed;
                match counted.unit_cost {
                    Some(cost) => entry.1 += signed * cost,
                    None => entry.2 += signed,
                }
                entry.3 += sign;
            }
            MovementKind::Sale => {
                let entry = self.sales.entry((store, day, product)).or_default();
                entry.0 += signed;
                entry.1 += signed * counted.unit_price.unwrap();
                entry.2 += counted.average.unwrap_or(0) * signed;
                entry.3 += sign;
            }
            MovementKind::Removal => {
                let entry = self.sales.entry((store, day, product)).or_default();
                entry.4 += signed;
            }
            _ => {}
        }
        let change = match kind {
            MovementKind::Count if counted.change < 0 => Some("count_down"),
            MovementKind::Count if counted.change > 0 => Some("count_up"),
            MovementKind::Removal => Some("removal"),
            MovementKind::Adjustment if quantity < 0 => Some("adjustment_down"),
            MovementKind::Adjustment => Some("adjustment_up"),
            MovementKind::Return if counted.restock == Some(false) => Some("return_written_off"),
            MovementKind::Return => Some("return_restocked"),
            _ => None,
        };
        if let Some(change) = change {
            // A count's units are its variance, its reason `count`.
            let (units, reason) = match kind {
                MovementKind::Count => (counted.change.abs() * sign, Some("count".to_owned())),
                _ => (quantity.abs() * sign, counted.reason.clone()),
            };
            let entry = self
                .changes
                .entry((store, day, change, reason, product))
                .or_default();
            entry.0 += units;
            match counted.average {
                Some(cost) => entry.1 += units * cost,
                None => entry.2 += units,
            }
            entry.3 += sign;
        }
    }
}

mod checks;

pub use checks::*;
