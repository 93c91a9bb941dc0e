//! Every link encrypted and authenticated, as a deployment on managed Kafka, PostgreSQL
//! and Redis runs: the local stack's SASL_SSL listeners (SCRAM-SHA-512), PostgreSQL with
//! `sslmode=verify-full` (primary and standby) and Redis over `rediss://`, all signed by
//! the stack's own CA (`BAZAAR_TLS=1 deploy/local/stack.sh env`). A client that trusts
//! another CA, or gives the wrong password, gets nowhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use secrecy::SecretString;
use service_kit::Service;
use service_kit::redis::Redis;
use service_kit::settings::{KafkaSettings, RedisSettings};
use system_tests::{Pipeline, recent_movements};
use test_kit::{Model, STORES};
use test_kit::{TestStack, local_tls_env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_with_every_link_encrypted() {
    let stack = TestStack::start_with(&local_tls_env()).await;
    assert_eq!(stack.settings.kafka.security.protocol, "SASL_SSL");
    let pipeline = Pipeline::start_on(stack, true).await;
    let movements = recent_movements(300, 17);
    let model = Model::of(&movements);
    let token = pipeline.post(&movements).await;
    let admin = pipeline.admin();

    // Through ingest, Kafka, the processors, Postgres and Redis: the answers are the model's.
    for (store, ..) in STORES {
        let page = pipeline
            .read(
                &format!("/v1/stores/{store}/inventory?consistency_token={token}"),
                &admin,
            )
            .await;
        // From query-api's copies of the Redis hashes: Redis answered over TLS.
        assert_eq!(page["freshness"]["source"], "cache", "{page}");
        for item in page["items"].as_array().unwrap() {
            let product = item["product_id"].as_i64().unwrap();
            let expected = model
                .balances
                .get(&(store, product))
                .map_or(0, |balance| balance.0);
            assert_eq!(item["quantity"], expected, "{item}");
        }
        // Reports come from the standby, over TLS too.
        let summary = pipeline
            .read(
                &format!("/v1/stores/{store}/reports/stock-summary?consistency_token={token}"),
                &admin,
            )
            .await;
        assert!(summary["products"].as_i64().is_some(), "{summary}");
    }

    // PostgreSQL's own view: every connection to this test's database is encrypted.
    let (encrypted, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = current_database() AND a.backend_type = 'client backend'",
    )
    .fetch_one(&pipeline.stack.pool)
    .await
    .unwrap();
    assert!(encrypted > 1, "{encrypted} encrypted connections");
    assert_eq!(plain, 0, "connections without TLS");
}

/// A CA of the test's own, which signed nothing the stack serves.
fn another_ca() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bazaar-other-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=Not the stack's CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    dir.join("ca.crt")
}

fn kafka(vars: &HashMap<&str, String>) -> Result<(), rdkafka::error::KafkaError> {
    let settings = KafkaSettings::from_lookup(Service::Ingest, &|name| vars.get(name).cloned())
        .expect("Kafka settings");
    let client: BaseConsumer = service_kit::kafka::client_config(&settings).create()?;
    client
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|_| ())
}

async fn redis(vars: &HashMap<&str, String>) -> redis::RedisResult<()> {
    let settings = RedisSettings {
        url: SecretString::from(vars["REDIS_URL"].clone()),
        key_prefix: "bazaar-test:".to_owned(),
        tls_ca_file: Some(vars["REDIS_TLS_CA_FILE"].clone()),
    };
    Redis::new(&settings)?.ping().await
}

async fn postgres(vars: &HashMap<&str, String>) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&vars["DATABASE_URL"])
        .await?
        .close()
        .await
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_or_gives_the_wrong_password_is_refused() {
    let good: HashMap<&str, String> = local_tls_env().into_iter().collect();
    let ca = good["KAFKA_SSL_CA_LOCATION"].clone();
    let other = another_ca().to_string_lossy().into_owned();
    let bad: HashMap<&str, String> = good
        .iter()
        .map(|(name, value)| (*name, value.replace(&ca, &other)))
        .collect();

    // The stack's CA opens every door, so what follows is refused for the CA alone.
    kafka(&good).expect("Kafka over SASL_SSL with the stack's CA");
    redis(&good)
        .await
        .expect("Redis over TLS with the stack's CA");
    postgres(&good)
        .await
        .expect("PostgreSQL verify-full with the stack's CA");

    kafka(&bad).expect_err("Kafka trusted a certificate from another CA");
    redis(&bad)
        .await
        .expect_err("Redis trusted a certificate from another CA");
    let error = postgres(&bad)
        .await
        .expect_err("PostgreSQL trusted a certificate from another CA");
    assert!(error.to_string().contains("certificate"), "{error}");

    let mut wrong_password = good.clone();
    wrong_password.insert("KAFKA_SASL_PASSWORD", "not-the-password".to_owned());
    kafka(&wrong_password).expect_err("Kafka let in a wrong SCRAM password");
}
