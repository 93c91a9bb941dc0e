//! Suppliers: who delivers stock-ins, with a phone number and city.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidField, NotAdmin};
use service_kit::problem::{ApiError, Problem};
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;

use schemas::catalog::SUPPLIER_COLUMNS;
pub use schemas::catalog::Supplier;

use super::{CatalogState, Checks, Record, merged, present, push_id, trimmed};

impl Record for Supplier {
    const TABLE: &'static str = "suppliers";
    const COLUMNS: &'static str = SUPPLIER_COLUMNS;
    const ENTITY: &'static str = "supplier";
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
pub struct NewSupplier {
    pub name: String,
    /// Digits with an optional leading '+', spaces and '-': 7 to 15 digits.
    pub phone: Option<String>,
    pub city: Option<String>,
}

/// A partial update: only the fields present change; `null` clears phone or city.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupplierChange {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub city: Option<Option<String>>,
}

fn valid_phone(phone: &str) -> bool {
    let digits = phone.bytes().filter(u8::is_ascii_digit).count();
    let rest = phone.strip_prefix('+').unwrap_or(phone);
    (7..=15).contains(&digits)
        && rest
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b' ' || byte == b'-')
}

fn check(name: &str, phone: Option<&str>, city: Option<&str>) -> Checks {
    let mut checks = Checks::default();
    checks
        .text("name", name, 200)
        .optional_text("city", city, 100);
    if phone.is_some_and(|phone| !valid_phone(phone)) {
        checks.fail(
            "phone",
            "invalid_format",
            "7 to 15 digits, optionally with '+', spaces and '-'",
        );
    }
    checks
}

/// Create a supplier (admin only).
#[utoipa::path(post, path = "/v1/suppliers", tag = "catalog", request_body = NewSupplier, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Supplier),
        InvalidField,
        NotAdmin,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn create_supplier(
    State(state): State<CatalogState>,
    principal: Principal,
    body: Result<Json<NewSupplier>, JsonRejection>,
) -> Result<(StatusCode, Json<Supplier>), ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let new = body?.0;
    let phone = trimmed(new.phone);
    let city = trimmed(new.city);
    check(&new.name, phone.as_deref(), city.as_deref()).done()?;

    let mut insert = QueryBuilder::new("INSERT INTO suppliers (name, phone, city) VALUES (");
    insert
        .separated(", ")
        .push_bind(new.name.trim().to_owned())
        .push_bind(phone)
        .push_bind(city);
    insert.push(")");
    let mut transaction = state.pool.begin().await?;
    let supplier: Supplier = super::insert(&mut transaction, &principal, insert).await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(supplier)))
}

/// Change a supplier (admin only).
#[utoipa::path(patch, path = "/v1/suppliers/{id}", tag = "catalog", request_body = SupplierChange, security(("bearer" = [])),
    params(("id" = i64, Path, description = "Supplier id")),
    responses(
        (status = 200, description = "The supplier after the change", body = Supplier),
        InvalidField,
        NotAdmin,
        (status = 404, description = "No such supplier (or deleted)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, supplier_id = id))]
pub async fn change_supplier(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
    body: Result<Json<SupplierChange>, JsonRejection>,
) -> Result<Json<Supplier>, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let change = body?.0;
    let supplier = super::update::<Supplier>(&state.pool, &principal, id, async |before, set| {
        let name = change.name.unwrap_or_else(|| before.name.clone());
        let phone = trimmed(merged(change.phone, &before.phone));
        let city = trimmed(merged(change.city, &before.city));
        check(&name, phone.as_deref(), city.as_deref()).done()?;
        set.set("name", name.trim().to_owned())
            .set("phone", phone)
            .set("city", city);
        Ok(())
    })
    .await?;
    Ok(Json(supplier))
}

/// Soft-delete a supplier (admin only): history keeps it; new stock-ins cannot name it.
#[utoipa::path(delete, path = "/v1/suppliers/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Supplier id")),
    responses(
        (status = 204, description = "Deleted"),
        NotAdmin,
        (status = 404, description = "No such supplier (or already deleted)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, supplier_id = id))]
pub async fn delete_supplier(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    super::soft_delete::<Supplier>(&state.pool, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::valid_phone;

    #[test]
    fn phones_are_digits_with_light_punctuation() {
        for good in ["+91 98200 12345", "022-2634-5678", "9820012345"] {
            assert!(valid_phone(good), "{good}");
        }
        for bad in [
            "12345",
            "+91 (982) 0012345",
            "call me",
            "+",
            "1234567890123456",
        ] {
            assert!(!valid_phone(bad), "{bad}");
        }
    }
}
