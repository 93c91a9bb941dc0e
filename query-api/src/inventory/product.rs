//! One product's stock in every store the token may see, with the total.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use schemas::StoreId;
use serde::Serialize;
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::NotModified;
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use utoipa::ToSchema;

use super::{FRESH_200, Stock, require_product};
use crate::ReadState;
use crate::balances::Freshness;
use crate::consistency::ConsistencyParams;
use crate::etag;

/// One product's stock in one store.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductStock {
    pub store_id: i64,
    #[serde(flatten)]
    pub stock: Stock,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductInventory<'a> {
    pub product_id: i64,
    pub sku: &'a str,
    pub name: &'a str,
    pub unit: &'a str,
    /// Units across the listed stores.
    pub total_quantity: i64,
    /// The caller's stores that hold the product or have settings for it, by store id.
    pub stores: Vec<ProductStock>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductInventoryResponse<'a> {
    #[serde(flatten)]
    pub inventory: ProductInventory<'a>,
    pub freshness: Freshness,
}

/// One product's stock in every store the token may see.
#[utoipa::path(get, path = "/v1/products/{id}/inventory", tag = "inventory",
    params(("id" = i64, Path, description = "Product id"), ConsistencyParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = FRESH_200, body = ProductInventoryResponse),
        NotModified,
        (status = 403, description = "The role may not read inventory", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, product_id = product))]
pub async fn product_inventory(
    State(state): State<ReadState>,
    principal: Principal,
    Path(product): Path<i64>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(Permission::InventoryRead)?;
    require_product(&state, product).await?;
    let stores: Vec<i64> = {
        let catalog = state.view.read();
        catalog
            .stores
            .keys()
            .copied()
            .filter(|store| principal.may_access(StoreId(*store)))
            .collect()
    };
    let token = state.consistent(&consistency).await?;
    let (balances, freshness) = state
        .balances
        .of_product(&stores, product, token.as_ref())
        .await?;

    let catalog = state.view.read();
    let meta = catalog
        .products
        .get(&product)
        .ok_or_else(|| ApiError::not_found("product", product))?;
    let mut rows = Vec::new();
    let mut held = balances.iter().peekable();
    for store in &stores {
        let balance = held
            .next_if(|(id, _)| id == store)
            .map(|(_, balance)| balance);
        let has_settings = catalog
            .settings
            .get(store)
            .is_some_and(|products| products.contains_key(&product));
        if balance.is_none() && !has_settings {
            continue;
        }
        rows.push(ProductStock {
            store_id: *store,
            stock: Stock::new(balance, catalog.setting(*store, product)),
        });
    }
    let inventory = ProductInventory {
        product_id: product,
        sku: &meta.sku,
        name: &meta.name,
        unit: &meta.unit,
        total_quantity: rows.iter().map(|row| row.stock.quantity).sum(),
        stores: rows,
    };
    etag::respond(&headers, &inventory, Some(&freshness))
}
