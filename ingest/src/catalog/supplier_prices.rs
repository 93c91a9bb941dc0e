//! Supplier prices: what a supplier charges a store for a product, in paise, from a date on.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::Deserialize;
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidField, NotAdmin};
use service_kit::problem::{ApiError, Problem};
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;

use schemas::catalog::SUPPLIER_PRICE_COLUMNS;
pub use schemas::catalog::SupplierPrice;

use super::{CatalogState, Checks, Record, Reference, Unique, push_id, require_live};
use crate::checks::MAX_PAISE;

impl Record for SupplierPrice {
    const TABLE: &'static str = "supplier_prices";
    const COLUMNS: &'static str = SUPPLIER_PRICE_COLUMNS;
    const ENTITY: &'static str = "supplier_price";
    const UNIQUE: &'static [Unique] = &[Unique {
        constraint: "supplier_prices_key",
        code: "duplicate_supplier_price",
        field: "effective_from",
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
pub struct NewSupplierPrice {
    pub store_id: i64,
    pub supplier_id: i64,
    pub product_id: i64,
    #[schema(example = 25_500)]
    pub unit_cost_paise: i64,
    /// Default: today in the store's time zone.
    pub effective_from: Option<NaiveDate>,
}

/// A partial update of the cost or the date; to price another store, supplier or product,
/// create a new price.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupplierPriceChange {
    pub unit_cost_paise: Option<i64>,
    pub effective_from: Option<NaiveDate>,
}

fn check_cost(checks: &mut Checks, unit_cost_paise: i64) {
    checks.range(
        "unit_cost_paise",
        Some(unit_cost_paise),
        0..=MAX_PAISE,
        " paise",
    );
}

/// Create a supplier price (admin only).
#[utoipa::path(post, path = "/v1/supplier-prices", tag = "catalog", request_body = NewSupplierPrice, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = SupplierPrice),
        InvalidField,
        NotAdmin,
        (status = 409, description = "This store, supplier and product already have a price from that date (`duplicate_supplier_price`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The store, supplier or product does not exist (or is deleted); `errors` names each", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn create_supplier_price(
    State(state): State<CatalogState>,
    principal: Principal,
    body: Result<Json<NewSupplierPrice>, JsonRejection>,
) -> Result<(StatusCode, Json<SupplierPrice>), ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let new = body?.0;
    let mut checks = Checks::default();
    check_cost(&mut checks, new.unit_cost_paise);
    checks.done()?;

    let mut transaction = state.pool.begin().await?;
    require_live(
        &mut transaction,
        &[
            Reference {
                field: "store_id",
                table: "stores",
                id: new.store_id,
            },
            Reference {
                field: "supplier_id",
                table: "suppliers",
                id: new.supplier_id,
            },
            Reference {
                field: "product_id",
                table: "products",
                id: new.product_id,
            },
        ],
    )
    .await?;
    // The default date is today where the store is.
    let mut insert = QueryBuilder::new(
        "INSERT INTO supplier_prices (store_id, supplier_id, product_id, unit_cost_paise, effective_from)
         SELECT id, ",
    );
    insert
        .separated(", ")
        .push_bind(new.supplier_id)
        .push_bind(new.product_id)
        .push_bind(new.unit_cost_paise);
    insert
        .push(", COALESCE(")
        .push_bind(new.effective_from)
        .push(", (now() AT TIME ZONE timezone)::date) FROM stores WHERE id = ")
        .push_bind(new.store_id);
    let price: SupplierPrice = super::insert(&mut transaction, &principal, insert).await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(price)))
}

/// Change a supplier price's cost or date (admin only).
#[utoipa::path(patch, path = "/v1/supplier-prices/{id}", tag = "catalog", request_body = SupplierPriceChange, security(("bearer" = [])),
    params(("id" = i64, Path, description = "Supplier price id")),
    responses(
        (status = 200, description = "The price after the change", body = SupplierPrice),
        InvalidField,
        NotAdmin,
        (status = 404, description = "No such price (or deleted)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A price from that date exists", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, supplier_price_id = id))]
pub async fn change_supplier_price(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
    body: Result<Json<SupplierPriceChange>, JsonRejection>,
) -> Result<Json<SupplierPrice>, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let change = body?.0;
    let price = super::update::<SupplierPrice>(&state.pool, &principal, id, async |before, set| {
        let cost = change.unit_cost_paise.unwrap_or(before.unit_cost_paise);
        let mut checks = Checks::default();
        check_cost(&mut checks, cost);
        checks.done()?;
        set.set("unit_cost_paise", cost).set(
            "effective_from",
            change.effective_from.unwrap_or(before.effective_from),
        );
        Ok(())
    })
    .await?;
    Ok(Json(price))
}

/// Soft-delete a supplier price (admin only).
#[utoipa::path(delete, path = "/v1/supplier-prices/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Supplier price id")),
    responses(
        (status = 204, description = "Deleted"),
        NotAdmin,
        (status = 404, description = "No such price (or already deleted)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, supplier_price_id = id))]
pub async fn delete_supplier_price(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    super::soft_delete::<SupplierPrice>(&state.pool, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
