//! The batch's output records: one ledger entry per movement, the last balance of every
//! product the batch changed, the alerts it raised, and the dead letters. All of them are
//! produced and acknowledged before the batch commits; a replay after a crash produces
//! them again, byte for byte, so consumers dedupe by `movement_id`.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use schemas::topics::{balance_key, store_key};
use schemas::{AvroRecord, Balance, LedgerEntry, StockAlert, Topics};
use service_kit::kafka;

use crate::decide::Outcome;
use crate::ledger::{RaisedAlert, Record};

/// How long a send waits for room in a full producer queue.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

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

#[derive(Clone)]
pub struct Outputs {
    producer: FutureProducer,
    names: Names,
}

/// The topic names, built once.
#[derive(Debug, Clone)]
struct Names {
    source: String,
    ledger: String,
    balances: String,
    alerts: String,
    dead_letters: String,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("topics", &self.names)
            .finish_non_exhaustive()
    }
}

impl Outputs {
    pub fn new(producer: FutureProducer, topics: Topics) -> Self {
        let names = Names {
            source: topics.movements(),
            ledger: topics.ledger(),
            balances: topics.balances(),
            alerts: topics.alerts(),
            dead_letters: topics.movements_dlq(),
        };
        Self { producer, names }
    }

    /// Produces every output of a decided batch and waits for all acknowledgements. Each
    /// record is encoded into one reused buffer and handed to librdkafka (which copies
    /// it) at once; only the acknowledgements are awaited together.
    pub async fn publish(
        &self,
        records: &[Record],
        outcomes: &[Outcome],
        balances: &[(&Record, crate::decide::Holding)],
        alerts: &[RaisedAlert<'_>],
        dead: &[DeadLetter],
    ) -> anyhow::Result<()> {
        let names = &self.names;
        let mut pending =
            Vec::with_capacity(records.len() + balances.len() + alerts.len() + dead.len());
        let mut buffer = Vec::with_capacity(512);
        for (record, outcome) in records.iter().zip(outcomes) {
            let key = store_key(record.movement.store_id);
            ledger_entry(record, outcome).encode_into(encoding(&mut buffer))?;
            pending.push(self.enqueue(&names.ledger, &key, &buffer).await?);
        }
        for (record, holding) in balances {
            let movement = &record.movement;
            let balance = Balance {
                store_id: movement.store_id,
                product_id: movement.product_id,
                sku: movement.sku.clone(),
                quantity: holding.quantity,
                average_unit_cost_paise: holding.average_cost,
                last_movement_id: movement.movement_id,
                updated_at: record.recorded_at,
            };
            let key = balance_key(movement.store_id, movement.product_id);
            balance.encode_into(encoding(&mut buffer))?;
            pending.push(self.enqueue(&names.balances, &key, &buffer).await?);
        }
        for alert in alerts {
            let movement = &alert.record.movement;
            let record = StockAlert {
                store_id: movement.store_id,
                product_id: movement.product_id,
                sku: movement.sku.clone(),
                kind: alert.kind,
                quantity: alert.quantity,
                reorder_point: alert.reorder_point,
                movement_id: movement.movement_id,
                raised_at: alert.record.recorded_at,
            };
            let key = store_key(movement.store_id);
            record.encode_into(encoding(&mut buffer))?;
            pending.push(self.enqueue(&names.alerts, &key, &buffer).await?);
        }
        for letter in dead {
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(header("bazaar.error", letter.error))
                .insert(header("bazaar.error.detail", &letter.detail))
                .insert(header("bazaar.source.topic", &names.source))
                .insert(header("bazaar.source.partition", &partition))
                .insert(header("bazaar.source.offset", &offset));
            let mut message = FutureRecord::to(&names.dead_letters)
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

    async fn enqueue(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<DeliveryFuture, KafkaError> {
        let message = FutureRecord::to(topic).key(key).payload(payload);
        kafka::enqueue(&self.producer, message, QUEUE_WAIT).await
    }
}

/// The buffer, emptied for the next record.
fn encoding(buffer: &mut Vec<u8>) -> &mut Vec<u8> {
    buffer.clear();
    buffer
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// The ledger entry of one decided movement.
pub fn ledger_entry(record: &Record, outcome: &Outcome) -> LedgerEntry {
    let recorded = outcome.recorded();
    LedgerEntry {
        movement: record.movement.clone(),
        status: outcome.status(),
        reject_reason: recorded.reject_reason.map(str::to_owned),
        available_quantity: recorded.available_quantity,
        balance_after: recorded.balance_after,
        original_status: recorded.original_status.map(str::to_owned),
        recorded_at: record.recorded_at,
        source_partition: record.partition,
        source_offset: record.offset,
    }
}
