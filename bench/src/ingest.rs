//! The ingest benchmark: seeds a catalog of stores and products, starts the release
//! `ingest` binary against the benchmark stack, and loads it over loopback with POS
//! tokens (one per store, as devices have): single movements at several concurrencies and
//! at a fixed rate, then batches.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use rand::Rng;
use schemas::StoreId;
use service_kit::Settings;
use service_kit::auth::{Role, TokenKeys};
use service_kit::settings::{AuthSettings, IngestSettings};

use crate::load::{self, Shot};
use crate::report::{Report, Row};

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The ingest binary to start.
    #[arg(long, default_value = "target/release/ingest")]
    pub binary: std::path::PathBuf,
    #[arg(long, default_value_t = 58_081)]
    pub port: u16,
    #[arg(long, default_value_t = 1_000)]
    pub stores: i64,
    #[arg(long, default_value_t = 1_000)]
    pub products: i64,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Connections sending single movements, one phase each.
    #[arg(long = "connections", value_delimiter = ',', default_values_t = [64, 256, 512])]
    pub concurrencies: Vec<usize>,
    /// Movements per second of the steady phases.
    #[arg(long, value_delimiter = ',', default_values_t = [5_000, 10_000])]
    pub steady_rates: Vec<usize>,
    #[arg(long, default_value_t = 256)]
    pub steady_connections: usize,
    /// Movements per batch request.
    #[arg(long, default_value_t = 1_000)]
    pub batch_size: usize,
    /// Connections sending batches, one phase each.
    #[arg(long = "batch-connections", value_delimiter = ',', default_values_t = [4, 16])]
    pub batch_concurrencies: Vec<usize>,
}

/// Starts ingest on `port` with `env` on top of the benchmark's, and waits until it is ready.
async fn start(
    binary: &std::path::Path,
    port: u16,
    env: &[(&str, &str)],
) -> anyhow::Result<Service_> {
    let child = Command::new(binary)
        .env("INGEST_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|error| anyhow::anyhow!("starting {}: {error}", binary.display()))?;
    let service = Service_(child);
    wait_ready(port).await?;
    Ok(service)
}

/// Stops the child service when the benchmark ends, however it ends.
pub struct Service_(pub Child);

impl Drop for Service_ {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

pub async fn seed(settings: &Settings, stores: i64, products: i64) -> anyhow::Result<sqlx::PgPool> {
    let pool =
        service_kit::postgres::connect_and_migrate(&settings.database, "bazaar-bench").await?;
    sqlx::query(
        "INSERT INTO stores (code, name, city) SELECT 'BENCH-' || n, 'Bench store ' || n, 'Pune'
         FROM generate_series(1, $1) AS n ON CONFLICT (code) DO NOTHING",
    )
    .bind(stores)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO products (sku, name, unit) SELECT 'BENCH-SKU-' || n, 'Bench product ' || n, 'pc'
         FROM generate_series(1, $1) AS n ON CONFLICT (sku) DO NOTHING",
    )
    .bind(products)
    .execute(&pool)
    .await?;
    Ok(pool)
}

pub async fn ids(
    pool: &sqlx::PgPool,
    table: &str,
    prefix: &str,
    limit: i64,
) -> anyhow::Result<Vec<i64>> {
    let column = if table == "stores" { "code" } else { "sku" };
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM {table} WHERE {column} LIKE $1 ORDER BY id LIMIT $2"
    ))
    .bind(format!("{prefix}%"))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// `GET path` on a loopback port, the whole answer as text (headers included).
pub async fn get_text(port: u16, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

pub async fn wait_ready(port: u16) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream
                .write_all(b"GET /readyz HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
                .await?;
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            if answer.starts_with(b"HTTP/1.1 200") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the service did not become ready on port {port}")
}

/// Peak resident memory of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    memory_mib(pid, "VmHWM:")
}

/// A process's memory figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`) in MiB.
pub fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

pub fn sale(store: i64, product: i64) -> String {
    sale_of(store, product, 1)
}

/// A sale of `quantity`: 0 is refused by ingest's validation, before any Kafka work.
fn sale_of(store: i64, product: i64, quantity: i64) -> String {
    format!(
        r#"{{"movement_id":"{}","store_id":{store},"product_id":{product},"kind":"sale","quantity":{quantity},"unit_price_paise":2500,"device_id":"till-1"}}"#,
        uuid::Uuid::new_v4()
    )
}

/// One POS token per store, as devices have.
pub fn pos_tokens(auth: &AuthSettings, stores: &[i64]) -> anyhow::Result<Vec<(i64, HeaderValue)>> {
    let keys = TokenKeys::from_settings(auth)?;
    stores
        .iter()
        .map(|&store| {
            let (token, _) = keys
                .issue(&format!("pos-{store}"), Role::Pos, &[StoreId(store)])
                .ok_or_else(|| anyhow::anyhow!("this configuration cannot issue tokens"))?;
            anyhow::Ok((store, HeaderValue::from_str(&format!("Bearer {token}"))?))
        })
        .collect()
}

