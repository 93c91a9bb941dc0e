//! The `processors` binary: see the library for what it does.

/// glibc's allocator showed up at ~14% of ingest's CPU under load (fragmentation and
/// cross-thread frees); mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use service_kit::settings::ProcessorsSettings;
use service_kit::{Service, environment, shutdown, telemetry};

/// Bazaar's stream processors: consume the movements, keep the exact ledger, balances,
/// rollups and alerts in PostgreSQL and Redis, and publish the outcomes to Kafka.
#[derive(Debug, Parser)]
#[command(name = "processors", version, after_long_help = environment::help(Service::Processors))]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse();
    telemetry::init();
    let settings = ProcessorsSettings::from_env()?;
    let app = processors::App::build(settings).await?;
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
