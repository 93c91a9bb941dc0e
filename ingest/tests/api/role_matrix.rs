//! The role × route matrix of ingest's administration routes: only admins write the
//! catalog and users — except a product's settings in a store (reorder point, selling
//! price), which its manager may set up and change too; every other role is refused with
//! 403 before anything is read, and no token at all is 401.

use crate::common::{add_store, add_user, send, token, with_admin};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_administration_route_is_for_admins_only() {
    let (stack, app, admin) = with_admin().await;
    let store = add_store(&stack, "MAT-01").await;
    let routes = [
        (Method::POST, "/v1/stores".to_owned()),
        (Method::PATCH, format!("/v1/stores/{store}")),
        (Method::DELETE, format!("/v1/stores/{store}")),
        (Method::POST, "/v1/products".to_owned()),
        (Method::PATCH, "/v1/products/1".to_owned()),
        (Method::DELETE, "/v1/products/1".to_owned()),
        (Method::POST, "/v1/suppliers".to_owned()),
        (Method::PATCH, "/v1/suppliers/1".to_owned()),
        (Method::DELETE, "/v1/suppliers/1".to_owned()),
        (Method::POST, "/v1/supplier-prices".to_owned()),
        (Method::PATCH, "/v1/supplier-prices/1".to_owned()),
        (Method::DELETE, "/v1/supplier-prices/1".to_owned()),
        (Method::POST, "/v1/store-products".to_owned()),
        (Method::PATCH, format!("/v1/store-products/{store}/1")),
        (Method::DELETE, format!("/v1/store-products/{store}/1")),
        (Method::POST, "/v1/users".to_owned()),
        (Method::PATCH, "/v1/users/1".to_owned()),
    ];
    for role in ["manager", "staff", "pos", "analyst"] {
        let username = format!("{role}.matrix");
        add_user(
            &stack,
            &username,
            "matrix-password-1",
            role,
            &[store],
            false,
        )
        .await;
        let token = token(&app, &username, "matrix-password-1").await;
        for (method, path) in &routes {
            let store_setting = path.starts_with("/v1/store-products") && *method != Method::DELETE;
            if role == "manager" && store_setting {
                // Past authorization: the empty body is what is refused.
                let (status, problem) =
                    send(&app, method.clone(), path, Some(&token), &json!({})).await;
                assert!(
                    ![401, 403].contains(&status.as_u16()),
                    "manager {method} {path}: {problem}"
                );
                continue;
            }
            let (status, problem) =
                send(&app, method.clone(), path, Some(&token), &json!({})).await;
            assert_eq!(
                (status.as_u16(), problem["code"].as_str()),
                (403, Some("role_forbidden")),
                "{role} {method} {path}"
            );
        }
    }
    for (method, path) in &routes {
        let (status, _) = send(&app, method.clone(), path, None, &json!({})).await;
        assert_eq!(status, 401, "anonymous {method} {path}");
        // An admin gets past authorization: whatever it gets, it is not 401/403.
        let (status, problem) = send(&app, method.clone(), path, Some(&admin), &json!({})).await;
        assert!(
            ![401, 403].contains(&status.as_u16()),
            "admin {method} {path}: {problem}"
        );
    }
    let audit: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE actor LIKE '%.matrix'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(audit, 0, "refused requests change nothing");
    stack.cleanup().await;
}
