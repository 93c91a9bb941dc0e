//! Produces accepted movements to `inventory.movements.v1`, keyed by store, in the Confluent
//! wire format (the schema id asked of the registry at start), and reports where the broker
//! put them. A movement is reported accepted only after the broker
//! acknowledged it (`acks=all`); a full queue or an unreachable broker is a 503 within
//! the bounded time of `KAFKA_MESSAGE_TIMEOUT_MS`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use schemas::{SchemaIds, StockMovement, WireFormat};
use service_kit::problem::ApiError;

use crate::metrics::MovementMetrics;

/// How long a send waits for room in a full producer queue before giving up.
const QUEUE_WAIT: Duration = Duration::from_millis(500);
/// What a refused client is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A movement librdkafka holds (and will deliver or fail within
/// `KAFKA_MESSAGE_TIMEOUT_MS`), not yet acknowledged.
#[must_use = "an enqueued movement is not accepted until it is acknowledged"]
pub struct Enqueued {
    delivery: DeliveryFuture,
    started: Instant,
}

impl std::fmt::Debug for Enqueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueued")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: &KafkaError) -> ApiError {
    tracing::warn!(%error, "The broker did not acknowledge a movement; the client is told to retry.");
    ApiError::Unavailable {
        code: "unavailable",
        detail: "the broker did not acknowledge the movement, so it was not accepted; retry with the same movement_id".into(),
        retry_after: RETRY_AFTER,
    }
}

/// Where the broker put a movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Clone)]
pub struct MovementProducer {
    producer: FutureProducer,
    topic: Arc<str>,
    schema_ids: Arc<SchemaIds>,
    metrics: MovementMetrics,
}

impl std::fmt::Debug for MovementProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovementProducer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl MovementProducer {
    pub fn new(
        producer: FutureProducer,
        topic: String,
        schema_ids: Arc<SchemaIds>,
        metrics: MovementMetrics,
    ) -> Self {
        Self {
            producer,
            topic: topic.into(),
            schema_ids,
            metrics,
        }
    }

    /// Produces one movement and waits for the broker's acknowledgement.
    pub async fn produce(&self, movement: &StockMovement) -> Result<Position, ApiError> {
        let mut payload = Vec::with_capacity(192);
        let enqueued = self.enqueue(movement, &mut payload).await?;
        self.acknowledged(enqueued).await
    }

    /// Hands a movement to librdkafka (which copies it), waiting up to `QUEUE_WAIT` for
    /// room in a full queue. `buffer` is scratch space the caller may reuse: a batch
    /// encodes every line into one buffer instead of allocating a payload per line.
    #[tracing::instrument(skip_all, fields(store_id = %movement.store_id.get(), movement_id = %movement.movement_id))]
    pub async fn enqueue(
        &self,
        movement: &StockMovement,
        buffer: &mut Vec<u8>,
    ) -> Result<Enqueued, ApiError> {
        buffer.clear();
        movement
            .encode_with(&self.schema_ids, buffer)
            .map_err(|error| ApiError::Internal(anyhow::anyhow!("encoding a movement: {error}")))?;
        let key = schemas::topics::store_key(movement.store_id);
        let started = Instant::now();
        let record = FutureRecord::to(&self.topic)
            .key(key.as_str())
            .payload(buffer.as_slice());
        match service_kit::kafka::enqueue(&self.producer, record, QUEUE_WAIT).await {
            Ok(delivery) => Ok(Enqueued { delivery, started }),
            Err(error) => Err(unavailable(&error)),
        }
    }

    /// Waits for the broker to acknowledge an enqueued movement.
    pub async fn acknowledged(&self, enqueued: Enqueued) -> Result<Position, ApiError> {
        match service_kit::kafka::acknowledged(enqueued.delivery).await {
            Ok(delivery) => {
                self.metrics
                    .produce_seconds
                    .observe(enqueued.started.elapsed().as_secs_f64());
                Ok(Position {
                    partition: delivery.partition,
                    offset: delivery.offset,
                })
            }
            Err(error) => Err(unavailable(&error)),
        }
    }
}
