//! The two HTTP APIs as the simulator uses them: a token from ingest's login, JSON in and
//! out, and the status of every answer (the simulator counts refusals, it does not fail
//! on them).

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    pub ingest: String,
    pub query: String,
    token: String,
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
        let token = body["access_token"]
            .as_str()
            .context("the login answer has no access_token")?
            .to_owned();
        Ok(Self {
            client,
            ingest,
            query: query.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .client
            .post(format!("{}{path}", self.ingest))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// `GET` from query-api; anything but `200` is an error.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.query))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("query-api does not answer at {}", self.query))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == StatusCode::OK, "GET {path}: {status} {body}");
        Ok(body)
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
