//! `ingest`: the write side. Every change enters here: stock movements are validated and
//! produced to Kafka; master data goes to Postgres.
//!
//! This version starts, connects to its dependencies and serves the operational routes;
//! the write API arrives with the movement and catalog issues.

use std::future::Future;

use rdkafka::producer::{FutureProducer, Producer};
use service_kit::app::Base;
use service_kit::server::Server;
use service_kit::{Settings, health, kafka};

/// A built `ingest`, bound to its port and ready to serve.
pub struct App {
    server: Server,
    port: u16,
    producer: FutureProducer,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let base = Base::connect(settings).await?;
        let producer = kafka::producer(&base.settings.kafka, "ingest")?;
        let readiness = base.readiness.with_check(
            "kafka",
            kafka::readiness_check(producer.clone(), base.settings.topics().movements()),
        );
        let api = health::openapi(
            "ingest",
            "Write API: stock movements to Kafka, catalog and users to Postgres.",
            None,
        );
        let router = health::router("ingest", readiness.clone(), base.metrics.clone(), &api);
        let server =
            Server::bind(base.settings.listen_addr, router, base.metrics, readiness).await?;
        let port = server.local_addr()?.port();
        Ok(Self {
            server,
            port,
            producer,
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.port
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
