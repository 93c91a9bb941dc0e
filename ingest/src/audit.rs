//! The audit log: who changed what in master data and users, written in the same
//! transaction as the change.

use serde::Serialize;
use serde_json::json;
use service_kit::problem::ApiError;
use sqlx::{Postgres, Transaction};

pub async fn record<T: Serialize>(
    transaction: &mut Transaction<'_, Postgres>,
    actor: &str,
    action: &str,
    entity_type: &str,
    entity_id: impl std::fmt::Display,
    before: Option<&T>,
    after: Option<&T>,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, entity_type, entity_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(actor)
    .bind(action)
    .bind(entity_type)
    .bind(entity_id.to_string())
    .bind(before.map(|value| json!(value)))
    .bind(after.map(|value| json!(value)))
    .execute(&mut **transaction)
    .await
    .map_err(|error| ApiError::Internal(error.into()))?;
    Ok(())
}
