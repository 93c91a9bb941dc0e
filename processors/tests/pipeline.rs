//! Movements in → ledger, balances, rollups, alerts, output topics and Redis out, exactly
//! as an independent model computes them; poison records go to the dead-letter topic.

use std::collections::HashMap;
use std::time::Duration;

use schemas::{AvroRecord, Balance, LedgerEntry, MovementKind, StockMovement, WireFormat};
use test_kit::TestStack;
use test_kit::*;

/// A movement of store 1's product 1 with id `id`: a stock-in from the supplier at 100
/// paise, a sale at 150, anything else with no more than its kind and quantity.
fn movement(id: u128, kind: MovementKind, quantity: i64) -> StockMovement {
    StockMovement {
        supplier_id: (kind == MovementKind::StockIn).then_some(schemas::SupplierId(SUPPLIER)),
        unit_cost_paise: (kind == MovementKind::StockIn).then_some(100),
        unit_price_paise: (kind == MovementKind::Sale).then_some(150),
        ..StockMovement::new(
            uuid::Uuid::from_u128(id),
            schemas::StoreId(1),
            schemas::ProductId(1),
            "SKU-1",
            kind,
            quantity,
            chrono::Utc::now(),
            "test-pos",
        )
    }
}

/// A processor running in-process until the returned sender is used or dropped.
async fn start_processor(stack: &TestStack) -> tokio::sync::oneshot::Sender<()> {
    let app = processors::App::build(stack.processors_settings())
        .await
        .unwrap();
    background(|stopped| app.run_until_stopped(stopped))
}

#[tokio::test]
async fn movements_become_the_ledger_balances_rollups_and_alerts_the_model_computes() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let topic = stack.settings.topics().movements();
    let producer = producer(&stack);
    let movements = movements(1_500, 7);
    let model = Model::of(&movements);
    assert!(
        model.outcomes.iter().any(|o| o.status == "rejected")
            && model.outcomes.iter().any(|o| o.status == "duplicate"),
        "the stream exercises rejections and duplicates"
    );

    // Some movements wait on the topic before the processor starts, some arrive while it runs.
    produce(&producer, &topic, &movements[..500]).await;
    let stop = start_processor(&stack).await;
    produce(&producer, &topic, &movements[500..]).await;
    wait_committed(&stack, movements.len() as i64, Duration::from_secs(60)).await;

    // The ledger: one row per record, each with the model's outcome, in each store's order.
    let rows = ledger_rows(&stack.pool).await;
    assert_eq!(rows.len(), movements.len());
    let actual = actual_by_store(&rows, &movements);
    assert_eq!(actual, expected_by_store(&movements, &model));
    assert_state_matches(&stack.pool, &model).await;

    // The ledger topic carries every outcome; the balances topic ends at the model.
    let ledger = stack
        .read_topic(
            &stack.settings.topics().ledger(),
            movements.len(),
            Duration::from_secs(30),
        )
        .await;
    let statuses: HashMap<&str, usize> =
        ledger.iter().fold(HashMap::new(), |mut counts, record| {
            let entry = LedgerEntry::decode_with(&stack.schema_ids, &record.payload).unwrap();
            *counts.entry(entry.status.as_str()).or_default() += 1;
            counts
        });
    let expected_statuses: HashMap<&str, usize> =
        model.outcomes.iter().fold(HashMap::new(), |mut counts, o| {
            *counts.entry(o.status).or_default() += 1;
            counts
        });
    assert_eq!(statuses, expected_statuses);
    let balance_records = read_committed_topic(
        &stack,
        &stack.settings.topics().balances(),
        1,
        Duration::from_secs(20),
    )
    .await;
    let mut last: HashMap<(i64, i64), i64> = HashMap::new();
    for (_, key, payload) in balance_records {
        let balance = Balance::decode_with(&stack.schema_ids, &payload).unwrap();
        let key = String::from_utf8(key).unwrap();
        assert_eq!(key, format!("{}:{}", balance.store_id, balance.product_id));
        last.insert(
            (balance.store_id.get(), balance.product_id.get()),
            balance.quantity,
        );
    }
    let model_quantities: HashMap<(i64, i64), i64> = model
        .balances
        .iter()
        .map(|(key, (quantity, _))| (*key, *quantity))
        .collect();
    assert_eq!(last, model_quantities);

    // Redis holds the same balances for hot reads.
    assert_redis_balances(&stack, &model).await;
    let _ = stop.send(());
}

