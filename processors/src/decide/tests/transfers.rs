//! Transfers between stores: a transfer-out sends, its transfer-in announces, a receive
//! says what arrived.

use super::*;

fn transfer_out(id: u128, from: i64, to: i64, quantity: i64, transfer: u128) -> StockMovement {
    StockMovement {
        transfer_id: Some(Uuid::from_u128(transfer)),
        to_store_id: Some(StoreId(to)),
        ..movement(id, from, 1, MovementKind::TransferOut, quantity)
    }
}

fn receive(id: u128, store: i64, quantity: i64, transfer: u128) -> StockMovement {
    StockMovement {
        transfer_id: Some(Uuid::from_u128(transfer)),
        ..movement(id, store, 1, MovementKind::TransferReceive, quantity)
    }
}

/// Each outcome's balance when applied, its reason when rejected, of `movements` decided
/// from nothing against `known`.
fn decided(known: &BatchCatalog, movements: &[StockMovement]) -> Vec<Result<i64, RejectReason>> {
    decide(&mut Balances::new(), &mut HashMap::new(), known, movements)
        .iter()
        .map(balance_after)
        .collect()
}

fn balance_after(outcome: &Outcome) -> Result<i64, RejectReason> {
    match *outcome {
        Outcome::Applied { balance_after, .. } => Ok(balance_after),
        Outcome::Rejected { reason, .. } => Err(reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_transfer_leaves_the_source_is_announced_and_arrives_once_with_its_shortfall_lost() {
    let mut balances = Balances::new();
    let mut seen = HashMap::new();
    let sent = transfer_out(2, 1, 2, 3, 100);
    let notice = sent.transfer_in().expect("a transfer-out announces itself");
    assert_eq!(notice.store_id, StoreId(2));
    assert_eq!(notice.from_store_id, Some(StoreId(1)));
    assert_eq!(
        notice.movement_id,
        schemas::transfer_in_id(Uuid::from_u128(100))
    );
    let outcomes = decide(
        &mut balances,
        &mut seen,
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 5),
            // Before its transfer-in: not announced here yet.
            receive(3, 2, 2, 100),
            sent.clone(),
            notice.clone(),
            receive(4, 2, 4, 100),
            receive(5, 2, 2, 100),
            receive(6, 2, 1, 100),
        ],
    );
    let answers: Vec<_> = outcomes.iter().map(balance_after).collect();
    assert_eq!(
        answers,
        [
            Ok(5),
            Err(RejectReason::UnknownTransfer),
            Ok(2),
            // The notice changes no sellable stock at the destination.
            Ok(0),
            Err(RejectReason::ReceiveExceedsTransfer),
            Ok(2),
            Err(RejectReason::AlreadyReceived),
        ]
    );
    assert_eq!(
        outcomes[4],
        Outcome::Rejected {
            reason: RejectReason::ReceiveExceedsTransfer,
            available: Some(3),
        },
        "says what was sent"
    );
    // The same notice again (a transaction published twice) is a duplicate.
    let again = decide(&mut balances, &mut seen, &catalog(), &[notice]);
    assert!(matches!(again[0], Outcome::Duplicate(_)), "{again:?}");
}

#[test]
fn a_transfer_out_needs_another_live_store_a_new_transfer_id_and_the_stock() {
    let mut known = catalog();
    known.transfers.insert(
        Uuid::from_u128(7),
        Transfer {
            to_store_id: StoreId(2),
            product_id: ProductId(1),
            sent: 1,
            received: false,
            unit_cost: None,
        },
    );
    let answers = decided(
        &known,
        &[
            movement(1, 1, 1, MovementKind::StockIn, 5),
            transfer_out(2, 1, 3, 1, 100),
            transfer_out(3, 1, 1, 1, 101),
            transfer_out(4, 1, 2, 1, 7),
            transfer_out(5, 1, 2, 6, 102),
            transfer_out(6, 1, 2, 5, 103),
            transfer_out(7, 1, 2, 1, 103),
        ],
    );
    assert_eq!(
        answers,
        [
            Ok(5),
            Err(RejectReason::UnknownDestination),
            Err(RejectReason::UnknownDestination),
            Err(RejectReason::TransferExists),
            Err(RejectReason::InsufficientStock),
            Ok(0),
            Err(RejectReason::TransferExists),
        ]
    );
}

#[test]
fn a_receive_of_another_store_or_product_is_unknown_and_a_transfer_is_not_voided() {
    let sent = transfer_out(2, 1, 2, 3, 100);
    let notice = sent.transfer_in().unwrap();
    let answers = decided(
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 5),
            sent.clone(),
            notice,
            receive(3, 1, 1, 100),
            StockMovement {
                product_id: ProductId(2),
                ..receive(4, 2, 1, 100)
            },
            StockMovement {
                voids_movement_id: Some(sent.movement_id),
                ..movement(5, 1, 1, MovementKind::Void, 3)
            },
            receive(6, 2, 0, 100),
        ],
    );
    assert_eq!(
        answers,
        [
            Ok(5),
            Ok(2),
            Ok(0),
            Err(RejectReason::UnknownTransfer),
            Err(RejectReason::UnknownTransfer),
            Err(RejectReason::NotVoidable),
            // Nothing arrived: all of it was lost in transit.
            Ok(0),
        ]
    );
}

