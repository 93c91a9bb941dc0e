//! The demo catalog `make up` creates through ingest's API (as the admin): three stores,
//! a supplier, twenty everyday products with reorder points, and one user per role.
//! Running it again changes nothing: what exists is left as it is.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::Api;

/// The demo users' password: development only, printed by `make up`, in the README.
pub const DEMO_PASSWORD: &str = "demo-password-only";

pub const STORES: [(&str, &str, &str); 3] = [
    ("DEMO-BLR-01", "Sri Lakshmi Stores, Jayanagar", "Bengaluru"),
    ("DEMO-DEL-01", "Gupta Kirana, Lajpat Nagar", "Delhi"),
    ("DEMO-MUM-01", "Patel Provisions, Andheri", "Mumbai"),
];

/// SKU, name, category, unit.
pub const PRODUCTS: [(&str, &str, &str, &str); 20] = [
    ("RICE-SONA-5KG", "Sona masoori rice 5 kg", "staples", "pc"),
    ("ATTA-5KG", "Whole wheat atta 5 kg", "staples", "pc"),
    ("TOOR-DAL-1KG", "Toor dal 1 kg", "staples", "pc"),
    ("SUGAR-1KG", "Sugar 1 kg", "staples", "pc"),
    ("SALT-1KG", "Iodised salt 1 kg", "staples", "pc"),
    ("OIL-SUNFL-1L", "Sunflower oil 1 l", "staples", "pc"),
    ("GHEE-500ML", "Cow ghee 500 ml", "dairy", "pc"),
    ("MILK-500ML", "Toned milk 500 ml", "dairy", "pc"),
    ("CURD-400G", "Curd 400 g", "dairy", "pc"),
    ("PANEER-200G", "Paneer 200 g", "dairy", "pc"),
    ("TEA-250G", "Assam tea 250 g", "beverages", "pc"),
    ("COFFEE-200G", "Filter coffee 200 g", "beverages", "pc"),
    ("BISCUIT-GLUCO", "Glucose biscuits", "snacks", "pc"),
    ("NAMKEEN-200G", "Bhujia namkeen 200 g", "snacks", "pc"),
    ("MAGGI-4PK", "Instant noodles, pack of 4", "snacks", "pc"),
    ("SOAP-BATH", "Bathing soap", "personal care", "pc"),
    ("TOOTHPASTE", "Toothpaste 150 g", "personal care", "pc"),
    ("DETERGENT-1KG", "Detergent powder 1 kg", "household", "pc"),
    ("ONION-LOOSE", "Onions (loose)", "vegetables", "g"),
    ("TOMATO-LOOSE", "Tomatoes (loose)", "vegetables", "g"),
];

/// Username, role, whether bound to the first demo store.
pub const USERS: [(&str, &str, bool); 4] = [
    ("demo-manager", "manager", true),
    ("demo-staff", "staff", true),
    ("demo-pos", "pos", true),
    ("demo-analyst", "analyst", false),
];

/// Creates what is missing; returns the demo store ids.
pub async fn seed(api: &Api) -> anyhow::Result<Vec<i64>> {
    let mut stores = Vec::new();
    for (code, name, city) in STORES {
        let body = json!({"code": code, "name": name, "city": city, "timezone": "Asia/Kolkata"});
        stores.push(
            create_or_find(
                api,
                "/v1/stores",
                &body,
                &format!("/v1/stores?q={code}"),
                "code",
                code,
            )
            .await?,
        );
    }
    let supplier = create_or_find(
        api,
        "/v1/suppliers",
        &json!({"name": "Sharma Wholesale", "city": "Bengaluru"}),
        "/v1/suppliers?q=Sharma%20Wholesale",
        "name",
        "Sharma Wholesale",
    )
    .await?;
    let mut products = Vec::new();
    for (sku, name, category, unit) in PRODUCTS {
        let body = json!({"sku": sku, "name": name, "category": category, "unit": unit});
        products.push(
            create_or_find(
                api,
                "/v1/products",
                &body,
                &format!("/v1/products?q={sku}"),
                "sku",
                sku,
            )
            .await?,
        );
    }
    for store in &stores {
        for (index, product) in products.iter().enumerate() {
            let reorder_point = if PRODUCTS[index].3 == "g" { 5_000 } else { 10 };
            let body = json!({"store_id": store, "product_id": product,
                "reorder_point": reorder_point, "reorder_quantity": reorder_point * 4});
            accept_existing(
                api.post("/v1/store-products", &body).await?,
                "/v1/store-products",
            )?;
            // The supplier's price, so that reorder suggestions turn into purchase orders.
            let cost = if PRODUCTS[index].3 == "g" {
                8
            } else {
                2_000 + 1_500 * index as i64
            };
            let body = json!({"store_id": store, "supplier_id": supplier, "product_id": product,
                "unit_cost_paise": cost, "effective_from": "2026-01-01"});
            accept_existing(
                api.post("/v1/supplier-prices", &body).await?,
                "/v1/supplier-prices",
            )?;
        }
    }
    for (username, role, bound) in USERS {
        let stores: Vec<i64> = if bound { vec![stores[0]] } else { Vec::new() };
        let body = json!({"username": username, "password": DEMO_PASSWORD, "role": role, "stores": stores});
        accept_existing(api.post("/v1/users", &body).await?, "/v1/users")?;
    }
    Ok(stores)
}

/// `201` or `409` (already there) are fine; anything else is an error.
fn accept_existing((status, body): (StatusCode, Value), path: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        status == StatusCode::CREATED || status == StatusCode::CONFLICT,
        "POST {path}: {status} {body}"
    );
    Ok(())
}

/// Creates the row, or finds the existing one whose `field` is `value`; its id.
async fn create_or_find(
    api: &Api,
    path: &str,
    body: &Value,
    search: &str,
    field: &str,
    value: &str,
) -> anyhow::Result<i64> {
    let (status, created) = api.post(path, body).await?;
    if status == StatusCode::CREATED {
        return created["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("POST {path} answered without an id: {created}"));
    }
    accept_existing((status, created), path)?;
    let found = api.get(search).await?;
    found["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item[field] == value))
        .and_then(|item| item["id"].as_i64())
        .ok_or_else(|| anyhow::anyhow!("{value} exists but {search} does not find it"))
}
