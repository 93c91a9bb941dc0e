//! Tokens: the bootstrap admin logs in, wrong or disabled credentials are refused alike,
//! tokens signed with anything in the repository are refused, and `ingest create-admin` is
//! safe to run twice (guessing is throttled: `login_throttle.rs`).

use crate::common::{add_user, login, start};
use ingest::users;
use serde_json::{Value, json};
use service_kit::auth::{Role, StoreScope, TokenKeys};
use test_kit::TestStack;

#[tokio::test]
async fn the_bootstrap_admin_gets_a_token_that_verifies_and_the_bootstrap_is_audited() {
    let stack = TestStack::start().await;
    let created = users::ensure_admin(&stack.pool, "admin", "a-long-enough-password".into())
        .await
        .unwrap();
    assert_eq!(created, users::Bootstrap::Created);
    let app = start(&stack).await;

    let (status, _, body) = login(
        &app,
        json!({"username": "admin", "password": "a-long-enough-password"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["role"], "admin");
    assert_eq!(body["expires_in"], 900, "access tokens are short-lived");
    assert_eq!(body["refresh_expires_in"], 14 * 86_400);
    assert_eq!(
        body["refresh_token"].as_str().unwrap().len(),
        43,
        "256 bits, base64url"
    );
    let keys = TokenKeys::from_settings(&stack.ingest_settings().api.auth).unwrap();
    let principal = keys.verify(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(
        (principal.subject.as_str(), principal.role),
        ("admin", Role::Admin)
    );
    assert_eq!(principal.stores, StoreScope::All);

    let (actor, action, entity): (String, String, String) =
        sqlx::query_as("SELECT actor, action, entity_type FROM audit_log")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(
        (actor.as_str(), action.as_str(), entity.as_str()),
        ("bootstrap", "create", "user")
    );

    // Bootstrapping again changes nothing.
    let again = users::ensure_admin(&stack.pool, "admin", "another-long-password".into())
        .await
        .unwrap();
    assert_eq!(again, users::Bootstrap::AlreadyThere);
    let (status, _, _) = login(
        &app,
        json!({"username": "admin", "password": "a-long-enough-password"}),
    )
    .await;
    assert_eq!(status, 200);
    stack.cleanup().await;
}

#[tokio::test]
async fn a_store_users_token_names_its_stores() {
    let stack = TestStack::start().await;
    add_user(
        &stack,
        "staff-7",
        "staff-password-123",
        "staff",
        &[7, 9],
        false,
    )
    .await;
    let app = start(&stack).await;
    let (status, _, body) = login(
        &app,
        json!({"username": "staff-7", "password": "staff-password-123"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "staff");
    assert_eq!(body["stores"], json!([7, 9]));
    stack.cleanup().await;
}

#[tokio::test]
async fn wrong_unknown_and_disabled_credentials_are_refused_alike() {
    let stack = TestStack::start().await;
    add_user(&stack, "pos-1", "pos-password-12345", "pos", &[1], false).await;
    add_user(&stack, "gone", "gone-password-12345", "staff", &[1], true).await;
    let app = start(&stack).await;

    for (username, password) in [
        ("pos-1", "wrong-password-123"),
        ("nobody", "whatever-password"),
        ("gone", "gone-password-12345"),
    ] {
        let (status, headers, body) =
            login(&app, json!({"username": username, "password": password})).await;
        assert_eq!(status, 401, "{username}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["code"], "invalid_credentials");
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    stack.cleanup().await;
}

#[tokio::test]
async fn malformed_requests_name_the_field_at_fault() {
    let stack = TestStack::start().await;
    let app = start(&stack).await;
    let (status, _, body) = login(&app, json!({"username": "admin", "password": ""})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["errors"][0]["field"], "password");

    let (status, _, body) = login(&app, json!({"username": "admin"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["field"], "password",
        "a missing field is named"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );
    stack.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_validates_and_describes_every_write_route() {
    let stack = TestStack::start().await;
    let app = start(&stack).await;
    let text = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    test_kit::assert_valid_openapi(&text);
    let api: Value = serde_json::from_str(&text).unwrap();
    for (path, method) in [
        ("/v1/movements", "post"),
        ("/v1/movements/batch", "post"),
        ("/v1/stores", "post"),
        ("/v1/stores/{id}", "patch"),
        ("/v1/stores/{id}", "delete"),
        ("/v1/products", "post"),
        ("/v1/products/{id}", "patch"),
        ("/v1/suppliers", "post"),
        ("/v1/suppliers/{id}", "delete"),
        ("/v1/supplier-prices", "post"),
        ("/v1/supplier-prices/{id}", "patch"),
        ("/v1/store-products", "post"),
        ("/v1/store-products/{store_id}/{product_id}", "patch"),
        ("/v1/users", "post"),
        ("/v1/users/{id}", "patch"),
        ("/v1/auth/refresh", "post"),
        ("/v1/auth/logout", "post"),
        ("/v1/auth/password", "post"),
        ("/v1/purchase-orders", "post"),
        ("/v1/purchase-orders/from-suggestions", "post"),
        ("/v1/purchase-orders/{id}", "patch"),
        ("/v1/purchase-orders/{id}/submit", "post"),
        ("/v1/purchase-orders/{id}/approve", "post"),
        ("/v1/purchase-orders/{id}/reject", "post"),
        ("/v1/purchase-orders/{id}/cancel", "post"),
        ("/v1/purchase-orders/{id}/receipts", "post"),
    ] {
        assert!(
            api["paths"][path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    assert!(api["paths"]["/v1/movements"]["post"]["responses"]["503"].is_object());
    // Every operation may be refused for a control character (hygiene), GETs included;
    // every one taking a token for the token or the role; every /v1 one by the rate limits.
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            assert!(responses["400"].is_object(), "{method} {path}: no 400");
            assert!(responses["503"].is_object(), "{method} {path}: no 503");
            if operation["requestBody"].is_object() {
                assert!(responses["413"].is_object(), "{method} {path}: no 413");
            }
            if operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                assert!(responses["401"].is_object(), "{method} {path}: no 401");
                assert!(responses["403"].is_object(), "{method} {path}: no 403");
            }
            if path.starts_with("/v1/") {
                assert!(responses["429"].is_object(), "{method} {path}: no 429");
            }
        }
    }
    assert!(api["paths"]["/v1/movements"]["post"]["responses"]["401"].is_object());
    let route = &api["paths"]["/v1/auth/token"]["post"];
    for status in ["200", "400", "401", "429"] {
        assert!(
            route["responses"][status].is_object(),
            "{status} documented: {route}"
        );
    }
    assert!(api["components"]["schemas"]["TokenRequest"].is_object());
    assert!(api["paths"]["/v1/users"]["post"]["responses"]["409"].is_object());
    assert!(api["paths"]["/v1/users/{id}"]["patch"]["responses"]["404"].is_object());
    assert_eq!(
        api["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    stack.cleanup().await;
}

#[test]
fn create_admin_is_safe_to_run_twice() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stack = runtime.block_on(TestStack::start());
    let dir = std::env::temp_dir().join(format!("bazaar-admin-{}", stack.database_name));
    std::fs::create_dir_all(&dir).unwrap();
    let password_file = dir.join("admin-password");
    std::fs::write(&password_file, "generated-password-for-test\n").unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
            .args(["create-admin", "--username", "admin", "--password-file"])
            .arg(&password_file)
            .envs(stack.env())
            .status()
            .unwrap()
    };
    assert!(run().success());
    let hash = |stack: &TestStack| {
        runtime.block_on(
            sqlx::query_scalar::<_, String>(
                "SELECT password_hash FROM users WHERE username = 'admin'",
            )
            .fetch_one(&stack.pool),
        )
    };
    let first = hash(&stack).unwrap();
    std::fs::write(&password_file, "a-different-password-now\n").unwrap();
    assert!(run().success());
    assert_eq!(
        hash(&stack).unwrap(),
        first,
        "the second run leaves the admin as it was"
    );
    let verifies = runtime
        .block_on(users::verify_password(
            "generated-password-for-test".into(),
            first,
        ))
        .unwrap();
    assert!(
        verifies,
        "the trailing newline of the file is not part of the password"
    );

    let usage = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
        .arg("create-admin")
        .envs(stack.env())
        .status()
        .unwrap();
    assert!(!usage.success(), "missing flags are an error");
    let _ = std::fs::remove_dir_all(&dir);
    runtime.block_on(stack.cleanup());
}

/// The signing secret of a deployment started the way the README says (`make up`: the
/// stack's own `.local/jwt-secret`, printed by `stack.sh env`).
fn readme_signing_secret() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/stack.sh");
    let output = std::process::Command::new("bash")
        .args([script, "env"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "stack.sh env failed; run `make up`"
    );
    let env = String::from_utf8(output.stdout).unwrap();
    env.lines()
        .find_map(|line| line.strip_prefix("JWT_SECRET="))
        .expect("stack.sh env prints JWT_SECRET")
        .trim_matches('\'')
        .to_owned()
}

/// Every run of 32 or more non-blank characters in a file the repository tracks: what
/// anyone who has read the repository could try as an HS256 secret (32 bytes at least).
fn secrets_anyone_could_read() -> std::collections::BTreeSet<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let files = std::process::Command::new("git")
        .args(["-C", root, "ls-files", "-z"])
        .output()
        .unwrap();
    let mut candidates = std::collections::BTreeSet::new();
    for path in files
        .stdout
        .split(|byte| *byte == 0)
        .filter(|path| !path.is_empty())
    {
        let path = std::path::Path::new(root).join(String::from_utf8_lossy(path).as_ref());
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let separators = |c: char| c.is_whitespace() || "\"'`=,;(){}[]<>".contains(c);
        for word in text.split(separators) {
            if word.len() >= 32 {
                candidates.insert(word.to_owned());
            }
        }
    }
    candidates
}

/// No secret lives in the repository: a token signed with any string in it is refused by
/// ingest started the way the README says.
#[tokio::test]
async fn a_token_signed_with_anything_in_the_repository_is_refused() {
    let secret = readme_signing_secret();
    let stack = TestStack::start_with(&[("JWT_SECRET", secret.clone())]).await;
    let service_keys = TokenKeys::from_settings(&stack.ingest_settings().api.auth).unwrap();
    let candidates = secrets_anyone_could_read();
    assert!(candidates.len() > 100, "{} candidates", candidates.len());
    assert!(
        !candidates.contains(&secret),
        "the signing secret is in the repository"
    );

    let forge = |candidate: &str| {
        let settings = service_kit::settings::IngestSettings::from_lookup(|var| match var {
            "BAZAAR_ENV" => Some("development".to_owned()),
            "JWT_SECRET" => Some(candidate.to_owned()),
            _ => None,
        })
        .unwrap();
        let keys = TokenKeys::from_settings(&settings.api.auth).unwrap();
        keys.issue("intruder", Role::Admin, &[]).unwrap().0
    };
    let forged: Vec<String> = candidates
        .iter()
        .map(|candidate| forge(candidate))
        .collect();
    for (token, candidate) in forged.iter().zip(&candidates) {
        assert!(
            service_keys.verify(token).is_err(),
            "{candidate} signs for the service"
        );
    }
    // And over HTTP, as an intruder would present them: the test secrets first.
    let app = start(&stack).await;
    let test_secrets = forged
        .iter()
        .zip(&candidates)
        .filter(|(_, candidate)| candidate.contains("secret"))
        .map(|(token, _)| token);
    for token in test_secrets.take(10) {
        let status = app
            .client
            .post(format!("{}/v1/stores", app.base))
            .bearer_auth(token)
            .json(&json!({"code": "X-1", "name": "Intruder's store", "city": "Pune"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    stack.cleanup().await;
}

#[tokio::test]
async fn sessions_and_refresh_tokens_a_day_past_their_end_are_forgotten_and_no_others() {
    let stack = TestStack::start().await;
    add_user(
        &stack,
        "sweeper",
        "long-enough-password",
        "staff",
        &[1],
        false,
    )
    .await;
    let user: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'sweeper'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    // (session expires, revoked, refresh token expires, whether the session stays)
    let cases = [
        (
            "now() + interval '20 days'",
            "NULL",
            "now() + interval '10 days'",
            true,
        ),
        (
            "now() - interval '2 days'",
            "NULL",
            "now() - interval '2 days'",
            false,
        ),
        (
            "now() + interval '20 days'",
            "now() - interval '2 days'",
            "now() + interval '10 days'",
            false,
        ),
        (
            "now() + interval '20 days'",
            "now() - interval '1 hour'",
            "now() + interval '10 days'",
            true,
        ),
        (
            "now() - interval '1 hour'",
            "NULL",
            "now() - interval '1 hour'",
            true,
        ),
    ];
    let mut expected = Vec::new();
    for (at, (expires, revoked, token_expires, stays)) in cases.into_iter().enumerate() {
        let id = uuid::Uuid::new_v4();
        sqlx::query(&format!(
            "WITH s AS (INSERT INTO sessions (id, user_id, expires_at, revoked_at, revoked_why)
                        VALUES ($1, $2, {expires}, {revoked}, CASE WHEN {revoked} IS NULL THEN NULL ELSE 'logout' END))
             INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($3, $1, {token_expires})"
        ))
        .bind(id)
        .bind(user)
        .bind(vec![at as u8; 32])
        .execute(&stack.pool)
        .await
        .unwrap();
        if stays {
            expected.push(id);
        }
    }
    let forgotten = ingest::login::sessions::sweep(&stack.pool).await.unwrap();
    assert_eq!(forgotten, 2);
    let mut left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_all(&stack.pool)
        .await
        .unwrap();
    left.sort();
    expected.sort();
    assert_eq!(left, expected);
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(tokens, 3, "the tokens of the sessions that stay");
    stack.cleanup().await;
}
