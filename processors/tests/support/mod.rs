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

/// A producer that keeps retrying for a minute, as a POS would, through a broker's loss.
pub fn patient_producer(stack: &TestStack) -> FutureProducer {
    service_kit::kafka::producer_config(&stack.settings.kafka, "test-pos")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap()
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

/// Waits until the output topics are published up to the ledger: for every partition,
/// the group's offset committed in Kafka (with the output transactions) has reached the
/// offset stored in Postgres.
pub async fn wait_published(stack: &TestStack, within: Duration) {
    use rdkafka::consumer::BaseConsumer;
    let settings = &stack.settings.kafka;
    let topic = stack.settings.topics().movements();
    let reader: BaseConsumer =
        service_kit::kafka::consumer_config(settings, "test-published", &settings.consumer_group)
            .create()
            .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..service_kit::testing::TEST_PARTITIONS {
        list.add_partition(&topic, partition);
    }
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let stored: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM processor_offsets \
             WHERE consumer_group = $1 AND topic = $2",
        )
        .bind(&settings.consumer_group)
        .bind(&topic)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
        let published = reader_committed(&reader, &list);
        let behind: Vec<(i32, i64, Option<i64>)> = stored
            .iter()
            .map(|(partition, next)| (*partition, *next, published.get(partition).copied()))
            .filter(|(_, next, published)| published.is_none_or(|published| published < *next))
            .filter(|(_, next, _)| *next > 0)
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outputs not published within {within:?}: (partition, ledger, published) {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn reader_committed(
    reader: &rdkafka::consumer::BaseConsumer,
    list: &rdkafka::TopicPartitionList,
) -> HashMap<i32, i64> {
    use rdkafka::consumer::Consumer;
    let committed = reader
        .committed_offsets(list.clone(), Duration::from_secs(30))
        .unwrap();
    committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            rdkafka::Offset::Offset(offset) => Some((element.partition(), offset)),
            _ => None,
        })
        .collect()
}

/// Every record of `topic` a `read_committed` consumer sees: at least `at_least` of them
/// (waiting up to `within`), then until nothing more arrives for two seconds.
pub async fn read_committed_topic(
    stack: &TestStack,
    topic: &str,
    at_least: usize,
    within: Duration,
) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let settings = &stack.settings.kafka;
    let consumer: StreamConsumer = service_kit::kafka::consumer_config(
        settings,
        "test-reader",
        &format!("{}-reader-{}", settings.consumer_group, Uuid::new_v4()),
    )
    .create()
    .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..service_kit::testing::TEST_PARTITIONS {
        list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let deadline = tokio::time::Instant::now() + within;
    let mut records = Vec::with_capacity(at_least);
    loop {
        let wait = if records.len() < at_least {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        } else {
            Duration::from_secs(2)
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(message) => {
                let message = message.unwrap();
                records.push((
                    message.partition(),
                    message.key().unwrap_or_default().to_vec(),
                    message.payload().unwrap_or_default().to_vec(),
                ));
            }
            Err(_) if records.len() < at_least => {
                panic!("only {} of {at_least} records on {topic}", records.len())
            }
            Err(_) => return records,
        }
    }
}

/// The output topics are exactly the ledger: every ledger row once on the ledger topic
/// (as `read_committed` consumers see it), with its outcome, and the last balance of
/// every key on the balances topic equal to Postgres.
pub async fn assert_outputs_are_the_ledger(stack: &TestStack) {
    use schemas::AvroRecord;
    wait_published(stack, Duration::from_secs(60)).await;
    let rows = ledger_rows(&stack.pool).await;
    let topics = stack.settings.topics();
    let entries =
        read_committed_topic(stack, &topics.ledger(), rows.len(), Duration::from_secs(60)).await;
    let mut on_topic: HashMap<(i32, i64), Vec<schemas::LedgerEntry>> = HashMap::new();
    for (_, _, payload) in &entries {
        let entry = schemas::LedgerEntry::decode(payload).unwrap();
        on_topic
            .entry((entry.source_partition, entry.source_offset))
            .or_default()
            .push(entry);
    }
    let repeated = on_topic.values().filter(|found| found.len() > 1).count();
    assert_eq!(
        repeated, 0,
        "ledger rows on the ledger topic more than once"
    );
    assert_eq!(
        entries.len(),
        rows.len(),
        "one ledger entry per ledger row, no entry for an uncommitted decision"
    );
    for (movement_id, status, _, balance_after, partition, offset) in &rows {
        let entry = &on_topic
            .get(&(*partition, *offset))
            .unwrap_or_else(|| panic!("ledger row {partition}/{offset} is not on the topic"))[0];
        assert_eq!(entry.movement.movement_id, *movement_id);
        assert_eq!(entry.status.as_str(), status);
        assert_eq!(entry.balance_after, *balance_after);
    }

    let stored: Vec<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT store_id, product_id, quantity, average_unit_cost_paise FROM balances",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let balances =
        read_committed_topic(stack, &topics.balances(), 1, Duration::from_secs(30)).await;
    let mut last: BTreeMap<(i64, i64), (i64, Option<i64>)> = BTreeMap::new();
    for (_, _, payload) in &balances {
        let balance = schemas::Balance::decode(payload).unwrap();
        last.insert(
            (balance.store_id.get(), balance.product_id.get()),
            (balance.quantity, balance.average_unit_cost_paise),
        );
    }
    let stored: BTreeMap<(i64, i64), (i64, Option<i64>)> = stored
        .into_iter()
        .map(|(store, product, quantity, cost)| ((store, product), (quantity, cost)))
        .collect();
    assert_eq!(
        last, stored,
        "the last balance per key on the balances topic"
    );
}

/// A pause between `low` and `high` milliseconds, different every run.
pub fn random_pause(state: &mut u64, low: u64, high: u64) -> Duration {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    Duration::from_millis(low + *state % (high - low))
}

pub fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos) | 1
}

/// Movements being produced as a stream.
pub struct Stream {
    task: tokio::task::JoinHandle<()>,
    progress: StreamProgress,
}

/// How far a stream is, readable from elsewhere.
#[derive(Clone, Default)]
pub struct StreamProgress {
    produced: std::sync::Arc<std::sync::atomic::AtomicI64>,
    finished: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StreamProgress {
    /// Records acknowledged on the input topic so far.
    pub fn produced(&self) -> i64 {
        self.produced.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn finished(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Stream {
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    pub fn progress(&self) -> StreamProgress {
        self.progress.clone()
    }

    pub async fn finish(self) {
        self.task.await.unwrap();
    }
}

/// Produces `movements` as a stream: `chunk` of them every `every`.
pub fn stream(
    stack: &TestStack,
    movements: Vec<schemas::StockMovement>,
    chunk: usize,
    every: Duration,
) -> Stream {
    use std::sync::atomic::Ordering;
    let producer = patient_producer(stack);
    let topic = stack.settings.topics().movements();
    let progress = StreamProgress::default();
    let counter = progress.clone();
    let task = tokio::spawn(async move {
        for chunk in movements.chunks(chunk) {
            produce(&producer, &topic, chunk).await;
            counter
                .produced
                .fetch_add(chunk.len() as i64, Ordering::AcqRel);
            tokio::time::sleep(every).await;
        }
        counter.finished.store(true, Ordering::Release);
    });
    Stream { task, progress }
}

/// Waits (bounded) until the group has committed more than `than`.
pub async fn progress_beyond(stack: &TestStack, than: i64, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if committed(stack).await > than {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
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
