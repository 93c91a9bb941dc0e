//! Which PostgreSQL answers history, rollups, alerts and the audit log: the standby
//! (`DATABASE_READ_URL`, a streaming replica) when one is set, so that reports do not load
//! the primary the processors write to.
//!
//! Read-your-writes holds across it. A request with a consistency token has already
//! waited until the processors committed the token's movements on the primary; the
//! processors commit each partition's offset in the same transaction as its ledger rows
//! and rollups, so once the standby's `processor_offsets` pass the token, it has replayed
//! those rows too. The standby is asked for that, again and again for at most
//! `QUERY_STANDBY_WAIT_MS`; if it has not replayed them by then (or cannot be asked), the
//! primary answers. A request without a token reads the standby as it is.
//!
//! The standby is pinged every second; while it does not answer, the primary answers
//! every read (`/readyz` shows `postgres_standby` degraded). The ping also measures how
//! many bytes of WAL the standby has yet to replay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use schemas::consistency::ConsistencyToken;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::consistency::covers;
use crate::metrics::QueryMetrics;

const FIRST_POLL: Duration = Duration::from_millis(2);
const LONGEST_POLL: Duration = Duration::from_millis(25);
/// How often the standby is pinged (and its lag measured), and how long a ping may take.
const PING_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Standby {
    primary: PgPool,
    /// `None` without `DATABASE_READ_URL`: everything reads the primary.
    standby: Option<PgPool>,
    group: String,
    topic: String,
    wait: Duration,
    metrics: QueryMetrics,
    /// The last ping answered.
    reachable: Arc<AtomicBool>,
}

/// Why a read went where it went: `bazaar_query_database_reads_total{server, why}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No standby configured.
    NoStandby,
    /// No consistency token.
    NoToken,
    /// The standby had replayed the token's movements.
    Replayed,
    /// It had not within the wait.
    NotReplayed,
    /// It did not answer its last ping, or the question.
    Unreachable,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Self::NoStandby => "no_standby",
            Self::NoToken => "no_token",
            Self::Replayed => "replayed",
            Self::NotReplayed => "not_replayed",
            Self::Unreachable => "unreachable",
        }
    }
}

impl Standby {
    pub fn new(
        primary: PgPool,
        standby: Option<PgPool>,
        group: &str,
        topic: &str,
        wait: Duration,
        metrics: QueryMetrics,
    ) -> Self {
        Self {
            primary,
            standby,
            group: group.to_owned(),
            topic: topic.to_owned(),
            wait,
            metrics,
            reachable: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Pings the standby every second until `stop`, for reads to leave it while it is
    /// away, and measures how far its replay is behind the primary's WAL
    /// (`bazaar_query_standby_lag_bytes`).
    /// The processors' consumer group and input topic, whose progress it follows.
    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn watch(&self, stop: CancellationToken) {
        let Some(standby) = self.standby.clone() else {
            return;
        };
        let (primary, reachable, metrics) = (
            self.primary.clone(),
            self.reachable.clone(),
            self.metrics.clone(),
        );
        tokio::spawn(async move {
            while stop
                .run_until_cancelled(tokio::time::sleep(PING_EVERY))
                .await
                .is_some()
            {
                let replayed = tokio::time::timeout(
                    PING_EVERY,
                    sqlx::query_scalar::<_, Option<String>>(
                        "SELECT pg_last_wal_replay_lsn()::text",
                    )
                    .fetch_one(&standby),
                )
                .await;
                let answered = matches!(replayed, Ok(Ok(_)));
                if reachable.swap(answered, Ordering::Relaxed) != answered {
                    if answered {
                        tracing::info!("the standby answers again; reports read it");
                    } else {
                        tracing::warn!("the standby does not answer; reports read the primary");
                    }
                }
                // None: not a standby at all (DATABASE_READ_URL names a primary).
                if let Ok(Ok(Some(replayed))) = replayed {
                    let behind = sqlx::query_scalar::<_, i64>(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint",
                    )
                    .bind(replayed)
                    .fetch_one(&primary)
                    .await;
                    if let Ok(behind) = behind {
                        metrics.standby_lag_bytes(behind.max(0));
                    }
                }
            }
        });
    }

    /// The pool to read from: the standby unless `token` names movements it has not
    /// replayed within the wait. Call after the token was waited for on the primary.
    pub async fn pool_for(&self, token: Option<&ConsistencyToken>) -> &PgPool {
        let (pool, why) = self.choose(token).await;
        self.metrics.database_read(pool_label(why), why.label());
        pool
    }

    async fn choose(&self, token: Option<&ConsistencyToken>) -> (&PgPool, Why) {
        let Some(standby) = &self.standby else {
            return (&self.primary, Why::NoStandby);
        };
        if !self.reachable.load(Ordering::Relaxed) {
            return (&self.primary, Why::Unreachable);
        }
        let Some(token) = token else {
            return (standby, Why::NoToken);
        };
        let started = Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            match self.replayed(standby).await {
                Ok(offsets) if covers(&offsets, token) => return (standby, Why::Replayed),
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "the standby could not be asked; reading the primary");
                    return (&self.primary, Why::Unreachable);
                }
            }
            if started.elapsed() + pause > self.wait {
                return (&self.primary, Why::NotReplayed);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }

    /// The primary's last committed offset of `partition`, when reads may go to a standby
    /// (else `None`: the primary answers them anyway). A read that must not miss what was
    /// committed before it began, though nobody told it, waits for the standby to pass it.
    pub async fn committed_on_primary(&self, partition: i32) -> Result<Option<i64>, sqlx::Error> {
        if self.standby.is_none() {
            return Ok(None);
        }
        let offsets =
            service_kit::postgres::committed_offsets(&self.primary, &self.group, &self.topic)
                .await?;
        Ok(offsets.get(&partition).map(|next| next - 1))
    }

    /// The standby's next offset per partition of the movements topic.
    async fn replayed(&self, standby: &PgPool) -> Result<BTreeMap<i32, i64>, sqlx::Error> {
        service_kit::postgres::committed_offsets(standby, &self.group, &self.topic).await
    }
}

fn pool_label(why: Why) -> &'static str {
    match why {
        Why::NoToken | Why::Replayed => "standby",
        Why::NoStandby | Why::NotReplayed | Why::Unreachable => "primary",
    }
}
