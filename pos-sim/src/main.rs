//! `pos-sim [run] [OPTIONS]` and `pos-sim seed-demo`; `pos-sim --help` says the rest.
//! Defaults: the local services of `make up` and its admin (`.local/admin-password`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use pos_sim::{api::Api, demo, sim};

/// POS traffic against a running Bazaar: stores selling, restocking, retrying and syncing
/// offline tills, in order per store, checked at the end against query-api.
#[derive(Debug, Parser)]
#[command(name = "pos-sim", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send movements and check the balances (what runs without a subcommand).
    Run(RunArgs),
    /// Create the demo catalog (stores, a supplier, products, one user per role) if missing.
    SeedDemo,
}

#[derive(Debug, Args)]
struct Connection {
    /// ingest's base URL.
    #[arg(
        long,
        env = "POS_SIM_INGEST_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    ingest: String,
    /// query-api's base URL.
    #[arg(
        long,
        env = "POS_SIM_QUERY_URL",
        default_value = "http://127.0.0.1:8082",
        global = true
    )]
    query: String,
    /// The user to log in as (an admin: the simulator creates what it needs).
    #[arg(long, env = "POS_SIM_USERNAME", default_value = "admin", global = true)]
    username: String,
    /// A file holding that user's password.
    #[arg(
        long,
        env = "POS_SIM_PASSWORD_FILE",
        default_value = ".local/admin-password",
        global = true
    )]
    password_file: PathBuf,
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// Movements to send in all (0: until --seconds run out).
    #[arg(long, default_value_t = 10_000)]
    movements: u64,
    /// Send for this long instead of a number of movements.
    #[arg(long)]
    seconds: Option<u64>,
    /// Movements per second in all; 0 sends as fast as the services take them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// At most this many stores (the first ones the user sees).
    #[arg(long, default_value_t = 100)]
    stores: usize,
    /// At most this many products (the first ones of the catalog; the first sell most).
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    /// Concurrent senders (each store's movements go through one, in order).
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Skip the final comparison with query-api's balances.
    #[arg(long)]
    no_check: bool,
}

/// The command line's own output is what it prints.
#[allow(clippy::print_stdout)]
async fn main_result(cli: Cli) -> anyhow::Result<bool> {
    let Connection {
        ingest,
        query,
        username,
        password_file,
    } = &cli.connection;
    let password = std::fs::read_to_string(password_file).map_err(|error| {
        anyhow::anyhow!(
            "reading the password from {}: {error} (run `make up`)",
            password_file.display()
        )
    })?;
    let api = Api::login(ingest, query, username, password.trim()).await?;
    let run = match cli.command {
        Some(Command::SeedDemo) => {
            let stores = demo::seed(&api).await?;
            println!(
                "demo catalog ready: stores {stores:?}, {} products",
                demo::PRODUCTS.len()
            );
            return Ok(true);
        }
        Some(Command::Run(run)) => run,
        None => cli.run,
    };
    let options = sim::Options {
        movements: run.movements,
        seconds: run.seconds,
        rate: run.rate,
        stores: run.stores,
        products: run.products,
        workers: run.workers,
        check: !run.no_check,
        ..sim::Options::default()
    };
    let summary = sim::run(&api, &options).await?;
    println!(
        "sent {} movements in {:.1} s ({:.0}/s): {} accepted, {} refused, {} duplicates, {} rejections expected, {} offline syncs, {} transfers",
        summary.sent,
        summary.elapsed.as_secs_f64(),
        summary.sent as f64 / summary.elapsed.as_secs_f64().max(0.001),
        summary.accepted,
        summary.refused,
        summary.duplicates,
        summary.expected_rejections,
        summary.offline_batches,
        summary.transfers,
    );
    if options.check {
        if summary.mismatches.is_empty() {
            println!(
                "check: query-api's {} balances equal the simulator's model",
                summary.checked
            );
        } else {
            println!(
                "check FAILED: {} of {} balances differ (store, product, model, query-api): {:?}",
                summary.mismatches.len(),
                summary.checked,
                &summary.mismatches[..summary.mismatches.len().min(10)]
            );
            return Ok(false);
        }
    }
    Ok(true)
}

#[tokio::main]
async fn main() -> ExitCode {
    match main_result(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("pos-sim: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_follows_the_conventions() {
        test_kit::check_command_line(super::Cli::command(), &["run", "seed-demo"]);
    }
}
