//! The processors benchmark: a backlog of movements over many stores and products is put
//! on the input topic, then the release `processors` binary is started and timed until
//! Postgres has committed all of it (sustained throughput, topic → committed state). Then
//! movements arrive at a fixed rate and the processors' own end-to-end histogram
//! (received by ingest → committed) gives p50/p99. Finally the memory of one million
//! balances held the way the processors hold them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::{AvroRecord, ProductId, StockMovement, StoreId};
use service_kit::{Service, Settings, kafka};

use crate::mix::{Kinds, Mix};
use crate::report::{Report, Row};

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The processors binary to start.
    #[arg(long, default_value = "target/release/processors")]
    pub binary: std::path::PathBuf,
    #[arg(long, default_value_t = 58_083)]
    pub port: u16,
    #[arg(long, default_value_t = 1_000)]
    pub stores: i64,
    #[arg(long, default_value_t = 1_000)]
    pub products: i64,
    /// Movements waiting on the topic before the processors start.
    #[arg(long, default_value_t = 300_000)]
    pub backlog: usize,
    /// Movements per second of the steady phase.
    #[arg(long, default_value_t = 5_000)]
    pub steady_rate: usize,
    /// Length of the steady phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The movements' kinds: `make bench` runs this suite with each.
    #[arg(long, value_enum, default_value_t = Kinds::Three)]
    pub kinds: Kinds,
}

use crate::ingest::Service_ as Child;

/// Produces `movements` and waits for every acknowledgement: each is encoded into one
/// reused buffer and handed to librdkafka at once (as the services produce), so the load
/// generator holds no future or buffers per record while the broker works.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    movements: Vec<StockMovement>,
) -> anyhow::Result<()> {
    let mut pending = Vec::with_capacity(movements.len());
    let mut payload = Vec::with_capacity(256);
    for movement in &movements {
        payload.clear();
        movement.encode_into(&mut payload)?;
        let key = schemas::topics::store_key(movement.store_id);
        let record = FutureRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_slice());
        pending.push(kafka::enqueue(producer, record, Duration::from_secs(30)).await?);
    }
    for delivery in pending {
        kafka::acknowledged(delivery).await?;
    }
    Ok(())
}

/// The benchmark catalog: its pool, store ids, product ids and a supplier of this run.
/// Every store has settings for every product (a reorder point of 20), as in a network
/// where each store manages its range.
pub async fn catalog(
    settings: &Settings,
    stores: i64,
    products: i64,
) -> anyhow::Result<(sqlx::PgPool, Vec<i64>, Vec<i64>, i64)> {
    let pool = crate::ingest::seed(settings, stores, products).await?;
    let stores = crate::ingest::ids(&pool, "stores", "BENCH-", stores).await?;
    let products = crate::ingest::ids(&pool, "products", "BENCH-SKU-", products).await?;
    let supplier: i64 =
        sqlx::query_scalar("INSERT INTO suppliers (name) VALUES ('Bench supplier') RETURNING id")
            .fetch_one(&pool)
            .await?;
    sqlx::query(
        "INSERT INTO store_products (store_id, product_id, reorder_point)
         SELECT s, p, 20 FROM unnest($1::bigint[]) AS s, unnest($2::bigint[]) AS p
         ON CONFLICT DO NOTHING",
    )
    .bind(&stores)
    .bind(&products)
    .execute(&pool)
    .await?;
    // Statistics, as autovacuum gathers them for a catalog that is not seconds old: without
    // them the planner took a million settings for a few hundred.
    sqlx::query("ANALYZE stores, products, store_products")
        .execute(&pool)
        .await?;
    Ok((pool, stores, products, supplier))
}

pub async fn committed(pool: &sqlx::PgPool, group: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::int8 FROM processor_offsets WHERE consumer_group = $1",
    )
    .bind(group)
    .fetch_one(pool)
    .await?
    .unwrap_or(0))
}

