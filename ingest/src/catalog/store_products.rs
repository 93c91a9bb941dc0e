//! Per-store product settings: the reorder point (an alert fires when the balance falls
//! below it), the quantity to reorder and the selling price. Admins, and managers for their
//! own stores, set them up and change them; only admins remove them.

use std::fmt;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use schemas::StoreId;
use serde::Deserialize;
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidField, NotAdmin};
use service_kit::problem::{ApiError, Problem};
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;

use schemas::catalog::STORE_PRODUCT_COLUMNS;
pub use schemas::catalog::StoreProduct;

use super::{CatalogState, Checks, Record, Reference, Unique, merged, present, require_live};
use crate::checks::{MAX_PAISE, MAX_QUANTITY};

/// A store × product pair, shown as `store_id:product_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreProductKey {
    pub store_id: i64,
    pub product_id: i64,
}

impl fmt::Display for StoreProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.store_id, self.product_id)
    }
}

impl Record for StoreProduct {
    const TABLE: &'static str = "store_products";
    const COLUMNS: &'static str = STORE_PRODUCT_COLUMNS;
    const ENTITY: &'static str = "store_product";
    const UNIQUE: &'static [Unique] = &[Unique {
        constraint: "store_products_pkey",
        code: "duplicate_store_product",
        field: "product_id",
    }];
    type Key = StoreProductKey;

    fn key(&self) -> StoreProductKey {
        StoreProductKey {
            store_id: self.store_id,
            product_id: self.product_id,
        }
    }

    fn push_key(query: &mut QueryBuilder<'static, Postgres>, key: StoreProductKey) {
        query
            .push("store_id = ")
            .push_bind(key.store_id)
            .push(" AND product_id = ")
            .push_bind(key.product_id);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStoreProduct {
    pub store_id: i64,
    pub product_id: i64,
    pub reorder_point: Option<i64>,
    pub reorder_quantity: Option<i64>,
    /// What one unit sells for in this store, in paise.
    pub selling_price_paise: Option<i64>,
}

/// A partial update: only the fields present change; `null` clears one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreProductChange {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub reorder_point: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub reorder_quantity: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub selling_price_paise: Option<Option<i64>>,
}

fn check(
    reorder_point: Option<i64>,
    reorder_quantity: Option<i64>,
    selling_price_paise: Option<i64>,
) -> Checks {
    let mut checks = Checks::default();
    checks
        .range("reorder_point", reorder_point, 0..=MAX_QUANTITY, "")
        .range("reorder_quantity", reorder_quantity, 1..=MAX_QUANTITY, "")
        .range(
            "selling_price_paise",
            selling_price_paise,
            0..=MAX_PAISE,
            " paise",
        );
    checks
}

