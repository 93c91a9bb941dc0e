//! Catalog and user reads: filters, keyset pages that return every row once while rows
//! are added, store scoping (filtered lists, 403 for another store's row), the role
//! matrix, and parameter errors that name the parameter.

use std::time::Duration;

use reqwest::StatusCode;
use schemas::StoreId;
use serde_json::Value;
use service_kit::auth::{Role, TokenKeys};
use test_kit::TestStack;

struct Running {
    base: String,
    client: reqwest::Client,
    keys: std::sync::Arc<TokenKeys>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(stack: &TestStack) -> Running {
    let settings = stack.query_api_settings();
    let keys = TokenKeys::from_settings(&settings.api.auth).unwrap();
    let app = query_api::App::build(settings).await.unwrap();
    let port = app.port();
    let stop = test_kit::background(|stopped| app.run_until_stopped(stopped));
    Running {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        keys,
        _stop: stop,
    }
}

impl Running {
    fn token(&self, role: Role, stores: &[i64]) -> String {
        let stores: Vec<StoreId> = stores.iter().copied().map(StoreId).collect();
        self.keys.issue("tester", role, &stores).unwrap().0
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every page of `path` (which has a `?`), following cursors.
    async fn all_pages(&self, path: &str, token: &str, between: impl AsyncFn()) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                Some(cursor) => format!("{path}&cursor={cursor}"),
                None => path.to_owned(),
            };
            let (status, body) = self.get(&page, Some(token)).await;
            assert_eq!(status, 200, "{page}: {body}");
            rows.extend(body["items"].as_array().unwrap().iter().cloned());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return rows,
            }
            between().await;
        }
    }
}

async fn add_store(stack: &TestStack, code: &str, city: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO stores (code, name, city) VALUES ($1, $1 || ' store', $2) RETURNING id",
    )
    .bind(code)
    .bind(city)
    .fetch_one(&stack.pool)
    .await
    .unwrap()
}

async fn add_product(stack: &TestStack, sku: &str, name: &str, category: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO products (sku, name, category, unit) VALUES ($1, $2, $3, 'pc') RETURNING id",
    )
    .bind(sku)
    .bind(name)
    .bind(category)
    .fetch_one(&stack.pool)
    .await
    .unwrap()
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|row| row["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn pages_return_every_row_once_in_order_while_rows_are_added() {
    let stack = TestStack::start().await;
    let app = start(&stack).await;
    let admin = app.token(Role::Admin, &[]);
    let mut expected = Vec::new();
    for index in 0..7 {
        expected.push(add_store(&stack, &format!("PG-{index}"), "Pune").await);
    }
    let added = std::sync::Mutex::new(Vec::new());
    let rows = app
        .all_pages("/v1/stores?limit=3", &admin, async || {
            let count = added.lock().unwrap().len();
            let id = add_store(&stack, &format!("PG-NEW-{count}"), "Pune").await;
            added.lock().unwrap().push(id);
        })
        .await;
    let seen = ids(&rows);
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seen, sorted, "in id order, no repeats");
    for id in expected {
        assert!(seen.contains(&id), "store {id} was skipped");
    }
    assert!(seen.len() >= 7);

    let (status, problem) = app.get("/v1/stores?limit=ten", Some(&admin)).await;
    assert_eq!(
        (status.as_u16(), problem["errors"][0]["field"].as_str()),
        (400, Some("limit"))
    );
    let (status, problem) = app.get("/v1/stores?cursor=%21%21", Some(&admin)).await;
    assert_eq!(
        (status.as_u16(), problem["errors"][0]["field"].as_str()),
        (400, Some("cursor"))
    );
    let (status, page) = app.get("/v1/stores?limit=100000", Some(&admin)).await;
    assert_eq!(status, 200, "a large limit is capped, not refused: {page}");
    stack.cleanup().await;
}

