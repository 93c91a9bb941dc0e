//! The web dashboard in a real browser: the Playwright suite of `dashboard/` (Debian's
//! Chromium, at a desktop's and a phone's size) against this pipeline — query-api serving
//! the build under `/app/`, ingest allowing its origin — with a manager, a staff user and
//! an admin who sign in by password. Each browser test saves a screenshot in
//! `dashboard/screenshots/` (git-ignored).

use std::path::PathBuf;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;
use service_kit::auth::Role;
use system_tests::Pipeline;

const STORE: i64 = 1;
const PASSWORD: &str = "a-dashboard-test-password";

fn dashboard_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboard")
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_browser_at_desktop_and_phone_sizes() {
    let dir = dashboard_dir();
    let dist = dir.join("dist");
    assert!(
        dist.join("index.html").exists() && dir.join("node_modules/.bin/playwright").exists(),
        "the dashboard is not built: run `make dashboard` (it installs its npm packages and Chromium)"
    );
    let mut pipeline = Pipeline::start(true).await;
    let query_address = format!("127.0.0.1:{}", free_port());
    let query_origin = format!("http://{query_address}");
    let ingest = pipeline
        .another_ingest(&[("CORS_ALLOWED_ORIGINS", &query_origin)])
        .await;
    let query = pipeline
        .another_query_api(&[
            ("QUERY_API_LISTEN_ADDR", &query_address),
            ("QUERY_DASHBOARD_DIR", dist.to_str().unwrap()),
            ("QUERY_DASHBOARD_INGEST_URL", &ingest),
        ])
        .await;
    assert_eq!(query, query_origin);
    let admin = pipeline.admin();
    for (username, role, stores) in [
        ("dash-manager", "manager", vec![STORE]),
        ("dash-staff", "staff", vec![STORE]),
        ("dash-admin", "admin", vec![]),
    ] {
        let (status, body) = pipeline
            .send(
                Method::POST,
                "/v1/users",
                &admin,
                json!({"username": username, "password": PASSWORD, "role": role, "stores": stores}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // A supplier's price, for reorder suggestions and purchase orders.
    for product in 1..=test_kit::PRODUCTS {
        let (status, body) = pipeline
            .send(
                Method::POST,
                "/v1/supplier-prices",
                &admin,
                json!({"store_id": STORE, "supplier_id": test_kit::SUPPLIER, "product_id": product, "unit_cost_paise": 2_000}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let other_store = pipeline.read("/v1/stores/2", &admin).await;
    let till = pipeline.token(Role::Manager, &[STORE]);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(dir.join("node_modules/.bin/playwright"))
            .arg("test")
            .current_dir(&dir)
            .env("DASHBOARD_URL", &query)
            .env("INGEST_URL", &ingest)
            .env("DASHBOARD_MANAGER", "dash-manager")
            .env("DASHBOARD_STAFF", "dash-staff")
            .env("DASHBOARD_ADMIN", "dash-admin")
            .env("DASHBOARD_PASSWORD", PASSWORD)
            .env("DASHBOARD_STORE", STORE.to_string())
            .env("OTHER_STORE", "2")
            .env("OTHER_STORE_NAME", other_store["name"].as_str().unwrap())
            .env("TILL_TOKEN", till)
            .output()
            .expect("running playwright")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser tests failed\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    pipeline.stack.cleanup().await;
}
