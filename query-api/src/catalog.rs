//! Catalog reads: stores, products, suppliers, supplier prices and per-store product
//! settings. Lists filter, page by key and hide deleted rows unless asked; a row fetched
//! by key is shown even when deleted (history refers to it). Stores, prices and store
//! settings are scoped: a token sees only its stores' rows and gets 403 for others.

use axum::Json;
use axum::extract::{FromRef, State};
use schemas::StoreId;
use schemas::catalog::{
    PRODUCT_COLUMNS, Product, STORE_COLUMNS, STORE_PRODUCT_COLUMNS, SUPPLIER_COLUMNS,
    SUPPLIER_PRICE_COLUMNS, Store, StoreProduct, Supplier, SupplierPrice,
};
use serde::Deserialize;
use service_kit::auth::{Auth, Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidParameter, NoSuchStore, Unauthenticated};
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::IntoParams;

use crate::pagination::{self, Order, Page, PageParams, contains_pattern};

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

/// Longest `q` accepted.
const MAX_SEARCH: usize = 100;

/// `SELECT columns FROM table WHERE true`, to which filters append ` AND …`.
fn select(columns: &str, table: &str) -> QueryBuilder<'static, Postgres> {
    QueryBuilder::new(format!("SELECT {columns} FROM {table} WHERE true"))
}

fn live_unless(query: &mut QueryBuilder<'static, Postgres>, include_deleted: Option<bool>) {
    if include_deleted != Some(true) {
        query.push(" AND deleted_at IS NULL");
    }
}

fn search(
    query: &mut QueryBuilder<'static, Postgres>,
    columns: &[&str],
    q: Option<&str>,
) -> Result<(), ApiError> {
    let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(());
    };
    if q.chars().count() > MAX_SEARCH {
        return Err(ApiError::validation(
            "q",
            "too_long",
            format!("at most {MAX_SEARCH} characters"),
        ));
    }
    let pattern = contains_pattern(q);
    query.push(" AND (");
    for (index, column) in columns.iter().enumerate() {
        if index > 0 {
            query.push(" OR ");
        }
        query
            .push(*column)
            .push(" ILIKE ")
            .push_bind(pattern.clone());
    }
    query.push(")");
    Ok(())
}

/// Restricts `column` to the caller's stores.
fn scoped(query: &mut QueryBuilder<'static, Postgres>, principal: &Principal, column: &str) {
    if let Some(stores) = principal.store_filter() {
        query
            .push(" AND ")
            .push(column)
            .push(" = ANY(")
            .push_bind(stores)
            .push(")");
    }
}

async fn page_by_id<T>(
    pool: &PgPool,
    query: QueryBuilder<'static, Postgres>,
    page: &PageParams,
    id: fn(&T) -> i64,
) -> Result<Page<T>, ApiError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    pagination::page_by_id(pool, query, page, Order::Ascending, id).await
}

async fn by_id<T>(
    pool: &PgPool,
    columns: &str,
    table: &str,
    entity: &'static str,
    id: i64,
) -> Result<T, ApiError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(&format!("SELECT {columns} FROM {table} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| ApiError::not_found(entity, id))
}

// ---- Stores ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StoreFilter {
    /// Exact city.
    pub city: Option<String>,
    /// Text in the code or name (case-insensitive).
    pub q: Option<String>,
    /// Include deleted stores (default false).
    pub include_deleted: Option<bool>,
}

/// Stores the token may see.
#[utoipa::path(get, path = "/v1/stores", tag = "catalog", params(StoreFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of stores, in id order", body = Page<Store>),
        InvalidParameter,
        Unauthenticated,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_stores(
    State(state): State<CatalogState>,
    principal: Principal,
    Query(filter): Query<StoreFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Store>>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    let mut query = select(STORE_COLUMNS, "stores");
    live_unless(&mut query, filter.include_deleted);
    scoped(&mut query, &principal, "id");
    if let Some(city) = filter.city {
        query.push(" AND city = ").push_bind(city);
    }
    search(&mut query, &["code", "name"], filter.q.as_deref())?;
    Ok(Json(
        page_by_id(&state.pool, query, &page, |store: &Store| store.id).await?,
    ))
}

