//! Stores: code (unique), name, city, time zone and negative-stock policy.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidField, NotAdmin};
use service_kit::problem::{ApiError, Problem};
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;

use schemas::catalog::STORE_COLUMNS;
pub use schemas::catalog::Store;

use super::{CatalogState, Checks, Record, Unique, merged, present, push_id, trimmed};

impl Record for Store {
    const TABLE: &'static str = "stores";
    const COLUMNS: &'static str = STORE_COLUMNS;
    const ENTITY: &'static str = "store";
    const UNIQUE: &'static [Unique] = &[Unique {
        constraint: "stores_code_key",
        code: "duplicate_store_code",
        field: "code",
    }];
    type Key = i64;

    fn key(&self) -> i64 {
        self.id
    }

    fn push_key(query: &mut QueryBuilder<'static, Postgres>, key: i64) {
        push_id(query, key);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStore {
    /// Unique: upper-case letters, digits and '-'.
    #[schema(example = "MUM-AND-01")]
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    /// IANA time zone; reports interpret dates in it. Default `Asia/Kolkata`.
    pub timezone: Option<String>,
    /// `reject` (default) or `allow`.
    pub negative_stock_policy: Option<String>,
}

/// A partial update: only the fields present change; `"city": null` clears the city.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreChange {
    pub code: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub city: Option<Option<String>>,
    pub timezone: Option<String>,
    pub negative_stock_policy: Option<String>,
}

async fn check(
    pool: &PgPool,
    code: &str,
    name: &str,
    city: Option<&str>,
    timezone: &str,
    policy: &str,
) -> Result<(), ApiError> {
    let mut checks = Checks::default();
    checks
        .code("code", code, b"")
        .text("name", name, 200)
        .optional_text("city", city, 100);
    if !matches!(policy, "reject" | "allow") {
        checks.fail("negative_stock_policy", "invalid", "`reject` or `allow`");
    }
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
            .bind(timezone)
            .fetch_one(pool)
            .await?;
    if !known {
        checks.fail(
            "timezone",
            "unknown",
            "an IANA time zone such as Asia/Kolkata",
        );
    }
    checks.done()
}

/// Create a store (admin only).
#[utoipa::path(post, path = "/v1/stores", tag = "catalog", request_body = NewStore, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Store),
        InvalidField,
        NotAdmin,
        (status = 409, description = "The code is taken (`duplicate_store_code`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn create_store(
    State(state): State<CatalogState>,
    principal: Principal,
    body: Result<Json<NewStore>, JsonRejection>,
) -> Result<(StatusCode, Json<Store>), ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let new = body?.0;
    let timezone = new.timezone.unwrap_or_else(|| "Asia/Kolkata".to_owned());
    let policy = new
        .negative_stock_policy
        .unwrap_or_else(|| "reject".to_owned());
    let city = trimmed(new.city);
    check(
        &state.pool,
        &new.code,
        &new.name,
        city.as_deref(),
        &timezone,
        &policy,
    )
    .await?;

    let mut insert = QueryBuilder::new(
        "INSERT INTO stores (code, name, city, timezone, negative_stock_policy) VALUES (",
    );
    let mut values = insert.separated(", ");
    values
        .push_bind(new.code)
        .push_bind(new.name.trim().to_owned())
        .push_bind(city)
        .push_bind(timezone)
        .push_bind(policy);
    insert.push(")");
    let mut transaction = state.pool.begin().await?;
    let store: Store = super::insert(&mut transaction, &principal, insert).await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(store)))
}

/// Change a store (admin only).
#[utoipa::path(patch, path = "/v1/stores/{id}", tag = "catalog", request_body = StoreChange, security(("bearer" = [])),
    params(("id" = i64, Path, description = "Store id")),
    responses(
        (status = 200, description = "The store after the change", body = Store),
        InvalidField,
        NotAdmin,
        (status = 404, description = "No such store (or deleted)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = id))]
pub async fn change_store(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
    body: Result<Json<StoreChange>, JsonRejection>,
) -> Result<Json<Store>, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let change = body?.0;
    let pool = &state.pool;
    let store = super::update::<Store>(pool, &principal, id, async |before, set| {
        let code = change.code.unwrap_or_else(|| before.code.clone());
        let name = change.name.unwrap_or_else(|| before.name.clone());
        let city = trimmed(merged(change.city, &before.city));
        let timezone = change.timezone.unwrap_or_else(|| before.timezone.clone());
        let policy = change
            .negative_stock_policy
            .unwrap_or_else(|| before.negative_stock_policy.clone());
        check(pool, &code, &name, city.as_deref(), &timezone, &policy).await?;
        set.set("code", code)
            .set("name", name.trim().to_owned())
            .set("city", city)
            .set("timezone", timezone)
            .set("negative_stock_policy", policy);
        Ok(())
    })
    .await?;
    Ok(Json(store))
}

/// Soft-delete a store (admin only): history keeps it; it receives no more movements.
#[utoipa::path(delete, path = "/v1/stores/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Store id")),
    responses(
        (status = 204, description = "Deleted"),
        NotAdmin,
        (status = 404, description = "No such store (or already deleted)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = id))]
pub async fn delete_store(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    super::soft_delete::<Store>(&state.pool, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
