//! The dashboards' event streams (`GET /v1/stores/{id}/events`) through the whole
//! pipeline: scoped to the token's stores, each applied movement's balance (and its
//! alerts) in ledger order, and a reconnect with `Last-Event-ID` going on with nothing
//! lost of what happened while it was away.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service_kit::auth::Role;
use system_tests::Pipeline;
use test_kit::{REORDER_POINT, SUPPLIER};
use uuid::Uuid;

const STORE: i64 = 1;
const PRODUCT: i64 = 3;

/// One server-sent event.
#[derive(Debug, Clone)]
struct Event {
    id: Option<String>,
    kind: String,
    data: Value,
}

/// An open stream, read event by event.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(pipeline: &Pipeline, token: &str, last_id: Option<&str>) -> Self {
        // Until the processors have taken their partitions on, a stream is 503: try again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut response = open(&pipeline.query, STORE, token, last_id).await;
        while response.status() == StatusCode::SERVICE_UNAVAILABLE
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            response = open(&pipeline.query, STORE, token, last_id).await;
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments, the keep-alives, are skipped); panics after 10 s.
    async fn next(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = Event {
                        id: None,
                        kind: "message".into(),
                        data: Value::Null,
                    };
                    let mut data = String::new();
                    for line in block.lines() {
                        match line.split_once(':') {
                            Some(("id", value)) => event.id = Some(value.trim().to_owned()),
                            Some(("event", value)) => event.kind = value.trim().to_owned(),
                            Some(("data", value)) => data.push_str(value.trim()),
                            _ => {}
                        }
                    }
                    if data.is_empty() {
                        continue;
                    }
                    event.data = serde_json::from_str(&data).unwrap();
                    return event;
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream ended");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("no event within 10 s")
    }

    /// The next `balance` events until one with `quantity` for the product, with the
    /// alerts seen on the way.
    async fn until_balance(&mut self, quantity: i64) -> (Vec<Event>, Vec<Event>) {
        let (mut balances, mut alerts) = (Vec::new(), Vec::new());
        loop {
            let event = self.next().await;
            match event.kind.as_str() {
                "balance" => {
                    let done =
                        event.data["product_id"] == PRODUCT && event.data["quantity"] == quantity;
                    balances.push(event);
                    if done {
                        return (balances, alerts);
                    }
                }
                "alert" => alerts.push(event),
                _ => {}
            }
        }
    }
}

async fn open(base: &str, store: i64, token: &str, last_id: Option<&str>) -> reqwest::Response {
    // No overall timeout: a stream stays open.
    let client = reqwest::Client::new();
    let mut request = client
        .get(format!("{base}/v1/stores/{store}/events"))
        .bearer_auth(token);
    if let Some(id) = last_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await.unwrap()
}

async fn movement(pipeline: &Pipeline, token: &str, kind: &str, quantity: i64) -> Value {
    let mut body = json!({"movement_id": Uuid::new_v4(), "store_id": STORE, "product_id": PRODUCT,
        "kind": kind, "quantity": quantity, "occurred_at": Utc::now() - chrono::Duration::seconds(2)});
    if kind == "stock_in" {
        body["unit_cost_paise"] = json!(100);
        body["supplier_id"] = json!(SUPPLIER);
    } else {
        body["unit_price_paise"] = json!(150);
    }
    let (status, answer) = pipeline
        .send(Method::POST, "/v1/movements?wait=5s", token, body)
        .await;
    assert_eq!(answer["status"], "applied", "{status} {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_shows_each_change_live_and_a_reconnect_loses_none() {
    let mut pipeline = Pipeline::start(true).await;
    let manager = pipeline.token(Role::Manager, &[STORE]);

    // Scoped: another store is 403, an unknown one 404, a bad position 400.
    for (store, token, expected) in [
        (2, manager.clone(), StatusCode::FORBIDDEN),
        (999, pipeline.admin(), StatusCode::NOT_FOUND),
    ] {
        let response = open(&pipeline.query, store, &token, None).await;
        assert_eq!(response.status(), expected);
    }
    let response = open(&pipeline.query, STORE, &manager, Some("nonsense")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "Last-Event-ID", "{problem}");

    let mut stream = Stream::open(&pipeline, &manager, None).await;
    let ready = stream.next().await;
    assert_eq!(ready.kind, "ready", "{ready:?}");
    let stocked = movement(&pipeline, &manager, "stock_in", 20).await;
    let (balances, _) = stream.until_balance(20).await;
    let last = balances.last().unwrap();
    assert_eq!(last.data["kind"], "stock_in");
    assert_eq!(last.data["movement_id"], stocked["movement_id"]);
    let seen = last.id.clone().unwrap();

    // Away: sales while no stream is open, down through the reorder point.
    drop(stream);
    let mut expected = vec![20];
    for quantity in [4, 5, 3] {
        let answer = movement(&pipeline, &manager, "sale", quantity).await;
        expected.push(answer["balance_after"].as_i64().unwrap());
    }
    assert!(*expected.last().unwrap() <= REORDER_POINT);

    // Back with the last id seen: every change since, in order, and the alert.
    let mut stream = Stream::open(&pipeline, &manager, Some(&seen)).await;
    assert_eq!(stream.next().await.kind, "ready");
    let (balances, mut alerts) = stream.until_balance(*expected.last().unwrap()).await;
    // A movement's alerts follow its balance.
    alerts.push(stream.next().await);
    let quantities: Vec<i64> = balances
        .iter()
        .filter(|event| event.data["product_id"] == PRODUCT)
        .map(|event| event.data["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(quantities, expected[1..], "{balances:?}");
    assert!(
        alerts
            .iter()
            .any(|alert| alert.data["kind"] == "low_stock" && alert.data["product_id"] == PRODUCT),
        "{alerts:?}"
    );
    // The stream's position reads the inventory at least as new as the stream.
    let position = balances.last().unwrap().id.clone().unwrap();
    let product = pipeline
        .read(
            &format!("/v1/stores/{STORE}/inventory/{PRODUCT}?consistency_token={position}"),
            &manager,
        )
        .await;
    assert_eq!(product["quantity"], *expected.last().unwrap(), "{product}");

    // Bounded per subject.
    let limited = pipeline
        .another_query_api(&[("QUERY_EVENT_STREAMS_PER_SUBJECT", "1")])
        .await;
    let first = open(&limited, STORE, &manager, None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = open(&limited, STORE, &manager, None).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let again = open(&limited, STORE, &manager, None).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed stream still counts"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pipeline.stack.cleanup().await;
}