#[tokio::test]
async fn a_poison_record_goes_to_the_dead_letter_topic_and_the_partition_goes_on() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let topic = stack.settings.topics().movements();
    let producer = producer(&stack);
    let good = movements(3, 11);
    let stop = start_processor(&stack).await;
    // The poison records sit between good ones.
    produce(&producer, &topic, &good[..1]).await;
    produce_raw(&producer, &topic, "1", b"not avro at all").await;
    let mut negative = good[1].clone();
    negative.quantity = -5;
    produce_raw(&producer, &topic, "1", &negative.encode().unwrap()).await;
    produce(&producer, &topic, &good[2..]).await;
    let total = 4;
    wait_committed(&stack, total, Duration::from_secs(30)).await;

    let dead = stack
        .read_topic(
            &stack.settings.topics().movements_dlq(),
            2,
            Duration::from_secs(20),
        )
        .await;
    let mut reasons = Vec::new();
    for record in &dead {
        reasons.push(record.headers["bazaar.error"].clone());
        assert_eq!(record.headers["bazaar.source.topic"], topic);
        assert!(record.headers.contains_key("bazaar.source.offset"));
    }
    reasons.sort();
    assert_eq!(reasons, ["non_positive_quantity", "undecodable"]);
    assert!(
        dead.iter()
            .any(|record| record.payload == b"not avro at all")
    );
    let rows = ledger_rows(&stack.pool).await;
    assert_eq!(
        rows.len(),
        2,
        "the good movements are in the ledger: {rows:?}"
    );
    let _ = stop.send(());
}

/// A record that decodes and validates but that Postgres refuses (a NUL in its text:
/// PostgreSQL's `text` cannot hold one), put on the topic below ingest's edge, among a
/// stream of good movements of its store. The batch fails deterministically, is taken
/// apart, the record goes to the dead-letter topic with the database's reason and its
/// source position, and every other movement — the next ones of the same store too — is
/// applied as the model says.
#[tokio::test]
async fn a_record_postgres_refuses_goes_to_the_dead_letter_topic_and_its_store_goes_on() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let topic = stack.settings.topics().movements();
    let producer = producer(&stack);
    let good = movements(400, 13);
    let mut poison = good[150].clone();
    poison.movement_id = uuid::Uuid::new_v4();
    poison.store_id = schemas::StoreId(1);
    poison.reference = Some("INV-\u{0}-7".into());
    produce(&producer, &topic, &good[..200]).await;
    produce(&producer, &topic, std::slice::from_ref(&poison)).await;
    produce(&producer, &topic, &good[200..]).await;
    let _stop = start_processor(&stack).await;
    wait_committed(&stack, good.len() as i64 + 1, Duration::from_secs(60)).await;

    let dead = stack
        .read_topic(
            &stack.settings.topics().movements_dlq(),
            1,
            Duration::from_secs(20),
        )
        .await;
    let headers = &dead[0].headers;
    assert_eq!(headers["bazaar.error"], "refused_by_database");
    assert!(
        headers["bazaar.error.detail"].starts_with("SQLSTATE 22021"),
        "{headers:?}"
    );
    assert_eq!(headers["bazaar.source.topic"], topic);
    let refused = schemas::StockMovement::decode_with(&stack.schema_ids, &dead[0].payload).unwrap();
    assert_eq!(
        (refused.movement_id, refused.reference),
        (poison.movement_id, poison.reference.clone())
    );

    let rows = ledger_rows(&stack.pool).await;
    assert_eq!(
        rows.len(),
        good.len(),
        "every good movement has its ledger row"
    );
    assert!(rows.iter().all(|row| row.0 != poison.movement_id));
    assert_state_matches(&stack.pool, &Model::of(&good)).await;
}