/// Set up a product in a store (admin, or the store's manager).
#[utoipa::path(post, path = "/v1/store-products", tag = "catalog", request_body = NewStoreProduct, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = StoreProduct),
        InvalidField,
        (status = 403, description = "Neither an admin nor a manager of the store", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The product is already set up in this store (`duplicate_store_product`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The store or product does not exist (or is deleted)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn create_store_product(
    State(state): State<CatalogState>,
    principal: Principal,
    body: Result<Json<NewStoreProduct>, JsonRejection>,
) -> Result<(StatusCode, Json<StoreProduct>), ApiError> {
    principal.require(Permission::StoreSettingsWrite)?;
    let new = body?.0;
    principal.require_store(StoreId(new.store_id))?;
    check(
        new.reorder_point,
        new.reorder_quantity,
        new.selling_price_paise,
    )
    .done()?;
    let key = StoreProductKey {
        store_id: new.store_id,
        product_id: new.product_id,
    };

    let mut transaction = state.pool.begin().await?;
    require_live(
        &mut transaction,
        &[
            Reference {
                field: "store_id",
                table: "stores",
                id: key.store_id,
            },
            Reference {
                field: "product_id",
                table: "products",
                id: key.product_id,
            },
        ],
    )
    .await?;
    // The table's key is the pair, so a deleted setting is brought back rather than
    // inserted again; a live one is a conflict.
    let deleted: Option<bool> = sqlx::query_scalar(
        "SELECT deleted_at IS NOT NULL FROM store_products WHERE store_id = $1 AND product_id = $2 FOR UPDATE",
    )
    .bind(key.store_id)
    .bind(key.product_id)
    .fetch_optional(&mut *transaction)
    .await?;
    let query = match deleted {
        Some(false) => {
            return Err(ApiError::Conflict {
                code: "duplicate_store_product",
                detail: format!(
                    "product {} is already set up in store {}",
                    key.product_id, key.store_id
                ),
                field: Some("product_id"),
            });
        }
        Some(true) => {
            let mut revive = QueryBuilder::new(
                "UPDATE store_products SET deleted_at = NULL, created_at = now(), updated_at = now(), reorder_point = ",
            );
            revive
                .push_bind(new.reorder_point)
                .push(", reorder_quantity = ")
                .push_bind(new.reorder_quantity)
                .push(", selling_price_paise = ")
                .push_bind(new.selling_price_paise)
                .push(" WHERE ");
            StoreProduct::push_key(&mut revive, key);
            revive
        }
        None => {
            let mut insert = QueryBuilder::new(
                "INSERT INTO store_products (store_id, product_id, reorder_point, reorder_quantity, selling_price_paise) VALUES (",
            );
            insert
                .separated(", ")
                .push_bind(key.store_id)
                .push_bind(key.product_id)
                .push_bind(new.reorder_point)
                .push_bind(new.reorder_quantity)
                .push_bind(new.selling_price_paise);
            insert.push(")");
            insert
        }
    };
    let created: StoreProduct = super::insert(&mut transaction, &principal, query).await?;
    transaction.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Change a product's settings in a store (admin, or the store's manager).
#[utoipa::path(patch, path = "/v1/store-products/{store_id}/{product_id}", tag = "catalog", request_body = StoreProductChange, security(("bearer" = [])),
    params(("store_id" = i64, Path, description = "Store id"), ("product_id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The settings after the change", body = StoreProduct),
        InvalidField,
        (status = 403, description = "Neither an admin nor a manager of the store", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The product is not set up in this store (or was removed)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store_id, product_id = product_id))]
pub async fn change_store_product(
    State(state): State<CatalogState>,
    principal: Principal,
    Path((store_id, product_id)): Path<(i64, i64)>,
    body: Result<Json<StoreProductChange>, JsonRejection>,
) -> Result<Json<StoreProduct>, ApiError> {
    principal.require(Permission::StoreSettingsWrite)?;
    principal.require_store(StoreId(store_id))?;
    let change = body?.0;
    let key = StoreProductKey {
        store_id,
        product_id,
    };
    let after = super::update::<StoreProduct>(&state.pool, &principal, key, async |before, set| {
        let point = merged(change.reorder_point, &before.reorder_point);
        let quantity = merged(change.reorder_quantity, &before.reorder_quantity);
        let price = merged(change.selling_price_paise, &before.selling_price_paise);
        check(point, quantity, price).done()?;
        set.set("reorder_point", point)
            .set("reorder_quantity", quantity)
            .set("selling_price_paise", price);
        Ok(())
    })
    .await?;
    Ok(Json(after))
}

/// Remove a product's settings from a store (admin only, soft).
#[utoipa::path(delete, path = "/v1/store-products/{store_id}/{product_id}", tag = "catalog", security(("bearer" = [])),
    params(("store_id" = i64, Path, description = "Store id"), ("product_id" = i64, Path, description = "Product id")),
    responses(
        (status = 204, description = "Deleted"),
        NotAdmin,
        (status = 404, description = "Not set up (or already removed)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store_id, product_id = product_id))]
pub async fn delete_store_product(
    State(state): State<CatalogState>,
    principal: Principal,
    Path((store_id, product_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::CatalogWrite)?;
    let key = StoreProductKey {
        store_id,
        product_id,
    };
    super::soft_delete::<StoreProduct>(&state.pool, &principal, key).await?;
    Ok(StatusCode::NO_CONTENT)
}