#[test]
fn a_count_at_the_destination_before_the_announcement_does_not_supersede_it() {
    let sent = transfer_out(2, 1, 2, 3, 100);
    let counted_later = StockMovement {
        occurred_at: sent.occurred_at + chrono::Duration::minutes(5),
        ..movement(3, 2, 1, MovementKind::Count, 0)
    };
    let answers = decided(
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 5),
            sent.clone(),
            counted_later,
            sent.transfer_in().unwrap(),
            StockMovement {
                occurred_at: sent.occurred_at + chrono::Duration::minutes(10),
                ..receive(4, 2, 3, 100)
            },
        ],
    );
    assert_eq!(answers, [Ok(5), Ok(2), Ok(0), Ok(0), Ok(3)]);
}

#[test]
fn an_announcement_holds_no_balance_and_raises_nothing_where_the_product_is_new() {
    let mut balances = Balances::new();
    let sent = transfer_out(2, 1, 2, 3, 100);
    let outcomes = decide(
        &mut balances,
        &mut HashMap::new(),
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 5),
            sent.clone(),
            sent.transfer_in().unwrap(),
        ],
    );
    assert!(
        matches!(
            outcomes[2],
            Outcome::Applied {
                balance_after: 0,
                delta: 0,
                alert: None,
                ..
            }
        ),
        "{outcomes:?}"
    );
    assert!(!balances.contains_key(&StoreId(2)), "{balances:?}");
}

#[test]
fn received_units_join_the_destinations_average_at_the_sources_cost() {
    let mut balances = Balances::new();
    let costing = |id, store, cost| StockMovement {
        unit_cost_paise: Some(cost),
        ..movement(id, store, 1, MovementKind::StockIn, 5)
    };
    let sent = transfer_out(3, 1, 2, 3, 100);
    let outcomes = decide(
        &mut balances,
        &mut HashMap::new(),
        &catalog(),
        &[
            costing(1, 1, 100),
            costing(2, 2, 200),
            sent.clone(),
            sent.transfer_in().unwrap(),
            receive(4, 2, 3, 100),
        ],
    );
    let Outcome::Applied { average_cost, .. } = outcomes[4] else {
        panic!("{outcomes:?}")
    };
    // (5 × 200 + 3 × 100) / 8 = 162.5, rounded half up.
    assert_eq!(average_cost, Some(163));
}

/// One step of a two-store pipeline.
#[derive(Debug, Clone)]
enum Step {
    StockIn {
        store: i64,
        quantity: i64,
    },
    /// To the other store; every seventh to itself or to an unknown store.
    Out {
        store: i64,
        quantity: i64,
        transfer: u128,
    },
    /// Deliver the oldest pending transfer-in (twice when `again`: a republished one).
    Deliver {
        again: bool,
    },
    Receive {
        store: i64,
        quantity: i64,
        transfer: u128,
    },
    /// Resend an earlier movement.
    Resend {
        index: usize,
    },
    /// End the batch here.
    Cut,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        (1..=2i64, 1..=10i64).prop_map(|(store, quantity)| Step::StockIn { store, quantity }),
        (1..=2i64, 1..=10i64, 0u128..6).prop_map(|(store, quantity, transfer)| Step::Out {
            store,
            quantity,
            transfer
        }),
        any::<bool>().prop_map(|again| Step::Deliver { again }),
        any::<bool>().prop_map(|again| Step::Deliver { again }),
        (1..=2i64, 0..=10i64, 0u128..6).prop_map(|(store, quantity, transfer)| {
            Step::Receive {
                store,
                quantity,
                transfer,
            }
        }),
        (0usize..100).prop_map(|index| Step::Resend { index }),
        Just(Step::Cut),
    ];
    prop::collection::vec(step, 0..100)
}

