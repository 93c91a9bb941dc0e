//! The Prometheus registry of a service and the HTTP metrics every service exposes.
//!
//! Labels are bounded: route templates, methods and status codes, never ids or paths.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// A service's registry, passed explicitly to whatever registers metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    readiness: ReadinessMetrics,
}

/// What `/readyz` would answer, measured at every scrape: `bazaar_ready` (1 or 0) and
/// `bazaar_dependency_up{dependency}` (1 when the check answers `ok`).
#[derive(Clone, Debug)]
struct ReadinessMetrics {
    ready: IntGauge,
    dependency_up: IntGaugeVec,
}

#[derive(Clone, Debug)]
struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    /// A registry whose metrics carry the constant label `service`.
    pub fn new(service: &str) -> Result<Self, prometheus::Error> {
        let labels = [("service".to_owned(), service.to_owned())]
            .into_iter()
            .collect();
        let registry = Registry::new_custom(None, Some(labels))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let requests = IntCounterVec::new(
            Opts::new(
                "http_server_requests_total",
                "HTTP requests answered, by route, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_server_request_duration_seconds",
                "Time to answer an HTTP request.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route", "method"],
        )?;
        let readiness = ReadinessMetrics {
            ready: IntGauge::new(
                "bazaar_ready",
                "1 when the service is ready (what /readyz answers), 0 otherwise.",
            )?,
            dependency_up: IntGaugeVec::new(
                Opts::new(
                    "bazaar_dependency_up",
                    "1 when the dependency's readiness check answers ok, 0 when it is down or degraded.",
                ),
                &["dependency"],
            )?,
        };
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(readiness.ready.clone()))?;
        registry.register(Box::new(readiness.dependency_up.clone()))?;
        Ok(Self {
            registry,
            http: HttpMetrics { requests, duration },
            readiness,
        })
    }

    /// Records a readiness report: whether the service is ready, and each check's result.
    pub fn readiness(&self, ready: bool, checks: &serde_json::Map<String, serde_json::Value>) {
        self.readiness.ready.set(i64::from(ready));
        for (dependency, status) in checks {
            self.readiness
                .dependency_up
                .with_label_values(&[dependency.as_str()])
                .set(i64::from(status == "ok"));
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|error| format!("# metrics could not be encoded: {error}\n"))
    }
}

/// Axum middleware counting requests and timing them by route template.
pub async fn track_http(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    // Kept without copying: the matched route is shared, a standard method is a constant.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .http
        .duration
        .with_label_values(&[route, method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http
        .requests
        .with_label_values(&[route, method.as_str(), response.status().as_str()])
        .inc();
    response
}
