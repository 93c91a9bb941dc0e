//! Movements from POS to Kafka: a 202 only for what the broker acknowledged, the record
//! on the topic keyed by store, every bad field named, token scope per movement, the
//! catalog cache following catalog changes, batches with a result per line, and a 503
//! with Retry-After when the broker is away.

use std::time::Duration;

use crate::common::{add_product, add_store, add_supplier, add_user, send, token};
use reqwest::Method;
use schemas::consistency::ConsistencyToken;
use schemas::{MovementKind, StockMovement, WireFormat};
use serde_json::{Value, json};
use test_kit::TestStack;

/// A stack with two stores, a product and a supplier, created before ingest starts, and a
/// POS user of the first store.
struct World {
    stack: TestStack,
    app: crate::common::Running,
    admin: String,
    pos: String,
    store: i64,
    other_store: i64,
    product: i64,
    supplier: i64,
}

async fn world() -> World {
    let stack = TestStack::start().await;
    let store = add_store(&stack, "POS-01").await;
    let other_store = add_store(&stack, "POS-02").await;
    let product = add_product(&stack, "TEA-250G").await;
    let supplier = add_supplier(&stack).await;
    add_user(
        &stack,
        "pos.till1",
        "till-password-123",
        "pos",
        &[store],
        false,
    )
    .await;
    ingest::users::ensure_admin(&stack.pool, "admin", crate::common::ADMIN_PASSWORD.into())
        .await
        .unwrap();
    let app = crate::common::start(&stack).await;
    let admin = token(&app, "admin", crate::common::ADMIN_PASSWORD).await;
    let pos = token(&app, "pos.till1", "till-password-123").await;
    World {
        stack,
        app,
        admin,
        pos,
        store,
        other_store,
        product,
        supplier,
    }
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_accepted_sale_is_on_the_topic_keyed_by_store_at_the_position_reported() {
    let w = world().await;
    let id = uuid::Uuid::new_v4();
    let sale = json!({"movement_id": id, "store_id": w.store, "sku": "TEA-250G", "kind": "sale", "quantity": 2,
                      "unit_price_paise": 12000, "device_id": "till-1", "reference": "BILL-77",
                      "occurred_at": "2026-11-21T10:15:00+05:30"});
    let (status, accepted) = send(&w.app, Method::POST, "/v1/movements", Some(&w.pos), &sale).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["movement_id"], id.to_string());
    let (partition, offset) = (
        accepted["partition"].as_i64().unwrap() as i32,
        accepted["offset"].as_i64().unwrap(),
    );
    let token = ConsistencyToken::decode(accepted["consistency_token"].as_str().unwrap()).unwrap();
    assert_eq!(token, ConsistencyToken::at(partition, offset));

    let topic = w.stack.settings.topics().movements();
    let records = w.stack.read_topic(&topic, 1, Duration::from_secs(10)).await;
    let record = &records[0];
    assert_eq!((record.partition, record.offset), (partition, offset));
    assert_eq!(record.key.as_deref(), Some(w.store.to_string().as_bytes()));
    // In the Confluent wire format, with the id the registry gave the movement schema.
    let id_on_record = schemas::wire::schema_id(&record.payload);
    assert!(id_on_record.is_some(), "not in the Confluent wire format");
    assert_eq!(id_on_record, w.stack.schema_ids.id_of::<StockMovement>());
    let movement = StockMovement::decode_with(&w.stack.schema_ids, &record.payload).unwrap();
    assert_eq!(movement.movement_id, id);
    assert_eq!(
        (movement.store_id.get(), movement.product_id.get()),
        (w.store, w.product)
    );
    assert_eq!(
        (movement.kind, movement.quantity, movement.unit_price_paise),
        (MovementKind::Sale, 2, Some(12000))
    );
    assert_eq!(movement.sku, "TEA-250G");
    assert_eq!(
        movement.actor, "pos.till1",
        "the actor comes from the token"
    );
    assert_eq!(
        movement.occurred_at.to_rfc3339(),
        "2026-11-21T04:45:00+00:00"
    );
    assert_eq!(
        (movement.device_id.as_deref(), movement.reference.as_deref()),
        (Some("till-1"), Some("BILL-77"))
    );
    w.stack.cleanup().await;
}

