//! Authentication and authorization shared by both services: JWT bearer tokens, the role
//! matrix, and store scoping.
//!
//! Tokens are verified for signature, algorithm (exactly the configured one: no `none`,
//! no switching from an asymmetric key to HMAC), expiry, issuer and audience. A token
//! names the stores it may touch; touching another store is `403`. A token whose session
//! ended, or whose user was disabled or changed after it was issued, is refused on every
//! instance within about a second (`revocations`).

mod keys;
pub mod revocations;
mod roles;

pub use keys::{AuthConfigError, TokenKeys};
pub use roles::{Permission, Role};

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use schemas::StoreId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::ApiError;

/// The registered and private claims of a Bazaar token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Store ids the token may touch; empty means all (admin and analyst only).
    pub stores: Vec<i64>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// This token's own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<Uuid>,
    /// The session (login) the token belongs to; ending the session revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The user's token version when it was issued; raising the version revokes it.
    #[serde(default)]
    pub ver: i64,
}

/// The stores a caller may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreScope {
    All,
    Only(BTreeSet<StoreId>),
}

/// The authenticated caller, extracted from `Authorization: Bearer …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    pub stores: StoreScope,
    /// The session the token belongs to (tokens issued by `POST /v1/auth/token`).
    pub session: Option<Uuid>,
    pub token_version: i64,
    /// When the token expires (seconds since the epoch).
    pub expires_at: i64,
}

