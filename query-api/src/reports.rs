//! Reports, from what the processors maintain — never by scanning the ledger:
//! stock summary and valuation from current balances (Redis or the primary, like
//! inventory), sales and supplier sourcing from the daily rollups (the replica), whose
//! days are local dates in the store's timezone. Every report carries an `ETag`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidParameter, NoSuchStore};
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::PgPool;
use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::ReadState;
use crate::balances::{Freshness, StoreBalances};
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::etag;
use crate::inventory::{StockStatus, require_store, store_items};

/// The longest range a report covers.
const MAX_DAYS: i64 = 366;
/// Without `from`, a report covers this many days up to `to`.
const DEFAULT_DAYS: i64 = 30;

// ---- Stock summary and valuation (current balances) --------------------------------------

/// Every report's refusal: a store outside the token's, or a role without reports.
#[derive(Debug, IntoResponses)]
#[response(
    status = 403,
    description = "Not one of the token's stores, or the role may not read reports",
    content_type = "application/problem+json"
)]
pub struct ReportsForbidden(pub Problem);

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
    pub units: i64,
    /// Stock value at moving-average cost.
    pub value_paise: i64,
    /// Stock value at the store's selling prices (products without one count nothing).
    pub retail_value_paise: i64,
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
        (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"),
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
        units: 0,
        value_paise: 0,
        retail_value_paise: 0,
        unpriced_in_stock: 0,
        low_stock: 0,
        out_of_stock: 0,
    };
    for item in store_items(&catalog, store, &balances) {
        summary.products += 1;
        summary.units += item.stock.quantity.max(0);
        summary.value_paise = summary
            .value_paise
            .saturating_add(item.stock.value_paise.unwrap_or(0));
        match item.stock.retail_value_paise {
            Some(retail) => {
                summary.retail_value_paise = summary.retail_value_paise.saturating_add(retail)
            }
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
    pub units: i64,
    pub value_paise: i64,
    /// At the store's selling prices (products without one count nothing).
    pub retail_value_paise: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Valuation {
    pub store_id: i64,
    pub total_value_paise: i64,
    pub total_retail_value_paise: i64,
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
        (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"),
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
            ValuationGroup::Category => (item.category.map(str::to_owned), None),
            ValuationGroup::Product => (None, Some(item.product_id)),
        };
        let row = rows.entry(key.clone()).or_insert_with(|| ValuationRow {
            category: key.0,
            product_id: key.1,
            sku: matches!(group, ValuationGroup::Product).then(|| item.sku.to_owned()),
            products: 0,
            units: 0,
            value_paise: 0,
            retail_value_paise: 0,
        });
        row.products += 1;
        row.units += item.stock.quantity.max(0);
        row.value_paise = row
            .value_paise
            .saturating_add(item.stock.value_paise.unwrap_or(0));
        row.retail_value_paise = row
            .retail_value_paise
            .saturating_add(item.stock.retail_value_paise.unwrap_or(0));
    }
    drop(catalog);
    let mut rows: Vec<ValuationRow> = rows.into_values().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.value_paise));
    let valuation = Valuation {
        store_id: store,
        total_value_paise: rows
            .iter()
            .map(|row| row.value_paise)
            .fold(0, i64::saturating_add),
        total_retail_value_paise: rows
            .iter()
            .map(|row| row.retail_value_paise)
            .fold(0, i64::saturating_add),
        rows,
    };
    etag::respond(&headers, &valuation, Some(&freshness))
}

// ---- Date ranges ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First local day (YYYY-MM-DD, the store's timezone), inclusive; default 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last local day, inclusive; default today in the store's timezone.
    pub to: Option<NaiveDate>,
}

