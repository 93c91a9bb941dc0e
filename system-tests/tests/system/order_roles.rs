//! Purchase orders' transitions: every role × action, each role taking exactly the actions
//! it may (the others `403 role_forbidden`), and which state each action leads to.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service_kit::auth::Role;
use system_tests::Pipeline;
use uuid::Uuid;

use super::purchase_orders::{code, expect};

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
