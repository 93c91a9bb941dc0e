//! The processors' lag measured from outside their group, for every partition of the
//! movements topic: the end of each partition (asked of the broker) minus the offset the
//! group committed in Postgres (a partition never committed counts from its earliest
//! record). Exported as `bazaar_processor_group_lag{partition}` (and the committed offset
//! as `bazaar_processor_group_committed_offset{partition}`) by the processors and by
//! ingest alike, so that a group with no live member — every processor stopped — still
//! shows its lag where the alert rules read it. A processor's own `bazaar_processor_lag`
//! cannot: it only covers the partitions that processor fetches.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntGaugeVec, Opts, Registry};
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::settings::KafkaSettings;

/// How often the lag is measured.
pub const EVERY: Duration = Duration::from_secs(5);
/// The longest a question to the broker may take.
const ASK_WAIT: Duration = Duration::from_secs(5);

/// One partition as measured: where the group is, and how far behind the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: i32,
    pub committed: i64,
    pub lag: i64,
}

#[derive(Clone)]
pub struct GroupLag {
    /// A client that never joins the group: it only asks for the ends of the partitions.
    reader: Arc<BaseConsumer>,
    pool: PgPool,
    group: String,
    topic: String,
    lag: IntGaugeVec,
    committed: IntGaugeVec,
}

impl std::fmt::Debug for GroupLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLag")
            .field("group", &self.group)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GroupLagError {
    #[error("the Kafka client could not be made: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the metric could not be registered: {0}")]
    Metric(#[from] prometheus::Error),
}

impl GroupLag {
    /// Measures `settings.consumer_group` on `topic`; registers the gauge in `registry`.
    pub fn new(
        settings: &KafkaSettings,
        client_id: &str,
        pool: PgPool,
        topic: String,
        registry: &Registry,
    ) -> Result<Self, GroupLagError> {
        let reader: BaseConsumer =
            super::consumer_config(settings, client_id, &settings.consumer_group).create()?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "bazaar_processor_group_lag",
                "Movements on the partition after the offset the processors' group committed in Postgres, for every partition (measured by every processor and every ingest).",
            ),
            &["partition"],
        )?;
        let committed = IntGaugeVec::new(
            Opts::new(
                "bazaar_processor_group_committed_offset",
                "The next offset of the partition the processors' group will process, as committed in Postgres (a partition not moving while it has lag is stuck).",
            ),
            &["partition"],
        )?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(committed.clone()))?;
        Ok(Self {
            reader: Arc::new(reader),
            pool,
            group: settings.consumer_group.clone(),
            topic,
            lag,
            committed,
        })
    }

    /// Every partition's lag now, also set on the gauges; `None` when the broker or
    /// Postgres did not answer (the gauges keep their last values).
    pub async fn measure(&self) -> Option<Vec<PartitionLag>> {
        let ends = {
            let (reader, topic) = (self.reader.clone(), self.topic.clone());
            tokio::task::spawn_blocking(move || bounds(&reader, &topic)).await
        };
        let ends = match ends {
            Ok(Ok(ends)) => ends,
            Ok(Err(error)) => {
                tracing::debug!(%error, "Reading the ends of the partitions failed.");
                return None;
            }
            Err(_) => return None,
        };
        let committed =
            match crate::postgres::committed_offsets(&self.pool, &self.group, &self.topic).await {
                Ok(committed) => committed,
                Err(error) => {
                    tracing::debug!(%error, "Reading the group's offsets failed.");
                    return None;
                }
            };
        let measured: Vec<PartitionLag> = ends
            .into_iter()
            .map(|(partition, (low, high))| {
                let committed = committed.get(&partition).copied().unwrap_or(low);
                PartitionLag {
                    partition,
                    committed,
                    lag: (high - committed).max(0),
                }
            })
            .collect();
        for measured in &measured {
            let partition = [measured.partition.to_string()];
            self.lag.with_label_values(&partition).set(measured.lag);
            self.committed
                .with_label_values(&partition)
                .set(measured.committed);
        }
        Some(measured)
    }

    /// Measures every [`EVERY`] until `stop`, handing each measurement to `seen`.
    pub async fn run(self, stop: CancellationToken, mut seen: impl FnMut(&[PartitionLag])) {
        let mut every = tokio::time::interval(EVERY);
        while stop.run_until_cancelled(every.tick()).await.is_some() {
            if let Some(measured) = self.measure().await {
                seen(&measured);
            }
        }
    }
}

/// A partition's earliest offset and the offset its next record will get.
type Bounds = (i64, i64);

/// The bounds of every partition of `topic`.
fn bounds(
    reader: &BaseConsumer,
    topic: &str,
) -> Result<Vec<(i32, Bounds)>, rdkafka::error::KafkaError> {
    let metadata = reader.fetch_metadata(Some(topic), ASK_WAIT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|topic| topic.partitions().iter().map(|partition| partition.id()))
        .collect();
    partitions
        .into_iter()
        .map(|partition| {
            Ok((
                partition,
                reader.fetch_watermarks(topic, partition, ASK_WAIT)?,
            ))
        })
        .collect()
}
