//! Asking a dependency that may still be starting (a Kafka cluster without its controller,
//! a schema registry beside the service) again, for a bounded time.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// `attempt` until it succeeds, fails for good, or fails `transient`ly past `deadline`;
/// each transient failure is logged (`waiting_for` names what is not ready) and tried
/// again a second later.
pub async fn while_starting<T, E: Display>(
    deadline: Instant,
    waiting_for: &str,
    transient: impl Fn(&E) -> bool,
    mut attempt: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    loop {
        match attempt().await {
            Err(error) if transient(&error) && Instant::now() < deadline => {
                tracing::info!(%error, "{waiting_for} is not ready yet; asking again.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            result => return result,
        }
    }
}
