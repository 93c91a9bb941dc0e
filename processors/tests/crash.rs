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
    let last = kill_again_and_again(&stack, producing, "crash-test-processor", 6).await;
    wait_committed(&stack, movements.len() as i64, Duration::from_secs(120)).await;
    assert_exactly_once(&stack, &movements).await;
    drop(last);
}

/// Starts the processor `times` times while `producing` runs, each killed (SIGKILL) at a
/// random moment once it commits, asserts that at least three kills landed mid-stream,
/// and returns the processor started last, once the stream is produced.
/// Restarted under the same transactional id (as a StatefulSet's pod is): each start
/// fences the open output transaction of the processor killed before it.
async fn kill_again_and_again(
    stack: &TestStack,
    producing: Stream,
    transactional_id: &str,
    times: usize,
) -> ChildService {
    let same_id = [
        ENV[0],
        ENV[1],
        ("PROCESSOR_TRANSACTIONAL_ID", transactional_id),
    ];
    let mut random = seed();
    let mut killed_mid_stream = 0;
    for _ in 0..times {
        let before = committed(stack).await;
        let child = ChildService::start_with(BINARY, stack, &same_id);
        // Kill only once this processor is committing: between or inside its batches.
        if progress_beyond(stack, before, Duration::from_secs(30)).await {
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
    ChildService::start_with(BINARY, stack, &same_id)
}

/// `bazaar_processor_republished_total` of a running processor.
async fn republished_by(processor: &ChildService) -> f64 {
    let url = format!("http://127.0.0.1:{}/metrics", processor.port);
    get_text(&reqwest::Client::new(), &url)
        .await
        .lines()
        .filter(|line| line.starts_with("bazaar_processor_republished_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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

    wait_caught_up(&stack, Duration::from_secs(30)).await;
    drop((first, fourth));
}

/// Transfers are the one flow across partitions: the source's processor writes the
/// destination's transfer-in onto the movements topic in the transaction that publishes
/// the transfer-out. Killed again and again while transfer-outs flow — between a
/// transfer-out's commit and its transaction among other points — the destination gets
/// exactly one transfer-in per applied transfer-out: once on the topic for `read_committed`
/// consumers, once in its ledger, stock conserved (what left the source is in transit),
/// and the output topics are the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_transfer_outs_and_their_transfer_ins_each_arrives_exactly_once() {
    use schemas::{MovementKind, ProductId, StockMovement, StoreId, SupplierId, WireFormat};
    const TRANSFERS: usize = 12_000;
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let stock_in = StockMovement {
        supplier_id: Some(SupplierId(SUPPLIER)),
        unit_cost_paise: Some(100),
        ..StockMovement::new(
            uuid::Uuid::from_u128(1),
            StoreId(1),
            ProductId(1),
            "SKU-1",
            MovementKind::StockIn,
            1_000_000,
            at(1_800_000_000),
            "tester",
        )
    };
    let mut movements = vec![stock_in];
    // Every tenth reuses the transfer id of the one before it (in its batch or the batch in
    // flight): rejected transfer_exists.
    let transfer_of = |n: u128| 1_000_000 + if n % 10 == 9 { n - 1 } else { n };
    movements.extend((0..TRANSFERS as u128).map(|n| StockMovement {
        transfer_id: Some(uuid::Uuid::from_u128(transfer_of(n))),
        to_store_id: Some(StoreId(2)),
        ..StockMovement::new(
            uuid::Uuid::from_u128(2 + n),
            StoreId(1),
            ProductId(1),
            "SKU-1",
            MovementKind::TransferOut,
            1 + (n % 3) as i64,
            at(1_800_000_001 + n as i64),
            "tester",
        )
    }));
    let applied = TRANSFERS - TRANSFERS / 10;
    let sent: i64 = movements[1..]
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 10 != 9)
        .map(|(_, m)| m.quantity)
        .sum();
    let producing = stream(&stack, movements.clone(), 400, Duration::from_secs(1));
    let same_id = [
        ENV[0],
        ENV[1],
        ("PROCESSOR_TRANSACTIONAL_ID", "transfer-crash-processor"),
    ];
    // Each processor is killed the moment its first commit shows in Postgres: before that
    // batch's transaction — its transfer-ins — can be committed to Kafka.
    let mut killed_after_a_commit = 0;
    for _ in 0..5 {
        let before = committed(&stack).await;
        let child = ChildService::start_with(BINARY, &stack, &same_id);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while committed(&stack).await <= before && tokio::time::Instant::now() < deadline {}
        child.kill();
        if !producing.is_finished() {
            killed_after_a_commit += 1;
        }
    }
    assert!(
        killed_after_a_commit >= 3,
        "only {killed_after_a_commit} kills landed while transfer-outs flowed"
    );
    producing.finish().await;
    let last = ChildService::start_with(BINARY, &stack, &same_id);
    // The input topic holds the movements and one transfer-in per transfer-out.
    let inputs = (movements.len() + applied) as i64;
    wait_committed(&stack, inputs, Duration::from_secs(120)).await;
    wait_published(&stack, Duration::from_secs(120)).await;

    let (notices, repeated, outs, reused, in_transit, left): (i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(
        "SELECT count(*) FILTER (WHERE kind = 'transfer_in' AND status = 'applied' AND store_id = 2), \
                count(*) FILTER (WHERE kind = 'transfer_in' AND status <> 'applied'), \
                count(*) FILTER (WHERE kind = 'transfer_out' AND status = 'applied'), \
                count(*) FILTER (WHERE kind = 'transfer_out' AND reject_reason = 'transfer_exists'), \
                (SELECT sum(quantity_sent)::int8 FROM transfers WHERE quantity_received IS NULL), \
                (SELECT quantity FROM balances WHERE store_id = 1 AND product_id = 1) \
         FROM movements",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        (notices, repeated, outs, reused),
        (applied as i64, 0, applied as i64, (TRANSFERS / 10) as i64),
        "one applied transfer-in per applied transfer-out, no repeat of any; a reused transfer id refused"
    );
    assert_eq!(
        (in_transit, left),
        (sent, 1_000_000 - sent),
        "stock conserved"
    );
    // The last kill left committed transfer-outs unpublished: the last processor
    // published them, and their transfer-ins, again from the ledger.
    let republished = republished_by(&last).await;
    assert!(
        republished > 0.0,
        "the last kill did not land between a batch's commit and its transaction"
    );
    let topic = stack.settings.topics().movements();
    let records =
        read_committed_topic(&stack, &topic, inputs as usize, Duration::from_secs(60)).await;
    let mut announced: Vec<uuid::Uuid> = records
        .iter()
        .map(|(_, _, payload)| StockMovement::decode_with(&stack.schema_ids, payload).unwrap())
        .filter(|movement| movement.kind == MovementKind::TransferIn)
        .map(|movement| movement.movement_id)
        .collect();
    assert_eq!(records.len() as i64, inputs, "nothing else on the topic");
    announced.sort_unstable();
    announced.dedup();
    assert_eq!(
        announced.len(),
        applied,
        "each transfer-in once on the topic"
    );
    assert_outputs_are_the_ledger(&stack).await;
    // The transfer-ins' commit markers are stepped over: no lag is left behind them.
    wait_caught_up(&stack, Duration::from_secs(30)).await;
    drop(last);
}

/// Waits (bounded) until lag is zero: the stored position of every partition is the end
/// of its log, transaction markers included.
async fn wait_caught_up(stack: &TestStack, within: Duration) {
    let reader: rdkafka::consumer::BaseConsumer = service_kit::kafka::consumer_config(
        &stack.settings.kafka,
        "test-watermarks",
        "test-watermarks",
    )
    .create()
    .unwrap();
    let topic = stack.settings.topics().movements();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut behind = Vec::new();
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
            if stored.unwrap_or(0) != end {
                behind.push((partition, stored, end));
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "(partition, stored, end) not caught up: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
