//! `/healthz` (the process answers), `/readyz` (its dependencies answer, and it is not
//! shutting down) and `/metrics` (which runs the readiness checks too, for `bazaar_ready`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::{OpenApi, ToSchema};

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
    openapi: Arc<String>,
}

/// The process answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(example = "ingest")]
    pub service: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// Whether the service can do its work, and the state of each dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessReport {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    #[schema(example = "ingest")]
    pub service: &'static str,
    /// Per dependency: `ok`, `down: <reason>` (makes the service unready) or
    /// `degraded: <reason>` (an optional dependency such as the Redis cache).
    #[schema(value_type = std::collections::HashMap<String, String>,
             example = json!({"postgres": "ok", "redis": "ok", "kafka": "ok"}))]
    pub checks: Map<String, Value>,
}

/// The operational routes, documented once for every service.
#[derive(OpenApi)]
#[openapi(
    paths(healthz, readyz, render_metrics),
    components(schemas(Health, ReadinessReport)),
    tags((name = "operations", description = "Health, readiness and metrics"))
)]
struct OperationalApi;

/// The OpenAPI document of a service: its own routes merged with the operational ones.
pub fn openapi(
    service: &str,
    description: &str,
    routes: Option<utoipa::openapi::OpenApi>,
) -> utoipa::openapi::OpenApi {
    let mut api = OperationalApi::openapi();
    if let Some(routes) = routes {
        api.merge(routes);
    }
    api.info.title = format!("Bazaar {service}");
    api.info.description = Some(description.to_owned());
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    declare_common_refusals(&mut api);
    api
}

/// The refusals every route of a kind may give, declared on each operation that does not
/// declare that status itself: `400 control_character` on every route (`hygiene`);
/// `413` on every route that takes a body and `503` on every route (the deadline, `server`);
/// `401` and `403` on every route that takes a token; `429` on every `/v1` route (the rate
/// limits). Schemathesis-style fuzzing then finds no answer the document does not name.
fn declare_common_refusals(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let has_problem = api
        .components
        .as_ref()
        .is_some_and(|components| components.schemas.contains_key("Problem"));
    if !has_problem {
        return;
    }
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    let control = problem(
        "A text field, query parameter or path segment holds a control character \
         (`control_character`, naming it)",
    );
    let unauthenticated = problem(
        "No bearer token, or one that is malformed, expired, revoked or not ours \
         (`missing_token`, `invalid_token`, `token_expired`, `token_revoked`)",
    );
    let forbidden = problem("The token's role or stores do not allow this");
    let limited =
        problem("Too many requests for this token or address (`rate_limited`); see Retry-After");
    let too_large = problem(
        "The body is larger than the route takes (`payload_too_large`): 1 MiB for a batch, \
         64 KiB otherwise",
    );
    let timed_out = problem(
        "A dependency is unavailable, or the request took longer than HTTP_REQUEST_TIMEOUT_MS \
         (`timeout`); see Retry-After",
    );
    let headers_too_large =
        problem("The header fields take more than 16 KiB in all (`headers_too_large`)");
    let api_security = api.security.clone().unwrap_or_default();
    for (path, item) in &mut api.paths.paths {
        let limited_route = path.starts_with("/v1/");
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let secured = !operation
                .security
                .as_ref()
                .unwrap_or(&api_security)
                .is_empty();
            let responses = &mut operation.responses.responses;
            let mut declare = |status: &str, response: &utoipa::openapi::Response| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| response.clone().into());
            };
            declare("400", &control);
            declare("431", &headers_too_large);
            declare("503", &timed_out);
            if operation.request_body.is_some() {
                declare("413", &too_large);
            }
            if secured {
                declare("401", &unauthenticated);
                declare("403", &forbidden);
            }
            if limited_route {
                declare("429", &limited);
            }
        }
    }
}

/// The operational routes every service serves, and `/openapi.json` with `api`;
/// `/metrics` too unless `with_metrics` is false (served on an address of its own, by
/// [`metrics_router`]).
pub fn router(
    service: &'static str,
    readiness: Readiness,
    metrics: Metrics,
    api: &utoipa::openapi::OpenApi,
    with_metrics: bool,
) -> Router {
    let openapi = Arc::new(api.to_pretty_json().unwrap_or_else(|error| {
        tracing::error!(%error, "The OpenAPI document does not serialise.");
        "{}".to_owned()
    }));
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(render_openapi));
    if with_metrics {
        router = router.route("/metrics", get(render_metrics));
    }
    router.with_state(HealthState {
        service,
        readiness,
        metrics,
        openapi,
    })
}

/// `/metrics` alone, for `METRICS_LISTEN_ADDR`.
pub fn metrics_router(service: &'static str, readiness: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(HealthState {
            service,
            readiness,
            metrics,
            openapi: Arc::new(String::new()),
        })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)))]
async fn healthz(State(state): State<HealthState>) -> Response {
    axum::Json(Health {
        status: "ok",
        service: state.service,
        version: env!("CARGO_PKG_VERSION"),
    })
    .into_response()
}

/// Readiness: every required dependency answers and the service is not shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = ReadinessReport),
        (status = 503, description = "A required dependency is down, or the service is shutting down", body = ReadinessReport),
    ))]
async fn readyz(State(state): State<HealthState>) -> Response {
    let (ready, checks) = state.readiness.report().await;
    state.metrics.readiness(ready, &checks);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let report = ReadinessReport {
        status: if ready { "ready" } else { "not_ready" },
        service: state.service,
        checks,
    };
    (status, axum::Json(report)).into_response()
}

/// Metrics in Prometheus' text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
async fn render_metrics(State(state): State<HealthState>) -> Response {
    // Readiness as of this scrape, for alerts on a service that lost a dependency.
    let (ready, checks) = state.readiness.report().await;
    state.metrics.readiness(ready, &checks);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn render_openapi(State(state): State<HealthState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_str().to_owned(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn an_optional_dependency_degrades_without_making_the_service_unready() {
        let readiness = Readiness::new()
            .with_check("postgres", || async { Ok(()) }.boxed())
            .with_optional_check("redis", || {
                async { Err("connection refused".to_owned()) }.boxed()
            });
        let (ready, checks) = readiness.report().await;
        assert!(ready);
        assert_eq!(checks["redis"], "degraded: connection refused");
    }

    #[tokio::test]
    async fn a_required_dependency_down_or_draining_makes_the_service_unready() {
        let readiness =
            Readiness::new().with_check("kafka", || async { Err("timed out".to_owned()) }.boxed());
        let (ready, checks) = readiness.report().await;
        assert!(!ready);
        assert_eq!(checks["kafka"], "down: timed out");

        let healthy = Readiness::new().with_check("postgres", || async { Ok(()) }.boxed());
        assert!(healthy.report().await.0);
        healthy.start_draining();
        let (ready, checks) = healthy.report().await;
        assert!(!ready);
        assert_eq!(checks["shutdown"], "draining");
    }

    #[test]
    fn the_openapi_document_lists_the_operational_routes() {
        let api = openapi("ingest", "test", None);
        let paths: Vec<&String> = api.paths.paths.keys().collect();
        assert_eq!(paths, ["/healthz", "/metrics", "/readyz"]);
        assert_eq!(api.info.title, "Bazaar ingest");
    }
}