impl RangeParams {
    /// The range in days of the store's timezone (defaults from its "today").
    async fn resolve(
        &self,
        state: &ReadState,
        store: i64,
    ) -> Result<(NaiveDate, NaiveDate), ApiError> {
        let timezone = state
            .view
            .read()
            .stores
            .get(&store)
            .and_then(|meta| meta.timezone);
        let (from, to) = match (self.from, self.to) {
            (Some(from), Some(to)) => (from, to),
            (from, to) => {
                let today = match timezone {
                    Some(timezone) => chrono::Utc::now().with_timezone(&timezone).date_naive(),
                    None => Self::today(&state.pool, store).await?,
                };
                let to = to.unwrap_or(today);
                (
                    from.unwrap_or(to - chrono::Days::new(DEFAULT_DAYS as u64 - 1)),
                    to,
                )
            }
        };
        if from > to {
            return Err(ApiError::validation(
                "to",
                "out_of_range",
                "must not be before `from`",
            ));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(ApiError::validation(
                "from",
                "out_of_range",
                format!("a report covers at most {MAX_DAYS} days"),
            ));
        }
        Ok((from, to))
    }

    /// Today in the store's timezone, as Postgres knows it.
    async fn today(pool: &PgPool, store: i64) -> Result<NaiveDate, ApiError> {
        sqlx::query_scalar("SELECT (now() AT TIME ZONE timezone)::date FROM stores WHERE id = $1")
            .bind(store)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| ApiError::not_found("store", store))
    }
}

/// A report from rollups: the role and store are checked, the range resolved, the token
/// waited for; the pool to read is the standby unless it has not replayed the token.
async fn rollups<'a>(
    state: &'a ReadState,
    principal: &Principal,
    store: i64,
    range: &RangeParams,
    consistency: &ConsistencyParams,
) -> Result<(NaiveDate, NaiveDate, &'a PgPool), ApiError> {
    principal.require(Permission::ReportRead)?;
    require_store(state, principal, store).await?;
    let (from, to) = range.resolve(state, store).await?;
    let token = state.consistent(consistency).await?;
    Ok((from, to, state.standby.pool_for(token.as_ref()).await))
}

// ---- Sales -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SalesGroup {
    #[default]
    Day,
    Product,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SalesParams {
    /// `day` (default) or `product`.
    pub group_by: Option<SalesGroup>,
}

#[derive(Debug, Default, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SalesFigures {
    pub units_sold: i64,
    pub revenue_paise: i64,
    /// At the moving-average cost when each sale was applied.
    pub cost_of_goods_paise: i64,
    /// `revenue_paise − cost_of_goods_paise`.
    pub margin_paise: i64,
    pub sales: i64,
    /// Units removed (damaged, expired, lost, …).
    pub units_removed: i64,
}

