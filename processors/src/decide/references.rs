//! What a movement refers to — a return its sale, a void the movement it reverses — and
//! the rules such a reference must meet.

use std::collections::HashMap;

use schemas::{LedgerStatus, MovementKind, StockMovement};
use uuid::Uuid;

use super::{Effect, Original, Outcome, RejectReason};

/// The earlier movement a movement refers to, once its rules hold.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reference {
    None,
    /// A return's sale.
    Sale(Uuid),
    /// A void's movement, and what that did.
    Voids(Uuid, Effect),
}

/// What `movement` refers to — a return its sale, a void the movement it reverses — or the
/// rejection when the rules of that reference do not hold.
pub(super) fn reference(
    seen: &HashMap<Uuid, Original>,
    movement: &StockMovement,
) -> Result<Reference, Outcome> {
    let rejected = |reason, available| Err(Outcome::Rejected { reason, available });
    match (
        movement.kind,
        movement.original_movement_id,
        movement.voids_movement_id,
    ) {
        (MovementKind::Return, Some(id), _) => {
            let line = seen
                .get(&id)
                .filter(|sale| sale.store_id == movement.store_id)
                .and_then(|sale| sale.sale)
                .filter(|line| line.product_id == movement.product_id);
            match line {
                None => rejected(RejectReason::UnknownSale, None),
                Some(line) if movement.quantity > line.returnable() => {
                    rejected(RejectReason::ReturnExceedsSale, Some(line.returnable()))
                }
                Some(_) => Ok(Reference::Sale(id)),
            }
        }
        (MovementKind::Void, _, Some(id)) => {
            let Some(voided) = seen.get(&id).filter(|v| v.store_id == movement.store_id) else {
                return rejected(RejectReason::UnknownMovement, None);
            };
            let effect = match voided.effect {
                Some(effect) if voided.status == LedgerStatus::Applied => effect,
                _ => return rejected(RejectReason::NotVoidable, None),
            };
            // A void is not undone, nor is a count (count again).
            if matches!(effect.kind, MovementKind::Void | MovementKind::Count) {
                rejected(RejectReason::NotVoidable, None)
            } else if effect.product_id != movement.product_id
                || effect.quantity.unsigned_abs() != movement.quantity.unsigned_abs()
            {
                rejected(RejectReason::VoidMismatch, None)
            } else if voided.voided {
                rejected(RejectReason::AlreadyVoided, None)
            } else {
                Ok(Reference::Voids(id, effect))
            }
        }
        _ => Ok(Reference::None),
    }
}
