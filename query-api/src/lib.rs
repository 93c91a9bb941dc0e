//! `query-api`: the read side. Every question is answered here, from Redis (hot balances)
//! and Postgres (a replica for reports and history when `DATABASE_READ_URL` is set).
//!
//! This version starts, connects to its dependencies and serves the operational routes;
//! the read API arrives with the catalog and query issues.

use std::future::Future;

use service_kit::app::Base;
use service_kit::server::Server;
use service_kit::{Settings, postgres};

/// A built `query-api`, bound to its port and ready to serve.
#[derive(Debug)]
pub struct App {
    server: Server,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let base = Base::connect(settings).await?;
        let read_pool =
            postgres::connect_read(&base.settings.database, &base.pool, "query-api").await?;
        let readiness = base
            .readiness
            .clone()
            .with_check("postgres_read", postgres::readiness_check(read_pool));
        let description = "Read API: inventory, history and reports for dashboards.";
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
