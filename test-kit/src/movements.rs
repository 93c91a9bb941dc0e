//! Movements for the pipeline tests: generated from a seed, produced to the input topic,
//! or streamed at a rate while a test breaks something.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::{AvroRecord, MovementKind, ProductId, StockMovement, StoreId, SupplierId};
use uuid::Uuid;

use crate::*;

/// A deterministic stream of movements over the seeded catalog: stock-ins (some without a
/// supplier or a cost), sales larger than stock, removals, offline sales and removals,
/// returns (some naming the sale they take back from), adjustments, voids of the store's
/// movement before them, counts (occurring, like everything, in any order), and repeats of
/// earlier ids (a retrying POS).
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
        let mut movement = StockMovement {
            received_at: Utc::now(),
            // Some stock-ins are cash purchases (no supplier), some come without a cost:
            // chosen by the quantity, so that the stream's random sequence stays as it was.
            supplier_id: (kind == MovementKind::StockIn && quantity % 5 != 0)
                .then_some(SupplierId(SUPPLIER)),
            unit_cost_paise: (kind == MovementKind::StockIn)
                .then(|| 1_000 + next(500) as i64)
                .filter(|_| quantity % 7 != 0),
            unit_price_paise: (kind == MovementKind::Sale).then(|| 2_000 + next(500) as i64),
            reason: (kind == MovementKind::Removal).then(|| "damaged".to_owned()),
            device_id: Some("till-1".into()),
            // A till that was offline: its sales and removals happened whatever the book says.
            offline: kind != MovementKind::StockIn && quantity == 11,
            ..StockMovement::new(
                Uuid::new_v4(),
                StoreId(store),
                ProductId(product),
                format!("SKU-{product}"),
                kind,
                quantity,
                occurred_at,
                "test-pos",
            )
        };
        more_kinds(&mut movement);
        // Counts are of the stream's first hours: one before it all (every movement after
        // it is applied on top), a stock-take half an hour in (the few that occurred
        // earlier and arrive after it are superseded).
        if movement.kind == MovementKind::Count {
            movement.occurred_at = start
                + match movement.count_id {
                    Some(_) => chrono::Duration::minutes(30),
                    None => chrono::Duration::minutes(-1),
                };
        }
        // A resellable return names the store's last sale of the product, when there is
        // one: whether that sale was applied, and what it may still take back, is the
        // processors' to decide.
        if movement.kind == MovementKind::Return && movement.restock.is_none() {
            movement.original_movement_id = movements
                .iter()
                .rev()
                .find(|earlier| {
                    earlier.kind == MovementKind::Sale
                        && (earlier.store_id, earlier.product_id)
                            == (movement.store_id, movement.product_id)
                })
                .map(|sale| sale.movement_id);
        }
        // A manager undoes the store's movement before: whatever it was (a void, one
        // rejected), the processors decide.
        if movement.kind == MovementKind::Removal && movement.quantity == 3 {
            let target = movements
                .iter()
                .rev()
                .find(|earlier| earlier.store_id == movement.store_id)
                .map(|target| (target.movement_id, target.product_id, target.quantity));
            if let Some((target, product, quantity)) = target {
                movement.kind = MovementKind::Void;
                movement.voids_movement_id = Some(target);
                movement.product_id = product;
                movement.sku = format!("SKU-{}", product.get());
                movement.quantity = quantity.abs();
                (movement.reason, movement.offline) = (None, false);
            }
        }
        movements.push(movement);
    }
    movements
}

/// `movements` with their removals of 8 units (not offline) sent to the other store
/// instead: transfer-outs, each with its own transfer id (the same for a repeat of it),
/// which the processors announce at the destination with transfer-ins of their own.
pub fn with_transfers(mut movements: Vec<StockMovement>) -> Vec<StockMovement> {
    for movement in &mut movements {
        if movement.kind == MovementKind::Removal && movement.quantity == 8 && !movement.offline {
            let other = STORES
                .iter()
                .map(|(id, ..)| StoreId(*id))
                .find(|store| *store != movement.store_id);
            movement.kind = MovementKind::TransferOut;
            movement.reason = None;
            movement.transfer_id = Some(Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                movement.movement_id.as_bytes(),
            ));
            movement.to_store_id = other;
        }
    }
    movements
}

/// Customer returns (some not resellable) and adjustments either way, made of movements
/// the stream drew as sales, removals and stock-ins — chosen by the quantity, so that the
/// stream's random sequence stays as it was.
fn more_kinds(movement: &mut StockMovement) {
    let becomes = match (movement.kind, movement.quantity) {
        (MovementKind::Sale, 7) => Some((MovementKind::Return, None, None)),
        (MovementKind::Sale, 9) => Some((MovementKind::Return, Some(false), Some("defective"))),
        (MovementKind::Removal, 5) => Some((MovementKind::Adjustment, None, Some("expired"))),
        (MovementKind::StockIn, 13 | 26 | 39) => {
            Some((MovementKind::Adjustment, None, Some("found")))
        }
        (MovementKind::StockIn, 17 | 34) => Some((MovementKind::Count, None, None)),
        _ => None,
    };
    let Some((kind, restock, reason)) = becomes else {
        return;
    };
    match (movement.kind, kind) {
        // Counted short: the adjustment takes stock.
        (MovementKind::Removal, _) => movement.quantity = -movement.quantity,
        // The shelf held a third of it; the larger counts are one stock-take's lines.
        (_, MovementKind::Count) => {
            movement.count_id = (movement.quantity == 34).then(|| Uuid::from_u128(0x5700c7a4e));
            movement.quantity /= 3;
        }
        _ => {}
    }
    movement.kind = kind;
    movement.restock = restock;
    movement.reason = reason.map(str::to_owned);
    movement.note = (kind == MovementKind::Adjustment).then(|| "shelf count".to_owned());
    (
        movement.supplier_id,
        movement.unit_cost_paise,
        movement.unit_price_paise,
        movement.offline,
    ) = (None, None, None, false);
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
#[derive(Debug)]
pub struct Stream {
    task: tokio::task::JoinHandle<()>,
    progress: StreamProgress,
}

/// How far a stream is, readable from elsewhere.
#[derive(Clone, Default, Debug)]
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
