//! Stock as of a past time (`?as_of=T`), optionally as the system knew it then
//! (`&known_at=T2`): by event time, the balance after every applied movement that occurred
//! at or before T (and was recorded at or before T2). A count's ledger row changes the
//! balance by its variance, so the balance as of a count's time is what it counted.
//!
//! Answered from the ledger in Postgres, never by summing the whole history: the balance
//! now, less what the rows that occurred after T (or were recorded after T2) changed —
//! whole days from the processors' `stock_deltas_daily` rollup, and the ledger's own rows
//! only on T's day and T2's day (UTC). Rows read: at most the store's products × the days
//! since the earlier of T and T2, plus the store's ledger rows of those two days.

use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::problem::ApiError;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use super::{DEFAULT_ITEMS, InventoryFilter, MAX_ITEMS, ProductNamed};
use crate::ReadState;
use crate::consistency::ConsistencyParams;
use crate::etag;
use crate::pagination::{Page, PageParams};
use crate::view::ProductMeta;

/// The balances now, less the changes after the boundaries. One statement: one snapshot of
/// the balances, the rollup and the ledger, written together by each batch's commit.
const AS_OF: &str = "\
WITH days AS (
  SELECT d, r, d::timestamp AT TIME ZONE 'UTC' AS d0, (d + 1)::timestamp AT TIME ZONE 'UTC' AS d1,
    r::timestamp AT TIME ZONE 'UTC' AS r0, (r + 1)::timestamp AT TIME ZONE 'UTC' AS r1
  FROM (SELECT ($3::timestamptz AT TIME ZONE 'UTC')::date AS d,
    COALESCE(($4::timestamptz AT TIME ZONE 'UTC')::date, 'infinity') AS r) AS t
), later AS (
  SELECT x.product_id, x.delta FROM stock_deltas_daily x, days
  WHERE x.store_id = $1 AND ($2::int8 IS NULL OR x.product_id = $2)
    AND (x.occurred_day > days.d OR x.recorded_day > days.r)
  UNION ALL
  SELECT m.product_id, movement_delta(m.kind, m.quantity, m.restock, m.delta) FROM movements m, days
  WHERE m.store_id = $1 AND ($2::int8 IS NULL OR m.product_id = $2) AND m.status = 'applied'
    AND m.occurred_at >= days.d0 AND m.occurred_at < days.d1 AND m.recorded_at < days.r1
    AND (m.occurred_at > $3 OR m.recorded_at > $4)
  UNION ALL
  SELECT m.product_id, movement_delta(m.kind, m.quantity, m.restock, m.delta) FROM movements m, days
  WHERE m.store_id = $1 AND ($2::int8 IS NULL OR m.product_id = $2) AND m.status = 'applied'
    AND m.recorded_at >= days.r0 AND m.recorded_at < days.r1 AND m.occurred_at < days.d0
    AND m.recorded_at > $4
)
SELECT b.product_id, (b.quantity - COALESCE(sum(later.delta), 0))::int8
FROM balances b LEFT JOIN later ON later.product_id = b.product_id
WHERE b.store_id = $1 AND ($2::int8 IS NULL OR b.product_id = $2)
GROUP BY b.product_id, b.quantity
ORDER BY b.product_id";

/// A past time to read stock at.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOfParams {
    /// Stock as of this instant (RFC 3339, not in the future): after every applied movement
    /// that occurred at or before it. Read from the ledger (no `freshness`); products that
    /// never moved in the store are not listed.
    pub as_of: Option<DateTime<Utc>>,
    /// With `as_of`: as the system knew it at this instant (RFC 3339, not in the future) —
    /// only movements recorded at or before it count.
    pub known_at: Option<DateTime<Utc>>,
}

/// A validated `as_of` (and `known_at`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct PastTime {
    pub as_of: DateTime<Utc>,
    /// Absent: as known now.
    pub known_at: Option<DateTime<Utc>>,
}

impl AsOfParams {
    /// `None` for stock now.
    pub fn check(&self) -> Result<Option<PastTime>, ApiError> {
        let now = Utc::now();
        let past = |field: &'static str, at: DateTime<Utc>| {
            if at > now {
                Err(ApiError::validation(
                    field,
                    "in_future",
                    "must not be in the future",
                ))
            } else {
                Ok(at)
            }
        };
        match (self.as_of, self.known_at) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ApiError::validation(
                "known_at",
                "requires_as_of",
                "only with `as_of`",
            )),
            (Some(as_of), known_at) => Ok(Some(PastTime {
                as_of: past("as_of", as_of)?,
                known_at: known_at.map(|at| past("known_at", at)).transpose()?,
            })),
        }
    }
}

