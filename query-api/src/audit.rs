//! The audit log (admin only): who changed what in master data and users, with the row
//! before and after, newest first.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::problem::responses::InvalidParameter;
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::ReadState;
use crate::pagination::{Order, Page, PageParams, page_by_id};

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    /// The token's subject that made the change.
    pub actor: String,
    /// `create`, `update`, `delete`, …
    pub action: String,
    /// `store`, `product`, `supplier`, `supplier_price`, `store_product`, `user`.
    pub entity_type: String,
    pub entity_id: String,
    /// The row before the change (absent for a create).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The row after the change.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub entity_type: Option<String>,
    /// With `entity_type`: one entity's history.
    pub entity_id: Option<String>,
    /// From this instant on (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Before this instant, exclusive.
    pub to: Option<DateTime<Utc>>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of audit entries, newest first", body = Page<AuditEntry>),
        InvalidParameter,
        (status = 403, description = "Only admins read the audit log", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_audit(
    State(state): State<ReadState>,
    principal: Principal,
    Query(filter): Query<AuditFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    principal.require(Permission::AuditRead)?;
    let mut query: QueryBuilder<'static, Postgres> = QueryBuilder::new(
        "SELECT id, occurred_at, actor, action, entity_type, entity_id, before, after FROM audit_log WHERE true",
    );
    if let Some(actor) = filter.actor {
        query.push(" AND actor = ").push_bind(actor);
    }
    if let Some(entity_type) = filter.entity_type {
        query.push(" AND entity_type = ").push_bind(entity_type);
    }
    if let Some(entity_id) = filter.entity_id {
        query.push(" AND entity_id = ").push_bind(entity_id);
    }
    if let Some(from) = filter.from {
        query.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND occurred_at < ").push_bind(to);
    }
    Ok(Json(
        page_by_id(
            state.standby.pool_for(None).await,
            query,
            &page,
            Order::Descending,
            |entry: &AuditEntry| entry.id,
        )
        .await?,
    ))
}