#[tokio::test]
async fn products_filter_by_category_and_text_and_are_found_by_sku_even_when_deleted() {
    let stack = TestStack::start().await;
    let app = start(&stack).await;
    let staff = app.token(Role::Staff, &[1]);
    let atta = add_product(&stack, "ATTA-5KG", "Aashirvaad Atta", "staples").await;
    let dal = add_product(&stack, "DAL-1KG", "Toor Dal", "staples").await;
    let soap = add_product(
        &stack,
        "SOAP-100G",
        "Neem soap 100% natural",
        "personal care",
    )
    .await;
    sqlx::query("UPDATE products SET deleted_at = now() WHERE id = $1")
        .bind(dal)
        .execute(&stack.pool)
        .await
        .unwrap();

    let (_, page) = app.get("/v1/products?category=staples", Some(&staff)).await;
    assert_eq!(
        ids(page["items"].as_array().unwrap()),
        [atta],
        "deleted ones are hidden"
    );
    let (_, page) = app
        .get(
            "/v1/products?category=staples&include_deleted=true",
            Some(&staff),
        )
        .await;
    assert_eq!(ids(page["items"].as_array().unwrap()), [atta, dal]);
    let (_, page) = app.get("/v1/products?q=atta", Some(&staff)).await;
    assert_eq!(
        ids(page["items"].as_array().unwrap()),
        [atta],
        "case-insensitive, in name or SKU"
    );
    let (_, page) = app.get("/v1/products?q=100%25", Some(&staff)).await;
    assert_eq!(
        ids(page["items"].as_array().unwrap()),
        [soap],
        "'%' is matched literally"
    );
    let (_, page) = app.get("/v1/products?q=0%25", Some(&staff)).await;
    assert_eq!(ids(page["items"].as_array().unwrap()), [soap]);

    let (status, product) = app.get("/v1/products/by-sku/DAL-1KG", Some(&staff)).await;
    assert_eq!(status, 200);
    assert_eq!(product["id"], dal);
    assert!(
        product["deleted_at"].is_string(),
        "history needs deleted products: {product}"
    );
    let (status, problem) = app.get("/v1/products/by-sku/NOPE", Some(&staff)).await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = app.get(&format!("/v1/products/{soap}"), Some(&staff)).await;
    assert_eq!(status, 200);
    stack.cleanup().await;
}

#[tokio::test]
async fn a_store_token_sees_only_its_stores_and_is_refused_the_others() {
    let stack = TestStack::start().await;
    let app = start(&stack).await;
    let mine = add_store(&stack, "MINE-01", "Mumbai").await;
    let theirs = add_store(&stack, "THEIRS-01", "Mumbai").await;
    let product = add_product(&stack, "TEA-250G", "Tea", "beverages").await;
    let supplier: i64 =
        sqlx::query_scalar("INSERT INTO suppliers (name) VALUES ('Metro') RETURNING id")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    let mut prices = Vec::new();
    for store in [mine, theirs] {
        let price: i64 = sqlx::query_scalar(
            "INSERT INTO supplier_prices (store_id, supplier_id, product_id, unit_cost_paise, effective_from)
             VALUES ($1, $2, $3, 100, current_date) RETURNING id",
        )
        .bind(store)
        .bind(supplier)
        .bind(product)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        prices.push(price);
        sqlx::query(
            "INSERT INTO store_products (store_id, product_id, reorder_point) VALUES ($1, $2, 5)",
        )
        .bind(store)
        .bind(product)
        .execute(&stack.pool)
        .await
        .unwrap();
    }

    let manager = app.token(Role::Manager, &[mine]);
    let (_, page) = app.get("/v1/stores?city=Mumbai", Some(&manager)).await;
    assert_eq!(ids(page["items"].as_array().unwrap()), [mine]);
    let (status, problem) = app
        .get(&format!("/v1/stores/{theirs}"), Some(&manager))
        .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (403, Some("store_forbidden"))
    );
    let (_, page) = app
        .get("/v1/supplier-prices?limit=10", Some(&manager))
        .await;
    assert_eq!(ids(page["items"].as_array().unwrap()), [prices[0]]);
    let (status, _) = app
        .get(
            &format!("/v1/supplier-prices?store_id={theirs}"),
            Some(&manager),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .get(
            &format!("/v1/supplier-prices/{}", prices[1]),
            Some(&manager),
        )
        .await;
    assert_eq!(status, 403);
    let (_, page) = app.get("/v1/store-products?limit=1", Some(&manager)).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(
        (items.len(), items[0]["store_id"].as_i64()),
        (1, Some(mine))
    );
    assert_eq!(page["next_cursor"], Value::Null);
    let (status, _) = app
        .get(
            &format!("/v1/store-products?store_id={theirs}"),
            Some(&manager),
        )
        .await;
    assert_eq!(status, 403);

    let analyst = app.token(Role::Analyst, &[]);
    let rows = app
        .all_pages("/v1/store-products?limit=1", &analyst, async || {})
        .await;
    assert_eq!(rows.len(), 2, "an all-store token sees every store");
    stack.cleanup().await;
}

