//! Purchase orders end to end: drafted, edited, submitted, approved and received through
//! the real pipeline (stock and moving-average cost as the model says; a receipt sent again
//! changes nothing); a receipt whose stock-ins never reached the broker is published by
//! ingest. Every role × transition: `order_roles`; reorder suggestions: `reorder`.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use reqwest::StatusCode;
use schemas::{MovementKind, ProductId, StockMovement, StoreId, SupplierId};
use serde_json::{Value, json};
use service_kit::auth::Role;
use system_tests::Pipeline;
use test_kit::{Model, SUPPLIER};
use uuid::Uuid;

/// Supplier 1's current price for products 1 to 3 in store 1: 1,000 paise per product id.
pub(super) async fn price_products(pipeline: &Pipeline) {
    sqlx::query(
        "INSERT INTO supplier_prices (store_id, supplier_id, product_id, unit_cost_paise, effective_from)
         SELECT 1, 1, id, id * 1000, current_date - 1 FROM products WHERE id <= 3",
    )
    .execute(&pipeline.stack.pool)
    .await
    .unwrap();
}

pub(super) fn stock_in(product: i64, quantity: i64, cost: i64) -> StockMovement {
    StockMovement {
        received_at: Utc::now(),
        supplier_id: Some(SupplierId(SUPPLIER)),
        unit_cost_paise: Some(cost),
        ..StockMovement::new(
            Uuid::new_v4(),
            StoreId(1),
            ProductId(product),
            format!("SKU-{product}"),
            MovementKind::StockIn,
            quantity,
            Utc::now() - chrono::Duration::minutes(10),
            "tester",
        )
    }
}

/// `POST` to ingest, asserting `expected`; the answer.
pub(super) async fn expect(
    pipeline: &Pipeline,
    path: &str,
    token: &str,
    body: Value,
    expected: StatusCode,
) -> Value {
    let (status, answer) = pipeline.send(Method::POST, path, token, body).await;
    assert_eq!(status, expected, "POST {path}: {answer}");
    answer
}

