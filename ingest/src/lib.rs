//! `ingest`: the write side. Every change enters here: stock movements are validated and
//! produced to Kafka; master data goes to Postgres.
//!
//! This version starts, connects to its dependencies and serves the operational routes;
//! the write API arrives with the movement and catalog issues.

use std::future::Future;

use rdkafka::producer::{FutureProducer, Producer};
use service_kit::app::Base;
use service_kit::server::Server;
use service_kit::{Settings, kafka};

/// A built `ingest`, bound to its port and ready to serve.
pub struct App {
    server: Server,
    producer: FutureProducer,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("port", &self.port())
            .finish_non_exhaustive()
    }
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let base = Base::connect(settings).await?;
        let producer = kafka::producer(&base.settings.kafka, "ingest")?;
        let movements = base.settings.topics().movements();
        let readiness = base
            .readiness
            .clone()
            .with_check("kafka", kafka::readiness_check(producer.clone(), movements));
        let description = "Write API: stock movements to Kafka, catalog and users to Postgres.";
        let server = base.serve(readiness, description).await?;
        Ok(Self { server, producer })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves until `shutdown`, then flushes what the producer still holds.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.server.run_until_stopped(shutdown).await?;
        let producer = self.producer;
        tokio::task::spawn_blocking(move || producer.flush(std::time::Duration::from_secs(10)))
            .await??;
        tracing::info!("Stopped.");
        Ok(())
    }
}
