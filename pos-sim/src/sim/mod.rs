//! The traffic: stores open with a stock-in of every product from a supplier, then sell —
//! a few products most (popularity is skewed), now and then remove damaged stock, take a
//! customer's return (naming the sale it came from when the store sold the product lately),
//! void a sale rung up by mistake, count a shelf, adjust the book, restock what runs low (one restock in five bought
//! for cash), send stock to another of its stores and receive it there (`transfers`),
//! retry a sale (the same `movement_id` again: a duplicate), and some tills go offline and
//! sync their sales later as one batch (marked `offline`).
//!
//! Each store's movements are sent one after another by one worker, so they arrive in the
//! order the simulator decided them, and its model applies the processors' rules in that
//! order: a sale or removal larger than the stock is rejected (`reject` stores) unless it
//! was made offline (it happened: applied, below zero), a repeated id changes nothing. At the end the model is compared with query-api's
//! balances, read with the consistency token of everything sent.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use schemas::consistency::ConsistencyToken;

use crate::api::Api;
use crate::model::Store;

mod transfers;
mod worker;

use worker::Worker;

#[derive(Debug, Clone)]
pub struct Options {
    /// Movements to send (0: until `seconds` run out).
    pub movements: u64,
    /// Stop after this long.
    pub seconds: Option<u64>,
    /// Movements per second over all stores (0: as fast as the APIs take them).
    pub rate: u64,
    /// At most this many stores (the first ones the token sees).
    pub stores: usize,
    /// At most this many products (the first ones of the catalog; the first sell most).
    pub products: usize,
    /// Concurrent workers (each owns some stores).
    pub workers: usize,
    /// Share of sales a till keeps offline and syncs later as a batch.
    pub offline_share: f64,
    /// Share of movements sent twice (a retry after a lost answer).
    pub duplicate_share: f64,
    /// Compare query-api's balances with the model at the end.
    pub check: bool,
    /// Print a live progress line.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            movements: 10_000,
            seconds: None,
            rate: 0,
            stores: 100,
            products: 1_000,
            workers: 8,
            offline_share: 0.05,
            duplicate_share: 0.02,
            check: true,
            progress: true,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    offline_batches: AtomicU64,
    transfers: AtomicU64,
}

/// What happened, as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Movements sent (duplicates included).
    pub sent: u64,
    /// Answered `202` by ingest.
    pub accepted: u64,
    /// Refused by ingest (4xx/5xx): not part of the model.
    pub refused: u64,
    /// Of the accepted, how many repeated an earlier movement id.
    pub duplicates: u64,
    /// Of the accepted, how many the model expects the processors to reject.
    pub expected_rejections: u64,
    pub offline_batches: u64,
    /// Transfers the model applied at their source, each received at its destination.
    pub transfers: u64,
    pub elapsed: Duration,
    /// `(store, product, model, query-api)` for every balance that differs; empty when
    /// the check passed (or was not asked for).
    pub mismatches: Vec<(i64, i64, i64, i64)>,
    /// Balances compared.
    pub checked: usize,
}

struct Catalog {
    products: Vec<(i64, bool)>,
    supplier: i64,
}

