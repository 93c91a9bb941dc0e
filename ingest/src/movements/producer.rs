//! Produces accepted movements to `inventory.movements.v1`, keyed by store, and reports
//! where the broker put them. A movement is reported accepted only after the broker
//! acknowledged it (`acks=all`); a full queue or an unreachable broker is a 503 within
//! the bounded time of `KAFKA_MESSAGE_TIMEOUT_MS`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::{AvroRecord, StockMovement};
use service_kit::problem::ApiError;

use crate::metrics::MovementMetrics;

/// How long a send waits for room in a full producer queue before giving up.
const QUEUE_WAIT: Duration = Duration::from_millis(500);
/// What a refused client is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

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
    pub fn new(producer: FutureProducer, topic: String, metrics: MovementMetrics) -> Self {
        Self {
            producer,
            topic: topic.into(),
            metrics,
        }
    }

    #[tracing::instrument(skip_all, fields(store_id = %movement.store_id.get(), movement_id = %movement.movement_id))]
    pub async fn produce(&self, movement: &StockMovement) -> Result<Position, ApiError> {
        let mut payload = Vec::with_capacity(192);
        movement
            .encode_into(&mut payload)
            .map_err(|error| ApiError::Internal(anyhow::anyhow!("encoding a movement: {error}")))?;
        let key = schemas::topics::store_key(movement.store_id);
        let record = FutureRecord::to(&self.topic)
            .key(key.as_str())
            .payload(&payload);
        let started = Instant::now();
        match self.producer.send(record, QUEUE_WAIT).await {
            Ok(delivery) => {
                self.metrics
                    .produce_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(Position {
                    partition: delivery.partition,
                    offset: delivery.offset,
                })
            }
            Err((error, _)) => {
                tracing::warn!(%error, "The broker did not acknowledge a movement; the client is told to retry.");
                Err(ApiError::Unavailable {
                    code: "unavailable",
                    detail: "the broker did not acknowledge the movement, so it was not accepted; retry with the same movement_id".into(),
                    retry_after: RETRY_AFTER,
                })
            }
        }
    }
}
