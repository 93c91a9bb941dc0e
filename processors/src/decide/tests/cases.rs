//! The decision core's cases, one behaviour each.

use super::*;

/// Each outcome's balance when applied, its reason when rejected.
fn applied_or_rejected(outcomes: &[Outcome]) -> Vec<Result<i64, RejectReason>> {
    applied_or_rejected_with(outcomes)
        .into_iter()
        .map(|answer| answer.map_err(|(reason, _)| reason))
        .collect()
}

/// Each outcome's balance when applied, its reason and available quantity when rejected.
fn applied_or_rejected_with(outcomes: &[Outcome]) -> Vec<Result<i64, (RejectReason, Option<i64>)>> {
    outcomes
        .iter()
        .map(|outcome| match *outcome {
            Outcome::Applied { balance_after, .. } => Ok(balance_after),
            Outcome::Rejected { reason, available } => Err((reason, available)),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_sale_beyond_the_balance_is_rejected_with_the_available_quantity() {
    let mut balances = Balances::new();
    let outcomes = decide(
        &mut balances,
        &mut HashMap::new(),
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 3),
            movement(2, 1, 1, MovementKind::Sale, 4),
            movement(3, 2, 1, MovementKind::Sale, 4),
        ],
    );
    assert_eq!(
        outcomes[1],
        Outcome::Rejected {
            reason: RejectReason::InsufficientStock,
            available: Some(3)
        }
    );
    assert!(
        matches!(
            outcomes[2],
            Outcome::Applied {
                balance_after: -4,
                ..
            }
        ),
        "store 2 allows negative stock: {:?}",
        outcomes[2]
    );
}

#[test]
fn an_offline_sale_on_an_empty_shelf_is_applied_and_says_the_book_was_wrong() {
    let offline = |id, quantity| {
        let mut sale = movement(id, 1, 1, MovementKind::Sale, quantity);
        sale.offline = true;
        sale
    };
    let live = |id, quantity| {
        let mut sale = movement(id, 1, 1, MovementKind::Sale, quantity);
        sale.offline = false;
        sale
    };
    let outcomes = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 2),
            live(2, 3),
            offline(3, 3),
            offline(4, 1),
            live(5, 1),
            movement(6, 1, 1, MovementKind::StockIn, 10),
        ],
    );
    let seen: Vec<_> = outcomes
        .iter()
        .map(|outcome| match *outcome {
            Outcome::Applied {
                balance_after,
                alert,
                ..
            } => (Some(balance_after), alert),
            Outcome::Rejected { .. } => (None, None),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some(2), Some(AlertKind::LowStock)),
            (None, None),
            (Some(-1), Some(AlertKind::PhantomStock)),
            (Some(-2), Some(AlertKind::PhantomStock)),
            (None, None),
            (Some(8), Some(AlertKind::Recovered)),
        ]
    );
}

#[test]
fn returns_and_adjustments_move_sellable_stock_by_what_they_say() {
    let mut defective = movement(3, 1, 1, MovementKind::Return, 2);
    defective.restock = Some(false);
    let outcomes = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 10),
            movement(2, 1, 1, MovementKind::Return, 3),
            defective,
            movement(4, 1, 1, MovementKind::Adjustment, 4),
            movement(5, 1, 1, MovementKind::Adjustment, 3),
            movement(6, 1, 1, MovementKind::Adjustment, 20),
        ],
    );
    let balances = applied_or_rejected(&outcomes);
    assert_eq!(
        balances,
        [
            Ok(10),
            Ok(13),
            Ok(13),
            Ok(9),
            Ok(12),
            Err(RejectReason::InsufficientStock)
        ],
        "a return back on the shelf adds, one not resellable changes nothing, an adjustment \
         adds its signed quantity and may not take more than there is under `reject`"
    );
}

