//! Sessions: a login starts one; its refresh token (opaque, 256 random bits, stored as a
//! SHA-256) buys a new access token and a new refresh token, once. Presenting a used
//! refresh token again means somebody holds a copy: the whole session is revoked, the
//! thief's tokens and the owner's alike. Logout ends the caller's session; changing one's
//! own password ends every other session of the user.
//!
//! An ended session's access tokens are refused on every API instance within about a
//! second (`service_kit::auth::revocations`); this instance refuses them at once.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use schemas::StoreId;
use serde::Deserialize;
use serde_json::json;
use service_kit::auth::{Principal, Role};
use service_kit::client::ClientAddress;
use service_kit::problem::responses::Unauthenticated;
use service_kit::problem::{ApiError, FieldError};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{LoginState, TokenResponse};
use crate::users::{self, Credentials};

/// Why a session ended (`sessions.revoked_why`).
#[derive(Debug, Clone, Copy)]
pub enum Ended {
    Logout,
    RefreshReused,
    UserDisabled,
    PasswordChanged,
    PasswordReset,
}

impl Ended {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::RefreshReused => "refresh_reused",
            Self::UserDisabled => "user_disabled",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token of the last token answer; it is spent by this call.
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    /// At least 12 characters.
    pub new_password: String,
}

fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    (token, hash)
}

impl LoginState {
    /// Starts a session for `user` and answers with its first tokens.
    pub(super) async fn start_session(
        &self,
        user: &Credentials,
    ) -> Result<TokenResponse, ApiError> {
        let session = Uuid::new_v4();
        let mut transaction = self.pool.begin().await?;
        // A user's long-expired sessions go when they next sign in: the table holds the
        // live ones and those still worth telling apart from a forged token.
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND expires_at < now() - interval '1 day'",
        )
        .bind(user.id)
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, now() + $3::interval)",
        )
        .bind(session)
        .bind(user.id)
        .bind(interval(self.lifetimes.session))
        .execute(&mut *transaction)
        .await?;
        let response = self.rotate(&mut transaction, user, session).await?;
        transaction.commit().await?;
        Ok(response)
    }

    /// Stores a new refresh token for `session` and signs an access token beside it.
    async fn rotate(
        &self,
        transaction: &mut Transaction<'_, Postgres>,
        user: &Credentials,
        session: Uuid,
    ) -> Result<TokenResponse, ApiError> {
        let role = Role::parse(&user.role).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "user {} has an unknown role {}",
                user.id,
                user.role
            ))
        })?;
        let (refresh_token, hash) = new_refresh_token();
        let refresh_expires_in: i64 = sqlx::query_scalar(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
             SELECT $1, id, least(now() + $3::interval, expires_at) FROM sessions WHERE id = $2
             RETURNING floor(extract(epoch FROM expires_at - now()))::bigint",
        )
        .bind(hash)
        .bind(session)
        .bind(interval(self.lifetimes.refresh))
        .fetch_one(&mut **transaction)
        .await?;
        let stores: Vec<StoreId> = user.store_ids.iter().copied().map(StoreId).collect();
        let (access_token, claims) = self
            .keys
            .issue_in_session(
                &user.username,
                role,
                &stores,
                Some(session),
                user.token_version,
            )
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "this deployment verifies tokens but cannot issue them (no JWT_PRIVATE_KEY)"
                ))
            })?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: claims.exp - claims.iat,
            refresh_token,
            refresh_expires_in,
            role,
            stores: claims.stores,
        })
    }

    /// Ends session `id` (unless ended already) for `why`, here and — through Postgres — on
    /// every instance.
    async fn end_session(&self, id: Uuid, why: Ended) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_why = $2
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(why.as_str())
        .execute(&self.pool)
        .await?;
        self.keys.revocations().revoke_sessions([id]);
        Ok(())
    }

    /// Ends `sessions` (those not ended already) for `why`, here and — through Postgres —
    /// on every instance; the caller commits.
    pub(crate) async fn end_sessions(
        transaction: &mut Transaction<'_, Postgres>,
        user_id: i64,
        keep: Option<Uuid>,
        why: Ended,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = now(), revoked_why = $3
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
               AND id IS DISTINCT FROM $2
             RETURNING id",
        )
        .bind(user_id)
        .bind(keep)
        .bind(why.as_str())
        .fetch_all(&mut **transaction)
        .await
    }
}

/// How often each ingest forgets ended sessions.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Forgets refresh tokens and sessions that ended or expired more than a day ago — far
/// longer than any access token of theirs lives, so nothing can still need them (a token
/// presented after that is unknown: `401 invalid_refresh_token`). At most 10,000 of each a
/// call, so a backlog never holds a long transaction. Returns how many sessions went.
pub async fn sweep(pool: &PgPool) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "DELETE FROM refresh_tokens WHERE token_hash IN (
             SELECT token_hash FROM refresh_tokens
              WHERE expires_at < now() - interval '1 day' LIMIT 10000)",
    )
    .execute(pool)
    .await?;
    let sessions = sqlx::query(
        "DELETE FROM sessions WHERE id IN (
             SELECT id FROM sessions WHERE expires_at < now() - interval '1 day'
             UNION
             SELECT id FROM sessions WHERE revoked_at < now() - interval '1 day'
             LIMIT 10000)",
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(sessions)
}

fn interval(duration: std::time::Duration) -> String {
    format!("{} seconds", duration.as_secs())
}

