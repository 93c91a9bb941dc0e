//! Purchase orders end to end: drafted, edited, submitted, approved and received through
//! the real pipeline (stock and moving-average cost as the model says; a receipt sent again
//! changes nothing); every role × transition; reorder suggestions turned into a draft; a
//! receipt whose stock-ins never reached the broker is published by ingest.

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
async fn price_products(pipeline: &Pipeline) {
    sqlx::query(
        "INSERT INTO supplier_prices (store_id, supplier_id, product_id, unit_cost_paise, effective_from)
         SELECT 1, 1, id, id * 1000, current_date - 1 FROM products WHERE id <= 3",
    )
    .execute(&pipeline.stack.pool)
    .await
    .unwrap();
}

fn stock_in(product: i64, quantity: i64, cost: i64) -> StockMovement {
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
async fn expect(
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

fn code(answer: &Value) -> Option<&str> {
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

/// An order of store 1 in `state` (made by an admin), with one line of product 1.
async fn order_in(pipeline: &Pipeline, state: &str) -> i64 {
    let admin = pipeline.admin();
    let order = expect(
        pipeline,
        "/v1/purchase-orders",
        &admin,
        json!({"store_id": 1, "supplier_id": 1, "lines": [{"product_id": 1, "quantity": 5, "unit_cost_paise": 100}]}),
        StatusCode::CREATED,
    )
    .await;
    let id = order["id"].as_i64().unwrap();
    let steps: &[&str] = match state {
        "draft" => &[],
        "submitted" => &["submit"],
        "approved" => &["submit", "approve"],
        other => unreachable!("{other}"),
    };
    for step in steps {
        expect(
            pipeline,
            &format!("/v1/purchase-orders/{id}/{step}"),
            &admin,
            Value::Null,
            StatusCode::OK,
        )
        .await;
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_takes_exactly_the_transitions_it_may() {
    let pipeline = Pipeline::start(false).await;
    // (action, the state it starts from, the roles that may take it)
    let table: [(&str, &str, &[Role]); 6] = [
        ("edit", "draft", &[Role::Admin, Role::Manager]),
        ("submit", "draft", &[Role::Admin, Role::Manager]),
        ("approve", "submitted", &[Role::Admin]),
        ("reject", "submitted", &[Role::Admin]),
        ("cancel", "approved", &[Role::Admin, Role::Manager]),
        (
            "receive",
            "approved",
            &[Role::Admin, Role::Manager, Role::Staff],
        ),
    ];
    for (action, from, allowed) in table {
        for role in Role::ALL {
            let id = order_in(&pipeline, from).await;
            let stores: &[i64] = if role.may_span_all_stores() {
                &[]
            } else {
                &[1]
            };
            let token = pipeline.token(role, stores);
            let (method, path, body) = match action {
                "edit" => (
                    Method::PATCH,
                    format!("/v1/purchase-orders/{id}"),
                    json!({"note": "n"}),
                ),
                "receive" => (
                    Method::POST,
                    format!("/v1/purchase-orders/{id}/receipts"),
                    json!({"receipt_id": Uuid::new_v4()}),
                ),
                _ => (
                    Method::POST,
                    format!("/v1/purchase-orders/{id}/{action}"),
                    Value::Null,
                ),
            };
            let (status, answer) = pipeline.send(method, &path, &token, body).await;
            if allowed.contains(&role) {
                assert!(
                    status.is_success(),
                    "{} may {action}: {status} {answer}",
                    role.as_str()
                );
            } else {
                assert_eq!(
                    (status, code(&answer)),
                    (StatusCode::FORBIDDEN, Some("role_forbidden")),
                    "{} may not {action}",
                    role.as_str()
                );
            }
        }
    }
    // Which state each action leads to, and none from a state it does not start from.
    let expected = [
        ("submit", "draft", "submitted"),
        ("approve", "submitted", "approved"),
        ("reject", "submitted", "rejected"),
        ("cancel", "draft", "cancelled"),
        ("cancel", "submitted", "cancelled"),
        ("cancel", "approved", "cancelled"),
    ];
    let admin = pipeline.admin();
    for (action, from, to) in expected {
        let id = order_in(&pipeline, from).await;
        let after = expect(
            &pipeline,
            &format!("/v1/purchase-orders/{id}/{action}"),
            &admin,
            Value::Null,
            StatusCode::OK,
        )
        .await;
        assert_eq!(after["state"], to);
        let problem = expect(
            &pipeline,
            &format!("/v1/purchase-orders/{id}/submit"),
            &admin,
            Value::Null,
            StatusCode::CONFLICT,
        )
        .await;
        assert_eq!(
            code(&problem),
            Some("invalid_transition"),
            "{action} then submit"
        );
    }
    let draft = order_in(&pipeline, "draft").await;
    let problem = expect(
        &pipeline,
        &format!("/v1/purchase-orders/{draft}/approve"),
        &admin,
        Value::Null,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&problem), Some("invalid_transition"));
    // Another store's manager may not touch store 1's orders; an empty draft is not submitted.
    let other = pipeline.token(Role::Manager, &[2]);
    let problem = expect(
        &pipeline,
        &format!("/v1/purchase-orders/{draft}/submit"),
        &other,
        Value::Null,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&problem), Some("store_forbidden"));
    let problem = expect(
        &pipeline,
        "/v1/purchase-orders",
        &other,
        json!({"store_id": 1, "supplier_id": 1}),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&problem), Some("store_forbidden"));
    let empty = expect(
        &pipeline,
        "/v1/purchase-orders",
        &admin,
        json!({"store_id": 1, "supplier_id": 1}),
        StatusCode::CREATED,
    )
    .await;
    let problem = expect(
        &pipeline,
        &format!("/v1/purchase-orders/{}/submit", empty["id"]),
        &admin,
        Value::Null,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["errors"][0]["code"], "no_lines");
    // An unknown supplier or store is named as such, not as lines without a price.
    let unknown = expect(
        &pipeline,
        "/v1/purchase-orders",
        &admin,
        json!({"store_id": 1, "supplier_id": 99, "lines": [{"product_id": 1, "quantity": 1}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(unknown["errors"][0]["field"], "supplier_id", "{unknown}");
    assert_eq!(unknown["errors"].as_array().unwrap().len(), 1, "{unknown}");
    let unknown = expect(
        &pipeline,
        "/v1/purchase-orders/from-suggestions",
        &admin,
        json!({"store_id": 99, "supplier_id": 1}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(unknown["errors"][0]["field"], "store_id", "{unknown}");
    let missing = expect(
        &pipeline,
        "/v1/purchase-orders/999999/approve",
        &admin,
        Value::Null,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(code(&missing), Some("not_found"));
    // Reading: every role but the POS device.
    for role in Role::ALL {
        let stores: &[i64] = if role.may_span_all_stores() {
            &[]
        } else {
            &[1]
        };
        let (status, _, _) = pipeline
            .get_from(
                &pipeline.query,
                "/v1/purchase-orders",
                &pipeline.token(role, stores),
                &[],
            )
            .await;
        let expected = if role == Role::Pos {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{} reads orders", role.as_str());
    }
}

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
