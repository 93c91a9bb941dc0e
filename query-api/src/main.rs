//! The `query-api` binary: see the library for what it does.

/// glibc's allocator showed up at ~14% of ingest's CPU under load (fragmentation and
/// cross-thread frees); mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use service_kit::settings::QueryApiSettings;
use service_kit::{Service, environment, shutdown, telemetry};

/// Bazaar's read API: inventory, movement history, reports, alerts, the audit log and the
/// catalog, for dashboards.
#[derive(Debug, Parser)]
#[command(name = "query-api", version, after_long_help = environment::help(Service::QueryApi))]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    telemetry::init();
    let settings = QueryApiSettings::from_env()?;
    let app = query_api::App::build(settings).await?;
    app.run_until_stopped(shutdown::on_signal().cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_follows_the_conventions() {
        test_kit::check_command_line(super::Cli::command(), &[]);
    }
}
