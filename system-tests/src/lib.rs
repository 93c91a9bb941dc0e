//! The whole pipeline for the system tests: ingest, the processors and query-api run
//! in-process on a test's own stack; movements go in through ingest's HTTP API and come
//! out of query-api. The catalog, the movement generator and the independent model are the
//! test kit's (one model for the processors' tests and these).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use schemas::{MovementKind, StockMovement, StoreId};
use serde_json::{Value, json};
use service_kit::Service;
use service_kit::auth::{Role, TokenKeys};
use service_kit::settings::{IngestSettings, QueryApiSettings};
use test_kit::{TestStack, background};

/// A processor running in-process until the returned sender is used or dropped.
pub async fn start_processor(stack: &TestStack) -> tokio::sync::oneshot::Sender<()> {
    let app = processors::App::build(stack.processors_settings())
        .await
        .unwrap();
    background(|stopped| app.run_until_stopped(stopped))
}

#[derive(Debug)]
pub struct Pipeline {
    pub stack: TestStack,
    pub ingest: String,
    pub query: String,
    pub client: reqwest::Client,
    pub keys: Arc<TokenKeys>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Pipeline {
    /// A stack with the processors' test catalog (two stores, five products, a supplier;
    /// categories `staples` for odd products, `snacks` for even), ingest and query-api
    /// running, and the processors too when `processing`.
    pub async fn start(processing: bool) -> Self {
        Self::start_on(TestStack::start().await, processing).await
    }

    /// [`Pipeline::start`] on a stack the test made itself.
    pub async fn start_on(stack: TestStack, processing: bool) -> Self {
        test_kit::seed_catalog(&stack.pool).await;
        sqlx::query(
            "UPDATE products SET category = CASE WHEN id % 2 = 1 THEN 'staples' ELSE 'snacks' END",
        )
        .execute(&stack.pool)
        .await
        .unwrap();
        let ingest_app = ingest::App::build(stack.ingest_settings()).await.unwrap();
        let ingest = format!("http://127.0.0.1:{}", ingest_app.port());
        let query_settings = stack.query_api_settings();
        let keys = TokenKeys::from_settings(&query_settings.api.auth).unwrap();
        let query_app = query_api::App::build(query_settings).await.unwrap();
        let query = format!("http://127.0.0.1:{}", query_app.port());
        let mut stops = vec![
            background(|stopped| ingest_app.run_until_stopped(stopped)),
            background(|stopped| query_app.run_until_stopped(stopped)),
        ];
        if processing {
            stops.push(start_processor(&stack).await);
        }
        Self {
            stack,
            ingest,
            query,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            keys,
            stops,
        }
    }

    pub async fn start_processor(&mut self) {
        self.stops.push(start_processor(&self.stack).await);
    }

    /// Another query-api on the same stack with `extra` settings.
    pub async fn another_query_api(&mut self, extra: &[(&str, &str)]) -> String {
        let env = self.env_with(Service::QueryApi, extra);
        let settings = QueryApiSettings::from_lookup(|key| env.get(key).cloned()).unwrap();
        let app = query_api::App::build(settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        self.stops
            .push(background(|stopped| app.run_until_stopped(stopped)));
        base
    }

    /// Another ingest on the same stack with `extra` settings.
    pub async fn another_ingest(&mut self, extra: &[(&str, &str)]) -> String {
        let env = self.env_with(Service::Ingest, extra);
        let settings = IngestSettings::from_lookup(|key| env.get(key).cloned()).unwrap();
        let app = ingest::App::build(settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        self.stops
            .push(background(|stopped| app.run_until_stopped(stopped)));
        base
    }

    /// The stack's environment for `service` on a port of its own, with `extra`.
    fn env_with(
        &self,
        service: Service,
        extra: &[(&str, &str)],
    ) -> std::collections::HashMap<String, String> {
        let mut env: std::collections::HashMap<String, String> = self
            .stack
            .env()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        env.insert(service.listen_var().into(), "127.0.0.1:0".into());
        for (key, value) in extra {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
        env
    }

    pub fn token(&self, role: Role, stores: &[i64]) -> String {
        let stores: Vec<StoreId> = stores.iter().copied().map(StoreId).collect();
        self.keys.issue("tester", role, &stores).unwrap().0
    }

    pub fn admin(&self) -> String {
        self.token(Role::Admin, &[])
    }

    /// `GET {base}{path}`: status, headers and the JSON body (`Null` when there is none).
    pub async fn get_from(
        &self,
        base: &str,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self.client.get(format!("{base}{path}")).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// `method {ingest}{path}` with a JSON body: the status and the JSON answer (`Null`
    /// when there is none).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.ingest))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET` from query-api; asserts `200` and returns the body.
    pub async fn read(&self, path: &str, token: &str) -> Value {
        let (status, _, body) = self.get_from(&self.query, path, token, &[]).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// `GET path` until `done` holds of its body (at most 10 s; panics naming `what`): for
    /// reads from the standby of something just written without a consistency token (a
    /// catalog change, say), which the standby replays a moment later.
    pub async fn read_until(
        &self,
        path: &str,
        token: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let body = self.read(path, token).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 10 s for {what}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every page of `path` (which has a `?`), following cursors; `between` runs before
    /// each further page.
    pub async fn all_pages(
        &self,
        path: &str,
        token: &str,
        mut between: impl AsyncFnMut(),
    ) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(cursor) => format!("{path}&cursor={cursor}"),
                None => path.to_owned(),
            };
            let page = self.read(&page_path, token).await;
            rows.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return rows,
            }
            between().await;
        }
    }

    /// Posts `movements` through ingest's batch endpoint in order; every line must be
    /// accepted. Returns the consistency token of the last batch.
    pub async fn post(&self, movements: &[StockMovement]) -> String {
        let mut token = String::new();
        for chunk in movements.chunks(500) {
            let lines: Vec<Value> = chunk.iter().map(line).collect();
            let response = self
                .client
                .post(format!("{}/v1/movements/batch", self.ingest))
                .bearer_auth(self.admin())
                .json(&json!({ "movements": lines }))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["refused"], 0, "{body}");
            token = body["consistency_token"].as_str().unwrap().to_owned();
        }
        token
    }
}

/// A movement as a POS sends it to ingest.
pub fn line(movement: &StockMovement) -> Value {
    assert_ne!(
        movement.kind,
        MovementKind::Unknown,
        "the generator makes none"
    );
    json!({
        "movement_id": movement.movement_id,
        "store_id": movement.store_id.get(),
        "product_id": movement.product_id.get(),
        "kind": movement.kind.as_str(),
        "quantity": movement.quantity,
        "occurred_at": movement.occurred_at,
        "supplier_id": movement.supplier_id.map(|supplier| supplier.get()),
        "unit_cost_paise": movement.unit_cost_paise,
        "unit_price_paise": movement.unit_price_paise,
        "reason": movement.reason,
        "device_id": movement.device_id,
        "offline": movement.offline.then_some(true),
        "restock": movement.restock,
        "note": movement.note,
        "original_movement_id": movement.original_movement_id,
        "voids_movement_id": movement.voids_movement_id,
        "count_id": movement.count_id,
        "transfer_id": movement.transfer_id,
        "to_store_id": movement.to_store_id.map(|store| store.get()),
    })
}

/// The processors' generated stream, moved so that it ends an hour ago (ingest refuses
/// movements from the future) — every copy of a repeated movement moves alike.
pub fn recent_movements(count: usize, seed: u64) -> Vec<StockMovement> {
    let mut movements = test_kit::movements(count, seed);
    let last = movements
        .iter()
        .map(|movement| movement.occurred_at)
        .max()
        .unwrap();
    let shift = Utc::now() - chrono::Duration::hours(1) - last;
    for movement in &mut movements {
        movement.occurred_at += shift;
    }
    movements
}
