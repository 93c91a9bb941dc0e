//! `POST /v1/auth/token`: username and password in, signed JWT out.
//!
//! Failed logins are throttled per (username, address), per address and — more slowly —
//! per username, so guessing is slow whichever one an attacker varies, while successful
//! logins (many POS devices sharing a user, say) are never held back and failures from
//! one address cannot lock a user out of the others (the per-username guard refuses only
//! addresses that have been failing). Once a key has used its allowance of failures, its
//! next attempts are refused before the password is even checked until the allowance
//! refills. Unknown users, wrong passwords and disabled users get the same answer, in
//! about the same time.
//!
//! The throttle's state lives in Redis, shared by every ingest instance (`shared`); while
//! Redis is unreachable each instance throttles with its own (governor) instead.

pub mod sessions;
mod shared;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::{Extension, Json};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Role, TokenKeys};
use service_kit::client::ClientAddress;
use service_kit::problem::{ApiError, FieldError};
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::users::{self, Credentials};

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    #[schema(example = "admin")]
    pub username: String,
    #[schema(example = "see .local/admin-password")]
    pub password: String,
}

/// An OAuth2-style token answer: a short-lived bearer token and the refresh token that
/// buys the next one (`POST /v1/auth/refresh`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: i64,
    /// Opaque; good for one `POST /v1/auth/refresh`. Keep it secret, like a password.
    pub refresh_token: String,
    /// Seconds until the refresh token expires if unused.
    #[schema(example = 1_209_600)]
    pub refresh_expires_in: i64,
    pub role: Role,
    /// Stores the token may touch; empty means all (admin and analyst).
    pub stores: Vec<i64>,
}

/// Failures of one username from one address: the 5th locks that pair, then one more try
/// every 10 s. Only that address is held back: the user's own devices are not.
pub(crate) const PER_PAIR: (u32, Duration) = (5, Duration::from_secs(10));
/// Failures from one address, whatever the username: the 30th locks the address, then one
/// more try every 2 s.
pub(crate) const PER_ADDRESS: (u32, Duration) = (30, Duration::from_secs(2));
/// Failures of one username from every address: the 50th puts the username under guard,
/// then one more failure every 60 s. Under guard, addresses that have been failing (for any
/// username, in the last `FAILING_FOR`) are refused; an address that has not been failing
/// is still heard, so the right password from the user's own device still works while
/// guesses spread over many addresses slow to a trickle.
pub(crate) const PER_USERNAME: (u32, Duration) = (50, Duration::from_secs(60));
/// How long an address that failed a login counts as failing.
pub(crate) const FAILING_FOR: Duration = Duration::from_secs(15 * 60);

/// The limiter that refuses (and so locks) the `failures`-th failure in a row.
fn quota((failures, every): (u32, Duration)) -> Quota {
    let burst = NonZeroU32::new(failures.saturating_sub(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// Password checks at once (argon2 takes a core for tens of milliseconds each); beyond,
/// a login waits up to `HASHING_WAIT`, then is answered `503 busy` with `Retry-After`.
fn hashing_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get() * 2)
}
const HASHING_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct LoginState {
    pub pool: PgPool,
    pub keys: Arc<TokenKeys>,
    throttle: Arc<Throttle>,
    shared: Option<Arc<shared::SharedThrottle>>,
    hashing: Arc<tokio::sync::Semaphore>,
    logins: IntCounterVec,
    lifetimes: Lifetimes,
}

/// How long refresh tokens and sessions live.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub refresh: Duration,
    pub session: Duration,
}

impl From<&service_kit::settings::AuthSettings> for Lifetimes {
    fn from(settings: &service_kit::settings::AuthSettings) -> Self {
        Self {
            refresh: settings.refresh_lifetime,
            session: settings.session_lifetime,
        }
    }
}

impl axum::extract::FromRef<LoginState> for service_kit::auth::Auth {
    fn from_ref(state: &LoginState) -> Self {
        Self(state.keys.clone())
    }
}

impl std::fmt::Debug for LoginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginState").finish_non_exhaustive()
    }
}

/// Counts failures with governor's GCRA; a key whose failure is refused by its limiter
/// is locked until the limiter would allow the next one.
struct Throttle {
    per_pair: DefaultKeyedRateLimiter<(String, IpAddr)>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_username: DefaultKeyedRateLimiter<String>,
    locks: Mutex<Locks>,
}

#[derive(Default)]
struct Locks {
    until: HashMap<Locked, Instant>,
    /// When each address last failed a login.
    failing: HashMap<IpAddr, Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Locked {
    Pair(String, IpAddr),
    Address(IpAddr),
    /// Under guard: refused to failing addresses only.
    Username(String),
}

/// Beyond this many locked keys or failing addresses, expired ones are swept on the next
/// failure.
const SWEEP_ABOVE: usize = 10_000;

impl Throttle {
    fn new() -> Self {
        Self {
            per_pair: RateLimiter::keyed(quota(PER_PAIR)),
            per_address: RateLimiter::keyed(quota(PER_ADDRESS)),
            per_username: RateLimiter::keyed(quota(PER_USERNAME)),
            locks: Mutex::default(),
        }
    }

    /// How long `username` from `address` must still wait, if it must.
    fn wait(&self, username: &str, address: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        let failing = locks
            .failing
            .get(&address)
            .is_some_and(|at| now.duration_since(*at) < FAILING_FOR);
        let mut keys = vec![
            Locked::Pair(username.to_owned(), address),
            Locked::Address(address),
        ];
        if failing {
            keys.push(Locked::Username(username.to_owned()));
        }
        keys.iter()
            .filter_map(|key| locks.until.get(key))
            .map(|until| until.saturating_duration_since(now))
            .filter(|wait| !wait.is_zero())
            .max()
    }

