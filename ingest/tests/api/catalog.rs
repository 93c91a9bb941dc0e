//! Catalog writes: stores and products are created, changed in part and soft-deleted by
//! admins only; duplicates are 409 and bad fields 400, naming the field; all audited.

use crate::common::{send, token, with_admin};
use reqwest::Method;
use serde_json::json;
use test_kit::TestStack;

async fn audit_actions(stack: &TestStack, entity: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log WHERE entity_type = $1 ORDER BY id")
        .bind(entity)
        .fetch_all(&stack.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_store_is_created_changed_in_part_and_soft_deleted_with_every_step_audited() {
    let (stack, app, admin) = with_admin().await;
    let body = json!({"code": "MUM-AND-01", "name": "Andheri West", "city": "Mumbai"});
    let (status, store) = send(&app, Method::POST, "/v1/stores", Some(&admin), &body).await;
    assert_eq!(status, 201, "{store}");
    assert_eq!(store["timezone"], "Asia/Kolkata");
    assert_eq!(store["negative_stock_policy"], "reject");
    let path = format!("/v1/stores/{}", store["id"]);

    let (status, changed) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"negative_stock_policy": "allow"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["negative_stock_policy"], "allow");
    assert_eq!(
        changed["name"], "Andheri West",
        "absent fields do not change"
    );

    let (status, _) = send(&app, Method::DELETE, &path, Some(&admin), &json!(null)).await;
    assert_eq!(status, 204);
    let (status, problem) = send(&app, Method::DELETE, &path, Some(&admin), &json!(null)).await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"name": "x"}),
    )
    .await;
    assert_eq!(status, 404, "a deleted store cannot be changed");
    let deleted: bool =
        sqlx::query_scalar("SELECT deleted_at IS NOT NULL FROM stores WHERE id = $1")
            .bind(store["id"].as_i64())
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert!(deleted, "the row stays for history");
    assert_eq!(
        audit_actions(&stack, "store").await,
        ["create", "update", "delete"]
    );

    // A deleted store can no longer be given to a user.
    let user = json!({"username": "staff.gone", "password": "long-enough-pass", "role": "staff", "stores": [store["id"]]});
    let (status, problem) = send(&app, Method::POST, "/v1/users", Some(&admin), &user).await;
    assert_eq!(status, 422, "{problem}");
    stack.cleanup().await;
}

#[tokio::test]
async fn store_codes_are_unique_and_fields_are_checked() {
    let (stack, app, admin) = with_admin().await;
    let (_, first) = send(
        &app,
        Method::POST,
        "/v1/stores",
        Some(&admin),
        &json!({"code": "PUN-01", "name": "Pune"}),
    )
    .await;
    let (_, second) = send(
        &app,
        Method::POST,
        "/v1/stores",
        Some(&admin),
        &json!({"code": "PUN-02", "name": "Pune 2"}),
    )
    .await;
    let (status, problem) = send(
        &app,
        Method::POST,
        "/v1/stores",
        Some(&admin),
        &json!({"code": "PUN-01", "name": "Again"}),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "duplicate_store_code");
    assert_eq!(problem["errors"][0]["field"], "code");
    let path = format!("/v1/stores/{}", second["id"]);
    let (status, problem) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"code": first["code"]}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("duplicate_store_code"))
    );

    let bad = json!({"code": "pune 3", "name": "", "timezone": "Mars/Olympus", "negative_stock_policy": "maybe"});
    let (status, problem) = send(&app, Method::POST, "/v1/stores", Some(&admin), &bad).await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["code", "name", "negative_stock_policy", "timezone"]
    );
    let stores: i64 = sqlx::query_scalar("SELECT count(*) FROM stores")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(stores, 2, "nothing half-written");
    stack.cleanup().await;
}

#[tokio::test]
async fn products_have_unique_skus_units_and_barcodes_checked() {
    let (stack, app, admin) = with_admin().await;
    let atta = json!({"sku": "ATTA-5KG", "name": "Aashirvaad Atta 5 kg", "category": "staples", "unit": "pc", "barcode": "8901063010021"});
    let (status, product) = send(&app, Method::POST, "/v1/products", Some(&admin), &atta).await;
    assert_eq!(status, 201, "{product}");
    assert_eq!(product["unit"], "pc");
    let (status, problem) = send(&app, Method::POST, "/v1/products", Some(&admin), &atta).await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("duplicate_sku"))
    );
    assert_eq!(problem["errors"][0]["field"], "sku");

    let bad = json!({"sku": "OIL-1L", "name": "Oil", "unit": "litre", "barcode": "12"});
    let (status, problem) = send(&app, Method::POST, "/v1/products", Some(&admin), &bad).await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "unit");
    assert_eq!(problem["errors"][1]["field"], "barcode");

    let path = format!("/v1/products/{}", product["id"]);
    let (status, changed) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"category": "flour"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (changed["category"].as_str(), changed["sku"].as_str()),
        (Some("flour"), Some("ATTA-5KG"))
    );
    let (status, _) = send(&app, Method::DELETE, &path, Some(&admin), &json!(null)).await;
    assert_eq!(status, 204);
    assert_eq!(
        audit_actions(&stack, "product").await,
        ["create", "update", "delete"]
    );
    stack.cleanup().await;
}

