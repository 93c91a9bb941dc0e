//! Store scope across the pipeline: a user of one store gets another store's data on no
//! route — refused where the store is named, filtered out where it is not.

use reqwest::StatusCode;
use serde_json::json;
use service_kit::auth::Role;
use system_tests::{Pipeline, recent_movements};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_stores_data_is_refused_or_filtered_out_on_every_route() {
    let pipeline = Pipeline::start(true).await;
    let movements = recent_movements(200, 31);
    let token = pipeline.post(&movements).await;
    let admin = pipeline.admin();
    let _ = pipeline
        .read(
            &format!("/v1/movements?limit=1&consistency_token={token}"),
            &admin,
        )
        .await;
    let manager = pipeline.token(Role::Manager, &[1]);
    let other = movements
        .iter()
        .find(|m| m.store_id.get() == 2)
        .unwrap()
        .movement_id;

    // Store 1 reuses store 2's movement id, and one of its own for another quantity: both
    // are store 1's conflicts; store 2's movement shows nothing of store 1's reuse.
    let own = movements.iter().find(|m| m.store_id.get() == 1).unwrap();
    let mut changed = own.clone();
    changed.quantity += 1;
    let mut reused = own.clone();
    reused.movement_id = other;
    let token = pipeline.post(&[changed, reused]).await;
    let outcome = pipeline
        .read(
            &format!(
                "/v1/movements/{}?consistency_token={token}",
                own.movement_id
            ),
            &admin,
        )
        .await;
    let conflicts = outcome["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{outcome}");
    assert_eq!(conflicts[0]["status"], "conflict");
    assert_eq!(conflicts[0]["reject_reason"], "idempotency_key_reused");
    assert_eq!(conflicts[0]["quantity"], own.quantity + 1);
    let outcome = pipeline
        .read(&format!("/v1/movements/{other}"), &admin)
        .await;
    assert_eq!(outcome["store_id"], 2, "{outcome}");
    assert_eq!(outcome["conflicts"], json!([]), "{outcome}");
    let listed = pipeline
        .read("/v1/movements?status=conflict&store_id=1", &admin)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");

    for path in [
        "/v1/stores/2/inventory".to_owned(),
        "/v1/stores/2/inventory/1".to_owned(),
        "/v1/stores/2/reports/stock-summary".to_owned(),
        "/v1/stores/2/reports/valuation".to_owned(),
        "/v1/stores/2/reports/sales".to_owned(),
        "/v1/stores/2/reports/suppliers".to_owned(),
        "/v1/movements?store_id=2".to_owned(),
        format!("/v1/movements/{other}"),
        "/v1/alerts?store_id=2".to_owned(),
        "/v1/audit".to_owned(),
    ] {
        let (status, _, body) = pipeline
            .get_from(&pipeline.query, &path, &manager, &[])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let listed_rows = pipeline
        .all_pages("/v1/movements?limit=500", &manager, async || {})
        .await;
    assert!(!listed_rows.is_empty());
    assert!(listed_rows.iter().all(|row| row["store_id"] == 1));
    let alerts = pipeline.read("/v1/alerts", &manager).await;
    assert!(
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["store_id"] == 1)
    );
    let across = pipeline.read("/v1/products/1/inventory", &manager).await;
    assert!(
        across["stores"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["store_id"] == 1)
    );

    // Roles: a POS token reads no inventory; staff reads inventory but no reports.
    let pos = pipeline.token(Role::Pos, &[1]);
    let (status, _, _) = pipeline
        .get_from(&pipeline.query, "/v1/stores/1/inventory", &pos, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let staff = pipeline.token(Role::Staff, &[1]);
    let (status, _, _) = pipeline
        .get_from(&pipeline.query, "/v1/stores/1/inventory", &staff, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = pipeline
        .get_from(&pipeline.query, "/v1/stores/1/reports/sales", &staff, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    pipeline.stack.cleanup().await;
}
