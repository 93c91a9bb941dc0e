//! Suppliers and their prices: created, changed with `null` clearing a field and
//! soft-deleted; a price names unknown references and one price per supplier, product and
//! day.

use crate::catalog::created;
use crate::common::{send, with_admin};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn suppliers_are_created_changed_with_null_clearing_a_field_and_soft_deleted() {
    let (stack, app, admin) = with_admin().await;
    let supplier = created(
        &app,
        &admin,
        "/v1/suppliers",
        json!({"name": "Sharma Wholesale", "phone": "+91 98200 12345", "city": "Mumbai"}),
    )
    .await;
    let path = format!("/v1/suppliers/{}", supplier["id"]);
    let (status, changed) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"phone": null}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["phone"], json!(null), "null clears");
    assert_eq!(changed["city"], "Mumbai", "absent keeps");

    let (status, problem) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"phone": "call me"}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["errors"][0]["field"].as_str()),
        (400, Some("phone"))
    );
    let (status, problem) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"fax": "1"}),
    )
    .await;
    assert_eq!(
        status, 400,
        "unknown fields are refused, not ignored: {problem}"
    );

    let (status, _) = send(&app, Method::DELETE, &path, Some(&admin), &json!(null)).await;
    assert_eq!(status, 204);
    let audit: Vec<(String, Option<serde_json::Value>, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT action, before, after FROM audit_log WHERE entity_type = 'supplier' ORDER BY id",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let actions: Vec<&str> = audit.iter().map(|(action, _, _)| action.as_str()).collect();
    assert_eq!(actions, ["create", "update", "delete"]);
    let (_, before, after) = &audit[1];
    assert_eq!(before.as_ref().unwrap()["phone"], "+91 98200 12345");
    assert_eq!(after.as_ref().unwrap()["phone"], json!(null));
    stack.cleanup().await;
}

#[tokio::test]
async fn supplier_prices_name_unknown_references_and_refuse_a_second_price_for_the_same_day() {
    let (stack, app, admin) = with_admin().await;
    let store = created(
        &app,
        &admin,
        "/v1/stores",
        json!({"code": "BLR-01", "name": "Indiranagar"}),
    )
    .await;
    let supplier = created(&app, &admin, "/v1/suppliers", json!({"name": "Metro"})).await;
    let product = created(
        &app,
        &admin,
        "/v1/products",
        json!({"sku": "OIL-1L", "name": "Oil", "unit": "ml"}),
    )
    .await;

    let unknown = json!({"store_id": 9999, "supplier_id": supplier["id"], "product_id": 8888, "unit_cost_paise": 15});
    let (status, problem) = send(
        &app,
        Method::POST,
        "/v1/supplier-prices",
        Some(&admin),
        &unknown,
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["store_id", "product_id"]);

    let price = json!({"store_id": store["id"], "supplier_id": supplier["id"], "product_id": product["id"], "unit_cost_paise": 15});
    let first = created(&app, &admin, "/v1/supplier-prices", price.clone()).await;
    let today: String =
        sqlx::query_scalar("SELECT ((now() AT TIME ZONE 'Asia/Kolkata')::date)::text")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(
        first["effective_from"],
        today.as_str(),
        "defaults to today in the store's zone"
    );
    let (status, problem) = send(
        &app,
        Method::POST,
        "/v1/supplier-prices",
        Some(&admin),
        &price,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["code"].as_str()),
        (409, Some("duplicate_supplier_price"))
    );
    assert_eq!(problem["errors"][0]["field"], "effective_from");

    let path = format!("/v1/supplier-prices/{}", first["id"]);
    let (status, problem) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"unit_cost_paise": -1}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["errors"][0]["field"].as_str()),
        (400, Some("unit_cost_paise"))
    );
    let (status, changed) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"unit_cost_paise": 16}),
    )
    .await;
    assert_eq!(
        (status.as_u16(), changed["unit_cost_paise"].as_i64()),
        (200, Some(16))
    );
    let (status, _) = send(&app, Method::DELETE, &path, Some(&admin), &json!(null)).await;
    assert_eq!(status, 204);
    created(&app, &admin, "/v1/supplier-prices", price.clone()).await;

    // A deleted supplier can no longer be priced.
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/v1/suppliers/{}", supplier["id"]),
        Some(&admin),
        &json!(null),
    )
    .await;
    assert_eq!(status, 204);
    let later = json!({"store_id": store["id"], "supplier_id": supplier["id"], "product_id": product["id"], "unit_cost_paise": 17, "effective_from": "2030-01-01"});
    let (status, problem) = send(
        &app,
        Method::POST,
        "/v1/supplier-prices",
        Some(&admin),
        &later,
    )
    .await;
    assert_eq!(
        (status.as_u16(), problem["errors"][0]["field"].as_str()),
        (422, Some("supplier_id"))
    );
    stack.cleanup().await;
}
