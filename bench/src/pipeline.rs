//! The whole write path with its outcome: the release `ingest` and `processors` on a
//! topic prefix of their own. A POS sale that waits for its outcome (`?wait`), at 64
//! connections; then a steady rate through ingest for minutes while the group's lag is
//! sampled every second (do the processors keep up?).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::StatusCode;
use rdkafka::consumer::{BaseConsumer, Consumer};
use service_kit::Service;
use service_kit::settings::IngestSettings;

use crate::ingest::{Service_, ids, pos_tokens, seed, single_sales, wait_ready};
use crate::load;
use crate::report::{Report, Row};

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The ingest binary to start.
    #[arg(long = "binary", default_value = "target/release/ingest")]
    pub ingest: std::path::PathBuf,
    /// The processors binary to start.
    #[arg(long, default_value = "target/release/processors")]
    pub processors: std::path::PathBuf,
    #[arg(long = "port", default_value_t = 58_081)]
    pub ingest_port: u16,
    #[arg(long, default_value_t = 58_083)]
    pub processors_port: u16,
    #[arg(long, default_value_t = 1_000)]
    pub stores: i64,
    #[arg(long, default_value_t = 1_000)]
    pub products: i64,
    /// Length of the ?wait phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 64)]
    pub wait_connections: usize,
    /// Movements per second of the steady phase.
    #[arg(long, default_value_t = 5_000)]
    pub steady_rate: usize,
    #[arg(long, default_value_t = 300)]
    pub steady_seconds: u64,
}

/// The group's lag: the end of every partition of `topic` (asked of the broker) minus the
/// offsets the processors committed in Postgres. Independent of the processors' own
/// metric, which only knows the partitions they fetch.
async fn group_lag(
    reader: &Arc<BaseConsumer>,
    pool: &sqlx::PgPool,
    topic: &str,
    group: &str,
) -> anyhow::Result<i64> {
    let reader = reader.clone();
    let name = topic.to_owned();
    let end: i64 = tokio::task::spawn_blocking(move || {
        (0..schemas::topics::MOVEMENTS.partitions)
            .map(|partition| {
                reader
                    .fetch_watermarks(&name, partition, Duration::from_secs(5))
                    .map(|(_, high)| high)
            })
            .sum::<Result<i64, _>>()
    })
    .await??;
    Ok(end - crate::processors::committed(pool, group).await?)
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let prefix = format!("bench-pipeline-{run_id}.");
    let group = format!("bench-pipeline-{run_id}");
    let IngestSettings {
        shared: settings,
        api,
        ..
    } = IngestSettings::from_lookup(|var| match var {
        "KAFKA_TOPIC_PREFIX" => Some(prefix.clone()),
        "KAFKA_CONSUMER_GROUP" => Some(group.clone()),
        _ => std::env::var(var).ok(),
    })?;
    let pool = seed(&settings, options.stores, options.products).await?;
    let stores = ids(&pool, "stores", "BENCH-", options.stores).await?;
    let products = Arc::new(ids(&pool, "products", "BENCH-SKU-", options.products).await?);
    // Sales of stock the benchmark never received: the stores allow negative stock, so
    // each sale is applied (201), as most sales of a stocked shop are.
    sqlx::query("UPDATE stores SET negative_stock_policy = 'allow' WHERE id = ANY($1)")
        .bind(&stores)
        .execute(&pool)
        .await?;
    service_kit::kafka::ensure_topics(&settings.kafka, &settings.topics(), None).await?;
    service_kit::schema_registry::SchemaRegistry::new(&settings.kafka.schema_registry)?
        .ensure_value_schemas(&settings.topics())
        .await?;
    let tokens = Arc::new(pos_tokens(&api.auth, &stores)?);

    let start = |binary: &std::path::Path, service: Service, port: u16| {
        Command::new(binary)
            .env("KAFKA_TOPIC_PREFIX", &prefix)
            .env("KAFKA_CONSUMER_GROUP", &group)
            .env(service.listen_var(), format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map(Service_)
            .map_err(|error| anyhow::anyhow!("starting {}: {error}", binary.display()))
    };
    let _processors = start(
        &options.processors,
        Service::Processors,
        options.processors_port,
    )?;
    wait_ready(options.processors_port).await?;
    let _ingest = start(&options.ingest, Service::Ingest, options.ingest_port)?;
    wait_ready(options.ingest_port).await?;
    let address = ([127, 0, 0, 1], options.ingest_port).into();

    let waiting = single_sales(tokens.clone(), products.clone(), "/v1/movements?wait=2s", 1);
    // Warm-up: connections, the group's assignment, the outcome subscriptions.
    load::closed_loop(
        address,
        options.wait_connections,
        Duration::from_secs(2),
        StatusCode::CREATED,
        waiting.clone(),
    )
    .await?;
    let outcome = load::closed_loop(
        address,
        options.wait_connections,
        Duration::from_secs(options.seconds),
        StatusCode::CREATED,
        waiting,
    )
    .await?;
    let mut rows = vec![Row::new(
        "POST /v1/movements?wait=2s (a sale, answered applied)",
        options.wait_connections,
        &outcome,
    )];

    // A steady rate through ingest; the processors' lag sampled every second meanwhile.
    let sampling = Arc::new(AtomicBool::new(true));
    let reader: Arc<BaseConsumer> = Arc::new(
        service_kit::kafka::consumer_config(&settings.kafka, "bazaar-bench-lag", &group)
            .create()?,
    );
    let sampler = {
        let sampling = sampling.clone();
        let (pool, topic, group) = (pool.clone(), settings.topics().movements(), group.clone());
        tokio::spawn(async move {
            let mut worst = 0_i64;
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            while sampling.load(Ordering::Relaxed) {
                ticker.tick().await;
                if let Ok(lag) = group_lag(&reader, &pool, &topic, &group).await {
                    worst = worst.max(lag);
                }
            }
            worst
        })
    };
    let steady = load::open_loop(
        address,
        256,
        options.steady_rate as u64,
        Duration::from_secs(options.steady_seconds),
        StatusCode::ACCEPTED,
        single_sales(tokens, products, "/v1/movements", 1),
    )
    .await?;
    sampling.store(false, Ordering::Relaxed);
    let worst = sampler.await?;
    rows.push(Row::new(
        format!(
            "steady {}/s through ingest for {} s, processors keeping up",
            options.steady_rate, options.steady_seconds
        ),
        256,
        &steady,
    ));
    Ok(Report {
        suite: "pipeline".into(),
        started_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        machine: crate::report::machine(),
        rows,
        notes: vec![format!(
            "the group's lag during the steady phase (end of the topic − offsets committed in Postgres), sampled every second: at most {worst} movements ({:.2} s' worth)",
            worst as f64 / options.steady_rate as f64
        )],
    })
}
