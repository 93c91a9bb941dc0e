//! Current inventory: a store's balances beside the catalog (SKU, name, category, unit,
//! reorder point), one product in a store, and one product across the caller's stores.
//! Balances come from Redis when it holds them and Postgres otherwise (see
//! [`crate::balances`]); every answer says how fresh it is and carries an `ETag`.
//!
//! A store's inventory lists each product it has a balance for (it moved there at least
//! once) and each product it has live settings for (stock 0 until it moves).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use schemas::{StoreId, Total};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidParameter, NoSuchStore, NotModified};
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ReadState;
use crate::balances::{Balance, Freshness, StoreBalances};
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::etag::{self};
use crate::pagination::{Page, PageParams};
use crate::view::{Catalog, ProductMeta, Setting};
use as_of::{AsOfParams, PastInventory, PastStoreItem};

pub mod as_of;
pub mod product;

/// A page of inventory holds this many products unless `limit` says otherwise…
pub const DEFAULT_ITEMS: u32 = 1_000;
/// …and at most this many.
pub const MAX_ITEMS: u32 = 5_000;

/// Where a product stands against its reorder point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockStatus {
    /// Above the reorder point (or none is set).
    InStock,
    /// At or below the reorder point, above zero.
    Low,
    /// Zero (or below, under the `allow` policy).
    Out,
}

impl StockStatus {
    /// The same levels the processors raise alerts on.
    pub fn of(quantity: i64, reorder_point: Option<i64>) -> Self {
        if quantity <= 0 {
            Self::Out
        } else if reorder_point.is_some_and(|point| quantity <= point) {
            Self::Low
        } else {
            Self::InStock
        }
    }
}

/// Stock value at moving-average cost, exactly; nothing is worth less than zero.
pub fn value_paise(quantity: i64, average_unit_cost_paise: Option<i64>) -> Option<Total> {
    Some(Total::product(quantity.max(0), average_unit_cost_paise?))
}

/// What a store holds of a product, against its reorder point.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stock {
    pub quantity: i64,
    /// Moving-average cost of the stock-ins with a cost; absent until the first.
    pub average_unit_cost_paise: Option<i64>,
    /// `quantity × average_unit_cost_paise` (0 when out of stock).
    pub value_paise: Option<Total>,
    /// The store's selling price of one unit, when it has one.
    pub selling_price_paise: Option<i64>,
    /// `quantity × selling_price_paise`: the stock at retail (0 when out of stock).
    pub retail_value_paise: Option<Total>,
    pub reorder_point: Option<i64>,
    pub stock_status: StockStatus,
    /// Absent until the product first moves in the store.
    pub last_movement_id: Option<Uuid>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Stock {
    pub fn new(balance: Option<&Balance>, setting: Setting) -> Self {
        let quantity = balance.map_or(0, |balance| balance.quantity);
        let average_unit_cost_paise = balance.and_then(|balance| balance.average_unit_cost_paise);
        Self {
            quantity,
            average_unit_cost_paise,
            value_paise: value_paise(quantity, average_unit_cost_paise),
            selling_price_paise: setting.selling_price_paise,
            retail_value_paise: value_paise(quantity, setting.selling_price_paise),
            reorder_point: setting.reorder_point,
            stock_status: StockStatus::of(quantity, setting.reorder_point),
            last_movement_id: balance.map(|balance| balance.last_movement_id),
            updated_at: balance.map(|balance| balance.updated_at),
        }
    }
}

/// A product as an inventory line names it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductNamed<'a> {
    pub product_id: i64,
    pub sku: &'a str,
    pub name: &'a str,
    pub category: Option<&'a str>,
    /// `pc`, `g` or `ml`: the unit `quantity` counts.
    pub unit: &'a str,
}

impl<'a> ProductNamed<'a> {
    pub fn new(product_id: i64, meta: &'a ProductMeta) -> Self {
        Self {
            product_id,
            sku: &meta.sku,
            name: &meta.name,
            category: meta.category.as_deref(),
            unit: &meta.unit,
        }
    }
}

