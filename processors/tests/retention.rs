//! A position Kafka no longer has: records removed (as retention removes them) before the
//! processors read them. That partition halts and says so — log, metric, `/readyz` — and
//! never jumps ahead on its own; the other partitions go on.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use schemas::{AvroRecord, StoreId};
use test_kit::*;
use test_kit::{TestStack, get_text};

/// Produces `movements` and returns the partition each store's went to.
async fn produce_located(
    stack: &TestStack,
    movements: &[schemas::StockMovement],
) -> std::collections::HashMap<StoreId, i32> {
    let producer = producer(stack);
    let topic = stack.settings.topics().movements();
    let mut partitions = std::collections::HashMap::new();
    for movement in movements {
        let key = schemas::topics::store_key(movement.store_id);
        let payload = movement.encode().unwrap();
        let delivery = producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)
            .unwrap();
        partitions.insert(movement.store_id, delivery.partition);
    }
    partitions
}

#[tokio::test]
async fn a_partition_whose_position_was_removed_by_retention_halts_and_the_others_go_on() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let movements = movements(200, 11);
    let partitions = produce_located(&stack, &movements).await;
    let gone = partitions[&StoreId(1)];
    let other = partitions[&StoreId(2)];
    assert_ne!(gone, other, "the two stores' movements share a partition");

    // Retention removes store 1's first five records before any processor read them.
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &stack.settings.kafka.brokers)
        .create()
        .unwrap();
    let topic = stack.settings.topics().movements();
    let mut removed = TopicPartitionList::new();
    removed
        .add_partition_offset(&topic, gone, Offset::Offset(5))
        .unwrap();
    admin
        .delete_records(&removed, &AdminOptions::new())
        .await
        .unwrap();

    let app = processors::App::build(stack.processors_settings())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let _stop = test_kit::background(|stopped| app.run_until_stopped(stopped));

    // The other store's movements are all processed.
    let others = movements
        .iter()
        .filter(|movement| movement.store_id == StoreId(2))
        .count() as i64;
    wait_committed(&stack, others, Duration::from_secs(60)).await;

    // The halted partition is named by /readyz and the metric, and its position stays.
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let readiness = loop {
        let readiness: serde_json::Value = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if readiness["checks"]["partitions"] != "ok" {
            break readiness;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never said the partition halted: {readiness}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let said = readiness["checks"]["partitions"].as_str().unwrap();
    assert!(
        said.starts_with("degraded: halted")
            && said.contains(&format!("partition {gone}: the stored position 0 is gone"))
            && said.contains("5 movements were removed"),
        "{readiness}"
    );
    let metrics = get_text(&client, &format!("{base}/metrics")).await;
    assert!(
        metrics.contains(&format!(
            "bazaar_processor_partition_halted{{partition=\"{gone}\",service=\"processors\"}} 1"
        )),
        "{metrics}"
    );

    // The group's lag, measured from Postgres against the end of every partition, shows
    // the halted partition's movements as waiting and the other partition as caught up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let expected = partitions
        .values()
        .filter(|partition| **partition == gone)
        .count();
    assert!(expected > 0);
    loop {
        let metrics = get_text(&client, &format!("{base}/metrics")).await;
        let lag_of = |partition: i32| {
            metrics
                .lines()
                .find(|line| {
                    line.starts_with(&format!(
                        "bazaar_processor_group_lag{{partition=\"{partition}\","
                    ))
                })
                .and_then(|line| line.rsplit(' ').next()?.parse::<i64>().ok())
        };
        let gone_movements = movements
            .iter()
            .filter(|movement| movement.store_id == StoreId(1))
            .count() as i64;
        if lag_of(gone) == Some(gone_movements) && lag_of(other) == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "group lag of {gone} and {other}: {:?} {:?}",
            lag_of(gone),
            lag_of(other)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let position: i64 = sqlx::query_scalar(
        "SELECT next_offset FROM processor_offsets WHERE consumer_group = $1 AND partition = $2",
    )
    .bind(&stack.settings.kafka.consumer_group)
    .bind(gone)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        position, 0,
        "the halted partition never jumps ahead on its own"
    );
    let store_1_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM movements WHERE store_id = 1")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(store_1_rows, 0);
    stack.cleanup().await;
}
