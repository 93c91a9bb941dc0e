//! The `ingest` binary: see the library for what it does.
//!
//! `ingest` serves the write API; `ingest create-admin --username NAME --password-file
//! PATH` creates the first admin and exits.

/// glibc's allocator showed up at ~14% of ingest's CPU under load (fragmentation and
/// cross-thread frees); mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use service_kit::{Service, Settings, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env(Service::Ingest)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("create-admin") {
        return ingest::create_admin(settings, &args[1..]).await;
    }
    let app = ingest::App::build(settings).await?;
    app.run_until_stopped(shutdown::on_signal().cancelled_owned())
        .await
}