/// The cumulative buckets of the end-to-end histogram on /metrics.
async fn end_to_end_buckets(port: u16) -> anyhow::Result<Vec<(f64, f64)>> {
    let text = crate::ingest::get_text(port, "/metrics").await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("bazaar_processor_end_to_end_seconds_bucket{"))
        .filter_map(|line| line.split_once("le=\"").map(|(_, rest)| rest))
        .filter_map(|rest| {
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect())
}

/// The end-to-end histogram once it holds `expected` observations. The processors observe
/// a batch's latencies after its commit (and Redis), so a scrape taken the moment Postgres
/// shows the commit can miss the last batch: taken between the backlog and the steady
/// phase, that batch's backlog latencies (seconds of waiting on the topic) would be
/// counted in the steady phase.
async fn end_to_end_buckets_holding(port: u16, expected: u64) -> anyhow::Result<Vec<(f64, f64)>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let buckets = end_to_end_buckets(port).await?;
        let observed = buckets.last().map_or(0.0, |(_, count)| *count);
        if observed >= expected as f64 {
            return Ok(buckets);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the processors observed {observed} end-to-end latencies, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A quantile of the observations between two scrapes, interpolated within its bucket.
fn quantile_ms(before: &[(f64, f64)], after: &[(f64, f64)], quantile: f64) -> f64 {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == bound)
                .map_or(0.0, |(_, c)| *c);
            (*bound, count - earlier)
        })
        .collect();
    let total = counts.last().map_or(0.0, |(_, count)| *count);
    let target = total * quantile;
    let mut lower = (0.0, 0.0);
    for (bound, count) in counts {
        if count >= target {
            if bound.is_infinite() {
                return lower.0 * 1_000.0;
            }
            let share = if count > lower.1 {
                (target - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return (lower.0 + share * (bound - lower.0)) * 1_000.0;
        }
        lower = (bound, count);
    }
    f64::NAN
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches(" kB").parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let prefix = format!("bench-{run_id}.");
    let group = format!("bench-processors-{run_id}");
    let settings = Settings::from_lookup(Service::Processors, |var| match var {
        "KAFKA_TOPIC_PREFIX" => Some(prefix.clone()),
        "KAFKA_CONSUMER_GROUP" => Some(group.clone()),
        _ => std::env::var(var).ok(),
    })?;
    let (pool, stores, products, supplier) =
        catalog(&settings, options.stores, options.products).await?;
    let topics = settings.topics();
    service_kit::kafka::ensure_topics(&settings.kafka, &topics, None).await?;
    service_kit::schema_registry::SchemaRegistry::new(&settings.kafka.schema_registry)?
        .ensure_value_schemas(&topics)
        .await?;
    let topic = topics.movements();
    let producer = service_kit::kafka::producer(&settings.kafka, "bazaar-bench")?;

    eprintln!("putting {} movements on {topic}", options.backlog);
    let mut rng = rand::rng();
    let mut mix = Mix::new(options.kinds, &stores, &products, supplier);
    let kinds = match options.kinds {
        Kinds::Three => "",
        Kinds::Every => ", every kind",
    };
    for _ in 0..options.backlog.div_ceil(10_000) {
        let chunk: Vec<StockMovement> = (0..10_000).map(|_| mix.next(&mut rng)).collect();
        send(&producer, &topic, chunk).await?;
    }
    let backlog = options.backlog.div_ceil(10_000) * 10_000;

    let child = Child(
        Command::new(&options.binary)
            .env("KAFKA_TOPIC_PREFIX", &prefix)
            .env("KAFKA_CONSUMER_GROUP", &group)
            .env(
                Service::Processors.listen_var(),
                format!("127.0.0.1:{}", options.port),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = child.0.id();
    let started = Instant::now();
    let mut first: Option<(Instant, i64)> = None;
    loop {
        let done = committed(&pool, &group).await?;
        if first.is_none() && done > 0 {
            first = Some((Instant::now(), done));
        }
        if done >= backlog as i64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "only {done} of {backlog} committed after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (first_at, first_done) = first.unwrap_or((started, 0));
    let sustained = (backlog as i64 - first_done) as f64 / first_at.elapsed().as_secs_f64();
    let mut rows = vec![Row {
        scenario: format!("backlog topic → committed Postgres ({backlog}{kinds})"),
        connections: 0,
        movements_per_second: sustained.round(),
        requests_per_second: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: backlog as u64,
        failures: 0,
        first_failure: None,
        of_ceiling: None,
    }];

    // A fixed rate: every 10 ms a slice of movements stamped with the time they are sent.
    let before = end_to_end_buckets_holding(options.port, backlog as u64).await?;
    let per_tick = (options.steady_rate / 100).max(1);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = Vec::new();
    let until = Instant::now() + Duration::from_secs(options.seconds);
    let mut sent = 0;
    while Instant::now() < until {
        ticker.tick().await;
        let slice: Vec<StockMovement> = (0..per_tick).map(|_| mix.next(&mut rng)).collect();
        sent += slice.len();
        let producer = producer.clone();
        let topic = topic.clone();
        // The movements are stamped `received_at` now; how long the broker then takes to
        // acknowledge them is latency the processors are charged with but cannot see.
        let stamped = Instant::now();
        sends.push(tokio::spawn(async move {
            send(&producer, &topic, slice).await?;
            anyhow::Ok(stamped.elapsed())
        }));
    }
    let mut acknowledged = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .expect("constant bounds");
    for send in sends {
        let waited = send.await??;
        let _ = acknowledged.record(waited.as_micros().clamp(1, 600_000_000) as u64);
    }
    // A latency is observed only after its movement's commit: once the histogram holds
    // every movement sent, the steady load is committed.
    let target = (backlog + sent) as u64;
    let after = end_to_end_buckets_holding(options.port, target).await?;
    rows.push(Row {
        scenario: format!(
            "steady {} movements/s, received → applied{kinds}",
            options.steady_rate
        ),
        connections: 0,
        movements_per_second: (sent as f64 / options.seconds as f64).round(),
        requests_per_second: 0.0,
        p50_ms: quantile_ms(&before, &after, 0.50),
        p99_ms: quantile_ms(&before, &after, 0.99),
        requests: sent as u64,
        failures: 0,
        first_failure: None,
        of_ceiling: None,
    });
    let metrics = crate::ingest::get_text(options.port, "/metrics").await?;
    let total = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
            .sum()
    };
    let batches = total("bazaar_processor_batch_size_count");
    let drained = total("bazaar_processor_drained_total");
    let peak = crate::ingest::peak_rss_mib(pid);
    drop(child);

    // One million balances, held as the processors hold them.
    let baseline = resident_mib();
    let mut balances = processors::decide::Balances::new();
    for store in 0..1_000 {
        let holdings = balances.entry(StoreId(store)).or_default();
        for product in 0..1_000 {
            holdings.insert(
                ProductId(product),
                processors::decide::Holding {
                    quantity: product,
                    average_cost: Some(1_800),
                    counted_at: None,
                },
            );
        }
    }
    let held = resident_mib() - baseline;
    let count: usize = balances.values().map(std::collections::HashMap::len).sum();

    let mut notes = vec![
        format!(
            "catalog: {} stores × {} products; broker: Apache Kafka at {}",
            stores.len(),
            products.len(),
            settings.kafka.brokers,
        ),
        format!("{count} balances held in memory: {held:.0} MiB"),
        format!(
            "{batches:.0} batches, {drained:.0} of them waited for the batch in flight's commit (a count, or a void of its movement)"
        ),
        format!(
            "steady phase, stamped → on the broker (the load generator's produce, before the processors can see a movement): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            acknowledged.value_at_quantile(0.5) as f64 / 1_000.0,
            acknowledged.value_at_quantile(0.99) as f64 / 1_000.0,
            acknowledged.max() as f64 / 1_000.0,
        ),
    ];
    if let Some(peak) = peak {
        notes.push(format!(
            "processors peak resident memory (VmHWM): {peak:.0} MiB"
        ));
    }
    drop(balances);
    Ok(Report {
        suite: "processors".into(),
        started_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        machine: crate::report::machine(),
        rows,
        notes,
    })
}
