//! Reports, from what the processors maintain — never by scanning the ledger:
//! stock summary and valuation from current balances (Redis or the primary, like
//! inventory), sales, supplier sourcing, shrinkage and returns from the daily rollups (the
//! replica), whose
//! days are local dates in the store's timezone. Every report carries an `ETag`.

pub mod changes;
pub mod sales;
pub mod sourcing;
pub mod stock;

use chrono::NaiveDate;
use serde::Deserialize;
use service_kit::auth::{Permission, Principal};
use service_kit::problem::{ApiError, Problem};
use sqlx::PgPool;
use utoipa::{IntoParams, IntoResponses};

use crate::ReadState;
use crate::consistency::ConsistencyParams;
use crate::inventory::require_store;
use crate::view::Catalog;

/// The longest range a report covers.
const MAX_DAYS: i64 = 366;
/// Without `from`, a report covers this many days up to `to`.
const DEFAULT_DAYS: i64 = 30;

/// Every report's refusal: a store outside the token's, or a role without reports.
#[derive(Debug, IntoResponses)]
#[response(
    status = 403,
    description = "Not one of the token's stores, or the role may not read reports",
    content_type = "application/problem+json"
)]
pub struct ReportsForbidden(pub Problem);

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

/// A product's SKU and name, when the row is a product's and the catalog knows it.
fn named(catalog: &Catalog, product: Option<i64>) -> (Option<String>, Option<String>) {
    match product.and_then(|id| catalog.products.get(&id)) {
        Some(meta) => (Some(meta.sku.to_string()), Some(meta.name.to_string())),
        None => (None, None),
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
