//! The checks of Postgres, and of the output topics, against the model.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use schemas::StockMovement;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Expected, Model};
use crate::*;

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
            reason => schemas::RejectReason::parse(reason).map_or("unexpected", |r| r.as_str()),
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
    exactly_once(stack, movements, Replayed::Never).await;
}

/// [`assert_exactly_once`] after PostgreSQL was restored from a backup older than the
/// topics: nothing lost and nothing applied twice, though the processors applied again what
/// came after the backup — so the output topics carry those rows twice, the same each time
/// (consumers dedupe by `(source_partition, source_offset)`), and a transfer-out applied
/// again announced its transfer-in again, which the ledger holds as a `duplicate`.
pub async fn assert_exactly_once_after_a_restore(
    stack: &TestStack,
    movements: &[schemas::StockMovement],
) {
    exactly_once(stack, movements, Replayed::AfterRestore).await;
}

/// Whether the processors may have applied records a second time (their outputs repeated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    Never,
    AfterRestore,
}

async fn exactly_once(stack: &TestStack, movements: &[schemas::StockMovement], replayed: Replayed) {
    let model = Model::of(movements);
    // The transfer-ins are records the processors put on the input topic themselves, after
    // their transfer-outs: the committed offsets may count them before every movement.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut rows = ledger_rows(&stack.pool).await;
    while rows.len() < movements.len() + model.announced.len()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        rows = ledger_rows(&stack.pool).await;
    }
    let mut positions: HashMap<(i32, i64), usize> = HashMap::new();
    for row in &rows {
        *positions.entry((row.4, row.5)).or_default() += 1;
    }
    assert!(
        positions.values().all(|count| *count == 1),
        "a record of the input topic has more than one ledger row"
    );
    let announced: HashMap<Uuid, i64> = model.announced.iter().copied().collect();
    let (notices, rows): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|row| announced.contains_key(&row.0));
    let applied = notices.iter().filter(|row| row.1 == "applied").count();
    assert_eq!(
        applied,
        announced.len(),
        "one transfer-in applied per applied transfer-out"
    );
    assert!(
        notices.iter().all(|row| row.1 == "applied"
            || (replayed == Replayed::AfterRestore && row.1 == "duplicate")),
        "every transfer-in applied (or, announced again after a restore, a duplicate): {notices:?}"
    );
    let transfers: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(transfers, announced.len() as i64, "one transfer each");
    assert_eq!(rows.len(), movements.len(), "one ledger row per record");
    let actual = actual_by_store(&rows, movements);
    assert_eq!(actual, expected_by_store(movements, &model));
    assert_state_matches(&stack.pool, &model).await;
    assert_outputs(stack, replayed).await;
}
