//! `processors`: consume movements, decide their outcomes, persist the ledger, balances,
//! rollups and offsets in one Postgres transaction per batch, publish the outcomes.
//!
//! This version starts, connects to its dependencies and serves health and metrics; the
//! processing loop arrives with the processors issue.

use std::future::Future;

use service_kit::app::Base;
use service_kit::server::Server;
use service_kit::{Settings, health, kafka};

/// A built `processors`, bound to its port and ready to serve.
#[derive(Debug)]
pub struct App {
    server: Server,
    port: u16,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let base = Base::connect(settings).await?;
        let producer = kafka::producer(&base.settings.kafka, "processors")?;
        let readiness = base.readiness.with_check(
            "kafka",
            kafka::readiness_check(producer, base.settings.topics().movements()),
        );
        let api = health::openapi(
            "processors",
            "Stream processors: exact ledger, balances, rollups and alerts.",
            None,
        );
        let router = health::router("processors", readiness.clone(), base.metrics.clone(), &api);
        let server =
            Server::bind(base.settings.listen_addr, router, base.metrics, readiness).await?;
        let port = server.local_addr()?.port();
        Ok(Self { server, port })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.server.run_until_stopped(shutdown).await?;
        tracing::info!("Stopped.");
        Ok(())
    }
}
