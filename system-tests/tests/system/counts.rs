//! Counts through the whole pipeline: the balance becomes what the shelf held as of the
//! count's time — a sale that occurred after it and was applied first stays applied on top,
//! a sale that occurred before it and arrives after it is superseded — and the variance is
//! recorded with the count and reported per count and as shrinkage.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::Pipeline;
use test_kit::SUPPLIER;

const STORE: i64 = 1;
const PRODUCT: i64 = 3;

fn movement(kind: &str, quantity: i64, minutes_ago: i64, extra: Value) -> Value {
    let mut body = json!({"movement_id": uuid::Uuid::new_v4(), "store_id": STORE,
        "product_id": PRODUCT, "kind": kind, "quantity": quantity,
        "occurred_at": Utc::now() - Duration::minutes(minutes_ago)});
    for (field, value) in extra.as_object().unwrap() {
        body[field] = value.clone();
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_holds_as_of_its_time_and_its_variance_is_reported() {
    let pipeline = Pipeline::start(true).await;
    let staff = pipeline.token(service_kit::auth::Role::Staff, &[STORE]);
    let send = |body: Value| {
        let (pipeline, staff) = (&pipeline, &staff);
        async move {
            pipeline
                .send(Method::POST, "/v1/movements?wait=5s", staff, body)
                .await
        }
    };
    let stock_in = json!({"unit_cost_paise": 100, "supplier_id": SUPPLIER});
    let (status, answer) = send(movement("stock_in", 10, 120, stock_in)).await;
    assert_eq!(answer["balance_after"], 10, "{status} {answer}");
    let (_, sold) = send(movement("sale", 3, 30, json!({"unit_price_paise": 150}))).await;
    assert_eq!(sold["balance_after"], 7, "{sold}");

    // Counted an hour ago, sent after the sale of half an hour ago: the shelf held 5 when
    // the book said 10 — 5 short — and the sale since stays applied on top.
    let stock_take = uuid::Uuid::new_v4();
    let (status, counted) = send(movement(
        "count",
        5,
        60,
        json!({"count_id": stock_take, "note": "evening count"}),
    ))
    .await;
    assert_eq!(
        (status, counted["balance_after"].as_i64()),
        (StatusCode::CREATED, Some(2)),
        "{counted}"
    );
    // Sold an hour and a half ago, synced now: the count saw the shelf after it.
    let (status, superseded) = send(movement("sale", 1, 90, json!({}))).await;
    assert_eq!(
        (status, superseded["code"].as_str()),
        (StatusCode::CONFLICT, Some("superseded_by_count")),
        "{superseded}"
    );
    // An empty shelf is a count too; a negative one is not.
    let (status, problem) = send(movement("count", -1, 0, json!({}))).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("quantity")),
        "{problem}"
    );

    let token = counted["consistency_token"].as_str().unwrap();
    let admin = pipeline.admin();
    let read = |path: String| {
        let (pipeline, admin) = (&pipeline, &admin);
        async move { pipeline.read(&path, admin).await }
    };
    let recorded = read(format!(
        "/v1/movements/{}?consistency_token={token}",
        counted["movement_id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        (
            recorded["stock_change"].as_i64(),
            recorded["count_id"].as_str()
        ),
        (Some(-5), Some(stock_take.to_string().as_str())),
        "the variance is recorded with the count: {recorded}"
    );
    let counts = read(format!(
        "/v1/stores/{STORE}/reports/counts?consistency_token={token}"
    ))
    .await;
    let row = &counts["rows"][0];
    let figure = |name: &str| row[name].as_i64();
    assert_eq!(
        (
            row["count_id"].as_str(),
            figure("products"),
            figure("products_with_variance"),
            figure("units_short"),
            figure("units_over"),
            figure("variance_value_paise"),
        ),
        (
            Some(stock_take.to_string().as_str()),
            Some(1),
            Some(1),
            Some(5),
            Some(0),
            Some(-500)
        ),
        "{counts}"
    );
    let shrinkage = read(format!(
        "/v1/stores/{STORE}/reports/shrinkage?consistency_token={token}"
    ))
    .await;
    let count_row = shrinkage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["reason"] == "count")
        .unwrap_or_else(|| panic!("no count row: {shrinkage}"));
    assert_eq!(
        (
            count_row["units_lost"].as_i64(),
            count_row["value_lost_paise"].as_i64()
        ),
        (Some(5), Some(500)),
        "{shrinkage}"
    );
    pipeline.stack.cleanup().await;
}