#[tokio::test]
async fn only_admins_write_the_catalog() {
    let (stack, app, admin) = with_admin().await;
    let (_, store) = send(
        &app,
        Method::POST,
        "/v1/stores",
        Some(&admin),
        &json!({"code": "THN-01", "name": "Thane"}),
    )
    .await;
    let manager = json!({"username": "manager.thane", "password": "manager-password-1", "role": "manager", "stores": [store["id"]]});
    let (status, _) = send(&app, Method::POST, "/v1/users", Some(&admin), &manager).await;
    assert_eq!(status, 201);
    let manager = token(&app, "manager.thane", "manager-password-1").await;
    let product = json!({"sku": "DAL-1KG", "name": "Toor Dal", "unit": "pc"});
    let (status, problem) =
        send(&app, Method::POST, "/v1/products", Some(&manager), &product).await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (403, Some("role_forbidden"))
    );
    let path = format!("/v1/stores/{}", store["id"]);
    let (status, _) = send(&app, Method::DELETE, &path, Some(&manager), &json!(null)).await;
    assert_eq!(status, 403);
    let (status, _) = send(
        &app,
        Method::POST,
        "/v1/stores",
        None,
        &json!({"code": "X-1", "name": "x"}),
    )
    .await;
    assert_eq!(status, 401);
    stack.cleanup().await;
}

/// Creates `body` at `path` as `token` and returns the created row.
pub(crate) async fn created(
    app: &crate::common::Running,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let (status, row) = send(app, Method::POST, path, Some(token), &body).await;
    assert_eq!(status, 201, "POST {path}: {row}");
    row
}

#[tokio::test]
async fn a_product_is_set_up_once_per_store_and_comes_back_after_removal() {
    let (stack, app, admin) = with_admin().await;
    let store = created(
        &app,
        &admin,
        "/v1/stores",
        json!({"code": "DEL-01", "name": "Saket"}),
    )
    .await;
    let product = created(
        &app,
        &admin,
        "/v1/products",
        json!({"sku": "RICE-1KG", "name": "Rice", "unit": "g"}),
    )
    .await;
    let body = json!({"store_id": store["id"], "product_id": product["id"], "reorder_point": 5000, "reorder_quantity": 20000});
    let settings = created(&app, &admin, "/v1/store-products", body.clone()).await;
    assert_eq!(settings["reorder_point"], 5000);
    let (status, problem) = send(
        &app,
        Method::POST,
        "/v1/store-products",
        Some(&admin),
        &body,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("duplicate_store_product"))
    );

    let path = format!("/v1/store-products/{}/{}", store["id"], product["id"]);
    let (status, problem) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"reorder_quantity": 0}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["errors"][0]["field"].as_str()),
        (400, Some("reorder_quantity"))
    );
    let (status, changed) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"reorder_point": null}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            changed["reorder_point"].clone(),
            changed["reorder_quantity"].as_i64()
        ),
        (json!(null), Some(20000))
    );

    let (status, _) = send(&app, Method::DELETE, &path, Some(&admin), &json!(null)).await;
    assert_eq!(status, 204);
    let (status, _) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"reorder_point": 1}),
    )
    .await;
    assert_eq!(status, 404);
    let again = created(
        &app,
        &admin,
        "/v1/store-products",
        json!({"store_id": store["id"], "product_id": product["id"], "reorder_point": 10}),
    )
    .await;
    assert_eq!(
        (
            again["reorder_point"].as_i64(),
            again["reorder_quantity"].clone()
        ),
        (Some(10), json!(null))
    );
    assert_eq!(again["deleted_at"], json!(null));
    assert_eq!(
        audit_actions(&stack, "store_product").await,
        ["create", "update", "delete", "create"]
    );
    let entity: String = sqlx::query_scalar(
        "SELECT entity_id FROM audit_log WHERE entity_type = 'store_product' LIMIT 1",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(entity, format!("{}:{}", store["id"], product["id"]));

    let (status, problem) = send(
        &app,
        Method::POST,
        "/v1/store-products",
        Some(&admin),
        &json!({"store_id": store["id"], "product_id": 777}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["errors"][0]["field"].as_str()),
        (422, Some("product_id"))
    );
    stack.cleanup().await;
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_names_the_field_at_fault() {
    let (stack, app, admin) = with_admin().await;
    let cases = [
        ("/v1/products", json!({"sku": "X-1", "name": "x"}), "unit"),
        (
            "/v1/supplier-prices",
            json!({"store_id": 1, "supplier_id": 1, "product_id": 1, "unit_cost_paise": "ten"}),
            "unit_cost_paise",
        ),
        (
            "/v1/stores",
            json!({"code": "X-1", "name": "x", "colour": "red"}),
            "colour",
        ),
    ];
    for (path, body, field) in cases {
        let (status, problem) = send(&app, Method::POST, path, Some(&admin), &body).await;
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    stack.cleanup().await;
}
