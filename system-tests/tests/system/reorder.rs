//! Reorder suggestions: what is below its reorder point, less what is already on order, and
//! a draft order made from them in one call.

use chrono::Utc;
use reqwest::StatusCode;
use schemas::MovementKind;
use serde_json::{Value, json};
use service_kit::auth::Role;
use system_tests::Pipeline;

use super::purchase_orders::{code, expect, price_products, stock_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorder_suggestions_count_what_is_on_order_and_become_a_draft_in_one_call() {
    let pipeline = Pipeline::start(true).await;
    price_products(&pipeline).await;
    let manager = pipeline.token(Role::Manager, &[1]);
    sqlx::query(
        "UPDATE store_products SET reorder_quantity = 24 WHERE store_id = 1 AND product_id = 1",
    )
    .execute(&pipeline.stack.pool)
    .await
    .unwrap();
    // Product 2: 60 in, 56 sold today — 2 a day over 28 days, 4 left.
    let mut sold = stock_in(2, 60, 2_000);
    sold.occurred_at = Utc::now() - chrono::Duration::minutes(20);
    let mut sale = stock_in(2, 56, 0);
    sale.kind = MovementKind::Sale;
    (
        sale.supplier_id,
        sale.unit_cost_paise,
        sale.unit_price_paise,
    ) = (None, None, Some(3_000));
    let token = pipeline.post(&[sold, sale]).await;
    pipeline
        .read(
            &format!("/v1/stores/1/inventory/2?consistency_token={token}"),
            &manager,
        )
        .await;

    let suggestions = pipeline
        .read("/v1/stores/1/reorder-suggestions?supplier_id=1", &manager)
        .await;
    let found: Vec<(i64, i64, &str, i64)> = suggestions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["product_id"].as_i64().unwrap(),
                item["suggested_quantity"].as_i64().unwrap(),
                item["basis"].as_str().unwrap(),
                item["unit_cost_paise"].as_i64().unwrap(),
            )
        })
        .collect();
    // 1: nothing on hand, in multiples of 24; 2: 14 days at 2 a day above the point of 10,
    // less the 4 on hand; 3: no sales, one above the point. 4 and 5 have no price.
    assert_eq!(
        found,
        [
            (1, 24, "reorder_quantity", 1_000),
            (2, 10 + 28 - 4, "sales_velocity", 2_000),
            (3, 11, "sales_velocity", 3_000)
        ],
        "{suggestions}"
    );

    let staff = pipeline.token(Role::Staff, &[1]);
    let request = json!({"store_id": 1, "supplier_id": 1});
    let problem = expect(
        &pipeline,
        "/v1/purchase-orders/from-suggestions",
        &staff,
        request.clone(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&problem), Some("role_forbidden"));
    let draft = expect(
        &pipeline,
        "/v1/purchase-orders/from-suggestions",
        &manager,
        request.clone(),
        StatusCode::CREATED,
    )
    .await;
    let lines: Vec<(i64, i64)> = draft["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (
                line["product_id"].as_i64().unwrap(),
                line["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, [(1, 24), (2, 34), (3, 11)]);
    assert_eq!(draft["state"], "draft");

    // On order now: nothing more to suggest.
    let after = pipeline
        .read("/v1/stores/1/reorder-suggestions?supplier_id=1", &manager)
        .await;
    assert_eq!(after["items"], json!([]), "{after}");
    let problem = expect(
        &pipeline,
        "/v1/purchase-orders/from-suggestions",
        &manager,
        request,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "nothing_to_reorder");

    // The open-order report counts the draft, and its units once submitted.
    let id = draft["id"].as_i64().unwrap();
    let analyst = pipeline.token(Role::Analyst, &[]);
    let report = pipeline
        .read("/v1/reports/open-purchase-orders", &analyst)
        .await;
    assert_eq!(report["rows"][0]["drafts"], 1, "{report}");
    assert_eq!(report["rows"][0]["outstanding_units"], 0);
    expect(
        &pipeline,
        &format!("/v1/purchase-orders/{id}/submit"),
        &manager,
        Value::Null,
        StatusCode::OK,
    )
    .await;
    let report = pipeline
        .read("/v1/reports/open-purchase-orders?store_id=1", &manager)
        .await;
    let row = &report["rows"][0];
    assert_eq!(
        (row["store_id"].as_i64(), row["supplier_id"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(row["submitted"], 1);
    assert_eq!(row["outstanding_units"], 24 + 34 + 11);
    assert_eq!(
        row["outstanding_cost_paise"],
        24 * 1_000 + 34 * 2_000 + 11 * 3_000
    );
    let (status, _, problem) = pipeline
        .get_from(
            &pipeline.query,
            "/v1/stores/1/reorder-suggestions?window_days=0",
            &manager,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["errors"][0]["field"], "window_days");
}