#[tokio::test]
async fn a_cash_stock_in_needs_neither_a_supplier_nor_a_cost() {
    let w = world().await;
    let cash = json!({"store_id": w.store, "product_id": w.product, "kind": "stock_in", "quantity": 12,
                      "reference": "mandi bill 7"});
    let (status, accepted) =
        send(&w.app, Method::POST, "/v1/movements", Some(&w.admin), &cash).await;
    assert_eq!(status, 202, "{accepted}");
    let mut without_cost = cash.clone();
    without_cost["supplier_id"] = json!(w.supplier);
    let (status, accepted) = send(
        &w.app,
        Method::POST,
        "/v1/movements",
        Some(&w.admin),
        &without_cost,
    )
    .await;
    assert_eq!(status, 202, "{accepted}");

    let topic = w.stack.settings.topics().movements();
    let records = w.stack.read_topic(&topic, 2, Duration::from_secs(10)).await;
    let sent: Vec<_> = records
        .iter()
        .map(|record| {
            let movement =
                StockMovement::decode_with(&w.stack.schema_ids, &record.payload).unwrap();
            (
                movement.kind,
                movement.supplier_id.map(|id| id.get()),
                movement.unit_cost_paise,
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            (MovementKind::StockIn, None, None),
            (MovementKind::StockIn, Some(w.supplier), None)
        ]
    );
    w.stack.cleanup().await;
}

#[tokio::test]
async fn each_store_lands_on_the_partition_any_kafka_client_would_choose() {
    let w = world().await;
    let mut stores = vec![w.store, w.other_store];
    for index in 0..6 {
        stores.push(add_store(&w.stack, &format!("PART-{index}")).await);
    }
    for store in stores {
        let sale = json!({"store_id": store, "product_id": w.product, "kind": "sale", "quantity": 1, "unit_price_paise": 100});
        // The cache loaded before the new stores existed: wait until it sees them.
        let (status, accepted) = eventually(&w, &sale, 202).await;
        assert_eq!(status, 202, "{accepted}");
        let expected = schemas::topics::store_partition(
            schemas::StoreId(store),
            test_kit::TEST_PARTITIONS as u32,
        );
        assert_eq!(
            accepted["partition"].as_i64(),
            Some(i64::from(expected)),
            "store {store}"
        );
    }
    w.stack.cleanup().await;
}

#[tokio::test]
async fn the_idempotency_key_comes_from_the_body_or_the_header_and_is_generated_only_without_both()
{
    let w = world().await;
    let sale = json!({"store_id": w.store, "product_id": w.product, "kind": "sale", "quantity": 1, "unit_price_paise": 100});
    let header_id = uuid::Uuid::new_v4();
    let response = w
        .app
        .client
        .post(format!("{}/v1/movements", w.app.base))
        .bearer_auth(&w.pos)
        .header("Idempotency-Key", header_id.to_string())
        .json(&sale)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["movement_id"], header_id.to_string());

    let (_, generated) = send(&w.app, Method::POST, "/v1/movements", Some(&w.pos), &sale).await;
    let generated = uuid::Uuid::parse_str(generated["movement_id"].as_str().unwrap()).unwrap();
    assert_ne!(generated, header_id);

    let mut conflicting = sale.clone();
    conflicting["movement_id"] = json!(uuid::Uuid::new_v4());
    let response = w
        .app
        .client
        .post(format!("{}/v1/movements", w.app.base))
        .bearer_auth(&w.pos)
        .header("Idempotency-Key", header_id.to_string())
        .json(&conflicting)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(fields(&problem), ["movement_id"]);
    w.stack.cleanup().await;
}

