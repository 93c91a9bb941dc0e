//! Helpers shared by ingest's integration tests.

use std::time::Duration;

use ingest::users;
use reqwest::StatusCode;
use serde_json::Value;
use test_kit::TestStack;

pub struct Running {
    pub base: String,
    pub client: reqwest::Client,
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// The same service, reached from another loopback address (`127.0.0.{last}`): another
    /// device.
    pub fn reached_from(&self, last: u8) -> Self {
        Self {
            base: self.base.clone(),
            client: client(Some(std::net::IpAddr::from([127, 0, 0, last]))),
            _stop: None,
        }
    }
}

/// A client connecting from `local` (or wherever the system picks).
fn client(local: Option<std::net::IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn start(stack: &TestStack) -> Running {
    let app = ingest::App::build(stack.ingest_settings()).await.unwrap();
    let port = app.port();
    let stop = test_kit::background(|stopped| app.run_until_stopped(stopped));
    Running {
        base: format!("http://127.0.0.1:{port}"),
        client: client(None),
        _stop: Some(stop),
    }
}

pub async fn login(app: &Running, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = app
        .client
        .post(format!("{}/v1/auth/token", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

pub async fn add_user(
    stack: &TestStack,
    username: &str,
    password: &str,
    role: &str,
    stores: &[i64],
    disabled: bool,
) {
    let hash = users::hash_password(password.to_owned()).await.unwrap();
    sqlx::query(
        "INSERT INTO users (username, password_hash, role, store_ids, disabled_at)
         VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)",
    )
    .bind(username)
    .bind(hash)
    .bind(role)
    .bind(stores)
    .bind(disabled)
    .execute(&stack.pool)
    .await
    .unwrap();
}

pub const ADMIN_PASSWORD: &str = "the-admins-password";

/// A test's stack, the app running on it, and a token of its bootstrap admin.
pub async fn with_admin() -> (TestStack, Running, String) {
    let stack = TestStack::start().await;
    users::ensure_admin(&stack.pool, "admin", ADMIN_PASSWORD.into())
        .await
        .unwrap();
    let app = start(&stack).await;
    let admin = token(&app, "admin", ADMIN_PASSWORD).await;
    (stack, app, admin)
}

/// A bearer token for `username`, through the real login route.
pub async fn token(app: &Running, username: &str, password: &str) -> String {
    let (status, _, body) = login(
        app,
        serde_json::json!({"username": username, "password": password}),
    )
    .await;
    assert_eq!(status, 200, "login as {username}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Sends `method path` with a JSON body and an optional token.
pub async fn send(
    app: &Running,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A store row, as the catalog will create it.
pub async fn add_store(stack: &TestStack, code: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO stores (code, name, city) VALUES ($1, $1, 'Mumbai') RETURNING id",
    )
    .bind(code)
    .fetch_one(&stack.pool)
    .await
    .unwrap()
}

/// A product row.
pub async fn add_product(stack: &TestStack, sku: &str) -> i64 {
    sqlx::query_scalar("INSERT INTO products (sku, name, unit) VALUES ($1, $1, 'pc') RETURNING id")
        .bind(sku)
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}

/// A supplier row.
pub async fn add_supplier(stack: &TestStack) -> i64 {
    sqlx::query_scalar("INSERT INTO suppliers (name) VALUES ('Metro') RETURNING id")
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}
