//! The two HTTP APIs as the simulator uses them: a token from ingest's login (refreshed
//! before it expires, so a run may outlast it), JSON in and out, and the status of every
//! answer (the simulator counts refusals, it does not fail on them).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    pub ingest: String,
    pub query: String,
    tokens: Arc<RwLock<Tokens>>,
    /// Held by the one request that refreshes the tokens.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug)]
struct Tokens {
    access: String,
    refresh: String,
    /// A minute before the access token expires.
    renew_at: Instant,
}

impl Tokens {
    /// From a token answer of ingest (sign-in or refresh).
    fn from_answer(body: &Value) -> anyhow::Result<Self> {
        let text = |field: &str| {
            body[field]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("the token answer has no {field}"))
        };
        let lifetime = body["expires_in"].as_u64().unwrap_or(0);
        Ok(Self {
            access: text("access_token")?,
            refresh: text("refresh_token")?,
            renew_at: Instant::now() + Duration::from_secs(lifetime.saturating_sub(60)),
        })
    }
}

impl Api {
    /// Logs in to ingest as `username`.
    pub async fn login(
        ingest: &str,
        query: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build()?;
        let ingest = ingest.trim_end_matches('/').to_owned();
        let response = client
            .post(format!("{ingest}/v1/auth/token"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .with_context(|| {
                format!("ingest does not answer at {ingest} (is `make up` running?)")
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status == StatusCode::OK,
            "logging in as {username}: {status} {body}"
        );
        Ok(Self {
            client,
            ingest,
            query: query.trim_end_matches('/').to_owned(),
            tokens: Arc::new(RwLock::new(Tokens::from_answer(&body)?)),
            refreshing: Arc::default(),
        })
    }

    /// The access token, refreshed first when it is about to expire.
    async fn token(&self) -> anyhow::Result<String> {
        {
            let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
            if Instant::now() < tokens.renew_at {
                return Ok(tokens.access.clone());
            }
        }
        let _refreshing = self.refreshing.lock().await;
        let refresh = {
            let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
            if Instant::now() < tokens.renew_at {
                return Ok(tokens.access.clone());
            }
            tokens.refresh.clone()
        };
        let response = self
            .client
            .post(format!("{}/v1/auth/refresh", self.ingest))
            .json(&json!({ "refresh_token": refresh }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status == StatusCode::OK,
            "refreshing the token: {status} {body}"
        );
        let fresh = Tokens::from_answer(&body)?;
        let access = fresh.access.clone();
        *self.tokens.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(access)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .client
            .post(format!("{}{path}", self.ingest))
            .bearer_auth(self.token().await?)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// `GET` from query-api.
    async fn answer(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        self.client
            .get(format!("{}{path}", self.query))
            .bearer_auth(self.token().await?)
            .send()
            .await
            .with_context(|| format!("query-api does not answer at {}", self.query))
    }

    /// `GET` from query-api; anything but `200` is an error.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.answer(path).await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == StatusCode::OK, "GET {path}: {status} {body}");
        Ok(body)
    }

    /// Whether `GET path` from query-api finds it (`200`; `404`: not yet).
    pub async fn found(&self, path: &str) -> anyhow::Result<bool> {
        match self.answer(path).await?.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => anyhow::bail!("GET {path}: {status}"),
        }
    }

    /// Every item of a paged list (which has a `?`).
    pub async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                Some(cursor) => self.get(&format!("{path}&cursor={cursor}")).await?,
                None => self.get(path).await?,
            };
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }
}
