//! Sales of a store over local days, from the daily rollups.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use schemas::Total;
use serde::{Deserialize, Serialize};
use service_kit::auth::Principal;
use service_kit::path::Path;
use service_kit::problem::responses::{NoSuchStore, NotModified};
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use utoipa::{IntoParams, ToSchema};

use super::{RangeParams, ReportsForbidden, named, rollups};
use crate::ReadState;
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::etag;

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
    pub units_sold: Total,
    pub revenue_paise: Total,
    /// At the moving-average cost when each sale was applied.
    pub cost_of_goods_paise: Total,
    /// `revenue_paise − cost_of_goods_paise`.
    pub margin_paise: Total,
    pub sales: i64,
    /// Units removed (damaged, expired, lost, …).
    pub units_removed: Total,
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

/// Sums in `numeric`: exact whatever the rows hold.
const SALES_FIGURES: &str = "COALESCE(SUM(units_sold), 0) AS units_sold, \
    COALESCE(SUM(revenue_paise), 0) AS revenue_paise, \
    COALESCE(SUM(cost_of_goods_paise), 0) AS cost_of_goods_paise, \
    COALESCE(SUM(revenue_paise - cost_of_goods_paise), 0) AS margin_paise, \
    COALESCE(SUM(sale_count), 0)::bigint AS sales, \
    COALESCE(SUM(units_removed), 0) AS units_removed";

/// Sales of a store over local days, by day or by product.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/sales", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, SalesParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = SalesReport),
        NotModified,
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
            (row.sku, row.name) = named(&catalog, row.product_id);
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
