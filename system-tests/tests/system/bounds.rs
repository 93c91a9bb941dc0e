//! Sums at the bounds of what ingest accepts: every report, rollup and order figure answers
//! the exact sum of legal values, however far past 64 bits — never a `500`, never a
//! saturated or wrapped figure, and the partition that carried them does not stall.

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::auth::Role;
use system_tests::Pipeline;
use test_kit::SUPPLIER;

/// The largest quantity and unit cost or price ingest accepts: one line is worth 10¹⁸.
const MOST: i64 = 1_000_000_000;
const PRODUCT: i64 = 1;

fn line(store: i64, kind: &str, price: Value) -> Value {
    let mut line = json!({"movement_id": uuid::Uuid::new_v4(), "store_id": store,
        "product_id": PRODUCT, "kind": kind, "quantity": MOST,
        "occurred_at": chrono::Utc::now() - chrono::Duration::minutes(5)});
    for (field, value) in price.as_object().unwrap() {
        line[field] = value.clone();
    }
    line
}

/// A JSON body read exactly: `serde_json::Value` holds integers past `u64` as floats.
async fn exact<T: for<'de> Deserialize<'de>>(pipeline: &Pipeline, path: &str, token: &str) -> T {
    let response = pipeline
        .client
        .get(format!("{}{path}", pipeline.query))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: {error}: {body}"))
}

#[derive(Debug, Deserialize)]
struct Stock {
    quantity: i64,
    value_paise: i128,
}

#[derive(Debug, Deserialize)]
struct Summary {
    units: i128,
    value_paise: i128,
}

#[derive(Debug, Deserialize)]
struct Valuation {
    total_value_paise: i128,
}

#[derive(Debug, Deserialize)]
struct SalesFigures {
    units_sold: i128,
    revenue_paise: i128,
    cost_of_goods_paise: i128,
    margin_paise: i128,
}

#[derive(Debug, Deserialize)]
struct Sales {
    totals: SalesFigures,
    rows: Vec<SalesFigures>,
}

#[derive(Debug, Deserialize)]
struct Sourcing {
    total_units_received: i128,
    total_cost_paise: i128,
}

#[derive(Debug, Deserialize)]
struct NetworkRow {
    units: i128,
    value_paise: i128,
}

#[derive(Debug, Deserialize)]
struct NetworkProducts {
    items: Vec<NetworkRow>,
}

#[derive(Debug, Deserialize)]
struct NetworkCategories {
    total_value_paise: i128,
}

#[derive(Debug, Deserialize)]
struct Order {
    ordered_cost_paise: i128,
}

#[derive(Debug, Deserialize)]
struct OpenOrder {
    outstanding_units: i128,
    outstanding_cost_paise: i128,
}

