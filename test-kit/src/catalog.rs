//! The catalog the pipeline tests share: two stores (one refusing negative stock), five
//! products, a supplier.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::PgPool;

/// Store 1: Asia/Kolkata (+05:30), rejects negative stock. Store 2: UTC, allows it.
pub const STORES: [(i64, &str, i32, &str); 2] = [
    (1, "Asia/Kolkata", 19_800, "reject"),
    (2, "UTC", 0, "allow"),
];
pub const PRODUCTS: i64 = 5;
pub const SUPPLIER: i64 = 1;
/// Every product's reorder point in store 1 (store 2 has none).
pub const REORDER_POINT: i64 = 10;

pub async fn seed_catalog(pool: &PgPool) {
    for (id, timezone, _, policy) in STORES {
        sqlx::query(
            "INSERT INTO stores (id, code, name, timezone, negative_stock_policy) VALUES ($1, $2, $2, $3, $4)",
        )
        .bind(id)
        .bind(format!("S-{id}"))
        .bind(timezone)
        .bind(policy)
        .execute(pool)
        .await
        .unwrap();
    }
    for id in 1..=PRODUCTS {
        sqlx::query("INSERT INTO products (id, sku, name, unit) VALUES ($1, $2, $2, 'pc')")
            .bind(id)
            .bind(format!("SKU-{id}"))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO store_products (store_id, product_id, reorder_point) VALUES (1, $1, $2)",
        )
        .bind(id)
        .bind(REORDER_POINT)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO suppliers (id, name) VALUES ($1, 'Supplier')")
        .bind(SUPPLIER)
        .execute(pool)
        .await
        .unwrap();
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).unwrap()
}
