//! How tokens are signed and verified: the configured algorithm and keys, issuing, and
//! verification with its cache of tokens already verified.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use schemas::StoreId;
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{Claims, Principal, Role, revocations};
use crate::problem::ApiError;
use crate::settings::AuthSettings;

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("JWT_ALGORITHM `{0}` is not supported (HS256, RS256 or EdDSA)")]
    UnsupportedAlgorithm(String),
    #[error("{0} is required for {1}")]
    Missing(&'static str, &'static str),
    #[error("{var} is not a valid PEM key: {source}")]
    InvalidKey {
        var: &'static str,
        source: jsonwebtoken::errors::Error,
    },
}

/// How tokens are signed and verified.
pub struct TokenKeys {
    algorithm: Algorithm,
    /// Present where this service issues tokens (HS256 secret or private key).
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    lifetime: Duration,
    revocations: revocations::Revocations,
    /// Tokens that verified, with their expiry: a device presents the same token for
    /// its whole lifetime, so its signature and claims are checked once, not per request.
    verified: std::sync::Mutex<std::collections::HashMap<Box<str>, (Principal, i64)>>,
}

/// Most verified tokens remembered; beyond it, expired ones are dropped (all, if none is).
const VERIFIED_CAPACITY: usize = 50_000;

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
            .field("issues_tokens", &self.encoding.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Clock skew tolerated on `exp`.
const LEEWAY_SECONDS: u64 = 30;

impl TokenKeys {
    pub fn from_settings(settings: &AuthSettings) -> Result<Arc<Self>, AuthConfigError> {
        let invalid = |var| move |source| AuthConfigError::InvalidKey { var, source };
        let (algorithm, encoding, decoding) = match settings.jwt_algorithm.as_str() {
            "HS256" => {
                let secret = settings
                    .jwt_secret
                    .as_ref()
                    .ok_or(AuthConfigError::Missing("JWT_SECRET", "HS256 tokens"))?
                    .expose_secret()
                    .as_bytes();
                (
                    Algorithm::HS256,
                    Some(EncodingKey::from_secret(secret)),
                    DecodingKey::from_secret(secret),
                )
            }
            name @ ("RS256" | "EdDSA") => {
                let public = settings
                    .jwt_public_key
                    .as_deref()
                    .ok_or(AuthConfigError::Missing(
                        "JWT_PUBLIC_KEY",
                        "asymmetric tokens",
                    ))?;
                let private = settings
                    .jwt_private_key
                    .as_ref()
                    .map(|key| key.expose_secret().to_owned());
                if name == "RS256" {
                    let decoding = DecodingKey::from_rsa_pem(public.as_bytes())
                        .map_err(invalid("JWT_PUBLIC_KEY"))?;
                    let encoding = private
                        .map(|key| {
                            EncodingKey::from_rsa_pem(key.as_bytes())
                                .map_err(invalid("JWT_PRIVATE_KEY"))
                        })
                        .transpose()?;
                    (Algorithm::RS256, encoding, decoding)
                } else {
                    let decoding = DecodingKey::from_ed_pem(public.as_bytes())
                        .map_err(invalid("JWT_PUBLIC_KEY"))?;
                    let encoding = private
                        .map(|key| {
                            EncodingKey::from_ed_pem(key.as_bytes())
                                .map_err(invalid("JWT_PRIVATE_KEY"))
                        })
                        .transpose()?;
                    (Algorithm::EdDSA, encoding, decoding)
                }
            }
            other => return Err(AuthConfigError::UnsupportedAlgorithm(other.to_owned())),
        };
        // Exactly one algorithm: a token whose header names another is refused.
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[settings.jwt_issuer.as_str()]);
        validation.set_audience(&[settings.jwt_audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        Ok(Arc::new(Self {
            algorithm,
            encoding,
            decoding,
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            lifetime: settings.jwt_lifetime,
            revocations: revocations::Revocations::default(),
            verified: std::sync::Mutex::default(),
        }))
    }

    /// The revocations this instance refuses tokens by.
    pub fn revocations(&self) -> &revocations::Revocations {
        &self.revocations
    }

    /// How long after its issue a token may still be presented: what a revocation must be
    /// remembered for.
    pub fn longest_token_life(&self) -> Duration {
        self.lifetime + Duration::from_secs(LEEWAY_SECONDS)
    }

    /// Signs a token for `subject` outside any session (devices and tests given a token
    /// directly); `None` when this deployment only verifies tokens issued elsewhere (a
    /// public key without the private one).
    pub fn issue(&self, subject: &str, role: Role, stores: &[StoreId]) -> Option<(String, Claims)> {
        self.issue_in_session(subject, role, stores, None, 0)
    }

    /// Signs a token for `subject` in `session`, under the user's token `version`.
    pub fn issue_in_session(
        &self,
        subject: &str,
        role: Role,
        stores: &[StoreId],
        session: Option<Uuid>,
        version: i64,
    ) -> Option<(String, Claims)> {
        let encoding = self.encoding.as_ref()?;
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            stores: stores.iter().map(|store| store.get()).collect(),
            iat: now,
            exp: now + i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 2),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Some(Uuid::new_v4()),
            sid: session,
            ver: version,
        };
        let token = encode(&Header::new(self.algorithm), &claims, encoding).ok()?;
        Some((token, claims))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let now = Utc::now().timestamp();
        let leeway = LEEWAY_SECONDS as i64;
        {
            let verified = self
                .verified
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((principal, exp)) = verified.get(token)
                && now <= exp.saturating_add(leeway)
            {
                self.check_revocations(principal)?;
                return Ok(principal.clone());
            }
        }
        let principal = self.verify_signed(token)?;
        self.check_revocations(&principal.0)?;
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, (_, exp)| now <= exp.saturating_add(leeway));
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(token.into(), principal.clone());
        Ok(principal.0)
    }

    fn check_revocations(&self, principal: &Principal) -> Result<(), ApiError> {
        let revoked = self.revocations.check(
            &principal.subject,
            principal.session,
            principal.token_version,
        );
        match revoked {
            None => Ok(()),
            Some(revocations::Revoked::Session) => Err(ApiError::Unauthenticated {
                code: "token_revoked",
                detail: "the token's session has ended (logout, a reused refresh token or a password change): sign in again".into(),
            }),
            Some(revocations::Revoked::User) => Err(ApiError::Unauthenticated {
                code: "token_revoked",
                detail: "the user was disabled or changed after this token was issued: refresh it or sign in again".into(),
            }),
        }
    }

    /// Checks signature, algorithm, expiry, issuer and audience.
    fn verify_signed(&self, token: &str) -> Result<(Principal, i64), ApiError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|error| {
            let (code, detail) = match error.kind() {
                ErrorKind::ExpiredSignature => ("token_expired", "the token has expired"),
                ErrorKind::InvalidAudience => {
                    ("invalid_token", "the token is for another audience")
                }
                ErrorKind::InvalidIssuer => ("invalid_token", "the token is from another issuer"),
                ErrorKind::InvalidAlgorithm => (
                    "invalid_token",
                    "the token is signed with another algorithm",
                ),
                ErrorKind::InvalidSignature => {
                    ("invalid_token", "the token's signature does not verify")
                }
                ErrorKind::MissingRequiredClaim(_) => {
                    ("invalid_token", "the token lacks a required claim")
                }
                _ => ("invalid_token", "the token is malformed"),
            };
            ApiError::Unauthenticated {
                code,
                detail: detail.to_owned(),
            }
        })?;
        let exp = data.claims.exp;
        Ok((Principal::from_claims(data.claims), exp))
    }
}
