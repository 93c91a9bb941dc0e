//! Movements refused, and how: every bad field named with nothing reaching the topic, a
//! control character anywhere a 400 naming its field, bodies and headers beyond their
//! limits 413 and 431, and a 503 with Retry-After in bounded time while the broker is away.

use std::time::Duration;

use crate::common::{add_product, add_store, send};
use reqwest::Method;
use schemas::{MovementKind, StockMovement, WireFormat};
use serde_json::{Value, json};
use test_kit::TestStack;

use super::movements::{fields, world};

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
