//! The independent model of what must come out of the pipeline — written from the
//! specification, not from the processors' code — and the checks of Postgres against it.

// The model's maps and rows mirror the rollups' and the ledger's columns, tuple for column.
#![allow(clippy::type_complexity)]

use std::collections::{BTreeMap, HashMap};

use chrono::{FixedOffset, NaiveDate};
use schemas::{MovementKind, StockMovement};
use sqlx::PgPool;
use uuid::Uuid;

use crate::*;

/// What the model says about one movement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub status: &'static str,
    pub reject_reason: Option<&'static str>,
    pub balance_after: Option<i64>,
}

/// The independent model: written from the specification, not from the processor's code.
#[derive(Debug, Default)]
pub struct Model {
    pub outcomes: Vec<Expected>,
    /// (store, product) → (quantity, average cost).
    pub balances: BTreeMap<(i64, i64), (i64, Option<i64>)>,
    /// (store, local day, product) → (units sold, revenue, cost of goods, sales, units removed).
    pub sales: BTreeMap<(i64, NaiveDate, i64), (i64, i64, i64, i64, i64)>,
    /// (store, local day, supplier (none: a cash purchase), product) → (units, cost of the
    /// units with one, units without a cost, stock-ins).
    pub sourcing: BTreeMap<(i64, NaiveDate, Option<i64>, i64), (i64, i64, i64, i64)>,
    /// (store, local day, change, reason, product) → (units, their value at the average
    /// cost, units without a cost, movements), for removals, adjustments and returns.
    pub changes:
        BTreeMap<(i64, NaiveDate, &'static str, Option<String>, i64), (i64, i64, i64, i64)>,
    /// Alert kinds in order, per (store, product).
    pub alerts: BTreeMap<(i64, i64), Vec<&'static str>>,
    /// Applied sales: id → (store, product, quantity sold, quantity returned so far).
    sold: HashMap<Uuid, (i64, i64, i64, i64)>,
}

impl Model {
    pub fn of(movements: &[StockMovement]) -> Self {
        let mut model = Self::default();
        let mut first: HashMap<Uuid, Expected> = HashMap::new();
        for movement in movements {
            let expected = match first.get(&movement.movement_id) {
                Some(original) => Expected {
                    status: "duplicate",
                    ..original.clone()
                },
                None => {
                    let outcome = model.apply(movement);
                    first.insert(movement.movement_id, outcome.clone());
                    outcome
                }
            };
            model.outcomes.push(expected);
        }
        model
    }

