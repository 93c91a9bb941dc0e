//! How far the processors have got: offsets committed in Postgres, outputs published, and
//! the output topics read as `read_committed` consumers read them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use uuid::Uuid;

use crate::*;

/// How many records of the input topic the group has committed.
pub async fn committed(stack: &TestStack) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::int8 FROM processor_offsets WHERE consumer_group = $1",
    )
    .bind(&stack.settings.kafka.consumer_group)
    .fetch_one(&stack.pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

/// Waits until the committed offsets cover `records` records of the input topic.
pub async fn wait_committed(stack: &TestStack, records: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let committed: Option<i64> = sqlx::query_scalar(
            "SELECT sum(next_offset)::int8 FROM processor_offsets WHERE consumer_group = $1",
        )
        .bind(&stack.settings.kafka.consumer_group)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        if committed.unwrap_or(0) >= records {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {committed:?} of {records} records committed within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the output topics are published up to the ledger: for every partition,
/// the group's offset committed in Kafka (with the output transactions) has reached the
/// offset stored in Postgres.
pub async fn wait_published(stack: &TestStack, within: Duration) {
    use rdkafka::consumer::BaseConsumer;
    let settings = &stack.settings.kafka;
    let topic = stack.settings.topics().movements();
    let reader: BaseConsumer =
        service_kit::kafka::consumer_config(settings, "test-published", &settings.consumer_group)
            .create()
            .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..crate::TEST_PARTITIONS {
        list.add_partition(&topic, partition);
    }
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let stored: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM processor_offsets \
             WHERE consumer_group = $1 AND topic = $2",
        )
        .bind(&settings.consumer_group)
        .bind(&topic)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
        let published = reader_committed(&reader, &list);
        let behind: Vec<(i32, i64, Option<i64>)> = stored
            .iter()
            .map(|(partition, next)| (*partition, *next, published.get(partition).copied()))
            .filter(|(_, next, published)| published.is_none_or(|published| published < *next))
            .filter(|(_, next, _)| *next > 0)
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outputs not published within {within:?}: (partition, ledger, published) {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn reader_committed(
    reader: &rdkafka::consumer::BaseConsumer,
    list: &rdkafka::TopicPartitionList,
) -> HashMap<i32, i64> {
    use rdkafka::consumer::Consumer;
    let committed = reader
        .committed_offsets(list.clone(), Duration::from_secs(30))
        .unwrap();
    committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            rdkafka::Offset::Offset(offset) => Some((element.partition(), offset)),
            _ => None,
        })
        .collect()
}

/// Every record of `topic` a `read_committed` consumer sees: at least `at_least` of them
/// (waiting up to `within`), then until nothing more arrives for two seconds.
pub async fn read_committed_topic(
    stack: &TestStack,
    topic: &str,
    at_least: usize,
    within: Duration,
) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let settings = &stack.settings.kafka;
    let consumer: StreamConsumer = service_kit::kafka::consumer_config(
        settings,
        "test-reader",
        &format!("{}-reader-{}", settings.consumer_group, Uuid::new_v4()),
    )
    .create()
    .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..crate::TEST_PARTITIONS {
        list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let deadline = tokio::time::Instant::now() + within;
    let mut records = Vec::with_capacity(at_least);
    loop {
        let wait = if records.len() < at_least {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        } else {
            Duration::from_secs(2)
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(message) => {
                let message = message.unwrap();
                records.push((
                    message.partition(),
                    message.key().unwrap_or_default().to_vec(),
                    message.payload().unwrap_or_default().to_vec(),
                ));
            }
            Err(_) if records.len() < at_least => {
                panic!("only {} of {at_least} records on {topic}", records.len())
            }
            Err(_) => return records,
        }
    }
}

/// The output topics are exactly the ledger: every ledger row once on the ledger topic
/// (as `read_committed` consumers see it), with its outcome, and the last balance of
/// every key on the balances topic equal to Postgres.
pub async fn assert_outputs_are_the_ledger(stack: &TestStack) {
    assert_outputs(stack, Replayed::Never).await;
}

/// [`assert_outputs_are_the_ledger`]; after a restore ([`Replayed::AfterRestore`]) a
/// ledger row may be on the topic more than once, each time the same.
pub async fn assert_outputs(stack: &TestStack, replayed: Replayed) {
    use schemas::WireFormat;
    wait_published(stack, Duration::from_secs(60)).await;
    let rows = ledger_rows(&stack.pool).await;
    let topics = stack.settings.topics();
    let entries =
        read_committed_topic(stack, &topics.ledger(), rows.len(), Duration::from_secs(60)).await;
    let mut on_topic: HashMap<(i32, i64), Vec<schemas::LedgerEntry>> = HashMap::new();
    for (_, _, payload) in &entries {
        let entry = schemas::LedgerEntry::decode_with(&stack.schema_ids, payload).unwrap();
        on_topic
            .entry((entry.source_partition, entry.source_offset))
            .or_default()
            .push(entry);
    }
    if replayed == Replayed::Never {
        let repeated = on_topic.values().filter(|found| found.len() > 1).count();
        assert_eq!(
            repeated, 0,
            "ledger rows on the ledger topic more than once"
        );
    }
    assert_eq!(
        on_topic.len(),
        rows.len(),
        "one ledger entry per ledger row, no entry for an uncommitted decision"
    );
    for (movement_id, status, _, balance_after, partition, offset) in &rows {
        let found = on_topic
            .get(&(*partition, *offset))
            .unwrap_or_else(|| panic!("ledger row {partition}/{offset} is not on the topic"));
        for entry in found {
            assert_eq!(entry.movement.movement_id, *movement_id);
            assert_eq!(entry.status.as_str(), status);
            assert_eq!(entry.balance_after, *balance_after);
        }
    }

    let stored: Vec<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT store_id, product_id, quantity, average_unit_cost_paise FROM balances",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let balances =
        read_committed_topic(stack, &topics.balances(), 1, Duration::from_secs(30)).await;
    let mut last: BTreeMap<(i64, i64), (i64, Option<i64>)> = BTreeMap::new();
    for (_, _, payload) in &balances {
        let balance = schemas::Balance::decode_with(&stack.schema_ids, payload).unwrap();
        last.insert(
            (balance.store_id.get(), balance.product_id.get()),
            (balance.quantity, balance.average_unit_cost_paise),
        );
    }
    let stored: BTreeMap<(i64, i64), (i64, Option<i64>)> = stored
        .into_iter()
        .map(|(store, product, quantity, cost)| ((store, product), (quantity, cost)))
        .collect();
    assert_eq!(
        last, stored,
        "the last balance per key on the balances topic"
    );
}

/// Waits (bounded) until the group has committed more than `than`.
pub async fn progress_beyond(stack: &TestStack, than: i64, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if committed(stack).await > than {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
