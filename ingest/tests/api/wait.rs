//! `?wait=`: ingest answers with the processors' outcome — `201` applied with the new
//! balance, `409` rejected with the reason and the available quantity, `200` for a
//! duplicate with the original outcome, `409 idempotency_key_reused` for an id reused for
//! another movement — and `202` when the wait runs out. Ingest,
//! Kafka, the processors, Postgres and Redis all run for real.

use std::time::Duration;

use crate::common::{add_product, add_store, add_supplier, send, with_admin};
use reqwest::{Method, StatusCode};
use serde_json::json;
use test_kit::TestStack;

async fn start_processor(stack: &TestStack) -> tokio::sync::oneshot::Sender<()> {
    let app = processors::App::build(stack.processors_settings())
        .await
        .unwrap();
    test_kit::background(|stopped| app.run_until_stopped(stopped))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_the_answer_is_the_outcome_applied_rejected_or_duplicate() {
    let (stack, app, admin) = with_admin().await;
    let store = add_store(&stack, "WAIT-01").await;
    let product = add_product(&stack, "RICE-1KG").await;
    let supplier = add_supplier(&stack).await;
    // No wait for the catalog cache: a movement naming rows it lacks brings it up to date.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_movement_id_reused_for_another_movement_or_store_is_a_conflict_not_a_duplicate() {
    let (stack, app, admin) = with_admin().await;
    let store = add_store(&stack, "KEY-01").await;
    let other_store = add_store(&stack, "KEY-02").await;
    let product = add_product(&stack, "DAL-1KG").await;
    let supplier = add_supplier(&stack).await;
    let _processor = start_processor(&stack).await;

    let id = uuid::Uuid::now_v7();
    let stock_in = json!({
        "movement_id": id, "store_id": store, "product_id": product, "kind": "stock_in",
        "quantity": 10, "supplier_id": supplier, "unit_cost_paise": 4_500,
    });
    let post = |body: serde_json::Value| {
        let (app, admin) = (&app, &admin);
        async move {
            send(
                app,
                Method::POST,
                "/v1/movements?wait=8s",
                Some(admin),
                &body,
            )
            .await
        }
    };
    let (status, body) = post(stock_in.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["balance_after"], 10);

    // The same id for a different quantity: refused, nothing of the original told.
    let mut more = stock_in.clone();
    more["quantity"] = json!(1_000);
    let (status, body) = post(more).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "idempotency_key_reused");
    assert_eq!(body["movement_id"], id.to_string());
    assert!(body.get("available_quantity").is_none(), "{body}");

    // The same id from another store, with otherwise the same content.
    let mut elsewhere = stock_in.clone();
    elsewhere["store_id"] = json!(other_store);
    let (status, body) = post(elsewhere).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "idempotency_key_reused");

    // A true resend (the time it occurred set by ingest again) is still a duplicate.
    let (status, body) = post(stock_in).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "duplicate");
    assert_eq!(body["balance_after"], 10);

    let pool = &stack.pool;
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT store_id, status, reject_reason FROM movements WHERE movement_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (store, "applied".to_owned(), None),
            (
                store,
                "conflict".to_owned(),
                Some("idempotency_key_reused".to_owned())
            ),
            (
                other_store,
                "conflict".to_owned(),
                Some("idempotency_key_reused".to_owned())
            ),
            (store, "duplicate".to_owned(), None),
        ]
    );
    let balances: Vec<(i64, i64)> =
        sqlx::query_as("SELECT store_id, quantity FROM balances WHERE product_id = $1")
            .bind(product)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(balances, vec![(store, 10)], "conflicts change nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_deadline_is_answered_503_timeout() {
    let stack = TestStack::start_with(&[("HTTP_REQUEST_TIMEOUT_MS", "1000".into())]).await;
    let store = add_store(&stack, "SLOW-01").await;
    let product = add_product(&stack, "SALT-1KG").await;
    let supplier = add_supplier(&stack).await;
    let app = crate::common::start(&stack).await;
    let keys =
        service_kit::auth::TokenKeys::from_settings(&stack.ingest_settings().api.auth).unwrap();
    let (admin, _) = keys
        .issue("admin", service_kit::auth::Role::Admin, &[])
        .unwrap();
    // No processors: the wait would run out after 5 s with a 202; the deadline comes first.
    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/movements?wait=5s",
        Some(&admin),
        &json!({
            "store_id": store, "product_id": product, "kind": "stock_in", "quantity": 1,
            "supplier_id": supplier, "unit_cost_paise": 100,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "timeout");
    stack.cleanup().await;
}

/// A retry waits on the same movement's channel right after the first request stopped
/// waiting on it: the first one's unsubscribe must not end the retry's subscription.
#[tokio::test]
async fn a_retry_waiting_on_the_same_movement_hears_its_outcome() {
    use redis::AsyncCommands;
    let stack = TestStack::start().await;
    let redis = service_kit::redis::Redis::new(&stack.settings.redis).unwrap();
    let outcomes = ingest::outcomes::Outcomes::new(redis.clone());
    let mut publisher = redis.connection().await.unwrap();
    let movement_id = uuid::Uuid::now_v7();
    let channel = redis.key(&schemas::cache::outcome_channel(movement_id));
    for offset in 0..20 {
        drop(outcomes.watch(movement_id).await.expect("Redis is up"));
        let mut retry = outcomes.watch(movement_id).await.expect("Redis is up");
        let notice = schemas::cache::OutcomeNotice {
            movement_id,
            partition: 0,
            offset,
            status: "duplicate".into(),
            reject_reason: None,
            available_quantity: None,
            balance_after: Some(1),
            original_status: Some("applied".into()),
        };
        // Published until heard: a notice published before the retry's subscription
        // reached Redis is lost, as it would be for any late subscriber.
        let heard = async {
            loop {
                let payload = serde_json::to_string(&notice).unwrap();
                let _: i64 = publisher.publish(&channel, payload).await.unwrap();
                if let Ok(heard) =
                    tokio::time::timeout(Duration::from_millis(50), retry.outcome_of(0, offset))
                        .await
                {
                    return heard;
                }
            }
        };
        let heard = tokio::time::timeout(Duration::from_secs(5), heard).await;
        assert!(
            matches!(heard, Ok(Some(ref notice)) if notice.offset == offset),
            "retry {offset} heard nothing: {heard:?}"
        );
    }
    stack.cleanup().await;
}
