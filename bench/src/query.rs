//! The query-api benchmark: 100 stores × 1,000 products whose balances went through the
//! processors (stock-ins on the topic → Postgres and Redis), a ledger of at least ten
//! million rows and 45 days of sales rollups beside them, then the release `query-api`
//! loaded over loopback: one product's stock, a store's whole inventory, a 30-day sales
//! report. The history and rollups are bulk-loaded once per benchmark database (they
//! stay in `.local/bench` between runs); the balances are made fresh each run.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use hyper::header::HeaderValue;
use rand::Rng;
use schemas::{MovementKind, ProductId, StockMovement, StoreId, SupplierId};
use service_kit::Service;
use service_kit::auth::{Role, TokenKeys};
use service_kit::settings::QueryApiSettings;

use crate::ingest::Service_ as Child;
use crate::load::{self, Shot};
use crate::report::{Report, Row};

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The query-api binary to start.
    #[arg(long, default_value = "target/release/query-api")]
    pub binary: std::path::PathBuf,
    /// The processors binary to start.
    #[arg(long, default_value = "target/release/processors")]
    pub processors: std::path::PathBuf,
    #[arg(long, default_value_t = 58_082)]
    pub port: u16,
    #[arg(long, default_value_t = 100)]
    pub stores: i64,
    #[arg(long, default_value_t = 1_000)]
    pub products: i64,
    /// Ledger rows written before reading.
    #[arg(long, default_value_t = 10_000_000)]
    pub ledger_rows: i64,
    /// Length of each read phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Event streams held open at once to measure their memory.
    #[arg(long, default_value_t = 1_000)]
    pub streams: usize,
}

const HISTORY_ACTOR: &str = "bench-history";
const ROLLUP_DAYS: i64 = 45;

/// The bulk history: `rows` sales spread over the last ~two months, and daily rollups.
async fn seed_history(
    pool: &sqlx::PgPool,
    stores: &[i64],
    products: &[i64],
    rows: i64,
) -> anyhow::Result<()> {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM movements WHERE actor = $1")
        .bind(HISTORY_ACTOR)
        .fetch_one(pool)
        .await?;
    sqlx::query("SELECT bazaar_ensure_movement_partitions(now() - interval '3 months', 4)")
        .execute(pool)
        .await?;
    let chunk = 1_000_000;
    let mut next = have;
    while next < rows {
        let size = chunk.min(rows - next);
        eprintln!("ledger history: rows {next}..{} of {rows}", next + size);
        sqlx::query(
            "INSERT INTO movements (movement_id, store_id, product_id, sku, kind, quantity, status,
                 balance_after, occurred_at, received_at, recorded_at, actor, device_id,
                 unit_price_paise, source_partition, source_offset)
             SELECT gen_random_uuid(), $1[1 + n % cardinality($1)],
                    $2[1 + (n / cardinality($1)) % cardinality($2)], 'BENCH-SKU', 'sale', 1, 'applied',
                    10, at, at, at, $3, 'till-1', 2500, 0, n
             FROM generate_series($4::bigint, $5::bigint) AS n,
                  LATERAL (SELECT now() - interval '1 hour' - n * interval '500 milliseconds') AS t(at)",
        )
        .bind(stores)
        .bind(products)
        .bind(HISTORY_ACTOR)
        .bind(next)
        .bind(next + size - 1)
        .execute(pool)
        .await?;
        next += size;
    }
    let rollups: i64 = sqlx::query_scalar("SELECT count(*) FROM sales_daily WHERE store_id = $1")
        .bind(stores[0])
        .fetch_one(pool)
        .await?;
    if rollups < ROLLUP_DAYS * products.len() as i64 {
        eprintln!(
            "sales rollups: {ROLLUP_DAYS} days × {} stores × {} products",
            stores.len(),
            products.len()
        );
        sqlx::query(
            "INSERT INTO sales_daily (store_id, day, product_id, units_sold, revenue_paise,
                 cost_of_goods_paise, sale_count, units_removed)
             SELECT s, (now() AT TIME ZONE 'Asia/Kolkata')::date - d::int, p,
                    1 + (p + d) % 7, (1 + (p + d) % 7) * 2500, (1 + (p + d) % 7) * 1800, 1 + (p + d) % 3, 0
             FROM unnest($1::bigint[]) AS s, generate_series(0, $3 - 1) AS d, unnest($2::bigint[]) AS p
             ON CONFLICT DO NOTHING",
        )
        .bind(stores)
        .bind(products)
        .bind(ROLLUP_DAYS)
        .execute(pool)
        .await?;
        sqlx::query(
            "INSERT INTO sales_daily_store (store_id, day, units_sold, revenue_paise,
                 cost_of_goods_paise, sale_count, units_removed)
             SELECT store_id, day, sum(units_sold), sum(revenue_paise), sum(cost_of_goods_paise),
                    sum(sale_count), sum(units_removed)
             FROM sales_daily WHERE store_id = ANY($1) GROUP BY store_id, day
             ON CONFLICT DO NOTHING",
        )
        .bind(stores)
        .execute(pool)
        .await?;
    }
    if have < rows {
        eprintln!("analysing the loaded tables");
        sqlx::query("ANALYZE movements").execute(pool).await?;
        sqlx::query("ANALYZE sales_daily").execute(pool).await?;
    }
    Ok(())
}

