//! query-api's reads while the pipeline works: a consistency token waits for the
//! processors or says not yet; history pages return every row once while movements keep
//! arriving; polling gets `304 Not Modified` and bad parameters name the field; hot reads
//! from query-api's in-memory copies follow every batch.

use std::collections::HashSet;
use std::io::Read;

use reqwest::StatusCode;
use schemas::MovementKind;
use serde_json::Value;
use service_kit::auth::Role;
use system_tests::{Pipeline, recent_movements};
use test_kit::{Model, PRODUCTS, STORES};

use super::pipeline::{expected_inventory, listed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistency_token_waits_for_the_processors_or_says_not_yet() {
    let mut pipeline = Pipeline::start(false).await;
    let admin = pipeline.admin();
    let movements = recent_movements(20, 5);
    let token = pipeline.post(&movements).await;

    let path = format!("/v1/stores/1/inventory?consistency_token={token}");
    let (status, headers, body) = pipeline.get_from(&pipeline.query, &path, &admin, &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "not_yet_consistent");
    assert!(headers.contains_key("retry-after"));
    let (status, _, body) = pipeline
        .get_from(
            &pipeline.query,
            "/v1/movements?consistency_token=nonsense",
            &admin,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "consistency_token");

    pipeline.start_processor().await;
    let model = Model::of(&movements);
    let page = pipeline.read(&path, &admin).await;
    assert_eq!(
        listed(page["items"].as_array().unwrap()),
        expected_inventory(&model, 1)
    );
    let last = movements.last().unwrap().movement_id;
    let outcome = pipeline
        .read(
            &format!("/v1/movements/{last}?consistency_token={token}"),
            &admin,
        )
        .await;
    assert_eq!(outcome["movement_id"], last.to_string());
    pipeline.stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_return_every_row_once_while_movements_keep_arriving() {
    let pipeline = Pipeline::start(true).await;
    let admin = pipeline.admin();
    let first = recent_movements(400, 21);
    let token = pipeline.post(&first).await;
    let _ = pipeline
        .read(
            &format!("/v1/movements?limit=1&consistency_token={token}"),
            &admin,
        )
        .await;
    let before: HashSet<String> = pipeline
        .all_pages("/v1/movements?limit=1000", &admin, async || {})
        .await
        .iter()
        .map(|row| format!("{}@{}", row["source_partition"], row["source_offset"]))
        .collect();
    assert_eq!(before.len(), first.len());

    let mut more = recent_movements(600, 22).into_iter();
    let rows = pipeline
        .all_pages("/v1/movements?limit=23", &admin, async || {
            let batch: Vec<_> = more.by_ref().take(40).collect();
            if !batch.is_empty() {
                pipeline.post(&batch).await;
            }
        })
        .await;
    let mut seen = HashSet::new();
    for row in &rows {
        let key = format!("{}@{}", row["source_partition"], row["source_offset"]);
        assert!(seen.insert(key), "a row came twice: {row}");
    }
    assert!(
        before.is_subset(&seen),
        "every row there before paging began was returned"
    );
    pipeline.stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_gets_not_modified_and_bad_parameters_name_the_field() {
    let pipeline = Pipeline::start(true).await;
    let movements = recent_movements(50, 41);
    let token = pipeline.post(&movements).await;
    let admin = pipeline.admin();
    let path = format!("/v1/stores/1/inventory?consistency_token={token}");
    let (status, headers, plain) = pipeline.get_from(&pipeline.query, &path, &admin, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    // A browser's request gets the same inventory gzipped (the rendering's gzip, made
    // once, with this answer's freshness spliced on): one valid member, CRC and length.
    let response = pipeline
        .client
        .get(format!("{}{path}", pipeline.query))
        .bearer_auth(&admin)
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    let gzipped = response.bytes().await.unwrap();
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    let unzipped: serde_json::Value = serde_json::from_slice(&unzipped).unwrap();
    assert_eq!(unzipped["items"], plain["items"], "{unzipped}");
    assert!(unzipped["freshness"]["processed"].is_object(), "{unzipped}");
    let (status, _, body) = pipeline
        .get_from(
            &pipeline.query,
            "/v1/stores/1/inventory",
            &admin,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED, "{body}");
    let (status, headers, _) = pipeline
        .get_from(
            &pipeline.query,
            "/v1/stores/1/reports/sales",
            &admin,
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("content-encoding").map(|v| v.to_str().unwrap()),
        Some("gzip")
    );

    // A stock-in changes the store's inventory, so its tag.
    let mut extra = movements
        .iter()
        .find(|m| m.store_id.get() == 1 && m.kind == MovementKind::StockIn)
        .unwrap()
        .clone();
    extra.movement_id = uuid::Uuid::new_v4();
    let token = pipeline.post(&[extra]).await;
    let (status, headers, _) = pipeline
        .get_from(
            &pipeline.query,
            &format!("/v1/stores/1/inventory?consistency_token={token}"),
            &admin,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(headers["etag"].to_str().unwrap(), etag);

    // Catalog changes through ingest are in the audit log, for admins.
    let response = pipeline
        .client
        .patch(format!("{}/v1/products/2", pipeline.ingest))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "Masala chai 250 g"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let audit = pipeline
        .read_until(
            "/v1/audit?entity_type=product&entity_id=2&actor=tester",
            &admin,
            "the standby to replay the audit entry",
            |audit| {
                audit["items"]
                    .as_array()
                    .is_some_and(|items| !items.is_empty())
            },
        )
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["after"]["name"], "Masala chai 250 g", "{audit}");
    assert_eq!(entry["before"]["name"], "SKU-2", "{audit}");
    assert_eq!(entry["action"], "update");
    let manager = pipeline.token(Role::Manager, &[1]);
    let (status, _, _) = pipeline
        .get_from(&pipeline.query, "/v1/audit", &manager, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for (path, field) in [
        ("/v1/stores/1/inventory?limit=0", "limit"),
        ("/v1/stores/1/inventory?cursor=zzz", "cursor"),
        ("/v1/stores/1/inventory?stock_status=plenty", "stock_status"),
        ("/v1/stores/1/reports/sales?from=2026-02-30", "from"),
        (
            "/v1/stores/1/reports/sales?from=2026-11-10&to=2026-11-01",
            "to",
        ),
        (
            "/v1/stores/1/reports/sales?from=2024-01-01&to=2026-01-01",
            "from",
        ),
        ("/v1/stores/1/reports/sales?group_by=week", "group_by"),
        ("/v1/movements?kind=gift", "kind"),
        ("/v1/movements?from=yesterday", "from"),
        ("/v1/alerts?active=maybe", "active"),
    ] {
        let (status, _, body) = pipeline.get_from(&pipeline.query, path, &admin, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
    }
    let (status, _, _) = pipeline
        .get_from(&pipeline.query, "/v1/stores/99/inventory", &admin, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = pipeline
        .get_from(&pipeline.query, "/v1/stores/1/inventory/99", &admin, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = pipeline
        .get_from(
            &pipeline.query,
            &format!("/v1/movements/{}", uuid::Uuid::new_v4()),
            &admin,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    pipeline.stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reads_from_query_apis_copies_follow_every_batch() {
    let pipeline = Pipeline::start(true).await;
    let admin = pipeline.admin();
    let movements = recent_movements(600, 23);
    let metrics = format!("{}/metrics", pipeline.query);
    let hits = || async {
        let text = test_kit::get_text(&pipeline.client, &metrics).await;
        text.lines()
            .find(|line| line.starts_with("bazaar_query_replica_reads_total{result=\"hit\""))
            .and_then(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let quantity = |body: &Value| body["quantity"].as_i64().unwrap();
    let mut posted = 0;
    for chunk in movements.chunks(100) {
        posted += chunk.len();
        let model = Model::of(&movements[..posted]);
        let token = pipeline.post(chunk).await;
        for (store, ..) in STORES {
            for product in 1..=PRODUCTS {
                let expected = model.balances.get(&(store, product)).map_or(0, |b| b.0);
                let path = format!("/v1/stores/{store}/inventory/{product}");
                // With the token: this batch is in the answer, from a copy or not.
                let read = pipeline
                    .read(&format!("{path}?consistency_token={token}"), &admin)
                    .await;
                assert_eq!(quantity(&read), expected, "{path} after {posted}: {read}");
                // Without: a copy taken before the batch is dropped by its notice, and the
                // cache answers with the batch in. (Postgres answers for a second after a
                // Redis call slower than 250 ms, which a loaded machine sometimes makes.)
                pipeline
                    .read_until(&path, &admin, "the cache's answer", |body| {
                        quantity(body) == expected && body["freshness"]["source"] == "cache"
                    })
                    .await;
            }
            // The whole inventory agrees with the single reads.
            let page = pipeline
                .read(&format!("/v1/stores/{store}/inventory"), &admin)
                .await;
            for item in page["items"].as_array().unwrap() {
                let product = item["product_id"].as_i64().unwrap();
                let expected = model.balances.get(&(store, product)).map_or(0, |b| b.0);
                assert_eq!(quantity(item), expected, "store {store}: {item}");
            }
        }
    }
    assert!(hits().await > 0, "no read was answered from the copies");
}
