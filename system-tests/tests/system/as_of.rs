//! Stock as of a past time through the whole pipeline: movements spread over three weeks,
//! some of them synced late, and a count; `as_of` answers equal the model's balances at
//! ten random past times (and at the movements' own times), as known now and as known
//! before the late ones were recorded (`known_at`).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::Pipeline;
use test_kit::SUPPLIER;

/// Store 2 allows negative stock: every movement is applied, whatever order it arrives in.
const STORE: i64 = 2;
const PRODUCTS: [i64; 2] = [1, 2];

/// An applied movement as the model sees it: when it occurred, which wave recorded it,
/// what it changed.
struct Change {
    product: i64,
    occurred_at: DateTime<Utc>,
    wave: u8,
    delta: i64,
}

fn book(changes: &[Change], product: i64, at: DateTime<Utc>, wave: u8) -> i64 {
    changes
        .iter()
        .filter(|change| change.product == product && change.occurred_at <= at)
        .filter(|change| change.wave <= wave)
        .map(|change| change.delta)
        .sum()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_as_of_any_past_time_equals_the_model_as_known_now_and_then() {
    let pipeline = Pipeline::start(true).await;
    let staff = pipeline.token(service_kit::auth::Role::Staff, &[STORE]);
    let mut state = test_kit::movements::seed();
    let mut random = |below: i64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as i64
    };
    // Microseconds: what the wire carries.
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let ago = |micros: i64| now - Duration::microseconds(micros);
    const DAY: i64 = 86_400_000_000;
    let mut changes = Vec::new();
    let mut token = String::new();
    let mut send = async |product: i64, kind: &str, quantity: i64, at: DateTime<Utc>| {
        let mut body = json!({"movement_id": uuid::Uuid::new_v4(), "store_id": STORE,
            "product_id": product, "kind": kind, "quantity": quantity, "occurred_at": at});
        if kind == "stock_in" {
            body["supplier_id"] = json!(SUPPLIER);
            body["unit_cost_paise"] = json!(100);
        }
        let (status, answer) = pipeline
            .send(Method::POST, "/v1/movements?wait=5s", &staff, body)
            .await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (StatusCode::CREATED, Some("applied")),
            "{answer}"
        );
        token = answer["consistency_token"].as_str().unwrap().to_owned();
    };

    // The first wave: three weeks of stock-ins and sales, in no order of time.
    for product in PRODUCTS {
        for _ in 0..12 {
            let at = ago(1 + random(21 * DAY));
            let (kind, quantity) = if random(3) == 0 {
                ("stock_in", 1 + random(40))
            } else {
                ("sale", 1 + random(9))
            };
            send(product, kind, quantity, at).await;
            let delta = if kind == "sale" { -quantity } else { quantity };
            changes.push(Change {
                product,
                occurred_at: at,
                wave: 1,
                delta,
            });
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let known_at = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // The second: sales a till synced late, then a count of the first product three days
    // ago (sent last, so that nothing it supersedes arrives after it).
    for _ in 0..6 {
        let (at, quantity) = (ago(DAY + random(14 * DAY)), 1 + random(5));
        send(PRODUCTS[0], "sale", quantity, at).await;
        changes.push(Change {
            product: PRODUCTS[0],
            occurred_at: at,
            wave: 2,
            delta: -quantity,
        });
    }
    // Its variance: what it counted less the book as of its time.
    let counted_at = ago(3 * DAY);
    send(PRODUCTS[0], "count", 50, counted_at).await;
    let variance = 50 - book(&changes, PRODUCTS[0], counted_at, 2);
    changes.push(Change {
        product: PRODUCTS[0],
        occurred_at: counted_at,
        wave: 2,
        delta: variance,
    });

    let admin = pipeline.admin();
    let mut times: Vec<DateTime<Utc>> = (0..10).map(|_| ago(random(22 * DAY))).collect();
    // At a movement's own time it counts; the count's time reads what it counted.
    times.extend([changes[0].occurred_at, counted_at, now]);
    for at in times {
        let store = pipeline
            .read(
                &format!(
                    "/v1/stores/{STORE}/inventory?as_of={}&consistency_token={token}",
                    rfc3339(at)
                ),
                &admin,
            )
            .await;
        let listed: Vec<(i64, i64)> = store["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["product_id"].as_i64().unwrap(),
                    item["quantity"].as_i64().unwrap(),
                )
            })
            .collect();
        let expected: Vec<(i64, i64)> = PRODUCTS
            .iter()
            .map(|product| (*product, book(&changes, *product, at, 2)))
            .collect();
        assert_eq!(listed, expected, "as of {at}: {store}");

        for product in PRODUCTS {
            let then = pipeline
                .read(
                    &format!(
                        "/v1/stores/{STORE}/inventory/{product}?as_of={}&known_at={}",
                        rfc3339(at),
                        rfc3339(known_at)
                    ),
                    &admin,
                )
                .await;
            assert_eq!(
                then["quantity"].as_i64(),
                Some(book(&changes, product, at, 1)),
                "as of {at} as known at {known_at}: {then}"
            );
        }
    }
    // Known a day ago, nothing had been recorded yet.
    let yesterday = pipeline
        .read(
            &format!(
                "/v1/stores/{STORE}/inventory?as_of={}&known_at={}",
                rfc3339(now),
                rfc3339(now - Duration::days(1))
            ),
            &admin,
        )
        .await;
    assert!(
        yesterday["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["quantity"] == 0),
        "{yesterday}"
    );

    // What cannot be answered says which parameter is at fault.
    for (query, field, code) in [
        (
            format!("as_of={}", rfc3339(Utc::now() + Duration::hours(1))),
            "as_of",
            "in_future",
        ),
        (
            format!("known_at={}", rfc3339(now)),
            "known_at",
            "requires_as_of",
        ),
        (
            format!("as_of={}&stock_status=low", rfc3339(now)),
            "as_of",
            "not_with_stock_status",
        ),
        ("as_of=yesterday".to_owned(), "as_of", "invalid"),
    ] {
        let (status, _, problem) = pipeline
            .get_from(
                &pipeline.query,
                &format!("/v1/stores/{STORE}/inventory?{query}"),
                &admin,
                &[],
            )
            .await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{query}: {problem}"
        );
        if code != "invalid" {
            assert_eq!(problem["errors"][0]["code"], code, "{query}: {problem}");
        }
    }
    pipeline.stack.cleanup().await;
}
