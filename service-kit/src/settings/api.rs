//! What the two API services (ingest, query-api) read beyond the shared settings: how
//! tokens are verified and issued, and the rate limits.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{SettingsError, parse_or};

/// The API's settings: tokens and rate limits.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub auth: AuthSettings,
    pub rate_limits: RateLimitSettings,
    /// Web origins whose pages may call the API (`CORS_ALLOWED_ORIGINS`, comma-separated;
    /// none by default).
    pub cors_origins: Vec<axum::http::HeaderValue>,
}

impl ApiSettings {
    pub(super) fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let auth = AuthSettings {
            jwt_algorithm: get("JWT_ALGORITHM").unwrap_or_else(|| "HS256".to_owned()),
            jwt_secret: get("JWT_SECRET").map(SecretString::from),
            jwt_public_key: get("JWT_PUBLIC_KEY"),
            jwt_private_key: get("JWT_PRIVATE_KEY").map(SecretString::from),
            jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| "bazaar".to_owned()),
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "bazaar-api".to_owned()),
            jwt_lifetime: Duration::from_secs(parse_or(get, "JWT_TTL_SECONDS", 900)?),
            refresh_lifetime: Duration::from_secs(parse_or(
                get,
                "REFRESH_TTL_SECONDS",
                14 * 86_400,
            )?),
            session_lifetime: Duration::from_secs(parse_or(
                get,
                "SESSION_TTL_SECONDS",
                30 * 86_400,
            )?),
        };
        auth.check()?;
        let cors_origins = crate::cors::parse_origins(
            &get("CORS_ALLOWED_ORIGINS").unwrap_or_default(),
        )
        .map_err(|problem| SettingsError::Invalid {
            var: "CORS_ALLOWED_ORIGINS",
            problem,
        })?;
        Ok(Self {
            auth,
            cors_origins,
            rate_limits: RateLimitSettings {
                per_subject: limit(
                    get,
                    "RATE_LIMIT_SUBJECT_PER_SECOND",
                    2_000,
                    "RATE_LIMIT_SUBJECT_BURST",
                    4_000,
                )?,
                per_address: limit(
                    get,
                    "RATE_LIMIT_ADDRESS_PER_SECOND",
                    50,
                    "RATE_LIMIT_ADDRESS_BURST",
                    100,
                )?,
                shared: parse_or(get, "RATE_LIMITS_SHARED", true)?,
            },
        })
    }
}

/// Requests per second and burst, per token subject and per client address (requests
/// without a valid token), and whether the budgets are shared by every instance (in
/// Redis) or each instance's own.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitSettings {
    pub per_subject: crate::ratelimit::Limit,
    pub per_address: crate::ratelimit::Limit,
    pub shared: bool,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `HS256` (default, with `JWT_SECRET`), `RS256` or `EdDSA` (with `JWT_PUBLIC_KEY`).
    pub jwt_algorithm: String,
    /// HS256 signing secret (at least 32 bytes; no default).
    pub jwt_secret: Option<SecretString>,
    /// PEM public key that verifies RS256/EdDSA tokens (from an identity provider, say).
    pub jwt_public_key: Option<String>,
    /// PEM private key, where this deployment issues RS256/EdDSA tokens itself.
    pub jwt_private_key: Option<SecretString>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// How long an issued access token is valid.
    pub jwt_lifetime: Duration,
    /// How long a refresh token is valid if unused (each use issues a new one).
    pub refresh_lifetime: Duration,
    /// How long a session (a login) lasts at most, however often it is refreshed.
    pub session_lifetime: Duration,
}

/// The shortest HS256 secret accepted: 256 bits, as RFC 7518 asks of HS256 keys.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl AuthSettings {
    /// The algorithm and its keys, as a whole: HS256 takes `JWT_SECRET` (at least 32
    /// bytes) and no public or private key; RS256 and EdDSA take `JWT_PUBLIC_KEY` (and
    /// `JWT_PRIVATE_KEY` where this deployment issues tokens) and no secret. Anything else
    /// would verify tokens with a key the operator did not mean.
    fn check(&self) -> Result<(), SettingsError> {
        let invalid = |var, problem: &str| {
            Err(SettingsError::Invalid {
                var,
                problem: problem.to_owned(),
            })
        };
        match self.jwt_algorithm.as_str() {
            "HS256" => {
                if self.jwt_public_key.is_some() || self.jwt_private_key.is_some() {
                    return invalid(
                        "JWT_ALGORITHM",
                        "HS256 (the default) signs with JWT_SECRET, but JWT_PUBLIC_KEY or \
                         JWT_PRIVATE_KEY is set: set JWT_ALGORITHM to RS256 or EdDSA, or \
                         unset the keys",
                    );
                }
                match &self.jwt_secret {
                    None => invalid(
                        "JWT_SECRET",
                        "required for HS256 (there is no default; `make up` generates one \
                         for development in .local/jwt-secret)",
                    ),
                    Some(secret) if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES => {
                        invalid("JWT_SECRET", "shorter than 32 bytes")
                    }
                    Some(_) => Ok(()),
                }
            }
            "RS256" | "EdDSA" => {
                if self.jwt_public_key.is_none() {
                    return invalid("JWT_PUBLIC_KEY", "required for RS256 and EdDSA");
                }
                if self.jwt_secret.is_some() {
                    return invalid(
                        "JWT_SECRET",
                        "set, but RS256 and EdDSA verify with JWT_PUBLIC_KEY: unset it",
                    );
                }
                Ok(())
            }
            other => invalid(
                "JWT_ALGORITHM",
                &format!("`{other}`: expected HS256, RS256 or EdDSA"),
            ),
        }
    }
}

fn limit(
    get: &impl Fn(&str) -> Option<String>,
    rate_var: &'static str,
    rate: u32,
    burst_var: &'static str,
    burst: u32,
) -> Result<crate::ratelimit::Limit, SettingsError> {
    let rate = parse_or(get, rate_var, rate)?;
    let burst = parse_or(get, burst_var, burst)?;
    crate::ratelimit::Limit::new(rate, burst).ok_or(SettingsError::Invalid {
        var: rate_var,
        problem: "rate and burst must be at least 1".into(),
    })
}
