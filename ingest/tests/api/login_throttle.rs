//! Login throttling: failed logins slow the guesser but never lock the user out, behind a
//! trusted proxy each client is its own, and guesses spread over two instances count as
//! one run (the throttle lives in Redis).

use crate::common::{add_user, login, start};
use serde_json::json;
use test_kit::TestStack;

/// The user the login-throttling tests guess at: `victim`, password `victim-password-123`.
async fn add_victim(stack: &TestStack) {
    add_user(
        stack,
        "victim",
        "victim-password-123",
        "manager",
        &[1],
        false,
    )
    .await;
}

#[tokio::test]
async fn failed_logins_slow_the_guesser_but_never_lock_the_user_out() {
    let stack = TestStack::start().await;
    add_victim(&stack).await;
    let app = start(&stack).await;
    // The same ingest reached from other loopback addresses: other devices.
    let from = |last: u8| app.reached_from(last);
    let right = json!({"username": "victim", "password": "victim-password-123"});
    let wrong = |n: u32| json!({"username": "victim", "password": format!("guess-{n}")});
    // Successful logins are never held back (many devices may share a user).
    for _ in 0..8 {
        let (status, _, body) = login(&app, right.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    for attempt in 1..=5 {
        let (status, _, _) = login(&app, wrong(attempt)).await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    // The guessing address is locked for this user, even with the right password…
    let (status, headers, body) = login(&app, right.clone()).await;
    assert_eq!(status, 429, "{body}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    // …but not for another username, and the user's own device elsewhere logs in.
    let (status, _, _) = login(
        &app,
        json!({"username": "other", "password": "whatever-password"}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, body) = login(&from(2), right.clone()).await;
    assert_eq!(status, 200, "another address is not locked out: {body}");

    // Guesses spread over many addresses: after 50 failures the username is under guard.
    // Addresses that have been failing are refused; one that has not still gets in.
    for last in 10..20 {
        let device = from(last);
        for attempt in 1..=5 {
            let (status, _, _) = login(&device, wrong(attempt)).await;
            assert!(status == 401 || status == 429, "{status}");
        }
    }
    let failing = from(30);
    let (status, _, _) = login(&failing, wrong(99)).await;
    assert_eq!(status, 401, "a fresh address's first guess is heard");
    let (status, _, body) = login(&failing, right.clone()).await;
    assert_eq!(
        status, 429,
        "a failing address is refused under guard: {body}"
    );
    let (status, _, body) = login(&from(31), right).await;
    assert_eq!(status, 200, "an address that has not been failing: {body}");

    // Throttled: the first locked try; the last spreading address's four tries after its
    // first guess (heard: it was not failing yet, though the 50th failure had put the
    // username under guard); the failing address's right password.
    let metrics = test_kit::get_text(&app.client, &format!("{}/metrics", app.base)).await;
    assert!(
        metrics.contains("bazaar_logins_total{outcome=\"throttled\",service=\"ingest\"} 6"),
        "{metrics}"
    );
    stack.cleanup().await;
}

/// Logs in as `victim` claiming to be `client` in `X-Forwarded-For`: the status.
async fn login_forwarded_for(app: &crate::common::Running, client: &str, password: &str) -> u16 {
    app.client
        .post(format!("{}/v1/auth/token", app.base))
        .header("x-forwarded-for", client)
        .json(&json!({"username": "victim", "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_its_own_and_elsewhere_the_header_is_ignored() {
    for trusted in [true, false] {
        let proxies = if trusted { "127.0.0.0/8" } else { "" };
        let stack = TestStack::start_with(&[("TRUSTED_PROXIES", proxies.into())]).await;
        add_victim(&stack).await;
        let app = start(&stack).await;
        for attempt in 0..5 {
            let status =
                login_forwarded_for(&app, "203.0.113.7", &format!("guess-{attempt}")).await;
            assert_eq!(status, 401);
        }
        let guesser = login_forwarded_for(&app, "203.0.113.7", "victim-password-123").await;
        let other = login_forwarded_for(&app, "203.0.113.8", "victim-password-123").await;
        if trusted {
            // The proxy's clients are told apart: only the guesser is locked.
            assert_eq!((guesser, other), (429, 200));
        } else {
            // A header anyone can send changes nothing: the connection's address is locked.
            assert_eq!((guesser, other), (429, 429));
        }
        stack.cleanup().await;
    }
}

/// Behind a load balancer, guesses spread over two instances count as one run of
/// failures (the throttle lives in Redis): the guesser is locked out on both, the victim's
/// own device on another address is not.
#[tokio::test]
async fn guesses_spread_over_two_instances_lock_the_guesser_on_both_and_not_the_victim() {
    let stack = TestStack::start_with(&[("TRUSTED_PROXIES", "127.0.0.0/8".into())]).await;
    add_victim(&stack).await;
    let (one, two) = (start(&stack).await, start(&stack).await);
    // Five failures of the pair lock it; each instance sees only some of them.
    for attempt in 0..5 {
        let app = if attempt % 2 == 0 { &one } else { &two };
        let status = login_forwarded_for(app, "203.0.113.7", &format!("guess-{attempt}")).await;
        assert_eq!(status, 401, "guess {attempt}");
    }
    for app in [&one, &two] {
        let guesser = login_forwarded_for(app, "203.0.113.7", "victim-password-123").await;
        let victim = login_forwarded_for(app, "203.0.113.8", "victim-password-123").await;
        assert_eq!((guesser, victim), (429, 200));
    }
    stack.cleanup().await;
}