/// One product in one store.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InventoryItem<'a> {
    #[serde(flatten)]
    pub product: ProductNamed<'a>,
    #[serde(flatten)]
    pub stock: Stock,
}

impl<'a> InventoryItem<'a> {
    pub fn new(
        product_id: i64,
        meta: &'a ProductMeta,
        balance: Option<&Balance>,
        setting: Setting,
    ) -> Self {
        Self {
            product: ProductNamed::new(product_id, meta),
            stock: Stock::new(balance, setting),
        }
    }
}

/// Every item of `store`, in product id order: its balances and its live settings merged.
pub fn store_items<'a>(
    catalog: &'a Catalog,
    store: i64,
    balances: &[(i64, Balance)],
) -> impl Iterator<Item = InventoryItem<'a>> {
    let empty = std::collections::BTreeMap::new();
    let settings = catalog.settings.get(&store).unwrap_or(&empty);
    let mut merged: Vec<(i64, Option<&Balance>)> = balances
        .iter()
        .map(|(product, balance)| (*product, Some(balance)))
        .collect();
    merged.extend(
        settings
            .keys()
            .filter(|product| {
                balances
                    .binary_search_by_key(*product, |(id, _)| *id)
                    .is_err()
            })
            .map(|product| (*product, None)),
    );
    merged.sort_unstable_by_key(|(product, _)| *product);
    let items: Vec<InventoryItem<'a>> = merged
        .into_iter()
        .filter_map(|(product, balance)| {
            let meta = catalog.products.get(&product)?;
            Some(InventoryItem::new(
                product,
                meta,
                balance,
                catalog.setting(store, product),
            ))
        })
        .collect();
    items.into_iter()
}

/// The store must exist (deleted ones too: their stock is history) and be the caller's.
pub async fn require_store(
    state: &ReadState,
    principal: &Principal,
    store: i64,
) -> Result<(), ApiError> {
    principal.require_store(StoreId(store))?;
    if state
        .view
        .holds(&state.pool, |catalog| catalog.stores.contains_key(&store))
        .await
    {
        Ok(())
    } else {
        Err(ApiError::not_found("store", store))
    }
}

/// Brings the catalog view up to date if it misses one of the products of `rows`: a product
/// stocked a moment after it was created is shown, not left out.
pub(super) async fn knows_products<T>(state: &ReadState, rows: &[(i64, T)]) {
    state
        .view
        .holds(&state.pool, |catalog| {
            rows.iter()
                .all(|(product, _)| catalog.products.contains_key(product))
        })
        .await;
}

