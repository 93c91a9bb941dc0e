//! The catalog as ingest validates movements against it, held in memory so that the hot
//! path never waits for Postgres. Postgres stays the source: the cache loads everything at
//! start, then every `CATALOG_REFRESH_MS` reads the rows changed since it last looked
//! (soft deletes are changes too), so a deleted product is refused well within a second
//! on every ingest instance. A reference the cache does not know is looked up again
//! ([`CatalogCache::catch_up`]) before it is refused: a store or product created a moment
//! ago is usable in the very next request.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use service_kit::postgres::{CHANGE_OVERLAP, CHANGED_SINCE, CatchUp};
use sqlx::PgPool;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductEntry {
    pub sku: Arc<str>,
    pub live: bool,
}

#[derive(Debug, Default)]
pub struct CatalogCache {
    /// Store id → live.
    stores: RwLock<HashMap<i64, bool>>,
    products: RwLock<HashMap<i64, ProductEntry>>,
    /// SKU → product id, live products only.
    skus: RwLock<HashMap<Arc<str>, i64>>,
    /// Supplier id → live.
    suppliers: RwLock<HashMap<i64, bool>>,
    /// When the last refresh began, by the database's clock: the next one reads the rows
    /// changed since a little before it.
    watermark: RwLock<Option<DateTime<Utc>>>,
    catch_up: CatchUp,
}

type Changes<T> = Vec<T>;

impl CatalogCache {
    /// Loads the whole catalog.
    pub async fn load(pool: &PgPool) -> Result<Arc<Self>, sqlx::Error> {
        let cache = Arc::new(Self::default());
        cache.refresh(pool).await?;
        Ok(cache)
    }

    /// A cache holding exactly these rows (`(id, live)`; products `(id, sku, live)`), for
    /// checking movements without a database: the fuzz targets and unit tests.
    pub fn from_rows(
        stores: impl IntoIterator<Item = (i64, bool)>,
        products: impl IntoIterator<Item = (i64, &'static str, bool)>,
        suppliers: impl IntoIterator<Item = (i64, bool)>,
    ) -> Self {
        let cache = Self::default();
        write(&cache.stores).extend(stores);
        write(&cache.suppliers).extend(suppliers);
        for (id, sku, live) in products {
            let sku: Arc<str> = Arc::from(sku);
            if live {
                write(&cache.skus).insert(sku.clone(), id);
            }
            write(&cache.products).insert(id, ProductEntry { sku, live });
        }
        cache
    }

    pub fn store_is_live(&self, store: i64) -> bool {
        read(&self.stores).get(&store).copied().unwrap_or(false)
    }

    pub fn supplier_is_live(&self, supplier: i64) -> bool {
        read(&self.suppliers)
            .get(&supplier)
            .copied()
            .unwrap_or(false)
    }

    pub fn product(&self, product: i64) -> Option<ProductEntry> {
        read(&self.products).get(&product).cloned()
    }

    /// The live product with this SKU.
    pub fn product_by_sku(&self, sku: &str) -> Option<(i64, Arc<str>)> {
        let skus = read(&self.skus);
        let (sku, id) = skus.get_key_value(sku)?;
        Some((*id, sku.clone()))
    }

    /// Refreshes now (shared with misses arriving together) so that what was committed
    /// before the caller missed is known.
    pub async fn catch_up(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        self.catch_up.run(|| self.refresh(pool)).await
    }

    /// Whether every reference of a movement is known and live: a movement naming
    /// something else is worth a [`Self::catch_up`] before it is refused.
    pub fn knows(
        &self,
        store: i64,
        product: Option<i64>,
        sku: Option<&str>,
        supplier: Option<i64>,
    ) -> bool {
        self.store_is_live(store)
            && product.is_none_or(|product| self.product(product).is_some_and(|entry| entry.live))
            && (product.is_some() || sku.is_none_or(|sku| self.product_by_sku(sku).is_some()))
            && supplier.is_none_or(|supplier| self.supplier_is_live(supplier))
    }

    /// Reads the rows changed since the last refresh (all of them the first time).
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let since = read(&self.watermark).map(|watermark| watermark - CHANGE_OVERLAP);
        let read_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
        let stores: Changes<(i64, bool, DateTime<Utc>)> = sqlx::query_as(&format!(
            "SELECT id, deleted_at IS NULL, updated_at FROM stores WHERE {CHANGED_SINCE}"
        ))
        .bind(since)
        .fetch_all(pool)
        .await?;
        let products: Changes<(i64, String, bool, DateTime<Utc>)> = sqlx::query_as(&format!(
            "SELECT id, sku, deleted_at IS NULL, updated_at FROM products WHERE {CHANGED_SINCE}"
        ))
        .bind(since)
        .fetch_all(pool)
        .await?;
        let suppliers: Changes<(i64, bool, DateTime<Utc>)> = sqlx::query_as(&format!(
            "SELECT id, deleted_at IS NULL, updated_at FROM suppliers WHERE {CHANGED_SINCE}"
        ))
        .bind(since)
        .fetch_all(pool)
        .await?;

        if !stores.is_empty() {
            let mut map = write(&self.stores);
            for (id, live, _) in stores {
                map.insert(id, live);
            }
        }
        if !suppliers.is_empty() {
            let mut map = write(&self.suppliers);
            for (id, live, _) in suppliers {
                map.insert(id, live);
            }
        }
        if !products.is_empty() {
            let mut map = write(&self.products);
            let mut skus = write(&self.skus);
            for (id, sku, live, _) in products {
                let sku: Arc<str> = Arc::from(sku);
                if let Some(before) = map.get(&id)
                    && skus.get(&before.sku) == Some(&id)
                {
                    skus.remove(&before.sku);
                }
                if live {
                    skus.insert(sku.clone(), id);
                }
                map.insert(id, ProductEntry { sku, live });
            }
        }
        *write(&self.watermark) = Some(read_at);
        Ok(())
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