impl InventoryFilter {
    /// The filters by stock status speak of stock now, against today's reorder points.
    pub(super) fn check_past(&self) -> Result<(), ApiError> {
        if self.below_reorder_point.is_some()
            || self.out_of_stock.is_some()
            || self.stock_status.is_some()
        {
            return Err(ApiError::validation(
                "as_of",
                "not_with_stock_status",
                "`below_reorder_point`, `out_of_stock` and `stock_status` filter stock now; \
                 leave them out with `as_of`",
            ));
        }
        Ok(())
    }
}

/// `(product, quantity)` of each product that ever moved in `store` (or just `product`),
/// as of `when`, in product id order.
pub async fn balances(
    pool: &PgPool,
    store: i64,
    product: Option<i64>,
    when: PastTime,
) -> Result<Vec<(i64, i64)>, ApiError> {
    Ok(sqlx::query_as(AS_OF)
        .bind(store)
        .bind(product)
        .bind(when.as_of)
        .bind(when.known_at)
        .fetch_all(pool)
        .await?)
}

/// One product's stock in a store at a past time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PastItem<'a> {
    #[serde(flatten)]
    pub product: ProductNamed<'a>,
    /// The balance then (0 before the product's first movement in the store).
    pub quantity: i64,
}

impl<'a> PastItem<'a> {
    pub fn new(product_id: i64, meta: &'a ProductMeta, quantity: i64) -> Self {
        Self {
            product: ProductNamed::new(product_id, meta),
            quantity,
        }
    }
}

/// A page of a store's inventory at a past time.
#[derive(Debug, Serialize, ToSchema)]
pub struct PastInventory<'a> {
    pub store_id: i64,
    #[serde(flatten)]
    pub when: PastTime,
    pub items: Vec<PastItem<'a>>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One product's stock in one store at a past time.
#[derive(Debug, Serialize, ToSchema)]
pub struct PastStoreItem<'a> {
    pub store_id: i64,
    #[serde(flatten)]
    pub when: PastTime,
    #[serde(flatten)]
    pub item: PastItem<'a>,
}

/// `GET /v1/stores/{id}/inventory?as_of=…`: the products that ever moved in the store,
/// filtered by what they are (category, SKU, text) and paged by product id.
pub(super) async fn store_inventory(
    state: &ReadState,
    store: i64,
    when: PastTime,
    filter: &InventoryFilter,
    page: &PageParams,
    consistency: &ConsistencyParams,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let limit = page.limit_or(DEFAULT_ITEMS, MAX_ITEMS)? as usize;
    let after = page.after::<i64>()?;
    let q = filter.check()?;
    filter.check_past()?;
    let token = state.consistent(consistency).await?;
    let pool = state.standby.pool_for(token.as_ref()).await;
    let quantities = balances(pool, store, None, when).await?;
    super::knows_products(state, &quantities).await;
    let catalog = state.view.read();
    let items: Vec<PastItem<'_>> = quantities
        .into_iter()
        .filter(|(product, _)| after.is_none_or(|after| *product > after))
        .filter_map(|(product, quantity)| {
            Some(PastItem::new(
                product,
                catalog.products.get(&product)?,
                quantity,
            ))
        })
        .filter(|item| filter.keeps_product(&item.product, q.as_deref()))
        .take(limit + 1)
        .collect();
    let page = Page::from_rows(items, limit as u32, |item| item.product.product_id);
    etag::respond(
        headers,
        &PastInventory {
            store_id: store,
            when,
            items: page.items,
            next_cursor: page.next_cursor,
        },
        None,
    )
}

/// `GET /v1/stores/{id}/inventory/{product_id}?as_of=…` (0 before its first movement there).
pub(super) async fn store_product(
    state: &ReadState,
    store: i64,
    product: i64,
    when: PastTime,
    consistency: &ConsistencyParams,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let token = state.consistent(consistency).await?;
    let pool = state.standby.pool_for(token.as_ref()).await;
    let quantity = balances(pool, store, Some(product), when)
        .await?
        .first()
        .map_or(0, |(_, quantity)| *quantity);
    let catalog = state.view.read();
    let meta = catalog
        .products
        .get(&product)
        .ok_or_else(|| ApiError::not_found("product", product))?;
    etag::respond(
        headers,
        &PastStoreItem {
            store_id: store,
            when,
            item: PastItem::new(product, meta, quantity),
        },
        None,
    )
}
