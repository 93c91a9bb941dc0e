//! `/healthz` (the process answers), `/readyz` (its dependencies answer, and it is not
//! shutting down) and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use serde_json::{Map, Value, json};

use crate::metrics::Metrics;

/// How long one dependency may take to answer a readiness probe.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Whether a failing dependency makes the service unready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    /// Reported as degraded; the service still works without it (a cache).
    Optional,
}

/// The dependencies a service needs to do its work.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Need, Check)>,
    draining: Arc<AtomicBool>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(name, _, _)| *name).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dependency without which the service cannot work: `check` answers `Ok`
    /// when it is usable.
    pub fn with_check<F>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        self.checks.push((name, Need::Required, Arc::new(check)));
        self
    }

    /// Adds a dependency the service works without (reported, never unready).
    pub fn with_optional_check<F>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        self.checks.push((name, Need::Optional, Arc::new(check)));
        self
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending traffic while
    /// in-flight work finishes.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Runs every check concurrently, each bounded in time.
    pub async fn report(&self) -> (bool, Map<String, Value>) {
        let results = join_all(self.checks.iter().map(|(name, need, check)| {
            let check = check.clone();
            async move {
                let result = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                };
                (*name, *need, result)
            }
        }))
        .await;
        let mut ready = !self.draining.load(Ordering::SeqCst);
        let mut checks = Map::new();
        for (name, need, result) in results {
            let status = match (result, need) {
                (Ok(()), _) => json!("ok"),
                (Err(problem), Need::Required) => {
                    ready = false;
                    json!(format!("down: {problem}"))
                }
                (Err(problem), Need::Optional) => json!(format!("degraded: {problem}")),
            };
            checks.insert(name.to_owned(), status);
        }
        if self.draining.load(Ordering::SeqCst) {
            checks.insert("shutdown".to_owned(), json!("draining"));
        }
        (ready, checks)
    }
}

#[derive(Clone)]
struct HealthState {
    service: &'static str,
    readiness: Readiness,
    metrics: Metrics,
}

/// The operational routes every service serves.
pub fn router(service: &'static str, readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(HealthState {
            service,
            readiness,
            metrics,
        })
}

async fn healthz(State(state): State<HealthState>) -> Response {
    axum::Json(
        json!({"status": "ok", "service": state.service, "version": env!("CARGO_PKG_VERSION")}),
    )
    .into_response()
}

async fn readyz(State(state): State<HealthState>) -> Response {
    let (ready, checks) = state.readiness.report().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "service": state.service,
        "checks": checks,
    });
    (status, axum::Json(body)).into_response()
}

async fn render_metrics(State(state): State<HealthState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
