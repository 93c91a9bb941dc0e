//! Kafka client configuration, in one place: durable idempotent producers, consumers that
//! never commit on their own, and (in `topics`) the topics declared in `schemas::topics`.

pub mod group_lag;
pub mod topics;

pub use topics::{TopicError, ensure_topics};

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::settings::KafkaSettings;

/// What every client of this deployment shares: the brokers and how to reach them
/// (TLS, SASL).
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    settings.security.apply(&mut config);
    config
}

/// Producer settings: every record is acknowledged by all in-sync replicas and written
/// exactly once per send even when librdkafka retries (`enable.idempotence`), compressed,
/// and briefly lingered so that concurrent requests share a batch.
pub fn producer_config(settings: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("client.id", client_id)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // The Java client's partitioner: a store lands on the same partition whichever
        // Kafka client (or language) produces it.
        .set("partitioner", "murmur2_random")
        .set("compression.type", &settings.compression)
        .set("linger.ms", settings.linger.as_millis().to_string())
        .set(
            "message.timeout.ms",
            settings.message_timeout.as_millis().to_string(),
        )
        .set("socket.keepalive.enable", "true");
    config
}

/// How long a send pauses before trying a full producer queue again.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(10);

/// Hands a record to librdkafka (which copies key and payload, so the caller's buffers
/// are free again at once), waiting up to `queue_wait` for room in a full queue. The
/// returned future resolves when the broker acknowledged the record or it failed for good.
///
/// Enqueueing a whole batch first and then awaiting the acknowledgements holds one small
/// channel per record, where `FutureProducer::send` per record would hold a future with
/// its record's buffers until the acknowledgement.
pub async fn enqueue<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
    queue_wait: Duration,
) -> Result<DeliveryFuture, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let started = std::time::Instant::now();
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), again))
                if started.elapsed() < queue_wait =>
            {
                record = again;
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// What an enqueued record came to: where it is, or why it is not on the topic.
pub async fn acknowledged(delivery: DeliveryFuture) -> Result<Delivery, KafkaError> {
    match delivery.await {
        Ok(Ok(delivery)) => Ok(delivery),
        Ok(Err((error, _))) => Err(error),
        // The producer went away with the record (shutting down): not acknowledged.
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// Consumer settings: offsets are committed by the application (into Postgres by the
/// processors), never automatically; a new group starts from the beginning.
pub fn consumer_config(settings: &KafkaSettings, client_id: &str, group_id: &str) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("client.id", client_id)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set(
            "session.timeout.ms",
            settings.session_timeout.as_millis().to_string(),
        )
        // A tenth of the session (Kafka's rule: at most a third): the session runs from the
        // last heartbeat answered, so frequent ones leave nearly all of it to outlast a
        // group coordinator's failover — a lost broker then costs no partitions.
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout.as_millis() / 10)
                .max(100)
                .to_string(),
        )
        .set("isolation.level", "read_committed");
    config
}

pub fn producer(settings: &KafkaSettings, client_id: &str) -> Result<FutureProducer, KafkaError> {
    producer_config(settings, client_id).create()
}

/// A transactional producer (its records reach `read_committed` consumers only when its
/// transaction commits), its transactions initialised: any earlier producer with the same
/// `transactional_id` is fenced and its open transaction aborted. A transaction left open
/// by a producer that died is aborted by the broker after `transaction_timeout`. Blocks
/// until the transaction coordinator answers (retrying while it is not ready, up to six
/// transaction timeouts).
pub fn transactional_producer(
    settings: &KafkaSettings,
    client_id: &str,
    transactional_id: &str,
    transaction_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    let producer: FutureProducer = producer_config(settings, client_id)
        .set("transactional.id", transactional_id)
        .set(
            "transaction.timeout.ms",
            transaction_timeout.as_millis().to_string(),
        )
        // librdkafka refuses a record timeout longer than the transaction's.
        .set(
            "message.timeout.ms",
            settings
                .message_timeout
                .min(transaction_timeout)
                .as_millis()
                .to_string(),
        )
        .create()?;
    // A transaction coordinator that is still loading (a cluster just started, or one
    // that lost a broker) answers "not coordinator" or "concurrent transactions" for a
    // while: those pass, and the call is made again.
    let started = std::time::Instant::now();
    loop {
        match producer.init_transactions(transaction_timeout) {
            Ok(()) => return Ok(producer),
            Err(KafkaError::Transaction(error))
                if error.is_retriable() && started.elapsed() < 6 * transaction_timeout =>
            {
                tracing::warn!(%error, "Initialising transactions failed; trying again.");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => return Err(error),
        }
    }
}

/// A readiness check: the broker answers a metadata request for `topic`.
pub fn readiness_check(
    producer: FutureProducer,
    topic: String,
) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync {
    move || {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            // librdkafka's metadata call blocks; keep it off the async workers.
            tokio::task::spawn_blocking(move || {
                let metadata = producer
                    .client()
                    .fetch_metadata(Some(&topic), Duration::from_millis(1_500))
                    .map_err(|error| error.to_string())?;
                match metadata.topics().first() {
                    Some(found) if found.error().is_none() && !found.partitions().is_empty() => {
                        Ok(())
                    }
                    Some(found) => Err(format!(
                        "topic {topic} is not available: {:?}",
                        found.error()
                    )),
                    None => Err(format!("topic {topic} does not exist")),
                }
            })
            .await
            .map_err(|error| error.to_string())?
        }
        .boxed()
    }
}