impl Principal {
    pub fn from_claims(claims: Claims) -> Self {
        let stores = if claims.stores.is_empty() && claims.role.may_span_all_stores() {
            StoreScope::All
        } else {
            StoreScope::Only(claims.stores.into_iter().map(StoreId).collect())
        };
        Self {
            subject: claims.sub,
            role: claims.role,
            stores,
            session: claims.sid,
            token_version: claims.ver,
            expires_at: claims.exp,
        }
    }

    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "role_forbidden",
                format!("role {} may not do this", self.role.as_str()),
            ))
        }
    }

    pub fn may_access(&self, store: StoreId) -> bool {
        match &self.stores {
            StoreScope::All => true,
            StoreScope::Only(stores) => stores.contains(&store),
        }
    }

    pub fn require_store(&self, store: StoreId) -> Result<(), ApiError> {
        if self.may_access(store) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "store_forbidden",
                format!("this token may not touch store {store}"),
            ))
        }
    }

    /// For list queries: `None` when every store is visible, else the visible ones.
    pub fn store_filter(&self) -> Option<Vec<i64>> {
        match &self.stores {
            StoreScope::All => None,
            StoreScope::Only(stores) => Some(stores.iter().map(|store| store.get()).collect()),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, RFC 7235), if there is one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The state a router needs to authenticate its requests.
#[derive(Clone, Debug)]
pub struct Auth(pub Arc<TokenKeys>);

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Already verified by the rate-limit middleware: taken, not copied (a second
        // extraction in the same request would verify the token again).
        if let Some(principal) = parts.extensions.remove::<Principal>() {
            return Ok(principal);
        }
        let Auth(keys) = Auth::from_ref(state);
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Err(ApiError::Unauthenticated {
                code: "missing_token",
                detail: "send `Authorization: Bearer <token>` (POST /v1/auth/token issues one)"
                    .into(),
            });
        }
        let token = bearer_token(&parts.headers).ok_or_else(|| ApiError::Unauthenticated {
            code: "invalid_token",
            detail: "the Authorization header is not `Bearer <token>`".into(),
        })?;
        keys.verify(token)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::extract::FromRequestParts;
    use axum::http::Request;
    use secrecy::SecretString;

    use chrono::Utc;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use schemas::MovementKind;

    use super::*;
    use crate::settings::{AuthSettings, IngestSettings};

    fn auth_settings(vars: &[(&str, &str)]) -> AuthSettings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        IngestSettings::from_lookup(|var| {
            vars.get(var).cloned().or_else(|| match var {
                "BAZAAR_ENV" => Some("development".into()),
                "JWT_SECRET" if !vars.contains_key("JWT_ALGORITHM") => Some(TEST_SECRET.into()),
                _ => None,
            })
        })
        .unwrap()
        .api
        .auth
    }

    const TEST_SECRET: &str = "a-test-only-secret-of-at-least-32-bytes";

    fn hs256() -> Arc<TokenKeys> {
        TokenKeys::from_settings(&auth_settings(&[])).unwrap()
    }

    fn sign_hs256(claims: &Claims, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn claims(keys: &TokenKeys) -> Claims {
        keys.issue("manager-1", Role::Manager, &[StoreId(7)])
            .unwrap()
            .1
    }

    #[test]
    fn an_issued_token_verifies_to_its_principal() {
        let keys = hs256();
        let (token, claims) = keys.issue("pos-7", Role::Pos, &[StoreId(7)]).unwrap();
        assert_eq!(claims.iss, "bazaar");
        assert_eq!(claims.aud, "bazaar-api");
        assert_eq!(claims.exp - claims.iat, 900);
        assert!(claims.jti.is_some() && claims.sid.is_none(), "{claims:?}");
        let principal = keys.verify(&token).unwrap();
        assert_eq!(principal.subject, "pos-7");
        assert_eq!(principal.role, Role::Pos);
        assert_eq!(principal.stores, StoreScope::Only([StoreId(7)].into()));
    }

    fn rejected_with(keys: &TokenKeys, token: &str) -> &'static str {
        match keys.verify(token) {
            Err(ApiError::Unauthenticated { code, .. }) => code,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn expired_tokens_and_foreign_audiences_or_issuers_are_refused() {
        let keys = hs256();
        let secret = TEST_SECRET.as_bytes();
        let mut expired = claims(&keys);
        expired.exp = Utc::now().timestamp() - 120;
        assert_eq!(
            rejected_with(&keys, &sign_hs256(&expired, secret)),
            "token_expired"
        );

        let mut foreign = claims(&keys);
        foreign.aud = "another-api".into();
        assert_eq!(
            rejected_with(&keys, &sign_hs256(&foreign, secret)),
            "invalid_token"
        );

        let mut foreign = claims(&keys);
        foreign.iss = "someone-else".into();
        assert_eq!(
            rejected_with(&keys, &sign_hs256(&foreign, secret)),
            "invalid_token"
        );

        let forged = sign_hs256(&claims(&keys), b"not-the-secret-not-the-secret-000");
        assert_eq!(rejected_with(&keys, &forged), "invalid_token");
    }

    #[test]
    fn a_tampered_payload_or_an_unsigned_token_is_refused() {
        let keys = hs256();
        let (token, _) = keys.issue("staff-1", Role::Staff, &[StoreId(7)]).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut admin = claims(&keys);
        admin.role = Role::Admin;
        let forged_payload = sign_hs256(&admin, b"whatever-key-whatever-key-whatever");
        let forged_payload = forged_payload.split('.').nth(1).unwrap();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(rejected_with(&keys, &tampered), "invalid_token");

        // {"alg":"none","typ":"JWT"} with the real payload and no signature.
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
        assert_eq!(rejected_with(&keys, &unsigned), "invalid_token");
    }

    /// An Ed25519 key pair from the openssl command line, PEM (private, public).
    fn ed25519_keys() -> (String, String) {
        let dir = std::env::temp_dir().join(format!("bazaar-jwt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let private = dir.join("private.pem");
        let public = dir.join("public.pem");
        let run = |args: &[&str]| {
            let status = std::process::Command::new("openssl")
                .args(args)
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl {args:?}");
        };
        run(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            private.to_str().unwrap(),
        ]);
        run(&[
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ]);
        let keys = (
            std::fs::read_to_string(&private).unwrap(),
            std::fs::read_to_string(&public).unwrap(),
        );
        let _ = std::fs::remove_dir_all(&dir);
        keys
    }

    #[test]
    fn eddsa_tokens_verify_and_hmac_tokens_keyed_with_the_public_key_do_not() {
        let (private, public) = ed25519_keys();
        let mut settings =
            auth_settings(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_PUBLIC_KEY", &public)]);
        settings.jwt_private_key = Some(SecretString::from(private));
        let issuer = TokenKeys::from_settings(&settings).unwrap();
        let (token, claims) = issuer.issue("analyst-1", Role::Analyst, &[]).unwrap();
        assert_eq!(issuer.verify(&token).unwrap().stores, StoreScope::All);

        // A verifier with only the public key verifies, and cannot issue.
        settings.jwt_private_key = None;
        let verifier = TokenKeys::from_settings(&settings).unwrap();
        assert!(verifier.verify(&token).is_ok());
        assert!(verifier.issue("x", Role::Admin, &[]).is_none());

        // The classic algorithm-switching attack: HS256 keyed with the public key.
        let switched = sign_hs256(&claims, public.as_bytes());
        assert_eq!(rejected_with(&verifier, &switched), "invalid_token");
    }

    #[test]
    fn an_unknown_algorithm_or_a_missing_public_key_is_a_configuration_error() {
        // Settings refuse these before; the keys refuse them on their own too.
        let mut settings = auth_settings(&[]);
        settings.jwt_algorithm = "none".into();
        let error = TokenKeys::from_settings(&settings).unwrap_err();
        assert!(matches!(error, AuthConfigError::UnsupportedAlgorithm(_)));
        settings.jwt_algorithm = "RS256".into();
        let error = TokenKeys::from_settings(&settings).unwrap_err();
        assert!(matches!(
            error,
            AuthConfigError::Missing("JWT_PUBLIC_KEY", _)
        ));
    }

    fn principal(role: Role, stores: &[i64]) -> Principal {
        Principal::from_claims(Claims {
            sub: "someone".into(),
            role,
            stores: stores.to_vec(),
            iat: 0,
            exp: 0,
            iss: String::new(),
            aud: String::new(),
            jti: None,
            sid: None,
            ver: 0,
        })
    }

    #[test]
    fn a_token_for_one_store_is_refused_another() {
        let manager = principal(Role::Manager, &[7]);
        assert!(manager.require_store(StoreId(7)).is_ok());
        let error = manager.require_store(StoreId(8)).unwrap_err();
        assert_eq!(error.code(), "store_forbidden");
        assert_eq!(manager.store_filter(), Some(vec![7]));

        // Only admins and analysts span all stores with an empty list.
        assert_eq!(principal(Role::Admin, &[]).store_filter(), None);
        assert_eq!(principal(Role::Analyst, &[]).stores, StoreScope::All);
        assert!(!principal(Role::Manager, &[]).may_access(StoreId(1)));
    }

    #[test]
    fn the_role_matrix_holds() {
        use Permission::*;
        let admin = Role::Admin;
        assert!(
            [CatalogWrite, UserAdmin, AuditRead, ReportRead]
                .iter()
                .all(|p| admin.allows(*p))
        );
        assert!(!Role::Manager.allows(CatalogWrite) && Role::Manager.allows(CatalogRead));
        assert!(
            Role::Manager.allows(StoreSettingsWrite) && !Role::Staff.allows(StoreSettingsWrite)
        );
        assert!(!Role::Manager.allows(UserAdmin) && !Role::Manager.allows(AuditRead));
        assert!(Role::Staff.allows(MovementWrite) && !Role::Staff.allows(ReportRead));
        assert!(!Role::Analyst.allows(MovementWrite) && Role::Analyst.allows(ReportRead));
        assert!(!Role::Pos.allows(InventoryRead));

        assert!(Role::Pos.may_post(MovementKind::Sale));
        assert!(
            Role::Pos.may_post(MovementKind::Return),
            "a till takes returns"
        );
        assert!(
            !Role::Pos.may_post(MovementKind::StockIn)
                && !Role::Pos.may_post(MovementKind::Removal)
                && !Role::Pos.may_post(MovementKind::Adjustment)
        );
        assert!(Role::Staff.may_post(MovementKind::Removal));
        assert!(
            Role::Manager.may_post(MovementKind::Void)
                && !Role::Staff.may_post(MovementKind::Void)
                && !Role::Pos.may_post(MovementKind::Void),
            "a void is a manager's"
        );
        assert!(!Role::Analyst.may_post(MovementKind::Sale));
        assert!(!Role::Admin.may_post(MovementKind::Unknown));
        assert_eq!(
            principal(Role::Pos, &[7])
                .require(ReportRead)
                .unwrap_err()
                .code(),
            "role_forbidden"
        );
    }

    async fn extract(authorization: Option<&str>) -> Result<Principal, ApiError> {
        let mut request = Request::builder().uri("/v1/anything");
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        Principal::from_request_parts(&mut parts, &Auth(hs256())).await
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        let headers = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&axum::http::HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn the_extractor_wants_a_bearer_token() {
        let error = extract(None).await.unwrap_err();
        assert_eq!(error.code(), "missing_token");
        let error = extract(Some("Basic YWRtaW46YWRtaW4=")).await.unwrap_err();
        assert_eq!(error.code(), "invalid_token");
        let (token, _) = hs256()
            .issue("staff-1", Role::Staff, &[StoreId(3)])
            .unwrap();
        let principal = extract(Some(&format!("Bearer {token}"))).await.unwrap();
        assert_eq!(principal.subject, "staff-1");
    }
}

/// An OpenAPI modifier declaring the `bearer` (JWT) security scheme the routes refer to.
#[derive(Debug)]
pub struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
