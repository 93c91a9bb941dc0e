//! Selling prices per store: a store's manager sets them (not another store's, not staff);
//! a sale sent without a price is recorded at the price the processors hold when they
//! apply it, a price change reaches the next sale, a retry of a price-less sale stays a
//! duplicate after the price changed; reports show the stock at retail and the margin.

use reqwest::StatusCode;
use serde_json::{Value, json};
use service_kit::auth::Role;
use system_tests::Pipeline;
use test_kit::SUPPLIER;

/// Posts one movement and waits for its outcome; the answer.
async fn apply(pipeline: &Pipeline, movement: &Value) -> Value {
    let (status, body) = pipeline
        .send(
            reqwest::Method::POST,
            "/v1/movements?wait=5s",
            &pipeline.admin(),
            movement.clone(),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    body
}

fn sale(quantity: i64, price: Option<i64>) -> Value {
    let mut sale = json!({"movement_id": uuid::Uuid::new_v4(), "store_id": 1, "product_id": 1, "kind": "sale",
                          "quantity": quantity, "occurred_at": chrono::Utc::now() - chrono::Duration::minutes(1)});
    if let Some(price) = price {
        sale["unit_price_paise"] = json!(price);
    }
    sale
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_without_a_price_takes_the_stores_price_and_reports_show_retail_value_and_margin() {
    let pipeline = Pipeline::start(true).await;
    let patch = reqwest::Method::PATCH;

    // The manager of store 1 sets the price; store 2's manager and a staff member may not.
    let manager = pipeline.token(Role::Manager, &[1]);
    let (status, setting) = pipeline
        .send(
            patch.clone(),
            "/v1/store-products/1/1",
            &manager,
            json!({"selling_price_paise": 2_500}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{setting}");
    assert_eq!(setting["selling_price_paise"], 2_500);
    let other = pipeline.token(Role::Manager, &[2]);
    let (status, problem) = pipeline
        .send(
            patch.clone(),
            "/v1/store-products/1/1",
            &other,
            json!({"selling_price_paise": 1}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("store_forbidden"))
    );
    let staff = pipeline.token(Role::Staff, &[1]);
    let (status, problem) = pipeline
        .send(
            patch.clone(),
            "/v1/store-products/1/1",
            &staff,
            json!({"selling_price_paise": 1}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("role_forbidden"))
    );
    let (status, problem) = pipeline
        .send(
            patch.clone(),
            "/v1/store-products/1/1",
            &manager,
            json!({"selling_price_paise": -5}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "selling_price_paise");
    let (status, problem) = pipeline
        .send(
            reqwest::Method::DELETE,
            "/v1/store-products/1/1",
            &manager,
            Value::Null,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("role_forbidden")),
        "removing stays admin-only"
    );
    let (actor,): (String,) = sqlx::query_as(
        "SELECT actor FROM audit_log WHERE entity_type = 'store_product' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pipeline.stack.pool)
    .await
    .unwrap();
    assert_eq!(actor, "tester", "the manager's change is audited");

    apply(&pipeline, &json!({"movement_id": uuid::Uuid::new_v4(), "store_id": 1, "product_id": 1, "kind": "stock_in",
        "quantity": 20, "supplier_id": SUPPLIER, "unit_cost_paise": 1_000,
        "occurred_at": chrono::Utc::now() - chrono::Duration::minutes(5)})).await;
    let unpriced = sale(3, None);
    let outcome = apply(&pipeline, &unpriced).await;
    assert_eq!(outcome["status"], "applied", "{outcome}");
    let priced = apply(&pipeline, &sale(2, Some(3_000))).await;
    let token = priced["consistency_token"].as_str().unwrap().to_owned();
    let recorded = pipeline
        .read(
            &format!(
                "/v1/movements/{}?consistency_token={token}",
                unpriced["movement_id"].as_str().unwrap()
            ),
            &pipeline.admin(),
        )
        .await;
    assert_eq!(recorded["unit_price_paise"], 2_500, "{recorded}");
    let recorded = pipeline
        .read(
            &format!("/v1/movements/{}", priced["movement_id"].as_str().unwrap()),
            &pipeline.admin(),
        )
        .await;
    assert_eq!(recorded["unit_price_paise"], 3_000, "a price sent is kept");

    // A new price reaches the next sale; a retry of the first sale is still a duplicate.
    let (status, _) = pipeline
        .send(
            patch,
            "/v1/store-products/1/1",
            &manager,
            json!({"selling_price_paise": 2_600}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let later = apply(&pipeline, &sale(1, None)).await;
    let retry = apply(&pipeline, &unpriced).await;
    assert_eq!(retry["status"], "duplicate", "{retry}");
    let token = retry["consistency_token"].as_str().unwrap().to_owned();
    let recorded = pipeline
        .read(
            &format!(
                "/v1/movements/{}?consistency_token={token}",
                later["movement_id"].as_str().unwrap()
            ),
            &pipeline.admin(),
        )
        .await;
    assert_eq!(recorded["unit_price_paise"], 2_600);

    // 14 left at an average cost of 1,000 and a price of 2,600.
    let summary = pipeline
        .read(
            &format!("/v1/stores/1/reports/stock-summary?consistency_token={token}"),
            &manager,
        )
        .await;
    assert_eq!(summary["value_paise"], 14 * 1_000, "{summary}");
    assert_eq!(summary["retail_value_paise"], 14 * 2_600, "{summary}");
    let item = pipeline.read("/v1/stores/1/inventory/1", &manager).await;
    assert_eq!(
        (
            item["selling_price_paise"].as_i64(),
            item["retail_value_paise"].as_i64()
        ),
        (Some(2_600), Some(14 * 2_600))
    );
    let sales = pipeline
        .read(
            &format!("/v1/stores/1/reports/sales?consistency_token={token}"),
            &manager,
        )
        .await;
    let revenue = 3 * 2_500 + 2 * 3_000 + 2_600;
    assert_eq!(sales["totals"]["revenue_paise"], revenue, "{sales}");
    assert_eq!(
        sales["totals"]["margin_paise"],
        revenue - 6 * 1_000,
        "{sales}"
    );
    let network = pipeline
        .read("/v1/reports/network/products", &pipeline.admin())
        .await;
    let one = network["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["product_id"] == 1)
        .unwrap();
    assert_eq!(one["retail_value_paise"], 14 * 2_600);
    pipeline.stack.cleanup().await;
}
