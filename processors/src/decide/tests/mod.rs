//! The decision core's properties (`cases`: one behaviour each).

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
    // Every other adjustment takes stock (its quantity carries the sign).
    let signed = if kind == MovementKind::Adjustment && quantity % 2 == 0 {
        -quantity
    } else {
        quantity
    };
    StockMovement {
        // Every fifth quantity a cash purchase, every seventh without a cost.
        supplier_id: (kind == MovementKind::StockIn && quantity % 5 != 0).then_some(SupplierId(1)),
        unit_cost_paise: (kind == MovementKind::StockIn && quantity % 7 != 0)
            .then_some(100 + quantity % 7),
        unit_price_paise: (kind == MovementKind::Sale).then_some(150),
        reason: matches!(kind, MovementKind::Removal | MovementKind::Adjustment)
            .then(|| "damaged".to_owned()),
        // Every sixth quantity of a sale or removal was made offline.
        offline: matches!(kind, MovementKind::Sale | MovementKind::Removal) && quantity % 6 == 0,
        // Every fourth return is not resellable.
        restock: (kind == MovementKind::Return && quantity % 4 == 0).then_some(false),
        ..StockMovement::new(
            Uuid::from_u128(id),
            StoreId(store),
            ProductId(product),
            format!("SKU-{product}"),
            kind,
            signed,
            Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            "tester",
        )
    }
}

/// Store 1 rejects negative stock, store 2 allows it, store 3 is unknown; product
/// 4 is unknown; every product has reorder point 5 in store 1.
fn catalog() -> BatchCatalog {
    BatchCatalog {
        later_changes: HashMap::new(),
        return_sales: HashMap::new(),
        transfers: HashMap::new(),
        stores: HashMap::from([(StoreId(1), Policy::Reject), (StoreId(2), Policy::Allow)]),
        live_products: (1..PRODUCTS).map(ProductId).collect(),
        reorder_points: (1..=PRODUCTS)
            .map(|product| ((StoreId(1), ProductId(product)), 5))
            .collect(),
    }
}

/// Movements over few stores, products and ids, so that duplicates, rejections and
/// unknown references all happen — returns naming ids that are sales, other movements or
/// nothing at all among them — occurring within a few hours in any order, so that counts
/// meet movements that occurred after them and ones that occurred before.
fn movements() -> impl Strategy<Value = Vec<StockMovement>> {
    prop::collection::vec(
        (
            0u128..40,
            1..=STORES,
            1..=PRODUCTS,
            // A transfer's movements meet state of two stores: `cases` has theirs.
            prop::sample::select(
                MovementKind::KNOWN
                    .iter()
                    .copied()
                    .filter(|kind| {
                        !matches!(
                            kind,
                            MovementKind::TransferOut
                                | MovementKind::TransferIn
                                | MovementKind::TransferReceive
                        )
                    })
                    .collect::<Vec<_>>(),
            ),
            1i64..=20,
            prop::option::of(0u128..40),
            0i64..240,
        )
            .prop_map(|(id, store, product, kind, quantity, sale, minutes)| {
                let mut movement = movement(id, store, product, kind, quantity);
                movement.occurred_at += chrono::Duration::minutes(minutes);
                // A count of the shelf: from empty to full.
                if kind == MovementKind::Count {
                    movement.quantity = quantity - 1;
                }
                match kind {
                    MovementKind::Return => {
                        movement.original_movement_id = sale.map(Uuid::from_u128);
                    }
                    // A void names some id (`aimed` makes most of them name an earlier
                    // movement as it was).
                    MovementKind::Void => {
                        movement.voids_movement_id =
                            Some(Uuid::from_u128(sale.unwrap_or((id + 1) % 40)));
                    }
                    _ => {}
                }
                movement
            }),
        0..120,
    )
    .prop_map(aimed)
}

