//! The `processors` binary: see the library for what it does.

/// glibc's allocator showed up at ~14% of ingest's CPU under load (fragmentation and
/// cross-thread frees); mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use service_kit::{Service, Settings, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env(Service::Processors)?;
    let app = processors::App::build(settings).await?;
    app.run_until_stopped(shutdown::on_signal().cancelled_owned())
        .await
}
