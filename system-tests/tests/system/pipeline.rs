//! query-api over data that went through the real pipeline: movements posted to ingest,
//! through Kafka and the processors into Postgres and Redis. Every endpoint's numbers
//! equal the independent model's; the same answers come from Postgres when Redis has
//! nothing or is down. Reads while the pipeline works: `reads`; store scope: `store_scope`.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use reqwest::StatusCode;
use serde_json::Value;
use system_tests::{Pipeline, recent_movements};
use test_kit::{Model, PRODUCTS, REORDER_POINT, STORES};

pub(super) fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

/// (quantity, average cost) per product of `store` as an inventory lists it.
pub(super) fn listed(items: &[Value]) -> BTreeMap<i64, (i64, Option<i64>)> {
    items
        .iter()
        .map(|item| {
            (
                int(&item["product_id"]),
                (
                    int(&item["quantity"]),
                    item["average_unit_cost_paise"].as_i64(),
                ),
            )
        })
        .collect()
}

/// What the model says a store's inventory lists: every product it holds, and in store 1
/// (which has settings for every product) the others at 0.
pub(super) fn expected_inventory(model: &Model, store: i64) -> BTreeMap<i64, (i64, Option<i64>)> {
    let mut expected: BTreeMap<i64, (i64, Option<i64>)> = model
        .balances
        .iter()
        .filter(|((s, _), _)| *s == store)
        .map(|((_, product), balance)| (*product, *balance))
        .collect();
    if store == 1 {
        for product in 1..=PRODUCTS {
            expected.entry(product).or_insert((0, None));
        }
    }
    expected
}

pub(super) fn status_of(quantity: i64, store: i64) -> &'static str {
    if quantity <= 0 {
        "out"
    } else if store == 1 && quantity <= REORDER_POINT {
        "low"
    } else {
        "in_stock"
    }
}

