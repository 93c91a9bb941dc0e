//! Reports of current state: the stock summary and valuation, from current balances.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use schemas::Total;
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::ApiError;
use service_kit::problem::responses::{NoSuchStore, NotModified};
use service_kit::query::Query;
use utoipa::{IntoParams, ToSchema};

use super::ReportsForbidden;
use crate::ReadState;
use crate::balances::{Freshness, StoreBalances};
use crate::consistency::ConsistencyParams;
use crate::etag;
use crate::inventory::{StockStatus, require_store, store_items};

/// A report of current state: the role and store are checked, the token waited for.
async fn current(
    state: &ReadState,
    principal: &Principal,
    store: i64,
    consistency: &ConsistencyParams,
) -> Result<StoreBalances, ApiError> {
    principal.require(Permission::ReportRead)?;
    require_store(state, principal, store).await?;
    let token = state.consistent(consistency).await?;
    state.balances.of_store(store, token.as_ref()).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StockSummary {
    pub store_id: i64,
    /// Products listed in the store's inventory.
    pub products: usize,
    /// Products with stock above zero.
    pub products_in_stock: usize,
    /// Units in stock (each product in its own unit).
    pub units: Total,
    /// Stock value at moving-average cost.
    pub value_paise: Total,
    /// Products in stock whose cost is unknown (only stocked without one, by cash
    /// stock-ins): `value_paise` leaves them out.
    pub uncosted_in_stock: usize,
    /// Stock value at the store's selling prices (products without one count nothing).
    pub retail_value_paise: Total,
    /// Products in stock without a selling price here: `retail_value_paise` leaves them out.
    pub unpriced_in_stock: usize,
    /// Products at or below their reorder point but not out of stock.
    pub low_stock: usize,
    /// Products with nothing in stock.
    pub out_of_stock: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StockSummaryResponse {
    #[serde(flatten)]
    pub summary: StockSummary,
    pub freshness: Freshness,
}

/// A store's stock at a glance.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/stock-summary", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary, with `freshness` and an `ETag`", body = StockSummaryResponse),
        NotModified,
        ReportsForbidden,
        NoSuchStore,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn stock_summary(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let StoreBalances {
        balances,
        freshness,
        ..
    } = current(&state, &principal, store, &consistency).await?;
    let catalog = state.view.read();
    let mut summary = StockSummary {
        store_id: store,
        products: 0,
        products_in_stock: 0,
        units: Total::default(),
        value_paise: Total::default(),
        uncosted_in_stock: 0,
        retail_value_paise: Total::default(),
        unpriced_in_stock: 0,
        low_stock: 0,
        out_of_stock: 0,
    };
    for item in store_items(&catalog, store, &balances) {
        summary.products += 1;
        summary.units += Total::from(item.stock.quantity.max(0));
        match item.stock.value_paise {
            Some(value) => summary.value_paise += value,
            None if item.stock.quantity > 0 => summary.uncosted_in_stock += 1,
            None => {}
        }
        match item.stock.retail_value_paise {
            Some(retail) => summary.retail_value_paise += retail,
            None if item.stock.quantity > 0 => summary.unpriced_in_stock += 1,
            None => {}
        }
        match item.stock.stock_status {
            StockStatus::InStock => summary.products_in_stock += 1,
            StockStatus::Low => {
                summary.products_in_stock += 1;
                summary.low_stock += 1;
            }
            StockStatus::Out => summary.out_of_stock += 1,
        }
    }
    etag::respond(&headers, &summary, Some(&freshness))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValuationGroup {
    #[default]
    Category,
    Product,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ValuationParams {
    /// `category` (default) or `product`.
    pub group_by: Option<ValuationGroup>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValuationRow {
    /// For `group_by=category` (absent: products without a category).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub products: usize,
    pub units: Total,
    pub value_paise: Total,
    /// Units in stock whose cost is unknown: `value_paise` leaves them out.
    pub units_without_cost: Total,
    /// At the store's selling prices (products without one count nothing).
    pub retail_value_paise: Total,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Valuation {
    pub store_id: i64,
    pub total_value_paise: Total,
    /// Units in stock whose cost is unknown: the total value leaves them out.
    pub total_units_without_cost: Total,
    pub total_retail_value_paise: Total,
    /// Largest value first.
    pub rows: Vec<ValuationRow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValuationResponse {
    #[serde(flatten)]
    pub valuation: Valuation,
    pub freshness: Freshness,
}

/// What a store's stock is worth at moving-average cost, by category or product.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/valuation", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), ValuationParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The valuation, with `freshness` and an `ETag`", body = ValuationResponse),
        NotModified,
        ReportsForbidden,
        NoSuchStore,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn valuation(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(params): Query<ValuationParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let StoreBalances {
        balances,
        freshness,
        ..
    } = current(&state, &principal, store, &consistency).await?;
    let group = params.group_by.unwrap_or_default();
    let catalog = state.view.read();
    let mut rows: std::collections::BTreeMap<(Option<String>, Option<i64>), ValuationRow> =
        std::collections::BTreeMap::new();
    for item in store_items(&catalog, store, &balances) {
        let key = match group {
            ValuationGroup::Category => (item.product.category.map(str::to_owned), None),
            ValuationGroup::Product => (None, Some(item.product.product_id)),
        };
        let row = rows.entry(key.clone()).or_insert_with(|| ValuationRow {
            category: key.0,
            product_id: key.1,
            sku: matches!(group, ValuationGroup::Product).then(|| item.product.sku.to_owned()),
            products: 0,
            units: Total::default(),
            value_paise: Total::default(),
            units_without_cost: Total::default(),
            retail_value_paise: Total::default(),
        });
        row.products += 1;
        let units = Total::from(item.stock.quantity.max(0));
        row.units += units;
        match item.stock.value_paise {
            Some(value) => row.value_paise += value,
            None => row.units_without_cost += units,
        }
        row.retail_value_paise += item.stock.retail_value_paise.unwrap_or_default();
    }
    drop(catalog);
    let mut rows: Vec<ValuationRow> = rows.into_values().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.value_paise));
    let valuation = Valuation {
        store_id: store,
        total_value_paise: rows.iter().map(|row| row.value_paise).sum(),
        total_units_without_cost: rows.iter().map(|row| row.units_without_cost).sum(),
        total_retail_value_paise: rows.iter().map(|row| row.retail_value_paise).sum(),
        rows,
    };
    etag::respond(&headers, &valuation, Some(&freshness))
}
