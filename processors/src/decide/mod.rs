//! The decision core: what each movement of a batch does, given the balances held in
//! memory and what the catalog says. Pure — no I/O, no clock — so the same batch from the
//! same state always gets the same outcomes, which is what makes a replay after a crash
//! write identical ledger rows and output records.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use schemas::{AlertKind, MovementKind, ProductId, StockMovement, StoreId};
use uuid::Uuid;

pub use outcome::{
    Effect, IDEMPOTENCY_KEY_REUSED, Original, Outcome, Recorded, RejectReason, SaleLine,
};
use references::{Reference, reference};

pub(crate) mod carried;
mod outcome;
mod references;

/// What a store does with a sale or removal larger than its balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse it (`rejected: insufficient_stock`); the default. A movement made offline is
    /// applied all the same (it happened), with a `phantom_stock` alert.
    Reject,
    /// Apply it; the balance goes negative.
    Allow,
}

impl Policy {
    pub fn parse(text: &str) -> Self {
        if text == "allow" {
            Self::Allow
        } else {
            Self::Reject
        }
    }
}

/// One product's stock in one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holding {
    pub quantity: i64,
    /// Moving-average cost per unit, in paise, over the stock-ins that carried a cost.
    pub average_cost: Option<i64>,
    /// When the product was last counted: a movement that occurred before is superseded.
    pub counted_at: Option<DateTime<Utc>>,
}

/// The balances a processor holds: store → product → holding.
pub type Balances = HashMap<StoreId, HashMap<ProductId, Holding>>;

/// What the catalog says about the stores and products of a batch.
#[derive(Debug, Clone, Default)]
pub struct BatchCatalog {
    /// Live stores and their negative-stock policy.
    pub stores: HashMap<StoreId, Policy>,
    pub live_products: HashSet<ProductId>,
    pub reorder_points: HashMap<(StoreId, ProductId), i64>,
    /// For each count of the batch: what the applied movements of its product that
    /// occurred after it changed, as the ledger holds them before the batch (the batch's
    /// own are added as it is decided).
    pub later_changes: HashMap<Uuid, i64>,
    /// The sale of each return of earlier batches the batch's voids name, as the ledger
    /// holds it: a voided return gives its sale the units back to return.
    pub return_sales: HashMap<Uuid, Uuid>,
    /// The transfers the batch's transfer-outs and receives name, as Postgres holds them
    /// before the batch (a batch with either waits for the batch in flight).
    pub transfers: HashMap<Uuid, Transfer>,
}

/// A transfer between two stores, as far as deciding its movements needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub to_store_id: StoreId,
    pub product_id: ProductId,
    pub sent: i64,
    pub received: bool,
    /// The source's moving-average cost when it sent them: what the units join the
    /// destination's average at.
    pub unit_cost: Option<i64>,
}

/// Why a record cannot be decided at all (it goes to the dead-letter topic).
pub fn invalid(movement: &StockMovement) -> Option<&'static str> {
    match movement.kind {
        MovementKind::Unknown => Some("unknown_kind"),
        MovementKind::Void if movement.voids_movement_id.is_none() => {
            Some("void_without_voids_movement_id")
        }
        // An adjustment's quantity carries its sign; a count's may be 0.
        MovementKind::Adjustment if movement.quantity == 0 => Some("zero_quantity"),
        MovementKind::Adjustment => None,
        MovementKind::Count if movement.quantity < 0 => Some("negative_count"),
        MovementKind::Count => None,
        MovementKind::TransferOut
            if movement.transfer_id.is_none() || movement.to_store_id.is_none() =>
        {
            Some("transfer_without_destination")
        }
        MovementKind::TransferIn
            if movement.transfer_id.is_none() || movement.from_store_id.is_none() =>
        {
            Some("transfer_without_source")
        }
        MovementKind::TransferReceive if movement.transfer_id.is_none() => {
            Some("receive_without_transfer_id")
        }
        // What arrived may be nothing.
        MovementKind::TransferReceive if movement.quantity < 0 => Some("negative_quantity"),
        MovementKind::TransferReceive => None,
        _ if movement.quantity <= 0 => Some("non_positive_quantity"),
        _ => None,
    }
}

