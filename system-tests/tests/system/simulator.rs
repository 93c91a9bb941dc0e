//! The POS simulator against the whole pipeline: it logs in, opens its stores with stock,
//! sells, restocks, moves stock between its stores, retries and syncs offline tills
//! through ingest, and at the end
//! query-api's balances (read with the consistency token of everything it sent) equal its
//! own model exactly.

use pos_sim::api::Api;
use pos_sim::sim::{self, Options};
use system_tests::Pipeline;

const PASSWORD: &str = "the-simulators-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_model_equals_query_apis_balances_after_a_bounded_run() {
    let pipeline = Pipeline::start(true).await;
    ingest::users::ensure_admin(&pipeline.stack.pool, "admin", PASSWORD.into())
        .await
        .unwrap();
    let api = Api::login(&pipeline.ingest, &pipeline.query, "admin", PASSWORD)
        .await
        .unwrap();
    let options = Options {
        movements: 1_500,
        workers: 2,
        progress: false,
        duplicate_share: 0.05,
        offline_share: 0.1,
        ..Options::default()
    };
    let summary = sim::run(&api, &options).await.unwrap();
    assert_eq!(summary.refused, 0, "{summary:?}");
    assert!(
        summary.accepted > 1_000 && summary.accepted == summary.sent,
        "{summary:?}"
    );
    assert!(
        summary.duplicates > 0 && summary.offline_batches > 0 && summary.transfers > 0,
        "{summary:?}"
    );
    assert!(summary.checked >= 10, "{summary:?}");
    assert_eq!(summary.mismatches, [], "{summary:?}");

    // A second run starts from the balances the first left.
    let again = sim::run(
        &api,
        &Options {
            movements: 300,
            ..options
        },
    )
    .await
    .unwrap();
    assert_eq!(again.mismatches, [], "{again:?}");
    pipeline.stack.cleanup().await;
}
