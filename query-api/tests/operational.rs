//! `query-api` starts against the real stack, serves /healthz, /readyz and /metrics, and shuts
//! down gracefully.

use service_kit::Service;

test_kit::operational_tests!(
    query_api::App,
    Service::QueryApi,
    query_api_settings,
    env!("CARGO_BIN_EXE_query-api")
);

/// `METRICS_LISTEN_ADDR`: the scrape target moves to an address of its own (an internal
/// network), and the API's address no longer answers `/metrics`.
#[tokio::test]
async fn metrics_can_be_served_on_an_address_of_their_own() {
    let stack = test_kit::TestStack::start().await;
    let mut settings = stack.query_api_settings();
    // A port the system just handed out and took back: free now.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap();
    settings.shared.metrics_listen_addr = Some(free);
    let app = query_api::App::build(settings).await.unwrap();
    let api = format!("http://127.0.0.1:{}", app.port());
    let _stop = test_kit::background(|stopped| app.run_until_stopped(stopped));

    let metrics = reqwest::get(format!("http://{free}/metrics"))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("bazaar_dependency_up"), "{text}");
    let on_the_api = reqwest::get(format!("{api}/metrics")).await.unwrap();
    assert_eq!(on_the_api.status(), 404);
    let health = reqwest::get(format!("{api}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}
