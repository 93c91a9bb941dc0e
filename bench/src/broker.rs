//! The broker's own ceiling, measured first in every `make bench`: movements of the
//! suites' size and keys produced with the services' producer settings (`acks=all`,
//! idempotent, lz4, the ingest linger) as fast as librdkafka takes them, then consumed
//! back from the beginning with the processors' consumer settings — no HTTP, no decoding,
//! no Postgres. The other suites state their rates as a share of these two figures.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::AvroRecord;
use service_kit::{Service, Settings, kafka};

use crate::report::{Report, Row};

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Movements produced and consumed back.
    #[arg(long, default_value_t = 500_000)]
    pub records: usize,
}

/// Scenario names the other suites relate their rows to.
pub const PRODUCE: &str = "produce (acks=all, idempotent, lz4), records/s";
pub const CONSUME: &str = "consume from the beginning (read_committed), records/s";

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let prefix = format!("bench-broker-{run_id}.");
    let settings = Settings::from_lookup(Service::Ingest, |var| match var {
        "KAFKA_TOPIC_PREFIX" => Some(prefix.clone()),
        _ => std::env::var(var).ok(),
    })?;
    let topics = settings.topics();
    kafka::ensure_topics(&settings.kafka, &topics, None).await?;
    let topic = topics.movements();
    let producer = kafka::producer(&settings.kafka, "bazaar-bench-broker")?;

    // The processors suite's movements: the same sizes and store keys.
    let stores: Vec<i64> = (1..=1_000).collect();
    let products: Vec<i64> = (1..=1_000).collect();
    let mut rng = rand::rng();
    let mut mix = crate::mix::Mix::new(crate::mix::Kinds::Three, &stores, &products, 1);
    let movements: Vec<_> = (0..options.records).map(|_| mix.next(&mut rng)).collect();
    let bytes: usize = movements
        .iter()
        .map(|movement| movement.encode().map_or(0, |payload| payload.len()))
        .sum();
    let started = Instant::now();
    for chunk in movements.chunks(50_000) {
        crate::processors::send(&producer, &topic, chunk.to_vec()).await?;
    }
    let produce = options.records as f64 / started.elapsed().as_secs_f64();

    let consumer: BaseConsumer =
        kafka::consumer_config(&settings.kafka, "bazaar-bench-broker", &prefix).create()?;
    let mut partitions = TopicPartitionList::new();
    for partition in 0..schemas::topics::MOVEMENTS.partitions {
        partitions.add_partition_offset(&topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&partitions)?;
    let records = options.records;
    let consume = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut read = 0;
        while read < records {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "read {read} of {records} records in 5 minutes"
            );
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(message)) => {
                    read += usize::from(message.payload().is_some());
                }
                Some(Err(error)) => anyhow::bail!("consuming: {error}"),
                None => {}
            }
        }
        anyhow::Ok(records as f64 / started.elapsed().as_secs_f64())
    })
    .await??;

    let row = |scenario: &str, rate: f64| Row {
        scenario: scenario.to_owned(),
        connections: 0,
        movements_per_second: rate.round(),
        requests_per_second: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: options.records as u64,
        failures: 0,
        first_failure: None,
        of_ceiling: None,
    };
    Ok(Report {
        suite: "broker".into(),
        started_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        machine: crate::report::machine(),
        rows: vec![row(PRODUCE, produce), row(CONSUME, consume)],
        notes: vec![format!(
            "{} records of {} bytes on average over 12 partitions; broker {}",
            options.records,
            bytes / options.records.max(1),
            settings.kafka.brokers
        )],
    })
}
