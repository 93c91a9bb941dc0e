//! The processors' lag is visible while no processor runs: ingest measures the group's
//! lag on every partition (the topic's end against the offsets the group committed in
//! Postgres) and exports it as `bazaar_processor_group_lag`, the series the
//! `BazaarGroupLagGrowing` and `BazaarPartitionStuck` alerts read.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use test_kit::{TEST_PARTITIONS, TestStack, background, get_text};

/// `bazaar_processor_group_lag` per partition, as ingest's `/metrics` says.
async fn group_lag(client: &reqwest::Client, ingest: &str) -> Vec<Option<i64>> {
    let metrics = get_text(client, &format!("{ingest}/metrics")).await;
    (0..TEST_PARTITIONS)
        .map(|partition| {
            let series = format!("bazaar_processor_group_lag{{partition=\"{partition}\",");
            metrics
                .lines()
                .find(|line| line.starts_with(&series))
                .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .collect()
}

async fn until(
    client: &reqwest::Client,
    ingest: &str,
    what: &str,
    done: impl Fn(&[Option<i64>]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lag = group_lag(client, ingest).await;
        if done(&lag) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the group lag ingest exports is {lag:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One record (not a movement: the processors send it to the DLQ) on every partition.
async fn one_record_per_partition(stack: &TestStack) {
    let producer: FutureProducer =
        service_kit::kafka::producer_config(&stack.settings.kafka, "test")
            .create()
            .unwrap();
    let topic = stack.settings.topics().movements();
    for partition in 0..TEST_PARTITIONS {
        producer
            .send(
                FutureRecord::<str, [u8]>::to(&topic)
                    .partition(partition)
                    .key("lag")
                    .payload(b"not a movement"),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_whose_only_processor_stopped_shows_lag_on_every_partition() {
    let stack = TestStack::start().await;
    let ingest_app = ingest::App::build(stack.ingest_settings()).await.unwrap();
    let ingest = format!("http://127.0.0.1:{}", ingest_app.port());
    let _ingest = background(|stopped| ingest_app.run_until_stopped(stopped));
    let client = reqwest::Client::new();

    // The only processor takes everything: no lag anywhere.
    let processor = processors::App::build(stack.processors_settings())
        .await
        .unwrap();
    let processor = background(|stopped| processor.run_until_stopped(stopped));
    one_record_per_partition(&stack).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let committed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM processor_offsets WHERE next_offset = 1")
                .fetch_one(&stack.pool)
                .await
                .unwrap();
        if committed == i64::from(TEST_PARTITIONS) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the processor never caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until(&client, &ingest, "caught up", |lag| {
        lag.iter().all(|lag| *lag == Some(0))
    })
    .await;

    // It stops; what arrives next waits on every partition, and ingest says so.
    processor.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    one_record_per_partition(&stack).await;
    until(&client, &ingest, "lag on every partition", |lag| {
        lag.iter().all(|lag| *lag == Some(1))
    })
    .await;
}