/// Most returns and voids (those with an even id) aimed: a return at the latest sale before
/// it, for at most what it sold; a void at the movement before it, with its store, product
/// and quantity: voided once, twice, or after their target was voided (a return too).
fn aimed(mut batch: Vec<StockMovement>) -> Vec<StockMovement> {
    for index in 1..batch.len() {
        let it = &batch[index];
        if it.kind != MovementKind::Return || it.movement_id.as_u128() % 2 == 1 {
            continue;
        }
        let Some(sale) = batch[..index]
            .iter()
            .rev()
            .find(|m| m.kind == MovementKind::Sale)
            .cloned()
        else {
            continue;
        };
        let it = &mut batch[index];
        it.original_movement_id = Some(sale.movement_id);
        it.store_id = sale.store_id;
        it.product_id = sale.product_id;
        it.quantity = it.quantity.min(sale.quantity);
    }
    for index in 1..batch.len() {
        let void = &batch[index];
        if void.kind != MovementKind::Void || void.movement_id.as_u128() % 2 == 1 {
            continue;
        }
        let target = batch[index - 1].clone();
        let void = &mut batch[index];
        void.voids_movement_id = Some(target.movement_id);
        void.store_id = target.store_id;
        void.product_id = target.product_id;
        void.quantity = target.quantity.abs();
    }
    batch
}

/// The book as the specification reads it: each movement's change (a void the reverse of
/// its movement's, a count its variance — counted less the book as of its time), and when
/// each product was last counted.
#[derive(Default)]
struct Book {
    balances: HashMap<(StoreId, ProductId), i64>,
    applied: HashMap<(StoreId, ProductId), super::Changes>,
    changes: HashMap<Uuid, i64>,
    counted: HashMap<(StoreId, ProductId), chrono::DateTime<Utc>>,
}

impl Book {
    fn key(movement: &StockMovement) -> (StoreId, ProductId) {
        (movement.store_id, movement.product_id)
    }

    /// What `movement` changes, applied now.
    fn change(&self, movement: &StockMovement) -> i64 {
        let key = Self::key(movement);
        match (movement.kind, movement.voids_movement_id) {
            (MovementKind::Void, Some(voided)) => -self.changes[&voided],
            (MovementKind::Count, _) => {
                let later: i64 = self.applied.get(&key).map_or(0, |applied| {
                    applied
                        .iter()
                        .filter(|(at, _)| *at > movement.occurred_at)
                        .map(|(_, change)| change)
                        .sum()
                });
                let now = self.balances.get(&key).copied().unwrap_or_default();
                movement.quantity - (now - later)
            }
            _ => movement.delta(),
        }
    }

    /// Whether the product's latest count saw the shelf after `movement`.
    fn superseded(&self, movement: &StockMovement) -> bool {
        self.counted
            .get(&Self::key(movement))
            .is_some_and(|counted| movement.occurred_at <= *counted)
    }

    /// Applies `movement`, which changed stock by `change`; the balance after.
    fn apply(&mut self, movement: &StockMovement, change: i64) -> i64 {
        let key = Self::key(movement);
        self.applied
            .entry(key)
            .or_default()
            .push((movement.occurred_at, change));
        self.changes.insert(movement.movement_id, change);
        if movement.kind == MovementKind::Count {
            self.counted.insert(key, movement.occurred_at);
        }
        let balance = self.balances.entry(key).or_default();
        *balance += change;
        *balance
    }
}