/// Runs the traffic; see the module docs.
pub async fn run(api: &Api, options: &Options) -> anyhow::Result<Summary> {
    let stores = api.all("/v1/stores?limit=500").await?;
    let products = api.all("/v1/products?limit=500").await?;
    let supplier = api
        .all("/v1/suppliers?limit=1")
        .await?
        .first()
        .and_then(|supplier| supplier["id"].as_i64())
        .ok_or_else(|| {
            anyhow::anyhow!("no supplier in the catalog: run `pos-sim seed-demo` (make up does)")
        })?;
    anyhow::ensure!(
        !stores.is_empty() && !products.is_empty(),
        "the catalog has no stores or no products: run `pos-sim seed-demo` (make up does)"
    );
    let catalog = Arc::new(Catalog {
        products: products
            .iter()
            .take(options.products)
            .filter_map(|product| Some((product["id"].as_i64()?, product["unit"] == "g")))
            .collect(),
        supplier,
    });

    // Each store starts from what query-api says it holds. A worker owns two stores at
    // least, so that it can send stock from one to the other.
    let in_play = stores.len().min(options.stores);
    let mut owned: Vec<Vec<Store>> =
        vec![Vec::new(); options.workers.clamp(1, (in_play / 2).max(1))];
    for (index, store) in stores.iter().take(options.stores).enumerate() {
        let id = store["id"].as_i64().unwrap_or_default();
        let items = api
            .all(&format!("/v1/stores/{id}/inventory?limit=5000"))
            .await?;
        let stock = items
            .iter()
            .filter_map(|item| Some((item["product_id"].as_i64()?, item["quantity"].as_i64()?)))
            .collect();
        let worker = index % owned.len();
        owned[worker].push(Store {
            id,
            reject: store["negative_stock_policy"] != "allow",
            stock,
            offline: Vec::new(),
            sales: Default::default(),
            counted: HashMap::new(),
        });
    }
    owned.retain(|stores| !stores.is_empty());

    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let deadline = options
        .seconds
        .map(|seconds| started + Duration::from_secs(seconds));
    let budget = Arc::new(AtomicU64::new(if options.movements == 0 {
        u64::MAX
    } else {
        options.movements
    }));
    let per_worker_rate = (options.rate > 0).then(|| options.rate as f64 / owned.len() as f64);
    let reporter = options.progress.then(|| {
        let counters = counters.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                print_progress(&counters, started.elapsed());
            }
        })
    });

    let mut workers = Vec::new();
    for stores in owned {
        let (api, catalog, counters, budget) = (
            api.clone(),
            catalog.clone(),
            counters.clone(),
            budget.clone(),
        );
        let options = options.clone();
        workers.push(tokio::spawn(async move {
            let mut worker = Worker {
                api,
                catalog,
                counters,
                stores,
                token: ConsistencyToken::default(),
                sent: Vec::new(),
                transfers: Default::default(),
            };
            worker.open().await?;
            let mut due = Instant::now();
            loop {
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    break;
                }
                if budget
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                        left.checked_sub(1)
                    })
                    .is_err()
                {
                    break;
                }
                if let Some(rate) = per_worker_rate {
                    due += Duration::from_secs_f64(1.0 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                worker.step(&options).await?;
            }
            worker.sync_all().await?;
            worker.receive_all().await?;
            anyhow::Ok(worker)
        }));
    }
    let mut finished = Vec::new();
    for worker in workers {
        finished.push(worker.await??);
    }
    if let Some(reporter) = reporter {
        reporter.abort();
        print_progress(&counters, started.elapsed());
        let _ = writeln!(std::io::stdout());
    }

    let mut summary = Summary {
        sent: counters.sent.load(Ordering::Relaxed),
        accepted: counters.accepted.load(Ordering::Relaxed),
        refused: counters.refused.load(Ordering::Relaxed),
        duplicates: counters.duplicates.load(Ordering::Relaxed),
        expected_rejections: counters.rejected.load(Ordering::Relaxed),
        offline_batches: counters.offline_batches.load(Ordering::Relaxed),
        transfers: counters.transfers.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        mismatches: Vec::new(),
        checked: 0,
    };
    if options.check {
        let mut token = ConsistencyToken::default();
        for worker in &finished {
            for (partition, offset) in worker.token.positions() {
                token.include(*partition, *offset);
            }
        }
        let consistency = if token.is_empty() {
            String::new()
        } else {
            format!("&consistency_token={}", token.encode())
        };
        for worker in &finished {
            for store in &worker.stores {
                let items = api
                    .all(&format!(
                        "/v1/stores/{}/inventory?limit=5000{consistency}",
                        store.id
                    ))
                    .await?;
                let actual: HashMap<i64, i64> = items
                    .iter()
                    .filter_map(|item| {
                        Some((item["product_id"].as_i64()?, item["quantity"].as_i64()?))
                    })
                    .collect();
                for (product, expected) in &store.stock {
                    let got = actual.get(product).copied().unwrap_or(0);
                    summary.checked += 1;
                    if got != *expected {
                        summary
                            .mismatches
                            .push((store.id, *product, *expected, got));
                    }
                }
            }
        }
    }
    Ok(summary)
}

fn print_progress(counters: &Counters, elapsed: Duration) {
    let sent = counters.sent.load(Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "\r  sent {sent}  accepted {}  refused {}  duplicates {}  expected rejections {}  offline syncs {}  {:.0}/s   ",
        counters.accepted.load(Ordering::Relaxed),
        counters.refused.load(Ordering::Relaxed),
        counters.duplicates.load(Ordering::Relaxed),
        counters.rejected.load(Ordering::Relaxed),
        counters.offline_batches.load(Ordering::Relaxed),
        sent as f64 / elapsed.as_secs_f64().max(0.001),
    );
    let _ = out.flush();
}
