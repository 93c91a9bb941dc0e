//! Catalog writes (admin only, but a store's manager may set its product settings):
//! stores, products, suppliers, supplier prices and per-store product settings. Create, partial update, soft delete — the ledger keeps
//! referring to deleted rows, and a deleted store or product can no longer receive
//! movements. Every change writes its `audit_log` row in the same transaction.
//!
//! Each table is a [`Record`]; [`insert`], [`update`] and [`soft_delete`] do the
//! transactional part (lock, change, map unique violations to 409, audit) once for all.

pub mod products;
pub mod store_products;
pub mod stores;
pub mod supplier_prices;
pub mod suppliers;

use std::fmt::Display;

use axum::extract::FromRef;
use serde::{Deserialize, Deserializer, Serialize};
use service_kit::auth::{Auth, Principal};
use service_kit::problem::{ApiError, FieldError};

pub use crate::checks::Checks;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder, Transaction};

#[derive(Clone, Debug)]
pub struct CatalogState {
    pub pool: PgPool,
    pub auth: Auth,
}

impl FromRef<CatalogState> for Auth {
    fn from_ref(state: &CatalogState) -> Self {
        state.auth.clone()
    }
}

/// A unique constraint and the conflict it means to a client.
#[derive(Debug)]
pub struct Unique {
    pub constraint: &'static str,
    pub code: &'static str,
    pub field: &'static str,
}

/// A catalog table as the API sees it.
pub trait Record: for<'r> FromRow<'r, PgRow> + Serialize + Send + Unpin {
    const TABLE: &'static str;
    /// The columns the API returns, in `Self`'s field order.
    const COLUMNS: &'static str;
    /// The name used in audit rows and 404s.
    const ENTITY: &'static str;
    const UNIQUE: &'static [Unique] = &[];
    type Key: Display + Copy + Send + Sync + 'static;

    fn key(&self) -> Self::Key;
    /// Appends the SQL condition that selects the row with `key`.
    fn push_key(query: &mut QueryBuilder<'static, Postgres>, key: Self::Key);
}

/// The condition of a table keyed by `id`.
fn push_id(query: &mut QueryBuilder<'static, Postgres>, id: i64) {
    query.push("id = ").push_bind(id);
}

fn conflict<T: Record>(error: sqlx::Error) -> ApiError {
    let constraint = error
        .as_database_error()
        .and_then(|database| database.constraint());
    match T::UNIQUE
        .iter()
        .find(|unique| Some(unique.constraint) == constraint)
    {
        Some(unique) => ApiError::Conflict {
            code: unique.code,
            detail: format!("another {} has this {}", T::ENTITY, unique.field),
            field: Some(unique.field),
        },
        None => ApiError::from(error),
    }
}

/// Runs `insert` (an `INSERT …` without `RETURNING`) in `transaction` and audits it.
pub async fn insert<T: Record>(
    transaction: &mut Transaction<'_, Postgres>,
    principal: &Principal,
    mut insert: QueryBuilder<'static, Postgres>,
) -> Result<T, ApiError> {
    insert.push(" RETURNING ").push(T::COLUMNS);
    let row: T = insert
        .build_query_as()
        .fetch_one(&mut **transaction)
        .await
        .map_err(conflict::<T>)?;
    let key = row.key();
    crate::audit::record(
        transaction,
        &principal.subject,
        "create",
        T::ENTITY,
        key,
        None,
        Some(&row),
    )
    .await?;
    Ok(row)
}

/// The `SET` list of an `UPDATE`, built by a record's merge step.
pub struct Assignments(QueryBuilder<'static, Postgres>);

impl std::fmt::Debug for Assignments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Assignments").field(&self.0.sql()).finish()
    }
}