/// Decides `movements` in order against `balances`, which it updates. `seen` holds the
/// first outcome of every movement id known so far (from Postgres for this batch's ids and
/// the sales its returns name); the batch's own first outcomes are added to it, so a
/// repeat inside the batch is a duplicate (or a conflict) too, and a sale's returns are
/// counted on it. Every movement must have passed [`invalid`].
pub fn decide<'a>(
    balances: &mut Balances,
    seen: &mut HashMap<Uuid, Original>,
    catalog: &BatchCatalog,
    movements: impl IntoIterator<Item = &'a StockMovement>,
) -> Vec<Outcome> {
    let movements: Vec<&StockMovement> = movements.into_iter().collect();
    let mut batch = Applied::tracking(movements.iter().any(|m| m.kind == MovementKind::Count));
    // The transfers as the batch leaves them: its transfer-outs send, its receives receive.
    let mut transfers = catalog.transfers.clone();
    // The sale of each return the batch applies.
    let mut return_sales: HashMap<Uuid, Uuid> = HashMap::new();
    movements
        .into_iter()
        .map(|movement| {
            if let Some(original) = seen.get(&movement.movement_id) {
                return if original.repeated_by(movement, movement.fingerprint()) {
                    Outcome::Duplicate(*original)
                } else {
                    Outcome::Conflict
                };
            }
            let outcome = match reference(seen, &transfers, catalog, movement) {
                Err(rejected) => rejected,
                Ok(reference) => {
                    let change = match reference {
                        Reference::Voids(_, effect) => Change::By(-effect.delta),
                        _ if movement.kind == MovementKind::Count => Change::Counted {
                            later: catalog
                                .later_changes
                                .get(&movement.movement_id)
                                .copied()
                                .unwrap_or(0)
                                .saturating_add(batch.later(movement)),
                        },
                        _ => Change::By(movement.delta()),
                    };
                    // What the units that come in join the average cost at.
                    let joins_at = match (movement.kind, reference) {
                        (MovementKind::StockIn, _) => movement.unit_cost_paise,
                        (MovementKind::TransferReceive, Reference::Transfer(id)) => {
                            transfers.get(&id).and_then(|transfer| transfer.unit_cost)
                        }
                        _ => None,
                    };
                    let outcome = decide_one(balances, catalog, movement, change, joins_at);
                    if let Outcome::Applied { delta, .. } = outcome {
                        batch.applied(movement, delta);
                    }
                    if matches!(outcome, Outcome::Applied { .. }) {
                        match reference {
                            Reference::Sale(id) => {
                                return_sales.insert(movement.movement_id, id);
                                if let Some(line) =
                                    seen.get_mut(&id).and_then(|sale| sale.sale.as_mut())
                                {
                                    line.returned += movement.quantity;
                                }
                            }
                            Reference::Voids(id, effect) => {
                                if let Some(voided) = seen.get_mut(&id) {
                                    voided.voided = true;
                                }
                                // A voided return's units may be returned to its sale again.
                                let sale = return_sales
                                    .get(&id)
                                    .or_else(|| catalog.return_sales.get(&id));
                                if let Some(line) = sale
                                    .and_then(|sale| seen.get_mut(sale))
                                    .and_then(|sale| sale.sale.as_mut())
                                {
                                    line.returned = (line.returned - effect.quantity).max(0);
                                }
                            }
                            Reference::Transfer(id) => match movement.kind {
                                MovementKind::TransferOut => {
                                    let cost = match outcome {
                                        Outcome::Applied { average_cost, .. } => average_cost,
                                        _ => None,
                                    };
                                    transfers.insert(id, Transfer::sent_by(movement, cost));
                                }
                                _ => {
                                    if let Some(transfer) = transfers.get_mut(&id) {
                                        transfer.received = true;
                                    }
                                }
                            },
                            Reference::None => {}
                        }
                    }
                    outcome
                }
            };
            if let Some(original) = outcome.original(movement) {
                seen.insert(movement.movement_id, original);
            }
            outcome
        })
        .collect()
}

impl Transfer {
    /// The transfer an applied transfer-out sends, at `unit_cost` (the source's average).
    pub fn sent_by(movement: &StockMovement, unit_cost: Option<i64>) -> Self {
        Self {
            to_store_id: movement.to_store_id.unwrap_or(movement.store_id),
            product_id: movement.product_id,
            sent: movement.quantity,
            received: false,
            unit_cost,
        }
    }
}

/// What a movement changes in its product's stock.
#[derive(Debug, Clone, Copy)]
enum Change {
    By(i64),
    /// A count: the shelf held its quantity at its time, and the movements that occurred
    /// later (already applied) changed the book by `later` since.
    Counted {
        later: i64,
    },
}

/// The movements of a batch applied so far, by store and product, with when they occurred
/// and what they changed: kept only for a batch with counts.
struct Applied(Option<HashMap<(StoreId, ProductId), Changes>>);

/// When each movement occurred and what it changed.
type Changes = Vec<(DateTime<Utc>, i64)>;

impl Applied {
    fn tracking(on: bool) -> Self {
        Self(on.then(HashMap::new))
    }

    fn applied(&mut self, movement: &StockMovement, delta: i64) {
        if let Some(applied) = &mut self.0 {
            applied
                .entry((movement.store_id, movement.product_id))
                .or_default()
                .push((movement.occurred_at, delta));
        }
    }

    /// What the batch's movements of the count's product that occurred after it changed.
    fn later(&self, count: &StockMovement) -> i64 {
        self.0
            .as_ref()
            .and_then(|applied| applied.get(&(count.store_id, count.product_id)))
            .map_or(0, |changes| {
                changes
                    .iter()
                    .filter(|(at, _)| *at > count.occurred_at)
                    .fold(0, |sum: i64, (_, delta)| sum.saturating_add(*delta))
            })
    }
}

