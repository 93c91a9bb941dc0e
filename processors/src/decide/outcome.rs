//! What deciding a movement comes to: its outcome, what the ledger and its topic record of
//! it, and the first outcome a later movement of the same id (a resend, a return naming a
//! sale, a void) refers back to.

pub use schemas::RejectReason;
use schemas::{AlertKind, LedgerStatus, MovementKind, ProductId, StockMovement, StoreId};

/// The first outcome of a movement id: what a duplicate refers back to, and what tells a
/// duplicate from a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    /// `Applied` or `Rejected`.
    pub status: LedgerStatus,
    pub reject_reason: Option<RejectReason>,
    pub balance_after: Option<i64>,
    pub store_id: StoreId,
    /// `StockMovement::fingerprint` of the movement; `None` for first outcomes recorded
    /// before fingerprints were.
    pub fingerprint: Option<i64>,
    /// An applied sale's line, which returns naming it take back from; `None` for any
    /// other movement (and for sales recorded before returns named their sale).
    pub sale: Option<SaleLine>,
    /// What an applied movement did, which a void reverses: known for the movements
    /// decided in this process and, from the ledger, for those a batch's voids name.
    pub effect: Option<Effect>,
    /// A void reversed it.
    pub voided: bool,
}

/// What an applied movement did to its product's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    pub kind: MovementKind,
    pub product_id: ProductId,
    /// As recorded (an adjustment's carries its sign).
    pub quantity: i64,
    pub delta: i64,
}

impl Effect {
    pub fn of(movement: &StockMovement) -> Self {
        Self {
            kind: movement.kind,
            product_id: movement.product_id,
            quantity: movement.quantity,
            delta: movement.delta(),
        }
    }
}

/// What an applied sale sold, and how much of it came back so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleLine {
    pub product_id: ProductId,
    pub quantity: i64,
    pub returned: i64,
}

impl SaleLine {
    /// What returns may still take back.
    pub const fn returnable(&self) -> i64 {
        self.quantity - self.returned
    }
}

impl Original {
    /// Whether `movement` repeats this one: the same store and, when known, the same
    /// fingerprint.
    pub(super) fn repeated_by(&self, movement: &StockMovement, fingerprint: i64) -> bool {
        self.store_id == movement.store_id && self.fingerprint.is_none_or(|own| own == fingerprint)
    }
}

/// The reason a conflict records.
pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        balance_after: i64,
        /// What it changed in sellable stock (a count: its variance).
        delta: i64,
        average_cost: Option<i64>,
        /// A sale's cost of goods at the moving-average cost before it.
        cost_of_goods: Option<i64>,
        /// A threshold the balance crossed.
        alert: Option<AlertKind>,
    },
    Rejected {
        reason: RejectReason,
        /// The balance at the time, for `insufficient_stock`.
        available: Option<i64>,
    },
    Duplicate(Original),
    /// The movement id was first used by another store, or for a different movement (see
    /// `StockMovement::fingerprint`): nothing changes, and nothing of the original is told.
    Conflict,
}

impl Outcome {
    pub const fn status(&self) -> LedgerStatus {
        match self {
            Self::Applied { .. } => LedgerStatus::Applied,
            Self::Rejected { .. } => LedgerStatus::Rejected,
            Self::Duplicate(_) => LedgerStatus::Duplicate,
            Self::Conflict => LedgerStatus::Conflict,
        }
    }

    /// What the ledger, its topic and the outcome notice record beside the status.
    pub const fn recorded(&self) -> Recorded {
        match *self {
            Self::Applied {
                balance_after,
                delta,
                ..
            } => Recorded {
                reject_reason: None,
                available_quantity: None,
                balance_after: Some(balance_after),
                stock_change: Some(delta),
                original_status: None,
            },
            Self::Rejected { reason, available } => Recorded {
                reject_reason: Some(reason.as_str()),
                available_quantity: available,
                balance_after: None,
                stock_change: None,
                original_status: None,
            },
            Self::Duplicate(original) => Recorded {
                reject_reason: match original.reject_reason {
                    Some(reason) => Some(reason.as_str()),
                    None => None,
                },
                available_quantity: None,
                balance_after: original.balance_after,
                stock_change: None,
                original_status: Some(original.status.as_str()),
            },
            Self::Conflict => Recorded {
                reject_reason: Some(IDEMPOTENCY_KEY_REUSED),
                available_quantity: None,
                balance_after: None,
                stock_change: None,
                original_status: None,
            },
        }
    }

    /// What a later movement with the same id is compared with and refers to: the first
    /// outcome of `movement` (`None` for a duplicate or conflict, which are not first).
    pub fn original(&self, movement: &StockMovement) -> Option<Original> {
        let (status, reject_reason, balance_after) = match *self {
            Self::Applied { balance_after, .. } => {
                (LedgerStatus::Applied, None, Some(balance_after))
            }
            Self::Rejected { reason, .. } => (LedgerStatus::Rejected, Some(reason), None),
            Self::Duplicate(_) | Self::Conflict => return None,
        };
        let sale = (status == LedgerStatus::Applied && movement.kind == MovementKind::Sale)
            .then_some(SaleLine {
                product_id: movement.product_id,
                quantity: movement.quantity,
                returned: 0,
            });
        Some(Original {
            status,
            reject_reason,
            balance_after,
            store_id: movement.store_id,
            fingerprint: Some(movement.fingerprint()),
            sale,
            effect: (status == LedgerStatus::Applied).then(|| Effect::of(movement)),
            voided: false,
        })
    }
}

/// An outcome's details as recorded: a duplicate carries its original's reason and
/// balance, and names the original's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub reject_reason: Option<&'static str>,
    pub available_quantity: Option<i64>,
    pub balance_after: Option<i64>,
    /// What an applied movement changed in sellable stock.
    pub stock_change: Option<i64>,
    pub original_status: Option<&'static str>,
}
