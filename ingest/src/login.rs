//! `POST /v1/auth/token`: username and password in, signed JWT out.
//!
//! Login attempts are throttled per username and per client address (before the password
//! is even checked), so guessing is slow whichever one an attacker varies. Unknown users,
//! wrong passwords and disabled users get the same answer, in about the same time.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::{Extension, Json};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::{IntCounterVec, Opts, Registry};
use schemas::StoreId;
use serde::{Deserialize, Serialize};
use service_kit::auth::{Role, TokenKeys};
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

/// An OAuth2-style bearer token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    pub expires_in: i64,
    pub role: Role,
    /// Stores the token may touch; empty means all (admin and analyst).
    pub stores: Vec<i64>,
}

/// Login attempts per username: a burst of 5, then one every 10 s.
const PER_USERNAME: (u32, Duration) = (5, Duration::from_secs(10));
/// Login attempts per client address: a burst of 30, then one every 2 s.
const PER_ADDRESS: (u32, Duration) = (30, Duration::from_secs(2));

fn quota((burst, every): (u32, Duration)) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

#[derive(Clone)]
pub struct LoginState {
    pub pool: PgPool,
    pub keys: Arc<TokenKeys>,
    throttle: Arc<Throttle>,
    logins: IntCounterVec,
}

impl std::fmt::Debug for LoginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginState").finish_non_exhaustive()
    }
}

struct Throttle {
    per_username: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginState {
    pub fn new(
        pool: PgPool,
        keys: Arc<TokenKeys>,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let logins = IntCounterVec::new(
            Opts::new("bazaar_logins_total", "Token requests, by outcome."),
            &["outcome"],
        )?;
        registry.register(Box::new(logins.clone()))?;
        Ok(Self {
            pool,
            keys,
            throttle: Arc::new(Throttle {
                per_username: RateLimiter::keyed(quota(PER_USERNAME)),
                per_address: RateLimiter::keyed(quota(PER_ADDRESS)),
            }),
            logins,
        })
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

/// Issue a token for a username and password.
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "A signed token", body = TokenResponse),
        (status = 400, description = "A field is missing or empty", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown username, wrong password or disabled user (`invalid_credentials`)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this username or address; see Retry-After", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(username))]
pub async fn issue_token(
    State(state): State<LoginState>,
    address: Option<Extension<ConnectInfo<SocketAddr>>>,
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

    let clock = DefaultClock::default();
    let address = address.map_or(
        IpAddr::from([0, 0, 0, 0]),
        |Extension(ConnectInfo(address))| address.ip(),
    );
    let throttled = state
        .throttle
        .per_address
        .check_key(&address)
        .and_then(|()| state.throttle.per_username.check_key(&request.username));
    if let Err(not_until) = throttled {
        state.logins.with_label_values(&["throttled"]).inc();
        return Err(ApiError::RateLimited {
            retry_after: not_until.wait_time_from(clock.now()),
        });
    }

    let found = users::find_credentials(&state.pool, &request.username).await?;
    let hash = found.as_ref().map_or_else(
        || decoy_hash().to_owned(),
        |user| user.password_hash.clone(),
    );
    let matches = users::verify_password(request.password, hash).await?;
    let user: Credentials = match found {
        Some(user) if matches && !user.disabled => user,
        _ => {
            state.logins.with_label_values(&["refused"]).inc();
            return Err(invalid_credentials());
        }
    };

    let role = Role::parse(&user.role).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "user {} has an unknown role {}",
            user.id,
            user.role
        ))
    })?;
    let stores: Vec<StoreId> = user.store_ids.iter().copied().map(StoreId).collect();
    let (access_token, claims) =
        state
            .keys
            .issue(&user.username, role, &stores)
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "this deployment verifies tokens but cannot issue them (no JWT_PRIVATE_KEY)"
                ))
            })?;
    state.logins.with_label_values(&["issued"]).inc();
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: claims.exp - claims.iat,
        role,
        stores: claims.stores,
    }))
}
