//! `?wait=`: ingest answers with the processors' outcome — `201` applied with the new
//! balance, `409` rejected with the reason and the available quantity, `200` for a
//! duplicate with the original outcome — and `202` when the wait runs out. Ingest,
//! Kafka, the processors, Postgres and Redis all run for real.

mod common;

use std::time::Duration;

use common::{add_product, add_store, add_supplier, send, with_admin};
use reqwest::{Method, StatusCode};
use serde_json::json;
use service_kit::Service;
use service_kit::testing::TestStack;

async fn start_processor(stack: &TestStack) -> tokio::sync::oneshot::Sender<()> {
    let app = processors::App::build(stack.settings_for(Service::Processors))
        .await
        .unwrap();
    service_kit::testing::background(|stopped| app.run_until_stopped(stopped))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_the_answer_is_the_outcome_applied_rejected_or_duplicate() {
    let (stack, app, admin) = with_admin().await;
    let store = add_store(&stack, "WAIT-01").await;
    let product = add_product(&stack, "RICE-1KG").await;
    let supplier = add_supplier(&stack).await;
    // The catalog cache picks the rows up within its refresh interval.
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Without processors the wait runs out: 202, the movement is on the topic.
    let stock_in = json!({
        "store_id": store, "product_id": product, "kind": "stock_in", "quantity": 10,
        "supplier_id": supplier, "unit_cost_paise": 4_500,
    });
    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/movements?wait=300ms",
        Some(&admin),
        &stock_in,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "accepted");

    let _processor = start_processor(&stack).await;
    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/movements?wait=8s",
        Some(&admin),
        &stock_in,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "applied");
    // The first stock-in (waited out above) was applied too: 10 + 10.
    assert_eq!(body["balance_after"], 20);
    let applied_id = body["movement_id"].as_str().unwrap().to_owned();

    let sale = json!({
        "store_id": store, "product_id": product, "kind": "sale", "quantity": 25,
        "unit_price_paise": 6_000,
    });
    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/movements?wait=8s",
        Some(&admin),
        &sale,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "insufficient_stock");
    assert_eq!(body["available_quantity"], 20);
    assert_eq!(body["status"], 409);

    // The same movement again: a duplicate, answered with the original outcome.
    let mut again = stock_in.clone();
    again["movement_id"] = json!(applied_id);
    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/movements?wait=8s",
        Some(&admin),
        &again,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "duplicate");
    assert_eq!(body["original_status"], "applied");
    assert_eq!(body["balance_after"], 20);

    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/movements?wait=forever",
        Some(&admin),
        &stock_in,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "wait");
    let (status, _) = send(
        &app,
        Method::POST,
        "/v1/movements?wait=11s",
        Some(&admin),
        &stock_in,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
