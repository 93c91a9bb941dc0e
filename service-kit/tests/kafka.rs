//! The Kafka contract against the local broker: movements keyed by store are produced
//! with rdkafka and consumed back through a consumer group that commits offsets by hand.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use schemas::topics::store_key;
use schemas::{AvroRecord, MovementKind, ProductId, StockMovement, StoreId};
use service_kit::kafka;
use test_kit::{TEST_PARTITIONS, TestStack};
use uuid::Uuid;

const STORES: i64 = 8;
const PER_STORE: i64 = 15;

fn movement(store: i64, sequence: i64) -> StockMovement {
    let kind = if sequence == 0 {
        MovementKind::StockIn
    } else {
        MovementKind::Sale
    };
    StockMovement {
        unit_price_paise: Some(1_000),
        // The sequence number rides in the quantity, so order can be checked per store.
        ..StockMovement::new(
            Uuid::new_v4(),
            StoreId(store),
            ProductId(100 + sequence % 3),
            format!("SKU-{}", sequence % 3),
            kind,
            sequence + 1,
            Utc::now(),
            "kafka-test",
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Consumed {
    key: String,
    partition: i32,
    offset: i64,
    bytes: Vec<u8>,
}

/// Consumes `count` records (bounded in time), committing each one's next offset
/// synchronously before taking the next.
async fn consume_and_commit(consumer: &StreamConsumer, topic: &str, count: usize) -> Vec<Consumed> {
    let mut consumed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while consumed.len() < count {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} records arrived within 60 s",
                    consumed.len()
                )
            })
            .expect("a record");
        let mut commit = TopicPartitionList::new();
        commit
            .add_partition_offset(
                topic,
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )
            .unwrap();
        consumer
            .commit(&commit, CommitMode::Sync)
            .expect("offset commit");
        consumed.push(Consumed {
            key: String::from_utf8(message.key().expect("a key").to_vec()).unwrap(),
            partition: message.partition(),
            offset: message.offset(),
            bytes: message.payload().expect("a value").to_vec(),
        });
    }
    consumed
}

