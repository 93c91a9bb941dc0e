//! Both APIs keep their OpenAPI contract under fuzzing: schemathesis (pinned, installed by
//! `deploy/local/tools.sh`) reads each service's `/openapi.json`, sends examples, boundary
//! values and random (also invalid) requests to every operation with a fixed seed and a
//! bounded number of cases, and fails on any 5xx, on any status code a route does not
//! declare and on any content type it does not declare.

use std::process::Command;

use system_tests::Pipeline;

/// Cases per operation and phase: enough to reach every declared parameter's bounds and a
/// spread of random bodies, few enough for `make test`.
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261203";

fn schemathesis() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/tools.sh");
    let output = Command::new("bash")
        .args([script, "schemathesis"])
        .output()
        .expect("running deploy/local/tools.sh");
    assert!(
        output.status.success(),
        "installing schemathesis: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn fuzz(base: &str, token: &str) {
    let report = report_dir();
    let output = Command::new(schemathesis())
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--generation-database", "none", "--workers", "1"])
        .args(["--request-timeout", "20", "--no-color"])
        // An event stream answers for as long as its token lives: schemathesis would wait
        // for the end of its body. Its answers are tested in `events`.
        .args(["--exclude-path", "/v1/stores/{id}/events"])
        .arg("--report-dir")
        .arg(&report)
        // Its cache goes where it runs: not into the repository.
        .current_dir(&report)
        .output()
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{base}: schemathesis found responses outside the contract\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn report_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bazaar-contract-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_answers_only_what_its_openapi_document_declares() {
    let pipeline = Pipeline::start(true).await;
    let (ingest, admin) = (pipeline.ingest.clone(), pipeline.admin());
    tokio::task::spawn_blocking(move || fuzz(&ingest, &admin))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_answers_only_what_its_openapi_document_declares() {
    let pipeline = Pipeline::start(true).await;
    let (query, admin) = (pipeline.query.clone(), pipeline.admin());
    tokio::task::spawn_blocking(move || fuzz(&query, &admin))
        .await
        .unwrap();
}
