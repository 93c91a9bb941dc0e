//! Rate limits (GCRA): per token subject, and per client address for requests without a
//! valid token. The budgets live in Redis, shared by every instance of the service, so a
//! subject's limit is the configured one however many instances serve it; each instance
//! takes a budget's requests a share at a time and spends them locally ([`lease`]), so a
//! request costs a Redis call only when its share runs out. While Redis is away each
//! instance keeps budgets of its own (governor) and `/readyz` says so. Every
//! answer carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers)
//! so clients can pace themselves; over the limit: `429` with `Retry-After`, counted in
//! metrics.
//!
//! The middleware verifies the bearer token once and leaves the [`Principal`] in the
//! request's extensions, where the extractor picks it up.

mod lease;
mod shared;

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::auth::{Auth, Principal, bearer_token};
use crate::client::ClientAddress;
use crate::problem::ApiError;
use crate::redis::Redis;
use lease::Leases;
use shared::Shared;

/// A fixed hasher: the same subject must always land on the same budget.
static SUBJECT_HASH: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

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

    fn interval(self) -> Duration {
        Duration::from_secs(1) / self.per_second.get()
    }

    /// `RateLimit-Policy`: a quota of `burst` requests in the window that refills it.
    fn policy(self, name: &str) -> HeaderValue {
        let window = self.burst.get().div_ceil(self.per_second.get());
        HeaderValue::try_from(format!("\"{name}\";q={};w={window}", self.burst))
            .expect("a policy is ASCII")
    }
}

/// One request taken from (or refused by) a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests left in the burst after this one.
    pub remaining: u32,
    /// Until the whole burst is available again.
    pub full_in: Duration,
    /// Refused: until one more request would be allowed.
    pub retry_after: Duration,
}

type Budgets<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One kind of budget: its limit, its header, the shares of the shared budgets this
/// instance holds, and its own budgets for while Redis is away.
struct Scope<K: Hash + Eq + Clone> {
    name: &'static str,
    limit: Limit,
    policy: HeaderValue,
    leases: Leases<K>,
    local: Budgets<K>,
}

impl<K: Hash + Eq + Clone> Scope<K> {
    fn new(name: &'static str, limit: Limit) -> Self {
        Self {
            name,
            limit,
            policy: limit.policy(name),
            leases: Leases::new(limit),
            local: RateLimiter::keyed(limit.quota())
                .with_middleware::<StateInformationMiddleware>(),
        }
    }

    fn check_locally(&self, key: &K, clock: &DefaultClock) -> Decision {
        let interval = self.limit.interval();
        match self.local.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    full_in: interval * (self.limit.burst.get() - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => Decision {
                allowed: false,
                remaining: 0,
                full_in: interval * self.limit.burst.get(),
                retry_after: not_until.wait_time_from(clock.now()),
            },
        }
    }
}

/// The limiters of one service.
pub struct RateLimits {
    /// This instance's budgets are keyed by a hash of the subject: no copy of it is kept.
    per_subject: Scope<u64>,
    per_address: Scope<IpAddr>,
    shared: Option<Shared>,
    limited: IntCounterVec,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("shared", &self.shared.is_some())
            .field("leased_subjects", &self.per_subject.leases.len())
            .field("local_subjects", &self.per_subject.local.len())
            .field("local_addresses", &self.per_address.local.len())
            .finish()
    }
}

impl RateLimits {
    /// Budgets in `redis` (under its key prefix) when given, else this instance's alone.
    pub fn new(
        per_subject: Limit,
        per_address: Limit,
        redis: Option<Redis>,
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
        let calls = IntCounter::new(
            "http_server_rate_limit_redis_calls_total",
            "Calls to Redis for the shared rate-limit budgets: each takes a share of one.",
        )?;
        registry.register(Box::new(calls.clone()))?;
        Ok(Arc::new(Self {
            per_subject: Scope::new("subject", per_subject),
            per_address: Scope::new("address", per_address),
            shared: redis.map(|redis| Shared::new(redis, calls)),
            limited,
            clock: DefaultClock::default(),
        }))
    }

    /// Takes one request from `subject`'s budget.
    pub async fn check_subject(&self, subject: &str) -> Decision {
        let key = subject_key(subject);
        self.check(&self.per_subject, key, || format!("{key:016x}"))
            .await
    }

    /// Takes one request from `address`'s budget.
    pub async fn check_address(&self, address: IpAddr) -> Decision {
        self.check(&self.per_address, address, || address.to_string())
            .await
    }

