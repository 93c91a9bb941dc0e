//! Rate limits (governor, GCRA): per token subject, and per client address for requests
//! without a valid token. Over the limit: `429` with `Retry-After`, counted in metrics.
//!
//! The middleware verifies the bearer token once and leaves the [`Principal`] in the
//! request's extensions, where the extractor picks it up.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::{IntCounterVec, Opts, Registry};

use crate::auth::{Auth, Principal, bearer_token};
use crate::client::ClientAddress;
use crate::problem::ApiError;

/// A fixed hasher: the same subject must always land on the same budget.
static SUBJECT_HASH: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// Requests per second and burst, per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Limit {
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        Some(Self {
            per_second: NonZeroU32::new(per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }

    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

/// The limiters of one service.
pub struct RateLimits {
    /// Keyed by a hash of the subject, so the hot path allocates nothing.
    per_subject: DefaultKeyedRateLimiter<u64>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    limited: IntCounterVec,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("subjects", &self.per_subject.len())
            .field("addresses", &self.per_address.len())
            .finish()
    }
}

impl RateLimits {
    pub fn new(
        per_subject: Limit,
        per_address: Limit,
        registry: &Registry,
    ) -> Result<Arc<Self>, prometheus::Error> {
        let limited = IntCounterVec::new(
            Opts::new(
                "http_server_rate_limited_total",
                "Requests refused with 429, by what was limited.",
            ),
            &["scope"],
        )?;
        registry.register(Box::new(limited.clone()))?;
        // At 0 from the start: a series that appears only on the first refusal hides a
        // rate() from the dashboards until then.
        for scope in ["subject", "address"] {
            limited.with_label_values(&[scope]);
        }
        Ok(Arc::new(Self {
            per_subject: RateLimiter::keyed(per_subject.quota()),
            per_address: RateLimiter::keyed(per_address.quota()),
            limited,
            clock: DefaultClock::default(),
        }))
    }

    /// Takes one request from `subject`'s budget, or says how long to wait.
    pub fn check_subject(&self, subject: &str) -> Result<(), Duration> {
        self.per_subject
            .check_key(&subject_key(subject))
            .map_err(|not_until| {
                self.limited.with_label_values(&["subject"]).inc();
                not_until.wait_time_from(self.clock.now())
            })
    }

    /// Takes one request from `address`'s budget, or says how long to wait.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Duration> {
        self.per_address.check_key(&address).map_err(|not_until| {
            self.limited.with_label_values(&["address"]).inc();
            not_until.wait_time_from(self.clock.now())
        })
    }

    /// Forgets keys whose budget is full again, so memory stays bounded by recent
    /// callers. Run it periodically.
    pub fn forget_idle(&self) {
        self.per_subject.retain_recent();
        self.per_address.retain_recent();
    }
}

fn subject_key(subject: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = SUBJECT_HASH.build_hasher();
    hasher.write(subject.as_bytes());
    hasher.finish()
}

/// The client's address: as `client::identify` found it, else the connection's peer.
pub fn client_address(request: &Request) -> IpAddr {
    let extensions = request.extensions();
    extensions
        .get::<ClientAddress>()
        .map(|ClientAddress(address)| *address)
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip())
        })
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// What the middleware needs.
#[derive(Clone, Debug)]
pub struct RateLimitState {
    pub limits: Arc<RateLimits>,
    pub auth: Auth,
}

/// Axum middleware: limit by token subject when the token verifies, else by address.
pub async fn limit(
    State(state): State<RateLimitState>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal =
        bearer_token(request.headers()).and_then(|token| state.auth.0.verify(token).ok());
    let verdict = match &principal {
        Some(principal) => state.limits.check_subject(&principal.subject),
        None => {
            let address = client_address(&request);
            state.limits.check_address(address)
        }
    };
    if let Err(retry_after) = verdict {
        return ApiError::RateLimited { retry_after }.into_response();
    }
    if let Some(principal) = principal {
        request.extensions_mut().insert::<Principal>(principal);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::{Role, TokenKeys};
    use crate::settings::{Service, Settings};

    fn keys() -> Arc<TokenKeys> {
        let settings = Settings::from_lookup(Service::Ingest, |var| match var {
            "BAZAAR_ENV" => Some("development".into()),
            "JWT_SECRET" => Some("a-test-only-secret-of-at-least-32-bytes".into()),
            _ => None,
        })
        .unwrap();
        TokenKeys::from_settings(&settings.auth).unwrap()
    }

    async fn whoami(principal: Principal) -> String {
        principal.subject
    }

    fn app(limits: Arc<RateLimits>, keys: Arc<TokenKeys>) -> Router {
        let state = RateLimitState {
            limits,
            auth: Auth(keys.clone()),
        };
        Router::new()
            .route("/whoami", get(whoami))
            .with_state(Auth(keys))
            .layer(axum::middleware::from_fn_with_state(state, limit))
    }

    async fn call(app: &Router, token: Option<&str>) -> Response {
        let mut request = Request::builder().uri("/whoami");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_subject_over_its_burst_gets_429_with_retry_after_then_recovers_and_others_do_not() {
        let registry = Registry::new();
        let limits = RateLimits::new(
            Limit::new(1, 3).unwrap(),
            Limit::new(1, 1).unwrap(),
            &registry,
        )
        .unwrap();
        let keys = keys();
        let app = app(limits, keys.clone());
        let (busy, _) = keys
            .issue("busy-pos", Role::Pos, &[schemas::StoreId(1)])
            .unwrap();
        let (calm, _) = keys
            .issue("calm-pos", Role::Pos, &[schemas::StoreId(1)])
            .unwrap();

        for _ in 0..3 {
            assert_eq!(call(&app, Some(&busy)).await.status(), StatusCode::OK);
        }
        let refused = call(&app, Some(&busy)).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            refused.headers()[header::CONTENT_TYPE],
            crate::problem::PROBLEM_JSON
        );

        // The budget refills at its rate: after Retry-After the subject is served again.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        assert_eq!(call(&app, Some(&busy)).await.status(), StatusCode::OK);

        // Another subject has its own budget, and the handler sees who it is.
        let response = call(&app, Some(&calm)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"calm-pos");

        let counted = registry.gather();
        let limited = counted
            .iter()
            .find(|family| family.name() == "http_server_rate_limited_total")
            .unwrap();
        let count = |scope: &str| {
            limited
                .get_metric()
                .iter()
                .find(|metric| {
                    metric
                        .get_label()
                        .iter()
                        .any(|label| label.value() == scope)
                })
                .map(|metric| metric.get_counter().get_value())
        };
        assert_eq!(count("subject"), Some(1.0));
        assert_eq!(count("address"), Some(0.0), "at 0 before the first refusal");
    }

    #[tokio::test]
    async fn requests_without_a_valid_token_are_limited_by_address() {
        let limits = RateLimits::new(
            Limit::new(100, 100).unwrap(),
            Limit::new(1, 2).unwrap(),
            &Registry::new(),
        )
        .unwrap();
        let app = app(limits, keys());
        // Unauthenticated: 401 while under the address budget, then 429.
        assert_eq!(call(&app, None).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            call(&app, Some("garbage")).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, None).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
