//! Catalog writes (admin only): stores and products. Create, partial update, soft delete
//! (the ledger keeps referring to deleted rows; a deleted store or product can no longer
//! receive movements). Every change is audited in the same transaction.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Auth, Permission, Principal};
use service_kit::problem::{ApiError, FieldError};
use sqlx::PgPool;
use utoipa::ToSchema;

#[derive(Clone, Debug)]
pub struct CatalogState {
    pub pool: PgPool,
    pub auth: Auth,
}

impl FromRef<CatalogState> for Auth {
    fn from_ref(state: &CatalogState) -> Self {
        state.auth.clone()
    }
}

/// Maps a unique violation of `constraint` to a 409 naming `field`.
fn conflict_on(
    constraint: &'static str,
    code: &'static str,
    field: &'static str,
    detail: String,
) -> impl FnOnce(sqlx::Error) -> ApiError {
    move |error| match error
        .as_database_error()
        .and_then(|database| database.constraint())
    {
        Some(name) if name == constraint => ApiError::Conflict {
            code,
            detail,
            field: Some(field),
        },
        _ => ApiError::from(error),
    }
}

/// The live (not deleted) row `id` of `table`, locked for the rest of the transaction.
async fn lock_live<T>(
    transaction: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    table: &str,
    columns: &str,
    entity: &'static str,
    id: i64,
) -> Result<T, ApiError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as::<_, T>(&format!(
        "SELECT {columns} FROM {table} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **transaction)
    .await?
    .ok_or_else(|| ApiError::not_found(entity, id))
}

fn check_text(problems: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    let length = value.trim().chars().count();
    if length == 0 || length > max {
        problems.push(FieldError::new(
            field,
            "invalid_length",
            format!("1 to {max} characters"),
        ));
    }
}

fn check_code(problems: &mut Vec<FieldError>, field: &str, value: &str, extra: &[u8]) {
    let valid = (1..=64).contains(&value.len())
        && value.bytes().all(|byte| {
            byte.is_ascii_uppercase()
                || byte.is_ascii_digit()
                || b"-".contains(&byte)
                || extra.contains(&byte)
        });
    if !valid {
        problems.push(FieldError::new(
            field,
            "invalid_format",
            "1 to 64 characters: upper-case letters, digits and '-'",
        ));
    }
}

fn done(problems: Vec<FieldError>) -> Result<(), ApiError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(problems))
    }
}

// ---- Stores ------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Store {
    pub id: i64,
    #[schema(example = "MUM-AND-01")]
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    #[schema(example = "Asia/Kolkata")]
    pub timezone: String,
    /// `reject` (default): a sale larger than the balance is refused; `allow`: stock may go negative.
    #[schema(example = "reject")]
    pub negative_stock_policy: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewStore {
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    /// IANA time zone; reports interpret dates in it. Default `Asia/Kolkata`.
    pub timezone: Option<String>,
    /// `reject` (default) or `allow`.
    pub negative_stock_policy: Option<String>,
}

/// A partial update: only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StoreChange {
    pub code: Option<String>,
    pub name: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
    pub negative_stock_policy: Option<String>,
}

const STORE_COLUMNS: &str =
    "id, code, name, city, timezone, negative_stock_policy, created_at, updated_at, deleted_at";

async fn check_store(
    pool: &PgPool,
    problems: &mut Vec<FieldError>,
    timezone: &str,
    policy: &str,
) -> Result<(), ApiError> {
    if !matches!(policy, "reject" | "allow") {
        problems.push(FieldError::new(
            "negative_stock_policy",
            "invalid",
            "`reject` or `allow`",
        ));
    }
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
            .bind(timezone)
            .fetch_one(pool)
            .await?;
    if !known {
        problems.push(FieldError::new(
            "timezone",
            "unknown",
            "an IANA time zone such as Asia/Kolkata",
        ));
    }
    Ok(())
}

/// Create a store (admin only).
#[utoipa::path(post, path = "/v1/stores", tag = "catalog", request_body = NewStore, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Store),
        (status = 400, description = "A field is invalid", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken (`duplicate_store_code`)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
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
    let mut problems = Vec::new();
    check_code(&mut problems, "code", &new.code, b"");
    check_text(&mut problems, "name", &new.name, 200);
    check_store(&state.pool, &mut problems, &timezone, &policy).await?;
    done(problems)?;

    let mut transaction = state.pool.begin().await?;
    let store = sqlx::query_as::<_, Store>(&format!(
        "INSERT INTO stores (code, name, city, timezone, negative_stock_policy) VALUES ($1, $2, $3, $4, $5)
         RETURNING {STORE_COLUMNS}"
    ))
    .bind(&new.code)
    .bind(new.name.trim())
    .bind(new.city.as_deref().map(str::trim))
    .bind(&timezone)
    .bind(&policy)
    .fetch_one(&mut *transaction)
    .await
    .map_err(conflict_on("stores_code_key", "duplicate_store_code", "code", format!("a store with code {} exists", new.code)))?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "create",
        "store",
        store.id,
        None,
        Some(&store),
    )
    .await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(store)))
}