impl SalesFigures {
    fn add(&mut self, other: &Self) {
        self.units_sold += other.units_sold;
        self.revenue_paise += other.revenue_paise;
        self.cost_of_goods_paise += other.cost_of_goods_paise;
        self.margin_paise += other.margin_paise;
        self.sales += other.sales;
        self.units_removed += other.units_removed;
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct SalesRow {
    /// For `group_by=day`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
    /// For `group_by=product`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub name: Option<String>,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub figures: SalesFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SalesReport {
    pub store_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub totals: SalesFigures,
    /// Days (or products) with sales or removals, in order.
    pub rows: Vec<SalesRow>,
}

const SALES_FIGURES: &str = "COALESCE(SUM(units_sold), 0)::bigint AS units_sold, \
    COALESCE(SUM(revenue_paise), 0)::bigint AS revenue_paise, \
    COALESCE(SUM(cost_of_goods_paise), 0)::bigint AS cost_of_goods_paise, \
    COALESCE(SUM(revenue_paise - cost_of_goods_paise), 0)::bigint AS margin_paise, \
    COALESCE(SUM(sale_count), 0)::bigint AS sales, \
    COALESCE(SUM(units_removed), 0)::bigint AS units_removed";

/// Sales of a store over local days, by day or by product.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/sales", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, SalesParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = SalesReport),
        (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"),
        (status = 400, description = "A parameter is invalid (a range over 366 days, `to` before `from`)", body = Problem, content_type = "application/problem+json"),
        ReportsForbidden,
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn sales(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(range): Query<RangeParams>,
    Query(params): Query<SalesParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, pool) = rollups(&state, &principal, store, &range, &consistency).await?;
    let group = params.group_by.unwrap_or_default();
    // By day from the store-level rollup (a row a day); by product from the per-product one.
    let (select, table, key) = match group {
        SalesGroup::Day => (
            "day, NULL::bigint AS product_id",
            "sales_daily_store",
            "day",
        ),
        SalesGroup::Product => ("NULL::date AS day, product_id", "sales_daily", "product_id"),
    };
    let mut rows: Vec<SalesRow> = sqlx::query_as(&format!(
        "SELECT {select}, {SALES_FIGURES} FROM {table} \
         WHERE store_id = $1 AND day BETWEEN $2 AND $3 GROUP BY {key} ORDER BY {key}"
    ))
    .bind(store)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut totals = SalesFigures::default();
    {
        let catalog = state.view.read();
        for row in &mut rows {
            totals.add(&row.figures);
            if let Some(meta) = row.product_id.and_then(|id| catalog.products.get(&id)) {
                row.sku = Some(meta.sku.to_string());
                row.name = Some(meta.name.to_string());
            }
        }
    }
    let report = SalesReport {
        store_id: store,
        from,
        to,
        totals,
        rows,
    };
    etag::respond(&headers, &report, None)
}

// ---- Supplier sourcing ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourcingGroup {
    #[default]
    Supplier,
    Product,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourcingParams {
    /// `supplier` (default) or `product` (per supplier and product).
    pub group_by: Option<SourcingGroup>,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct SourcingRow {
    pub supplier_id: i64,
    pub supplier_name: String,
    /// For `group_by=product`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub sku: Option<String>,
    pub units_received: i64,
    pub cost_paise: i64,
    pub stock_ins: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourcingReport {
    pub store_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub total_units_received: i64,
    pub total_cost_paise: i64,
    /// By supplier id (then product id).
    pub rows: Vec<SourcingRow>,
}

/// Stock-ins of a store by supplier over local days.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/suppliers", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, SourcingParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = SourcingReport),
        (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"),
        InvalidParameter,
        ReportsForbidden,
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn sourcing(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(range): Query<RangeParams>,
    Query(params): Query<SourcingParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, pool) = rollups(&state, &principal, store, &range, &consistency).await?;
    let (product, group) = match params.group_by.unwrap_or_default() {
        SourcingGroup::Supplier => ("NULL::bigint", "d.supplier_id, s.name"),
        SourcingGroup::Product => ("d.product_id", "d.supplier_id, s.name, d.product_id"),
    };
    let mut rows: Vec<SourcingRow> = sqlx::query_as(&format!(
        "SELECT d.supplier_id, s.name AS supplier_name, {product} AS product_id, \
                SUM(d.units_received)::bigint AS units_received, SUM(d.cost_paise)::bigint AS cost_paise, \
                SUM(d.stock_in_count)::bigint AS stock_ins \
         FROM supplier_daily d JOIN suppliers s ON s.id = d.supplier_id \
         WHERE d.store_id = $1 AND d.day BETWEEN $2 AND $3 GROUP BY {group} ORDER BY {group}"
    ))
    .bind(store)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    {
        let catalog = state.view.read();
        for row in &mut rows {
            row.sku = row
                .product_id
                .and_then(|id| catalog.products.get(&id))
                .map(|meta| meta.sku.to_string());
        }
    }
    let report = SourcingReport {
        store_id: store,
        from,
        to,
        total_units_received: rows.iter().map(|row| row.units_received).sum(),
        total_cost_paise: rows.iter().map(|row| row.cost_paise).sum(),
        rows,
    };
    etag::respond(&headers, &report, None)
}