#[derive(Debug, Deserialize)]
struct OpenOrders {
    rows: Vec<OpenOrder>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_rollups_and_orders_sum_legal_values_exactly_past_64_bits() {
    let pipeline = Pipeline::start(true).await;
    let most = i128::from(MOST);
    // Twenty stock-ins of the most at the highest cost in each of two stores, then ten
    // sales of the most at the highest price in store 1: every figure passes i64::MAX
    // (≈ 9.2 × 10¹⁸), and a day's sales of one product do in a single batch.
    let cost = json!({"unit_cost_paise": MOST, "supplier_id": SUPPLIER});
    let mut lines: Vec<Value> = (0..20)
        .flat_map(|_| {
            [
                line(1, "stock_in", cost.clone()),
                line(2, "stock_in", cost.clone()),
            ]
        })
        .collect();
    lines.extend((0..10).map(|_| line(1, "sale", json!({"unit_price_paise": MOST}))));
    let (status, batch) = pipeline
        .send(
            reqwest::Method::POST,
            "/v1/movements/batch",
            &pipeline.admin(),
            json!({ "movements": lines }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(batch["refused"], 0, "{batch}");
    let consistent = format!(
        "consistency_token={}",
        batch["consistency_token"].as_str().unwrap()
    );
    let admin = pipeline.admin();

    // Every line applied (the batch's rollup write did not stall the partition): store 1
    // holds 10 × 10⁹ units at 10⁹ paise, 10¹⁹ paise.
    let item: Stock = exact(
        &pipeline,
        &format!("/v1/stores/1/inventory/{PRODUCT}?{consistent}"),
        &admin,
    )
    .await;
    assert_eq!(
        (item.quantity, item.value_paise),
        (10 * MOST, 10 * most * most)
    );
    let summary: Summary = exact(
        &pipeline,
        &format!("/v1/stores/1/reports/stock-summary?{consistent}"),
        &admin,
    )
    .await;
    assert_eq!(
        (summary.units, summary.value_paise),
        (10 * most, 10 * most * most)
    );
    for group in ["category", "product"] {
        let valuation: Valuation = exact(
            &pipeline,
            &format!("/v1/stores/1/reports/valuation?group_by={group}&{consistent}"),
            &admin,
        )
        .await;
        assert_eq!(valuation.total_value_paise, 10 * most * most, "{group}");
    }

    // The day's sales rollup and both groupings of the report.
    for group in ["day", "product"] {
        let sales: Sales = exact(
            &pipeline,
            &format!("/v1/stores/1/reports/sales?group_by={group}&{consistent}"),
            &admin,
        )
        .await;
        assert_eq!(sales.rows.len(), 1, "{group}");
        for figures in [&sales.totals, &sales.rows[0]] {
            assert_eq!(
                (
                    figures.units_sold,
                    figures.revenue_paise,
                    figures.cost_of_goods_paise,
                    figures.margin_paise
                ),
                (10 * most, 10 * most * most, 10 * most * most, 0),
                "{group}"
            );
        }
    }
    let sourcing: Sourcing = exact(
        &pipeline,
        &format!("/v1/stores/2/reports/suppliers?{consistent}"),
        &admin,
    )
    .await;
    assert_eq!(
        (sourcing.total_units_received, sourcing.total_cost_paise),
        (20 * most, 20 * most * most)
    );

    // Across the network: 10 + 20 × 10⁹ units, 3 × 10¹⁹ paise — for any reader's scope.
    let analyst = pipeline.token(Role::Analyst, &[]);
    let products: NetworkProducts = exact(
        &pipeline,
        &format!("/v1/reports/network/products?{consistent}"),
        &analyst,
    )
    .await;
    let row = &products.items[0];
    assert_eq!(
        (row.units, row.value_paise),
        (30 * most, 30 * most * most),
        "{products:?}"
    );
    let categories: NetworkCategories = exact(
        &pipeline,
        &format!("/v1/reports/network/categories?{consistent}"),
        &analyst,
    )
    .await;
    assert_eq!(categories.total_value_paise, 30 * most * most);

    // Two submitted orders of the most of every product at the highest cost: 5 × 10¹⁸
    // each, 10¹⁹ outstanding.
    let manager = pipeline.token(Role::Manager, &[1]);
    let lines: Vec<Value> = (1..=test_kit::PRODUCTS)
        .map(|product| json!({"product_id": product, "quantity": MOST, "unit_cost_paise": MOST}))
        .collect();
    for _ in 0..2 {
        let (status, created) = pipeline
            .send(
                reqwest::Method::POST,
                "/v1/purchase-orders",
                &manager,
                json!({"store_id": 1, "supplier_id": SUPPLIER, "lines": lines}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let order: Order = exact(
            &pipeline,
            &format!("/v1/purchase-orders/{}", created["id"]),
            &manager,
        )
        .await;
        assert_eq!(
            order.ordered_cost_paise,
            i128::from(test_kit::PRODUCTS) * most * most
        );
        let submit = format!("/v1/purchase-orders/{}/submit", created["id"]);
        let (status, submitted) = pipeline
            .send(reqwest::Method::POST, &submit, &manager, Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK, "{submitted}");
    }
    let open: OpenOrders = exact(
        &pipeline,
        "/v1/reports/open-purchase-orders?store_id=1",
        &manager,
    )
    .await;
    assert_eq!(
        (
            open.rows[0].outstanding_units,
            open.rows[0].outstanding_cost_paise
        ),
        (
            2 * i128::from(test_kit::PRODUCTS) * most,
            2 * i128::from(test_kit::PRODUCTS) * most * most
        )
    );
}
