//! The decision core's properties and cases.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use schemas::SupplierId;

use super::*;

const STORES: i64 = 3;
const PRODUCTS: i64 = 4;

fn movement(
    id: u128,
    store: i64,
    product: i64,
    kind: MovementKind,
    quantity: i64,
) -> StockMovement {
    StockMovement {
        movement_id: Uuid::from_u128(id),
        store_id: StoreId(store),
        product_id: ProductId(product),
        sku: format!("SKU-{product}"),
        kind,
        // Every other adjustment takes stock (its quantity carries the sign).
        quantity: if kind == MovementKind::Adjustment && quantity % 2 == 0 {
            -quantity
        } else {
            quantity
        },
        occurred_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        received_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        // Every fifth quantity a cash purchase, every seventh without a cost.
        supplier_id: (kind == MovementKind::StockIn && quantity % 5 != 0).then_some(SupplierId(1)),
        unit_cost_paise: (kind == MovementKind::StockIn && quantity % 7 != 0)
            .then_some(100 + quantity % 7),
        unit_price_paise: (kind == MovementKind::Sale).then_some(150),
        reason: matches!(kind, MovementKind::Removal | MovementKind::Adjustment)
            .then(|| "damaged".to_owned()),
        reference: None,
        actor: "tester".into(),
        device_id: None,
        // Every sixth quantity of a sale or removal was made offline.
        offline: matches!(kind, MovementKind::Sale | MovementKind::Removal) && quantity % 6 == 0,
        // Every fourth return is not resellable.
        restock: (kind == MovementKind::Return && quantity % 4 == 0).then_some(false),
        note: None,
        original_movement_id: None,
    }
}

/// Store 1 rejects negative stock, store 2 allows it, store 3 is unknown; product
/// 4 is unknown; every product has reorder point 5 in store 1.
fn catalog() -> BatchCatalog {
    BatchCatalog {
        stores: HashMap::from([(StoreId(1), Policy::Reject), (StoreId(2), Policy::Allow)]),
        live_products: (1..PRODUCTS).map(ProductId).collect(),
        reorder_points: (1..=PRODUCTS)
            .map(|product| ((StoreId(1), ProductId(product)), 5))
            .collect(),
    }
}

/// Movements over few stores, products and ids, so that duplicates, rejections and
/// unknown references all happen — returns naming ids that are sales, other movements or
/// nothing at all among them.
fn movements() -> impl Strategy<Value = Vec<StockMovement>> {
    prop::collection::vec(
        (
            0u128..40,
            1..=STORES,
            1..=PRODUCTS,
            prop::sample::select(MovementKind::KNOWN),
            1i64..=20,
            prop::option::of(0u128..40),
        )
            .prop_map(|(id, store, product, kind, quantity, sale)| {
                let mut movement = movement(id, store, product, kind, quantity);
                if kind == MovementKind::Return {
                    movement.original_movement_id = sale.map(Uuid::from_u128);
                }
                movement
            }),
        0..120,
    )
}

/// What a duplicate refers back to, without what changes after the first outcome (a
/// sale's returns so far).
fn as_first(original: Original) -> Original {
    Original {
        sale: original.sale.map(|line| SaleLine {
            returned: 0,
            ..line
        }),
        ..original
    }
}

fn total(balances: &Balances) -> HashMap<(StoreId, ProductId), i64> {
    balances
        .iter()
        .flat_map(|(store, holdings)| {
            holdings
                .iter()
                .map(|(product, held)| ((*store, *product), held.quantity))
        })
        .collect()
}

