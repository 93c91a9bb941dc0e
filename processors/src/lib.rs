//! `processors`: consume movements, decide their outcomes, persist the ledger, balances,
//! rollups and offsets in one Postgres transaction per batch, publish the outcomes.
//!
//! This version starts, connects to its dependencies and serves health and metrics; the
//! processing loop arrives with the processors issue.

use std::future::Future;

use service_kit::app::Base;
use service_kit::server::Server;
use service_kit::{Settings, kafka};

/// A built `processors`, bound to its port and ready to serve.
#[derive(Debug)]
pub struct App {
    server: Server,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let base = Base::connect(settings).await?;
        let producer = kafka::producer(&base.settings.kafka, "processors")?;
        let movements = base.settings.topics().movements();
        let readiness = base
            .readiness
            .clone()
            .with_check("kafka", kafka::readiness_check(producer, movements));
        let description = "Stream processors: exact ledger, balances, rollups and alerts.";
        let server = base.serve(readiness, description, None).await?;
        Ok(Self { server })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.server.port()
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