/// One store (deleted ones too).
#[utoipa::path(get, path = "/v1/stores/{id}", tag = "catalog", params(("id" = i64, Path, description = "Store id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The store", body = Store),
        (status = 403, description = "Not one of the token's stores", body = Problem, content_type = "application/problem+json"),
        NoSuchStore,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = id))]
pub async fn get_store(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Store>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    principal.require_store(StoreId(id))?;
    Ok(Json(
        by_id(&state.pool, STORE_COLUMNS, "stores", "store", id).await?,
    ))
}

// ---- Products ----------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductFilter {
    /// Exact category.
    pub category: Option<String>,
    /// Text in the SKU, name or barcode (case-insensitive).
    pub q: Option<String>,
    /// Include deleted products (default false).
    pub include_deleted: Option<bool>,
}

/// The product catalog (network-wide).
#[utoipa::path(get, path = "/v1/products", tag = "catalog", params(ProductFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of products, in id order", body = Page<Product>),
        InvalidParameter,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_products(
    State(state): State<CatalogState>,
    principal: Principal,
    Query(filter): Query<ProductFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Product>>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    let mut query = select(PRODUCT_COLUMNS, "products");
    live_unless(&mut query, filter.include_deleted);
    if let Some(category) = filter.category {
        query.push(" AND category = ").push_bind(category);
    }
    search(&mut query, &["sku", "name", "barcode"], filter.q.as_deref())?;
    Ok(Json(
        page_by_id(&state.pool, query, &page, |product: &Product| product.id).await?,
    ))
}

/// One product (deleted ones too).
#[utoipa::path(get, path = "/v1/products/{id}", tag = "catalog", params(("id" = i64, Path, description = "Product id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, product_id = id))]
pub async fn get_product(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Product>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    Ok(Json(
        by_id(&state.pool, PRODUCT_COLUMNS, "products", "product", id).await?,
    ))
}

/// A product by its SKU.
#[utoipa::path(get, path = "/v1/products/by-sku/{sku}", tag = "catalog", params(("sku" = String, Path, description = "SKU, exactly")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No product has this SKU", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, sku = %sku))]
pub async fn get_product_by_sku(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(sku): Path<String>,
) -> Result<Json<Product>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = $1"
    ))
    .bind(&sku)
    .fetch_optional(&state.pool)
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::not_found("product", sku))
}

// ---- Suppliers ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SupplierFilter {
    /// Exact city.
    pub city: Option<String>,
    /// Text in the name or phone (case-insensitive).
    pub q: Option<String>,
    /// Include deleted suppliers (default false).
    pub include_deleted: Option<bool>,
}

/// Suppliers (network-wide).
#[utoipa::path(get, path = "/v1/suppliers", tag = "catalog", params(SupplierFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of suppliers, in id order", body = Page<Supplier>),
        InvalidParameter,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_suppliers(
    State(state): State<CatalogState>,
    principal: Principal,
    Query(filter): Query<SupplierFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Supplier>>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    let mut query = select(SUPPLIER_COLUMNS, "suppliers");
    live_unless(&mut query, filter.include_deleted);
    if let Some(city) = filter.city {
        query.push(" AND city = ").push_bind(city);
    }
    search(&mut query, &["name", "phone"], filter.q.as_deref())?;
    Ok(Json(
        page_by_id(&state.pool, query, &page, |supplier: &Supplier| supplier.id).await?,
    ))
}

/// One supplier (deleted ones too).
#[utoipa::path(get, path = "/v1/suppliers/{id}", tag = "catalog", params(("id" = i64, Path, description = "Supplier id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The supplier", body = Supplier),
        (status = 404, description = "No such supplier", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, supplier_id = id))]
