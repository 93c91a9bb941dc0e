//! The records a batch puts on Kafka: one ledger entry per movement, the last balance of
//! every product the batch changed and the alerts it raised (published after the commit,
//! in a transaction: `publish`), and the dead letters (produced before it, here).

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::{Balance, LedgerEntry, StockAlert, Topics};
use service_kit::kafka;

use crate::decide::{Holding, Outcome};
use crate::effects::RaisedAlert;
use crate::ledger::Record;

/// How long a send waits for room in a full producer queue.
pub(crate) const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// A record of the input topic that cannot be decided, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// A stable code: `undecodable`, `unknown_kind`, `non_positive_quantity`,
    /// `refused_by_database` (it failed alone in Postgres; `isolation`).
    pub error: &'static str,
    pub detail: String,
}

impl DeadLetter {
    /// `message`, refused for `error` (a stable code) with a `detail` for people.
    pub fn of(message: &OwnedMessage, error: &'static str, detail: String) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            error,
            detail,
        }
    }
}

/// The dead-letter topic's producer. Dead letters are produced (and acknowledged) before
/// the batch that skips them commits, outside the output transactions: a batch tried
/// again produces them again, so the dead-letter topic is at least once.
#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer,
    source: String,
    topic: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    pub fn new(producer: FutureProducer, topics: &Topics) -> Self {
        Self {
            producer,
            source: topics.movements(),
            topic: topics.movements_dlq(),
        }
    }

    /// Produces `dead` with their error and source as headers and waits for the acks.
    pub async fn send(&self, dead: &[DeadLetter]) -> Result<(), KafkaError> {
        let mut pending = Vec::with_capacity(dead.len());
        for letter in dead {
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(header("bazaar.error", letter.error))
                .insert(header("bazaar.error.detail", &letter.detail))
                .insert(header("bazaar.source.topic", &self.source))
                .insert(header("bazaar.source.partition", &partition))
                .insert(header("bazaar.source.offset", &offset));
            let mut message = FutureRecord::to(&self.topic)
                .payload(letter.payload.as_slice())
                .headers(headers);
            if let Some(key) = &letter.key {
                message = message.key(key.as_slice());
            }
            pending.push(kafka::enqueue(&self.producer, message, QUEUE_WAIT).await?);
        }
        for delivery in pending {
            kafka::acknowledged(delivery).await?;
        }
        Ok(())
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// The balance a batch left for `record`'s store and product.
pub fn balance(record: &Record, holding: Holding) -> Balance {
    let movement = &record.movement;
    Balance {
        store_id: movement.store_id,
        product_id: movement.product_id,
        sku: movement.sku.clone(),
        quantity: holding.quantity,
        average_unit_cost_paise: holding.average_cost,
        last_movement_id: movement.movement_id,
        updated_at: record.recorded_at,
    }
}

/// The alert record of an alert a batch raised.
pub fn alert(alert: &RaisedAlert<'_>) -> StockAlert {
    let movement = &alert.record.movement;
    StockAlert {
        store_id: movement.store_id,
        product_id: movement.product_id,
        sku: movement.sku.clone(),
        kind: alert.kind,
        quantity: alert.quantity,
        reorder_point: alert.reorder_point,
        movement_id: movement.movement_id,
        raised_at: alert.record.recorded_at,
    }
}

/// The ledger entry of one decided movement.
pub fn ledger_entry(record: &Record, outcome: &Outcome) -> LedgerEntry {
    let recorded = outcome.recorded();
    let mut movement = record.movement.clone();
    // As the ledger row holds it: a price-less sale at the store's price.
    movement.unit_price_paise = record.unit_price_paise();
    LedgerEntry {
        movement,
        status: outcome.status(),
        reject_reason: recorded.reject_reason.map(str::to_owned),
        available_quantity: recorded.available_quantity,
        balance_after: recorded.balance_after,
        stock_change: recorded.stock_change,
        original_status: recorded.original_status.map(str::to_owned),
        recorded_at: record.recorded_at,
        source_partition: record.partition,
        source_offset: record.offset,
    }
}
