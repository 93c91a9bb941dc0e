//! `pos-sim [run] [--movements N] [--seconds S] [--rate R] [--stores N] [--products M] [--workers W]
//!          [--no-check] [--ingest URL] [--query URL] [--username U] [--password-file F]`
//! `pos-sim seed-demo [--ingest URL] [--query URL] [--username U] [--password-file F]`
//!
//! Defaults: the local services of `make up` and its admin (`.local/admin-password`).

use std::process::ExitCode;

use pos_sim::{api::Api, demo, sim};

fn flag(args: &[String], name: &str) -> Option<String> {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].clone())
}

fn number<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match flag(args, name) {
        Some(text) => text
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}: `{text}` is not a number")),
        None => Ok(default),
    }
}

/// The command line's own output is what it prints.
#[allow(clippy::print_stdout)]
async fn main_result(args: Vec<String>) -> anyhow::Result<bool> {
    let ingest = flag(&args, "--ingest").unwrap_or_else(|| "http://127.0.0.1:8081".into());
    let query = flag(&args, "--query").unwrap_or_else(|| "http://127.0.0.1:8082".into());
    let username = flag(&args, "--username").unwrap_or_else(|| "admin".into());
    let password_file =
        flag(&args, "--password-file").unwrap_or_else(|| ".local/admin-password".into());
    let password = std::fs::read_to_string(&password_file).map_err(|error| {
        anyhow::anyhow!("reading the password from {password_file}: {error} (run `make up`)")
    })?;
    let api = Api::login(&ingest, &query, &username, password.trim()).await?;
    match args.first().map(String::as_str) {
        Some("seed-demo") => {
            let stores = demo::seed(&api).await?;
            println!(
                "demo catalog ready: stores {stores:?}, {} products",
                demo::PRODUCTS.len()
            );
            Ok(true)
        }
        None | Some("run") | Some(_) => {
            let options = sim::Options {
                movements: number(&args, "--movements", 10_000)?,
                seconds: flag(&args, "--seconds")
                    .map(|text| text.parse())
                    .transpose()?,
                rate: number(&args, "--rate", 0)?,
                stores: number(&args, "--stores", 100)?,
                products: number(&args, "--products", 1_000)?,
                workers: number(&args, "--workers", 8)?,
                check: !args.iter().any(|arg| arg == "--no-check"),
                ..sim::Options::default()
            };
            let summary = sim::run(&api, &options).await?;
            println!(
                "sent {} movements in {:.1} s ({:.0}/s): {} accepted, {} refused, {} duplicates, {} rejections expected, {} offline syncs",
                summary.sent,
                summary.elapsed.as_secs_f64(),
                summary.sent as f64 / summary.elapsed.as_secs_f64().max(0.001),
                summary.accepted,
                summary.refused,
                summary.duplicates,
                summary.expected_rejections,
                summary.offline_batches,
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
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match main_result(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("pos-sim: {error:#}");
            ExitCode::from(2)
        }
    }
}
