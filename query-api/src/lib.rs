//! `query-api`: the read side. Every question is answered here, from Redis (hot balances)
//! and Postgres (a replica for reports and history when `DATABASE_READ_URL` is set).
//!
//! Inventory (current balances beside the catalog), movement history, reports, alerts,
//! the audit log, and catalog and user reads; read-your-writes with ingest's consistency
//! token.

use std::future::Future;
use std::sync::Arc;

pub mod alerts;
pub mod audit;
pub mod balance_copies;
pub mod balances;
pub mod catalog;
pub mod consistency;
pub mod dashboard;
pub mod etag;
pub mod events;
pub mod gzip;
pub mod history;
pub mod inventory;
pub mod metrics;
pub mod network;
pub mod pagination;
pub mod purchase_orders;
pub mod renderings;
pub mod reports;
pub mod routes;
pub mod standby;
pub mod transfers;
pub mod users;
pub mod view;

use axum::extract::FromRef;
use service_kit::app::Base;
use service_kit::auth::Auth;
use service_kit::postgres;
use service_kit::server::Server;
use service_kit::settings::QueryApiSettings;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// What the inventory, history and report routes read from: shared, so that a request
/// clones one pointer rather than every pool and handle.
#[derive(Clone, Debug)]
pub struct ReadState {
    pub reads: Arc<Reads>,
    pub auth: Auth,
}

impl std::ops::Deref for ReadState {
    type Target = Reads;

    fn deref(&self) -> &Reads {
        &self.reads
    }
}

#[derive(Debug)]
pub struct Reads {
    /// The primary: current state.
    pub pool: PgPool,
    /// The standby (`DATABASE_READ_URL`) or the primary: history, rollups, alerts, audit.
    pub standby: standby::Standby,
    pub balances: balances::Balances,
    pub view: Arc<view::CatalogView>,
    /// Whole store inventories as last rendered.
    pub renderings: renderings::Renderings,
    pub metrics: metrics::QueryMetrics,
    /// The dashboards' event streams.
    pub events: Arc<events::EventStreams>,
}

impl Reads {
    /// Waits until the processors have committed what `consistency` names (when it names
    /// anything); a reader with a token has just written, so the catalog view is brought up
    /// to date too — a price or reorder point changed before the movements is shown.
    pub async fn consistent(
        &self,
        consistency: &consistency::ConsistencyParams,
    ) -> Result<Option<schemas::consistency::ConsistencyToken>, service_kit::problem::ApiError>
    {
        let token = consistency.wait(&self.balances, &self.metrics).await?;
        if token.is_some()
            && let Err(error) = self.view.catch_up(&self.pool).await
        {
            tracing::warn!(%error, "Bringing the catalog view up to date for a consistency token failed; answering from the view as it is.");
        }
        Ok(token)
    }
}

impl FromRef<ReadState> for Auth {
    fn from_ref(state: &ReadState) -> Self {
        state.auth.clone()
    }
}

/// A built `query-api`, bound to its port and ready to serve.
#[derive(Debug)]
pub struct App {
    server: Server,
    /// Stops the catalog view's refresh loop, the balance copies and the standby's pings.
    stop_view: CancellationToken,
    /// Ends the event streams when the server starts to stop.
    stop_streams: CancellationToken,
}

impl App {
    pub async fn build(settings: QueryApiSettings) -> anyhow::Result<Self> {
        let QueryApiSettings { shared, api, query } = settings;
        let base = Base::connect(shared).await?;
        let standby_pool = postgres::standby_pool(&base.settings.database, "query-api")?;
        // Optional: while the standby is away the primary answers its reads.
        let readiness = match &standby_pool {
            Some(pool) => base
                .readiness
                .clone()
                .with_optional_check("postgres_standby", postgres::readiness_check(pool.clone())),
            None => base.readiness.clone(),
        };
        let (keys, limits) = base.auth_and_limits(&api).await?;
        let readiness = readiness.with_optional_check("rate_limits", limits.readiness_check());
        // The catalog is small and read right after it is written: from the primary.
        let catalog = catalog::CatalogState {
            pool: base.pool.clone(),
            auth: Auth(keys.clone()),
        };
        let metrics = metrics::QueryMetrics::register(base.metrics.registry())?;
        let view = view::CatalogView::load(&base.pool).await?;
        let stop_view = CancellationToken::new();
        tokio::spawn({
            let (view, pool) = (view.clone(), base.pool.clone());
            postgres::repeat(
                "catalog view",
                query.catalog_refresh,
                stop_view.clone(),
                move || {
                    let (view, pool) = (view.clone(), pool.clone());
                    async move { view.refresh(&pool).await }
                },
            )
        });
        let movements = base.settings.topics().movements();
        let copies = balance_copies::BalanceCopies::new(
            base.redis.clone(),
            &movements,
            query.replica_max_balances,
            metrics.clone(),
        );
        if query.replica_max_balances > 0 {
            tokio::spawn(copies.clone().follow(stop_view.clone()));
        }
        let events = events::EventStreams::new(query.event_streams_per_subject);
        let stop_streams = events.stop.clone();
        tokio::spawn(events.clone().follow(base.redis.clone(), stop_view.clone()));
        let reads = Reads {
            balances: balances::Balances::new(
                base.redis.clone(),
                base.pool.clone(),
                &base.settings.kafka.consumer_group,
                &movements,
                metrics.clone(),
                copies,
            ),
            standby: standby::Standby::new(
                base.pool.clone(),
                standby_pool,
                &base.settings.kafka.consumer_group,
                &movements,
                query.standby_wait,
                metrics.clone(),
            ),
            pool: base.pool.clone(),
            view,
            renderings: renderings::Renderings::default(),
            metrics,
            events,
        };
        reads.standby.watch(stop_view.clone());
        let reads = ReadState {
            reads: Arc::new(reads),
            auth: Auth(keys),
        };
        let (mut routes, paths) = routes::api(catalog, reads, limits);
        if let Some(layer) = service_kit::cors::layer(&api.cors_origins) {
            routes = routes.layer(layer);
        }
        if let Some(dir) = &query.dashboard_dir {
            routes = routes.merge(dashboard::router(dir, &query.dashboard_ingest_url));
        }
        let api = (routes, paths);
        let description = "Read API: inventory, movement history, reports, alerts, audit log and catalog reads for dashboards.";
        let server = base.serve(readiness, description, Some(api)).await?;
        Ok(Self {
            server,
            stop_view,
            stop_streams,
        })
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop_streams = self.stop_streams;
        let served = self
            .server
            .run_until_stopped(async move {
                shutdown.await;
                stop_streams.cancel();
            })
            .await;
        self.stop_view.cancel();
        served?;
        tracing::info!("Stopped.");
        Ok(())
    }
}