fn refresh_refused(code: &'static str, detail: &str) -> ApiError {
    ApiError::Unauthenticated {
        code,
        detail: detail.to_owned(),
    }
}

/// One row per refresh token, with its session and user, locked for the rotation.
#[derive(sqlx::FromRow)]
struct Presented {
    session_id: Uuid,
    used: bool,
    expired: bool,
    session_ended: bool,
    #[sqlx(flatten)]
    user: Credentials,
}

/// Trade a refresh token for a new access token and a new refresh token.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the refresh token presented is spent", body = TokenResponse),
        (status = 400, description = "The body is not a refresh request", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown or expired refresh token (`invalid_refresh_token`), an ended session (`session_ended`), or a refresh token used before (`refresh_token_reused`: its whole session is now ended)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(session_id))]
pub async fn refresh(
    State(state): State<LoginState>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let Json(request) = body?;
    if request.refresh_token.is_empty() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "refresh_token",
            "required",
            "must not be empty",
        )]));
    }
    let hash = Sha256::digest(request.refresh_token.as_bytes()).to_vec();
    let mut transaction = state.pool.begin().await?;
    let presented: Option<Presented> = sqlx::query_as(
        "SELECT t.session_id, t.used_at IS NOT NULL AS used, t.expires_at <= now() AS expired,
                (s.revoked_at IS NOT NULL OR s.expires_at <= now()) AS session_ended,
                u.id, u.username, u.password_hash, u.role, u.store_ids,
                u.disabled_at IS NOT NULL AS disabled, u.token_version
         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
         WHERE t.token_hash = $1
         FOR UPDATE OF t, s",
    )
    .bind(hash.as_slice())
    .fetch_optional(&mut *transaction)
    .await?;
    let invalid = || {
        refresh_refused(
            "invalid_refresh_token",
            "unknown or expired refresh token: sign in again",
        )
    };
    let Some(presented) = presented else {
        state.logins.with_label_values(&["refresh_refused"]).inc();
        return Err(invalid());
    };
    tracing::Span::current().record("session_id", tracing::field::display(presented.session_id));
    if presented.session_ended || presented.user.disabled {
        state.logins.with_label_values(&["refresh_refused"]).inc();
        return Err(refresh_refused(
            "session_ended",
            "this session has ended: sign in again",
        ));
    }
    if presented.used {
        drop(transaction);
        state
            .end_session(presented.session_id, Ended::RefreshReused)
            .await?;
        state.logins.with_label_values(&["refresh_reused"]).inc();
        tracing::warn!(session_id = %presented.session_id, user = %presented.user.username,
            "A refresh token was presented a second time: its session is ended, every token of it refused.");
        return Err(refresh_refused(
            "refresh_token_reused",
            "this refresh token was used before; its session is ended: sign in again",
        ));
    }
    if presented.expired {
        state.logins.with_label_values(&["refresh_refused"]).inc();
        return Err(invalid());
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(hash.as_slice())
        .execute(&mut *transaction)
        .await?;
    let response = state
        .rotate(&mut transaction, &presented.user, presented.session_id)
        .await?;
    transaction.commit().await?;
    state.logins.with_label_values(&["refreshed"]).inc();
    Ok(Json(response))
}

/// End the caller's session: its refresh token and every access token of it stop working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is ended (or the token had none: tokens issued outside a login simply expire)"),
        Unauthenticated,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn logout(
    State(state): State<LoginState>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    if let Some(session) = principal.session {
        state.end_session(session, Ended::Logout).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Change one's own password (the current one is required); every other session of the
/// user ends, this one goes on.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth",
    request_body = PasswordChange,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; the user's other sessions are ended"),
        (status = 400, description = "The new password is too short (`new_password`), or the current password is wrong (`current_password`: `wrong_password`)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        Unauthenticated,
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn change_password(
    State(state): State<LoginState>,
    principal: Principal,
    address: Option<Extension<ClientAddress>>,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(change) = body?;
    if let Some(problem) = users::password_problem("new_password", &change.new_password) {
        return Err(ApiError::Validation(vec![problem]));
    }
    let address = super::client_address(address);
    // A stolen access token must not become a way to guess the password: wrong current
    // passwords count against the same throttle as failed logins.
    if let Some(retry_after) = state.must_wait(&principal.subject, address).await {
        return Err(ApiError::RateLimited { retry_after });
    }
    let user = users::find_credentials(&state.pool, &principal.subject)
        .await?
        .filter(|user| !user.disabled)
        .ok_or_else(|| ApiError::Unauthenticated {
            code: "invalid_token",
            detail: "the token's user does not exist here".into(),
        })?;
    if !state
        .verify(change.current_password, user.password_hash.clone())
        .await?
    {
        state.failed(&principal.subject, address).await;
        return Err(ApiError::Validation(vec![FieldError::new(
            "current_password",
            "wrong_password",
            "the current password is wrong",
        )]));
    }
    let hash = users::hash_password(change.new_password).await?;
    let mut transaction = state.pool.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(user.id)
        .bind(hash)
        .execute(&mut *transaction)
        .await?;
    let ended = LoginState::end_sessions(
        &mut transaction,
        user.id,
        principal.session,
        Ended::PasswordChanged,
    )
    .await?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "change_password",
        "user",
        user.id,
        None,
        Some(&json!({"sessions_ended": ended.len()})),
    )
    .await?;
    transaction.commit().await?;
    state.keys.revocations().revoke_sessions(ended);
    Ok(StatusCode::NO_CONTENT)
}
