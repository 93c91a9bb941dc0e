//! User administration (admin only): create users, change their role, stores, password,
//! or disable them. Every change writes an `audit_log` row in the same transaction.
//!
//! A change to what a user may do ends their access tokens on every instance within about
//! a second (the user's token version goes up); disabling a user or resetting their
//! password also ends their sessions, so no refresh brings the tokens back. A user whose
//! role or stores changed refreshes into a token that says what they may do now.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use serde::Deserialize;
use service_kit::auth::{Auth, Permission, Principal, Role};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidField, NotAdmin, Unauthenticated};
use service_kit::problem::{ApiError, FieldError};
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;

use schemas::catalog::USER_COLUMNS;
pub use schemas::catalog::User;

use crate::login::LoginState;
use crate::login::sessions::Ended;
use crate::users;

#[derive(Clone, Debug)]
pub struct UsersState {
    pub pool: PgPool,
    pub auth: Auth,
}

impl FromRef<UsersState> for Auth {
    fn from_ref(state: &UsersState) -> Self {
        state.auth.clone()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// 3 to 64 characters: lower-case letters, digits, `.`, `_`, `-`.
    #[schema(example = "manager.andheri")]
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    pub role: String,
    /// Store ids; empty means all stores (admin and analyst only).
    #[serde(default)]
    pub stores: Vec<i64>,
}

/// A partial update: only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserChange {
    pub role: Option<String>,
    pub stores: Option<Vec<i64>>,
    pub password: Option<String>,
    /// `true` disables the user (its logins are refused); `false` enables it again.
    pub disabled: Option<bool>,
}

fn valid_username(username: &str) -> bool {
    (3..=64).contains(&username.len())
        && username.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte)
        })
}

/// Checks role and stores together; the stores must exist and not be deleted.
async fn check_role_and_stores(
    transaction: &mut Transaction<'_, Postgres>,
    role: &str,
    stores: &[i64],
    problems: &mut Vec<FieldError>,
) -> Result<Option<Role>, ApiError> {
    let Some(role) = Role::parse(role) else {
        problems.push(FieldError::new(
            "role",
            "invalid",
            "one of admin, manager, staff, pos, analyst",
        ));
        return Ok(None);
    };
    if stores.is_empty() && !role.may_span_all_stores() {
        problems.push(FieldError::new(
            "stores",
            "required",
            format!("a {} needs at least one store", role.as_str()),
        ));
    }
    let known: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM stores WHERE id = ANY($1) AND deleted_at IS NULL")
            .bind(stores)
            .fetch_all(&mut **transaction)
            .await?;
    let unknown: Vec<String> = stores
        .iter()
        .filter(|store| !known.contains(store))
        .map(ToString::to_string)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "stores",
            "unknown",
            format!("no such store: {}", unknown.join(", ")),
        )]));
    }
    Ok(Some(role))
}

