//! `query-api`: the read side. Every question is answered here, from Redis (hot balances)
//! and Postgres (a replica for reports and history when `DATABASE_READ_URL` is set).
//!
//! Today: catalog and user reads; inventory, history and reports arrive with their issue.

use std::future::Future;

pub mod catalog;
pub mod pagination;
pub mod routes;
pub mod users;

use service_kit::app::Base;
use service_kit::auth::Auth;
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
        let (keys, limits) = base.auth_and_limits()?;
        // The catalog is small and read right after it is written: from the primary.
        let catalog = catalog::CatalogState {
            pool: base.pool.clone(),
            auth: Auth(keys),
        };
        let api = routes::api(catalog, limits);
        let description = "Read API: catalog, inventory, history and reports for dashboards.";
        let server = base.serve(readiness, description, Some(api)).await?;
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