#[tokio::test]
async fn every_bad_field_is_named_and_nothing_reaches_the_topic() {
    let w = world().await;
    let now = chrono::Utc::now();
    let base = json!({"store_id": w.store, "product_id": w.product, "kind": "stock_in", "quantity": 10,
                      "supplier_id": w.supplier, "unit_cost_paise": 9000});
    let cases: Vec<(Value, u16, Vec<&str>, &str)> = vec![
        (
            json!({"quantity": 0}),
            400,
            vec!["quantity"],
            "out_of_range",
        ),
        (
            json!({"quantity": -5, "unit_cost_paise": -1}),
            400,
            vec!["quantity", "unit_cost_paise"],
            "out_of_range",
        ),
        (json!({"kind": "transfer"}), 400, vec!["kind"], "invalid"),
        (
            json!({"occurred_at": (now + chrono::Duration::hours(1)).to_rfc3339()}),
            400,
            vec!["occurred_at"],
            "in_the_future",
        ),
        (
            json!({"occurred_at": (now - chrono::Duration::days(31)).to_rfc3339()}),
            400,
            vec!["occurred_at"],
            "too_old",
        ),
        (
            json!({"occurred_at": "yesterday"}),
            400,
            vec!["occurred_at"],
            "invalid_json",
        ),
        (
            json!({"kind": "sale"}),
            400,
            vec!["supplier_id", "unit_cost_paise"],
            "not_allowed",
        ),
        (
            json!({"kind": "removal", "supplier_id": null, "unit_cost_paise": null, "reason": "eaten"}),
            400,
            vec!["reason"],
            "invalid",
        ),
        (
            json!({"offline": true}),
            400,
            vec!["offline"],
            "not_allowed",
        ),
        (
            json!({"restock": true, "note": "back"}),
            400,
            vec!["restock", "note"],
            "not_allowed",
        ),
        (
            json!({"kind": "adjustment", "supplier_id": null, "unit_cost_paise": null, "quantity": 0,
                   "reason": "found"}),
            400,
            vec!["quantity"],
            "zero",
        ),
        (
            json!({"kind": "adjustment", "supplier_id": null, "unit_cost_paise": null, "quantity": -3}),
            400,
            vec!["reason"],
            "required",
        ),
        (
            json!({"kind": "return", "supplier_id": null, "unit_cost_paise": null, "restock": false}),
            400,
            vec!["reason"],
            "required",
        ),
        (
            json!({"kind": "return", "supplier_id": null, "unit_cost_paise": null, "quantity": -1}),
            400,
            vec!["quantity"],
            "out_of_range",
        ),
        (
            json!({"reference": ""}),
            400,
            vec!["reference"],
            "invalid_length",
        ),
        (
            json!({"product_id": null}),
            400,
            vec!["product_id"],
            "required",
        ),
        (
            json!({"product_id": 999_999}),
            422,
            vec!["product_id"],
            "unknown",
        ),
        (
            json!({"product_id": null, "sku": "NOPE"}),
            422,
            vec!["sku"],
            "unknown",
        ),
        (json!({"sku": "OTHER"}), 422, vec!["sku"], "mismatch"),
        (
            json!({"supplier_id": 999_999}),
            422,
            vec!["supplier_id"],
            "unknown",
        ),
        (
            json!({"store_id": 999_999}),
            422,
            vec!["store_id"],
            "unknown",
        ),
        (
            json!({"colour": "red"}),
            400,
            vec!["colour"],
            "invalid_json",
        ),
    ];
    for (change, status, expected, code) in cases {
        let mut body = base.clone();
        for (key, value) in change.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        let (got, problem) =
            send(&w.app, Method::POST, "/v1/movements", Some(&w.admin), &body).await;
        assert_eq!(got.as_u16(), status, "{change}: {problem}");
        assert_eq!(fields(&problem), expected, "{change}: {problem}");
        assert_eq!(problem["errors"][0]["code"], code, "{change}: {problem}");
        assert_eq!(
            problem["type"]
                .as_str()
                .map(|t| t.starts_with("/problems/")),
            Some(true)
        );
    }
    // One good line proves the topic works; it must be the only record there.
    let (status, _) = send(&w.app, Method::POST, "/v1/movements", Some(&w.admin), &base).await;
    assert_eq!(status, 202);
    let topic = w.stack.settings.topics().movements();
    let records = w.stack.read_topic(&topic, 1, Duration::from_secs(10)).await;
    assert_eq!(
        StockMovement::decode_with(&w.stack.schema_ids, &records[0].payload)
            .unwrap()
            .kind,
        MovementKind::StockIn
    );
    w.stack.cleanup().await;
}

