//! Stock that changed other than by sales and stock-ins, over local days: shrinkage (what
//! the store lost or found, by reason or product) and customers' returns by product from
//! their daily rollup, and the store's counts with their variances from the ledger's count
//! lines (their own index).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use schemas::Total;
use serde::{Deserialize, Serialize};
use service_kit::auth::Principal;
use service_kit::path::Path;
use service_kit::problem::ApiError;
use service_kit::problem::responses::{InvalidParameter, NoSuchStore, NotModified};
use service_kit::query::Query;
use utoipa::{IntoParams, ToSchema};

use super::{RangeParams, ReportsForbidden, named, rollups};
use crate::ReadState;
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::etag;

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShrinkageGroup {
    #[default]
    Reason,
    Product,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShrinkageParams {
    /// `reason` (default) or `product`.
    pub group_by: Option<ShrinkageGroup>,
}

/// What a store lost and found, valued at the moving-average cost when it happened.
#[derive(Debug, Default, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ShrinkageFigures {
    /// Units removed, adjusted down, counted short, returned by customers and written off
    /// (not resellable), or lost in transit (sent by another store, not received).
    pub units_lost: Total,
    pub value_lost_paise: Total,
    /// Units adjusted up (found) or counted over the book.
    pub units_found: Total,
    pub value_found_paise: Total,
    /// `value_lost_paise − value_found_paise`.
    pub net_value_lost_paise: Total,
    /// Units lost or found whose cost was unknown: the values leave them out.
    pub units_without_cost: Total,
    /// Removals, adjustments, counts with a variance, written-off returns and receives
    /// short.
    pub movements: i64,
}

impl ShrinkageFigures {
    fn add(&mut self, other: &Self) {
        self.units_lost += other.units_lost;
        self.value_lost_paise += other.value_lost_paise;
        self.units_found += other.units_found;
        self.value_found_paise += other.value_found_paise;
        self.net_value_lost_paise += other.net_value_lost_paise;
        self.units_without_cost += other.units_without_cost;
        self.movements += other.movements;
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ShrinkageRow {
    /// For `group_by=reason`: `damaged`, `expired`, `lost`, `theft`, `found`, `correction`,
    /// `defective`, `other`, `count` (count variances) or `in_transit` (transfers received
    /// short, valued at the source's cost when sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    pub figures: ShrinkageFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShrinkageReport {
    pub store_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub totals: ShrinkageFigures,
    /// By reason (or product id), the largest net loss first.
    pub rows: Vec<ShrinkageRow>,
}

/// The changes that lose (or find: adjustments and counts up) stock; a restocked return
/// is neither.
const SHRINKAGE_FIGURES: &str = "\
    COALESCE(SUM(units) FILTER (WHERE change NOT IN ('adjustment_up', 'count_up')), 0) AS units_lost, \
    COALESCE(SUM(value_paise) FILTER (WHERE change NOT IN ('adjustment_up', 'count_up')), 0) \
      AS value_lost_paise, \
    COALESCE(SUM(units) FILTER (WHERE change IN ('adjustment_up', 'count_up')), 0) AS units_found, \
    COALESCE(SUM(value_paise) FILTER (WHERE change IN ('adjustment_up', 'count_up')), 0) \
      AS value_found_paise, \
    COALESCE(SUM(CASE WHEN change IN ('adjustment_up', 'count_up') THEN -value_paise \
      ELSE value_paise END), 0) AS net_value_lost_paise, \
    COALESCE(SUM(units_without_cost), 0) AS units_without_cost, \
    COALESCE(SUM(movements), 0)::bigint AS movements";

/// Stock a store lost or found over local days (removals, adjustments, returns written
/// off), by reason or by product.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/shrinkage", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, ShrinkageParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = ShrinkageReport),
        NotModified,
        InvalidParameter,
        ReportsForbidden,
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn shrinkage(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(range): Query<RangeParams>,
    Query(params): Query<ShrinkageParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, pool) = rollups(&state, &principal, store, &range, &consistency).await?;
    let (select, key) = match params.group_by.unwrap_or_default() {
        ShrinkageGroup::Reason => ("reason, NULL::bigint AS product_id", "reason"),
        ShrinkageGroup::Product => ("NULL::text AS reason, product_id", "product_id"),
    };
    let mut rows: Vec<ShrinkageRow> = sqlx::query_as(&format!(
        "SELECT {select}, {SHRINKAGE_FIGURES} FROM stock_changes_daily \
         WHERE store_id = $1 AND day BETWEEN $2 AND $3 AND change <> 'return_restocked' \
         GROUP BY {key} ORDER BY net_value_lost_paise DESC, {key}"
    ))
    .bind(store)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut totals = ShrinkageFigures::default();
    {
        let catalog = state.view.read();
        for row in &mut rows {
            totals.add(&row.figures);
            (row.sku, row.name) = named(&catalog, row.product_id);
        }
    }
    let report = ShrinkageReport {
        store_id: store,
        from,
        to,
        totals,
        rows,
    };
    etag::respond(&headers, &report, None)
}

/// Customers' returns of a product.
#[derive(Debug, Default, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ReturnFigures {
    pub returns: i64,
    pub units_returned: Total,
    /// Back on the shelf.
    pub units_restocked: Total,
    /// Not resellable (damaged, expired, defective, other).
    pub units_written_off: Total,
    /// The written-off units at the moving-average cost.
    pub value_written_off_paise: Total,
}