pub(super) fn code(answer: &Value) -> Option<&str> {
    answer["code"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_goes_from_draft_to_received_through_the_pipeline_and_a_receipt_sent_again_changes_nothing()
 {
    let pipeline = Pipeline::start(true).await;
    price_products(&pipeline).await;
    let (admin, manager, staff) = (
        pipeline.admin(),
        pipeline.token(Role::Manager, &[1]),
        pipeline.token(Role::Staff, &[1]),
    );
    let earlier = stock_in(1, 5, 800);
    pipeline.post(std::slice::from_ref(&earlier)).await;

    // A line without a cost takes the supplier's price; none there is a 422 for that line.
    let problem = expect(
        &pipeline,
        "/v1/purchase-orders",
        &manager,
        json!({"store_id": 1, "supplier_id": 1, "lines": [
            {"product_id": 1, "quantity": 20}, {"product_id": 4, "quantity": 1}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        problem["errors"][0]["field"], "lines[1].unit_cost_paise",
        "{problem}"
    );
    assert_eq!(problem["errors"][0]["code"], "no_supplier_price");
    let problem = expect(
        &pipeline,
        "/v1/purchase-orders",
        &manager,
        json!({"store_id": 1, "supplier_id": 1, "lines": [
            {"product_id": 1, "quantity": 0}, {"product_id": 1, "quantity": 2}]}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["lines[0].quantity", "lines[1].product_id"]);
    let draft = expect(
        &pipeline,
        "/v1/purchase-orders",
        &manager,
        json!({"store_id": 1, "supplier_id": 1, "note": "Diwali stock", "lines": [
            {"product_id": 1, "quantity": 20},
            {"product_id": 2, "quantity": 10, "unit_cost_paise": 1_900}]}),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(draft["state"], "draft");
    assert_eq!(
        draft["lines"][0]["unit_cost_paise"], 1_000,
        "the supplier's price"
    );
    assert_eq!(draft["ordered_cost_paise"], 20 * 1_000 + 10 * 1_900);
    let id = draft["id"].as_i64().unwrap();
    let order = format!("/v1/purchase-orders/{id}");

    let (status, edited) = pipeline
        .send(
            Method::PATCH,
            &order,
            &manager,
            json!({"lines": [{"product_id": 1, "quantity": 30},
                             {"product_id": 2, "quantity": 10, "unit_cost_paise": 1_900}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["lines"][0]["quantity"], 30);
    let receipt_too_early = json!({"receipt_id": Uuid::new_v4()});
    let problem = expect(
        &pipeline,
        &format!("{order}/receipts"),
        &staff,
        receipt_too_early,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&problem), Some("invalid_transition"));
    expect(
        &pipeline,
        &format!("{order}/submit"),
        &manager,
        Value::Null,
        StatusCode::OK,
    )
    .await;
    let (status, problem) = pipeline
        .send(Method::PATCH, &order, &manager, json!({"note": "more"}))
        .await;
    assert_eq!(
        (status, code(&problem)),
        (StatusCode::CONFLICT, Some("invalid_transition")),
        "a submitted order is not edited"
    );
    let approved = expect(
        &pipeline,
        &format!("{order}/approve"),
        &admin,
        Value::Null,
        StatusCode::OK,
    )
    .await;
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["decided_by"], "tester");

    // Part of product 1 arrives; the same receipt again is answered as recorded.
    let first = json!({"receipt_id": Uuid::new_v4(), "lines": [{"product_id": 1, "quantity": 12}]});
    let received = expect(
        &pipeline,
        &format!("{order}/receipts"),
        &staff,
        first.clone(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(received["purchase_order"]["state"], "partially_received");
    assert_eq!(received["receipt"]["published"], true, "{received}");
    assert_eq!(
        received["purchase_order"]["lines"][0]["received_quantity"],
        12
    );
    let again = expect(
        &pipeline,
        &format!("{order}/receipts"),
        &staff,
        first.clone(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["purchase_order"]["lines"][0]["received_quantity"], 12);
    assert_eq!(again["receipt"], received["receipt"]);
    let mut changed = first.clone();
    changed["lines"][0]["quantity"] = json!(13);
    let problem = expect(
        &pipeline,
        &format!("{order}/receipts"),
        &staff,
        changed,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&problem), Some("receipt_id_reused"));
    let problem = expect(
        &pipeline,
        &format!("{order}/receipts"),
        &staff,
        json!({"receipt_id": Uuid::new_v4(), "lines": [{"product_id": 4, "quantity": 1}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "not_on_order", "{problem}");

    // The rest arrives, more of product 2 than ordered: received, closed — sent twice at
    // once, it is recorded once.
    let rest = json!({"receipt_id": Uuid::new_v4(), "lines": [
        {"product_id": 1, "quantity": 18}, {"product_id": 2, "quantity": 11}]});
    let receipts = format!("{order}/receipts");
    let (one, two) = tokio::join!(
        pipeline.send(Method::POST, &receipts, &manager, rest.clone()),
        pipeline.send(Method::POST, &receipts, &manager, rest.clone()),
    );
    let mut statuses = [one.0, two.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CREATED],
        "{} {}",
        one.1,
        two.1
    );
    let done = one.1;
    assert_eq!(done["purchase_order"]["state"], "received", "{done}");
    assert!(done["purchase_order"]["closed_at"].is_string());
    let again = expect(
        &pipeline,
        &format!("{order}/receipts"),
        &manager,
        rest.clone(),
        StatusCode::OK,
    )
    .await;
    let problem = expect(
        &pipeline,
        &format!("{order}/receipts"),
        &manager,
        json!({"receipt_id": Uuid::new_v4(), "lines": [{"product_id": 1, "quantity": 1}]}),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&problem), Some("invalid_transition"));

    // Stock and moving-average cost as the model says: earlier stock, then each receipt
    // line as a stock-in at the order's cost — once, however often it was sent.
    let mut movements = vec![earlier];
    for (product, quantity, cost) in [(1, 12, 1_000), (1, 18, 1_000), (2, 11, 1_900)] {
        movements.push(stock_in(product, quantity, cost));
    }
    let model = Model::of(&movements);
    let token = again["consistency_token"].as_str().unwrap();
    for ((store, product), (quantity, average)) in &model.balances {
        let item = pipeline
            .read(
                &format!("/v1/stores/{store}/inventory/{product}?consistency_token={token}"),
                &manager,
            )
            .await;
        assert_eq!(item["quantity"].as_i64(), Some(*quantity), "{item}");
        assert_eq!(item["average_unit_cost_paise"].as_i64(), *average, "{item}");
    }
    let ledger: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM movements WHERE reference = $1 GROUP BY status ORDER BY status",
    )
    .bind(format!("PO-{id}"))
    .fetch_all(&pipeline.stack.pool)
    .await
    .unwrap();
    assert_eq!(
        ledger,
        [("applied".to_owned(), 3), ("duplicate".to_owned(), 5)],
        "each receipt line applied once; the receipts sent again are duplicates"
    );

    // Read back, listed, scoped and audited.
    let read = pipeline.read(&order, &staff).await;
    assert_eq!(read["state"], "received");
    assert_eq!(read["receipts"].as_array().unwrap().len(), 2);
    assert_eq!(read["received_cost_paise"], 30 * 1_000 + 11 * 1_900);
    let listed = pipeline
        .read(
            "/v1/purchase-orders?store_id=1&state=received&supplier_id=1",
            &admin,
        )
        .await;
    assert_eq!(listed["items"][0]["id"], id);
    let none = pipeline.read("/v1/purchase-orders?open=true", &admin).await;
    assert_eq!(none["items"], json!([]));
    let other = pipeline.token(Role::Manager, &[2]);
    assert_eq!(
        pipeline.read("/v1/purchase-orders", &other).await["items"],
        json!([])
    );
    let (status, _, problem) = pipeline
        .get_from(&pipeline.query, &order, &other, &[])
        .await;
    assert_eq!(
        (status, code(&problem)),
        (StatusCode::FORBIDDEN, Some("store_forbidden"))
    );
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE entity_type = 'purchase_order' AND entity_id = $1 ORDER BY id",
    )
    .bind(id.to_string())
    .fetch_all(&pipeline.stack.pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "create", "update", "submit", "approve", "receive", "receive"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_whose_stock_ins_never_reached_the_broker_is_published_by_ingest() {
    let pipeline = Pipeline::start(true).await;
    // What an ingest that stopped between the commit and the broker leaves behind.
    let receipt = Uuid::new_v4();
    let movement = schemas::purchase_orders::receipt_movement_id(receipt, 3);
    sqlx::query(
        "WITH o AS (INSERT INTO purchase_orders (store_id, supplier_id, state, created_by)
                    VALUES (1, 1, 'partially_received', 'tester') RETURNING id),
              l AS (INSERT INTO purchase_order_lines (purchase_order_id, product_id, quantity, unit_cost_paise, received_quantity)
                    SELECT id, 3, 10, 700, 7 FROM o),
              r AS (INSERT INTO purchase_order_receipts (id, purchase_order_id, received_by, received_at, whole, closes)
                    SELECT $1, id, 'tester', now() - interval '1 minute', false, false FROM o)
         INSERT INTO purchase_order_receipt_lines (receipt_id, product_id, quantity, unit_cost_paise, movement_id)
         VALUES ($1, 3, 7, 700, $2)",
    )
    .bind(receipt)
    .bind(movement)
    .execute(&pipeline.stack.pool)
    .await
    .unwrap();

    let started = Instant::now();
    loop {
        let published: Option<(bool, Option<i64>)> = sqlx::query_as(
            "SELECT r.published_at IS NOT NULL, b.quantity FROM purchase_order_receipts r
               LEFT JOIN balances b ON b.store_id = 1 AND b.product_id = 3 WHERE r.id = $1",
        )
        .bind(receipt)
        .fetch_optional(&pipeline.stack.pool)
        .await
        .unwrap();
        if published == Some((true, Some(7))) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the receipt was not published: {published:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, cost): (String, Option<i64>) =
        sqlx::query_as("SELECT status, unit_cost_paise FROM movements WHERE movement_id = $1")
            .bind(movement)
            .fetch_one(&pipeline.stack.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), cost), ("applied", Some(700)));
}