async fn assert_redis_balances(stack: &TestStack, model: &Model) {
    let redis = service_kit::redis::Redis::new(&stack.settings.redis).unwrap();
    let mut connection = redis.connection().await.unwrap();
    let mut cached: HashMap<(i64, i64), i64> = HashMap::new();
    for (store, ..) in STORES {
        let entries: HashMap<i64, String> = redis::cmd("HGETALL")
            .arg(processors::cache_writer::balances_key(
                &redis,
                schemas::StoreId(store),
            ))
            .query_async(&mut connection)
            .await
            .unwrap();
        for (product, json) in entries {
            let balance: processors::cache_writer::CachedBalance =
                serde_json::from_str(&json).unwrap();
            cached.insert((store, product), balance.quantity);
        }
    }
    let expected: HashMap<(i64, i64), i64> = model
        .balances
        .iter()
        .map(|(key, (quantity, _))| (*key, *quantity))
        .collect();
    assert_eq!(cached, expected, "Redis balances");
}

#[tokio::test]
async fn a_reorder_point_changed_while_the_store_is_held_takes_effect() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let topic = stack.settings.topics().movements();
    let producer = producer(&stack);
    let stop = start_processor(&stack).await;
    let alerts = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT kind FROM alerts WHERE store_id = 1 AND product_id = 1 ORDER BY id",
        )
        .fetch_all(&stack.pool)
        .await
        .unwrap()
    };
    // Store 1 is taken on with reorder point 10; 30 in stock.
    produce(&producer, &topic, &[movement(1, MovementKind::StockIn, 30)]).await;
    wait_committed(&stack, 1, Duration::from_secs(30)).await;
    let pool = &stack.pool;
    let settings = |change: &'static str| async move {
        sqlx::query(&format!(
            "UPDATE store_products SET {change}, updated_at = now() WHERE store_id = 1 AND product_id = 1"
        ))
        .execute(pool)
        .await
        .unwrap();
    };
    // Raised to 25 while the processor holds the store: a sale to 24 is now low.
    settings("reorder_point = 25").await;
    produce(&producer, &topic, &[movement(2, MovementKind::Sale, 6)]).await;
    wait_committed(&stack, 2, Duration::from_secs(30)).await;
    assert_eq!(alerts().await, ["low_stock"], "24 ≤ the new point 25");
    // Its settings deleted: no reorder point, so only reaching zero alerts.
    settings("deleted_at = now()").await;
    produce(&producer, &topic, &[movement(3, MovementKind::StockIn, 10)]).await;
    produce(&producer, &topic, &[movement(4, MovementKind::Sale, 34)]).await;
    wait_committed(&stack, 4, Duration::from_secs(30)).await;
    let kinds = alerts().await;
    assert_eq!(kinds.first().map(String::as_str), Some("low_stock"));
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("out_of_stock"),
        "{kinds:?}"
    );
    let _ = stop.send(());
}

/// A return keyed in by mistake and voided gives its sale the units back to return — also
/// to a processor that starts afresh and reads the sale's returns from Postgres, not from
/// what the one before held in memory.
#[tokio::test]
async fn a_voided_return_gives_its_sale_the_units_back_across_a_restart() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let topic = stack.settings.topics().movements();
    let producer = producer(&stack);
    let sale = movement(2, MovementKind::Sale, 3);
    let back = |id: u128| StockMovement {
        original_movement_id: Some(sale.movement_id),
        ..movement(id, MovementKind::Return, 2)
    };
    let void = StockMovement {
        voids_movement_id: Some(uuid::Uuid::from_u128(3)),
        ..movement(4, MovementKind::Void, 2)
    };
    let stop = start_processor(&stack).await;
    let stock_in = movement(1, MovementKind::StockIn, 10);
    produce(&producer, &topic, &[stock_in, sale.clone(), back(3)]).await;
    wait_committed(&stack, 3, Duration::from_secs(30)).await;
    produce(&producer, &topic, &[void]).await;
    wait_committed(&stack, 4, Duration::from_secs(30)).await;
    let _ = stop.send(());
    let stop = start_processor(&stack).await;
    produce(&producer, &topic, &[back(5)]).await;
    wait_committed(&stack, 5, Duration::from_secs(90)).await;
    let outcome: (String, Option<String>, Option<i64>) = sqlx::query_as(
        "SELECT status, reject_reason, balance_after FROM movements WHERE movement_id = $1",
    )
    .bind(uuid::Uuid::from_u128(5))
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(outcome, ("applied".to_owned(), None, Some(9)));
    let returned: Option<i64> =
        sqlx::query_scalar("SELECT returned FROM movement_ids WHERE movement_id = $1")
            .bind(sale.movement_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(returned, Some(2), "2 returned, voided, 2 returned again");
    let _ = stop.send(());
}
