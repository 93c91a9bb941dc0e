//! The catalog as the read side needs it beside every balance — a product's SKU, name,
//! category and unit, a store's scope, and per-store reorder points — held in memory so a
//! balance read from Redis needs no Postgres round trip to be shown. Postgres stays the
//! source: the view loads everything at start, then every `CATALOG_REFRESH_MS` reads
//! the rows changed since it last looked (soft deletes are changes too). A store or product
//! the view does not know is looked up again before a read is answered `404`
//! ([`CatalogView::holds`]): one created a moment ago is found.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone)]
pub struct ProductMeta {
    pub sku: Arc<str>,
    pub name: Arc<str>,
    pub category: Option<Arc<str>>,
    pub unit: Arc<str>,
    pub live: bool,
}

#[derive(Debug, Clone)]
pub struct StoreMeta {
    pub live: bool,
    /// Its IANA timezone, when this build knows it (else Postgres resolves local days).
    pub timezone: Option<chrono_tz::Tz>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub products: HashMap<i64, ProductMeta>,
    pub stores: BTreeMap<i64, StoreMeta>,
    /// Store → product → live per-store settings.
    pub settings: HashMap<i64, BTreeMap<i64, Setting>>,
}

/// A product's settings in one store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setting {
    pub reorder_point: Option<i64>,
    pub selling_price_paise: Option<i64>,
}

impl Catalog {
    /// The product's settings in the store (none when it has no live settings there).
    pub fn setting(&self, store: i64, product: i64) -> Setting {
        self.settings
            .get(&store)
            .and_then(|products| products.get(&product))
            .copied()
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
pub struct CatalogView {
    catalog: RwLock<Catalog>,
    watermark: RwLock<Option<DateTime<Utc>>>,
    /// Changes whenever a refresh read changed rows: renderings made with an older
    /// generation may show an old name or reorder point.
    generation: AtomicU64,
    catch_up: service_kit::postgres::CatchUp,
}

type ProductRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    bool,
    DateTime<Utc>,
);

type SettingRow = (i64, i64, Option<i64>, Option<i64>, bool, DateTime<Utc>);

impl CatalogView {
    pub async fn load(pool: &PgPool) -> Result<Arc<Self>, sqlx::Error> {
        let view = Arc::new(Self::default());
        view.refresh(pool).await?;
        Ok(view)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The catalog as of the last refresh (hold the guard briefly).
    pub fn read(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refreshes now (shared with others asking together) so that what was committed
    /// before the call is known.
    pub async fn catch_up(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        self.catch_up.run(|| self.refresh(pool)).await
    }

    /// Whether `check` holds of the catalog, brought up to date first if it does not hold
    /// of the copy (what was committed before this call is then known).
    pub async fn holds(&self, pool: &PgPool, check: impl Fn(&Catalog) -> bool) -> bool {
        if check(&self.read()) {
            return true;
        }
        if let Err(error) = self.catch_up(pool).await {
            tracing::warn!(%error, "Looking up a store or product the catalog view lacks failed; answering from the view as it is.");
        }
        check(&self.read())
    }

    /// Reads the rows changed since the last refresh (all of them the first time).
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let since = self
            .watermark
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|watermark| watermark - service_kit::postgres::CHANGE_OVERLAP);
        let read_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
        let changed = service_kit::postgres::CHANGED_SINCE;
        let products_sql = format!(
            "SELECT id, sku, name, category, unit, deleted_at IS NULL, updated_at FROM products WHERE {changed}"
        );
        let stores_sql = format!(
            "SELECT id, deleted_at IS NULL, timezone, updated_at FROM stores WHERE {changed}"
        );
        let settings_sql = format!(
            "SELECT store_id, product_id, reorder_point, selling_price_paise, deleted_at IS NULL, updated_at FROM store_products WHERE {changed}"
        );
        let (products, stores, settings) = tokio::try_join!(
            sqlx::query_as::<_, ProductRow>(&products_sql)
                .bind(since)
                .fetch_all(pool),
            sqlx::query_as::<_, (i64, bool, String, DateTime<Utc>)>(&stores_sql)
                .bind(since)
                .fetch_all(pool),
            sqlx::query_as::<_, SettingRow>(&settings_sql)
                .bind(since)
                .fetch_all(pool),
        )?;

        {
            let mut catalog = self.catalog.write().unwrap_or_else(PoisonError::into_inner);
            for (id, sku, name, category, unit, live, _) in products {
                catalog.products.insert(
                    id,
                    ProductMeta {
                        sku: sku.into(),
                        name: name.into(),
                        category: category.map(Into::into),
                        unit: unit.into(),
                        live,
                    },
                );
            }
            for (id, live, timezone, _) in stores {
                let timezone = timezone.parse().ok();
                catalog.stores.insert(id, StoreMeta { live, timezone });
            }
            for (store, product, reorder_point, selling_price_paise, live, _) in settings {
                let products = catalog.settings.entry(store).or_default();
                if live {
                    let setting = Setting {
                        reorder_point,
                        selling_price_paise,
                    };
                    products.insert(product, setting);
                } else {
                    products.remove(&product);
                }
            }
        }
        *self
            .watermark
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(read_at);
        Ok(())
    }
}
