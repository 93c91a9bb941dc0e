//! The Postgres pools: the primary for writes and current state, an optional replica for
//! reports and history.

use std::collections::BTreeMap;
use std::str::FromStr;

use futures::FutureExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::settings::DatabaseSettings;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("the database URL is not valid: {0}")]
    InvalidUrl(sqlx::Error),
    #[error("cannot connect to PostgreSQL at {address} (locally: run `make up`): {source}")]
    Unreachable {
        address: String,
        source: sqlx::Error,
    },
    #[error(transparent)]
    Migration(#[from] schemas::migrations::MigrationError),
}

fn options(url: &SecretString, application: &str) -> Result<PgConnectOptions, PostgresError> {
    PgConnectOptions::from_str(url.expose_secret())
        .map(|options| options.application_name(application))
        .map_err(PostgresError::InvalidUrl)
}

async fn pool(
    settings: &DatabaseSettings,
    url: &SecretString,
    application: &str,
) -> Result<PgPool, PostgresError> {
    let options = options(url, application)?;
    let address = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|source| PostgresError::Unreachable { address, source })
}

/// Connects to the primary and brings its schema up to date (safe when several services
/// start at once).
pub async fn connect_and_migrate(
    settings: &DatabaseSettings,
    application: &str,
) -> Result<PgPool, PostgresError> {
    let pool = pool(settings, &settings.url, application).await?;
    schemas::migrations::migrate(&pool).await?;
    Ok(pool)
}

/// A pool of the standby (`DATABASE_READ_URL`), if one is set. It connects when first
/// used: a service whose standby is down starts and reads the primary meanwhile.
pub fn standby_pool(
    settings: &DatabaseSettings,
    application: &str,
) -> Result<Option<PgPool>, PostgresError> {
    let Some(url) = &settings.read_url else {
        return Ok(None);
    };
    Ok(Some(
        PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options(url, application)?),
    ))
}

/// A readiness check: the pool can run a query.
pub fn readiness_check(
    pool: PgPool,
) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync {
    move || {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        }
        .boxed()
    }
}

/// The rows a catalog copy reads on a refresh: changed after `$1`, or all of them when `$1`
/// is NULL. One range over `updated_at` (each followed table has an index on it), so that
/// a refresh of a quiet catalog reads an index page, not the table.
pub const CHANGED_SINCE: &str = "updated_at > COALESCE($1::timestamptz, '-infinity')";

/// Each refresh reads the rows changed since this long before the previous refresh began
/// (by the database's clock): a transaction that commits after a read may carry an
/// `updated_at` from before it. Measured from the read, not from the newest row, so a
/// quiet catalog is not read again and again.
pub const CHANGE_OVERLAP: std::time::Duration = std::time::Duration::from_secs(5);

/// Least time between two refreshes that misses asked for: ids that exist nowhere cannot
/// turn every request into queries.
pub const CATCH_UP_SPACING: std::time::Duration = std::time::Duration::from_millis(20);

/// Brings an in-memory copy of Postgres rows up to date before a reader that missed in it
/// answers "no such thing": a store created a moment ago is found although the periodic
/// refresh has not run yet. Misses that arrive together share one refresh — one that began
/// after they arrived — and refreshes for misses run one at a time, at least
/// [`CATCH_UP_SPACING`] apart.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// When the last catch-up's refresh began; held while one runs.
    last: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl CatchUp {
    pub async fn run<F, Fut>(&self, refresh: F) -> Result<(), sqlx::Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
    {
        let missed = tokio::time::Instant::now();
        let mut last = self.last.lock().await;
        if let Some(began) = *last {
            if began >= missed {
                // A refresh that began after this miss has finished: the copy is current.
                return Ok(());
            }
            tokio::time::sleep_until(began + CATCH_UP_SPACING).await;
        }
        let began = tokio::time::Instant::now();
        refresh().await?;
        *last = Some(began);
        Ok(())
    }
}

/// Runs `job` every `every` until `stop`: an in-memory copy of Postgres rows following
/// their changes (a catalog cache), or upkeep (publishing what was left unpublished,
/// forgetting what expired). A failure is logged (`what` names the job) and the job runs
/// again on the next tick; a copy keeps serving what it has meanwhile.
pub async fn repeat<F, Fut, E>(
    what: &'static str,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
    mut job: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                if let Err(error) = job().await {
                    tracing::warn!(%error, what, "A periodic job on Postgres failed; it runs again on the next tick.");
                }
            }
        }
    }
}

/// A statement written with named parameters (`:name`) as PostgreSQL wants it: each name
/// becomes `$n`, its position in `names` plus one (a name used twice is one parameter).
/// A cast (`::int8`) is not a parameter. Refuses a name the statement uses that is not in
/// `names`, and one of `names` the statement never uses: binding by position then stays
/// right by construction.
pub fn number_parameters(sql: &str, names: &[&str]) -> Result<String, String> {
    let is_name = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_';
    let bytes = sql.as_bytes();
    let mut numbered = String::with_capacity(sql.len());
    let mut used = vec![false; names.len()];
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let parameter = bytes[at] == b':'
            && (at == 0 || bytes[at - 1] != b':')
            && bytes
                .get(at + 1)
                .is_some_and(|next| next.is_ascii_lowercase() || *next == b'_');
        if !parameter {
            at += 1;
            continue;
        }
        let start = at + 1;
        let mut end = start;
        while end < bytes.len() && is_name(bytes[end]) {
            end += 1;
        }
        let name = &sql[start..end];
        let index = names
            .iter()
            .position(|known| *known == name)
            .ok_or_else(|| format!("the statement uses `:{name}`, which is not a parameter"))?;
        used[index] = true;
        numbered.push_str(&sql[copied..at]);
        numbered.push('$');
        numbered.push_str(&(index + 1).to_string());
        copied = end;
        at = end;
    }
    numbered.push_str(&sql[copied..]);
    match used.iter().position(|used| !used) {
        Some(unused) => Err(format!(
            "parameter `{}` is never used by the statement",
            names[unused]
        )),
        None => Ok(numbered),
    }
}

/// The next offset per partition of `topic` that the processors' `group` committed (with
/// the ledger rows before it, in the same transactions).
pub async fn committed_offsets(
    pool: &PgPool,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM processor_offsets WHERE consumer_group = $1 AND topic = $2",
    )
    .bind(group)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod named_parameters {
    use super::number_parameters;

    #[test]
    fn names_become_positions_and_casts_stay_casts() {
        let sql =
            "SELECT * FROM UNNEST(:ids::uuid[], :store_id::int8[]) WHERE x = :store_id AND y = ':'";
        assert_eq!(
            number_parameters(sql, &["store_id", "ids"]).unwrap(),
            "SELECT * FROM UNNEST($2::uuid[], $1::int8[]) WHERE x = $1 AND y = ':'"
        );
    }

    #[test]
    fn an_unknown_name_or_an_unused_parameter_is_refused() {
        assert!(
            number_parameters("SELECT :a, :b", &["a"])
                .unwrap_err()
                .contains("`:b`")
        );
        assert!(
            number_parameters("SELECT :a", &["a", "b"])
                .unwrap_err()
                .contains("`b`")
        );
    }
}
