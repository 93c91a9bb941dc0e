//! Shared rate limits against the local stack's Redis: two instances draw on one budget a
//! share at a time — one Redis call per share, not per request — and together never serve
//! more than the budget allows.

use std::time::Instant;

use prometheus::Registry;
use service_kit::ratelimit::{Limit, RateLimits};
use service_kit::redis::Redis;
use test_kit::TestStack;

/// 500 requests a second, a burst of 1,000: shares of 10.
const PER_SECOND: u32 = 500;
const BURST: u32 = 1_000;

fn instance(redis: &Redis) -> (std::sync::Arc<RateLimits>, Registry) {
    let registry = Registry::new();
    let limit = Limit::new(PER_SECOND, BURST).unwrap();
    let limits = RateLimits::new(limit, limit, Some(redis.clone()), &registry).unwrap();
    (limits, registry)
}

fn redis_calls(registry: &Registry) -> u64 {
    registry
        .gather()
        .iter()
        .find(|family| family.name() == "http_server_rate_limit_redis_calls_total")
        .map(|family| family.get_metric()[0].get_counter().get_value() as u64)
        .unwrap()
}

#[tokio::test]
async fn two_instances_spend_one_budget_a_share_at_a_time_and_never_more_than_it() {
    let stack = TestStack::start().await;
    let redis = Redis::new(&stack.settings.redis).unwrap();
    let (one, one_registry) = instance(&redis);
    let (two, two_registry) = instance(&redis);
    let share = Limit::new(PER_SECOND, BURST).unwrap().share();
    assert_eq!(share, 10);

    // The first answer counts what Redis has left and what this instance holds.
    let started = Instant::now();
    let first = one.check_subject("till-1").await;
    assert!(first.allowed);
    assert_eq!(first.remaining, BURST - 1);

    // Well inside the burst, alternating: every request served, one call per share.
    let mut served = 1;
    for request in 1..900 {
        let instance = if request % 2 == 0 { &one } else { &two };
        assert!(instance.check_subject("till-1").await.allowed);
        served += 1;
    }
    let calls = redis_calls(&one_registry) + redis_calls(&two_registry);
    assert_eq!(calls, 900 / u64::from(share), "one Redis call per share");

    // Past the burst: refused, and never more served than the budget and its refill,
    // nor fewer than the burst less what the other instance may hold.
    let mut refused = 0;
    for request in 0..2_000 {
        let instance = if request % 2 == 0 { &one } else { &two };
        let decision = instance.check_subject("till-1").await;
        if decision.allowed {
            served += 1;
        } else {
            refused += 1;
            assert!(!decision.retry_after.is_zero());
        }
    }
    let refill = (started.elapsed().as_secs_f64() * f64::from(PER_SECOND)).ceil() as u32;
    assert!(refused > 0);
    assert!(
        served >= BURST - 2 * (share - 1) && served <= BURST + refill,
        "{served} served, the budget {BURST} and {refill} refilled meanwhile"
    );
    // Another subject's budget is untouched.
    assert_eq!(two.check_subject("till-2").await.remaining, BURST - 1);
}

#[tokio::test]
async fn concurrent_requests_on_an_empty_share_take_one_share_between_them() {
    let stack = TestStack::start().await;
    let redis = Redis::new(&stack.settings.redis).unwrap();
    // A budget of a million a second: shares of 20,000, fifty in the burst.
    let limit = Limit::new(1_000_000, 1_000_000).unwrap();
    let limits = RateLimits::new(limit, limit, Some(redis), &Registry::new()).unwrap();
    // Two hundred requests at once find no share: one takes it, the others one each,
    // never a share each (which would take four times the burst and refuse the rest).
    let decisions =
        futures::future::join_all((0..200).map(|_| limits.check_subject("till-3"))).await;
    assert!(decisions.iter().all(|decision| decision.allowed));
    let held = decisions.iter().map(|decision| decision.remaining).max();
    assert!(held >= Some(1_000_000 - 20_000 - 200), "{held:?}");
}

/// 128 requests at a time on two instances, far under the limit: none is refused, however
/// the requests interleave with the shares' grants (broker_loss once got a `429` under a
/// million a second: a request that read the clock before another's grant came in was
/// "refused until" the grant's moment).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_requests_at_once_far_under_the_limit_are_never_refused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let stack = TestStack::start().await;
    let redis = Redis::new(&stack.settings.redis).unwrap();
    let limit = Limit::new(1_000_000, 1_000_000).unwrap();
    let instances: Vec<_> = (0..2)
        .map(|_| RateLimits::new(limit, limit, Some(redis.clone()), &Registry::new()).unwrap())
        .collect();
    let refused = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..128 {
        let (limits, refused) = (instances[client % 2].clone(), refused.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..500 {
                if !limits.check_subject("till").await.allowed {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "refused far under the limit"
    );
}
