//! Products: SKU (unique across the network), name, category, unit, optional barcode.

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

use schemas::catalog::PRODUCT_COLUMNS;
pub use schemas::catalog::Product;

use super::{CatalogState, Checks, Record, Unique, merged, present, push_id, trimmed};

impl Record for Product {
    const TABLE: &'static str = "products";
    const COLUMNS: &'static str = PRODUCT_COLUMNS;
    const ENTITY: &'static str = "product";
    const UNIQUE: &'static [Unique] = &[Unique {
        constraint: "products_sku_key",
        code: "duplicate_sku",
        field: "sku",
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
pub struct NewProduct {
    /// Unique across the network: upper-case letters, digits, '-', '_', '.'.
    #[schema(example = "ATTA-5KG")]
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    /// `pc`, `g` or `ml`.
    pub unit: String,
    /// 8 to 14 digits (EAN/UPC/GTIN).
    pub barcode: Option<String>,
}

/// A partial update: only the fields present change; `null` clears category or barcode.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    pub sku: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    pub unit: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub barcode: Option<Option<String>>,
}

fn check(
    sku: &str,
    name: &str,
    category: Option<&str>,
    unit: &str,
    barcode: Option<&str>,
) -> Checks {
    let mut checks = Checks::default();
    checks
        .code("sku", sku, b"_.")
        .text("name", name, 200)
        .optional_text("category", category, 100);
    if !matches!(unit, "pc" | "g" | "ml") {
        checks.fail("unit", "invalid", "`pc`, `g` or `ml`");
    }
    if let Some(barcode) = barcode
        && (!(8..=14).contains(&barcode.len())
            || !barcode.bytes().all(|byte| byte.is_ascii_digit()))
    {
        checks.fail("barcode", "invalid_format", "8 to 14 digits");
    }
    checks
}

/// Create a product (admin only).
#[utoipa::path(post, path = "/v1/products", tag = "catalog", request_body = NewProduct, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Product),
        InvalidField,
        NotAdmin,
        (status = 409, description = "The SKU is taken (`duplicate_sku`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn create_product(
    State(state): State<CatalogState>,
    principal: Principal,
    body: Result<Json<NewProduct>, JsonRejection>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let new = body?.0;
    let category = trimmed(new.category);
    let barcode = trimmed(new.barcode);
    check(
        &new.sku,
        &new.name,
        category.as_deref(),
        &new.unit,
        barcode.as_deref(),
    )
    .done()?;

    let mut insert =
        QueryBuilder::new("INSERT INTO products (sku, name, category, unit, barcode) VALUES (");
    insert
        .separated(", ")
        .push_bind(new.sku)
        .push_bind(new.name.trim().to_owned())
        .push_bind(category)
        .push_bind(new.unit)
        .push_bind(barcode);
    insert.push(")");
    let mut transaction = state.pool.begin().await?;
    let product: Product = super::insert(&mut transaction, &principal, insert).await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(product)))
}

/// Change a product (admin only).
#[utoipa::path(patch, path = "/v1/products/{id}", tag = "catalog", request_body = ProductChange, security(("bearer" = [])),
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product after the change", body = Product),
        InvalidField,
        NotAdmin,
        (status = 404, description = "No such product (or deleted)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The SKU is taken", body = Problem, content_type = "application/problem+json"),
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
    let product = super::update::<Product>(&state.pool, &principal, id, async |before, set| {
        let sku = change.sku.unwrap_or_else(|| before.sku.clone());
        let name = change.name.unwrap_or_else(|| before.name.clone());
        let category = trimmed(merged(change.category, &before.category));
        let unit = change.unit.unwrap_or_else(|| before.unit.clone());
        let barcode = trimmed(merged(change.barcode, &before.barcode));
        check(&sku, &name, category.as_deref(), &unit, barcode.as_deref()).done()?;
        set.set("sku", sku)
            .set("name", name.trim().to_owned())
            .set("category", category)
            .set("unit", unit)
            .set("barcode", barcode);
        Ok(())
    })
    .await?;
    Ok(Json(product))
}

/// Soft-delete a product (admin only): history keeps it; it receives no more movements.
#[utoipa::path(delete, path = "/v1/products/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 204, description = "Deleted"),
        NotAdmin,
        (status = 404, description = "No such product (or already deleted)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, product_id = id))]
pub async fn delete_product(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    super::soft_delete::<Product>(&state.pool, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_fields_are_checked_together() {
        let checks = check("atta 5kg", "", Some(""), "kg", Some("12ab"));
        assert_eq!(
            checks.fields(),
            ["sku", "name", "category", "unit", "barcode"]
        );

        let checks = check(
            "ATTA-5KG_V2.1",
            "Aashirvaad Atta 5 kg",
            Some("Staples"),
            "pc",
            Some("8901063010021"),
        );
        assert!(checks.fields().is_empty());
    }
}