fn consumer(stack: &TestStack, topic: &str) -> StreamConsumer {
    let settings = &stack.settings.kafka;
    let consumer: StreamConsumer =
        kafka::consumer_config(settings, "kafka-test", &settings.consumer_group)
            .create()
            .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Leaves the group before closing: closing a consumer that is still subscribed can
/// wait a long time for the broker to complete the group's rebalance.
fn leave(consumer: StreamConsumer) {
    consumer.unsubscribe();
    drop(consumer);
}

#[tokio::test]
async fn movements_keyed_by_store_come_back_in_order_and_offsets_resume_after_a_restart() {
    let stack = TestStack::start().await;
    let topic = stack.settings.topics().movements();
    let producer = kafka::producer(&stack.settings.kafka, "kafka-test").expect("producer");

    // Produce interleaved across stores; enqueue in order, then await every ack.
    let mut sent: HashMap<(i32, i64), (String, Vec<u8>)> = HashMap::new();
    let mut deliveries = Vec::new();
    for sequence in 0..PER_STORE {
        for store in 1..=STORES {
            let bytes = movement(store, sequence).encode().unwrap();
            let key = store_key(StoreId(store));
            let record = FutureRecord::to(&topic).key(&key).payload(&bytes);
            let delivery = producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .expect("enqueue");
            deliveries.push((key.clone(), bytes.clone(), delivery));
        }
    }
    for (key, bytes, delivery) in deliveries {
        let delivered = tokio::time::timeout(Duration::from_secs(30), delivery)
            .await
            .expect("acknowledged within 30 s")
            .expect("delivery future")
            .expect("acknowledged by the broker");
        sent.insert((delivered.partition, delivered.offset), (key, bytes));
    }
    let total = (STORES * PER_STORE) as usize;
    assert_eq!(
        sent.len(),
        total,
        "every record has its own partition and offset"
    );

    // All of a store's records share one partition; the stores spread over several.
    let mut partition_of_store: HashMap<&str, HashSet<i32>> = HashMap::new();
    for ((partition, _), (key, _)) in &sent {
        partition_of_store
            .entry(key.as_str())
            .or_default()
            .insert(*partition);
    }
    assert!(
        partition_of_store
            .values()
            .all(|partitions| partitions.len() == 1)
    );
    let used: HashSet<i32> = partition_of_store.values().flatten().copied().collect();
    assert!(used.len() > 1, "stores spread over partitions: {used:?}");
    assert!(used.iter().all(|partition| *partition < TEST_PARTITIONS));

    // A first consumer takes part of the records, commits, and leaves the group.
    let first_half = total / 2;
    let first = consumer(&stack, &topic);
    let mut consumed = consume_and_commit(&first, &topic, first_half).await;
    leave(first);

    // A second consumer of the same group resumes at the committed offsets: it gets
    // exactly the rest, nothing twice.
    let second = consumer(&stack, &topic);
    consumed.extend(consume_and_commit(&second, &topic, total - first_half).await);
    let extra = tokio::time::timeout(Duration::from_secs(2), second.recv()).await;
    assert!(
        extra.is_err(),
        "no record is delivered twice: {:?}",
        extra.map(|m| m.map(|m| m.offset()))
    );

    let positions: HashSet<(i32, i64)> = consumed.iter().map(|c| (c.partition, c.offset)).collect();
    assert_eq!(positions.len(), total, "each record consumed exactly once");

    // Same bytes and key as produced, at the same position.
    for record in &consumed {
        let (key, bytes) = &sent[&(record.partition, record.offset)];
        assert_eq!(&record.key, key);
        assert_eq!(&record.bytes, bytes);
    }

    // Same order per key: each store's records arrive in the order they were produced.
    let mut by_store: BTreeMap<String, Vec<&Consumed>> = BTreeMap::new();
    for record in &consumed {
        by_store.entry(record.key.clone()).or_default().push(record);
    }
    for (store, mut records) in by_store {
        records.sort_by_key(|record| record.offset);
        let sequence: Vec<i64> = records
            .iter()
            .map(|record| StockMovement::decode(&record.bytes).unwrap().quantity)
            .collect();
        let expected: Vec<i64> = (1..=PER_STORE).collect();
        assert_eq!(sequence, expected, "order of store {store}");
    }

    leave(second);

    // After everyone left, the group's committed offset of every partition is one past
    // its last record (asked by a client that is not a member).
    let settings = &stack.settings.kafka;
    let observer: BaseConsumer =
        kafka::consumer_config(settings, "kafka-test-observer", &settings.consumer_group)
            .create()
            .expect("observer");
    let mut partitions = TopicPartitionList::new();
    for partition in 0..TEST_PARTITIONS {
        partitions.add_partition(&topic, partition);
    }
    let committed = observer
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("committed offsets");
    for element in committed.elements() {
        let last = sent
            .keys()
            .filter(|(partition, _)| *partition == element.partition())
            .map(|(_, offset)| *offset)
            .max();
        if let Some(last) = last {
            assert_eq!(
                element.offset(),
                Offset::Offset(last + 1),
                "partition {}",
                element.partition()
            );
        }
    }
    drop(observer);
    stack.cleanup().await;
}

/// The topic command's work: `bazaar-topics` runs exactly this.
#[tokio::test]
async fn declared_topics_are_created_once_and_then_found_as_declared() {
    use service_kit::kafka::topics::{Outcome, ensure_topics};
    let stack = TestStack::start().await;
    // TestStack::start created them; under a fresh prefix they are created here.
    let mut settings = stack.settings.kafka.clone();
    settings.topic_prefix = format!("{}fresh.", settings.topic_prefix);
    let topics = schemas::Topics::new(settings.topic_prefix.clone());
    let first = ensure_topics(&settings, &topics, Some(2)).await.unwrap();
    assert_eq!(first.len(), schemas::topics::ALL.len());
    assert!(
        first
            .iter()
            .all(|(_, outcome)| *outcome == Outcome::Created),
        "{first:?}"
    );
    let second = ensure_topics(&settings, &topics, Some(2)).await.unwrap();
    assert!(
        second
            .iter()
            .all(|(_, outcome)| *outcome == Outcome::AsDeclared),
        "{second:?}"
    );
    delete(&settings, &topics).await;
    stack.cleanup().await;
}

#[tokio::test]
async fn a_topic_unlike_its_declaration_is_an_error_naming_the_difference() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use service_kit::kafka::topics::{TopicError, check_topics, ensure_topics};
    let stack = TestStack::start().await;
    let mut settings = stack.settings.kafka.clone();
    settings.topic_prefix = format!("{}drift.", settings.topic_prefix);
    let topics = schemas::Topics::new(settings.topic_prefix.clone());

    match check_topics(&settings, &topics, None).await {
        Err(TopicError::Missing(missing)) => assert_eq!(missing.len(), 5, "{missing:?}"),
        other => panic!("checking creates nothing and names what is missing: {other:?}"),
    }

    // Someone created the balances topic by hand: too few partitions, not compacted.
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()
        .unwrap();
    let balances = topics.balances();
    admin
        .create_topics(
            &[NewTopic::new(&balances, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    match ensure_topics(&settings, &topics, None).await {
        Err(TopicError::Drift(drift)) => {
            let text = drift.join("\n");
            assert!(
                text.contains(&format!("{balances} has 1 partitions, declared 12")),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "{balances} has cleanup.policy=delete, declared compact"
                )),
                "{text}"
            );
            assert!(
                !text.contains("movements"),
                "the other topics were created as declared: {text}"
            );
        }
        other => panic!("drift is an error: {other:?}"),
    }
    delete(&settings, &topics).await;
    stack.cleanup().await;
}

async fn delete(settings: &service_kit::settings::KafkaSettings, topics: &schemas::Topics) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()
        .unwrap();
    let names: Vec<String> = schemas::topics::ALL
        .iter()
        .map(|spec| topics.name(*spec))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    admin
        .delete_topics(&names, &AdminOptions::new())
        .await
        .unwrap();
}
