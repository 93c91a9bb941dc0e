//! The decision core: what each movement of a batch does, given the balances held in
//! memory and what the catalog says. Pure — no I/O, no clock — so the same batch from the
//! same state always gets the same outcomes, which is what makes a replay after a crash
//! write identical ledger rows and output records.

use std::collections::{HashMap, HashSet};

use schemas::{AlertKind, LedgerStatus, MovementKind, ProductId, StockMovement, StoreId};
use uuid::Uuid;

/// What a store does with a sale or removal larger than its balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse it (`rejected: insufficient_stock`); the default.
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
}

/// The balances a processor holds: store → product → holding.
pub type Balances = HashMap<StoreId, HashMap<ProductId, Holding>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    InsufficientStock,
    UnknownStore,
    UnknownProduct,
    /// The balance would leave the range of a 64-bit integer.
    BalanceOverflow,
}

impl RejectReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientStock => "insufficient_stock",
            Self::UnknownStore => "unknown_store",
            Self::UnknownProduct => "unknown_product",
            Self::BalanceOverflow => "balance_overflow",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::InsufficientStock,
            Self::UnknownStore,
            Self::UnknownProduct,
            Self::BalanceOverflow,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}

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
}

impl Original {
    /// Whether `movement` repeats this one: the same store and, when known, the same
    /// fingerprint.
    fn repeated_by(&self, movement: &StockMovement, fingerprint: i64) -> bool {
        self.store_id == movement.store_id && self.fingerprint.is_none_or(|own| own == fingerprint)
    }
}

/// The reason a conflict records.
pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        balance_after: i64,
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
            Self::Applied { balance_after, .. } => Recorded {
                reject_reason: None,
                available_quantity: None,
                balance_after: Some(balance_after),
                original_status: None,
            },
            Self::Rejected { reason, available } => Recorded {
                reject_reason: Some(reason.as_str()),
                available_quantity: available,
                balance_after: None,
                original_status: None,
            },
            Self::Duplicate(original) => Recorded {
                reject_reason: match original.reject_reason {
                    Some(reason) => Some(reason.as_str()),
                    None => None,
                },
                available_quantity: None,
                balance_after: original.balance_after,
                original_status: Some(original.status.as_str()),
            },
            Self::Conflict => Recorded {
                reject_reason: Some(IDEMPOTENCY_KEY_REUSED),
                available_quantity: None,
                balance_after: None,
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
        Some(Original {
            status,
            reject_reason,
            balance_after,
            store_id: movement.store_id,
            fingerprint: Some(movement.fingerprint()),
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
    pub original_status: Option<&'static str>,
}

/// What the catalog says about the stores and products of a batch.
#[derive(Debug, Clone, Default)]
pub struct BatchCatalog {
    /// Live stores and their negative-stock policy.
    pub stores: HashMap<StoreId, Policy>,
    pub live_products: HashSet<ProductId>,
    pub reorder_points: HashMap<(StoreId, ProductId), i64>,
}

/// Why a record cannot be decided at all (it goes to the dead-letter topic).
pub fn invalid(movement: &StockMovement) -> Option<&'static str> {
    if movement.kind == MovementKind::Unknown {
        Some("unknown_kind")
    } else if movement.quantity <= 0 {
        Some("non_positive_quantity")
    } else {
        None
    }
}

/// Decides `movements` in order against `balances`, which it updates. `seen` holds the
/// first outcome of every movement id known so far (from Postgres for this batch's ids);
/// the batch's own first outcomes are added to it, so a repeat inside the batch is a
/// duplicate (or a conflict) too. Every movement must have passed [`invalid`].
pub fn decide<'a>(
    balances: &mut Balances,
    seen: &mut HashMap<Uuid, Original>,
    catalog: &BatchCatalog,
    movements: impl IntoIterator<Item = &'a StockMovement>,
) -> Vec<Outcome> {
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
            let outcome = decide_one(balances, catalog, movement);
            if let Some(original) = outcome.original(movement) {
                seen.insert(movement.movement_id, original);
            }
            outcome
        })
        .collect()
}

fn decide_one(
    balances: &mut Balances,
    catalog: &BatchCatalog,
    movement: &StockMovement,
) -> Outcome {
    let rejected = |reason, available| Outcome::Rejected { reason, available };
    let Some(&policy) = catalog.stores.get(&movement.store_id) else {
        return rejected(RejectReason::UnknownStore, None);
    };
    if !catalog.live_products.contains(&movement.product_id) {
        return rejected(RejectReason::UnknownProduct, None);
    }
    let holdings = balances.entry(movement.store_id).or_default();
    let previous = holdings.get(&movement.product_id).copied();
    let held = previous.unwrap_or_default();
    let delta = movement.kind.sign() * movement.quantity;
    let Some(quantity) = held.quantity.checked_add(delta) else {
        return rejected(RejectReason::BalanceOverflow, None);
    };
    if delta < 0 && quantity < 0 && policy == Policy::Reject {
        return rejected(RejectReason::InsufficientStock, Some(held.quantity.max(0)));
    }
    let average_cost = match (movement.kind, movement.unit_cost_paise) {
        (MovementKind::StockIn, Some(cost)) => Some(moving_average(held, movement.quantity, cost)),
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
    let alert = before.crossing(Level::of(quantity, reorder_point));
    holdings.insert(
        movement.product_id,
        Holding {
            quantity,
            average_cost,
        },
    );
    Outcome::Applied {
        balance_after: quantity,
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
mod tests {
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
            quantity,
            occurred_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            received_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            supplier_id: (kind == MovementKind::StockIn).then_some(SupplierId(1)),
            unit_cost_paise: (kind == MovementKind::StockIn).then_some(100 + quantity % 7),
            unit_price_paise: (kind == MovementKind::Sale).then_some(150),
            reason: (kind == MovementKind::Removal).then(|| "damaged".to_owned()),
            reference: None,
            actor: "tester".into(),
            device_id: None,
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
    /// unknown references all happen.
    fn movements() -> impl Strategy<Value = Vec<StockMovement>> {
        prop::collection::vec(
            (
                0u128..40,
                1..=STORES,
                1..=PRODUCTS,
                prop::sample::select(MovementKind::KNOWN),
                1i64..=20,
            )
                .prop_map(|(id, store, product, kind, quantity)| {
                    movement(id, store, product, kind, quantity)
                }),
            0..120,
        )
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
        fn balances_are_the_sum_of_applied_deltas_and_never_negative_under_reject(batch in movements()) {
            let mut balances = Balances::new();
            let outcomes = decide(&mut balances, &mut HashMap::new(), &catalog(), &batch);
            let mut expected: HashMap<(StoreId, ProductId), i64> = HashMap::new();
            for (movement, outcome) in batch.iter().zip(&outcomes) {
                if let Outcome::Applied { balance_after, .. } = outcome {
                    let sum = expected.entry((movement.store_id, movement.product_id)).or_default();
                    *sum += movement.kind.sign() * movement.quantity;
                    prop_assert_eq!(*sum, *balance_after);
                    if movement.store_id == StoreId(1) {
                        prop_assert!(*balance_after >= 0);
                    }
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
                        prop_assert_eq!(Some(*original), first_outcome.original(first));
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
}