#[tokio::test]
async fn a_token_posts_only_for_its_stores_and_only_the_kinds_its_role_may() {
    let w = world().await;
    add_user(
        &w.stack,
        "analyst.one",
        "analyst-password-1",
        "analyst",
        &[],
        false,
    )
    .await;
    add_user(
        &w.stack,
        "staff.one",
        "staff-password-123",
        "staff",
        &[w.store],
        false,
    )
    .await;
    let analyst = token(&w.app, "analyst.one", "analyst-password-1").await;
    let staff = token(&w.app, "staff.one", "staff-password-123").await;
    let sale = json!({"store_id": w.other_store, "product_id": w.product, "kind": "sale", "quantity": 1, "unit_price_paise": 100});
    let (status, problem) = send(&w.app, Method::POST, "/v1/movements", Some(&w.pos), &sale).await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (403, Some("store_forbidden"))
    );
    let removal = json!({"store_id": w.store, "product_id": w.product, "kind": "removal", "quantity": 1, "reason": "damaged"});
    let (status, problem) = send(
        &w.app,
        Method::POST,
        "/v1/movements",
        Some(&w.pos),
        &removal,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (403, Some("kind_forbidden"))
    );
    let (status, _) = send(
        &w.app,
        Method::POST,
        "/v1/movements",
        Some(&staff),
        &removal,
    )
    .await;
    assert_eq!(status, 202, "staff may remove stock in its store");
    let (status, problem) = send(
        &w.app,
        Method::POST,
        "/v1/movements",
        Some(&analyst),
        &removal,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (403, Some("role_forbidden"))
    );
    let (status, _) = send(&w.app, Method::POST, "/v1/movements", None, &removal).await;
    assert_eq!(status, 401);
    w.stack.cleanup().await;
}

/// Posts `body` until it gets `status` or two seconds pass; returns the last answer.
async fn eventually(w: &World, body: &Value, status: u16) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let (got, answer) = send(&w.app, Method::POST, "/v1/movements", Some(&w.admin), body).await;
        if got.as_u16() == status || tokio::time::Instant::now() > deadline {
            return (got.as_u16(), answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_new_product_is_usable_and_a_deleted_one_refused_within_a_second() {
    let w = world().await;
    let (status, product) = send(
        &w.app,
        Method::POST,
        "/v1/products",
        Some(&w.admin),
        &json!({"sku": "NEW-1", "name": "New", "unit": "g"}),
    )
    .await;
    assert_eq!(status, 201);
    let stock_in = json!({"store_id": w.store, "sku": "NEW-1", "kind": "stock_in", "quantity": 500,
                          "supplier_id": w.supplier, "unit_cost_paise": 3});
    let (status, answer) = eventually(&w, &stock_in, 202).await;
    assert_eq!(status, 202, "{answer}");

    let (status, _) = send(
        &w.app,
        Method::DELETE,
        &format!("/v1/products/{}", product["id"]),
        Some(&w.admin),
        &json!(null),
    )
    .await;
    assert_eq!(status, 204);
    let (status, problem) = eventually(&w, &stock_in, 422).await;
    assert_eq!((status, fields(&problem)), (422, vec!["sku".to_owned()]));
    let (status, _) = send(
        &w.app,
        Method::DELETE,
        &format!("/v1/stores/{}", w.store),
        Some(&w.admin),
        &json!(null),
    )
    .await;
    assert_eq!(status, 204);
    let by_id = json!({"store_id": w.store, "product_id": w.product, "kind": "sale", "quantity": 1, "unit_price_paise": 1});
    let (status, problem) = eventually(&w, &by_id, 422).await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["store_id".to_owned()]),
        "a deleted store receives no movements"
    );
    w.stack.cleanup().await;
}

