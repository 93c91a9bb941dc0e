//! The stall a fault causes: how long a partition's committed position stood still while
//! records waited in it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use test_kit::{Stream, TestStack};

/// Samples every partition's committed position (Postgres) and end (the broker) every
/// 100 ms while `stream` runs and until everything produced is committed; returns the
/// longest time a partition's position stood still while records waited in it.
pub(super) fn watch_stalls(
    stack: &TestStack,
    stream: &Stream,
) -> tokio::task::JoinHandle<Duration> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let pool = stack.pool.clone();
    let group = stack.settings.kafka.consumer_group.clone();
    let topic = stack.settings.topics().movements();
    let kafka = stack.settings.kafka.clone();
    let connect = move || -> std::sync::Arc<BaseConsumer> {
        std::sync::Arc::new(
            service_kit::kafka::consumer_config(&kafka, "chaos-watch", "chaos-watch")
                .create()
                .unwrap(),
        )
    };
    let mut reader = connect();
    let progress = stream.progress();
    tokio::spawn(async move {
        let partitions = 0..test_kit::TEST_PARTITIONS;
        let mut ends: HashMap<i32, i64> = HashMap::new();
        let mut still: HashMap<i32, (i64, Instant)> = HashMap::new();
        let mut longest = Duration::ZERO;
        let mut finished_at: Option<Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let finished = progress.finished();
            let waited = finished_at.get_or_insert_with(Instant::now).elapsed();
            if !finished {
                finished_at = None;
            }
            assert!(
                waited < Duration::from_secs(240),
                "the watch never saw every partition's end: {ends:?} of {} produced",
                progress.produced()
            );
            let produced = progress.produced();
            // Waits while PostgreSQL is away (the pool reconnects): then the positions, and the
            // ends read after them, are fresh together.
            let stored: HashMap<i32, i64> = sqlx::query_as::<_, (i32, i64)>(
                "SELECT partition, next_offset FROM processor_offsets \
                 WHERE consumer_group = $1 AND topic = $2",
            )
            .bind(&group)
            .bind(&topic)
            .fetch_all(&pool)
            .await
            .map(|rows| rows.into_iter().collect())
            .unwrap_or_default();
            // A broker that is down answers nothing: its partitions keep their last end.
            let (watcher, name) = (reader.clone(), topic.clone());
            let fetched = tokio::task::spawn_blocking(move || {
                (0..test_kit::TEST_PARTITIONS)
                    .filter_map(|partition| {
                        let (_, end) = watcher
                            .fetch_watermarks(&name, partition, Duration::from_secs(1))
                            .ok()?;
                        Some((partition, end))
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap();
            // A client that lost a broker can keep failing after it is back (seen once: four
            // minutes): once the stream is over, a sample that missed a partition reconnects.
            if finished && fetched.len() < partitions.len() {
                reader = connect();
            }
            ends.extend(fetched);
            let mut caught_up = true;
            for partition in partitions.clone() {
                let end = ends.get(&partition).copied().unwrap_or(0);
                let entry = still.entry(partition).or_insert((0, Instant::now()));
                let position = stored.get(&partition).copied().unwrap_or(entry.0);
                // Measured up to now before a move restarts the clock: a sample can come
                // late (the query waits while PostgreSQL is away).
                if entry.0 < end {
                    longest = longest.max(entry.1.elapsed());
                }
                if position != entry.0 || position >= end {
                    *entry = (position, Instant::now());
                }
                caught_up &= position >= end;
            }
            if finished && ends.values().sum::<i64>() >= produced && caught_up {
                return longest;
            }
        }
    })
}
