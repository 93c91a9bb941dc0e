//! A data team's first hour, run: the Python example (`examples/python/daily_sales.py`:
//! the Confluent Kafka client, its Avro deserializer through the schema registry, DuckDB)
//! reads the ledger topic as `read_committed`, dedupes by (source_partition,
//! source_offset) and builds daily sales — equal, store by store and day by day, to
//! query-api's sales report over the same days.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use chrono::{Days, Utc};
use serde_json::Value;
use system_tests::{Pipeline, recent_movements};
use test_kit::{STORES, wait_published};

/// (store, day) → units sold, revenue, sales, units removed; days with none of them left out.
type Table = BTreeMap<(i64, String), [i64; 4]>;

fn figures(row: &Value) -> [i64; 4] {
    ["units_sold", "revenue_paise", "sales", "units_removed"].map(|field| {
        row[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{field} in {row}"))
    })
}

fn insert(table: &mut Table, store: i64, day: &str, figures: [i64; 4]) {
    if figures != [0; 4] {
        table.insert((store, day.to_owned()), figures);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_examples_daily_sales_equal_query_apis_sales_report() {
    let pipeline = Pipeline::start(true).await;
    let token = pipeline.post(&recent_movements(400, 81)).await;
    let (from, to) = (
        Utc::now().date_naive() - Days::new(4),
        Utc::now().date_naive() + Days::new(1),
    );
    let mut report = Table::new();
    for (store, ..) in STORES {
        let body = pipeline
            .read(
                &format!(
                    "/v1/stores/{store}/reports/sales?group_by=day&from={from}&to={to}\
                     &consistency_token={token}"
                ),
                &pipeline.admin(),
            )
            .await;
        for row in body["rows"].as_array().unwrap() {
            insert(
                &mut report,
                store,
                row["day"].as_str().unwrap(),
                figures(row),
            );
        }
    }
    assert!(!report.is_empty(), "the movements made no sales");
    // What the report counts is committed; the example reads what is published of it.
    wait_published(&pipeline.stack, Duration::from_secs(60)).await;

    let python = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/local/tools.sh"
        ))
        .arg("examples")
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let settings = &pipeline.stack.settings;
    let mut example = Command::new(String::from_utf8(python.stdout).unwrap().trim());
    example
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/python/daily_sales.py"
        ))
        .args(["--bootstrap", &settings.kafka.brokers])
        .args(["--registry", &settings.kafka.schema_registry])
        .args(["--topic-prefix", &settings.kafka.topic_prefix]);
    for (store, zone, ..) in STORES {
        example.args(["--store-timezone", &format!("{store}={zone}")]);
    }
    let output = example.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let mut table = Table::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        insert(
            &mut table,
            row["store_id"].as_i64().unwrap(),
            row["day"].as_str().unwrap(),
            figures(&row),
        );
    }
    assert_eq!(
        table, report,
        "the example's table ({stderr}) and query-api's report"
    );
}