impl Assignments {
    pub fn set<V>(&mut self, column: &'static str, value: V) -> &mut Self
    where
        V: 'static + sqlx::Encode<'static, Postgres> + sqlx::Type<Postgres> + Send,
    {
        self.0.push(", ").push(column).push(" = ").push_bind(value);
        self
    }
}

/// Locks the live row `key`, lets `merge` validate the change against it and name the
/// new values, writes them, and audits before and after — all in one transaction.
pub async fn update<T: Record>(
    pool: &PgPool,
    principal: &Principal,
    key: T::Key,
    merge: impl AsyncFnOnce(&T, &mut Assignments) -> Result<(), ApiError>,
) -> Result<T, ApiError> {
    let mut transaction = pool.begin().await?;
    let mut select = QueryBuilder::new(format!("SELECT {} FROM {} WHERE ", T::COLUMNS, T::TABLE));
    T::push_key(&mut select, key);
    select.push(" AND deleted_at IS NULL FOR UPDATE");
    let before: T = select
        .build_query_as()
        .fetch_optional(&mut *transaction)
        .await?
        .ok_or_else(|| ApiError::not_found(T::ENTITY, key))?;

    let mut assignments = Assignments(QueryBuilder::new(format!(
        "UPDATE {} SET updated_at = now()",
        T::TABLE
    )));
    merge(&before, &mut assignments).await?;
    let mut update = assignments.0;
    update.push(" WHERE ");
    T::push_key(&mut update, key);
    update.push(" RETURNING ").push(T::COLUMNS);
    let after: T = update
        .build_query_as()
        .fetch_one(&mut *transaction)
        .await
        .map_err(conflict::<T>)?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "update",
        T::ENTITY,
        key,
        Some(&before),
        Some(&after),
    )
    .await?;
    transaction.commit().await?;
    Ok(after)
}

/// Marks the live row `key` deleted; history keeps referring to it.
pub async fn soft_delete<T: Record>(
    pool: &PgPool,
    principal: &Principal,
    key: T::Key,
) -> Result<(), ApiError> {
    let mut transaction = pool.begin().await?;
    let mut delete = QueryBuilder::new(format!(
        "UPDATE {} SET deleted_at = now(), updated_at = now() WHERE ",
        T::TABLE
    ));
    T::push_key(&mut delete, key);
    delete
        .push(" AND deleted_at IS NULL RETURNING ")
        .push(T::COLUMNS);
    let deleted: T = delete
        .build_query_as()
        .fetch_optional(&mut *transaction)
        .await?
        .ok_or_else(|| ApiError::not_found(T::ENTITY, key))?;
    crate::audit::record(
        &mut transaction,
        &principal.subject,
        "delete",
        T::ENTITY,
        key,
        None,
        Some(&deleted),
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

/// A row another row refers to, which must exist and not be deleted.
#[derive(Debug)]
pub struct Reference {
    pub field: &'static str,
    pub table: &'static str,
    pub id: i64,
}

/// Checks that every reference is live, and keeps it so until `transaction` ends (a
/// concurrent delete waits). Unknown ones → 422 naming each field.
pub async fn require_live(
    transaction: &mut Transaction<'_, Postgres>,
    references: &[Reference],
) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for reference in references {
        let live: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM {} WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
            reference.table
        ))
        .bind(reference.id)
        .fetch_optional(&mut **transaction)
        .await?;
        if live.is_none() {
            problems.push(FieldError::new(
                reference.field,
                "unknown",
                format!(
                    "no such {}: {}",
                    reference.table.trim_end_matches('s'),
                    reference.id
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(problems))
    }
}

/// For optional fields of a partial update: absent → `None` (unchanged), `null` →
/// `Some(None)` (cleared), a value → `Some(Some(value))`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The value after a partial update of an optional field.
pub fn merged<T: Clone>(change: Option<Option<T>>, before: &Option<T>) -> Option<T> {
    change.unwrap_or_else(|| before.clone())
}

/// Trims optional text; blank becomes absent.
pub fn trimmed(value: Option<String>) -> Option<String> {
    value
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}