pub async fn get_supplier(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Supplier>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    Ok(Json(
        by_id(&state.pool, SUPPLIER_COLUMNS, "suppliers", "supplier", id).await?,
    ))
}

// ---- Supplier prices ---------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SupplierPriceFilter {
    pub store_id: Option<i64>,
    pub supplier_id: Option<i64>,
    pub product_id: Option<i64>,
    /// Include deleted prices (default false).
    pub include_deleted: Option<bool>,
}

/// Supplier prices of the token's stores.
#[utoipa::path(get, path = "/v1/supplier-prices", tag = "catalog", params(SupplierPriceFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of prices, in id order", body = Page<SupplierPrice>),
        (status = 403, description = "`store_id` is not one of the token's stores", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_supplier_prices(
    State(state): State<CatalogState>,
    principal: Principal,
    Query(filter): Query<SupplierPriceFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<SupplierPrice>>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    let mut query = select(SUPPLIER_PRICE_COLUMNS, "supplier_prices");
    live_unless(&mut query, filter.include_deleted);
    scoped(&mut query, &principal, "store_id");
    if let Some(store) = filter.store_id {
        principal.require_store(StoreId(store))?;
        query.push(" AND store_id = ").push_bind(store);
    }
    if let Some(supplier) = filter.supplier_id {
        query.push(" AND supplier_id = ").push_bind(supplier);
    }
    if let Some(product) = filter.product_id {
        query.push(" AND product_id = ").push_bind(product);
    }
    Ok(Json(
        page_by_id(&state.pool, query, &page, |price: &SupplierPrice| price.id).await?,
    ))
}

/// One supplier price (deleted ones too).
#[utoipa::path(get, path = "/v1/supplier-prices/{id}", tag = "catalog", params(("id" = i64, Path, description = "Supplier price id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The price", body = SupplierPrice),
        (status = 403, description = "The price is of a store not in the token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such price", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, supplier_price_id = id))]
pub async fn get_supplier_price(
    State(state): State<CatalogState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<Json<SupplierPrice>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    let price: SupplierPrice = by_id(
        &state.pool,
        SUPPLIER_PRICE_COLUMNS,
        "supplier_prices",
        "supplier_price",
        id,
    )
    .await?;
    principal.require_store(StoreId(price.store_id))?;
    Ok(Json(price))
}

// ---- Store products ----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StoreProductFilter {
    pub store_id: Option<i64>,
    pub product_id: Option<i64>,
    /// Include removed settings (default false).
    pub include_deleted: Option<bool>,
}

/// Per-store product settings (reorder point and quantity) of the token's stores.
#[utoipa::path(get, path = "/v1/store-products", tag = "catalog", params(StoreProductFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of settings, in (store, product) order", body = Page<StoreProduct>),
        (status = 403, description = "`store_id` is not one of the token's stores", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_store_products(
    State(state): State<CatalogState>,
    principal: Principal,
    Query(filter): Query<StoreProductFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<StoreProduct>>, ApiError> {
    principal.require(Permission::CatalogRead)?;
    let limit = page.limit()?;
    let mut query = select(STORE_PRODUCT_COLUMNS, "store_products");
    live_unless(&mut query, filter.include_deleted);
    scoped(&mut query, &principal, "store_id");
    if let Some(store) = filter.store_id {
        principal.require_store(StoreId(store))?;
        query.push(" AND store_id = ").push_bind(store);
    }
    if let Some(product) = filter.product_id {
        query.push(" AND product_id = ").push_bind(product);
    }
    if let Some((store, product)) = page.after::<(i64, i64)>()? {
        query
            .push(" AND (store_id, product_id) > (")
            .push_bind(store)
            .push(", ")
            .push_bind(product)
            .push(")");
    }
    query
        .push(" ORDER BY store_id, product_id LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build_query_as().fetch_all(&state.pool).await?;
    Ok(Json(Page::from_rows(rows, limit, |row: &StoreProduct| {
        (row.store_id, row.product_id)
    })))
}
