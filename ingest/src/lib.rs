//! `ingest`: the write side. Every change enters here: stock movements are validated and
//! produced to Kafka; master data goes to Postgres.
//!
//! Movements (`POST /v1/movements`, `/v1/movements/batch`), the catalog and users,
//! tokens (`POST /v1/auth/token`) and the first admin's bootstrap (`ingest create-admin`).

use std::future::Future;
use std::sync::Arc;

pub mod audit;
pub mod catalog;
pub mod catalog_cache;
pub mod checks;
pub mod login;
pub mod metrics;
pub mod movements;
pub mod outcomes;
pub mod purchase_orders;
pub mod routes;
pub mod user_admin;
pub mod users;

use rdkafka::producer::{FutureProducer, Producer};
use schemas::topics;
use service_kit::app::Base;
use service_kit::schema_registry::{START_WAIT, SchemaRegistry};
use service_kit::server::Server;
use service_kit::settings::IngestSettings;
use service_kit::{Settings, kafka};

/// A built `ingest`, bound to its port and ready to serve.
pub struct App {
    server: Server,
    producer: FutureProducer,
    /// Stops the background jobs: the catalog cache's refresh, the group lag's measuring,
    /// publishing receipts left unpublished and forgetting ended sessions.
    stop_background: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("port", &self.port())
            .finish_non_exhaustive()
    }
}

impl App {
    pub async fn build(settings: IngestSettings) -> anyhow::Result<Self> {
        let IngestSettings {
            shared,
            api,
            movements: accepted,
        } = settings;
        let base = Base::connect(shared).await?;
        let producer = kafka::producer(&base.settings.kafka, "ingest")?;
        let movements = base.settings.topics().movements();
        let readiness = base
            .readiness
            .clone()
            .with_check("kafka", kafka::readiness_check(producer.clone(), movements));
        let (keys, limits) = base.auth_and_limits(&api).await?;
        let readiness = readiness.with_optional_check("rate_limits", limits.readiness_check());
        // The id movements are written with, asked once: the registry is never on a
        // request's path.
        let registry = SchemaRegistry::new(&base.settings.kafka.schema_registry)?;
        let schema_ids = registry
            .schema_ids_within(&base.settings.topics(), &[topics::MOVEMENTS], START_WAIT)
            .await?;
        let readiness =
            readiness.with_optional_check("schema_registry", registry.readiness_check());
        let login = login::LoginState::new(
            base.pool.clone(),
            keys.clone(),
            Some(base.redis.clone()),
            login::Lifetimes::from(&api.auth),
            base.metrics.registry(),
        )?;
        let cache = catalog_cache::CatalogCache::load(&base.pool).await?;
        let stop_background = tokio_util::sync::CancellationToken::new();
        tokio::spawn({
            let (cache, pool) = (cache.clone(), base.pool.clone());
            service_kit::postgres::repeat(
                "catalog cache",
                accepted.catalog_refresh,
                stop_background.clone(),
                move || {
                    let (cache, pool) = (cache.clone(), pool.clone());
                    async move { cache.refresh(&pool).await }
                },
            )
        });
        // The processors' lag on every partition, also while no processor runs.
        let group_lag = service_kit::kafka::group_lag::GroupLag::new(
            &base.settings.kafka,
            "ingest-group-watch",
            base.pool.clone(),
            base.settings.topics().movements(),
            base.metrics.registry(),
        )?;
        tokio::spawn(group_lag.run(stop_background.clone(), |_| {}));
        let metrics = metrics::MovementMetrics::register(base.metrics.registry())?;
        let movement_producer = movements::producer::MovementProducer::new(
            producer.clone(),
            base.settings.topics().movements(),
            Arc::new(schema_ids),
            metrics.clone(),
        );
        let orders = purchase_orders::OrdersState {
            pool: base.pool.clone(),
            auth: service_kit::auth::Auth(keys.clone()),
            producer: movement_producer.clone(),
            unpublished: metrics::unpublished_receipts(base.metrics.registry())?,
        };
        tokio::spawn({
            let orders = orders.clone();
            service_kit::postgres::repeat(
                "publishing receipts",
                purchase_orders::receive::PUBLISH_EVERY,
                stop_background.clone(),
                move || {
                    let orders = orders.clone();
                    async move { purchase_orders::receive::publish_pending(&orders).await }
                },
            )
        });
        tokio::spawn({
            let pool = base.pool.clone();
            service_kit::postgres::repeat(
                "forgetting ended sessions",
                login::sessions::SWEEP_EVERY,
                stop_background.clone(),
                move || {
                    let pool = pool.clone();
                    async move { login::sessions::sweep(&pool).await.map(|_| ()) }
                },
            )
        });
        let movements = movements::MovementsState(std::sync::Arc::new(movements::Movements {
            auth: service_kit::auth::Auth(keys),
            cache,
            pool: base.pool.clone(),
            producer: movement_producer,
            settings: accepted,
            metrics,
            outcomes: outcomes::Outcomes::new(base.redis.clone()),
        }));
        let (mut routes, paths) = routes::api(login, movements, orders, limits);
        if let Some(layer) = service_kit::cors::layer(&api.cors_origins) {
            routes = routes.layer(layer);
        }
        let api = (routes, paths);
        let description = "Write API: stock movements to Kafka, catalog and users to Postgres.";
        let server = base.serve(readiness, description, Some(api)).await?;
        Ok(Self {
            server,
            producer,
            stop_background,
        })
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
        self.stop_background.cancel();
        let producer = self.producer;
        tokio::task::spawn_blocking(move || producer.flush(std::time::Duration::from_secs(10)))
            .await??;
        tracing::info!("Stopped.");
        Ok(())
    }
}

/// `ingest create-admin --username NAME --password-file PATH`: the documented bootstrap
/// of the first admin. Creates the user unless one of that name exists (then changes
/// nothing), so running it again is harmless.
pub async fn create_admin(
    settings: Settings,
    username: &str,
    password_file: &std::path::Path,
) -> anyhow::Result<()> {
    let password = std::fs::read_to_string(password_file)
        .map_err(|error| anyhow::anyhow!("reading {}: {error}", password_file.display()))?
        .trim_end_matches(['\n', '\r'])
        .to_owned();
    let pool = service_kit::postgres::connect_and_migrate(&settings.database, "ingest").await?;
    match users::ensure_admin(&pool, username, password).await? {
        users::Bootstrap::Created => tracing::info!(%username, "Admin created."),
        users::Bootstrap::AlreadyThere => {
            tracing::info!(%username, "A user of that name exists; left unchanged.")
        }
    }
    Ok(())
}
