//! User reads: who may do what, never a password hash (admin only); and who am I (anyone).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use schemas::catalog::{USER_COLUMNS, User};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal, Role};
use service_kit::path::Path;
use service_kit::problem::responses::{NotAdmin, Unauthenticated};
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::QueryBuilder;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::catalog::CatalogState;
use crate::pagination::{Page, PageParams, contains_pattern};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// `admin`, `manager`, `staff`, `pos` or `analyst`.
    pub role: Option<String>,
    /// Users who may touch this store (including all-store users).
    pub store_id: Option<i64>,
    /// Text in the username.
    pub q: Option<String>,
    /// Include disabled users (default true).
    pub include_disabled: Option<bool>,
}

/// Users (admin only).
#[utoipa::path(get, path = "/v1/users", tag = "users", params(UserFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users, in id order", body = Page<User>),
        NotAdmin,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_users(
    State(state): State<CatalogState>,
    principal: Principal,
    Query(filter): Query<UserFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<User>>, ApiError> {
    principal.require(Permission::UserAdmin)?;
    let limit = page.limit()?;
    let mut query = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users WHERE true"));
    if filter.include_disabled == Some(false) {
        query.push(" AND disabled_at IS NULL");
    }
    if let Some(role) = filter.role {
        query.push(" AND role = ").push_bind(role);
    }
    if let Some(store) = filter.store_id {
        query
            .push(" AND (cardinality(store_ids) = 0 OR ")
            .push_bind(store)
            .push(" = ANY(store_ids))");
    }
    if let Some(q) = filter.q.filter(|q| !q.trim().is_empty()) {
        query
            .push(" AND username ILIKE ")
            .push_bind(contains_pattern(q.trim()));
    }
    if let Some(after) = page.after::<i64>()? {
        query.push(" AND id > ").push_bind(after);
    }
    query
        .push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build_query_as().fetch_all(&state.pool).await?;
    Ok(Json(Page::from_rows(rows, limit, |user: &User| user.id)))
}

/// One user (admin only).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = i64, Path, description = "User id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = User),
        NotAdmin,
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, user_id = id))]
pub async fn get_user(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<Json<User>, ApiError> {
    principal.require(Permission::UserAdmin)?;
    sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user", id))
}

/// Who the caller is: what their token says they may do, and the user behind it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    #[schema(example = "manager.andheri")]
    pub username: String,
    /// The user's id; absent for a token whose subject is not a user here (a device token
    /// issued elsewhere).
    pub user_id: Option<i64>,
    pub role: Role,
    /// Stores the token may touch; empty when `all_stores`.
    pub stores: Vec<i64>,
    pub all_stores: bool,
    /// The session (sign-in) the token belongs to, ended by `POST /v1/auth/logout`.
    pub session_id: Option<Uuid>,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
}

/// Who am I (any role).
#[utoipa::path(get, path = "/v1/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        Unauthenticated,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn me(
    State(state): State<CatalogState>,
    principal: Principal,
) -> Result<Json<Me>, ApiError> {
    let user_id: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(&principal.subject)
        .fetch_optional(&state.pool)
        .await?;
    let (stores, all_stores) = match principal.store_filter() {
        Some(stores) => (stores, false),
        None => (Vec::new(), true),
    };
    Ok(Json(Me {
        user_id,
        role: principal.role,
        stores,
        all_stores,
        session_id: principal.session,
        expires_at: DateTime::from_timestamp(principal.expires_at, 0).unwrap_or_default(),
        username: principal.subject,
    }))
}
