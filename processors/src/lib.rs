//! `processors`: consume movements, decide their outcomes, persist the ledger, balances,
//! rollups, alerts and offsets in one Postgres transaction per batch, publish the
//! outcomes to Kafka and Redis. "Processing guarantees" in ARCHITECTURE.md is the
//! specification; `consumer` explains how the loop keeps it.

mod batch;
pub mod cache_writer;
pub mod commit;
pub mod consumer;
pub mod decide;
pub mod effects;
pub mod halts;
pub mod isolation;
mod landing;
pub mod ledger;
pub mod liveness;
pub mod metrics;
pub mod outputs;
mod poll;
mod publish;
pub mod rebalance;
pub mod state;

#[cfg(test)]
mod test_support {
    use rdkafka::message::OwnedMessage;

    /// An empty record of the movements topic at `partition` and `offset`.
    pub fn message(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            None,
            None,
            "movements".into(),
            rdkafka::Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    /// A sale of one unit of product 1 by store `partition`, read at `partition`/`offset`.
    pub fn record(partition: i32, offset: i64) -> crate::ledger::Record {
        let at = chrono::DateTime::UNIX_EPOCH;
        crate::ledger::Record {
            partition,
            offset,
            recorded_at: at,
            movement: schemas::StockMovement {
                unit_price_paise: Some(1),
                ..schemas::StockMovement::new(
                    uuid::Uuid::from_u128(u128::try_from(offset).unwrap()),
                    schemas::StoreId(i64::from(partition)),
                    schemas::ProductId(1),
                    "SKU",
                    schemas::MovementKind::Sale,
                    1,
                    at,
                    "tester",
                )
            },
            store_price_paise: None,
        }
    }
}

use std::future::Future;

use service_kit::app::Base;
use service_kit::kafka;
use service_kit::kafka::group_lag::GroupLag;
use service_kit::schema_registry::{START_WAIT, SchemaCache, SchemaRegistry};
use service_kit::server::Server;
use service_kit::settings::ProcessorsSettings;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How often the processors make sure the ledger's next months have their partitions.
const LEDGER_PARTITIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Keeps the ledger's partitions months ahead for as long as the processors run (start-up
/// made them too), so a deployment that runs for months never writes into the default
/// partition.
async fn maintain_ledger_partitions(pool: sqlx::PgPool, stop: CancellationToken) {
    let mut every = tokio::time::interval(LEDGER_PARTITIONS_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(error) = schemas::migrations::ensure_ledger_partitions(&pool).await {
            tracing::warn!(%error, "Creating the ledger's next partitions failed; trying again in an hour.");
        }
    }
}

/// A built `processors`, bound to its port, consuming.
#[derive(Debug)]
pub struct App {
    server: Server,
    stop: CancellationToken,
    stopped: oneshot::Receiver<()>,
}

impl App {
    pub async fn build(settings: ProcessorsSettings) -> anyhow::Result<Self> {
        let ProcessorsSettings { shared, processing } = settings;
        let base = Base::connect(shared).await?;
        let producer = kafka::producer(&base.settings.kafka, "processors")?;
        let topics = base.settings.topics();
        let halts = halts::Halts::default();
        let liveness = liveness::Liveness::default();
        let readiness = base
            .readiness
            .clone()
            .with_check(
                "kafka",
                kafka::readiness_check(producer.clone(), topics.movements()),
            )
            .with_optional_check("partitions", halts.readiness_check())
            .with_check("group", liveness.readiness_check());
        // The ids of every version of the movements' schema (to read) and of the outputs'
        // (to write), asked once: the registry is never on a batch's path.
        let registry = SchemaRegistry::new(&base.settings.kafka.schema_registry)?;
        let schema_ids = registry
            .schema_ids_within(&topics, &schemas::topics::ALL, START_WAIT)
            .await?;
        let readiness =
            readiness.with_optional_check("schema_registry", registry.readiness_check());
        let metrics = metrics::ProcessorMetrics::register(base.metrics.registry())?;
        let description = "Stream processors: exact ledger, balances, rollups and alerts. \
            Only operational routes: health, readiness and metrics.";
        let server = base.serve(readiness, description, None).await?;

        let stop = CancellationToken::new();
        tokio::spawn(maintain_ledger_partitions(base.pool.clone(), stop.clone()));
        let group_lag = GroupLag::new(
            &base.settings.kafka,
            "processors-group-watch",
            base.pool.clone(),
            topics.movements(),
            base.metrics.registry(),
        )?;
        tokio::spawn(liveness::watch(liveness.clone(), group_lag, stop.clone()));
        let transactional_id = processing.transactional_id.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                base.settings.kafka.consumer_group,
                uuid::Uuid::new_v4()
            )
        });
        let processor = consumer::Processor {
            settings: base.settings.clone(),
            processing,
            topic: topics.movements(),
            pool: base.pool.clone(),
            redis: base.redis.clone(),
            dead_letters: outputs::DeadLetters::new(producer, &topics),
            schemas: SchemaCache::new(registry, schema_ids),
            transactional_id,
            metrics,
            runtime: tokio::runtime::Handle::current(),
            shutdown: stop.clone(),
            halts,
            liveness,
        };
        let (done, stopped) = oneshot::channel();
        // librdkafka's poll blocks; the loop gets a thread of its own and enters the
        // runtime only to await Postgres, Kafka acks and Redis.
        std::thread::Builder::new()
            .name("processor".into())
            .spawn(move || {
                processor.run();
                let _ = done.send(());
            })?;
        Ok(Self {
            server,
            stop,
            stopped,
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves and processes until `shutdown`; then the batch in flight is finished and
    /// committed and the consumer leaves its group.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
        self.server
            .run_until_stopped(self.stop.clone().cancelled_owned())
            .await?;
        let _ = self.stopped.await;
        tracing::info!("Stopped.");
        Ok(())
    }
}