proptest! {
    /// Whatever the order of sends, announcements (late, repeated) and receives, batch
    /// boundaries and resends: stock is conserved — what came in is on the shelves, in
    /// transit or lost in transit — each applied transfer-out is announced and applied at
    /// its destination once, and deciding everything again changes nothing.
    #[test]
    fn transfers_conserve_stock_and_arrive_once(steps in steps()) {
        let mut balances = Balances::new();
        let mut seen = HashMap::new();
        // What Postgres holds of the transfers between batches.
        let mut stored: HashMap<Uuid, Transfer> = HashMap::new();
        let mut received_quantity: HashMap<Uuid, i64> = HashMap::new();
        let mut pending: std::collections::VecDeque<StockMovement> = Default::default();
        let mut sent_all: Vec<StockMovement> = Vec::new();
        let mut batch: Vec<StockMovement> = Vec::new();
        let mut stocked = 0;
        let mut id = 1_000u128;
        let decide_batch = |batch: &mut Vec<StockMovement>,
                                balances: &mut Balances,
                                seen: &mut HashMap<Uuid, Original>,
                                stored: &mut HashMap<Uuid, Transfer>,
                                received_quantity: &mut HashMap<Uuid, i64>,
                                pending: &mut std::collections::VecDeque<StockMovement>,
                                stocked: &mut i64| {
            let known = BatchCatalog { transfers: stored.clone(), ..catalog() };
            let outcomes = decide(balances, seen, &known, batch.iter());
            for (movement, outcome) in batch.iter().zip(&outcomes) {
                if !matches!(outcome, Outcome::Applied { .. }) {
                    continue;
                }
                let transfer = movement.transfer_id.unwrap_or_default();
                match movement.kind {
                    MovementKind::StockIn => *stocked += movement.quantity,
                    MovementKind::TransferOut => {
                        let Outcome::Applied { average_cost, .. } = *outcome else {
                            unreachable!()
                        };
                        stored.insert(transfer, Transfer::sent_by(movement, average_cost));
                        pending.push_back(movement.transfer_in().unwrap());
                    }
                    MovementKind::TransferReceive => {
                        stored.get_mut(&transfer).unwrap().received = true;
                        received_quantity.insert(transfer, movement.quantity);
                    }
                    _ => {}
                }
            }
            batch.clear();
        };
        for step in steps {
            id += 1;
            match step {
                Step::StockIn { store, quantity } => {
                    batch.push(movement(id, store, 1, MovementKind::StockIn, quantity));
                }
                Step::Out { store, quantity, transfer } => {
                    let to = match id % 7 {
                        0 => store,
                        1 => 3,
                        _ => 3 - store,
                    };
                    batch.push(transfer_out(id, store, to, quantity, transfer));
                }
                Step::Deliver { again } => {
                    if let Some(notice) = pending.pop_front() {
                        if again {
                            batch.push(notice.clone());
                        }
                        batch.push(notice);
                    }
                }
                Step::Receive { store, quantity, transfer } => {
                    batch.push(receive(id, store, quantity, transfer));
                }
                Step::Resend { index } => {
                    if let Some(earlier) = sent_all.get(index).cloned() {
                        batch.push(earlier);
                    }
                }
                Step::Cut => decide_batch(
                    &mut batch, &mut balances, &mut seen, &mut stored,
                    &mut received_quantity, &mut pending, &mut stocked,
                ),
            }
            if let Some(last) = batch.last() {
                sent_all.push(last.clone());
            }
        }
        decide_batch(
            &mut batch, &mut balances, &mut seen, &mut stored,
            &mut received_quantity, &mut pending, &mut stocked,
        );
        // Every announcement delivered, each once more (republished).
        let mut notices: Vec<StockMovement> = pending.drain(..).collect();
        notices.extend(notices.clone());
        batch.extend(notices);
        decide_batch(
            &mut batch, &mut balances, &mut seen, &mut stored,
            &mut received_quantity, &mut pending, &mut stocked,
        );

        let on_shelves: i64 = balances.values().flat_map(|held| held.values()).map(|h| h.quantity).sum();
        let in_transit: i64 = stored.values().filter(|t| !t.received).map(|t| t.sent).sum();
        let lost: i64 = stored
            .iter()
            .filter(|(_, t)| t.received)
            .map(|(id, t)| t.sent - received_quantity[id])
            .sum();
        prop_assert_eq!(stocked, on_shelves + in_transit + lost, "stock conserved");
        // Each applied transfer-out's transfer-in applied once, at its destination.
        for (transfer, sent) in &stored {
            let notice = seen.get(&schemas::transfer_in_id(*transfer));
            prop_assert!(
                notice.is_some_and(|n| n.status == schemas::LedgerStatus::Applied && n.store_id == sent.to_store_id),
                "{transfer}: {notice:?}"
            );
        }
        // Deciding everything again changes nothing.
        let before = balances.clone();
        let known = BatchCatalog { transfers: stored.clone(), ..catalog() };
        let again = decide(&mut balances, &mut seen, &known, sent_all.iter());
        prop_assert!(again.iter().all(|o| matches!(o, Outcome::Duplicate(_) | Outcome::Conflict)));
        prop_assert_eq!(balances, before);
    }
}
