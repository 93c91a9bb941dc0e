//! Sessions across instances: two ingest and two query-api instances on one stack, as
//! behind a load balancer. Refresh tokens rotate; a reused one ends its session; logout,
//! disabling a user, changing their stores and changing one's own password end access
//! tokens on every instance within seconds. `GET /v1/me` says who a token is. And the
//! catalog is read-your-writes: a store created a moment ago takes a movement in the very
//! next request, although the catalog copies' periodic refresh is minutes away.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::Pipeline;

/// Longest a revocation may take to reach every instance.
const REVOCATION_BOUND: Duration = Duration::from_secs(5);

struct Cluster {
    pipeline: Pipeline,
    ingests: Vec<String>,
    queries: Vec<String>,
}

impl Cluster {
    async fn start() -> Self {
        let mut pipeline = Pipeline::start(false).await;
        let ingests = vec![pipeline.ingest.clone(), pipeline.another_ingest(&[]).await];
        let queries = vec![
            pipeline.query.clone(),
            pipeline.another_query_api(&[]).await,
        ];
        Self {
            pipeline,
            ingests,
            queries,
        }
    }

    async fn post(
        &self,
        base: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        let mut request = self
            .pipeline
            .client
            .post(format!("{base}{path}"))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A user made through ingest's admin API; its id.
    async fn add_user(&self, username: &str, role: &str, stores: &[i64]) -> i64 {
        let (status, user) = self
            .post(
                &self.ingests[0],
                "/v1/users",
                Some(&self.pipeline.admin()),
                &json!({"username": username, "password": password(username), "role": role, "stores": stores}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        user["id"].as_i64().unwrap()
    }

    /// Signs in on ingest instance `on`: the token answer.
    async fn sign_in(&self, on: usize, username: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            &self.ingests[on],
            "/v1/auth/token",
            None,
            &json!({"username": username, "password": password}),
        )
        .await
    }

    async fn refresh(&self, on: usize, refresh_token: &Value) -> (StatusCode, Value) {
        self.post(
            &self.ingests[on],
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// What every instance answers a request with `token`: `GET /v1/me` on query-api,
    /// an empty batch (`400` once past authentication) on ingest.
    async fn answers(&self, token: &str) -> Vec<(String, StatusCode, Value)> {
        let mut answers = Vec::new();
        for base in &self.queries {
            let (status, _, body) = self.pipeline.get_from(base, "/v1/me", token, &[]).await;
            answers.push((base.clone(), status, body));
        }
        for base in &self.ingests {
            let (status, body) = self
                .post(
                    base,
                    "/v1/movements/batch",
                    Some(token),
                    &json!({"movements": []}),
                )
                .await;
            answers.push((base.clone(), status, body));
        }
        answers
    }

    /// Asserts that `token` works on every instance.
    async fn assert_accepted(&self, token: &str) {
        for (base, status, body) in self.answers(token).await {
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{base}: {status} {body}"
            );
        }
    }

    /// Waits until every instance refuses `token` with `401 token_revoked`; how long it took.
    async fn assert_revoked_everywhere(&self, token: &str) -> Duration {
        let started = Instant::now();
        loop {
            let answers = self.answers(token).await;
            if answers.iter().all(|(_, status, body)| {
                *status == StatusCode::UNAUTHORIZED && body["code"] == "token_revoked"
            }) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < REVOCATION_BOUND,
                "still not refused everywhere after {REVOCATION_BOUND:?}: {answers:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn password(username: &str) -> String {
    format!("{username}-password-long")
}

fn access(answer: &Value) -> &str {
    answer["access_token"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_rotates_once_and_a_reused_one_ends_its_session_everywhere() {
    let cluster = Cluster::start().await;
    cluster.add_user("staff.one", "staff", &[1]).await;
    let (status, first) = cluster
        .sign_in(0, "staff.one", &password("staff.one"))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["expires_in"], 900, "access tokens are short-lived");
    assert!(
        first["refresh_expires_in"].as_i64().unwrap() > 86_400,
        "{first}"
    );

    // The other ingest instance rotates it: new tokens, both working everywhere.
    let (status, second) = cluster.refresh(1, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    cluster.assert_accepted(access(&second)).await;
    let (_, _, me) = cluster
        .pipeline
        .get_from(&cluster.queries[1], "/v1/me", access(&second), &[])
        .await;
    let (_, _, me_before) = cluster
        .pipeline
        .get_from(&cluster.queries[0], "/v1/me", access(&first), &[])
        .await;
    assert_eq!(
        me["session_id"], me_before["session_id"],
        "one session, rotated"
    );

    // The spent refresh token presented again: somebody holds a copy. The session ends:
    // the newest tokens stop working too, on every instance.
    let (status, problem) = cluster.refresh(0, &first["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["code"], "refresh_token_reused");
    cluster.assert_revoked_everywhere(access(&second)).await;
    cluster.assert_revoked_everywhere(access(&first)).await;
    let (status, problem) = cluster.refresh(1, &second["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["code"], "session_ended");

    // A token nobody issued, and an empty one.
    let (status, problem) = cluster.refresh(0, &json!("not-a-token")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_refresh_token"))
    );
    let (status, problem) = cluster.refresh(0, &json!("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "refresh_token");

    // Signing in again starts a fresh session that works.
    let (status, again) = cluster
        .sign_in(1, "staff.one", &password("staff.one"))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    cluster.assert_accepted(access(&again)).await;
    cluster.pipeline.stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_on_every_instance_and_no_other() {
    let cluster = Cluster::start().await;
    cluster.add_user("manager.one", "manager", &[1]).await;
    let (_, phone) = cluster
        .sign_in(0, "manager.one", &password("manager.one"))
        .await;
    let (_, till) = cluster
        .sign_in(1, "manager.one", &password("manager.one"))
        .await;

    let (status, body) = cluster
        .post(
            &cluster.ingests[1],
            "/v1/auth/logout",
            Some(access(&phone)),
            &Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let took = cluster.assert_revoked_everywhere(access(&phone)).await;
    println!("logout reached every instance within {took:?}");
    let (status, problem) = cluster.refresh(0, &phone["refresh_token"]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_ended"))
    );
    // The same user's other session goes on.
    cluster.assert_accepted(access(&till)).await;
    let (status, _) = cluster.refresh(0, &till["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK);
    cluster.pipeline.stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_change_to_a_user_ends_their_tokens_everywhere_and_disabling_ends_their_sessions()
{
    let cluster = Cluster::start().await;
    let id = cluster.add_user("manager.two", "manager", &[1]).await;
    let admin = cluster.pipeline.admin();
    let (_, signed_in) = cluster
        .sign_in(0, "manager.two", &password("manager.two"))
        .await;
    cluster.assert_accepted(access(&signed_in)).await;

    // New stores: the old token (it names store 1 only) stops working everywhere; a
    // refresh brings a token that says what the user may do now.
    let (status, body) = cluster
        .pipeline
        .client
        .patch(format!("{}/v1/users/{id}", cluster.ingests[1]))
        .bearer_auth(&admin)
        .json(&json!({"stores": [1, 2]}))
        .send()
        .await
        .map(|response| (response.status(), response))
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{:?}", body.text().await);
    cluster.assert_revoked_everywhere(access(&signed_in)).await;
    let (status, refreshed) = cluster.refresh(1, &signed_in["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["stores"], json!([1, 2]));
    cluster.assert_accepted(access(&refreshed)).await;

    // Disabled: tokens refused everywhere, the session cannot be refreshed, no sign-in.
    let response = cluster
        .pipeline
        .client
        .patch(format!("{}/v1/users/{id}", cluster.ingests[0]))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let took = cluster.assert_revoked_everywhere(access(&refreshed)).await;
    println!("disabling reached every instance within {took:?}");
    let (status, problem) = cluster.refresh(0, &refreshed["refresh_token"]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_ended"))
    );
    let (status, _) = cluster
        .sign_in(1, "manager.two", &password("manager.two"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let why: Vec<String> =
        sqlx::query_scalar("SELECT revoked_why FROM sessions WHERE user_id = $1")
            .bind(id)
            .fetch_all(&cluster.pipeline.stack.pool)
            .await
            .unwrap();
    assert_eq!(why, ["user_disabled"]);
    cluster.pipeline.stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_ones_own_password_ends_the_other_sessions_and_keeps_this_one() {
    let cluster = Cluster::start().await;
    let id = cluster.add_user("staff.two", "staff", &[2]).await;
    let old = password("staff.two");
    let (_, here) = cluster.sign_in(0, "staff.two", &old).await;
    let (_, elsewhere) = cluster.sign_in(1, "staff.two", &old).await;

    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let (status, problem) = cluster
        .post(
            &cluster.ingests[0],
            "/v1/auth/password",
            Some(access(&here)),
            &change("wrong-password-here", "a-new-long-password"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "current_password");
    assert_eq!(problem["errors"][0]["code"], "wrong_password");
    let (status, problem) = cluster
        .post(
            &cluster.ingests[0],
            "/v1/auth/password",
            Some(access(&here)),
            &change(&old, "short"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "new_password");

    let (status, body) = cluster
        .post(
            &cluster.ingests[1],
            "/v1/auth/password",
            Some(access(&here)),
            &change(&old, "a-new-long-password"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    cluster.assert_revoked_everywhere(access(&elsewhere)).await;
    cluster.assert_accepted(access(&here)).await;
    let (status, _) = cluster.refresh(1, &here["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "this session goes on");
    let (status, _) = cluster.sign_in(0, "staff.two", &old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = cluster.sign_in(1, "staff.two", "a-new-long-password").await;
    assert_eq!(status, StatusCode::OK);
    let (actor, action): (String, String) = sqlx::query_as(
        "SELECT actor, action FROM audit_log WHERE entity_type = 'user' AND entity_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(id.to_string())
    .fetch_one(&cluster.pipeline.stack.pool)
    .await
    .unwrap();
    assert_eq!(
        (actor.as_str(), action.as_str()),
        ("staff.two", "change_password")
    );
    cluster.pipeline.stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_says_who_each_role_is() {
    let cluster = Cluster::start().await;
    for (role, stores) in [
        ("admin", vec![]),
        ("manager", vec![1]),
        ("staff", vec![1, 2]),
        ("pos", vec![2]),
        ("analyst", vec![]),
    ] {
        let username = format!("{role}.me");
        let id = cluster.add_user(&username, role, &stores).await;
        let (_, signed_in) = cluster.sign_in(0, &username, &password(&username)).await;
        let me = cluster.pipeline.read("/v1/me", access(&signed_in)).await;
        assert_eq!(me["username"], username.as_str());
        assert_eq!(me["user_id"], id);
        assert_eq!(me["role"], role);
        assert_eq!(me["stores"], json!(stores));
        assert_eq!(me["all_stores"], stores.is_empty());
        assert!(me["session_id"].is_string(), "{me}");
        assert!(me["expires_at"].is_string(), "{me}");
    }
    let (status, _, problem) = cluster
        .pipeline
        .get_from(&cluster.queries[0], "/v1/me", "nonsense", &[])
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    cluster.pipeline.stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_and_product_created_a_moment_ago_take_a_movement_and_a_read_in_the_next_request() {
    // The catalog copies refresh every ten minutes here: only the catch-up on a miss can
    // know the new store in time.
    let stack = test_kit::TestStack::start_with(&[("CATALOG_REFRESH_MS", "600000".into())]).await;
    let pipeline = Pipeline::start_on(stack, true).await;
    for table in ["stores", "products", "suppliers"] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), 100)"
        ))
        .execute(&pipeline.stack.pool)
        .await
        .unwrap();
    }
    let admin = pipeline.admin();
    let post = async |path: &str, body: Value| {
        let response = pipeline
            .client
            .post(format!("{}{path}", pipeline.ingest))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let (status, store) = post("/v1/stores", json!({"code": "NEW-1", "name": "New store"})).await;
    assert_eq!(status, StatusCode::CREATED, "{store}");
    let (status, product) = post(
        "/v1/products",
        json!({"sku": "NEW-SKU", "name": "New product", "unit": "pc"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{product}");
    let (status, supplier) = post("/v1/suppliers", json!({"name": "New supplier"})).await;
    assert_eq!(status, StatusCode::CREATED, "{supplier}");
    let (store, product) = (
        store["id"].as_i64().unwrap(),
        product["id"].as_i64().unwrap(),
    );

    let (status, accepted) = post(
        "/v1/movements?wait=5s",
        json!({"movement_id": uuid::Uuid::new_v4(), "store_id": store, "sku": "NEW-SKU", "kind": "stock_in",
               "quantity": 12, "occurred_at": chrono::Utc::now(), "supplier_id": supplier["id"], "unit_cost_paise": 2_500}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    assert_eq!(accepted["status"], "applied");
    let token = accepted["consistency_token"].as_str().unwrap();
    let item = pipeline
        .read(
            &format!("/v1/stores/{store}/inventory/{product}?consistency_token={token}"),
            &admin,
        )
        .await;
    assert_eq!(item["quantity"], 12, "{item}");

    // Ids that exist nowhere are still refused, after the look-up.
    let (status, problem) = post(
        "/v1/movements",
        json!({"movement_id": uuid::Uuid::new_v4(), "store_id": 9_999, "product_id": product, "kind": "stock_in",
               "quantity": 1, "occurred_at": chrono::Utc::now(), "supplier_id": supplier["id"], "unit_cost_paise": 2_500}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "store_id");
    let (status, _, problem) = pipeline
        .get_from(&pipeline.query, "/v1/stores/9999/inventory", &admin, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    pipeline.stack.cleanup().await;
}
