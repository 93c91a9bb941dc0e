//! The Postgres schema (`sql/migrations`), embedded in every service.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// All migrations, applied in order. `sqlx` holds a Postgres advisory lock while it
/// migrates, so services starting together apply each migration exactly once.
pub static MIGRATOR: Migrator = sqlx::migrate!("./sql/migrations");

/// Months of ledger partitions kept ahead of the current one.
const LEDGER_MONTHS_AHEAD: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] MigrateError),
    #[error("creating ledger partitions failed: {0}")]
    Partitions(#[from] sqlx::Error),
}

/// Brings the database to the current schema and makes sure the monthly partitions of
/// the ledger exist for this month and the next few. Safe to run concurrently.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrationError> {
    MIGRATOR.run(pool).await?;
    ensure_ledger_partitions(pool).await?;
    Ok(())
}

/// This month's ledger partition and the next few; a month whose rows went to the default
/// partition gets its own, and the rows move into it.
pub async fn ensure_ledger_partitions(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("SELECT bazaar_ensure_movement_partitions(now(), $1)")
        .bind(LEDGER_MONTHS_AHEAD)
        .execute(pool)
        .await
        .map(drop)
}