#[tokio::test]
async fn a_batch_answers_per_line_and_produces_the_valid_lines_even_when_others_fail() {
    let w = world().await;
    let sale = |quantity: i64| {
        json!({"movement_id": uuid::Uuid::new_v4(), "store_id": w.store, "product_id": w.product,
                                      "kind": "sale", "quantity": quantity, "unit_price_paise": 100})
    };
    let batch = json!({"movements": [
        sale(1),
        {"store_id": w.store, "product_id": w.product, "kind": "sale", "quantity": "two", "unit_price_paise": 100},
        sale(3),
        {"store_id": w.other_store, "product_id": w.product, "kind": "sale", "quantity": 1, "unit_price_paise": 100},
        {"store_id": w.store, "product_id": 424_242, "kind": "sale", "quantity": 1, "unit_price_paise": 100},
        sale(0),
    ]});
    let (status, result) = send(
        &w.app,
        Method::POST,
        "/v1/movements/batch",
        Some(&w.pos),
        &batch,
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        (result["accepted"].as_i64(), result["refused"].as_i64()),
        (Some(2), Some(4))
    );
    let statuses: Vec<i64> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 400, 202, 403, 422, 400]);
    let lines = result["results"].as_array().unwrap();
    assert_eq!(fields(&lines[1]["problem"]), ["quantity"]);
    assert_eq!(lines[3]["problem"]["code"], "store_forbidden");
    assert_eq!(fields(&lines[4]["problem"]), ["product_id"]);
    let token = ConsistencyToken::decode(result["consistency_token"].as_str().unwrap()).unwrap();
    assert!(!token.is_empty());

    let topic = w.stack.settings.topics().movements();
    let records = w.stack.read_topic(&topic, 2, Duration::from_secs(10)).await;
    let mut quantities: Vec<i64> = records
        .iter()
        .map(|record| {
            StockMovement::decode_with(&w.stack.schema_ids, &record.payload)
                .unwrap()
                .quantity
        })
        .collect();
    quantities.sort_unstable();
    assert_eq!(quantities, [1, 3]);

    let too_many = json!({"movements": vec![sale(1); 1_001]});
    let (status, problem) = send(
        &w.app,
        Method::POST,
        "/v1/movements/batch",
        Some(&w.pos),
        &too_many,
    )
    .await;
    assert_eq!(
        (status.as_u16(), fields(&problem)),
        (400, vec!["movements".to_owned()])
    );
    let (status, _) = send(
        &w.app,
        Method::POST,
        "/v1/movements/batch",
        Some(&w.pos),
        &json!({"movements": []}),
    )
    .await;
    assert_eq!(status, 400);

    let metrics = test_kit::get_text(&w.app.client, &format!("{}/metrics", w.app.base)).await;
    assert!(metrics.contains(r#"bazaar_movements_total{kind="sale",outcome="accepted",reason="none",service="ingest"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"bazaar_movements_total{kind="sale",outcome="refused",reason="store_forbidden",service="ingest"} 1"#), "{metrics}");
    assert!(
        metrics.contains("bazaar_movement_batch_size_count"),
        "{metrics}"
    );
    w.stack.cleanup().await;
}

#[tokio::test]
async fn with_the_broker_away_a_movement_is_refused_with_503_and_retry_after_in_bounded_time() {
    let stack = TestStack::start().await;
    let store = add_store(&stack, "DOWN-01").await;
    let product = add_product(&stack, "DOWN-SKU").await;
    let mut settings = stack.ingest_settings();
    settings.shared.kafka.brokers = "127.0.0.1:9".into();
    settings.shared.kafka.message_timeout = Duration::from_secs(1);
    let keys = service_kit::auth::TokenKeys::from_settings(&settings.api.auth).unwrap();
    let (admin, _) = keys
        .issue("admin", service_kit::auth::Role::Admin, &[])
        .unwrap();
    let app = ingest::App::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client.post(format!("{base}/v1/movements")).bearer_auth(&admin)
        .json(&json!({"store_id": store, "product_id": product, "kind": "sale", "quantity": 1, "unit_price_paise": 1}))
        .send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable");

    // In a batch, each line the broker did not take says so; the others keep their own
    // problem; nothing is reported accepted.
    let response = client.post(format!("{base}/v1/movements/batch")).bearer_auth(&admin)
        .json(&json!({"movements": [
            {"store_id": store, "product_id": product, "kind": "sale", "quantity": 1, "unit_price_paise": 1},
            {"store_id": store, "product_id": product, "kind": "sale", "quantity": 0, "unit_price_paise": 1},
            {"store_id": store, "product_id": product, "kind": "removal", "quantity": 2, "reason": "damaged"},
        ]}))
        .send().await.unwrap();
    assert_eq!(response.status(), 200);
    let batch: Value = response.json().await.unwrap();
    assert_eq!(batch["accepted"], 0, "{batch}");
    assert_eq!(batch["refused"], 3, "{batch}");
    assert_eq!(
        batch["results"][1]["problem"]["errors"][0]["field"],
        "quantity"
    );
    assert!(batch["consistency_token"].is_null(), "{batch}");
    let statuses: Vec<(u64, &str)> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            assert!(
                line["partition"].is_null() && line["offset"].is_null(),
                "{line}"
            );
            // A valid line names its (here generated) id, to retry with.
            let status = line["status"].as_u64().unwrap();
            assert_eq!(line["movement_id"].is_string(), status == 503, "{line}");
            (status, line["problem"]["code"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (503, "unavailable"),
            (400, "validation_failed"),
            (503, "unavailable")
        ],
        "{batch}"
    );
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), running).await;
    stack.cleanup().await;
}

