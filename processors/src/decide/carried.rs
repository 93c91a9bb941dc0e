//! What a decided batch carries beyond its outcomes, pure like the decision: the transfers
//! its applied transfer-outs sent and its receives received, and the store's selling price
//! on each sale applied without one.

use std::collections::HashMap;

use schemas::{MovementKind, StoreId};
use uuid::Uuid;

use super::{Outcome, Transfer};
use crate::ledger::Record;
use crate::state::Settings;

/// The transfers a decided batch's applied transfer-outs sent (at the source's average
/// cost) and its applied receives received.
pub(crate) fn moved_transfers(
    records: &[Record],
    outcomes: &[Outcome],
    known: &HashMap<Uuid, Transfer>,
) -> HashMap<Uuid, Transfer> {
    let mut moved = HashMap::new();
    for (record, outcome) in records.iter().zip(outcomes) {
        let movement = &record.movement;
        let (Outcome::Applied { average_cost, .. }, Some(id)) = (*outcome, movement.transfer_id)
        else {
            continue;
        };
        match movement.kind {
            MovementKind::TransferOut => {
                moved.insert(id, Transfer::sent_by(movement, average_cost));
            }
            MovementKind::TransferReceive => {
                if let Some(transfer) = moved.get(&id).or(known.get(&id)).copied() {
                    moved.insert(
                        id,
                        Transfer {
                            received: true,
                            ..transfer
                        },
                    );
                }
            }
            _ => {}
        }
    }
    moved
}

/// A sale applied without a price is recorded at the store's selling price as the
/// processors hold it now (a duplicate or rejection of it sold nothing).
pub(crate) fn stamp_store_prices(
    records: &mut [Record],
    outcomes: &[Outcome],
    settings: &HashMap<StoreId, Settings>,
) {
    for (record, outcome) in records.iter_mut().zip(outcomes) {
        let movement = &record.movement;
        if matches!(outcome, Outcome::Applied { .. })
            && movement.kind == MovementKind::Sale
            && movement.unit_price_paise.is_none()
        {
            record.store_price_paise = settings
                .get(&movement.store_id)
                .and_then(|settings| settings.get(&movement.product_id))
                .and_then(|setting| setting.selling_price);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::RejectReason;
    use crate::test_support::record;
    use schemas::ProductId;

    #[test]
    fn only_an_applied_sale_without_a_price_takes_the_store_price() {
        let mut sale = record(1, 1);
        sale.movement.unit_price_paise = None;
        let mut priced = record(1, 2);
        priced.movement.unit_price_paise = Some(7);
        let mut rejected = record(1, 3);
        rejected.movement.unit_price_paise = None;
        let mut records = vec![sale, priced, rejected];
        let applied = Outcome::Applied {
            balance_after: 0,
            delta: 0,
            average_cost: None,
            cost_of_goods: None,
            alert: None,
        };
        let outcomes = [
            applied,
            applied,
            Outcome::Rejected {
                reason: RejectReason::InsufficientStock,
                available: Some(0),
            },
        ];
        let mut held = Settings::new();
        held.insert(
            ProductId(1),
            crate::ledger::Setting {
                reorder_point: None,
                selling_price: Some(2_500),
            },
        );
        let settings = HashMap::from([(StoreId(1), held)]);
        stamp_store_prices(&mut records, &outcomes, &settings);
        let prices: Vec<Option<i64>> = records.iter().map(Record::unit_price_paise).collect();
        assert_eq!(prices, [Some(2_500), Some(7), None]);
    }

    /// The batch in flight's transfers reach the next batch's decisions from memory: what
    /// it sent is known (a reused id is refused), what it received is received.
    #[test]
    fn a_batchs_transfers_are_carried_to_the_next_as_sent_and_received() {
        let applied = Outcome::Applied {
            balance_after: 0,
            delta: 0,
            average_cost: Some(120),
            cost_of_goods: None,
            alert: None,
        };
        let rejected = Outcome::Rejected {
            reason: RejectReason::InsufficientStock,
            available: Some(0),
        };
        let mut out = record(1, 1);
        out.movement.kind = MovementKind::TransferOut;
        out.movement.transfer_id = Some(Uuid::from_u128(7));
        out.movement.to_store_id = Some(StoreId(2));
        let mut refused = out.clone();
        refused.movement.transfer_id = Some(Uuid::from_u128(8));
        let mut receive = record(2, 1);
        receive.movement.kind = MovementKind::TransferReceive;
        receive.movement.transfer_id = Some(Uuid::from_u128(9));
        let known = HashMap::from([(Uuid::from_u128(9), Transfer::sent_by(&out.movement, None))]);
        let moved = moved_transfers(
            &[out.clone(), refused, receive],
            &[applied, rejected, applied],
            &known,
        );
        assert_eq!(moved.len(), 2, "{moved:?}");
        let sent = moved[&Uuid::from_u128(7)];
        assert_eq!((sent.received, sent.unit_cost), (false, Some(120)));
        assert!(moved[&Uuid::from_u128(9)].received);
    }
}
