//! The batch's output records: one ledger entry per movement, the last balance of every
//! product the batch changed, the alerts it raised, and the dead letters. All of them are
//! produced and acknowledged before the batch commits; a replay after a crash produces
//! them again, byte for byte, so consumers dedupe by `movement_id`.

use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::topics::{balance_key, store_key};
use schemas::{AvroRecord, Balance, LedgerEntry, StockAlert, Topics};

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
    /// A stable code: `undecodable`, `unknown_kind`, `non_positive_quantity`.
    pub error: &'static str,
    pub detail: String,
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

/// One encoded record, ready to send.
struct Encoded<'a> {
    topic: &'a str,
    key: String,
    payload: Vec<u8>,
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

    /// Produces every output of a decided batch and waits for all acknowledgements.
    pub async fn publish(
        &self,
        records: &[Record],
        outcomes: &[Outcome],
        balances: &[(&Record, crate::decide::Holding)],
        alerts: &[RaisedAlert<'_>],
        dead: &[DeadLetter],
    ) -> anyhow::Result<()> {
        let mut encoded = Vec::with_capacity(records.len() + balances.len() + alerts.len());
        let names = &self.names;
        for (record, outcome) in records.iter().zip(outcomes) {
            encoded.push(Encoded {
                topic: &names.ledger,
                key: store_key(record.movement.store_id),
                payload: encode(&ledger_entry(record, outcome))?,
            });
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
            encoded.push(Encoded {
                topic: &names.balances,
                key: balance_key(movement.store_id, movement.product_id),
                payload: encode(&balance)?,
            });
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
            encoded.push(Encoded {
                topic: &names.alerts,
                key: store_key(movement.store_id),
                payload: encode(&record)?,
            });
        }
        let sends = encoded.iter().map(|record| async move {
            let message = FutureRecord::to(record.topic)
                .key(record.key.as_str())
                .payload(record.payload.as_slice());
            self.producer
                .send(message, QUEUE_WAIT)
                .await
                .map_err(|(error, _)| error)
        });
        let dlq_topic = &names.dead_letters;
        let dead_sends = dead.iter().map(|letter| {
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(header("bazaar.error", letter.error))
                .insert(header("bazaar.error.detail", &letter.detail))
                .insert(header("bazaar.source.topic", &names.source))
                .insert(header("bazaar.source.partition", &partition))
                .insert(header("bazaar.source.offset", &offset));
            async move {
                let mut message = FutureRecord::to(dlq_topic)
                    .payload(letter.payload.as_slice())
                    .headers(headers);
                if let Some(key) = &letter.key {
                    message = message.key(key.as_slice());
                }
                self.producer
                    .send(message, QUEUE_WAIT)
                    .await
                    .map_err(|(error, _)| error)
            }
        });
        futures::try_join!(try_join_all(sends), try_join_all(dead_sends))?;
        Ok(())
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

fn encode(record: &impl AvroRecord) -> anyhow::Result<Vec<u8>> {
    Ok(record.encode()?)
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
