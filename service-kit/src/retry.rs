//! Asking a dependency that may still be starting (a Kafka cluster without its controller,
//! a schema registry beside the service) again, for a bounded time.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// `attempt` until it succeeds, fails for good, or fails `transient`ly past `deadline`;
/// each transient failure is logged (`waiting_for` names what is not ready) and tried
/// again a second later.
///
/// `attempt` is a closure returning a future (`|| async { … }`), not an async closure: the
/// future of an `AsyncFnMut` is not `Send` for every lifetime, and callers (a test's stack)
/// start inside spawned tasks.
pub async fn while_starting<T, E: Display, F: Future<Output = Result<T, E>>>(
    deadline: Instant,
    waiting_for: &str,
    transient: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> F,
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
