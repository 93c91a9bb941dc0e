//! `POST /v1/purchase-orders/from-suggestions`: the reorder suggestions of one store and
//! supplier (see [`schemas::purchase_orders::SUGGESTIONS_SQL`]; query-api shows the same
//! list) turned into a draft in one call.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use schemas::StoreId;
use schemas::purchase_orders::{
    DEFAULT_COVER_DAYS, DEFAULT_WINDOW_DAYS, MAX_COVER_DAYS, MAX_WINDOW_DAYS, PurchaseOrder,
    SUGGESTIONS_SQL, Suggestion,
};
use serde::Deserialize;
use service_kit::auth::{Permission, Principal};
use service_kit::problem::responses::InvalidField;
use service_kit::problem::{ApiError, FieldError, Problem};
use utoipa::ToSchema;

use super::{MAX_LINES, OrdersState, finish, insert_draft, require_store_and_supplier};
use crate::catalog::Checks;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromSuggestions {
    pub store_id: i64,
    pub supplier_id: i64,
    /// Days of sales that give a product's velocity (1 to 365, default 28).
    pub window_days: Option<i32>,
    /// Days of sales an order without a reorder quantity should cover (1 to 180, default 14).
    pub cover_days: Option<i32>,
    pub note: Option<String>,
}

/// Draft an order of everything the supplier should deliver to the store now (admins;
/// managers for their stores): each product at or below its reorder point counting what is
/// on order, in the suggested quantity, at the supplier's current price.
#[utoipa::path(post, path = "/v1/purchase-orders/from-suggestions", tag = "purchase-orders", request_body = FromSuggestions, security(("bearer" = [])),
    responses(
        (status = 201, description = "The draft", body = PurchaseOrder),
        InvalidField,
        (status = 403, description = "The role may not write orders, or another store's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The store or supplier does not exist, or nothing needs reordering from this supplier (`nothing_to_reorder`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn from_suggestions(
    State(state): State<OrdersState>,
    principal: Principal,
    body: Result<Json<FromSuggestions>, JsonRejection>,
) -> Result<(StatusCode, Json<PurchaseOrder>), ApiError> {
    principal.require(Permission::PurchaseOrderWrite)?;
    let request = body?.0;
    let note = crate::catalog::trimmed(request.note);
    let mut checks = Checks::default();
    checks
        .range(
            "window_days",
            request.window_days.map(i64::from),
            1..=i64::from(MAX_WINDOW_DAYS),
            " days",
        )
        .range(
            "cover_days",
            request.cover_days.map(i64::from),
            1..=i64::from(MAX_COVER_DAYS),
            " days",
        )
        .optional_text("note", note.as_deref(), super::MAX_NOTE);
    checks.done()?;
    principal.require_store(StoreId(request.store_id))?;
    let window = request.window_days.unwrap_or(DEFAULT_WINDOW_DAYS);
    let cover = request.cover_days.unwrap_or(DEFAULT_COVER_DAYS);

    let mut transaction = state.pool.begin().await?;
    require_store_and_supplier(&mut transaction, request.store_id, request.supplier_id).await?;
    let suggestions: Vec<Suggestion> = sqlx::query_as(SUGGESTIONS_SQL)
        .bind(request.store_id)
        .bind(request.supplier_id)
        .bind(window)
        .fetch_all(&mut *transaction)
        .await?;
    let lines: Vec<(i64, i64, i64)> = suggestions
        .into_iter()
        .take(MAX_LINES)
        .map(|suggestion| suggestion.decide(window, cover))
        .map(|line| {
            (
                line.product_id,
                line.suggested_quantity,
                line.unit_cost_paise,
            )
        })
        .collect();
    if lines.is_empty() {
        return Err(ApiError::Unprocessable(vec![FieldError::new(
            "supplier_id",
            "nothing_to_reorder",
            "no product this supplier prices for the store is at or below its reorder point (counting what is on order)",
        )]));
    }
    let id = insert_draft(
        &mut transaction,
        &principal,
        request.store_id,
        request.supplier_id,
        note,
        &lines,
    )
    .await?;
    let order = finish(transaction, &principal, "create", id, None).await?;
    Ok((StatusCode::CREATED, Json(order)))
}
