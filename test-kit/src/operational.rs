//! The operational routes every service serves, and the operational tests every service
//! binary must pass.

use std::time::Duration;

/// Checks the operational routes of a running service: `/healthz` 200, `/readyz` 200
/// with every dependency ok, `/metrics` in Prometheus text format.
pub async fn assert_operational(port: u16, service: &str) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|error| panic!("HTTP client: {error}"));
    let base = format!("http://127.0.0.1:{port}");

    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz: {e}"));
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health
        .json()
        .await
        .unwrap_or_else(|e| panic!("/healthz body: {e}"));
    assert_eq!(body["service"], service);

    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/readyz: {e}"));
    let status = ready.status();
    let body: serde_json::Value = ready
        .json()
        .await
        .unwrap_or_else(|e| panic!("/readyz body: {e}"));
    assert_eq!(status, 200, "/readyz: {body}");
    for (dependency, state) in body["checks"].as_object().into_iter().flatten() {
        assert_eq!(state, "ok", "{dependency} is not ok: {body}");
    }

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    assert_eq!(metrics.status(), 200);
    let text = metrics
        .text()
        .await
        .unwrap_or_else(|e| panic!("/metrics body: {e}"));
    assert!(text.contains("http_server_requests_total"), "{text}");
    assert!(text.contains(&format!("service=\"{service}\"")), "{text}");

    let api = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/openapi.json: {e}"));
    assert_eq!(api.status(), 200);
    let api: serde_json::Value = api
        .json()
        .await
        .unwrap_or_else(|e| panic!("/openapi.json body: {e}"));
    assert_eq!(api["info"]["title"], format!("Bazaar {service}"));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            api["paths"][path]["get"].is_object(),
            "{path} is documented: {api}"
        );
    }
}

/// Runs a service in the background until the returned sender is used or dropped:
/// `let stop = background(|stopped| app.run_until_stopped(stopped));`
pub fn background<F, Fut>(run: F) -> tokio::sync::oneshot::Sender<()>
where
    F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(Box::pin(async move {
        let _ = stopped.await;
    })));
    stop
}

/// The operational tests every service binary must pass, against the real stack:
/// in-process on port 0 it serves health, readiness and metrics and stops when asked;
/// as a process it stops cleanly on SIGTERM.
#[macro_export]
macro_rules! operational_tests {
    ($app:ty, $service:expr, $settings:ident, $binary:expr) => {
        #[tokio::test]
        async fn serves_health_readiness_and_metrics_and_stops_when_asked() {
            let stack = $crate::TestStack::start().await;
            let app = <$app>::build(stack.$settings()).await.unwrap();
            let port = app.port();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(app.run_until_stopped(async move {
                let _ = stopped.await;
            }));
            $crate::assert_operational(port, $service.name()).await;
            stop.send(()).unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(30), server)
                .await
                .expect("the service stops within 30 s")
                .unwrap()
                .unwrap();
            assert!(
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_err(),
                "the port is released after shutdown"
            );
        }

        #[test]
        fn the_binary_is_production_unless_told_and_has_no_signing_key_of_its_own() {
            let key = ("JWT_SECRET", "a-test-only-secret-of-at-least-32-bytes");
            let production = $crate::refused_start($binary, &[key]);
            assert!(
                production.contains("production") && production.contains("DATABASE_URL"),
                "{production}"
            );
            if $service != ::service_kit::Service::Processors {
                let keyless = $crate::refused_start($binary, &[("BAZAAR_ENV", "development")]);
                assert!(keyless.contains("JWT_SECRET"), "{keyless}");
            }
        }

        #[tokio::test]
        async fn the_binary_exits_cleanly_on_sigterm() {
            let stack = $crate::TestStack::start().await;
            let child = $crate::ChildService::start($binary, &stack);
            $crate::assert_operational(child.port, $service.name()).await;
            let status = child.terminate();
            assert!(status.success(), "exit status after SIGTERM: {status}");
        }
    };
}
