//! The `ingest` binary: the write API, and the commands that prepare a deployment.

/// glibc's allocator showed up at ~14% of ingest's CPU under load (fragmentation and
/// cross-thread frees); mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use service_kit::settings::IngestSettings;
use service_kit::{Service, environment, shutdown, telemetry};

/// Bazaar's write API: stock movements to Kafka; the catalog, users and tokens in
/// PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "ingest", version, after_long_help = environment::help(Service::Ingest))]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the write API (what runs without a subcommand).
    Serve,
    /// Create an admin user unless a user of that name exists (never changes one), then exit.
    CreateAdmin {
        /// The admin's username.
        #[arg(long, env = "BAZAAR_ADMIN_USERNAME", default_value = "admin")]
        username: String,
        /// A file holding the password (trailing newlines are dropped).
        #[arg(long, env = "BAZAAR_ADMIN_PASSWORD_FILE")]
        password_file: PathBuf,
    },
    /// Bring the PostgreSQL schema up to date, then exit (the services also do on start).
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    let settings = IngestSettings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = ingest::App::build(settings).await?;
            app.run_until_stopped(shutdown::on_signal().cancelled_owned())
                .await
        }
        Command::CreateAdmin {
            username,
            password_file,
        } => ingest::create_admin(settings.shared, &username, &password_file).await,
        Command::Migrate => {
            service_kit::postgres::connect_and_migrate(&settings.shared.database, "ingest-migrate")
                .await?;
            tracing::info!("The schema is up to date.");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_follows_the_conventions() {
        let help = test_kit::check_command_line(
            super::Cli::command(),
            &["serve", "create-admin", "migrate"],
        );
        // The environment it reads, with defaults, from the one list the settings follow.
        for name in service_kit::environment::read_by(service_kit::Service::Ingest) {
            assert!(help.contains(&name), "{name} missing from --help");
        }
    }
}
