//! What the processors' integration tests share: a catalog in Postgres, movements on the
//! input topic, a processor to run, and an independent model of what must come out.

#![allow(dead_code, clippy::type_complexity)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::{AvroRecord, MovementKind, ProductId, StockMovement, StoreId, SupplierId};
use service_kit::testing::TestStack;
use sqlx::PgPool;
use uuid::Uuid;

/// Store 1: Asia/Kolkata (+05:30), rejects negative stock. Store 2: UTC, allows it.
pub const STORES: [(i64, &str, i32, &str); 2] = [
    (1, "Asia/Kolkata", 19_800, "reject"),
    (2, "UTC", 0, "allow"),
];
pub const PRODUCTS: i64 = 5;
pub const SUPPLIER: i64 = 1;
/// Every product's reorder point in store 1 (store 2 has none).
pub const REORDER_POINT: i64 = 10;

pub async fn seed_catalog(pool: &PgPool) {
    for (id, timezone, _, policy) in STORES {
        sqlx::query(
            "INSERT INTO stores (id, code, name, timezone, negative_stock_policy) VALUES ($1, $2, $2, $3, $4)",
        )
        .bind(id)
        .bind(format!("S-{id}"))
        .bind(timezone)
        .bind(policy)
        .execute(pool)
        .await
        .unwrap();
    }
    for id in 1..=PRODUCTS {
        sqlx::query("INSERT INTO products (id, sku, name, unit) VALUES ($1, $2, $2, 'pc')")
            .bind(id)
            .bind(format!("SKU-{id}"))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO store_products (store_id, product_id, reorder_point) VALUES (1, $1, $2)",
        )
        .bind(id)
        .bind(REORDER_POINT)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO suppliers (id, name) VALUES ($1, 'Supplier')")
        .bind(SUPPLIER)
        .execute(pool)
        .await
        .unwrap();
}

/// A deterministic stream of movements over the seeded catalog: stock-ins, sales larger
/// than stock, removals, and repeats of earlier ids (a retrying POS).
pub fn movements(count: usize, seed: u64) -> Vec<StockMovement> {
    let mut random = seed.max(1);
    let mut next = move |bound: u64| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random % bound
    };
    let start = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
    let mut movements: Vec<StockMovement> = Vec::with_capacity(count);
    for index in 0..count {
        if index > 0 && next(10) == 0 {
            let earlier = movements[next(index as u64) as usize].clone();
            movements.push(earlier);
            continue;
        }
        let store = STORES[next(2) as usize].0;
        let product = 1 + next(PRODUCTS as u64) as i64;
        let kind = match next(10) {
            0..=2 => MovementKind::StockIn,
            3..=8 => MovementKind::Sale,
            _ => MovementKind::Removal,
        };
        let quantity = 1 + next(if kind == MovementKind::StockIn {
            40
        } else {
            12
        }) as i64;
        // Spread over 36 hours so that local days differ from UTC days.
        let occurred_at = start + chrono::Duration::minutes(next(36 * 60) as i64);
        movements.push(StockMovement {
            movement_id: Uuid::new_v4(),
            store_id: StoreId(store),
            product_id: ProductId(product),
            sku: format!("SKU-{product}"),
            kind,
            quantity,
            occurred_at,
            received_at: Utc::now(),
            supplier_id: (kind == MovementKind::StockIn).then_some(SupplierId(SUPPLIER)),
            unit_cost_paise: (kind == MovementKind::StockIn).then(|| 1_000 + next(500) as i64),
            unit_price_paise: (kind == MovementKind::Sale).then(|| 2_000 + next(500) as i64),
            reason: (kind == MovementKind::Removal).then(|| "damaged".to_owned()),
            reference: None,
            actor: "test-pos".into(),
            device_id: Some("till-1".into()),
        });
    }
    movements
}

pub fn producer(stack: &TestStack) -> FutureProducer {
    service_kit::kafka::producer(&stack.settings.kafka, "test-pos").unwrap()
}

/// Produces in order (one store's movements stay in order on its partition).
pub async fn produce(producer: &FutureProducer, topic: &str, movements: &[StockMovement]) {
    let payloads: Vec<(String, Vec<u8>)> = movements
        .iter()
        .map(|movement| {
            (
                schemas::topics::store_key(movement.store_id),
                movement.encode().unwrap(),
            )
        })
        .collect();
    let sends = payloads.iter().map(|(key, payload)| {
        producer.send(
            FutureRecord::to(topic)
                .key(key.as_str())
                .payload(payload.as_slice()),
            Duration::from_secs(10),
        )
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(error, _)| error).unwrap();
    }
}

