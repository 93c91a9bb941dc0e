//! Read-your-writes: a request that carries the `consistency_token` ingest handed out
//! is answered only once the processors have committed every record the token names.
//! It waits for that (at most [`MAX_WAIT`]); if they are not there yet the answer is
//! `503 not_yet_consistent` with `Retry-After`, never an answer that misses the write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use schemas::consistency::ConsistencyToken;
use serde::Deserialize;
use service_kit::problem::{ApiError, Problem};
use utoipa::{IntoParams, IntoResponses};

use crate::balances::Balances;
use crate::metrics::QueryMetrics;

/// The answer to a token whose movements are not applied in time, as every operation
/// that takes a token lists it.
#[derive(Debug, IntoResponses)]
#[response(
    status = 503,
    description = "The consistency token's movements are not applied yet (`not_yet_consistent`)",
    content_type = "application/problem+json"
)]
pub struct NotYetConsistent(pub Problem);

/// The longest a request waits for the processors.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
const FIRST_POLL: Duration = Duration::from_millis(5);
const LONGEST_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyParams {
    /// ingest's `consistency_token`: answer only once the processors have applied those
    /// movements (waits up to 5 s, then `503 not_yet_consistent`).
    pub consistency_token: Option<String>,
}

/// Whether `processed` (the next offset per partition) is past every position of `token`.
pub fn covers(processed: &BTreeMap<i32, i64>, token: &ConsistencyToken) -> bool {
    token
        .positions()
        .iter()
        .all(|(partition, offset)| processed.get(partition).is_some_and(|next| next > offset))
}

impl ConsistencyParams {
    /// Waits until the processors have passed the token, if there is one; returns it, for
    /// the reads that follow to be at least as fresh.
    pub async fn wait(
        &self,
        balances: &Balances,
        metrics: &QueryMetrics,
    ) -> Result<Option<ConsistencyToken>, ApiError> {
        let Some(text) = &self.consistency_token else {
            return Ok(None);
        };
        let token = ConsistencyToken::decode(text).ok_or_else(|| {
            ApiError::validation(
                "consistency_token",
                "invalid_token",
                "not a consistency token ingest gave out",
            )
        })?;
        let started = Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            if covers(&balances.progress().await?.processed, &token) {
                metrics.consistency_wait(true, started.elapsed().as_secs_f64());
                return Ok(Some(token));
            }
            if started.elapsed() + pause > MAX_WAIT {
                metrics.consistency_wait(false, started.elapsed().as_secs_f64());
                return Err(ApiError::Unavailable {
                    code: "not_yet_consistent",
                    detail: format!(
                        "the processors have not yet applied the movements of this token within {} s; retry",
                        MAX_WAIT.as_secs()
                    ),
                    retry_after: Duration::from_secs(1),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_covered_once_every_partition_is_past_its_offset() {
        let mut token = ConsistencyToken::at(0, 10);
        token.include(3, 4);
        let at = |pairs: &[(i32, i64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        assert!(
            !covers(&at(&[(0, 10), (3, 9)]), &token),
            "offset 10 itself not yet processed"
        );
        assert!(!covers(&at(&[(0, 11)]), &token), "partition 3 unknown");
        assert!(covers(&at(&[(0, 11), (3, 5), (7, 1)]), &token));
    }
}
