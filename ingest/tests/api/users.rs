//! User administration: admins create, re-role and disable users; every change is
//! audited; nobody else may.

use crate::common::{add_store, login, send, token, with_admin};
use reqwest::Method;
use serde_json::{Value, json};
use test_kit::TestStack;

async fn audit_rows(stack: &TestStack) -> Vec<(String, String, String, Option<Value>, Value)> {
    sqlx::query_as("SELECT actor, action, entity_id, before, after FROM audit_log WHERE actor <> 'bootstrap' ORDER BY id")
        .fetch_all(&stack.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_creates_a_store_manager_who_can_log_in_and_the_change_is_audited() {
    let (stack, app, admin) = with_admin().await;
    let store = add_store(&stack, "AND-01").await;
    let new = json!({"username": "manager.andheri", "password": "manager-password-1", "role": "manager", "stores": [store]});
    let (status, user) = send(&app, Method::POST, "/v1/users", Some(&admin), &new).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["role"], "manager");
    assert_eq!(user["stores"], json!([store]));
    assert_eq!(user["disabled"], false);
    assert!(user.get("password_hash").is_none());

    let (_, _, body) = login(
        &app,
        json!({"username": "manager.andheri", "password": "manager-password-1"}),
    )
    .await;
    assert_eq!(body["stores"], json!([store]));

    let rows = audit_rows(&stack).await;
    assert_eq!(rows.len(), 1);
    let (actor, action, entity_id, before, after) = &rows[0];
    assert_eq!((actor.as_str(), action.as_str()), ("admin", "create"));
    assert_eq!(entity_id, &user["id"].to_string());
    assert!(before.is_none());
    assert_eq!(after["username"], "manager.andheri");
    assert!(
        !after.to_string().contains("argon2"),
        "no password hash in the audit log"
    );

    let (status, problem) = send(&app, Method::POST, "/v1/users", Some(&admin), &new).await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "duplicate_username");
    assert_eq!(problem["errors"][0]["field"], "username");
    stack.cleanup().await;
}

#[tokio::test]
async fn invalid_users_are_refused_with_the_field_at_fault_and_nothing_is_written() {
    let (stack, app, admin) = with_admin().await;
    let cases = [
        (
            json!({"username": "No Spaces", "password": "long-enough-pass", "role": "admin"}),
            400,
            "username",
        ),
        (
            json!({"username": "shorty", "password": "short", "role": "admin"}),
            400,
            "password",
        ),
        (
            json!({"username": "someone", "password": "long-enough-pass", "role": "owner"}),
            400,
            "role",
        ),
        (
            json!({"username": "someone", "password": "long-enough-pass", "role": "staff", "stores": []}),
            400,
            "stores",
        ),
        (
            json!({"username": "someone", "password": "long-enough-pass", "role": "staff", "stores": [999]}),
            422,
            "stores",
        ),
        (json!({"username": "someone"}), 400, "password"),
    ];
    for (body, status, field) in cases {
        let (got, problem) = send(&app, Method::POST, "/v1/users", Some(&admin), &body).await;
        assert_eq!(got.as_u16(), status, "{body} -> {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(users, 1, "only the admin");
    assert!(audit_rows(&stack).await.is_empty());
    stack.cleanup().await;
}

#[tokio::test]
async fn only_admins_administer_users() {
    let (stack, app, admin) = with_admin().await;
    let store = add_store(&stack, "BAN-01").await;
    let manager = json!({"username": "manager.bandra", "password": "manager-password-1", "role": "manager", "stores": [store]});
    let (status, user) = send(&app, Method::POST, "/v1/users", Some(&admin), &manager).await;
    assert_eq!(status, 201);
    let manager_token = token(&app, "manager.bandra", "manager-password-1").await;

    let other = json!({"username": "sneaky", "password": "long-enough-pass", "role": "admin"});
    let (status, problem) = send(
        &app,
        Method::POST,
        "/v1/users",
        Some(&manager_token),
        &other,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(problem["code"], "role_forbidden");
    let path = format!("/v1/users/{}", user["id"]);
    let (status, _) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&manager_token),
        &json!({"role": "admin"}),
    )
    .await;
    assert_eq!(status, 403, "a manager cannot promote itself");

    let (status, problem) = send(&app, Method::POST, "/v1/users", None, &other).await;
    assert_eq!(status, 401);
    assert_eq!(problem["code"], "missing_token");
    stack.cleanup().await;
}

#[tokio::test]
async fn an_admin_re_roles_and_disables_a_user_whose_logins_then_fail() {
    let (stack, app, admin) = with_admin().await;
    let store = add_store(&stack, "KUR-01").await;
    let body = json!({"username": "staff.kurla", "password": "staff-password-12", "role": "staff", "stores": [store]});
    let (_, user) = send(&app, Method::POST, "/v1/users", Some(&admin), &body).await;
    let path = format!("/v1/users/{}", user["id"]);

    let (status, changed) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"role": "manager"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["role"], "manager");
    assert_eq!(
        changed["stores"],
        json!([store]),
        "absent fields do not change"
    );

    let (status, changed) = send(
        &app,
        Method::PATCH,
        &path,
        Some(&admin),
        &json!({"disabled": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(changed["disabled"], true);
    let (status, _, _) = login(
        &app,
        json!({"username": "staff.kurla", "password": "staff-password-12"}),
    )
    .await;
    assert_eq!(status, 401, "a disabled user cannot log in");

    let actions: Vec<String> = audit_rows(&stack)
        .await
        .into_iter()
        .map(|row| row.1)
        .collect();
    assert_eq!(actions, ["create", "update", "disable"]);
    let rows = audit_rows(&stack).await;
    assert_eq!(rows[2].3.as_ref().unwrap()["disabled"], false);
    assert_eq!(rows[2].4["disabled"], true);

    let (status, problem) = send(
        &app,
        Method::PATCH,
        "/v1/users/999999",
        Some(&admin),
        &json!({"disabled": true}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(problem["code"], "not_found");

    let (_, me) = send(&app, Method::PATCH, &path, Some(&admin), &json!({})).await;
    assert_eq!(me["role"], "manager");
    let admin_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'admin'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let (status, problem) = send(
        &app,
        Method::PATCH,
        &format!("/v1/users/{admin_id}"),
        Some(&admin),
        &json!({"disabled": true}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(problem["code"], "cannot_disable_self");
    stack.cleanup().await;
}
