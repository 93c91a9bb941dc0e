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
    topics: Topics,
    source: String,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// One encoded record, ready to send.
struct Encoded {
    topic: String,
    key: String,
    payload: Vec<u8>,
}

impl Outputs {
    pub fn new(producer: FutureProducer, topics: Topics) -> Self {
        let source = topics.movements();
        Self {
            producer,
            topics,
            source,
        }
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
        let ledger_topic = self.topics.ledger();
        for (record, outcome) in records.iter().zip(outcomes) {
            encoded.push(Encoded {
                topic: ledger_topic.clone(),
                key: store_key(record.movement.store_id),
                payload: encode(&ledger_entry(record, outcome))?,
            });
        }
        let balances_topic = self.topics.balances();
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
                topic: balances_topic.clone(),
                key: balance_key(movement.store_id, movement.product_id),
                payload: encode(&balance)?,
            });
        }
        let alerts_topic = self.topics.alerts();
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
                topic: alerts_topic.clone(),
                key: store_key(movement.store_id),
                payload: encode(&record)?,
            });
        }
        let sends = encoded.iter().map(|record| async move {
            let message = FutureRecord::to(&record.topic)
                .key(record.key.as_str())
                .payload(record.payload.as_slice());
            self.producer
                .send(message, QUEUE_WAIT)
                .await
                .map_err(|(error, _)| error)
        });
        let dlq_topic = self.topics.movements_dlq();
        let dead_sends = dead.iter().map(|letter| {
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(header("bazaar.error", letter.error))
                .insert(header("bazaar.error.detail", &letter.detail))
                .insert(header("bazaar.source.topic", &self.source))
                .insert(header("bazaar.source.partition", &partition))
                .insert(header("bazaar.source.offset", &offset));
            let dlq_topic = &dlq_topic;
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
    let (reject_reason, available_quantity, balance_after, original_status) = match *outcome {
        Outcome::Applied { balance_after, .. } => (None, None, Some(balance_after), None),
        Outcome::Rejected { reason, available } => {
            (Some(reason.as_str().to_owned()), available, None, None)
        }
        Outcome::Duplicate(original) => (
            original
                .reject_reason
                .map(|reason| reason.as_str().to_owned()),
            None,
            original.balance_after,
            Some(original.status.as_str().to_owned()),
        ),
    };
    LedgerEntry {
        movement: record.movement.clone(),
        status: outcome.status(),
        reject_reason,
        available_quantity,
        balance_after,
        original_status,
        recorded_at: record.recorded_at,
        source_partition: record.partition,
        source_offset: record.offset,
    }
}