/// The product must exist (deleted ones too: their stock is history).
pub(super) async fn require_product(state: &ReadState, product: i64) -> Result<(), ApiError> {
    if state
        .view
        .holds(&state.pool, |catalog| {
            catalog.products.contains_key(&product)
        })
        .await
    {
        Ok(())
    } else {
        Err(ApiError::not_found("product", product))
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InventoryFilter {
    /// Exact category.
    pub category: Option<String>,
    /// Exact SKU.
    pub sku: Option<String>,
    /// Text in the SKU or name (case-insensitive).
    pub q: Option<String>,
    /// Only products at or below their reorder point (out of stock included).
    pub below_reorder_point: Option<bool>,
    /// Only products with nothing in stock.
    pub out_of_stock: Option<bool>,
    /// Only products in this state.
    pub stock_status: Option<StockStatus>,
}

impl InventoryFilter {
    fn is_empty(&self) -> bool {
        self.category.is_none()
            && self.sku.is_none()
            && self.q.is_none()
            && self.below_reorder_point.is_none()
            && self.out_of_stock.is_none()
            && self.stock_status.is_none()
    }

    fn check(&self) -> Result<Option<String>, ApiError> {
        match self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            Some(q) if q.chars().count() > 100 => Err(ApiError::validation(
                "q",
                "too_long",
                "at most 100 characters",
            )),
            q => Ok(q.map(str::to_lowercase)),
        }
    }

    /// Whether a product passes the filters on what it is (category, SKU, text).
    fn keeps_product(&self, product: &ProductNamed<'_>, q: Option<&str>) -> bool {
        self.category
            .as_deref()
            .is_none_or(|wanted| product.category == Some(wanted))
            && self
                .sku
                .as_deref()
                .is_none_or(|wanted| product.sku == wanted)
            && q.is_none_or(|q| {
                product.sku.to_lowercase().contains(q) || product.name.to_lowercase().contains(q)
            })
    }

    fn keeps(&self, item: &InventoryItem<'_>, q: Option<&str>) -> bool {
        self.keeps_product(&item.product, q)
            && (self.below_reorder_point != Some(true)
                || item.stock.stock_status != StockStatus::InStock)
            && (self.out_of_stock != Some(true) || item.stock.stock_status == StockStatus::Out)
            && self
                .stock_status
                .is_none_or(|status| item.stock.stock_status == status)
    }
}

/// A page of a store's inventory.
#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryPage<'a> {
    pub store_id: i64,
    pub items: Vec<InventoryItem<'a>>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The shape of an inventory answer as documented (the `freshness` is added beside).
#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryResponse<'a> {
    #[serde(flatten)]
    pub page: InventoryPage<'a>,
    pub freshness: Freshness,
}

const FRESH_200: &str = "With `freshness`: its source (`cache` or `database`) and the next offset the processors will process per partition. `ETag` for `If-None-Match`.";
const FRESH_200_OR_PAST: &str = "Now: with `freshness`, its source (`cache` or `database`) and the next offset the processors will process per partition. With `as_of`: the stock then, read from the ledger, with `as_of` (and `known_at`) instead. `ETag` for `If-None-Match`.";