proptest! {
    #[test]
    fn balances_are_the_sum_of_applied_deltas_and_only_offline_movements_go_below_zero_under_reject(
        batch in movements()
    ) {
        let mut balances = Balances::new();
        let outcomes = decide(&mut balances, &mut HashMap::new(), &catalog(), &batch);
        let mut expected: HashMap<(StoreId, ProductId), i64> = HashMap::new();
        for (movement, outcome) in batch.iter().zip(&outcomes) {
            match outcome {
                Outcome::Applied { balance_after, alert, .. } => {
                    let sum = expected.entry((movement.store_id, movement.product_id)).or_default();
                    let before = *sum;
                    *sum += movement.delta();
                    prop_assert_eq!(*sum, *balance_after);
                    // Under `reject`, only a movement made offline takes more than the book
                    // holds, and each says so.
                    let short = movement.store_id == StoreId(1)
                        && movement.delta() < 0
                        && *balance_after < 0;
                    if short {
                        prop_assert!(movement.offline, "{movement:?} from {before}");
                    }
                    prop_assert_eq!(short, *alert == Some(AlertKind::PhantomStock));
                }
                Outcome::Rejected { reason: RejectReason::InsufficientStock, .. } => {
                    prop_assert!(!movement.offline, "an offline movement is never short");
                }
                _ => {}
            }
        }
        for (key, quantity) in total(&balances) {
            prop_assert_eq!(expected.get(&key).copied().unwrap_or_default(), quantity);
        }
    }

    #[test]
    fn replaying_any_prefix_changes_nothing(batch in movements(), cut in 0usize..120) {
        let catalog = catalog();
        let mut balances = Balances::new();
        let mut seen = HashMap::new();
        let outcomes = decide(&mut balances, &mut seen, &catalog, &batch);
        let after = total(&balances);
        let prefix = &batch[..cut.min(batch.len())];
        let replayed = decide(&mut balances, &mut seen, &catalog, prefix);
        prop_assert_eq!(total(&balances), after);
        for (movement, outcome) in prefix.iter().zip(&replayed) {
            // The first movement of that id in the first pass, and its outcome.
            let (first, first_outcome) = batch
                .iter()
                .zip(&outcomes)
                .find(|(first, _)| first.movement_id == movement.movement_id)
                .ok_or_else(|| TestCaseError::fail("no first movement"))?;
            let same = first.store_id == movement.store_id
                && first.fingerprint() == movement.fingerprint();
            match outcome {
                Outcome::Duplicate(original) if same => {
                    prop_assert_eq!(Some(as_first(*original)), first_outcome.original(first));
                }
                Outcome::Conflict if !same => {}
                _ => return Err(TestCaseError::fail(format!("{outcome:?} on replay"))),
            }
        }
    }

    #[test]
    fn a_reused_id_is_a_duplicate_only_for_the_same_movement_of_the_same_store(batch in movements()) {
        let outcomes = decide(&mut Balances::new(), &mut HashMap::new(), &catalog(), &batch);
        for (index, (movement, outcome)) in batch.iter().zip(&outcomes).enumerate() {
            let first = batch[..index].iter().find(|m| m.movement_id == movement.movement_id);
            match (first, outcome) {
                (None, Outcome::Applied { .. } | Outcome::Rejected { .. }) => {}
                (Some(first), Outcome::Duplicate(original)) => {
                    prop_assert_eq!(first.store_id, movement.store_id);
                    prop_assert_eq!(first.fingerprint(), movement.fingerprint());
                    prop_assert_eq!(original.store_id, movement.store_id);
                }
                (Some(first), Outcome::Conflict) => prop_assert!(
                    first.store_id != movement.store_id
                        || first.fingerprint() != movement.fingerprint()
                ),
                _ => return Err(TestCaseError::fail(format!("{outcome:?} at {index}"))),
            }
        }
    }

    #[test]
    fn a_return_naming_a_sale_takes_back_at_most_what_that_sale_sold(batch in movements()) {
        let mut seen = HashMap::new();
        let outcomes = decide(&mut Balances::new(), &mut seen, &catalog(), &batch);
        let mut sold: HashMap<Uuid, (&StockMovement, i64)> = HashMap::new();
        for (movement, outcome) in batch.iter().zip(&outcomes) {
            let applied = matches!(outcome, Outcome::Applied { .. });
            match (movement.kind, movement.original_movement_id) {
                (MovementKind::Sale, _) if applied => {
                    sold.insert(movement.movement_id, (movement, 0));
                }
                (MovementKind::Return, Some(id)) if applied => {
                    let (sale, returned) = sold
                        .get_mut(&id)
                        .ok_or_else(|| TestCaseError::fail(format!("{movement:?} names no sale")))?;
                    prop_assert_eq!(
                        (sale.store_id, sale.product_id),
                        (movement.store_id, movement.product_id)
                    );
                    *returned += movement.quantity;
                    prop_assert!(*returned <= sale.quantity, "{movement:?} returns too much");
                }
                (MovementKind::Return, Some(id)) => {
                    let fits = sold.get(&id).is_some_and(|(sale, returned)| {
                        (sale.store_id, sale.product_id) == (movement.store_id, movement.product_id)
                            && returned + movement.quantity <= sale.quantity
                    });
                    // Refused for its sale, or a duplicate, a conflict or an unknown store
                    // or product like any other movement.
                    let for_its_sale = matches!(
                        outcome,
                        Outcome::Rejected {
                            reason: RejectReason::UnknownSale | RejectReason::ReturnExceedsSale,
                            ..
                        }
                    );
                    prop_assert!(!fits || !for_its_sale, "{movement:?}: {outcome:?}");
                }
                _ => {}
            }
        }
        for (id, (_, returned)) in &sold {
            prop_assert_eq!(seen[id].sale.map(|line| line.returned), Some(*returned));
        }
    }

    #[test]
    fn the_same_batch_from_the_same_state_gets_the_same_outcomes(batch in movements()) {
        // What a replay after a crash does: the state is reloaded as committed before
        // the batch, and the whole batch is decided again.
        let catalog = catalog();
        let first = decide(&mut Balances::new(), &mut HashMap::new(), &catalog, &batch);
        let again = decide(&mut Balances::new(), &mut HashMap::new(), &catalog, &batch);
        prop_assert_eq!(first, again);
    }
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
    let balances: Vec<_> = outcomes
        .iter()
        .map(|outcome| match *outcome {
            Outcome::Applied { balance_after, .. } => Ok(balance_after),
            Outcome::Rejected { reason, .. } => Err(reason),
            other => panic!("{other:?}"),
        })
        .collect();
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
    let answers: Vec<_> = outcomes
        .iter()
        .map(|outcome| match *outcome {
            Outcome::Applied { balance_after, .. } => Ok(balance_after),
            Outcome::Rejected { reason, available } => Err((reason, available)),
            other => panic!("{other:?}"),
        })
        .collect();
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