#[test]
fn a_return_naming_its_sale_takes_back_at_most_what_the_sale_sold() {
    let returning = |id: u128, store: i64, product: i64, quantity: i64, sale: u128| {
        let mut back = movement(id, store, product, MovementKind::Return, quantity);
        back.restock = None;
        back.original_movement_id = Some(Uuid::from_u128(sale));
        back
    };
    let mut seen = HashMap::new();
    let mut balances = Balances::new();
    let outcomes = decide(
        &mut balances,
        &mut seen,
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 10),
            movement(2, 1, 1, MovementKind::Sale, 5),
            returning(3, 1, 1, 3, 2),
            returning(4, 1, 1, 3, 2),
            returning(5, 1, 1, 2, 2),
            returning(6, 1, 1, 1, 2),
            // Not a sale; another product's sale; another store's; a sale rejected; none.
            returning(7, 1, 1, 1, 1),
            returning(8, 1, 2, 1, 2),
            returning(9, 2, 1, 1, 2),
            movement(10, 1, 3, MovementKind::Sale, 1),
            returning(11, 1, 3, 1, 10),
            returning(12, 1, 1, 1, 99),
        ],
    );
    let answers: Vec<_> = applied_or_rejected_with(&outcomes);
    let unknown = Err((RejectReason::UnknownSale, None));
    assert_eq!(
        answers,
        [
            Ok(10),
            Ok(5),
            Ok(8),
            Err((RejectReason::ReturnExceedsSale, Some(2))),
            Ok(10),
            Err((RejectReason::ReturnExceedsSale, Some(0))),
            unknown,
            unknown,
            unknown,
            Err((RejectReason::InsufficientStock, Some(0))),
            unknown,
            unknown,
        ]
    );
    let line = seen[&Uuid::from_u128(2)].sale.unwrap();
    assert_eq!((line.quantity, line.returned), (5, 5));
}

#[test]
fn a_void_reverses_its_movement_once_and_follows_the_policy() {
    let void = |id: u128, product: i64, quantity: i64, voided: u128| {
        let mut void = movement(id, 1, product, MovementKind::Void, quantity);
        void.voids_movement_id = Some(Uuid::from_u128(voided));
        void
    };
    let outcomes = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &[
            movement(1, 1, 1, MovementKind::StockIn, 10),
            movement(2, 1, 1, MovementKind::Sale, 4),
            void(3, 1, 4, 2),
            void(4, 1, 4, 2),
            void(5, 1, 3, 1),
            void(6, 2, 10, 1),
            void(7, 1, 10, 99),
            void(8, 1, 4, 3),
            movement(9, 1, 1, MovementKind::Sale, 9),
            void(10, 1, 10, 1),
        ],
    );
    let answers = applied_or_rejected(&outcomes);
    assert_eq!(
        answers,
        [
            Ok(10),
            Ok(6),
            Ok(10),
            Err(RejectReason::AlreadyVoided),
            Err(RejectReason::VoidMismatch),
            Err(RejectReason::VoidMismatch),
            Err(RejectReason::UnknownMovement),
            Err(RejectReason::NotVoidable),
            Ok(1),
            Err(RejectReason::InsufficientStock),
        ],
        "the sale voided once (its stock back), not as another quantity or product, not \
         unknown or a void; the stock-in's void would leave −9 under `reject`"
    );
}

#[test]
fn a_count_holds_as_of_its_time_under_later_movements_and_supersedes_earlier_ones() {
    let at = |id: u128, kind: MovementKind, quantity: i64, hour: u32| {
        let mut movement = movement(id, 1, 1, kind, quantity);
        movement.occurred_at = Utc.with_ymd_and_hms(2027, 1, 15, hour, 0, 0).unwrap();
        movement.offline = false;
        movement
    };
    let mut late = at(4, MovementKind::Sale, 1, 10);
    late.occurred_at += chrono::Duration::minutes(30);
    let outcomes = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &[
            at(1, MovementKind::StockIn, 10, 10),
            at(2, MovementKind::Sale, 3, 12),
            // Counted 5 at 11:00, when the book held 10: the sale at noon stays applied.
            at(3, MovementKind::Count, 5, 11),
            // Sold at 10:30, synced after the count, which saw the shelf after it.
            late,
            at(5, MovementKind::Sale, 1, 13),
            // An older count, arriving after the newer one.
            at(6, MovementKind::Count, 4, 9),
        ],
    );
    let changes: Vec<_> = outcomes
        .iter()
        .map(|outcome| match *outcome {
            Outcome::Applied {
                balance_after,
                delta,
                ..
            } => Ok((balance_after, delta)),
            Outcome::Rejected { reason, .. } => Err(reason),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        changes,
        [
            Ok((10, 10)),
            Ok((7, -3)),
            Ok((2, -5)),
            Err(RejectReason::SupersededByCount),
            Ok((1, -1)),
            Err(RejectReason::SupersededByCount),
        ]
    );
}

