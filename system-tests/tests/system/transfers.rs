//! Transfers through the whole pipeline: a transfer-out leaves the source, the processors
//! announce it to the destination (one transfer-in, on the movements topic, in the
//! source's output transaction), the destination receives what arrived and the shortfall
//! is lost in transit; what is in transit is read per store and per transfer.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service_kit::auth::Role;
use system_tests::Pipeline;
use test_kit::SUPPLIER;
use uuid::Uuid;

const SOURCE: i64 = 1;
const DESTINATION: i64 = 2;
const PRODUCT: i64 = 2;

fn movement(store: i64, kind: &str, quantity: i64, extra: Value) -> Value {
    let mut body = json!({"movement_id": Uuid::new_v4(), "store_id": store,
        "product_id": PRODUCT, "kind": kind, "quantity": quantity,
        "occurred_at": Utc::now() - Duration::seconds(5)});
    for (field, value) in extra.as_object().unwrap() {
        body[field] = value.clone();
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_leaves_the_source_arrives_once_and_its_shortfall_is_lost_in_transit() {
    let pipeline = Pipeline::start(true).await;
    let source = pipeline.token(Role::Staff, &[SOURCE]);
    let destination = pipeline.token(Role::Staff, &[DESTINATION]);
    let send = |token: &str, body: Value| {
        let (pipeline, token) = (&pipeline, token.to_owned());
        async move {
            pipeline
                .send(Method::POST, "/v1/movements?wait=5s", &token, body)
                .await
        }
    };
    let stock_in = json!({"unit_cost_paise": 100, "supplier_id": SUPPLIER});
    let (status, answer) = send(&source, movement(SOURCE, "stock_in", 10, stock_in)).await;
    assert_eq!(answer["balance_after"], 10, "{status} {answer}");

    // Refused at the door: no destination, the store itself, an unknown store, a
    // transfer-in (the processors make those).
    let transfer = Uuid::new_v4();
    for (extra, expected, field, code) in [
        (
            json!({"transfer_id": transfer}),
            StatusCode::BAD_REQUEST,
            "to_store_id",
            "required",
        ),
        (
            json!({"transfer_id": transfer, "to_store_id": SOURCE}),
            StatusCode::BAD_REQUEST,
            "to_store_id",
            "same_store",
        ),
        (
            json!({"transfer_id": transfer, "to_store_id": 999}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "to_store_id",
            "unknown",
        ),
    ] {
        let (status, problem) = send(&source, movement(SOURCE, "transfer_out", 4, extra)).await;
        assert_eq!(status, expected, "{problem}");
        assert_eq!(
            (
                problem["errors"][0]["field"].as_str(),
                problem["errors"][0]["code"].as_str()
            ),
            (Some(field), Some(code)),
            "{problem}"
        );
    }
    let notice = json!({"transfer_id": transfer});
    let (status, problem) = send(
        &destination,
        movement(DESTINATION, "transfer_in", 4, notice),
    )
    .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("kind")),
        "{problem}"
    );

    // Sent: it leaves the source at once and is in transit.
    let out = json!({"transfer_id": transfer, "to_store_id": DESTINATION, "note": "to branch 2"});
    let (status, sent) = send(&source, movement(SOURCE, "transfer_out", 4, out.clone())).await;
    assert_eq!(
        (status, sent["balance_after"].as_i64()),
        (StatusCode::CREATED, Some(6)),
        "{sent}"
    );
    // A transfer id is used once.
    let (status, again) = send(&source, movement(SOURCE, "transfer_out", 1, out)).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::CONFLICT, Some("transfer_exists")),
        "{again}"
    );

    // The destination learns of it through its own partition: one transfer-in.
    let admin = pipeline.admin();
    let notice_id = schemas::transfer_in_id(transfer);
    let announced = pipeline
        .read_until(
            &format!("/v1/stores/{DESTINATION}/transfers/in-transit"),
            &destination,
            "the transfer-in at the destination",
            |body| body["incoming"][0]["units"] == 4,
        )
        .await;
    assert_eq!(announced["incoming"][0]["transfers"], 1, "{announced}");
    let outgoing = pipeline
        .read(
            &format!("/v1/stores/{SOURCE}/transfers/in-transit"),
            &source,
        )
        .await;
    assert_eq!(
        (
            outgoing["outgoing"][0]["units"].as_i64(),
            outgoing["outgoing"][0]["value_paise"].as_i64()
        ),
        (Some(4), Some(400)),
        "at the source's cost: {outgoing}"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let recorded = loop {
        let (status, _, body) = pipeline
            .get_from(
                &pipeline.query,
                &format!("/v1/movements/{notice_id}"),
                &admin,
                &[],
            )
            .await;
        if status == StatusCode::OK {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no transfer-in at the destination: {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (
            recorded["kind"].as_str(),
            recorded["store_id"].as_i64(),
            recorded["from_store_id"].as_i64(),
            recorded["balance_after"].as_i64(),
        ),
        (
            Some("transfer_in"),
            Some(DESTINATION),
            Some(SOURCE),
            Some(0)
        ),
        "announced, no sellable stock yet: {recorded}"
    );

    // 3 of the 4 arrived; one was broken on the way. The source's token may not receive.
    let arrived = json!({"transfer_id": transfer, "reason": "damaged"});
    let (status, problem) = send(
        &source,
        movement(DESTINATION, "transfer_receive", 3, arrived.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, problem) = send(
        &destination,
        movement(DESTINATION, "transfer_receive", 5, arrived.clone()),
    )
    .await;
    assert_eq!(
        (
            status,
            problem["code"].as_str(),
            problem["available_quantity"].as_i64()
        ),
        (
            StatusCode::CONFLICT,
            Some("receive_exceeds_transfer"),
            Some(4)
        ),
        "{problem}"
    );
    let (status, received) = send(
        &destination,
        movement(DESTINATION, "transfer_receive", 3, arrived.clone()),
    )
    .await;
    assert_eq!(
        (status, received["balance_after"].as_i64()),
        (StatusCode::CREATED, Some(3)),
        "{received}"
    );
    let (status, twice) = send(
        &destination,
        movement(DESTINATION, "transfer_receive", 1, arrived),
    )
    .await;
    assert_eq!(
        (status, twice["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_received")),
        "{twice}"
    );

    // Conserved: 4 sent = 3 received + 1 lost, nothing in transit.
    let token = received["consistency_token"].as_str().unwrap();
    let state = pipeline
        .read(
            &format!("/v1/transfers/{transfer}?consistency_token={token}"),
            &source,
        )
        .await;
    assert_eq!(
        (
            state["status"].as_str(),
            state["quantity_sent"].as_i64(),
            state["quantity_received"].as_i64(),
            state["quantity_lost"].as_i64(),
            state["quantity_in_transit"].as_i64(),
            state["loss_reason"].as_str(),
        ),
        (
            Some("received"),
            Some(4),
            Some(3),
            Some(1),
            Some(0),
            Some("damaged")
        ),
        "{state}"
    );
    let listed = pipeline
        .read(
            &format!("/v1/stores/{DESTINATION}/transfers?direction=incoming&status=received"),
            &destination,
        )
        .await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let in_transit = pipeline
        .read(
            &format!("/v1/stores/{SOURCE}/transfers/in-transit"),
            &source,
        )
        .await;
    assert_eq!(in_transit["outgoing"], json!([]), "{in_transit}");
    // Exactly one transfer-in in the destination's ledger.
    let notices = pipeline
        .read(
            &format!(
                "/v1/movements?store_id={DESTINATION}&kind=transfer_in&consistency_token={token}"
            ),
            &admin,
        )
        .await;
    assert_eq!(
        notices["items"].as_array().map(Vec::len),
        Some(1),
        "{notices}"
    );
    // The unit broken on the way is the destination's shrinkage, at the source's cost.
    let shrinkage = pipeline
        .read(
            &format!("/v1/stores/{DESTINATION}/reports/shrinkage?consistency_token={token}"),
            &admin,
        )
        .await;
    let in_transit_row = shrinkage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["reason"] == "in_transit")
        .unwrap_or_else(|| panic!("no transit loss: {shrinkage}"));
    assert_eq!(
        (
            in_transit_row["units_lost"].as_i64(),
            in_transit_row["value_lost_paise"].as_i64()
        ),
        (Some(1), Some(100)),
        "{shrinkage}"
    );
    // Another store's token sees neither the transfer nor the stores' lists.
    let stranger = pipeline.token(Role::Manager, &[3]);
    let (status, _, _) = pipeline
        .get_from(
            &pipeline.query,
            &format!("/v1/transfers/{transfer}"),
            &stranger,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    pipeline.stack.cleanup().await;
}