/// Change a store (admin only).
#[utoipa::path(patch, path = "/v1/stores/{id}", tag = "catalog", request_body = StoreChange, security(("bearer" = [])),
    params(("id" = i64, Path, description = "Store id")),
    responses(
        (status = 200, description = "The store after the change", body = Store),
        (status = 400, description = "A field is invalid", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such store (or deleted)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken", body = service_kit::problem::Problem, content_type = "application/problem+json"),
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
    let mut transaction = state.pool.begin().await?;
    let before: Store = lock_live(&mut transaction, "stores", STORE_COLUMNS, "store", id).await?;
    let code = change.code.unwrap_or_else(|| before.code.clone());
    let name = change.name.unwrap_or_else(|| before.name.clone());
    let city = change.city.or_else(|| before.city.clone());
    let timezone = change.timezone.unwrap_or_else(|| before.timezone.clone());
    let policy = change
        .negative_stock_policy
        .unwrap_or_else(|| before.negative_stock_policy.clone());
    let mut problems = Vec::new();
    check_code(&mut problems, "code", &code, b"");
    check_text(&mut problems, "name", &name, 200);
    check_store(&state.pool, &mut problems, &timezone, &policy).await?;
    done(problems)?;

    let after = sqlx::query_as::<_, Store>(&format!(
        "UPDATE stores SET code = $2, name = $3, city = $4, timezone = $5, negative_stock_policy = $6, updated_at = now()
         WHERE id = $1 RETURNING {STORE_COLUMNS}"
    ))
    .bind(id)
    .bind(&code)
    .bind(name.trim())
    .bind(city.as_deref().map(str::trim))
    .bind(&timezone)
    .bind(&policy)
    .fetch_one(&mut *transaction)
    .await
    .map_err(conflict_on("stores_code_key", "duplicate_store_code", "code", format!("a store with code {code} exists")))?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "update",
        "store",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    transaction.commit().await?;
    Ok(Json(after))
}

/// Soft-delete a store (admin only): history keeps it; it receives no more movements.
#[utoipa::path(delete, path = "/v1/stores/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Store id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such store (or already deleted)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = id))]
pub async fn delete_store(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    soft_delete(&state.pool, &principal, "stores", "store", id).await
}

async fn soft_delete(
    pool: &PgPool,
    principal: &Principal,
    table: &'static str,
    entity: &'static str,
    id: i64,
) -> Result<StatusCode, ApiError> {
    let mut transaction = pool.begin().await?;
    let deleted: Option<serde_json::Value> = sqlx::query_scalar(&format!(
        "UPDATE {table} SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL
         RETURNING to_jsonb({table}.*)"
    ))
    .bind(id)
    .fetch_optional(&mut *transaction)
    .await?;
    let after = deleted.ok_or_else(|| ApiError::not_found(entity, id))?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "delete",
        entity,
        id,
        None,
        Some(&after),
    )
    .await?;
    transaction.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- Products ----------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Product {
    pub id: i64,
    #[schema(example = "ATTA-5KG")]
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    /// `pc`, `g` or `ml`: quantities are integers in this unit.
    #[schema(example = "pc")]
    pub unit: String,
    pub barcode: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProduct {
    /// Unique across the network: upper-case letters, digits, '-', '_', '.'.
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub unit: String,
    /// 8 to 14 digits (EAN/UPC/GTIN).
    pub barcode: Option<String>,
}

/// A partial update: only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductChange {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub unit: Option<String>,
    pub barcode: Option<String>,
}

const PRODUCT_COLUMNS: &str =
    "id, sku, name, category, unit, barcode, created_at, updated_at, deleted_at";

fn check_product(
    problems: &mut Vec<FieldError>,
    sku: &str,
    name: &str,
    unit: &str,
    barcode: Option<&str>,
) {
    check_code(problems, "sku", sku, b"_.");
    check_text(problems, "name", name, 200);
    if !matches!(unit, "pc" | "g" | "ml") {
        problems.push(FieldError::new("unit", "invalid", "`pc`, `g` or `ml`"));
    }
    if let Some(barcode) = barcode
        && (!(8..=14).contains(&barcode.len())
            || !barcode.bytes().all(|byte| byte.is_ascii_digit()))
    {
        problems.push(FieldError::new(
            "barcode",
            "invalid_format",
            "8 to 14 digits",
        ));
    }
}

/// Create a product (admin only).
#[utoipa::path(post, path = "/v1/products", tag = "catalog", request_body = NewProduct, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Product),
        (status = 400, description = "A field is invalid", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The SKU is taken (`duplicate_sku`)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn create_product(
    State(state): State<CatalogState>,
    principal: Principal,
    body: Result<Json<NewProduct>, JsonRejection>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let new = body?.0;
    let mut problems = Vec::new();
    check_product(
        &mut problems,
        &new.sku,
        &new.name,
        &new.unit,
        new.barcode.as_deref(),
    );
    done(problems)?;
    let mut transaction = state.pool.begin().await?;
    let product = sqlx::query_as::<_, Product>(&format!(
        "INSERT INTO products (sku, name, category, unit, barcode) VALUES ($1, $2, $3, $4, $5) RETURNING {PRODUCT_COLUMNS}"
    ))
    .bind(&new.sku)
    .bind(new.name.trim())
    .bind(new.category.as_deref().map(str::trim))
    .bind(&new.unit)
    .bind(&new.barcode)
    .fetch_one(&mut *transaction)
    .await
    .map_err(conflict_on("products_sku_key", "duplicate_sku", "sku", format!("a product with SKU {} exists", new.sku)))?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "create",
        "product",
        product.id,
        None,
        Some(&product),
    )
    .await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// Change a product (admin only).
#[utoipa::path(patch, path = "/v1/products/{id}", tag = "catalog", request_body = ProductChange, security(("bearer" = [])),
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product after the change", body = Product),
        (status = 400, description = "A field is invalid", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product (or deleted)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The SKU is taken", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, product_id = id))]
pub async fn change_product(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
    body: Result<Json<ProductChange>, JsonRejection>,
) -> Result<Json<Product>, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let change = body?.0;
    let mut transaction = state.pool.begin().await?;
    let before: Product =
        lock_live(&mut transaction, "products", PRODUCT_COLUMNS, "product", id).await?;
    let sku = change.sku.unwrap_or_else(|| before.sku.clone());
    let name = change.name.unwrap_or_else(|| before.name.clone());
    let category = change.category.or_else(|| before.category.clone());
    let unit = change.unit.unwrap_or_else(|| before.unit.clone());
    let barcode = change.barcode.or_else(|| before.barcode.clone());
    let mut problems = Vec::new();
    check_product(&mut problems, &sku, &name, &unit, barcode.as_deref());
    done(problems)?;
    let after = sqlx::query_as::<_, Product>(&format!(
        "UPDATE products SET sku = $2, name = $3, category = $4, unit = $5, barcode = $6, updated_at = now()
         WHERE id = $1 RETURNING {PRODUCT_COLUMNS}"
    ))
    .bind(id)
    .bind(&sku)
    .bind(name.trim())
    .bind(category.as_deref().map(str::trim))
    .bind(&unit)
    .bind(&barcode)
    .fetch_one(&mut *transaction)
    .await
    .map_err(conflict_on("products_sku_key", "duplicate_sku", "sku", format!("a product with SKU {sku} exists")))?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "update",
        "product",
        id,
        Some(&before),
        Some(&after),
    )
    .await?;
    transaction.commit().await?;
    Ok(Json(after))
}

/// Soft-delete a product (admin only).
#[utoipa::path(delete, path = "/v1/products/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such product (or already deleted)", body = service_kit::problem::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, product_id = id))]
pub async fn delete_product(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    soft_delete(&state.pool, &principal, "products", "product", id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_fields_are_checked_together() {
        let mut problems = Vec::new();
        check_product(&mut problems, "atta 5kg", "", "kg", Some("12ab"));
        let fields: Vec<&str> = problems
            .iter()
            .map(|problem| problem.field.as_str())
            .collect();
        assert_eq!(fields, ["sku", "name", "unit", "barcode"]);

        let mut problems = Vec::new();
        check_product(
            &mut problems,
            "ATTA-5KG_V2.1",
            "Aashirvaad Atta 5 kg",
            "pc",
            Some("8901063010021"),
        );
        assert!(problems.is_empty(), "{problems:?}");
    }
}
