//! Movements from POS to Kafka: a 202 only for what the broker acknowledged, the record
//! on the topic keyed by store, token scope per movement, the catalog cache following
//! catalog changes, batches with a result per line. What is refused, and how: `refusals`.

use std::time::Duration;

use crate::common::{add_product, add_store, add_supplier, add_user, send, token};
use reqwest::Method;
use schemas::consistency::ConsistencyToken;
use schemas::{MovementKind, StockMovement, WireFormat};
use serde_json::{Value, json};
use test_kit::TestStack;

/// A stack with two stores, a product and a supplier, created before ingest starts, and a
/// POS user of the first store.
pub(super) struct World {
    pub(super) stack: TestStack,
    pub(super) app: crate::common::Running,
    pub(super) admin: String,
    pub(super) pos: String,
    pub(super) store: i64,
    pub(super) other_store: i64,
    pub(super) product: i64,
    pub(super) supplier: i64,
}

pub(super) async fn world() -> World {
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

/// The fields a problem names, in order.
pub(super) fn fields(problem: &Value) -> Vec<String> {
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