fn stock_in(store: i64, product: i64, supplier: i64) -> StockMovement {
    StockMovement {
        supplier_id: Some(SupplierId(supplier)),
        unit_cost_paise: Some(1_800),
        device_id: Some("till-1".into()),
        ..StockMovement::new(
            uuid::Uuid::new_v4(),
            StoreId(store),
            ProductId(product),
            "BENCH",
            MovementKind::StockIn,
            5 + product % 100,
            chrono::Utc::now(),
            "bench",
        )
    }
}

/// The path of a request for a store and a product.
type PathOf = fn(i64, i64) -> String;

fn get(path: String, authorization: &HeaderValue, gzip: bool) -> Shot {
    Shot {
        path: path.into(),
        authorization: authorization.clone(),
        body: bytes::Bytes::new(),
        movements: 1,
        gzip,
    }
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let prefix = format!("bench-{run_id}.");
    let group = format!("bench-query-{run_id}");
    let redis_prefix = format!("bench-{run_id}:");
    let QueryApiSettings {
        shared: settings,
        api,
        ..
    } = QueryApiSettings::from_lookup(|var| match var {
        "KAFKA_TOPIC_PREFIX" => Some(prefix.clone()),
        "KAFKA_CONSUMER_GROUP" => Some(group.clone()),
        "REDIS_KEY_PREFIX" => Some(redis_prefix.clone()),
        _ => std::env::var(var).ok(),
    })?;
    let (pool, stores, products, supplier) =
        crate::processors::catalog(&settings, options.stores, options.products).await?;
    let seeding = Instant::now();
    seed_history(&pool, &stores, &products, options.ledger_rows).await?;
    eprintln!("history ready in {:.0} s", seeding.elapsed().as_secs_f64());

    // Balances through the processors: one stock-in per store × product.
    let topics = settings.topics();
    service_kit::kafka::ensure_topics(&settings.kafka, &topics, None).await?;
    service_kit::schema_registry::SchemaRegistry::new(&settings.kafka.schema_registry)?
        .ensure_value_schemas(&topics)
        .await?;
    let topic = topics.movements();
    let producer = service_kit::kafka::producer(&settings.kafka, "bazaar-bench")?;
    let mut balances = 0;
    for store in &stores {
        let chunk: Vec<StockMovement> = products
            .iter()
            .map(|product| stock_in(*store, *product, supplier))
            .collect();
        balances += chunk.len() as i64;
        crate::processors::send(&producer, &topic, chunk).await?;
    }
    let env = [
        ("KAFKA_TOPIC_PREFIX", prefix.as_str()),
        ("KAFKA_CONSUMER_GROUP", group.as_str()),
        ("REDIS_KEY_PREFIX", redis_prefix.as_str()),
        ("RUST_LOG", "warn"),
    ];
    let processors = Child(
        Command::new(&options.processors)
            .envs(env)
            .env(Service::Processors.listen_var(), "127.0.0.1:18083")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while crate::processors::committed(&pool, &group).await? < balances {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the balances were not committed in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Redis is written right after each commit; give the last batch its moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(processors);

    let child = Child(
        Command::new(&options.binary)
            .envs(env)
            .env(
                Service::QueryApi.listen_var(),
                format!("127.0.0.1:{}", options.port),
            )
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = child.0.id();
    crate::ingest::wait_ready(options.port).await?;
    let address: SocketAddr = ([127, 0, 0, 1], options.port).into();
    // One manager per store, as dashboards would be (rate limits are per token).
    let keys = TokenKeys::from_settings(&api.auth)?;
    let stores: Arc<Vec<(i64, HeaderValue)>> = Arc::new(
        stores
            .iter()
            .map(|&store| {
                let (token, _) = keys
                    .issue(
                        &format!("manager-{store}"),
                        Role::Manager,
                        &[StoreId(store)],
                    )
                    .ok_or_else(|| anyhow::anyhow!("this configuration cannot issue tokens"))?;
                anyhow::Ok((store, HeaderValue::from_str(&format!("Bearer {token}"))?))
            })
            .collect::<Result<_, _>>()?,
    );
    let products = Arc::new(products);
    let duration = Duration::from_secs(options.seconds);
    let connections = options.connections;

    let mut rows = Vec::new();
    // Each scenario: a path for a random store (and product), with that store's token, and
    // whether it asks for gzip as browsers do.
    let scenarios: [(&str, PathOf, bool); 6] = [
        (
            "one product's stock",
            |store, product| format!("/v1/stores/{store}/inventory/{product}"),
            false,
        ),
        (
            "a store's inventory (1,000 items)",
            |store, _| format!("/v1/stores/{store}/inventory"),
            false,
        ),
        // The rendering's gzip is made once and reused, only the ending spliced on.
        (
            "a store's inventory, gzip (as browsers ask)",
            |store, _| format!("/v1/stores/{store}/inventory"),
            true,
        ),
        // `limit=5000` keeps every item but is not the whole-inventory request, so the
        // rendering is not reused: the cost of building it each time.
        (
            "a store's inventory, rendered each time",
            |store, _| format!("/v1/stores/{store}/inventory?limit=5000"),
            false,
        ),
        (
            "30-day sales report of a store, by day",
            |store, _| format!("/v1/stores/{store}/reports/sales"),
            false,
        ),
        (
            "30-day sales report of a store, by product",
            |store, _| format!("/v1/stores/{store}/reports/sales?group_by=product"),
            false,
        ),
    ];
    let read = |address: SocketAddr, path: PathOf, gzip: bool| {
        let (stores, products) = (stores.clone(), products.clone());
        let shots = move |_: usize, _: u64| {
            let mut rng = rand::rng();
            let (store, token) = &stores[rng.random_range(0..stores.len())];
            let product = products[rng.random_range(0..products.len())];
            get(path(*store, product), token, gzip)
        };
        load::closed_loop(address, connections, duration, StatusCode::OK, shots)
    };
    for (scenario, path, gzip) in scenarios {
        let outcome = read(address, path, gzip).await?;
        rows.push(Row::new(scenario, connections, &outcome));
    }
    // The first scenario again on a query-api whose rate limits are budgets of its own:
    // the difference is what sharing them through Redis costs.
    let local_port = options.port + 1;
    let local = Child(
        Command::new(&options.binary)
            .envs(env)
            .env("RATE_LIMITS_SHARED", "false")
            .env(
                Service::QueryApi.listen_var(),
                format!("127.0.0.1:{local_port}"),
            )
            .stdout(Stdio::null())
            .spawn()?,
    );
    crate::ingest::wait_ready(local_port).await?;
    let (scenario, path, gzip) = scenarios[0];
    let local_outcome = read(([127, 0, 0, 1], local_port).into(), path, gzip).await?;
    drop(local);
    let shared_rate = rows[0].movements_per_second;
    rows.push(Row::new(
        format!("{scenario}, rate limits per instance (no Redis)"),
        connections,
        &local_outcome,
    ));

    let ledger: i64 = sqlx::query_scalar("SELECT count(*) FROM movements")
        .fetch_one(&pool)
        .await?;
    let mut notes = vec![
        format!(
            "{} stores × {} products, balances through the processors into Redis and Postgres; {ledger} ledger rows; {ROLLUP_DAYS} days of sales rollups",
            stores.len(),
            products.len()
        ),
        "requests/s column: requests answered 200; movements/s column: the same count".into(),
    ];
    notes.push(format!(
        "shared rate limits (a Redis call a share): one product's stock at {:.2} of the rate with per-instance limits",
        shared_rate / local_outcome.per_second().max(1.0)
    ));
    notes.push(crate::streams::measure(address, pid, &stores, options.streams).await?);
    if let Some(peak) = crate::ingest::peak_rss_mib(pid) {
        notes.push(format!(
            "query-api peak resident memory (VmHWM): {peak:.0} MiB"
        ));
    }
    drop(child);
    Ok(Report {
        suite: "query-api".into(),
        started_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        machine: crate::report::machine(),
        rows,
        notes,
    })
}
