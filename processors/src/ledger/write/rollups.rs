//! A movement's place in the daily rollups: sales and removals, stock-ins by supplier, and
//! removals, adjustments, returns and count variances by reason — counted when applied,
//! taken back by a void.

use schemas::{MovementKind, StockMovement};

use super::CommitParams;
use crate::decide::Outcome;
use crate::ledger::{Record, Voided};

impl<'a> CommitParams<'a> {
    /// A movement's place in the daily rollups, counted (`sign` 1) or taken back by a
    /// void (`sign` −1).
    pub(super) fn rollups(&mut self, counted: &Counted<'a>, sign: i64) {
        let Counted {
            movement,
            delta,
            unit_price,
            cost_of_goods,
            average_cost,
        } = *counted;
        let quantity = movement.quantity * sign;
        if let Some(change) = Change::of(movement, delta) {
            // A count's units are its variance.
            let units = match change {
                Change::CountDown | Change::CountUp => delta,
                _ => movement.quantity,
            }
            .saturating_abs();
            self.change_store.push(movement.store_id.get());
            self.change_product.push(movement.product_id.get());
            self.change_at.push(movement.occurred_at);
            self.change.push(change.as_str());
            self.change_reason.push(match change {
                Change::CountDown | Change::CountUp => Some("count"),
                _ => movement.reason.as_deref(),
            });
            self.change_units.push(units * sign);
            // At most 10⁹ units at the average of costs of at most 10⁹ paise.
            self.change_value
                .push(average_cost.map_or(0, |cost| cost.saturating_mul(units)) * sign);
            self.change_uncosted.push(if average_cost.is_some() {
                0
            } else {
                units * sign
            });
            self.change_count.push(sign);
        }
        match movement.kind {
            MovementKind::Sale | MovementKind::Removal => {
                let sale = movement.kind == MovementKind::Sale;
                self.sale_store.push(movement.store_id.get());
                self.sale_product.push(movement.product_id.get());
                self.sale_at.push(movement.occurred_at);
                self.sold.push(if sale { quantity } else { 0 });
                self.revenue.push(if sale {
                    unit_price.unwrap_or(0).saturating_mul(quantity)
                } else {
                    0
                });
                self.cost.push(cost_of_goods.unwrap_or(0) * sign);
                self.sales.push(if sale { sign } else { 0 });
                self.removed.push(if sale { 0 } else { quantity });
            }
            MovementKind::StockIn => {
                self.in_store.push(movement.store_id.get());
                self.in_supplier
                    .push(movement.supplier_id.map(|id| id.get()));
                self.in_product.push(movement.product_id.get());
                self.in_at.push(movement.occurred_at);
                self.in_units.push(quantity);
                let cost = movement
                    .unit_cost_paise
                    .map(|cost| cost.saturating_mul(quantity));
                self.in_cost.push(cost.unwrap_or(0));
                self.in_uncosted
                    .push(if cost.is_some() { 0 } else { quantity });
                self.in_count.push(sign);
            }
            // Returns, adjustments and counts are stock changes only; a void counts as what
            // it reverses.
            // Transfers move stock between stores: no rollup of their own yet.
            MovementKind::Return
            | MovementKind::Adjustment
            | MovementKind::Count
            | MovementKind::Void
            | MovementKind::TransferOut
            | MovementKind::TransferIn
            | MovementKind::TransferReceive
            | MovementKind::Unknown => {}
        }
    }
}

/// An applied movement as the rollups count it: what it changed in stock, the price it was
/// recorded at, its cost of goods (a sale's) and its product's average cost after it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counted<'a> {
    movement: &'a StockMovement,
    delta: i64,
    unit_price: Option<i64>,
    cost_of_goods: Option<i64>,
    average_cost: Option<i64>,
}

impl<'a> Counted<'a> {
    pub(super) fn movement(&self) -> &'a StockMovement {
        self.movement
    }

    pub(super) fn applied(record: &'a Record, outcome: &Outcome) -> Option<Self> {
        match *outcome {
            Outcome::Applied {
                delta,
                cost_of_goods,
                average_cost,
                ..
            } => Some(Self {
                movement: &record.movement,
                delta,
                unit_price: record.unit_price_paise(),
                cost_of_goods,
                average_cost,
            }),
            _ => None,
        }
    }

    /// A movement of an earlier batch, from its ledger row (never a count or a void: they
    /// are not voided): a sale's cost of goods is its quantity at the average cost (which a
    /// sale does not change).
    pub(super) fn recorded(voided: &'a Voided) -> Self {
        let movement = &voided.movement;
        Self {
            movement,
            delta: movement.delta(),
            unit_price: movement.unit_price_paise,
            cost_of_goods: (movement.kind == MovementKind::Sale)
                .then(|| {
                    voided
                        .average_cost
                        .map(|cost| cost.saturating_mul(movement.quantity))
                })
                .flatten(),
            average_cost: voided.average_cost,
        }
    }
}

/// How a removal, adjustment, return or count changed a store's stock, as
/// `stock_changes_daily` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Removal,
    AdjustmentDown,
    AdjustmentUp,
    ReturnRestocked,
    /// Returned, not resellable: it never joined sellable stock.
    ReturnWrittenOff,
    /// Counted less than the book held (as of the count's time), or more.
    CountDown,
    CountUp,
}

impl Change {
    /// The change of `movement`, which changed stock by `delta` (a count without a variance
    /// changed nothing).
    pub fn of(movement: &StockMovement, delta: i64) -> Option<Self> {
        Some(match movement.kind {
            MovementKind::Count if delta < 0 => Self::CountDown,
            MovementKind::Count if delta > 0 => Self::CountUp,
            MovementKind::Removal => Self::Removal,
            MovementKind::Adjustment if movement.quantity < 0 => Self::AdjustmentDown,
            MovementKind::Adjustment => Self::AdjustmentUp,
            MovementKind::Return if movement.restock == Some(false) => Self::ReturnWrittenOff,
            MovementKind::Return => Self::ReturnRestocked,
            MovementKind::StockIn
            | MovementKind::Sale
            | MovementKind::Count
            | MovementKind::Void
            | MovementKind::TransferOut
            | MovementKind::TransferIn
            | MovementKind::TransferReceive
            | MovementKind::Unknown => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Removal => "removal",
            Self::AdjustmentDown => "adjustment_down",
            Self::AdjustmentUp => "adjustment_up",
            Self::ReturnRestocked => "return_restocked",
            Self::ReturnWrittenOff => "return_written_off",
            Self::CountDown => "count_down",
            Self::CountUp => "count_up",
        }
    }
}