#[test]
fn a_resend_may_differ_in_time_actor_and_device_but_not_in_what_it_moves() {
    let original = movement(1, 1, 1, MovementKind::StockIn, 3);
    let mut resend = original.clone();
    resend.occurred_at = Utc.timestamp_opt(1_800_000_100, 0).unwrap();
    resend.received_at = Utc.timestamp_opt(1_800_000_200, 0).unwrap();
    resend.actor = "another-cashier".into();
    resend.device_id = Some("till-2".into());
    let mut more = original.clone();
    more.quantity = 30;
    let mut other_store = original.clone();
    other_store.store_id = StoreId(2);
    let outcomes = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &[original, resend, more, other_store],
    );
    assert!(
        matches!(
            outcomes[1],
            Outcome::Duplicate(Original {
                balance_after: Some(3),
                ..
            })
        ),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], Outcome::Conflict);
    assert_eq!(outcomes[3], Outcome::Conflict);
    assert_eq!(
        outcomes[3].recorded().reject_reason,
        Some(IDEMPOTENCY_KEY_REUSED)
    );
    assert_eq!(
        outcomes[3].recorded().balance_after,
        None,
        "nothing of the original is told"
    );
}

#[test]
fn unknown_stores_and_products_are_rejected() {
    let outcomes = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &[
            movement(1, 3, 1, MovementKind::StockIn, 3),
            movement(2, 1, 4, MovementKind::StockIn, 3),
        ],
    );
    let reasons: Vec<_> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Rejected { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            Some(RejectReason::UnknownStore),
            Some(RejectReason::UnknownProduct)
        ]
    );
}

#[test]
fn a_stock_in_without_a_cost_joins_at_the_average_so_far_and_an_unknown_cost_stays_unknown() {
    let stock_in = |id, product, quantity, cost: Option<i64>| {
        let mut movement = movement(id, 1, product, MovementKind::StockIn, quantity);
        movement.supplier_id = None;
        movement.unit_cost_paise = cost;
        movement
    };
    let batch = [
        stock_in(1, 1, 10, Some(100)),
        stock_in(2, 1, 30, None),
        movement(3, 1, 1, MovementKind::Sale, 4),
        stock_in(4, 2, 10, None),
        movement(5, 1, 2, MovementKind::Sale, 4),
    ];
    let outcomes = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &batch,
    );
    let costs: Vec<_> = outcomes
        .iter()
        .map(|outcome| match *outcome {
            Outcome::Applied {
                balance_after,
                average_cost,
                cost_of_goods,
                ..
            } => (balance_after, average_cost, cost_of_goods),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        costs,
        [
            (10, Some(100), None),
            (40, Some(100), None),
            (36, Some(100), Some(400)),
            (10, None, None),
            (6, None, None),
        ]
    );
}

#[test]
fn stock_ins_move_the_average_cost_and_sales_are_costed_at_it() {
    let stock_in = |id, quantity, cost| {
        let mut movement = movement(id, 1, 1, MovementKind::StockIn, quantity);
        movement.unit_cost_paise = Some(cost);
        movement
    };
    let batch = [
        stock_in(1, 10, 100),
        stock_in(2, 30, 200),
        movement(3, 1, 1, MovementKind::Sale, 4),
    ];
    let outcomes = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &batch,
    );
    // (10 × 100 + 30 × 200) / 40 = 175.
    assert!(matches!(
        outcomes[2],
        Outcome::Applied {
            balance_after: 36,
            average_cost: Some(175),
            cost_of_goods: Some(700),
            ..
        }
    ));
}

#[test]
fn alerts_fire_when_a_threshold_is_crossed_and_only_then() {
    let batch = [
        movement(1, 1, 1, MovementKind::StockIn, 10), // above 5: none
        movement(2, 1, 1, MovementKind::Sale, 5),     // 5: low
        movement(3, 1, 1, MovementKind::Sale, 1),     // 4: still low, none
        movement(4, 1, 1, MovementKind::Removal, 4),  // 0: out
        movement(5, 1, 1, MovementKind::StockIn, 3),  // 3: low again
        movement(6, 1, 1, MovementKind::StockIn, 10), // 13: recovered
    ];
    let alerts: Vec<_> = decide(
        &mut Balances::new(),
        &mut HashMap::new(),
        &catalog(),
        &batch,
    )
    .into_iter()
    .map(|outcome| match outcome {
        Outcome::Applied { alert, .. } => alert,
        other => panic!("{other:?}"),
    })
    .collect();
    assert_eq!(
        alerts,
        [
            None,
            Some(AlertKind::LowStock),
            None,
            Some(AlertKind::OutOfStock),
            Some(AlertKind::LowStock),
            Some(AlertKind::Recovered),
        ]
    );
}