    /// Counts a failure against the pair, the address and the username; locks those that
    /// ran out.
    fn failed(&self, username: &str, address: IpAddr) {
        let clock = DefaultClock::default();
        let refused = [
            (
                Locked::Pair(username.to_owned(), address),
                self.per_pair
                    .check_key(&(username.to_owned(), address))
                    .err(),
            ),
            (
                Locked::Address(address),
                self.per_address.check_key(&address).err(),
            ),
            (
                Locked::Username(username.to_owned()),
                self.per_username.check_key(&username.to_owned()).err(),
            ),
        ];
        let now = Instant::now();
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.until.len() > SWEEP_ABOVE || locks.failing.len() > SWEEP_ABOVE {
            locks.until.retain(|_, until| *until > now);
            locks
                .failing
                .retain(|_, at| now.duration_since(*at) < FAILING_FOR);
            self.per_pair.retain_recent();
            self.per_address.retain_recent();
            self.per_username.retain_recent();
        }
        locks.failing.insert(address, now);
        for (key, not_until) in refused {
            if let Some(not_until) = not_until {
                locks
                    .until
                    .insert(key, now + not_until.wait_time_from(clock.now()));
            }
        }
    }
}

impl LoginState {
    /// Throttles through `redis` when given (shared by every instance), else alone.
    pub fn new(
        pool: PgPool,
        keys: Arc<TokenKeys>,
        redis: Option<service_kit::redis::Redis>,
        lifetimes: Lifetimes,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let logins = IntCounterVec::new(
            Opts::new(
                "bazaar_logins_total",
                "Token requests (logins and refreshes), by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(logins.clone()))?;
        Ok(Self {
            pool,
            keys,
            throttle: Arc::new(Throttle::new()),
            shared: redis.map(|redis| Arc::new(shared::SharedThrottle::new(redis))),
            hashing: Arc::new(tokio::sync::Semaphore::new(hashing_slots())),
            logins,
            lifetimes,
        })
    }
}

impl LoginState {
    /// How long `username` from `address` must still wait, if it must.
    async fn must_wait(&self, username: &str, address: IpAddr) -> Option<Duration> {
        if let Some(shared) = &self.shared
            && let Some(wait) = shared.wait(username, address).await
        {
            return (!wait.is_zero()).then_some(wait);
        }
        self.throttle.wait(username, address)
    }

    /// Checks `password` against `hash` in one of the hashing slots; `busy` when none
    /// frees up in time.
    async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        let slot = tokio::time::timeout(HASHING_WAIT, self.hashing.acquire())
            .await
            .ok()
            .and_then(Result::ok);
        let Some(_slot) = slot else {
            self.logins.with_label_values(&["busy"]).inc();
            return Err(ApiError::Unavailable {
                code: "busy",
                detail: "too many passwords are being checked at once".into(),
                retry_after: Duration::from_secs(1),
            });
        };
        Ok(users::verify_password(password, hash).await?)
    }

    async fn failed(&self, username: &str, address: IpAddr) {
        if let Some(shared) = &self.shared
            && shared.failed(username, address).await.is_some()
        {
            return;
        }
        self.throttle.failed(username, address);
    }
}

/// A hash to verify against when the user does not exist, so that the answer takes as
/// long as for a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        argon2::Argon2::default()
            .hash_password(
                b"decoy-password-never-valid",
                &SaltString::generate(&mut OsRng),
            )
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthenticated {
        code: "invalid_credentials",
        detail: "unknown username or wrong password".into(),
    }
}

/// The client's address, or the unspecified address when the request carries none.
fn client_address(address: Option<Extension<ClientAddress>>) -> IpAddr {
    address.map_or(
        IpAddr::from([0, 0, 0, 0]),
        |Extension(ClientAddress(address))| address,
    )
}

/// Sign in: a username and password buy an access token and a refresh token (a new
/// session).
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "A signed access token and a refresh token", body = TokenResponse),
        (status = 400, description = "A field is missing or empty", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown username, wrong password or disabled user (`invalid_credentials`)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this username or address; see Retry-After", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many logins being checked at once (`busy`); see Retry-After", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(username))]
pub async fn issue_token(
    State(state): State<LoginState>,
    address: Option<Extension<ClientAddress>>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let Json(request) = body?;
    let mut problems = Vec::new();
    if request.username.trim().is_empty() {
        problems.push(FieldError::new("username", "required", "must not be empty"));
    }
    if request.password.is_empty() {
        problems.push(FieldError::new("password", "required", "must not be empty"));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    tracing::Span::current().record("username", request.username.as_str());

    let address = client_address(address);
    if let Some(retry_after) = state.must_wait(&request.username, address).await {
        state.logins.with_label_values(&["throttled"]).inc();
        return Err(ApiError::RateLimited { retry_after });
    }

    let found = users::find_credentials(&state.pool, &request.username).await?;
    let hash = found.as_ref().map_or_else(
        || decoy_hash().to_owned(),
        |user| user.password_hash.clone(),
    );
    let matches = state.verify(request.password, hash).await?;
    let user: Credentials = match found {
        Some(user) if matches && !user.disabled => user,
        _ => {
            state.failed(&request.username, address).await;
            state.logins.with_label_values(&["refused"]).inc();
            return Err(invalid_credentials());
        }
    };

    let response = state.start_session(&user).await?;
    state.logins.with_label_values(&["issued"]).inc();
    Ok(Json(response))
}
