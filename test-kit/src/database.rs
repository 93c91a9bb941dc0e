//! The test databases: a database URL repointed at another database, a new test database
//! copied from the migrated template, and the standby caught up.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::stack::{stack_missing, template_name};

/// The admin URL pointed at another database.
pub(crate) fn with_database(admin_url: &SecretString, database: &str) -> String {
    let url = admin_url.expose_secret();
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let base = base.rsplit_once('/').map_or(base, |(head, _)| head);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// Waits (bounded) until the standby at `url` lets a client into its database.
pub(crate) async fn await_replica(url: &str) {
    let started = std::time::Instant::now();
    loop {
        match PgConnection::connect(url).await {
            Ok(connection) => {
                let _ = connection.close().await;
                return;
            }
            Err(error) if started.elapsed() > Duration::from_secs(30) => {
                panic!("the standby has not replayed the test's database in 30 s: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Creates `name` as a copy of the migrated template, building the template first if this
/// schema version has none. Test processes run in parallel, so both steps hold an
/// advisory lock.
pub(crate) async fn create_database(admin_url: &SecretString, name: &str) {
    let mut admin = PgConnection::connect(admin_url.expose_secret())
        .await
        .unwrap_or_else(|error| stack_missing("PostgreSQL", error));
    let template = template_name();
    sqlx::query("SELECT pg_advisory_lock(7212026)")
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("locking the test template: {error}"));

    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("looking for the test template: {error}"));
    if !exists {
        let building = format!("{template}_building");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("dropping a half-built template: {error}"));
        sqlx::query(&format!("CREATE DATABASE \"{building}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("creating the test template: {error}"));
        {
            let options: PgConnectOptions = with_database(admin_url, &building)
                .parse()
                .unwrap_or_else(|error| panic!("template URL: {error}"));
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap_or_else(|error| panic!("connecting to the test template: {error}"));
            schemas::migrations::migrate(&pool)
                .await
                .unwrap_or_else(|error| panic!("migrating the test template: {error}"));
            pool.close().await;
        }
        sqlx::query(&format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        ))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("publishing the test template: {error}"));
    }
    let created = sqlx::query(&format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    ))
    .execute(&mut admin)
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(7212026)")
        .execute(&mut admin)
        .await;
    created.unwrap_or_else(|error| panic!("creating the test database: {error}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_repointed_at_another_database() {
        let url = SecretString::from("postgres://u:p@127.0.0.1:15432/bazaar?sslmode=disable");
        assert_eq!(
            with_database(&url, "t1"),
            "postgres://u:p@127.0.0.1:15432/t1?sslmode=disable"
        );
        let url = SecretString::from("postgres://u:p@127.0.0.1:15432/bazaar");
        assert_eq!(
            with_database(&url, "t1"),
            "postgres://u:p@127.0.0.1:15432/t1"
        );
    }
}
