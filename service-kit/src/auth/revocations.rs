//! The revocation list every API instance checks each token against, in memory.
//!
//! Postgres holds the truth, written by ingest in the transaction that makes the change:
//! `sessions.revoked_at` (logout, a reused refresh token, a disabled user, a password
//! change) and `users.token_version` (raised when a user is disabled or their role,
//! stores or password are changed by an admin). Each instance reads what changed since
//! its last look every [`FOLLOW_EVERY`], so a revocation reaches every instance of every
//! service within about a second; the instance that wrote it applies it at once.
//!
//! Redis plays no part: while it is down revocations work as ever. While Postgres is
//! unreachable an instance keeps refusing what it already knows and learns nothing new —
//! nothing new can be revoked then either, since revoking writes to Postgres.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::TokenKeys;
use crate::postgres::{CHANGE_OVERLAP, CHANGED_SINCE};

/// How often each instance reads the revocations written since its last look.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Revocations {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Revoked sessions → when. Kept for as long as an access token of theirs can live.
    sessions: HashMap<Uuid, DateTime<Utc>>,
    /// Username → current token version, for users whose version was ever raised.
    versions: HashMap<String, i64>,
    /// When the last read began, by the database's clock.
    watermark: Option<DateTime<Utc>>,
}

impl State {
    /// A version never goes down: a read older than a change this instance made keeps it.
    fn raise_version(&mut self, subject: String, version: i64) {
        let current = self.versions.entry(subject).or_default();
        *current = (*current).max(version);
    }
}

/// Why a token is refused although its signature and claims hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Its session ended (logout, a reused refresh token, a password change).
    Session,
    /// Its user was disabled or changed after it was issued.
    User,
}

impl Revocations {
    /// Whether a token of `subject`, issued under `version` in `session`, is revoked.
    pub fn check(&self, subject: &str, session: Option<Uuid>, version: i64) -> Option<Revoked> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if session.is_some_and(|session| state.sessions.contains_key(&session)) {
            return Some(Revoked::Session);
        }
        state
            .versions
            .get(subject)
            .is_some_and(|current| version < *current)
            .then_some(Revoked::User)
    }

    /// Applies a revocation this instance just committed, before the next read.
    pub fn revoke_sessions(&self, sessions: impl IntoIterator<Item = Uuid>) {
        let now = Utc::now();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state
            .sessions
            .extend(sessions.into_iter().map(|session| (session, now)));
    }

    /// Applies a user's new token version this instance just committed.
    pub fn raise_version(&self, subject: &str, version: i64) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .raise_version(subject.to_owned(), version);
    }

    /// Reads the revocations written since the last read (the first time: every revoked
    /// session whose access tokens may still live, and every raised version), and forgets
    /// revoked sessions older than `keep`.
    pub async fn refresh(&self, pool: &PgPool, keep: Duration) -> Result<(), sqlx::Error> {
        let watermark = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .watermark;
        let read_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
        let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let sessions_since = watermark.map_or(read_at - keep, |at| at - CHANGE_OVERLAP);
        let sessions: Vec<(Uuid, DateTime<Utc>)> =
            sqlx::query_as("SELECT id, revoked_at FROM sessions WHERE revoked_at > $1")
                .bind(sessions_since)
                .fetch_all(pool)
                .await?;
        let versions: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT username, token_version FROM users WHERE token_version > 0 AND {CHANGED_SINCE}"
        ))
        .bind(watermark.map(|at| at - CHANGE_OVERLAP))
        .fetch_all(pool)
        .await?;

        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.sessions.extend(sessions);
        state
            .sessions
            .retain(|_, revoked_at| *revoked_at > read_at - keep);
        for (subject, version) in versions {
            state.raise_version(subject, version);
        }
        state.watermark = Some(read_at);
        Ok(())
    }
}

/// Reads revocations into `keys` every [`FOLLOW_EVERY`] until the keys are dropped. A
/// failed read is logged and retried; the list keeps what it has.
pub async fn follow(keys: Weak<TokenKeys>, pool: PgPool) {
    let mut ticks = tokio::time::interval(FOLLOW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(keys) = keys.upgrade() else {
            return;
        };
        if let Err(error) = keys
            .revocations()
            .refresh(&pool, keys.longest_token_life())
            .await
        {
            tracing::warn!(%error, "Reading token revocations failed; the ones already known still apply, and the read is retried.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_session_or_an_older_version_is_refused_and_nothing_else() {
        let revocations = Revocations::default();
        let (ended, live) = (Uuid::new_v4(), Uuid::new_v4());
        revocations.revoke_sessions([ended]);
        revocations.raise_version("changed", 2);
        assert_eq!(
            revocations.check("anyone", Some(ended), 0),
            Some(Revoked::Session)
        );
        assert_eq!(revocations.check("anyone", Some(live), 0), None);
        assert_eq!(revocations.check("anyone", None, 0), None);
        assert_eq!(
            revocations.check("changed", Some(live), 1),
            Some(Revoked::User)
        );
        assert_eq!(revocations.check("changed", Some(live), 2), None);
        revocations.raise_version("changed", 1);
        assert_eq!(
            revocations.check("changed", None, 1),
            Some(Revoked::User),
            "a version never goes down"
        );
    }
}