impl ReturnFigures {
    fn add(&mut self, other: &Self) {
        self.returns += other.returns;
        self.units_returned += other.units_returned;
        self.units_restocked += other.units_restocked;
        self.units_written_off += other.units_written_off;
        self.value_written_off_paise += other.value_written_off_paise;
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ReturnRow {
    pub product_id: i64,
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub figures: ReturnFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnsReport {
    pub store_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub totals: ReturnFigures,
    /// By product, the most units returned first.
    pub rows: Vec<ReturnRow>,
}

/// Customers' returns of a store over local days, by product.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/returns", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = ReturnsReport),
        NotModified,
        InvalidParameter,
        ReportsForbidden,
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn returns(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(range): Query<RangeParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, pool) = rollups(&state, &principal, store, &range, &consistency).await?;
    let mut rows: Vec<ReturnRow> = sqlx::query_as(
        "SELECT product_id, SUM(movements)::bigint AS returns, SUM(units) AS units_returned, \
                COALESCE(SUM(units) FILTER (WHERE change = 'return_restocked'), 0) AS units_restocked, \
                COALESCE(SUM(units) FILTER (WHERE change = 'return_written_off'), 0) AS units_written_off, \
                COALESCE(SUM(value_paise) FILTER (WHERE change = 'return_written_off'), 0) \
                  AS value_written_off_paise \
         FROM stock_changes_daily \
         WHERE store_id = $1 AND day BETWEEN $2 AND $3 \
           AND change IN ('return_restocked', 'return_written_off') \
         GROUP BY product_id ORDER BY units_returned DESC, product_id",
    )
    .bind(store)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut totals = ReturnFigures::default();
    {
        let catalog = state.view.read();
        for row in &mut rows {
            totals.add(&row.figures);
            (row.sku, row.name) = named(&catalog, Some(row.product_id));
        }
    }
    let report = ReturnsReport {
        store_id: store,
        from,
        to,
        totals,
        rows,
    };
    etag::respond(&headers, &report, None)
}

/// One count of a store: a stock-take's lines (one `count_id`), or a single line.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct CountRow {
    /// The stock-take; absent for a count sent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_id: Option<uuid::Uuid>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// Products counted (lines applied).
    pub products: i64,
    /// Of those, the ones the book had wrong.
    pub products_with_variance: i64,
    /// Units counted over the book (as of the count's time), and short of it.
    pub units_over: Total,
    pub units_short: Total,
    /// The variance at the moving-average cost: over less short.
    pub variance_value_paise: Total,
    /// Lines refused because a later count of their product came first.
    pub superseded: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountsReport {
    pub store_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Newest first.
    pub rows: Vec<CountRow>,
}

/// A store's counts over local days, each with its variance: what the shelf held against
/// what the book said as of then.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/counts", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = CountsReport),
        NotModified,
        InvalidParameter,
        ReportsForbidden,
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn counts(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(range): Query<RangeParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, pool) = rollups(&state, &principal, store, &range, &consistency).await?;
    // The store's count lines only (their own index), between its local midnights.
    let rows: Vec<CountRow> = sqlx::query_as(
        "SELECT m.count_id, min(m.occurred_at) AS occurred_at, \
                count(*) FILTER (WHERE m.status = 'applied') AS products, \
                count(*) FILTER (WHERE m.status = 'applied' AND m.delta <> 0) \
                  AS products_with_variance, \
                COALESCE(sum(m.delta) FILTER (WHERE m.status = 'applied' AND m.delta > 0), 0) \
                  AS units_over, \
                COALESCE(-sum(m.delta) FILTER (WHERE m.status = 'applied' AND m.delta < 0), 0) \
                  AS units_short, \
                COALESCE(sum(m.delta::numeric * m.average_cost_paise) \
                  FILTER (WHERE m.status = 'applied'), 0) AS variance_value_paise, \
                count(*) FILTER (WHERE m.reject_reason = 'superseded_by_count') AS superseded \
         FROM movements m \
         WHERE m.store_id = $1 AND m.kind = 'count' AND m.status IN ('applied', 'rejected') \
           AND m.occurred_at >= (SELECT $2::date::timestamp AT TIME ZONE timezone \
                                 FROM stores WHERE id = $1) \
           AND m.occurred_at < (SELECT ($3::date + 1)::timestamp AT TIME ZONE timezone \
                                FROM stores WHERE id = $1) \
         GROUP BY COALESCE(m.count_id, m.movement_id), m.count_id \
         ORDER BY min(m.occurred_at) DESC, m.count_id",
    )
    .bind(store)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let report = CountsReport {
        store_id: store,
        from,
        to,
        rows,
    };
    etag::respond(&headers, &report, None)
}
