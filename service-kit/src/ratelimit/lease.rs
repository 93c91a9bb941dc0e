//! Shares of the budgets in Redis, spent by this instance without asking Redis each time.
//!
//! A request spends one request of its key's share while one is left; when none is, one
//! Redis call takes the next share — giving back what an expired share left unspent. A
//! refusal is kept until the moment Redis named, so a client over its limit costs no Redis
//! call either. The shared limit holds: a share is taken from the one budget before it is
//! spent, so N instances can together serve at most the budget, and a request may be
//! refused at one instance while another still holds up to a share of it (at most one
//! share per instance, for at most [`LEASE_LIFE`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::shared::Grant;
use super::{Decision, Limit};

/// A share not spent within this goes back to the budget at the next call to Redis.
pub const LEASE_LIFE: Duration = Duration::from_secs(1);

impl Limit {
    /// How many requests one call to Redis takes: what the sustained rate gives in 20 ms,
    /// at most a tenth of the burst, at least one (small limits are exact).
    pub fn share(self) -> u32 {
        (self.per_second.get() / 50)
            .min(self.burst.get() / 10)
            .max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    /// Requests taken from Redis and not spent yet.
    left: u32,
    /// What Redis had left of the burst when the share was taken.
    remaining: u32,
    full_at: Instant,
    /// After this the unspent requests go back to the budget.
    expires: Instant,
    /// Refused by Redis until then.
    refused_until: Instant,
}

/// The shares this instance holds, by key.
#[derive(Debug)]
pub(super) struct Leases<K> {
    leases: Mutex<HashMap<K, Lease>>,
}

impl<K: Hash + Eq> Leases<K> {
    pub(super) fn new() -> Self {
        Self {
            leases: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spends one request of `key`'s share or repeats its refusal; `Err(returned)` when
    /// Redis must be asked, giving back the `returned` requests an expired share left.
    pub(super) fn spend(&self, key: &K, now: Instant) -> Result<Decision, u32> {
        let mut leases = self.lock();
        let Some(lease) = leases.get_mut(key) else {
            return Err(0);
        };
        let full_in = lease.full_at.saturating_duration_since(now);
        if now < lease.refused_until {
            return Ok(Decision {
                allowed: false,
                remaining: 0,
                full_in,
                retry_after: lease.refused_until - now,
            });
        }
        if now >= lease.expires {
            return Err(std::mem::take(&mut lease.left));
        }
        if lease.left == 0 {
            return Err(0);
        }
        lease.left -= 1;
        Ok(Decision {
            allowed: true,
            remaining: lease.remaining.saturating_add(lease.left),
            full_in,
            retry_after: Duration::ZERO,
        })
    }

    /// Keeps what Redis granted for `key` beyond the request that asked, and decides that
    /// request.
    pub(super) fn keep(&self, key: K, grant: Grant, now: Instant) -> Decision {
        let full_at = now + grant.full_in;
        let mut leases = self.lock();
        if grant.taken == 0 {
            let refused_until = now + grant.retry_after;
            leases
                .entry(key)
                .and_modify(|lease| {
                    lease.refused_until = refused_until;
                    lease.full_at = full_at;
                })
                .or_insert(Lease {
                    left: 0,
                    remaining: 0,
                    full_at,
                    expires: now,
                    refused_until,
                });
            return Decision {
                allowed: false,
                remaining: 0,
                full_in: grant.full_in,
                retry_after: grant.retry_after,
            };
        }
        let extra = grant.taken - 1;
        let lease = Lease {
            left: extra,
            remaining: grant.remaining,
            full_at,
            expires: now + LEASE_LIFE,
            refused_until: now,
        };
        let left = match leases.get_mut(&key) {
            Some(held) => {
                // Another request's share may still be live: both are this instance's.
                let live = if now < held.expires { held.left } else { 0 };
                *held = Lease {
                    left: live + extra,
                    ..lease
                };
                held.left
            }
            // A share of one leaves nothing to keep: no entry (addresses, small limits).
            None if extra == 0 => 0,
            None => {
                leases.insert(key, lease);
                extra
            }
        };
        Decision {
            allowed: true,
            remaining: grant.remaining.saturating_add(left),
            full_in: grant.full_in,
            retry_after: Duration::ZERO,
        }
    }

    /// Forgets the shares that have expired and refusals that have passed, so memory
    /// follows the recent callers. Their unspent requests stay taken; the budget's key in
    /// Redis expires once it is full again anyway.
    pub(super) fn forget_idle(&self, now: Instant) {
        self.lock()
            .retain(|_, lease| now < lease.expires || now < lease.refused_until);
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(taken: u32, remaining: u32) -> Grant {
        Grant {
            taken,
            remaining,
            full_in: Duration::from_millis(100),
            retry_after: if taken == 0 {
                Duration::from_millis(20)
            } else {
                Duration::ZERO
            },
        }
    }

    #[test]
    fn a_share_is_spent_locally_then_redis_is_asked_again() {
        let leases = Leases::new();
        let now = Instant::now();
        assert_eq!(leases.spend(&1, now), Err(0), "nothing held yet");
        let first = leases.keep(1, grant(4, 10), now);
        assert!(first.allowed);
        assert_eq!(first.remaining, 13, "Redis' 10 and the 3 held here");
        for remaining in (10..13).rev() {
            let decision = leases.spend(&1, now).unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.remaining, remaining);
        }
        assert_eq!(leases.spend(&1, now), Err(0), "the share is spent");
        assert_eq!(leases.spend(&2, now), Err(0), "another key has its own");
    }

    #[test]
    fn an_expired_share_goes_back_to_redis_once() {
        let leases = Leases::new();
        let now = Instant::now();
        leases.keep(1, grant(5, 0), now);
        leases.spend(&1, now).unwrap();
        let later = now + LEASE_LIFE;
        assert_eq!(leases.spend(&1, later), Err(3), "three unspent go back");
        assert_eq!(leases.spend(&1, later), Err(0), "and only once");
        leases.forget_idle(later);
        assert_eq!(leases.len(), 0);
    }

    #[test]
    fn a_refusal_is_kept_until_redis_said_and_a_share_of_one_keeps_nothing() {
        let leases = Leases::new();
        let now = Instant::now();
        let refused = leases.keep(7, grant(0, 0), now);
        assert!(!refused.allowed);
        let again = leases.spend(&7, now + Duration::from_millis(5)).unwrap();
        assert_eq!(
            (again.allowed, again.retry_after),
            (false, Duration::from_millis(15))
        );
        assert_eq!(leases.spend(&7, now + Duration::from_millis(20)), Err(0));
        leases.forget_idle(now + Duration::from_millis(20));
        assert!(leases.keep(8, grant(1, 4), now).allowed);
        assert_eq!(leases.len(), 0, "nothing kept for a share of one");
    }

    #[test]
    fn shares_follow_the_rate_and_small_limits_stay_exact() {
        let share = |per_second, burst| Limit::new(per_second, burst).unwrap().share();
        assert_eq!(share(2_000, 4_000), 40);
        assert_eq!(share(2_000, 100), 10);
        assert_eq!(share(50, 100), 1);
        assert_eq!(share(1, 6), 1);
    }
}