#[tokio::test]
async fn every_role_reads_the_catalog_but_only_admins_read_users() {
    let stack = TestStack::start().await;
    let app = start(&stack).await;
    let store = add_store(&stack, "ROLE-01", "Pune").await;
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (username, password_hash, role, store_ids) VALUES ('pos.till1', 'x', 'pos', $1) RETURNING id",
    )
    .bind(vec![store])
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    let catalog = [
        "/v1/stores",
        "/v1/products",
        "/v1/suppliers",
        "/v1/supplier-prices",
        "/v1/store-products",
    ];
    let one_store = [store];
    for role in Role::ALL {
        let token = app.token(
            role,
            if role.may_span_all_stores() {
                &[]
            } else {
                &one_store
            },
        );
        for path in catalog {
            let (status, body) = app.get(path, Some(&token)).await;
            assert_eq!(status, 200, "{role:?} {path}: {body}");
        }
        let (status, body) = app.get("/v1/users", Some(&token)).await;
        let expected = if role == Role::Admin { 200 } else { 403 };
        assert_eq!(status, expected, "{role:?} /v1/users: {body}");
        let (status, _) = app.get(&format!("/v1/users/{user}"), Some(&token)).await;
        assert_eq!(status, expected, "{role:?} /v1/users/{user}");
    }
    let admin = app.token(Role::Admin, &[]);
    let (_, user) = app.get(&format!("/v1/users/{user}"), Some(&admin)).await;
    assert_eq!(user["username"], "pos.till1");
    assert!(user.get("password_hash").is_none(), "{user}");
    let (_, page) = app
        .get(
            &format!("/v1/users?role=pos&store_id={store}"),
            Some(&admin),
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    for path in catalog.iter().chain(&["/v1/users"]) {
        let (status, _) = app.get(path, None).await;
        assert_eq!(status, 401, "{path}");
    }
    stack.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_validates_and_describes_the_read_routes() {
    let stack = TestStack::start().await;
    let app = start(&stack).await;
    let text = test_kit::get_text(&app.client, &format!("{}/openapi.json", app.base)).await;
    test_kit::assert_valid_openapi(&text);
    let document: Value = serde_json::from_str(&text).unwrap();
    for path in [
        "/v1/stores",
        "/v1/stores/{id}",
        "/v1/products",
        "/v1/products/{id}",
        "/v1/products/by-sku/{sku}",
        "/v1/suppliers",
        "/v1/suppliers/{id}",
        "/v1/supplier-prices",
        "/v1/supplier-prices/{id}",
        "/v1/store-products",
        "/v1/users",
        "/v1/users/{id}",
        "/v1/me",
        "/v1/reports/network/products",
        "/v1/reports/network/categories",
        "/v1/purchase-orders",
        "/v1/purchase-orders/{id}",
        "/v1/reports/open-purchase-orders",
        "/v1/stores/{id}/reorder-suggestions",
    ] {
        assert!(
            document["paths"][path]["get"].is_object(),
            "{path} is not described"
        );
    }
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    stack.cleanup().await;
}
