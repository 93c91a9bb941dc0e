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
//! `--ceiling FILE.json` (a broker report of the same run) adds each rate's share of it;
//! `bazaar-bench SUITE --help` lists a suite's options.

/// The load generator shares the cores with what it measures: keep its allocations cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod broker;
mod ingest;
mod load;
mod mix;
mod pipeline;
mod processors;
mod query;
mod report;
mod streams;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Load benchmarks of the services over HTTP on loopback, each suite against a stack
/// `deploy/local/bench.sh` starts (`make bench` runs them all and prints one table).
#[derive(Debug, Parser)]
#[command(name = "bazaar-bench", version)]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
    /// Threads of the load generator (the service gets the other cores).
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// Where the JSON report of the run is saved.
    #[arg(long, default_value = ".local/bench/results", global = true)]
    out: PathBuf,
    /// A broker report of the same run: each rate is also given as a share of it.
    #[arg(long, value_name = "FILE.json", global = true)]
    ceiling: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Suite {
    /// The broker's own ceiling: movements produced with the services' settings, consumed back.
    Broker(broker::Options),
    /// ingest: single movements at several concurrencies, refusals, steady rates, batches.
    Ingest(ingest::Options),
    /// The processors: a backlog to committed state, then a steady rate received → applied.
    Processors(processors::Options),
    /// ingest and the processors: a sale with ?wait, then a steady rate with the lag sampled.
    Pipeline(pipeline::Options),
    /// query-api's reads over a large ledger.
    QueryApi(query::Options),
    /// One table of the suites' reports of a run.
    Combine {
        /// The reports.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The load generator gets one thread of its own; the service gets the rest.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads)
        .enable_all()
        .build()?;
    let ceiling = cli
        .ceiling
        .as_deref()
        .map(report::Report::load)
        .transpose()?;
    let finish = |mut report: report::Report| -> anyhow::Result<()> {
        if let Some(broker) = &ceiling {
            report.relate_to(broker);
        }
        report.print();
        let saved = report.save(&cli.out)?;
        eprintln!("saved {}", saved.display());
        Ok(())
    };
    match cli.suite {
        Suite::Broker(options) => finish(runtime.block_on(broker::run(options))?),
        Suite::Ingest(options) => finish(runtime.block_on(ingest::run(options))?),
        Suite::Processors(options) => finish(runtime.block_on(processors::run(options))?),
        Suite::Pipeline(options) => finish(runtime.block_on(pipeline::run(options))?),
        Suite::QueryApi(options) => finish(runtime.block_on(query::run(options))?),
        Suite::Combine { reports } => {
            let reports = reports
                .iter()
                .map(|path| {
                    let text = std::fs::read(path)?;
                    anyhow::Ok(serde_json::from_slice::<report::Report>(&text)?)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let combined = report::Report::combine(reports);
            combined.print();
            let saved = combined.save(&cli.out)?;
            eprintln!("saved {}", saved.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_follows_the_conventions() {
        test_kit::check_command_line(
            super::Cli::command(),
            &[
                "broker",
                "ingest",
                "processors",
                "pipeline",
                "query-api",
                "combine",
            ],
        );
    }
}
