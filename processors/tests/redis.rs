//! Redis is a cache: stopped mid-stream, processing goes on; restarted (empty), the
//! balances in Redis are rebuilt and equal Postgres again.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use secrecy::SecretString;
use test_kit::TestStack;
use test_kit::*;

/// A Redis of this test's own, on a port nobody else uses, without persistence.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (installed by `make up`)");
        Self { port, child }
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private Redis did not start");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn redis_balances(
    url: &str,
    stores: &[i64],
    prefix: &str,
) -> Option<BTreeMap<(i64, i64), i64>> {
    let client = redis::Client::open(url).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let mut balances = BTreeMap::new();
    for store in stores {
        let key = format!(
            "{prefix}{}",
            schemas::cache::balances_key(schemas::StoreId(*store))
        );
        let entries: BTreeMap<i64, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .ok()?;
        for (product, json) in entries {
            let balance: schemas::cache::CachedBalance = serde_json::from_str(&json).ok()?;
            balances.insert((*store, product), balance.quantity);
        }
    }
    Some(balances)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_and_restarted_processing_goes_on_and_the_cache_is_rebuilt() {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let port = PrivateRedis::free_port();
    let redis = PrivateRedis::start(port);
    redis.wait_ready().await;
    let url = format!("redis://127.0.0.1:{port}");
    let mut settings = stack.processors_settings();
    settings.shared.redis.url = SecretString::from(url.clone());
    let prefix = settings.shared.redis.key_prefix.clone();
    let app = processors::App::build(settings).await.unwrap();
    let _stop = test_kit::background(|stopped| app.run_until_stopped(stopped));

    let topic = stack.settings.topics().movements();
    let producer = producer(&stack);
    let movements = movements(3_000, 5);
    produce(&producer, &topic, &movements[..1_000]).await;
    wait_committed(&stack, 1_000, Duration::from_secs(60)).await;

    drop(redis);
    produce(&producer, &topic, &movements[1_000..2_000]).await;
    wait_committed(&stack, 2_000, Duration::from_secs(60)).await;

    let redis = PrivateRedis::start(port);
    redis.wait_ready().await;
    produce(&producer, &topic, &movements[2_000..]).await;
    wait_committed(&stack, 3_000, Duration::from_secs(60)).await;

    let model = Model::of(&movements);
    assert_state_matches(&stack.pool, &model).await;
    let expected: BTreeMap<(i64, i64), i64> = model
        .balances
        .iter()
        .map(|(key, (quantity, _))| (*key, *quantity))
        .collect();
    let stores: Vec<i64> = STORES.iter().map(|store| store.0).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let cached = redis_balances(&url, &stores, &prefix).await;
        if cached.as_ref() == Some(&expected) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis never caught up with Postgres: {cached:?} vs {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(redis);
}
