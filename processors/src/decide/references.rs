//! What a movement refers to — a return its sale, a void the movement it reverses, a
//! transfer's movements their transfer — and the rules such a reference must meet.

use std::collections::HashMap;

use schemas::{LedgerStatus, MovementKind, StockMovement, transfer_in_id};
use uuid::Uuid;

use super::{BatchCatalog, Effect, Original, Outcome, RejectReason, Transfer};

/// The earlier movement a movement refers to, once its rules hold.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reference {
    None,
    /// A return's sale.
    Sale(Uuid),
    /// A void's movement, and what that did.
    Voids(Uuid, Effect),
    /// The transfer a transfer-out sends or a receive receives.
    Transfer(Uuid),
}

/// What `movement` refers to — a return its sale, a void the movement it reverses — or the
/// rejection when the rules of that reference do not hold.
pub(super) fn reference(
    seen: &HashMap<Uuid, Original>,
    transfers: &HashMap<Uuid, Transfer>,
    catalog: &BatchCatalog,
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
            // Nor is a transfer's movement: the other store has acted on it.
            if matches!(
                effect.kind,
                MovementKind::Void
                    | MovementKind::Count
                    | MovementKind::TransferOut
                    | MovementKind::TransferIn
                    | MovementKind::TransferReceive
            ) {
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
        (MovementKind::TransferOut, ..) => {
            let id = movement.transfer_id.unwrap_or_default();
            let destination = movement.to_store_id.unwrap_or(movement.store_id);
            if destination == movement.store_id || !catalog.stores.contains_key(&destination) {
                rejected(RejectReason::UnknownDestination, None)
            } else if transfers.contains_key(&id) {
                rejected(RejectReason::TransferExists, None)
            } else {
                Ok(Reference::Transfer(id))
            }
        }
        (MovementKind::TransferReceive, ..) => {
            let id = movement.transfer_id.unwrap_or_default();
            // Its transfer-in applied here first: the goods were announced to this store.
            let announced = seen.get(&transfer_in_id(id)).is_some_and(|notice| {
                notice.status == LedgerStatus::Applied && notice.store_id == movement.store_id
            });
            match transfers.get(&id) {
                Some(transfer)
                    if announced
                        && transfer.to_store_id == movement.store_id
                        && transfer.product_id == movement.product_id =>
                {
                    if transfer.received {
                        rejected(RejectReason::AlreadyReceived, None)
                    } else if movement.quantity > transfer.sent {
                        rejected(RejectReason::ReceiveExceedsTransfer, Some(transfer.sent))
                    } else {
                        Ok(Reference::Transfer(id))
                    }
                }
                _ => rejected(RejectReason::UnknownTransfer, None),
            }
        }
        _ => Ok(Reference::None),
    }
}