    async fn check<K: Hash + Eq + Clone>(
        &self,
        scope: &Scope<K>,
        key: K,
        shared_key: impl FnOnce() -> String,
    ) -> Decision {
        let decision = match &self.shared {
            Some(shared) => match scope.leases.spend(key.clone(), Instant::now()) {
                Ok(decision) => Some(decision),
                Err(ask) => {
                    let redis_key = format!("ratelimit:{}:{}", scope.name, shared_key());
                    let grant = shared.take(&redis_key, scope.limit, ask).await;
                    match grant {
                        Some(grant) => {
                            Some(scope.leases.keep(key.clone(), ask, grant, Instant::now()))
                        }
                        None => {
                            scope.leases.unanswered(&key, ask);
                            None
                        }
                    }
                }
            },
            None => None,
        };
        let decision = decision.unwrap_or_else(|| scope.check_locally(&key, &self.clock));
        if !decision.allowed {
            self.limited.with_label_values(&[scope.name]).inc();
        }
        decision
    }

    /// Forgets this instance's budgets that are full again and shares that have expired,
    /// so memory stays bounded by recent callers. Run it periodically.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        self.per_subject.leases.forget_idle(now);
        self.per_address.leases.forget_idle(now);
        self.per_subject.local.retain_recent();
        self.per_address.local.retain_recent();
    }

    /// An optional readiness check: degraded while the budgets are per instance because
    /// Redis is away (limits are then N times the configured one behind N instances); not
    /// when they are per instance by configuration.
    pub fn readiness_check(
        self: &Arc<Self>,
    ) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + use<> {
        let limits = self.clone();
        move || {
            let shared = limits.shared.as_ref().is_none_or(Shared::is_shared);
            async move {
                if shared {
                    Ok(())
                } else {
                    Err("budgets per instance: Redis is unreachable".to_owned())
                }
            }
            .boxed()
        }
    }

    /// `RateLimit-Policy` and `RateLimit` for an answer that took from `scope`'s budget.
    fn headers(&self, scope: &str, decision: &Decision, headers: &mut HeaderMap) {
        let policy = match scope {
            "subject" => &self.per_subject.policy,
            _ => &self.per_address.policy,
        };
        headers.insert(RATELIMIT_POLICY.clone(), policy.clone());
        let reset = decision.full_in.as_secs_f64().ceil() as u64;
        let current = format!("\"{scope}\";r={};t={reset}", decision.remaining);
        if let Ok(value) = HeaderValue::try_from(current) {
            headers.insert(RATELIMIT.clone(), value);
        }
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
    let (scope, decision) = match &principal {
        Some(principal) => (
            "subject",
            state.limits.check_subject(&principal.subject).await,
        ),
        None => {
            let address = client_address(&request);
            ("address", state.limits.check_address(address).await)
        }
    };
    let mut response = if decision.allowed {
        if let Some(principal) = principal {
            request.extensions_mut().insert::<Principal>(principal);
        }
        next.run(request).await
    } else {
        ApiError::RateLimited {
            retry_after: decision.retry_after,
        }
        .into_response()
    };
    state
        .limits
        .headers(scope, &decision, response.headers_mut());
    response
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
    use crate::settings::IngestSettings;

    fn keys() -> Arc<TokenKeys> {
        let settings = IngestSettings::from_lookup(|var| match var {
            "BAZAAR_ENV" => Some("development".into()),
            "JWT_SECRET" => Some("a-test-only-secret-of-at-least-32-bytes".into()),
            _ => None,
        })
        .unwrap();
        TokenKeys::from_settings(&settings.api.auth).unwrap()
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
            None,
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

        // Each answer says what is left of the burst and when it is whole again.
        for remaining in (0..3).rev() {
            let response = call(&app, Some(&busy)).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()["ratelimit-policy"],
                "\"subject\";q=3;w=3"
            );
            let expected = format!("\"subject\";r={remaining};t={}", 3 - remaining);
            assert_eq!(response.headers()["ratelimit"], expected.as_str());
        }
        let refused = call(&app, Some(&busy)).await;
        assert_eq!(refused.headers()["ratelimit"], "\"subject\";r=0;t=3");
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
    async fn budgets_per_instance_by_configuration_are_not_a_degraded_state() {
        let limit = Limit::new(1, 1).unwrap();
        let limits = RateLimits::new(limit, limit, None, &Registry::new()).unwrap();
        assert_eq!(limits.readiness_check()().await, Ok(()));
    }

    #[tokio::test]
    async fn requests_without_a_valid_token_are_limited_by_address() {
        let limits = RateLimits::new(
            Limit::new(100, 100).unwrap(),
            Limit::new(1, 2).unwrap(),
            None,
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
