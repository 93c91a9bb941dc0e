//! The schema registry taken away after the services started: ingest and the processors
//! go on producing and consuming with the schema ids they asked for at start, `/readyz`
//! says `schema_registry` is degraded (still ready), and a record naming an id the registry
//! never gave goes to the dead-letter topic with the reason while its partition goes on.
//! The registry here is the test's own (in memory): the stack's serves every other test.
//! And a producer upgraded after the processors started: they learn its schema's id.

use std::time::Duration;

use reqwest::StatusCode;
use schemas::events::STOCK_MOVEMENT_SCHEMA;
use schemas::topics::{MOVEMENTS, store_key};
use schemas::wire::{CONFLUENT_MAGIC, schema_id};
use schemas::{AvroRecord, StockMovement, WireFormat};
use serde_json::Value;
use service_kit::schema_registry::SchemaRegistry;
use system_tests::{Pipeline, recent_movements};
use test_kit::{
    Model, OwnRegistry, TestStack, assert_outputs_are_the_ledger, assert_state_matches, background,
    produce_raw, producer, wait_committed,
};

/// A port below the ephemeral range that nothing else of ours uses (the stack's registry
/// is on 18081, the benchmark's and the fault suite's on 18181 and 18381).
const OWN_REGISTRY_PORT: u16 = 18091;

async fn readiness(base: &str) -> (StatusCode, Value) {
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_registry_the_pipeline_goes_on_and_an_unknown_schema_id_is_a_dead_letter() {
    let registry = OwnRegistry::start(OWN_REGISTRY_PORT);
    let stack = TestStack::start_with(&[("SCHEMA_REGISTRY_URL", registry.url())]).await;
    let pipeline = Pipeline::start_on(stack, false).await;
    let processors = processors::App::build(pipeline.stack.processors_settings())
        .await
        .unwrap();
    let processors_base = format!("http://127.0.0.1:{}", processors.port());
    let _processing = background(|stopped| processors.run_until_stopped(stopped));
    for base in [&pipeline.ingest, &processors_base] {
        let (_, ready) = readiness(base).await;
        assert_eq!(ready["checks"]["schema_registry"], "ok", "{base}: {ready}");
    }
    let before = recent_movements(60, 71);
    pipeline.post(&before).await;

    registry.stop();
    for base in [&pipeline.ingest, &processors_base] {
        let (status, ready) = readiness(base).await;
        assert_eq!(status, StatusCode::OK, "{base}: {ready}");
        let check = ready["checks"]["schema_registry"]
            .as_str()
            .unwrap_or_default();
        assert!(check.starts_with("degraded: "), "{base}: {ready}");
    }

    // Movements still go in through ingest, written with the id it holds ...
    let after = recent_movements(60, 72);
    pipeline.post(&after).await;
    // ... and below ingest's edge, a record naming an id no registry gave, then a good
    // movement of the same store behind it on its partition.
    let stack = &pipeline.stack;
    let topic = stack.settings.topics().movements();
    let mut last = after.last().unwrap().clone();
    last.movement_id = uuid::Uuid::new_v4();
    let mut unknown = vec![CONFLUENT_MAGIC];
    unknown.extend_from_slice(&999_999_u32.to_be_bytes());
    unknown.extend_from_slice(&last.encode().unwrap()[10..]);
    let mut good = last.clone();
    good.movement_id = uuid::Uuid::new_v4();
    let mut framed = Vec::new();
    good.encode_with(&stack.schema_ids, &mut framed).unwrap();
    let kafka = producer(stack);
    let key = store_key(last.store_id);
    produce_raw(&kafka, &topic, &key, &unknown).await;
    produce_raw(&kafka, &topic, &key, &framed).await;

    let movements: Vec<StockMovement> = [before, after, vec![good]].concat();
    wait_committed(stack, movements.len() as i64 + 1, Duration::from_secs(60)).await;
    let dead = stack
        .read_topic(
            &stack.settings.topics().movements_dlq(),
            1,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(dead[0].payload, unknown);
    assert_eq!(schema_id(&dead[0].payload), Some(999_999));
    assert_eq!(
        dead[0].headers["bazaar.error"], "undecodable",
        "{:?}",
        dead[0].headers
    );
    assert!(
        dead[0].headers["bazaar.error.detail"].contains("schema id 999999"),
        "{:?}",
        dead[0].headers
    );
    assert_state_matches(&stack.pool, &Model::of(&movements)).await;
    // Every output of both halves, written with the ids held since the start.
    assert_outputs_are_the_ledger(stack).await;
}

/// A producer upgraded after the processors started writes a movement with a newer
/// version of its schema (one more optional field), registered then: the processors learn
/// the id from the registry when the record names it and read the movement, the new field
/// skipped — schema evolution through the registry's ids, end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_movement_written_with_a_schema_registered_after_start_is_read_through_its_id() {
    let pipeline = Pipeline::start(true).await;
    let stack = &pipeline.stack;
    let registry = SchemaRegistry::new(&stack.settings.kafka.schema_registry).unwrap();
    let subject = stack.settings.topics().value_subject(MOVEMENTS);
    let mut newer: Value = serde_json::from_str(STOCK_MOVEMENT_SCHEMA).unwrap();
    newer["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "loyalty_card", "type": ["null", "string"], "default": null}
        ));
    let id = registry
        .register(&subject, &newer.to_string())
        .await
        .unwrap();
    assert!(!stack.schema_ids.knows(id), "registered after the start");

    let movements = recent_movements(40, 73);
    let (earlier, last) = movements.split_at(movements.len() - 1);
    pipeline.post(earlier).await;
    // The newer schema's body: the current one's, then the new field (last in the record):
    // union branch 1 (zig-zag 2), then the string "L-7" (length zig-zag 6).
    let mut bytes = vec![CONFLUENT_MAGIC];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&last[0].encode().unwrap()[10..]);
    bytes.extend_from_slice(&[2, 6, b'L', b'-', b'7']);
    let topic = stack.settings.topics().movements();
    produce_raw(
        &producer(stack),
        &topic,
        &store_key(last[0].store_id),
        &bytes,
    )
    .await;

    wait_committed(stack, movements.len() as i64, Duration::from_secs(60)).await;
    assert_state_matches(&stack.pool, &Model::of(&movements)).await;
}