/// What a duplicate refers back to, without what changes after the first outcome (a
/// sale's returns so far, a void).
fn as_first(original: Original) -> Original {
    Original {
        sale: original.sale.map(|line| SaleLine {
            returned: 0,
            ..line
        }),
        voided: false,
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
    fn balances_follow_the_book_counts_hold_as_of_their_time_and_only_offline_movements_and_counts_go_below_zero_under_reject(
        batch in movements()
    ) {
        let mut balances = Balances::new();
        let outcomes = decide(&mut balances, &mut HashMap::new(), &catalog(), &batch);
        let mut book = Book::default();
        for (movement, outcome) in batch.iter().zip(&outcomes) {
            match outcome {
                Outcome::Applied { balance_after, delta, alert, .. } => {
                    prop_assert!(!book.superseded(movement), "{movement:?} is after a count");
                    prop_assert_eq!(*delta, book.change(movement), "{:?}", movement);
                    let before = book.balances.get(&Book::key(movement)).copied().unwrap_or_default();
                    prop_assert_eq!(book.apply(movement, *delta), *balance_after);
                    // Under `reject`, only a movement made offline (or a count: what the
                    // shelf held) takes more than the book holds, and each says so.
                    let short = movement.store_id == StoreId(1) && *delta < 0 && *balance_after < 0;
                    if short {
                        prop_assert!(
                            movement.offline || movement.kind == MovementKind::Count,
                            "{movement:?} from {before}"
                        );
                    }
                    prop_assert_eq!(short, *alert == Some(AlertKind::PhantomStock));
                }
                Outcome::Rejected { reason: RejectReason::InsufficientStock, .. } => {
                    prop_assert!(!movement.offline, "an offline movement is never short");
                    prop_assert!(movement.kind != MovementKind::Count, "a count is never short");
                }
                Outcome::Rejected { reason: RejectReason::SupersededByCount, .. } => {
                    prop_assert!(book.superseded(movement), "{movement:?} is not before a count");
                }
                _ => {}
            }
        }
        for (key, quantity) in total(&balances) {
            prop_assert_eq!(book.balances.get(&key).copied().unwrap_or_default(), quantity);
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
        // Applied returns of a sale: a void of one gives the sale its units back.
        let mut returns: HashMap<Uuid, (Uuid, i64)> = HashMap::new();
        for (movement, outcome) in batch.iter().zip(&outcomes) {
            let applied = matches!(outcome, Outcome::Applied { .. });
            match (movement.kind, movement.original_movement_id) {
                (MovementKind::Sale, _) if applied => {
                    sold.insert(movement.movement_id, (movement, 0));
                }
                (MovementKind::Void, _) if applied => {
                    let voided = movement.voids_movement_id.and_then(|id| returns.remove(&id));
                    if let Some((sale, quantity)) = voided {
                        sold.get_mut(&sale).expect("a return's sale").1 -= quantity;
                    }
                }
                (MovementKind::Return, Some(id)) if applied => {
                    returns.insert(movement.movement_id, (id, movement.quantity));
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
    fn a_movement_is_voided_at_most_once_and_only_as_it_was_applied(batch in movements()) {
        let mut seen = HashMap::new();
        let outcomes = decide(&mut Balances::new(), &mut seen, &catalog(), &batch);
        let mut applied: HashMap<Uuid, &StockMovement> = HashMap::new();
        let mut voided: HashMap<Uuid, Uuid> = HashMap::new();
        for (movement, outcome) in batch.iter().zip(&outcomes) {
            let is_applied = matches!(outcome, Outcome::Applied { .. });
            if movement.kind != MovementKind::Void {
                // A count is not voided either: naming one is as naming nothing.
                if is_applied && movement.kind != MovementKind::Count {
                    applied.insert(movement.movement_id, movement);
                }
                continue;
            }
            let Some(target_id) = movement.voids_movement_id else { continue };
            let target = applied.get(&target_id).filter(|t| t.store_id == movement.store_id);
            let expected = match target {
                None => Some(RejectReason::UnknownMovement),
                Some(target) if target.product_id != movement.product_id
                    || target.quantity.abs() != movement.quantity => Some(RejectReason::VoidMismatch),
                Some(_) if voided.contains_key(&target_id) => Some(RejectReason::AlreadyVoided),
                Some(_) => None,
            };
            match (outcome, expected) {
                (Outcome::Applied { .. }, None) => {
                    voided.insert(target_id, movement.movement_id);
                }
                (Outcome::Rejected { reason, .. }, Some(expected)) => {
                    // A movement of the id that was not applied (rejected, or a void) is
                    // not voidable, whatever else.
                    prop_assert!(*reason == expected || *reason == RejectReason::NotVoidable,
                        "{movement:?}: {reason:?}, expected {expected:?}");
                }
                // Short under `reject`, before a count, an unknown store or product.
                (Outcome::Rejected { reason, .. }, None) => prop_assert!(matches!(
                    reason,
                    RejectReason::InsufficientStock
                        | RejectReason::SupersededByCount
                        | RejectReason::UnknownStore
                        | RejectReason::UnknownProduct
                ), "{movement:?}: {reason:?}"),
                (Outcome::Duplicate(_) | Outcome::Conflict, _) => {}
                (other, expected) => {
                    return Err(TestCaseError::fail(format!("{movement:?}: {other:?}, expected {expected:?}")));
                }
            }
        }
        for (target, _) in voided {
            prop_assert!(seen[&target].voided);
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

mod cases;
mod transfers;
