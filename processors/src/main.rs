//! The `processors` binary: see the library for what it does.

use service_kit::{Service, Settings, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env(Service::Processors)?;
    let app = processors::App::build(settings).await?;
    app.run_until_stopped(shutdown::on_signal().cancelled_owned())
        .await
}
