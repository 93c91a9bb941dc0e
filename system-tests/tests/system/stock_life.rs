//! The life of a store's stock beyond sales and supplier stock-ins, through the whole
//! pipeline: a cash purchase (no supplier, no cost); sales that happened while a till was
//! offline — applied whatever the book says, with a `phantom_stock` alert when the book held
//! less; customers' returns (resellable or not, at most what their sale sold);
//! adjustments of the book either way; a manager's void — and the shrinkage, returns and
//! sales reports over them.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::Pipeline;
use test_kit::TestStack;

/// Store 1 rejects negative stock; product 2 has no stock and no cost yet.
const STORE: i64 = 1;
const PRODUCT: i64 = 2;

fn movement(kind: &str, quantity: i64, extra: Value) -> Value {
    let mut body = json!({"movement_id": uuid::Uuid::new_v4(), "store_id": STORE, "product_id": PRODUCT,
                          "kind": kind, "quantity": quantity});
    for (field, value) in extra.as_object().unwrap() {
        body[field] = value.clone();
    }
    body
}

/// Posts one movement and waits for its outcome; the answer.
async fn apply(pipeline: &Pipeline, body: &Value) -> Value {
    let (status, answer) = pipeline
        .send(
            Method::POST,
            "/v1/movements?wait=5s",
            &pipeline.admin(),
            body.clone(),
        )
        .await;
    assert!(status.is_success(), "{status} {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cash_purchases_offline_sales_returns_and_adjustments_are_recorded_as_they_happened() {
    // The default window: a sale received more than 10 minutes after it occurred was
    // made offline.
    let stack =
        TestStack::start_with(&[("MOVEMENT_OFFLINE_AFTER_SECONDS", "600".to_owned())]).await;
    let pipeline = Pipeline::start_on(stack, true).await;
    let admin = pipeline.admin();

    // Bought for cash at the market, without a bill: no supplier, no cost.
    let cash = apply(
        &pipeline,
        &movement("stock_in", 4, json!({"reference": "mandi"})),
    )
    .await;
    assert_eq!(
        (cash["status"].as_str(), cash["balance_after"].as_i64()),
        (Some("applied"), Some(4)),
        "{cash}"
    );

    // A live sale of more than the book holds is refused; the same sale made offline
    // happened: applied, below zero, and the book is said to be wrong.
    let (status, live) = pipeline
        .send(
            Method::POST,
            "/v1/movements?wait=5s",
            &admin,
            movement("sale", 6, json!({})),
        )
        .await;
    assert_eq!(
        (
            status,
            live["code"].as_str(),
            live["available_quantity"].as_i64()
        ),
        (StatusCode::CONFLICT, Some("insufficient_stock"), Some(4)),
        "{live}"
    );
    let offline = movement("sale", 6, json!({"offline": true}));
    let applied = apply(&pipeline, &offline).await;
    assert_eq!(
        (
            applied["status"].as_str(),
            applied["balance_after"].as_i64()
        ),
        (Some("applied"), Some(-2)),
        "{applied}"
    );
    // Received 20 minutes after it occurred: offline without saying so.
    let late = movement(
        "removal",
        1,
        json!({"reason": "damaged", "occurred_at": Utc::now() - chrono::Duration::minutes(20)}),
    );
    let applied = apply(&pipeline, &late).await;
    assert_eq!(applied["balance_after"], -3, "{applied}");
    let token = applied["consistency_token"].as_str().unwrap().to_owned();

    for (body, offline) in [(&offline, true), (&late, true), (&cash, false)] {
        let id = body["movement_id"].as_str().unwrap();
        let recorded = pipeline
            .read(
                &format!("/v1/movements/{id}?consistency_token={token}"),
                &admin,
            )
            .await;
        assert_eq!(recorded["offline"], offline, "{recorded}");
    }
    // Alerts read the standby, which replays the commit a moment later.
    let alerts = pipeline
        .read_until(
            &format!("/v1/alerts?store_id={STORE}&product_id={PRODUCT}&active=true"),
            &admin,
            "the phantom-stock alert",
            // The standby may still hold the low-stock alert the phantom one replaces.
            |page| {
                page["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|alert| alert["kind"] == "phantom_stock"))
            },
        )
        .await;
    let kinds: Vec<&str> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| alert["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["phantom_stock"], "{alerts}");
    let item = pipeline
        .read(
            &format!("/v1/stores/{STORE}/inventory/{PRODUCT}?consistency_token={token}"),
            &admin,
        )
        .await;
    assert_eq!(item["quantity"], -3, "{item}");

    // `offline` belongs to sales and removals only.
    let (status, problem) = pipeline
        .send(
            Method::POST,
            "/v1/movements",
            &admin,
            movement("stock_in", 1, json!({"offline": true})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(
        (
            problem["errors"][0]["field"].as_str(),
            problem["errors"][0]["code"].as_str()
        ),
        (Some("offline"), Some("not_allowed"))
    );

    // The cash purchase is the sourcing report's row without a supplier, its units without
    // a cost; a later stock-in with a cost sets the product's cost.
    let sourcing = pipeline
        .read(
            &format!(
                "/v1/stores/{STORE}/reports/suppliers?group_by=product&consistency_token={token}"
            ),
            &admin,
        )
        .await;
    let cash_row = sourcing["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["supplier_id"].is_null() && row["product_id"] == PRODUCT)
        .unwrap_or_else(|| panic!("no cash row: {sourcing}"));
    assert_eq!(
        (
            cash_row["units_received"].as_i64(),
            cash_row["cost_paise"].as_i64(),
            cash_row["units_without_cost"].as_i64(),
            cash_row["supplier_name"].is_null()
        ),
        (Some(4), Some(0), Some(4), true),
        "{cash_row}"
    );
    assert_eq!(sourcing["total_units_without_cost"], 4, "{sourcing}");

    let restock = apply(
        &pipeline,
        &movement("stock_in", 10, json!({"unit_cost_paise": 900})),
    )
    .await;
    assert_eq!(restock["balance_after"], 7, "{restock}");
    let token = restock["consistency_token"].as_str().unwrap();
    let summary = pipeline
        .read(
            &format!("/v1/stores/{STORE}/reports/stock-summary?consistency_token={token}"),
            &admin,
        )
        .await;
    assert_eq!(summary["uncosted_in_stock"], 0, "{summary}");
    let item = pipeline
        .read(
            &format!("/v1/stores/{STORE}/inventory/{PRODUCT}?consistency_token={token}"),
            &admin,
        )
        .await;
    assert_eq!(item["average_unit_cost_paise"], 900, "{item}");

    // A customer brings 2 back to the shelf, 1 more that is defective; the owner finds 3
    // the book missed, then writes off 20 that are not there — refused: the book has 12.
    let pos = pipeline.token(service_kit::auth::Role::Pos, &[STORE]);
    let back = movement("return", 2, json!({"note": "wrong size"}));
    let (status, answer) = pipeline
        .send(Method::POST, "/v1/movements?wait=5s", &pos, back)
        .await;
    assert!(
        status.is_success(),
        "a till takes returns: {status} {answer}"
    );
    assert_eq!(answer["balance_after"], 9, "{answer}");
    let defective = apply(
        &pipeline,
        &movement(
            "return",
            1,
            json!({"restock": false, "reason": "defective"}),
        ),
    )
    .await;
    assert_eq!(
        (
            defective["status"].as_str(),
            defective["balance_after"].as_i64()
        ),
        (Some("applied"), Some(9)),
        "not resellable: recorded, the shelf unchanged"
    );
    let found = apply(
        &pipeline,
        &movement(
            "adjustment",
            3,
            json!({"reason": "found", "note": "behind the rice"}),
        ),
    )
    .await;
    assert_eq!(found["balance_after"], 12, "{found}");
    let (status, gone) = pipeline
        .send(
            Method::POST,
            "/v1/movements?wait=5s",
            &admin,
            movement("adjustment", -20, json!({"reason": "theft"})),
        )
        .await;
    assert_eq!(
        (
            status,
            gone["code"].as_str(),
            gone["available_quantity"].as_i64()
        ),
        (StatusCode::CONFLICT, Some("insufficient_stock"), Some(12)),
        "{gone}"
    );
    let taken = apply(
        &pipeline,
        &movement("adjustment", -2, json!({"reason": "expired"})),
    )
    .await;
    assert_eq!(taken["balance_after"], 10, "{taken}");
    let token = taken["consistency_token"].as_str().unwrap();
    let history = pipeline
        .read(
            &format!(
                "/v1/movements?store_id={STORE}&product_id={PRODUCT}&kind=adjustment&status=applied&consistency_token={token}"
            ),
            &admin,
        )
        .await;
    let adjustments: Vec<(i64, &str)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["quantity"].as_i64().unwrap(),
                row["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(adjustments, [(-2, "expired"), (3, "found")], "{history}");
    let recorded = pipeline
        .read(
            &format!(
                "/v1/movements/{}?consistency_token={token}",
                defective["movement_id"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert_eq!(
        (recorded["restock"].as_bool(), recorded["reason"].as_str()),
        (Some(false), Some("defective")),
        "{recorded}"
    );

    // Shrinkage by reason, at the average cost when each happened (the damaged unit was
    // removed before the product had a cost), the largest net loss first; and the returns.
    let shrinkage = pipeline
        .read(
            &format!("/v1/stores/{STORE}/reports/shrinkage?consistency_token={token}"),
            &admin,
        )
        .await;
    let rows: Vec<(&str, i64, i64, i64, i64, i64)> = shrinkage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let figure = |name: &str| row[name].as_i64().unwrap();
            (
                row["reason"].as_str().unwrap(),
                figure("units_lost"),
                figure("value_lost_paise"),
                figure("units_found"),
                figure("value_found_paise"),
                figure("units_without_cost"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("expired", 2, 1_800, 0, 0, 0),
            ("defective", 1, 900, 0, 0, 0),
            ("damaged", 1, 0, 0, 0, 1),
            ("found", 0, 0, 3, 2_700, 0),
        ],
        "{shrinkage}"
    );
    assert_eq!(
        (
            shrinkage["totals"]["net_value_lost_paise"].as_i64(),
            shrinkage["totals"]["movements"].as_i64()
        ),
        (Some(0), Some(4)),
        "{shrinkage}"
    );
    let returns = pipeline
        .read(
            &format!("/v1/stores/{STORE}/reports/returns?consistency_token={token}"),
            &admin,
        )
        .await;
    let row = &returns["rows"][0];
    assert_eq!(
        (
            row["product_id"].as_i64(),
            row["returns"].as_i64(),
            row["units_returned"].as_i64(),
            row["units_restocked"].as_i64(),
            row["units_written_off"].as_i64(),
            row["value_written_off_paise"].as_i64()
        ),
        (Some(PRODUCT), Some(2), Some(3), Some(2), Some(1), Some(900)),
        "{returns}"
    );

    // A return naming its sale takes back at most what the sale sold, less its returns.
    let sale = apply(
        &pipeline,
        &movement("sale", 3, json!({"unit_price_paise": 1_500})),
    )
    .await;
    assert_eq!(sale["balance_after"], 7, "{sale}");
    let of_sale = json!({"original_movement_id": sale["movement_id"]});
    let back = apply(&pipeline, &movement("return", 2, of_sale.clone())).await;
    assert_eq!(back["balance_after"], 9, "{back}");
    // A return keyed in by mistake and voided gives the sale its units back to return.
    let mistaken = back["movement_id"].as_str().unwrap().to_owned();
    let of_return = json!({"voids_movement_id": mistaken});
    let unreturned = apply(&pipeline, &movement("void", 2, of_return)).await;
    assert_eq!(unreturned["balance_after"], 7, "{unreturned}");
    let back = apply(&pipeline, &movement("return", 2, of_sale.clone())).await;
    assert_eq!(back["balance_after"], 9, "{back}");
    for (body, code, available) in [
        (
            movement("return", 2, of_sale),
            "return_exceeds_sale",
            Some(1),
        ),
        (
            movement(
                "return",
                1,
                json!({"original_movement_id": uuid::Uuid::new_v4()}),
            ),
            "unknown_sale",
            None,
        ),
    ] {
        let (status, refused) = pipeline
            .send(Method::POST, "/v1/movements?wait=5s", &admin, body)
            .await;
        assert_eq!(
            (
                status,
                refused["code"].as_str(),
                refused["available_quantity"].as_i64()
            ),
            (StatusCode::CONFLICT, Some(code), available),
            "{refused}"
        );
    }
    let (status, problem) = pipeline
        .send(
            Method::POST,
            "/v1/movements",
            &admin,
            movement(
                "sale",
                1,
                json!({"original_movement_id": sale["movement_id"]}),
            ),
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("original_movement_id")),
        "only a return names a sale: {problem}"
    );

    // The sale was rung up by mistake: a manager voids it — its stock comes back and the
    // day's sales no longer count it. Voided twice: refused. Staff may not void.
    let manager = pipeline.token(service_kit::auth::Role::Manager, &[STORE]);
    let of_the_sale = json!({"voids_movement_id": sale["movement_id"], "note": "wrong product"});
    let (status, voided) = pipeline
        .send(
            Method::POST,
            "/v1/movements?wait=5s",
            &manager,
            movement("void", 3, of_the_sale.clone()),
        )
        .await;
    assert_eq!(
        (status, voided["balance_after"].as_i64()),
        (StatusCode::CREATED, Some(12)),
        "{voided}"
    );
    let mut latest = voided["consistency_token"].as_str().unwrap().to_owned();
    for (token, expected) in [
        (&manager, (StatusCode::CONFLICT, Some("already_voided"))),
        (
            &pipeline.token(service_kit::auth::Role::Staff, &[STORE]),
            (StatusCode::FORBIDDEN, Some("kind_forbidden")),
        ),
    ] {
        let (status, refused) = pipeline
            .send(
                Method::POST,
                "/v1/movements?wait=5s",
                token,
                movement("void", 3, of_the_sale.clone()),
            )
            .await;
        assert_eq!((status, refused["code"].as_str()), expected, "{refused}");
        // The refused void is on the topic too: the reads below wait for it.
        if let Some(token) = refused["consistency_token"].as_str() {
            latest = token.to_owned();
        }
    }
    let token = latest.as_str();
    let sales = pipeline
        .read(
            &format!("/v1/stores/{STORE}/reports/sales?consistency_token={token}"),
            &admin,
        )
        .await;
    assert_eq!(
        (
            sales["totals"]["units_sold"].as_i64(),
            sales["totals"]["revenue_paise"].as_i64(),
            sales["totals"]["sales"].as_i64()
        ),
        (Some(6), Some(0), Some(1)),
        "the sale of 3 at ₹15 no longer counts; the offline sale of 6 (no price) does: {sales}"
    );
    let history = pipeline
        .read(
            &format!("/v1/movements?store_id={STORE}&kind=void&consistency_token={token}"),
            &admin,
        )
        .await;
    let voids: Vec<(&str, &str)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["status"].as_str().unwrap(),
                row["voids_movement_id"].as_str().unwrap(),
            )
        })
        .collect();
    let sale_id = sale["movement_id"].as_str().unwrap();
    assert_eq!(
        voids,
        [
            ("rejected", sale_id),
            ("applied", sale_id),
            ("applied", mistaken.as_str())
        ],
        "{history}"
    );
    pipeline.stack.cleanup().await;
}