/// Create a user (admin only).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = NewUser,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = User),
        InvalidField,
        Unauthenticated,
        NotAdmin,
        (status = 409, description = "The username is taken (`duplicate_username`)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A store does not exist", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn create_user(
    State(state): State<UsersState>,
    principal: Principal,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    principal.require(Permission::UserAdmin)?;
    let Json(new) = body?;
    let mut problems = Vec::new();
    if !valid_username(&new.username) {
        problems.push(FieldError::new(
            "username",
            "invalid_format",
            "3 to 64 characters: lower-case letters, digits, '.', '_', '-'",
        ));
    }
    problems.extend(users::password_problem("password", &new.password));
    let mut transaction = state.pool.begin().await?;
    let role =
        check_role_and_stores(&mut transaction, &new.role, &new.stores, &mut problems).await?;
    let (Some(role), true) = (role, problems.is_empty()) else {
        return Err(ApiError::Validation(problems));
    };
    let hash = users::hash_password(new.password).await?;
    let created = sqlx::query_as::<_, User>(&format!(
        "INSERT INTO users (username, password_hash, role, store_ids) VALUES ($1, $2, $3, $4)
         ON CONFLICT (username) DO NOTHING RETURNING {USER_COLUMNS}"
    ))
    .bind(&new.username)
    .bind(hash)
    .bind(role.as_str())
    .bind(&new.stores)
    .fetch_optional(&mut *transaction)
    .await?
    .ok_or_else(|| ApiError::Conflict {
        code: "duplicate_username",
        detail: format!("a user named {} exists", new.username),
        field: Some("username"),
    })?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "create",
        "user",
        created.id,
        None,
        Some(&created),
    )
    .await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Change a user's role, stores, password, or disable it (admin only). Their access tokens
/// stop working within seconds; disabling or a new password also ends their sessions.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", request_body = UserChange,
    params(("id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user after the change", body = User),
        InvalidField,
        (status = 403, description = "Not an admin, or an admin disabling itself", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A store does not exist", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, user_id = id))]
pub async fn change_user(
    State(state): State<UsersState>,
    principal: Principal,
    Path(id): Path<i64>,
    body: Result<Json<UserChange>, JsonRejection>,
) -> Result<Json<User>, ApiError> {
    principal.require(Permission::UserAdmin)?;
    let Json(change) = body?;
    let mut transaction = state.pool.begin().await?;
    let before = sqlx::query_as::<_, User>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *transaction)
    .await?
    .ok_or_else(|| ApiError::not_found("user", id))?;
    if change.disabled == Some(true) && before.username == principal.subject {
        return Err(ApiError::forbidden(
            "cannot_disable_self",
            "an admin cannot disable itself",
        ));
    }

    let mut problems = Vec::new();
    let role = change.role.clone().unwrap_or_else(|| before.role.clone());
    let stores = change
        .stores
        .clone()
        .unwrap_or_else(|| before.stores.clone());
    check_role_and_stores(&mut transaction, &role, &stores, &mut problems).await?;
    let hash = match change.password {
        Some(password) => match users::password_problem("password", &password) {
            Some(problem) => {
                problems.push(problem);
                None
            }
            None => Some(users::hash_password(password).await?),
        },
        None => None,
    };
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }

    let disabling = change.disabled == Some(true) && !before.disabled;
    let resetting = hash.is_some();
    let revoking =
        disabling || resetting || role != before.role || !same_stores(&stores, &before.stores);
    let (after, token_version) = sqlx::query_as::<_, UserWithVersion>(&format!(
        "UPDATE users SET role = $2, store_ids = $3, password_hash = COALESCE($4, password_hash),
             disabled_at = CASE WHEN $5::boolean IS NULL THEN disabled_at
                                WHEN $5 THEN COALESCE(disabled_at, now()) ELSE NULL END,
             token_version = token_version + $6::int,
             updated_at = now()
         WHERE id = $1 RETURNING {USER_COLUMNS}, token_version"
    ))
    .bind(id)
    .bind(&role)
    .bind(&stores)
    .bind(hash)
    .bind(change.disabled)
    .bind(i32::from(revoking))
    .fetch_one(&mut *transaction)
    .await
    .map(|row| (row.user, row.token_version))?;
    let ended = match (disabling, resetting) {
        (true, _) => Some(Ended::UserDisabled),
        (false, true) => Some(Ended::PasswordReset),
        (false, false) => None,
    };
    let ended = match ended {
        Some(why) => LoginState::end_sessions(&mut transaction, id, None, why).await?,
        None => Vec::new(),
    };
    let action = match change.disabled {
        Some(true) if !before.disabled => "disable",
        Some(false) if before.disabled => "enable",
        _ => "update",
    };
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        action,
        "user",
        after.id,
        Some(&before),
        Some(&after),
    )
    .await?;
    transaction.commit().await?;
    let revocations = state.auth.0.revocations();
    revocations.raise_version(&after.username, token_version);
    revocations.revoke_sessions(ended);
    Ok(Json(after))
}

#[derive(sqlx::FromRow)]
struct UserWithVersion {
    #[sqlx(flatten)]
    user: User,
    token_version: i64,
}

/// The same stores, in any order.
fn same_stores(left: &[i64], right: &[i64]) -> bool {
    let mut left = left.to_vec();
    let mut right = right.to_vec();
    left.sort_unstable();
    left.dedup();
    right.sort_unstable();
    right.dedup();
    left == right
}

#[cfg(test)]
mod tests {
    use super::valid_username;

    #[test]
    fn usernames_are_short_lower_case_words() {
        for good in ["admin", "pos-7.till_2", "abc"] {
            assert!(valid_username(good), "{good}");
        }
        for bad in ["ab", "Admin", "has space", "ünï", &"x".repeat(65)] {
            assert!(!valid_username(bad), "{bad}");
        }
    }
}