/// Single sales of `quantity` to random stores and products, posted to `path`.
pub fn single_sales(
    tokens: Arc<Vec<(i64, HeaderValue)>>,
    products: Arc<Vec<i64>>,
    path: &'static str,
    quantity: i64,
) -> impl Fn(usize, u64) -> Shot + Send + Sync + Clone + 'static {
    move |_worker: usize, _sequence: u64| {
        let mut rng = rand::rng();
        let (store, token) = &tokens[rng.random_range(0..tokens.len())];
        let product = products[rng.random_range(0..products.len())];
        Shot {
            path: path.into(),
            authorization: token.clone(),
            body: Bytes::from(sale_of(*store, product, quantity)),
            movements: 1,
            gzip: false,
        }
    }
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let IngestSettings {
        shared: settings,
        api,
        ..
    } = IngestSettings::from_lookup(|var| std::env::var(var).ok())?;
    let pool = seed(&settings, options.stores, options.products).await?;
    let stores = ids(&pool, "stores", "BENCH-", options.stores).await?;
    let products = Arc::new(ids(&pool, "products", "BENCH-SKU-", options.products).await?);
    let tokens = Arc::new(pos_tokens(&api.auth, &stores)?);

    let service = start(&options.binary, options.port, &[]).await?;
    let pid = service.0.id();
    let address: SocketAddr = ([127, 0, 0, 1], options.port).into();

    let single = single_sales(tokens.clone(), products.clone(), "/v1/movements", 1);
    let refused = single_sales(tokens.clone(), products.clone(), "/v1/movements", 0);
    let batch_size = options.batch_size;
    let batch = {
        let tokens = tokens.clone();
        let products = products.clone();
        move |_worker: usize, _sequence: u64| {
            let mut rng = rand::rng();
            let (store, token) = &tokens[rng.random_range(0..tokens.len())];
            let mut body = String::with_capacity(batch_size * 170 + 16);
            body.push_str(r#"{"movements":["#);
            for line in 0..batch_size {
                if line > 0 {
                    body.push(',');
                }
                body.push_str(&sale(*store, products[rng.random_range(0..products.len())]));
            }
            body.push_str("]}");
            Shot {
                path: "/v1/movements/batch".into(),
                authorization: token.clone(),
                body: Bytes::from(body),
                movements: batch_size as u64,
                gzip: false,
            }
        }
    };

    let seconds = Duration::from_secs(options.seconds);
    let mut rows = Vec::new();
    // Warm-up: connections, the producer's metadata, the allocator.
    load::closed_loop(
        address,
        64,
        Duration::from_secs(2),
        StatusCode::ACCEPTED,
        single.clone(),
    )
    .await?;
    for &connections in &options.concurrencies {
        let outcome = load::closed_loop(
            address,
            connections,
            seconds,
            StatusCode::ACCEPTED,
            single.clone(),
        )
        .await?;
        rows.push(Row::new(
            "POST /v1/movements, max throughput",
            connections,
            &outcome,
        ));
    }
    // The same requests, refused by validation: everything but the broker's work.
    let refused_at = 256;
    let refused = load::closed_loop(
        address,
        refused_at,
        seconds,
        StatusCode::BAD_REQUEST,
        refused,
    )
    .await?;
    rows.push(Row::new(
        "POST /v1/movements refused by validation (no Kafka)",
        refused_at,
        &refused,
    ));
    // The same again on an ingest whose rate limits are budgets of its own: the difference
    // is what sharing them through Redis costs.
    let local_port = options.port + 1;
    let local = start(
        &options.binary,
        local_port,
        &[("RATE_LIMITS_SHARED", "false")],
    )
    .await?;
    let refused_locally = load::closed_loop(
        ([127, 0, 0, 1], local_port).into(),
        refused_at,
        seconds,
        StatusCode::BAD_REQUEST,
        single_sales(tokens.clone(), products.clone(), "/v1/movements", 0),
    )
    .await?;
    drop(local);
    rows.push(Row::new(
        "the same, rate limits per instance (no Redis)",
        refused_at,
        &refused_locally,
    ));
    let accepted_at = rows
        .iter()
        .find(|row| row.connections == refused_at && row.scenario.ends_with("max throughput"))
        .map(|row| row.movements_per_second);
    for &rate in &options.steady_rates {
        let outcome = load::open_loop(
            address,
            options.steady_connections,
            rate as u64,
            seconds,
            StatusCode::ACCEPTED,
            single.clone(),
        )
        .await?;
        rows.push(Row::new(
            format!("POST /v1/movements, steady {rate}/s"),
            options.steady_connections,
            &outcome,
        ));
    }
    for &connections in &options.batch_concurrencies {
        let outcome =
            load::closed_loop(address, connections, seconds, StatusCode::OK, batch.clone()).await?;
        rows.push(Row::new(
            format!("POST /v1/movements/batch ({batch_size} lines)"),
            connections,
            &outcome,
        ));
    }
    let mut notes = vec![format!(
        "catalog: {} stores × {} products; one POS token per store; broker: {}",
        stores.len(),
        products.len(),
        settings.kafka.brokers
    )];
    if let Some(accepted) = accepted_at {
        notes.push(format!(
            "accepted single movements at {refused_at} connections: {:.2} of the rate of the same requests refused by validation",
            accepted / refused.per_second().max(1.0)
        ));
    }
    notes.push(format!(
        "shared rate limits (a Redis call a share) at {refused_at} connections: {:.2} of the rate of per-instance limits; p50 {:.2} ms against {:.2} ms",
        refused.per_second() / refused_locally.per_second().max(1.0),
        refused.percentile_ms(0.5),
        refused_locally.percentile_ms(0.5),
    ));
    if let Some(peak) = peak_rss_mib(pid) {
        notes.push(format!(
            "ingest peak resident memory (VmHWM): {peak:.0} MiB"
        ));
    }
    Ok(Report {
        suite: "ingest".into(),
        started_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        machine: crate::report::machine(),
        rows,
        notes,
    })
}