    fn apply(&mut self, movement: &StockMovement) -> Expected {
        let (store, product) = (movement.store_id.get(), movement.product_id.get());
        let (_, timezone, offset, policy) = STORES
            .iter()
            .find(|(id, ..)| *id == store)
            .copied()
            .unwrap();
        let _ = timezone;
        // A return naming its sale takes back at most what that sale (an applied one, of
        // this store and product) sold, less its earlier returns.
        let sale = movement
            .original_movement_id
            .filter(|_| movement.kind == MovementKind::Return);
        if let Some(sale) = sale {
            let refused = match self.sold.get(&sale) {
                Some(&(sold_in, sold_product, sold, returned))
                    if (sold_in, sold_product) == (store, product) =>
                {
                    (movement.quantity > sold - returned).then_some("return_exceeds_sale")
                }
                _ => Some("unknown_sale"),
            };
            if let Some(reason) = refused {
                return Expected {
                    status: "rejected",
                    reject_reason: Some(reason),
                    balance_after: None,
                };
            }
        }
        let existed = self.balances.contains_key(&(store, product));
        let (quantity, average) = self
            .balances
            .get(&(store, product))
            .copied()
            .unwrap_or((0, None));
        // What the kind does to sellable stock.
        let change = match movement.kind {
            MovementKind::StockIn | MovementKind::Adjustment => movement.quantity,
            MovementKind::Return if movement.restock == Some(false) => 0,
            MovementKind::Return => movement.quantity,
            _ => -movement.quantity,
        };
        let after = quantity + change;
        // Under `reject` a live movement may not take more than the book holds; one made
        // offline already happened: it is applied, and says the book was wrong.
        let short = change < 0 && after < 0 && policy == "reject";
        if short && !movement.offline {
            return Expected {
                status: "rejected",
                reject_reason: Some("insufficient_stock"),
                balance_after: None,
            };
        }
        let day = movement
            .occurred_at
            .with_timezone(&FixedOffset::east_opt(offset).unwrap())
            .date_naive();
        let mut new_average = average;
        match movement.kind {
            MovementKind::StockIn => {
                // Units without a cost join at the average so far.
                if let Some(cost) = movement.unit_cost_paise {
                    new_average = Some(match average {
                        Some(average) if quantity > 0 => {
                            let total = quantity as f64 * average as f64
                                + movement.quantity as f64 * cost as f64;
                            (total / (quantity + movement.quantity) as f64).round() as i64
                        }
                        _ => cost,
                    });
                }
                let supplier = movement.supplier_id.map(|id| id.get());
                let entry = self
                    .sourcing
                    .entry((store, day, supplier, product))
                    .or_default();
                entry.0 += movement.quantity;
                match movement.unit_cost_paise {
                    Some(cost) => entry.1 += movement.quantity * cost,
                    None => entry.2 += movement.quantity,
                }
                entry.3 += 1;
            }
            MovementKind::Sale => {
                let entry = self.sales.entry((store, day, product)).or_default();
                entry.0 += movement.quantity;
                entry.1 += movement.quantity * movement.unit_price_paise.unwrap();
                entry.2 += average.unwrap_or(0) * movement.quantity;
                entry.3 += 1;
            }
            MovementKind::Removal => {
                let entry = self.sales.entry((store, day, product)).or_default();
                entry.4 += movement.quantity;
            }
            _ => {}
        }
        // Removals, adjustments and returns, each valued at the average cost (which none
        // of them changes).
        let change = match movement.kind {
            MovementKind::Removal => Some("removal"),
            MovementKind::Adjustment if movement.quantity < 0 => Some("adjustment_down"),
            MovementKind::Adjustment => Some("adjustment_up"),
            MovementKind::Return if movement.restock == Some(false) => Some("return_written_off"),
            MovementKind::Return => Some("return_restocked"),
            _ => None,
        };
        if let Some(change) = change {
            let units = movement.quantity.abs();
            let entry = self
                .changes
                .entry((store, day, change, movement.reason.clone(), product))
                .or_default();
            entry.0 += units;
            match average {
                Some(cost) => entry.1 += units * cost,
                None => entry.2 += units,
            }
            entry.3 += 1;
        }
        let point = (store == 1).then_some(REORDER_POINT);
        let level = |quantity: i64| {
            if quantity <= 0 {
                "out_of_stock"
            } else if point.is_some_and(|point| quantity <= point) {
                "low_stock"
            } else {
                "recovered"
            }
        };
        let before = if existed {
            level(quantity)
        } else {
            "recovered"
        };
        if short {
            self.alerts
                .entry((store, product))
                .or_default()
                .push("phantom_stock");
        } else if level(after) != before {
            self.alerts
                .entry((store, product))
                .or_default()
                .push(level(after));
        }
        self.balances.insert((store, product), (after, new_average));
        if movement.kind == MovementKind::Sale {
            self.sold
                .insert(movement.movement_id, (store, product, movement.quantity, 0));
        }
        if let Some(line) = sale.and_then(|sale| self.sold.get_mut(&sale)) {
            line.3 += movement.quantity;
        }
        Expected {
            status: "applied",
            reject_reason: None,
            balance_after: Some(after),
        }
    }
}

/// The ledger as Postgres holds it, in input order per store.
pub async fn ledger_rows(
    pool: &PgPool,
) -> Vec<(Uuid, String, Option<String>, Option<i64>, i32, i64)> {
    sqlx::query_as(
        "SELECT movement_id, status, reject_reason, balance_after, source_partition, source_offset \
         FROM movements ORDER BY source_partition, source_offset",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Checks Postgres against the model.
pub async fn assert_state_matches(pool: &PgPool, model: &Model) {
    let balances: Vec<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT store_id, product_id, quantity, average_unit_cost_paise FROM balances ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let balances: BTreeMap<(i64, i64), (i64, Option<i64>)> = balances
        .into_iter()
        .map(|(store, product, quantity, cost)| ((store, product), (quantity, cost)))
        .collect();
    assert_eq!(balances, model.balances, "balances");

    let sales: Vec<(i64, NaiveDate, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT store_id, day, product_id, units_sold, revenue_paise::int8, cost_of_goods_paise::int8, sale_count, \
                units_removed \
         FROM sales_daily",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let sales: BTreeMap<_, _> = sales
        .into_iter()
        .map(
            |(store, day, product, sold, revenue, cost, count, removed)| {
                ((store, day, product), (sold, revenue, cost, count, removed))
            },
        )
        .collect();
    assert_eq!(sales, model.sales, "sales_daily");

    type SourcingRow = (i64, NaiveDate, Option<i64>, i64, i64, i64, i64, i64);
    let sourcing: Vec<SourcingRow> = sqlx::query_as(
        "SELECT store_id, day, supplier_id, product_id, units_received, cost_paise::int8, units_uncosted, \
                stock_in_count FROM supplier_daily",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let sourcing: BTreeMap<_, _> = sourcing
        .into_iter()
        .map(
            |(store, day, supplier, product, units, cost, uncosted, count)| {
                (
                    (store, day, supplier, product),
                    (units, cost, uncosted, count),
                )
            },
        )
        .collect();
    assert_eq!(sourcing, model.sourcing, "supplier_daily");

    let changes: Vec<(
        i64,
        NaiveDate,
        String,
        Option<String>,
        i64,
        i64,
        i64,
        i64,
        i64,
    )> = sqlx::query_as(
        "SELECT store_id, day, change, reason, product_id, units, value_paise::int8, \
                    units_without_cost, movements FROM stock_changes_daily",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let changes: BTreeMap<_, _> = changes
        .into_iter()
        .map(
            |(store, day, change, reason, product, units, value, uncosted, count)| {
                (
                    (store, day, change, reason, product),
                    (units, value, uncosted, count),
                )
            },
        )
        .collect();
    let expected: BTreeMap<_, _> = model
        .changes
        .iter()
        .map(|((store, day, change, reason, product), figures)| {
            (
                (*store, *day, change.to_string(), reason.clone(), *product),
                *figures,
            )
        })
        .collect();
    assert_eq!(changes, expected, "stock_changes_daily");

    // In ledger order — the order the model applies movements in. An alert's `raised_at`
    // is its record's Kafka timestamp, which two producers (or a retry) need not give in
    // the partition's order.
    let alerts: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT a.store_id, a.product_id, a.kind FROM alerts a
           JOIN movements m ON m.movement_id = a.movement_id AND m.status = 'applied'
          ORDER BY m.source_partition, m.source_offset, a.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut by_pair: BTreeMap<(i64, i64), Vec<&'static str>> = BTreeMap::new();
    for (store, product, kind) in &alerts {
        let kind = schemas::AlertKind::parse(kind)
            .unwrap_or_else(|| panic!("an alert of kind {kind}"))
            .as_str();
        by_pair.entry((*store, *product)).or_default().push(kind);
    }
    assert_eq!(by_pair, model.alerts, "alerts");
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alerts WHERE resolved_at IS NULL GROUP BY store_id, product_id ORDER BY 1 DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or(0);
    assert!(
        active <= 1,
        "at most one active alert per product and store"
    );
}

/// The ledger rows' outcomes per store, in ledger order, in the model's terms.
pub fn actual_by_store(
    rows: &[(Uuid, String, Option<String>, Option<i64>, i32, i64)],
    movements: &[StockMovement],
) -> HashMap<i64, Vec<(Uuid, Expected)>> {
    fn known(text: &str) -> &'static str {
        match text {
            "applied" => "applied",
            "rejected" => "rejected",
            "duplicate" => "duplicate",
            "insufficient_stock" => "insufficient_stock",
            "unknown_sale" => "unknown_sale",
            "return_exceeds_sale" => "return_exceeds_sale",
            _ => "unexpected",
        }
    }
    let store_of: HashMap<Uuid, i64> = movements
        .iter()
        .map(|m| (m.movement_id, m.store_id.get()))
        .collect();
    let mut by_store: HashMap<i64, Vec<(Uuid, Expected)>> = HashMap::new();
    for (id, status, reason, balance_after, ..) in rows {
        by_store.entry(store_of[id]).or_default().push((
            *id,
            Expected {
                status: known(status),
                reject_reason: reason.as_deref().map(known),
                balance_after: *balance_after,
            },
        ));
    }
    by_store
}

/// The model's outcome per movement, in the order each store posted them.
pub fn expected_by_store(
    movements: &[StockMovement],
    model: &Model,
) -> HashMap<i64, Vec<(Uuid, Expected)>> {
    let mut by_store: HashMap<i64, Vec<(Uuid, Expected)>> = HashMap::new();
    for (movement, expected) in movements.iter().zip(&model.outcomes) {
        by_store
            .entry(movement.store_id.get())
            .or_default()
            .push((movement.movement_id, expected.clone()));
    }
    by_store
}

/// Every record of the input topic has exactly one ledger row, with the outcome the
/// model gives; the state equals the model; the output topics are exactly the ledger.
pub async fn assert_exactly_once(stack: &TestStack, movements: &[schemas::StockMovement]) {
    let model = Model::of(movements);
    let rows = ledger_rows(&stack.pool).await;
    let mut positions: HashMap<(i32, i64), usize> = HashMap::new();
    for row in &rows {
        *positions.entry((row.4, row.5)).or_default() += 1;
    }
    assert!(
        positions.values().all(|count| *count == 1),
        "a record of the input topic has more than one ledger row"
    );
    assert_eq!(rows.len(), movements.len(), "one ledger row per record");
    let actual = actual_by_store(&rows, movements);
    assert_eq!(actual, expected_by_store(movements, &model));
    assert_state_matches(&stack.pool, &model).await;
    assert_outputs_are_the_ledger(stack).await;
}
