//! `bazaar-bench`: load benchmarks of the services over HTTP on loopback. `make bench`
//! starts a separate benchmark stack (one Apache Kafka broker) and runs this.
//!
//!   bazaar-bench broker [--records N]   (the broker's own ceiling: produce, consume)
//!   bazaar-bench ingest [--seconds N] [--binary PATH] [--port P] [--out DIR]
//!   bazaar-bench processors [--backlog N] [--steady-rate R] [--seconds N]
//!   bazaar-bench pipeline [--seconds N] [--steady-rate R] [--steady-seconds S]
//!   bazaar-bench query-api [--ledger-rows N] [--connections C] [--seconds N]
//!   bazaar-bench combine FILE.json...   (one table of the suites' reports of a run)
//!
//! `--ceiling FILE.json` (a broker report of the same run) adds each rate's share of it.

/// The load generator shares the cores with what it measures: keep its allocations cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod broker;
mod ingest;
mod load;
mod pipeline;
mod processors;
mod query;
mod report;

use std::path::PathBuf;

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match args.windows(2).find(|pair| pair[0] == name) {
        Some(pair) => pair[1]
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}: cannot parse `{}`", pair[1])),
        None => Ok(default),
    }
}

fn list(args: &[String], name: &str, default: &[usize]) -> anyhow::Result<Vec<usize>> {
    match args.windows(2).find(|pair| pair[0] == name) {
        Some(pair) => pair[1]
            .split(',')
            .map(|item| {
                item.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name}: `{item}`"))
            })
            .collect(),
        None => Ok(default.to_vec()),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The load generator gets one thread of its own; the service gets the rest.
    let threads = flag(&args, "--threads", 1_usize)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let out: PathBuf = flag(&args, "--out", PathBuf::from(".local/bench/results"))?;
    let ceiling: Option<report::Report> = match flag(&args, "--ceiling", String::new())? {
        path if path.is_empty() => None,
        path => Some(report::Report::load(std::path::Path::new(&path))?),
    };
    let finish = |mut report: report::Report| -> anyhow::Result<()> {
        if let Some(broker) = &ceiling {
            report.relate_to(broker);
        }
        report.print();
        let saved = report.save(&out)?;
        eprintln!("saved {}", saved.display());
        Ok(())
    };
    match args.first().map(String::as_str) {
        Some("broker") => {
            let options = broker::Options {
                records: flag(&args, "--records", 500_000)?,
            };
            finish(runtime.block_on(broker::run(options))?)
        }
        Some("ingest") => {
            let options = ingest::Options {
                binary: flag(&args, "--binary", PathBuf::from("target/release/ingest"))?,
                port: flag(&args, "--port", 58_081)?,
                stores: flag(&args, "--stores", 1_000)?,
                products: flag(&args, "--products", 1_000)?,
                seconds: flag(&args, "--seconds", 10)?,
                concurrencies: list(&args, "--connections", &[64, 256, 512])?,
                steady_rates: list(&args, "--steady-rates", &[5_000, 10_000])?,
                steady_connections: flag(&args, "--steady-connections", 256)?,
                batch_size: flag(&args, "--batch-size", 1_000)?,
                batch_concurrencies: list(&args, "--batch-connections", &[4, 16])?,
            };
            finish(runtime.block_on(ingest::run(options))?)
        }
        Some("processors") => {
            let options = processors::Options {
                binary: flag(
                    &args,
                    "--binary",
                    PathBuf::from("target/release/processors"),
                )?,
                port: flag(&args, "--port", 58_083)?,
                stores: flag(&args, "--stores", 1_000)?,
                products: flag(&args, "--products", 1_000)?,
                backlog: flag(&args, "--backlog", 300_000)?,
                steady_rate: flag(&args, "--steady-rate", 5_000)?,
                seconds: flag(&args, "--seconds", 10)?,
            };
            finish(runtime.block_on(processors::run(options))?)
        }
        Some("pipeline") => {
            let options = pipeline::Options {
                ingest: flag(&args, "--binary", PathBuf::from("target/release/ingest"))?,
                processors: flag(
                    &args,
                    "--processors",
                    PathBuf::from("target/release/processors"),
                )?,
                ingest_port: flag(&args, "--port", 58_081)?,
                processors_port: flag(&args, "--processors-port", 58_083)?,
                stores: flag(&args, "--stores", 1_000)?,
                products: flag(&args, "--products", 1_000)?,
                seconds: flag(&args, "--seconds", 10)?,
                wait_connections: flag(&args, "--wait-connections", 64)?,
                steady_rate: flag(&args, "--steady-rate", 5_000)?,
                steady_seconds: flag(&args, "--steady-seconds", 300)?,
            };
            finish(runtime.block_on(pipeline::run(options))?)
        }
        Some("query-api") => {
            let options = query::Options {
                binary: flag(&args, "--binary", PathBuf::from("target/release/query-api"))?,
                processors: flag(
                    &args,
                    "--processors",
                    PathBuf::from("target/release/processors"),
                )?,
                port: flag(&args, "--port", 58_082)?,
                stores: flag(&args, "--stores", 100)?,
                products: flag(&args, "--products", 1_000)?,
                ledger_rows: flag(&args, "--ledger-rows", 10_000_000)?,
                seconds: flag(&args, "--seconds", 10)?,
                connections: flag(&args, "--connections", 64)?,
            };
            finish(runtime.block_on(query::run(options))?)
        }
        Some("combine") => {
            let reports = args[1..]
                .iter()
                .filter(|arg| arg.ends_with(".json"))
                .map(|path| {
                    let text = std::fs::read(path)?;
                    anyhow::Ok(serde_json::from_slice::<report::Report>(&text)?)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let combined = report::Report::combine(reports);
            combined.print();
            let saved = combined.save(&out)?;
            eprintln!("saved {}", saved.display());
            Ok(())
        }
        _ => anyhow::bail!(
            "usage: bazaar-bench broker|ingest|processors|pipeline|query-api|combine [--seconds N] [--binary PATH] (see the module docs)"
        ),
    }
}
