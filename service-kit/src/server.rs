//! Serving a router on a bound listener until shutdown.

use std::future::Future;
use std::net::SocketAddr;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use crate::client::TrustedProxies;
use crate::health::Readiness;
use crate::metrics::{self, Metrics};
use crate::problem::ApiError;

/// An HTTP server bound to its address (port 0 picks a free port, as tests do).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    router: Router,
    readiness: Readiness,
    /// `/metrics` on an address of its own (`METRICS_LISTEN_ADDR`).
    metrics: Option<(TcpListener, Router)>,
}

/// A request that takes longer than `timeout` is dropped and answered `503 timeout` (with
/// `Retry-After`), so no client waits on a request forever and no handler holds its
/// resources past the deadline.
async fn deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable {
            code: "timeout",
            detail: format!("the request took longer than {} ms", timeout.as_millis()),
            retry_after: Duration::from_secs(1),
        }
        .into_response(),
    }
}

impl Server {
    /// Binds `addr` and wraps `router` with input hygiene, a deadline of `timeout` per
    /// request, the client's address (believing `proxies`), HTTP metrics and request
    /// tracing.
    pub async fn bind(
        addr: SocketAddr,
        router: Router,
        timeout: Duration,
        proxies: TrustedProxies,
        metrics: Metrics,
        readiness: Readiness,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let router = router
            .layer(axum::middleware::from_fn(
                crate::hygiene::refuse_control_characters,
            ))
            .layer(axum::middleware::from_fn_with_state(timeout, deadline))
            .layer(axum::middleware::from_fn_with_state(
                proxies,
                crate::client::identify,
            ))
            .layer(axum::middleware::from_fn_with_state(
                metrics,
                metrics::track_http,
            ))
            .layer(tower_http::trace::TraceLayer::new_for_http());
        Ok(Self {
            listener,
            router,
            readiness,
            metrics: None,
        })
    }

    /// Also serves `router` (the metrics) on `addr`, for as long as the API is served.
    pub async fn with_metrics_on(
        mut self,
        addr: SocketAddr,
        router: Router,
    ) -> std::io::Result<Self> {
        self.metrics = Some((TcpListener::bind(addr).await?, router));
        Ok(self)
    }

    /// Where the metrics are served when they have an address of their own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound port (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map_or(0, |address| address.port())
    }

    /// Serves until `shutdown` completes, then stops accepting, reports not-ready and
    /// lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let readiness = self.readiness.clone();
        let address = self.listener.local_addr()?;
        tracing::info!(%address, "Listening.");
        // Connect info gives the rate limiter the client address.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // Answers go out at once rather than waiting on Nagle's algorithm for the
        // client's delayed ACK: one response per request, latency is what counts.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "Could not set TCP_NODELAY on a connection.");
            }
        });
        let stopped = tokio_util::sync::CancellationToken::new();
        let metrics = self.metrics.map(|(listener, router)| {
            let stopped = stopped.clone();
            tracing::info!(address = ?listener.local_addr().ok(), "Serving /metrics.");
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopped.cancelled_owned())
                    .await
            })
        });
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                shutdown.await;
                readiness.start_draining();
            })
            .await;
        stopped.cancel();
        if let Some(metrics) = metrics {
            metrics.await.map_err(std::io::Error::other)??;
        }
        served
    }
}
