//! What every service connects to at start-up, and how it serves.

use sqlx::PgPool;

use crate::health::{self, Readiness};
use crate::metrics::Metrics;
use crate::postgres;
use crate::redis::Redis;
use crate::server::Server;
use crate::settings::{ApiSettings, Settings};

/// The connections and registries every service starts with: the Postgres primary
/// (migrated), Redis (lazy; a cache the service works without), a metrics registry and
/// the readiness checks for both.
#[derive(Debug)]
pub struct Base {
    pub settings: Settings,
    pub pool: PgPool,
    pub redis: Redis,
    pub metrics: Metrics,
    pub readiness: Readiness,
}

impl Base {
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let service = settings.service.name();
        let pool = postgres::connect_and_migrate(&settings.database, service).await?;
        let redis = Redis::new(&settings.redis)?;
        let metrics = Metrics::new(service)?;
        let readiness = Readiness::new()
            .with_check("postgres", postgres::readiness_check(pool.clone()))
            .with_optional_check("redis", redis.readiness_check());
        Ok(Self {
            settings,
            pool,
            redis,
            metrics,
            readiness,
        })
    }
}

impl Base {
    /// The token keys (with the revocation list read, and followed from now on) and rate
    /// limiters of the API, from its settings.
    pub async fn auth_and_limits(
        &self,
        api: &ApiSettings,
    ) -> anyhow::Result<(
        std::sync::Arc<crate::auth::TokenKeys>,
        std::sync::Arc<crate::ratelimit::RateLimits>,
    )> {
        let keys = crate::auth::TokenKeys::from_settings(&api.auth)?;
        keys.revocations()
            .refresh(&self.pool, keys.longest_token_life())
            .await?;
        tokio::spawn(crate::auth::revocations::follow(
            std::sync::Arc::downgrade(&keys),
            self.pool.clone(),
        ));
        let limits = crate::ratelimit::RateLimits::new(
            api.rate_limits.per_subject,
            api.rate_limits.per_address,
            api.rate_limits.shared.then(|| self.redis.clone()),
            self.metrics.registry(),
        )?;
        // Budgets that are full again are forgotten every minute, so memory follows the
        // recent callers, not every address ever seen.
        let weak = std::sync::Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            every.tick().await;
            loop {
                every.tick().await;
                let Some(limits) = weak.upgrade() else {
                    return;
                };
                limits.forget_idle();
            }
        });
        Ok((keys, limits))
    }

    /// Binds the service's listen address and serves the operational routes (health,
    /// readiness with `readiness`, metrics, `/openapi.json`) there, beside `api`.
    ///
    /// `api` is the service's own router with the OpenAPI description of its routes.
    pub async fn serve(
        &self,
        readiness: Readiness,
        description: &str,
        api: Option<(axum::Router, utoipa::openapi::OpenApi)>,
    ) -> anyhow::Result<Server> {
        let service = self.settings.service.name();
        let (routes, paths) =
            api.map_or((None, None), |(routes, paths)| (Some(routes), Some(paths)));
        let document = health::openapi(service, description, paths);
        let separate_metrics = self.settings.metrics_listen_addr;
        let mut router = health::router(
            service,
            readiness.clone(),
            self.metrics.clone(),
            &document,
            separate_metrics.is_none(),
        );
        if let Some(routes) = routes {
            router = router.merge(routes);
        }
        let mut server = Server::bind(
            self.settings.listen_addr,
            router,
            self.settings.request_timeout,
            self.settings.trusted_proxies.clone(),
            self.metrics.clone(),
            readiness.clone(),
        )
        .await?;
        if let Some(address) = separate_metrics {
            let metrics = health::metrics_router(service, readiness, self.metrics.clone());
            server = server.with_metrics_on(address, metrics).await?;
        }
        Ok(server)
    }
}