pub async fn produce_raw(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();
}

/// How many records of the input topic the group has committed.
pub async fn committed(stack: &TestStack) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::int8 FROM processor_offsets WHERE consumer_group = $1",
    )
    .bind(&stack.settings.kafka.consumer_group)
    .fetch_one(&stack.pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

/// Waits until the committed offsets cover `records` records of the input topic.
pub async fn wait_committed(stack: &TestStack, records: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let committed: Option<i64> = sqlx::query_scalar(
            "SELECT sum(next_offset)::int8 FROM processor_offsets WHERE consumer_group = $1",
        )
        .bind(&stack.settings.kafka.consumer_group)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        if committed.unwrap_or(0) >= records {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {committed:?} of {records} records committed within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A processor running in-process until the returned sender is used or dropped.
pub async fn start_processor(stack: &TestStack) -> tokio::sync::oneshot::Sender<()> {
    let app = processors::App::build(stack.settings_for(service_kit::Service::Processors))
        .await
        .unwrap();
    service_kit::testing::background(|stopped| app.run_until_stopped(stopped))
}

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
    /// (store, local day, supplier, product) → (units, cost, stock-ins).
    pub sourcing: BTreeMap<(i64, NaiveDate, i64, i64), (i64, i64, i64)>,
    /// Alert kinds in order, per (store, product).
    pub alerts: BTreeMap<(i64, i64), Vec<&'static str>>,
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
        let existed = self.balances.contains_key(&(store, product));
        let (quantity, average) = self
            .balances
            .get(&(store, product))
            .copied()
            .unwrap_or((0, None));
        let taking = movement.kind != MovementKind::StockIn;
        if taking && movement.quantity > quantity && policy == "reject" {
            return Expected {
                status: "rejected",
                reject_reason: Some("insufficient_stock"),
                balance_after: None,
            };
        }
        let after = if taking {
            quantity - movement.quantity
        } else {
            quantity + movement.quantity
        };
        let day = movement
            .occurred_at
            .with_timezone(&FixedOffset::east_opt(offset).unwrap())
            .date_naive();
        let mut new_average = average;
        match movement.kind {
            MovementKind::StockIn => {
                let cost = movement.unit_cost_paise.unwrap();
                new_average = Some(match average {
                    Some(average) if quantity > 0 => {
                        let total = quantity as f64 * average as f64
                            + movement.quantity as f64 * cost as f64;
                        (total / (quantity + movement.quantity) as f64).round() as i64
                    }
                    _ => cost,
                });
                let entry = self
                    .sourcing
                    .entry((store, day, SUPPLIER, product))
                    .or_default();
                entry.0 += movement.quantity;
                entry.1 += movement.quantity * cost;
                entry.2 += 1;
            }
            MovementKind::Sale => {
                let entry = self.sales.entry((store, day, product)).or_default();
                entry.0 += movement.quantity;
                entry.1 += movement.quantity * movement.unit_price_paise.unwrap();
                entry.2 += average.unwrap_or(0) * movement.quantity;
                entry.3 += 1;
            }
            _ => {
                let entry = self.sales.entry((store, day, product)).or_default();
                entry.4 += movement.quantity;
            }
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
        if level(after) != before {
            self.alerts
                .entry((store, product))
                .or_default()
                .push(level(after));
        }
        self.balances.insert((store, product), (after, new_average));
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
        "SELECT store_id, day, product_id, units_sold, revenue_paise, cost_of_goods_paise, sale_count, units_removed \
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

    let sourcing: Vec<(i64, NaiveDate, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT store_id, day, supplier_id, product_id, units_received, cost_paise, stock_in_count FROM supplier_daily",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let sourcing: BTreeMap<_, _> = sourcing
        .into_iter()
        .map(|(store, day, supplier, product, units, cost, count)| {
            ((store, day, supplier, product), (units, cost, count))
        })
        .collect();
    assert_eq!(sourcing, model.sourcing, "supplier_daily");

    let alerts: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT store_id, product_id, kind FROM alerts ORDER BY raised_at, id")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut by_pair: BTreeMap<(i64, i64), Vec<&'static str>> = BTreeMap::new();
    for (store, product, kind) in &alerts {
        let kind = match kind.as_str() {
            "low_stock" => "low_stock",
            "out_of_stock" => "out_of_stock",
            _ => "recovered",
        };
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

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).unwrap()
}
