//! The processor is killed abruptly (SIGKILL: no graceful path) many times at random
//! points while movements flow, and restarted. At the end every record of the input topic
//! has exactly one ledger row, every balance, rollup and alert equals the model, and the
//! output topics are exactly the ledger: each row once on the ledger topic, no entry for
//! a decision never committed, the last balance of each key equal to Postgres. Then the
//! same with two processors sharing the partitions and one of them killed.

use std::time::Duration;

use test_kit::*;
use test_kit::{ChildService, TestStack};

const BINARY: &str = env!("CARGO_BIN_EXE_processors");
/// Small batches and a short session: many batches to interrupt, quick rebalances.
const ENV: [(&str, &str); 2] = [
    ("PROCESSOR_BATCH_MAX", "400"),
    ("KAFKA_SESSION_TIMEOUT_MS", "3000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_again_and_again_the_processor_writes_every_movement_exactly_once() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let movements = movements(20_000, 42);
    // About 40 s of traffic: each restarted processor rejoins the group once the dead
    // member's 3 s session has timed out (~3.5 s here), commits, and is killed mid-stream.
    let producing = stream(&stack, movements.clone(), 500, Duration::from_secs(1));
    let mut random = seed();
    let mut killed_mid_stream = 0;
    // Restarted under the same transactional id (as a StatefulSet's pod is): each start
    // fences the open output transaction of the processor killed before it.
    let same_id = [
        ENV[0],
        ENV[1],
        ("PROCESSOR_TRANSACTIONAL_ID", "crash-test-processor"),
    ];
    for _ in 0..6 {
        let before = committed(&stack).await;
        let child = ChildService::start_with(BINARY, &stack, &same_id);
        // Kill only once this processor is committing: between or inside its batches.
        if progress_beyond(&stack, before, Duration::from_secs(30)).await {
            tokio::time::sleep(random_pause(&mut random, 50, 1_500)).await;
            if !producing.is_finished() {
                killed_mid_stream += 1;
            }
        }
        child.kill();
    }
    assert!(
        killed_mid_stream >= 3,
        "only {killed_mid_stream} kills landed while the processor was committing a stream"
    );
    producing.finish().await;
    let last = ChildService::start_with(BINARY, &stack, &same_id);
    wait_committed(&stack, movements.len() as i64, Duration::from_secs(120)).await;
    assert_exactly_once(&stack, &movements).await;
    drop(last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_processors_sharing_the_partitions_one_killed_again_and_again() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let movements = movements(15_000, 43);
    let survivor = ChildService::start_with(BINARY, &stack, &ENV);
    let producing = stream(&stack, movements.clone(), 1_000, Duration::from_millis(150));
    let mut random = seed();
    for _ in 0..5 {
        let victim = ChildService::start_with(BINARY, &stack, &ENV);
        tokio::time::sleep(random_pause(&mut random, 500, 2_500)).await;
        victim.kill();
    }
    producing.finish().await;
    wait_committed(&stack, movements.len() as i64, Duration::from_secs(120)).await;
    assert_exactly_once(&stack, &movements).await;
    drop(survivor);
}

/// Kafka's group membership on the real broker (cooperative-sticky), with the default
/// session timeout: three processors share the partitions, a fourth joins mid-stream and
/// one of the first three is SIGKILLed (its partitions move when its session expires).
/// Every movement is written exactly once, and the group catches up to the end of every
/// partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_and_die_mid_stream_and_the_group_catches_up_exactly() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let movements = movements(12_000, 44);
    let small_batches = [ENV[0]];
    let first: Vec<ChildService> = (0..3)
        .map(|_| ChildService::start_with(BINARY, &stack, &small_batches))
        .collect();
    let producing = stream(&stack, movements.clone(), 500, Duration::from_millis(250));
    assert!(progress_beyond(&stack, 0, Duration::from_secs(30)).await);
    let fourth = ChildService::start_with(BINARY, &stack, &small_batches);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut first = first.into_iter();
    first.next().unwrap().kill();
    assert!(!producing.is_finished(), "the kill landed mid-stream");
    producing.finish().await;
    wait_committed(&stack, movements.len() as i64, Duration::from_secs(120)).await;
    assert_exactly_once(&stack, &movements).await;

    // Lag zero: the stored position of every partition is the end of its log.
    let reader: rdkafka::consumer::BaseConsumer = service_kit::kafka::consumer_config(
        &stack.settings.kafka,
        "test-watermarks",
        "test-watermarks",
    )
    .create()
    .unwrap();
    let topic = stack.settings.topics().movements();
    for partition in 0..test_kit::TEST_PARTITIONS {
        let (_, end) = rdkafka::consumer::Consumer::fetch_watermarks(
            &reader,
            &topic,
            partition,
            Duration::from_secs(10),
        )
        .unwrap();
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT next_offset FROM processor_offsets \
             WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
        )
        .bind(&stack.settings.kafka.consumer_group)
        .bind(&topic)
        .bind(partition)
        .fetch_optional(&stack.pool)
        .await
        .unwrap();
        assert_eq!(stored.unwrap_or(0), end, "partition {partition} caught up");
    }
    drop((first, fourth));
}