/// Decides one movement that changes its product's stock as `change` says; the units it
/// brings in join the average cost at `joins_at` (a stock-in's cost, a transfer's).
fn decide_one(
    balances: &mut Balances,
    catalog: &BatchCatalog,
    movement: &StockMovement,
    change: Change,
    joins_at: Option<i64>,
) -> Outcome {
    let rejected = |reason, available| Outcome::Rejected { reason, available };
    let Some(&policy) = catalog.stores.get(&movement.store_id) else {
        return rejected(RejectReason::UnknownStore, None);
    };
    if !catalog.live_products.contains(&movement.product_id) {
        return rejected(RejectReason::UnknownProduct, None);
    }
    // A transfer-in announces goods on their way: it changes no stock (nor a balance of its
    // own: none for a product the store never held), raises no alert, and is never
    // superseded (its time is the transfer-out's, at the source; what it announces must
    // stay receivable).
    if movement.kind == MovementKind::TransferIn {
        let held = balances
            .get(&movement.store_id)
            .and_then(|holdings| holdings.get(&movement.product_id))
            .copied()
            .unwrap_or_default();
        return Outcome::Applied {
            balance_after: held.quantity,
            delta: 0,
            average_cost: held.average_cost,
            cost_of_goods: None,
            alert: None,
        };
    }
    let holdings = balances.entry(movement.store_id).or_default();
    let previous = holdings.get(&movement.product_id).copied();
    let held = previous.unwrap_or_default();
    // The latest count saw the shelf after this movement.
    if held
        .counted_at
        .is_some_and(|counted| movement.occurred_at <= counted)
    {
        return rejected(RejectReason::SupersededByCount, None);
    }
    // A count's change is its variance: what it counted less the book as of its time (the
    // book now less what later movements changed).
    let delta = match change {
        Change::By(delta) => Some(delta),
        Change::Counted { later } => held
            .quantity
            .checked_sub(later)
            .and_then(|then| movement.quantity.checked_sub(then)),
    };
    let Some((delta, quantity)) =
        delta.and_then(|delta| Some((delta, held.quantity.checked_add(delta)?)))
    else {
        return rejected(RejectReason::BalanceOverflow, None);
    };
    // Taking more than the book holds is refused under `reject` — unless it already
    // happened: a sale or removal made while the till was offline is applied, and says the
    // book was wrong.
    // A count is what the shelf held: never refused.
    let short = delta < 0 && quantity < 0 && policy == Policy::Reject;
    if short && !movement.offline && movement.kind != MovementKind::Count {
        return rejected(RejectReason::InsufficientStock, Some(held.quantity.max(0)));
    }
    let average_cost = match joins_at {
        Some(cost) if movement.quantity > 0 => Some(moving_average(held, movement.quantity, cost)),
        _ => held.average_cost,
    };
    let cost_of_goods = match movement.kind {
        MovementKind::Sale => held
            .average_cost
            .map(|cost| cost.saturating_mul(movement.quantity)),
        _ => None,
    };
    let reorder_point = catalog
        .reorder_points
        .get(&(movement.store_id, movement.product_id))
        .copied();
    // A product seen for the first time was not in any alert state before.
    let before = previous.map_or(Level::Normal, |held| {
        Level::of(held.quantity, reorder_point)
    });
    let alert = if short {
        Some(AlertKind::PhantomStock)
    } else {
        before.crossing(Level::of(quantity, reorder_point))
    };
    holdings.insert(
        movement.product_id,
        Holding {
            quantity,
            average_cost,
            counted_at: if movement.kind == MovementKind::Count {
                Some(movement.occurred_at)
            } else {
                held.counted_at
            },
        },
    );
    Outcome::Applied {
        balance_after: quantity,
        delta,
        average_cost,
        cost_of_goods,
        alert,
    }
}

/// The new average cost after `quantity` units at `cost` join `held`, rounded half up.
/// Stock at or below zero carries no cost: the new units set it.
fn moving_average(held: Holding, quantity: i64, cost: i64) -> i64 {
    match held.average_cost {
        Some(average) if held.quantity > 0 => {
            let total = i128::from(held.quantity) * i128::from(average)
                + i128::from(quantity) * i128::from(cost);
            let units = i128::from(held.quantity) + i128::from(quantity);
            i64::try_from((2 * total + units) / (2 * units)).unwrap_or(i64::MAX)
        }
        _ => cost,
    }
}

/// Where a balance stands against its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Normal,
    /// At or below the reorder point, above zero.
    Low,
    /// Zero or less.
    Out,
}

impl Level {
    fn of(quantity: i64, reorder_point: Option<i64>) -> Self {
        if quantity <= 0 {
            Self::Out
        } else if reorder_point.is_some_and(|point| quantity <= point) {
            Self::Low
        } else {
            Self::Normal
        }
    }

    fn crossing(self, now: Self) -> Option<AlertKind> {
        match (self, now) {
            (before, now) if before == now => None,
            (_, Self::Out) => Some(AlertKind::OutOfStock),
            (_, Self::Low) => Some(AlertKind::LowStock),
            (_, Self::Normal) => Some(AlertKind::Recovered),
        }
    }
}

#[cfg(test)]
mod tests;