/// Every inventory-shaped answer of both stores, without `freshness`: to compare sources.
async fn current_answers(pipeline: &Pipeline, base: &str) -> Vec<Value> {
    let admin = pipeline.admin();
    let mut answers = Vec::new();
    let mut paths = vec!["/v1/products/1/inventory".to_owned()];
    for (store, ..) in STORES {
        paths.push(format!("/v1/stores/{store}/inventory"));
        paths.push(format!("/v1/stores/{store}/reports/stock-summary"));
        paths.push(format!(
            "/v1/stores/{store}/reports/valuation?group_by=product"
        ));
        for product in 1..=PRODUCTS {
            paths.push(format!("/v1/stores/{store}/inventory/{product}"));
        }
    }
    for path in paths {
        let (status, _, mut body) = pipeline.get_from(base, &path, &admin, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body.as_object_mut().unwrap().remove("freshness");
        answers.push(body);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_equals_the_model_of_what_went_through_the_pipeline() {
    let mut pipeline = Pipeline::start(true).await;
    let movements = recent_movements(800, 11);
    let model = Model::of(&movements);
    let token = pipeline.post(&movements).await;
    let admin = pipeline.admin();

    // Read-your-writes: with the last batch's token, the answer includes every movement.
    for (store, ..) in STORES {
        let page = pipeline
            .read(
                &format!("/v1/stores/{store}/inventory?consistency_token={token}"),
                &admin,
            )
            .await;
        assert_eq!(page["freshness"]["source"], "cache", "{page}");
        let items = page["items"].as_array().unwrap();
        assert_eq!(
            listed(items),
            expected_inventory(&model, store),
            "store {store}"
        );
        for item in items {
            let quantity = int(&item["quantity"]);
            assert_eq!(item["stock_status"], status_of(quantity, store), "{item}");
            let value = item["average_unit_cost_paise"]
                .as_i64()
                .map(|cost| quantity.max(0) * cost);
            assert_eq!(item["value_paise"].as_i64(), value, "{item}");
            assert_eq!(
                item["category"],
                if int(&item["product_id"]) % 2 == 1 {
                    "staples"
                } else {
                    "snacks"
                }
            );
        }

        // One product at a time agrees with the list.
        for product in 1..=PRODUCTS {
            let one = pipeline
                .read(&format!("/v1/stores/{store}/inventory/{product}"), &admin)
                .await;
            let expected = model
                .balances
                .get(&(store, product))
                .map_or(0, |balance| balance.0);
            assert_eq!(int(&one["quantity"]), expected, "{one}");
        }

        // Filters.
        let low = pipeline
            .read(
                &format!("/v1/stores/{store}/inventory?below_reorder_point=true"),
                &admin,
            )
            .await;
        let expected_low: Vec<i64> = expected_inventory(&model, store)
            .iter()
            .filter(|(_, (quantity, _))| status_of(*quantity, store) != "in_stock")
            .map(|(product, _)| *product)
            .collect();
        let got_low: Vec<i64> = low["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| int(&item["product_id"]))
            .collect();
        assert_eq!(
            got_low, expected_low,
            "below reorder point in store {store}"
        );
        let snacks = pipeline
            .read(
                &format!("/v1/stores/{store}/inventory?category=snacks&limit=1"),
                &admin,
            )
            .await;
        assert!(
            snacks["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|item| item["category"] == "snacks")
        );

        // Stock summary.
        let summary = pipeline
            .read(
                &format!("/v1/stores/{store}/reports/stock-summary?consistency_token={token}"),
                &admin,
            )
            .await;
        let inventory = expected_inventory(&model, store);
        let units: i64 = inventory
            .values()
            .map(|(quantity, _)| quantity.max(&0))
            .sum();
        let value: i64 = inventory
            .values()
            .map(|(quantity, cost)| quantity.max(&0) * cost.unwrap_or(0))
            .sum();
        assert_eq!(int(&summary["products"]), inventory.len() as i64);
        assert_eq!(int(&summary["units"]), units);
        assert_eq!(int(&summary["value_paise"]), value);
        let uncosted = || {
            inventory
                .values()
                .filter(|(quantity, cost)| *quantity > 0 && cost.is_none())
        };
        assert_eq!(
            int(&summary["uncosted_in_stock"]),
            uncosted().count() as i64
        );
        let out = inventory
            .values()
            .filter(|(quantity, _)| *quantity <= 0)
            .count() as i64;
        assert_eq!(int(&summary["out_of_stock"]), out);
        let valuation = pipeline
            .read(
                &format!("/v1/stores/{store}/reports/valuation?consistency_token={token}"),
                &admin,
            )
            .await;
        assert_eq!(int(&valuation["total_value_paise"]), value);
        assert_eq!(
            int(&valuation["total_units_without_cost"]),
            uncosted().map(|(quantity, _)| quantity).sum::<i64>()
        );

        // Sales by day and by product over the whole stream.
        let days: Vec<NaiveDate> = model
            .sales
            .keys()
            .filter(|(s, ..)| *s == store)
            .map(|(_, day, _)| *day)
            .chain(
                model
                    .sourcing
                    .keys()
                    .filter(|(s, ..)| *s == store)
                    .map(|(_, day, ..)| *day),
            )
            .collect();
        let (first, last) = (days.iter().min().unwrap(), days.iter().max().unwrap());
        // With the token: reports read the standby only once it has replayed the movements.
        let range = format!("from={first}&to={last}&consistency_token={token}");
        let by_day = pipeline
            .read(&format!("/v1/stores/{store}/reports/sales?{range}"), &admin)
            .await;
        let mut expected_days: BTreeMap<String, (i64, i64, i64, i64, i64)> = BTreeMap::new();
        for ((s, day, _), figures) in &model.sales {
            if *s == store {
                let entry = expected_days.entry(day.to_string()).or_default();
                entry.0 += figures.0;
                entry.1 += figures.1;
                entry.2 += figures.2;
                entry.3 += figures.3;
                entry.4 += figures.4;
            }
        }
        let got_days: BTreeMap<String, (i64, i64, i64, i64, i64)> = by_day["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                assert_eq!(
                    int(&row["margin_paise"]),
                    int(&row["revenue_paise"]) - int(&row["cost_of_goods_paise"])
                );
                (
                    row["day"].as_str().unwrap().to_owned(),
                    (
                        int(&row["units_sold"]),
                        int(&row["revenue_paise"]),
                        int(&row["cost_of_goods_paise"]),
                        int(&row["sales"]),
                        int(&row["units_removed"]),
                    ),
                )
            })
            .collect();
        assert_eq!(
            got_days, expected_days,
            "sales by local day in store {store}"
        );
        let units_sold: i64 = expected_days.values().map(|figures| figures.0).sum();
        assert_eq!(int(&by_day["totals"]["units_sold"]), units_sold);
        let by_product = pipeline
            .read(
                &format!("/v1/stores/{store}/reports/sales?{range}&group_by=product"),
                &admin,
            )
            .await;
        for row in by_product["rows"].as_array().unwrap() {
            let product = int(&row["product_id"]);
            let revenue: i64 = model
                .sales
                .iter()
                .filter(|((s, _, p), _)| *s == store && *p == product)
                .map(|(_, figures)| figures.1)
                .sum();
            assert_eq!(int(&row["revenue_paise"]), revenue, "{row}");
            assert_eq!(row["sku"], format!("SKU-{product}"));
        }

        // Supplier sourcing.
        let sourcing = pipeline
            .read(
                &format!("/v1/stores/{store}/reports/suppliers?{range}&group_by=product"),
                &admin,
            )
            .await;
        // Cash purchases (no supplier) are rows of their own; units without a cost apart.
        type Sourced = BTreeMap<(Option<i64>, i64), (i64, i64, i64, i64)>;
        let mut expected_sourcing: Sourced = BTreeMap::new();
        for ((s, _, supplier, product), figures) in &model.sourcing {
            if *s == store {
                let entry = expected_sourcing.entry((*supplier, *product)).or_default();
                entry.0 += figures.0;
                entry.1 += figures.1;
                entry.2 += figures.2;
                entry.3 += figures.3;
            }
        }
        assert!(
            expected_sourcing
                .keys()
                .any(|(supplier, _)| supplier.is_none())
                && expected_sourcing.values().any(|figures| figures.2 > 0),
            "the stream has cash purchases and stock-ins without a cost"
        );
        let got_sourcing: Sourced = sourcing["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    (row["supplier_id"].as_i64(), int(&row["product_id"])),
                    (
                        int(&row["units_received"]),
                        int(&row["cost_paise"]),
                        int(&row["units_without_cost"]),
                        int(&row["stock_ins"]),
                    ),
                )
            })
            .collect();
        assert_eq!(got_sourcing, expected_sourcing, "sourcing in store {store}");

        // Alerts, oldest first per product, as the model raised them.
        let alerts = pipeline
            .all_pages(
                &format!("/v1/alerts?store_id={store}&limit=7"),
                &admin,
                async || {},
            )
            .await;
        let mut got_alerts: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
        for alert in alerts.iter().rev() {
            got_alerts
                .entry((store, int(&alert["product_id"])))
                .or_default()
                .push(alert["kind"].as_str().unwrap().to_owned());
        }
        let expected_alerts: BTreeMap<(i64, i64), Vec<String>> = model
            .alerts
            .iter()
            .filter(|((s, _), _)| *s == store)
            .map(|(key, kinds)| (*key, kinds.iter().map(|kind| (*kind).to_owned()).collect()))
            .collect();
        assert_eq!(got_alerts, expected_alerts, "alerts of store {store}");
        let active = pipeline
            .read(&format!("/v1/alerts?store_id={store}&active=true"), &admin)
            .await;
        for alert in active["items"].as_array().unwrap() {
            let kinds = &expected_alerts[&(store, int(&alert["product_id"]))];
            assert_eq!(
                alert["kind"],
                *kinds.last().unwrap(),
                "the active alert is the latest"
            );
        }
    }

    // One product across the stores.
    let across = pipeline.read("/v1/products/3/inventory", &admin).await;
    let total: i64 = STORES
        .iter()
        .map(|(store, ..)| {
            model
                .balances
                .get(&(*store, 3))
                .map_or(0, |balance| balance.0)
        })
        .sum();
    assert_eq!(int(&across["total_quantity"]), total, "{across}");

    // History: every ledger row once, and each movement's outcome as the model decided.
    let rows = pipeline
        .all_pages("/v1/movements?limit=97", &admin, async || {})
        .await;
    assert_eq!(rows.len(), movements.len());
    let mut statuses: HashMap<&str, usize> = HashMap::new();
    for row in &rows {
        *statuses.entry(row["status"].as_str().unwrap()).or_default() += 1;
    }
    let mut expected_statuses: HashMap<&str, usize> = HashMap::new();
    for outcome in &model.outcomes {
        *expected_statuses.entry(outcome.status).or_default() += 1;
    }
    assert_eq!(statuses, expected_statuses);
    for (movement, expected) in movements.iter().zip(&model.outcomes).step_by(37) {
        let outcome = pipeline
            .read(&format!("/v1/movements/{}", movement.movement_id), &admin)
            .await;
        let original = if expected.status == "duplicate" {
            outcome["status"].as_str().unwrap()
        } else {
            expected.status
        };
        assert_eq!(outcome["status"], original, "{outcome}");
        assert_eq!(
            outcome["balance_after"].as_i64(),
            expected.balance_after,
            "{outcome}"
        );
    }
    let rejected = pipeline
        .read("/v1/movements?status=rejected&store_id=1&kind=sale", &admin)
        .await;
    for row in rejected["items"].as_array().unwrap() {
        // Short, or sold before a count that came first.
        match row["reject_reason"].as_str() {
            Some("insufficient_stock") => {
                assert!(row["available_quantity"].as_i64().unwrap() < int(&row["quantity"]))
            }
            reason => assert_eq!(reason, Some("superseded_by_count"), "{row}"),
        }
    }

    // The same answers from Postgres: with Redis emptied, and with Redis unreachable.
    let from_cache = current_answers(&pipeline, &pipeline.query).await;
    let down = pipeline
        .another_query_api(&[("REDIS_URL", "redis://127.0.0.1:9/")])
        .await;
    let (_, _, page) = pipeline
        .get_from(&down, "/v1/stores/1/inventory", &admin, &[])
        .await;
    assert_eq!(page["freshness"]["source"], "database", "{page}");
    assert_eq!(
        current_answers(&pipeline, &down).await,
        from_cache,
        "Redis down"
    );
    pipeline.stack.delete_redis_keys().await;
    // query-api's copies of the hashes go too: their versions are checked each second.
    for store in [1, 2] {
        let path = format!("/v1/stores/{store}/inventory");
        pipeline
            .read_until(&path, &admin, "the copies to go", |page| {
                page["freshness"]["source"] == "database"
            })
            .await;
    }
    assert_eq!(
        current_answers(&pipeline, &pipeline.query).await,
        from_cache,
        "Redis empty"
    );
    pipeline.stack.cleanup().await;
}
