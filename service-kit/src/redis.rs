//! Redis: a cache and a notification channel, never the truth. The handle connects lazily
//! and reconnects by itself, so a service starts (and keeps working) while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::settings::RedisSettings;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    manager: Arc<OnceCell<ConnectionManager>>,
    key_prefix: Arc<str>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Checks the URL (and reads the CA of a `rediss://` one); does not connect yet.
    pub fn new(settings: &RedisSettings) -> redis::RedisResult<Self> {
        let url = settings.url.expose_secret();
        let client = match &settings.tls_ca_file {
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(|error| {
                    redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "REDIS_TLS_CA_FILE cannot be read",
                        format!("{path}: {error}"),
                    ))
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(url, certificates)?
            }
            None => redis::Client::open(url)?,
        };
        Ok(Self {
            client,
            manager: Arc::new(OnceCell::new()),
            key_prefix: settings.key_prefix.as_str().into(),
        })
    }

    /// A multiplexed connection that reconnects on failure. The first call connects; if
    /// that fails, the next call tries again.
    pub async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?;
        Ok(manager.clone())
    }

    /// A dedicated connection for SUBSCRIBE (pub/sub cannot share the multiplexed one).
    pub async fn pubsub(&self) -> anyhow::Result<redis::aio::PubSub> {
        Ok(tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub()).await??)
    }

    /// `prefix + suffix`: every key this deployment writes.
    pub fn key(&self, suffix: &str) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + suffix.len());
        key.push_str(&self.key_prefix);
        key.push_str(suffix);
        key
    }

    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut connection = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
    }

    /// A readiness check: Redis answers PING.
    pub fn readiness_check(
        &self,
    ) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + use<> {
        let redis = self.clone();
        move || {
            let redis = redis.clone();
            async move { redis.ping().await.map_err(|error| error.to_string()) }.boxed()
        }
    }
}
