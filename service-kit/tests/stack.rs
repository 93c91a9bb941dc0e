//! The local stack answers, and the schema migrates cleanly.

use std::collections::HashSet;

use service_kit::redis::Redis;
use sqlx::postgres::PgPoolOptions;
use test_kit::TestStack;

const TABLES: &[&str] = &[
    "stores",
    "products",
    "suppliers",
    "supplier_prices",
    "store_products",
    "users",
    "audit_log",
    "movement_ids",
    "movements",
    "balances",
    "sales_daily",
    "sales_daily_store",
    "supplier_daily",
    "stock_changes_daily",
    "alerts",
    "processor_offsets",
];

async fn tables(pool: &sqlx::PgPool) -> HashSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

fn this_months_partition() -> String {
    format!("movements_{}", chrono::Utc::now().format("%Y_%m"))
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_are_idempotent_under_concurrency() {
    let stack = TestStack::start().await;
    // An empty database next to the test's: the migrator builds the whole schema.
    let empty = format!("{}_empty", stack.database_name);
    sqlx::query(&format!("CREATE DATABASE \"{empty}\""))
        .execute(&stack.pool)
        .await
        .unwrap();
    let empty_url = stack.database_url(&empty);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&empty_url)
        .await
        .unwrap();
    assert!(tables(&pool).await.is_empty());

    // Four services starting at once: each runs the migrator; all succeed.
    let runs = (0..4).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { schemas::migrations::migrate(&pool).await })
    });
    for run in futures::future::join_all(runs).await {
        run.unwrap().unwrap();
    }
    let found = tables(&pool).await;
    for table in TABLES {
        assert!(found.contains(*table), "table {table} missing: {found:?}");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        applied as usize,
        schemas::migrations::MIGRATOR.iter().count()
    );

    // Once more, sequentially: nothing changes.
    schemas::migrations::migrate(&pool).await.unwrap();
    assert_eq!(tables(&pool).await, found);

    // The ledger has this month's partition and the next ones, plus the default.
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'movements'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        partitions.contains(&this_months_partition()),
        "{partitions:?}"
    );
    assert!(
        partitions.contains(&"movements_default".to_owned()),
        "{partitions:?}"
    );
    assert!(partitions.len() >= 5, "{partitions:?}");

    pool.close().await;
    sqlx::query(&format!("DROP DATABASE \"{empty}\" WITH (FORCE)"))
        .execute(&stack.pool)
        .await
        .unwrap();
    stack.cleanup().await;
}

#[tokio::test]
async fn a_movement_id_is_decided_once_and_ledger_rows_land_in_their_month() {
    let stack = TestStack::start().await;
    let id = uuid::Uuid::new_v4();
    let insert = "INSERT INTO movement_ids (movement_id, store_id, status, recorded_at) VALUES ($1, 1, 'applied', now())";
    sqlx::query(insert)
        .bind(id)
        .execute(&stack.pool)
        .await
        .unwrap();
    let error = sqlx::query(insert)
        .bind(id)
        .execute(&stack.pool)
        .await
        .unwrap_err();
    assert_eq!(
        error.as_database_error().and_then(|e| e.constraint()),
        Some("movement_ids_pkey")
    );

    sqlx::query(
        "INSERT INTO movements (movement_id, store_id, product_id, sku, kind, quantity, status,
            occurred_at, received_at, recorded_at, actor, source_partition, source_offset)
         VALUES ($1, 1, 1, 'X', 'sale', 1, 'applied', now(), now(), now(), 'test', 0, 0)",
    )
    .bind(id)
    .execute(&stack.pool)
    .await
    .unwrap();
    let partition: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM movements WHERE movement_id = $1")
            .bind(id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(partition, this_months_partition());
    stack.cleanup().await;
}

#[tokio::test]
async fn redis_answers_under_the_test_prefix() {
    let stack = TestStack::start().await;
    let redis = Redis::new(&stack.settings.redis).unwrap();
    redis.ping().await.unwrap();
    let mut connection = redis.connection().await.unwrap();
    let key = redis.key("probe");
    assert!(key.starts_with("bazaar-test:"));
    redis::cmd("SET")
        .arg(&key)
        .arg("42")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(value, "42");
    stack.cleanup().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(exists, 0, "cleanup removes the test's keys");
}

/// A month whose rows went to the default partition (the deployment outran its
/// partitions, or a record was stamped months ahead) does not stop the next start-up: the
/// month gets its partition and the rows move into it.
#[tokio::test]
async fn rows_in_the_default_partition_move_to_their_month_at_start_up() {
    let stack = TestStack::start().await;
    let ahead = chrono::Utc::now() + chrono::Duration::days(4 * 31);
    let month = format!("movements_{}", ahead.format("%Y_%m"));
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO movements (movement_id, store_id, product_id, sku, kind, quantity, status,
            occurred_at, received_at, recorded_at, actor, source_partition, source_offset)
         VALUES ($1, 1, 1, 'X', 'sale', 1, 'applied', $2, $2, $2, 'test', 0, 0)",
    )
    .bind(id)
    .bind(ahead)
    .execute(&stack.pool)
    .await
    .unwrap();
    let partition_of = || {
        sqlx::query_scalar::<_, String>(
            "SELECT tableoid::regclass::text FROM movements WHERE movement_id = $1",
        )
        .bind(id)
        .fetch_one(&stack.pool)
    };
    assert_eq!(partition_of().await.unwrap(), "movements_default");

    schemas::migrations::migrate(&stack.pool).await.unwrap();
    assert_eq!(partition_of().await.unwrap(), month);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM movements_default")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    // Again: nothing to do, nothing fails.
    schemas::migrations::migrate(&stack.pool).await.unwrap();
    stack.cleanup().await;
}
