//! History and reports read the stack's streaming standby (`DATABASE_READ_URL`), and
//! read-your-writes holds across it: with the standby's replay paused
//! (`pg_wal_replay_pause()`), a request with a consistency token it has not replayed is
//! answered by the primary, complete; one without a token gets the standby's answer.
//! Alone in its binary: pausing replay pauses it for every database of the stack.

use secrecy::ExposeSecret;
use serde_json::Value;
use sqlx::PgPool;
use system_tests::{Pipeline, recent_movements};

/// Resumes the standby's replay when dropped, also when an assertion failed.
struct Paused(PgPool);

impl Paused {
    async fn pause(standby: &PgPool) -> Self {
        sqlx::query("SELECT pg_wal_replay_pause()")
            .execute(standby)
            .await
            .unwrap();
        let paused = Self(standby.clone());
        for _ in 0..200 {
            let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
                .fetch_one(standby)
                .await
                .unwrap();
            if state == "paused" {
                return paused;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the standby's replay did not pause");
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let pool = self.0.clone();
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                sqlx::query("SELECT pg_wal_replay_resume()")
                    .execute(&pool)
                    .await
                    .unwrap();
            });
        });
    }
}

/// `bazaar_query_database_reads_total{server, why}` from query-api's `/metrics`.
async fn database_reads(pipeline: &Pipeline, server: &str, why: &str) -> u64 {
    let text = pipeline
        .client
        .get(format!("{}/metrics", pipeline.query))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (server, why) = (format!("server=\"{server}\""), format!("why=\"{why}\""));
    text.lines()
        .filter(|line| line.starts_with("bazaar_query_database_reads_total{"))
        .find(|line| line.contains(&server) && line.contains(&why))
        .map_or(0, |line| line.rsplit(' ').next().unwrap().parse().unwrap())
}

fn rows(body: &Value) -> usize {
    body["items"].as_array().unwrap().len()
}

async fn ledger_rows(pool: &PgPool) -> usize {
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM movements")
        .fetch_one(pool)
        .await
        .unwrap();
    usize::try_from(rows).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_reads_the_standby_and_a_token_it_has_not_replayed_reads_the_primary() {
    let pipeline = Pipeline::start(true).await;
    let standby_url = pipeline
        .stack
        .settings
        .database
        .read_url
        .clone()
        .expect("DATABASE_READ_URL is not set: run the tests the way `make test` does (`deploy/local/stack.sh env`)");
    let standby = PgPool::connect(standby_url.expose_secret()).await.unwrap();
    let admin = pipeline.admin();

    // Replayed: a token's read is answered by the standby, as is a read without one.
    let token = pipeline.post(&recent_movements(300, 7)).await;
    let replayed = database_reads(&pipeline, "standby", "replayed").await;
    let body = pipeline
        .read(
            &format!("/v1/movements?limit=1000&consistency_token={token}"),
            &admin,
        )
        .await;
    let before = ledger_rows(&pipeline.stack.pool).await;
    assert_eq!(rows(&body), before);
    assert_eq!(
        database_reads(&pipeline, "standby", "replayed").await,
        replayed + 1
    );
    let sales = pipeline
        .read(
            &format!("/v1/stores/1/reports/sales?consistency_token={token}"),
            &admin,
        )
        .await;
    let connected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'query-api' AND datname = current_database()",
    )
    .fetch_one(&standby)
    .await
    .unwrap();
    assert!(connected > 0, "query-api has no connection to the standby");

    // Paused: what the standby has not replayed is read from the primary, complete.
    let paused = Paused::pause(&standby).await;
    let token = pipeline.post(&recent_movements(100, 8)).await;
    let not_replayed = database_reads(&pipeline, "primary", "not_replayed").await;
    let body = pipeline
        .read(
            &format!("/v1/movements?limit=1000&consistency_token={token}"),
            &admin,
        )
        .await;
    let after = ledger_rows(&pipeline.stack.pool).await;
    assert!(after > before);
    assert_eq!(rows(&body), after, "a token's read missed its movements");
    let newer_sales = pipeline
        .read(
            &format!("/v1/stores/1/reports/sales?consistency_token={token}"),
            &admin,
        )
        .await;
    assert_ne!(
        newer_sales["totals"], sales["totals"],
        "the sales report with the newer token did not include its movements"
    );
    assert_eq!(
        database_reads(&pipeline, "primary", "not_replayed").await,
        not_replayed + 2
    );
    // Without a token: the standby as it is, which has not replayed them.
    let body = pipeline.read("/v1/movements?limit=1000", &admin).await;
    assert_eq!(
        rows(&body),
        before,
        "a read without a token did not read the standby"
    );

    // Resumed: the standby catches up and answers again.
    drop(paused);
    let started = std::time::Instant::now();
    loop {
        let body = pipeline.read("/v1/movements?limit=1000", &admin).await;
        if rows(&body) == after {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the standby did not catch up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let replayed = database_reads(&pipeline, "standby", "replayed").await;
    pipeline
        .read(
            &format!("/v1/movements?limit=1&consistency_token={token}"),
            &admin,
        )
        .await;
    assert_eq!(
        database_reads(&pipeline, "standby", "replayed").await,
        replayed + 1
    );
}