/// A control character in any text a client sends is refused at the edge, naming the
/// field: in a movement, a batch line, a catalog name, a login, a query parameter, a path.
#[tokio::test]
async fn a_control_character_anywhere_is_refused_with_400_naming_the_field() {
    let w = world().await;
    let sale = |reference: &str| {
        json!({"movement_id": uuid::Uuid::new_v4(), "store_id": w.store, "sku": "TEA-250G",
               "kind": "sale", "quantity": 1, "unit_price_paise": 1000, "reference": reference})
    };
    let cases = [
        (
            "/v1/movements",
            Some(&w.pos),
            sale("BILL-\u{0}-1"),
            "reference",
        ),
        (
            "/v1/movements/batch",
            Some(&w.pos),
            json!({"movements": [sale("BILL-2"), sale("BILL-\u{1b}[3")]}),
            "movements[1].reference",
        ),
        (
            "/v1/stores",
            Some(&w.admin),
            json!({"code": "NUL-01", "name": "Shop\u{0}", "timezone": "Asia/Kolkata"}),
            "name",
        ),
        (
            "/v1/auth/token",
            None,
            json!({"username": "admin\u{0}", "password": "x"}),
            "username",
        ),
    ];
    for (path, token, body, field) in cases {
        let (status, problem) =
            send(&w.app, Method::POST, path, token.map(String::as_str), &body).await;
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["code"], "control_character");
    }
    for (path, field) in [
        ("/v1/movements?wait=1s%00", "wait"),
        ("/v1/stores/%00", "path"),
    ] {
        let (status, problem) = send(&w.app, Method::POST, path, Some(&w.pos), &sale("OK")).await;
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    // Nothing refused reached the catalog.
    let stores: i64 = sqlx::query_scalar("SELECT count(*) FROM stores WHERE code = 'NUL-01'")
        .fetch_one(&w.stack.pool)
        .await
        .unwrap();
    assert_eq!(stores, 0);
}

/// Bodies are measured at the edge: a movement (or any single row) takes 64 KiB, a batch
/// 1 MiB; beyond, `413 payload_too_large` naming the limit, and nothing is produced.
#[tokio::test]
async fn a_body_beyond_its_route_s_limit_is_refused_with_413() {
    let w = world().await;
    let sale = |reference: String| {
        json!({"movement_id": uuid::Uuid::new_v4(), "store_id": w.store, "sku": "TEA-250G",
               "kind": "sale", "quantity": 1, "unit_price_paise": 1000, "reference": reference})
    };
    let (status, problem) = send(
        &w.app,
        Method::POST,
        "/v1/movements",
        Some(&w.pos),
        &sale("x".repeat(70 * 1024)),
    )
    .await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["code"], "payload_too_large");
    assert!(
        problem["detail"].as_str().unwrap().contains("65536"),
        "{problem}"
    );

    let batch = |reference: fn(usize) -> String| {
        let lines: Vec<_> = (0..1_000).map(|n| sale(reference(n))).collect();
        json!({ "movements": lines })
    };
    let path = "/v1/movements/batch";
    // 1,000 lines of about 1.1 KiB: beyond a batch's 1 MiB.
    let too_large = batch(|_| "y".repeat(1_100));
    let (status, problem) = send(&w.app, Method::POST, path, Some(&w.pos), &too_large).await;
    assert_eq!(status, 413, "{problem}");
    // A full batch of ordinary lines is well within it.
    let ordinary = batch(|n| format!("BILL-{n}"));
    let (status, body) = send(&w.app, Method::POST, path, Some(&w.pos), &ordinary).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1_000, "{body}");
}

/// Header fields are measured before anything reads them: 16 KiB in all; beyond,
/// `431 headers_too_large` (as a problem document), and nothing is produced.
#[tokio::test]
async fn header_fields_beyond_16_kib_are_refused_with_431() {
    let w = world().await;
    let body = json!({"movement_id": uuid::Uuid::new_v4(), "store_id": w.store, "sku": "TEA-250G",
                      "kind": "sale", "quantity": 1, "unit_price_paise": 1000});
    let response = w
        .app
        .client
        .post(format!("{}/v1/movements", w.app.base))
        .bearer_auth(&w.pos)
        .header("x-padding", "p".repeat(17 * 1024))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "headers_too_large", "{problem}");
    // The same request without the padding goes through.
    let (status, accepted) = send(&w.app, Method::POST, "/v1/movements", Some(&w.pos), &body).await;
    assert_eq!(status, 202, "{accepted}");
}