/// A store's inventory now, or at a past time (`as_of`): the documented shapes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StoreInventoryAnswer<'a> {
    Now(InventoryResponse<'a>),
    Past(PastInventory<'a>),
}

/// One product's stock in a store now, or at a past time (`as_of`): the documented shapes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StoreItemAnswer<'a> {
    Now(StoreItemResponse<'a>),
    Past(PastStoreItem<'a>),
}

/// A store's current inventory.
#[utoipa::path(get, path = "/v1/stores/{id}/inventory", tag = "inventory",
    params(("id" = i64, Path, description = "Store id"), InventoryFilter, PageParams, ConsistencyParams, AsOfParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = FRESH_200_OR_PAST, body = StoreInventoryAnswer),
        NotModified,
        InvalidParameter,
        (status = 403, description = "Not one of the token's stores, or the role may not read inventory", body = Problem, content_type = "application/problem+json"),
        NoSuchStore,
        (status = 503, description = "The consistency token's movements are not applied yet (`not_yet_consistent`); `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
#[allow(clippy::too_many_arguments)] // One per extractor: the query's four groups are documented apart.
pub async fn store_inventory(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(filter): Query<InventoryFilter>,
    Query(page): Query<PageParams>,
    Query(consistency): Query<ConsistencyParams>,
    Query(when): Query<AsOfParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(Permission::InventoryRead)?;
    require_store(&state, &principal, store).await?;
    if let Some(when) = when.check()? {
        return as_of::store_inventory(&state, store, when, &filter, &page, &consistency, &headers)
            .await;
    }
    let limit = page.limit_or(DEFAULT_ITEMS, MAX_ITEMS)? as usize;
    let after = page.after::<i64>()?;
    let q = filter.check()?;
    let token = state.consistent(&consistency).await?;
    // The whole inventory — what dashboards poll — is rendered once per version.
    let whole = filter.is_empty() && after.is_none() && limit == DEFAULT_ITEMS as usize;
    let generation = state.view.generation();
    if whole
        && let Some((version, freshness)) =
            state.balances.store_version(store, token.as_ref()).await
        && let Some(rendered) = state.renderings.get(store, &version, generation)
    {
        return etag::send(&headers, &rendered, Some(&freshness));
    }
    let StoreBalances {
        balances,
        freshness,
        version,
    } = state.balances.of_store(store, token.as_ref()).await?;
    knows_products(&state, &balances).await;

    let rendered = {
        let catalog = state.view.read();
        let items: Vec<InventoryItem<'_>> = store_items(&catalog, store, &balances)
            .filter(|item| after.is_none_or(|after| item.product.product_id > after))
            .filter(|item| filter.keeps(item, q.as_deref()))
            .take(limit + 1)
            .collect();
        let page = Page::from_rows(items, limit as u32, |item| item.product.product_id);
        etag::render(&InventoryPage {
            store_id: store,
            items: page.items,
            next_cursor: page.next_cursor,
        })?
    };
    if whole && let Some(version) = version {
        state
            .renderings
            .put(store, version, generation, rendered.clone());
    }
    etag::send(&headers, &rendered, Some(&freshness))
}

/// One product's stock in one store.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreItem<'a> {
    pub store_id: i64,
    #[serde(flatten)]
    pub item: InventoryItem<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreItemResponse<'a> {
    #[serde(flatten)]
    pub item: StoreItem<'a>,
    pub freshness: Freshness,
}

/// One product's stock in a store (0 if it never moved there).
#[utoipa::path(get, path = "/v1/stores/{id}/inventory/{product_id}", tag = "inventory",
    params(("id" = i64, Path, description = "Store id"), ("product_id" = i64, Path, description = "Product id"), ConsistencyParams, AsOfParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = FRESH_200_OR_PAST, body = StoreItemAnswer),
        NotModified,
        (status = 403, description = "Not one of the token's stores, or the role may not read inventory", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such store or product", body = Problem, content_type = "application/problem+json"),
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store, product_id = product))]
pub async fn store_product(
    State(state): State<ReadState>,
    principal: Principal,
    Path((store, product)): Path<(i64, i64)>,
    Query(consistency): Query<ConsistencyParams>,
    Query(when): Query<AsOfParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(Permission::InventoryRead)?;
    require_store(&state, &principal, store).await?;
    require_product(&state, product).await?;
    if let Some(when) = when.check()? {
        return as_of::store_product(&state, store, product, when, &consistency, &headers).await;
    }
    let token = state.consistent(&consistency).await?;
    let (balance, freshness) = state.balances.one(store, product, token.as_ref()).await?;
    let catalog = state.view.read();
    let meta = catalog
        .products
        .get(&product)
        .ok_or_else(|| ApiError::not_found("product", product))?;
    let item = StoreItem {
        store_id: store,
        item: InventoryItem::new(
            product,
            meta,
            balance.as_ref(),
            catalog.setting(store, product),
        ),
    };
    etag::respond(&headers, &item, Some(&freshness))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_status_follows_the_alert_levels_and_value_never_goes_negative() {
        assert_eq!(StockStatus::of(0, Some(5)), StockStatus::Out);
        assert_eq!(StockStatus::of(-3, None), StockStatus::Out);
        assert_eq!(StockStatus::of(5, Some(5)), StockStatus::Low);
        assert_eq!(StockStatus::of(6, Some(5)), StockStatus::InStock);
        assert_eq!(StockStatus::of(1, None), StockStatus::InStock);
        assert_eq!(value_paise(-3, Some(100)), Some(Total(0)));
        assert_eq!(value_paise(3, Some(100)), Some(Total(300)));
        assert_eq!(value_paise(3, None), None);
        assert_eq!(
            value_paise(i64::MAX, Some(1_000_000_000)),
            Some(Total(i128::from(i64::MAX) * 1_000_000_000))
        );
    }
}
