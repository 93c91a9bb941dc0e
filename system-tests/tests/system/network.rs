//! Stock across the network: per product and per category over every store the token may
//! see, from the committed balances, with the stores where a product is low or out.

use reqwest::StatusCode;
use serde_json::{Value, json};
use service_kit::auth::Role;
use system_tests::Pipeline;
use test_kit::{REORDER_POINT, SUPPLIER};

fn stock_in(store: i64, product: i64, quantity: i64, cost: i64) -> Value {
    json!({"movement_id": uuid::Uuid::new_v4(), "store_id": store, "product_id": product,
           "kind": "stock_in", "quantity": quantity, "unit_cost_paise": cost, "supplier_id": SUPPLIER,
           "occurred_at": chrono::Utc::now() - chrono::Duration::minutes(5)})
}

fn sale(store: i64, product: i64, quantity: i64) -> Value {
    json!({"movement_id": uuid::Uuid::new_v4(), "store_id": store, "product_id": product,
           "kind": "sale", "quantity": quantity, "unit_price_paise": 999,
           "occurred_at": chrono::Utc::now() - chrono::Duration::minutes(1)})
}

fn row(page: &Value, product: i64) -> &Value {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["product_id"] == product)
        .unwrap_or_else(|| panic!("product {product} missing: {page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_view_sums_every_store_in_scope_and_counts_where_a_product_is_low_or_out() {
    let pipeline = Pipeline::start(true).await;
    // Store 1 has a reorder point for every product (REORDER_POINT); store 2 has none.
    let lines = vec![
        stock_in(1, 1, 30, 100),
        stock_in(2, 1, 10, 130),
        stock_in(1, 2, REORDER_POINT, 50), // low in store 1
        stock_in(2, 2, 4, 60),
        sale(2, 2, 4), // out in store 2
        stock_in(2, 3, 7, 10),
    ];
    let response = pipeline
        .client
        .post(format!("{}/v1/movements/batch", pipeline.ingest))
        .bearer_auth(pipeline.admin())
        .json(&json!({ "movements": lines }))
        .send()
        .await
        .unwrap();
    let batch: Value = response.json().await.unwrap();
    assert_eq!(batch["refused"], 0, "{batch}");
    let token = batch["consistency_token"].as_str().unwrap();

    let analyst = pipeline.token(Role::Analyst, &[]);
    let page = pipeline
        .read(
            &format!("/v1/reports/network/products?consistency_token={token}"),
            &analyst,
        )
        .await;
    let one = row(&page, 1);
    assert_eq!(
        (one["units"].as_i64(), one["value_paise"].as_i64()),
        (Some(40), Some(30 * 100 + 10 * 130))
    );
    assert_eq!(
        (one["stores"].as_i64(), one["stores_in_stock"].as_i64()),
        (Some(2), Some(2))
    );
    let two = row(&page, 2);
    assert_eq!(two["units"], REORDER_POINT);
    assert_eq!(
        (two["stores_low"].as_i64(), two["stores_out"].as_i64()),
        (Some(1), Some(1))
    );
    // Product 4 never moved, but store 1 has settings for it: out there.
    let four = row(&page, 4);
    assert_eq!(
        (
            four["stores"].as_i64(),
            four["stores_out"].as_i64(),
            four["units"].as_i64()
        ),
        (Some(1), Some(1), Some(0))
    );

    let out = pipeline
        .read("/v1/reports/network/products?out_somewhere=true", &analyst)
        .await;
    let ids: Vec<i64> = out["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["product_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3, 4, 5], "{out}");
    let paged = pipeline
        .read("/v1/reports/network/products?limit=2", &analyst)
        .await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 2);
    assert!(paged["next_cursor"].is_string(), "{paged}");

    // By category: odd products are staples, even ones snacks.
    let categories = pipeline
        .read("/v1/reports/network/categories", &analyst)
        .await;
    assert_eq!(categories["stores"], 2);
    let staples = categories["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["category"] == "staples")
        .unwrap();
    assert_eq!(staples["value_paise"], 30 * 100 + 10 * 130 + 7 * 10);
    assert_eq!(staples["units"], 47);
    assert_eq!(
        categories["total_value_paise"],
        30 * 100 + 10 * 130 + REORDER_POINT * 50 + 7 * 10
    );

    // A manager of store 2 sees store 2 only.
    let manager = pipeline.token(Role::Manager, &[2]);
    let theirs = pipeline
        .read("/v1/reports/network/products", &manager)
        .await;
    let one = row(&theirs, 1);
    assert_eq!(
        (one["units"].as_i64(), one["stores"].as_i64()),
        (Some(10), Some(1))
    );
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["product_id"] != 4),
        "{theirs}"
    );

    // A POS may not read reports; a bad limit is a 400 naming it.
    let pos = pipeline.token(Role::Pos, &[1]);
    let (status, _, problem) = pipeline
        .get_from(&pipeline.query, "/v1/reports/network/categories", &pos, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, _, problem) = pipeline
        .get_from(
            &pipeline.query,
            "/v1/reports/network/products?limit=x",
            &analyst,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    pipeline.stack.cleanup().await;
}
