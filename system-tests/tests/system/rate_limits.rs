//! Rate limits behind a load balancer: two query-api instances draw on one budget per
//! subject, kept in Redis, and every answer tells the client where it stands
//! (`RateLimit-Policy`, `RateLimit`). With Redis away each instance falls back to budgets
//! of its own, and `/readyz` says so.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::Value;
use system_tests::Pipeline;

const BURST: u32 = 6;

/// A burst of `BURST` that refills at one request a second.
fn limits(redis_url: Option<&str>) -> Vec<(&str, &str)> {
    let mut settings = vec![
        ("RATE_LIMIT_SUBJECT_PER_SECOND", "1"),
        ("RATE_LIMIT_SUBJECT_BURST", "6"),
    ];
    if let Some(url) = redis_url {
        settings.push(("REDIS_URL", url));
    }
    settings
}

/// Sends `count` requests round-robin over `instances` as one subject; how many were served,
/// the seconds it took (the budget refills one a second meanwhile) and the answers' headers.
async fn spend(
    pipeline: &Pipeline,
    instances: &[String],
    count: usize,
) -> (u32, u64, Vec<reqwest::header::HeaderMap>) {
    let token = pipeline.admin();
    let started = Instant::now();
    let mut served = 0;
    let mut answers = Vec::new();
    for round in 0..count {
        let base = &instances[round % instances.len()];
        let (status, headers, body) = pipeline.get_from(base, "/v1/stores", &token, &[]).await;
        match status {
            StatusCode::OK => served += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(headers.contains_key("retry-after"), "{headers:?}");
            }
            other => panic!("{other}: {body}"),
        }
        answers.push(headers);
    }
    (served, started.elapsed().as_secs(), answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_budget_per_subject_and_say_what_is_left() {
    let mut pipeline = Pipeline::start(false).await;
    let one = pipeline.another_query_api(&limits(None)).await;
    let two = pipeline.another_query_api(&limits(None)).await;

    let (served, seconds, answers) = spend(&pipeline, &[one.clone(), two], 12).await;
    assert!(
        served >= BURST && served <= BURST + seconds as u32,
        "{served} served in {seconds} s by two instances with a shared burst of {BURST}"
    );
    let header =
        |answer: &reqwest::header::HeaderMap, name: &str| answer[name].to_str().unwrap().to_owned();
    assert_eq!(
        header(&answers[0], "ratelimit-policy"),
        "\"subject\";q=6;w=6"
    );
    assert_eq!(header(&answers[0], "ratelimit"), "\"subject\";r=5;t=1");
    assert_eq!(header(&answers[1], "ratelimit"), "\"subject\";r=4;t=2");
    let last = answers.last().unwrap();
    assert!(
        header(last, "ratelimit").starts_with("\"subject\";r=0;"),
        "{last:?}"
    );

    let ready: Value = reqwest::get(format!("{one}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["rate_limits"], "ok", "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_instance_limits_on_its_own_and_readyz_says_so() {
    let mut pipeline = Pipeline::start(false).await;
    // Nothing listens on port 9 of loopback: Redis is away for these two.
    let away = Some("redis://127.0.0.1:9/0");
    let one = pipeline.another_query_api(&limits(away)).await;
    let two = pipeline.another_query_api(&limits(away)).await;

    let (served, seconds, _) = spend(&pipeline, &[one.clone(), two], 2 * BURST as usize + 2).await;
    assert!(
        served >= 2 * BURST && served <= 2 * (BURST + seconds as u32),
        "{served} served in {seconds} s by two instances with a burst of {BURST} each"
    );
    let ready: Value = reqwest::get(format!("{one}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    let check = ready["checks"]["rate_limits"].as_str().unwrap_or_default();
    assert!(
        check.starts_with("degraded: budgets per instance"),
        "{ready}"
    );
}
