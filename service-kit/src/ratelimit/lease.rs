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
    /// Refused by Redis until then; `None` since a share was granted. (Never "refused until
    /// the grant's moment": a request that read the clock before it got the lock, while
    /// another request's grant came in, would be refused under any limit — broker_loss got
    /// a 429 under a million a second that way.)
    refused_until: Option<Instant>,
    /// Until then a request is taking the next share: others meanwhile take one request
    /// each, so concurrent requests do not take a share each. (A deadline, not a flag: a
    /// request dropped while it waits for Redis never says it is done.)
    refilling_until: Instant,
}

/// The longest a share is waited for before another request takes one.
const REFILL_WAIT: Duration = Duration::from_millis(500);

/// What to ask Redis for when a key's share is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ask {
    /// Requests to take: a share, or one while another request takes the share.
    pub take: u32,
    /// Unspent requests of an expired share to give back first.
    pub returned: u32,
}

/// The shares this instance holds, by key.
#[derive(Debug)]
pub(super) struct Leases<K> {
    share: u32,
    leases: Mutex<HashMap<K, Lease>>,
}

impl<K: Hash + Eq> Leases<K> {
    pub(super) fn new(limit: Limit) -> Self {
        Self {
            share: limit.share(),
            leases: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spends one request of `key`'s share or repeats its refusal; `Err` with what to ask
    /// Redis for when the share is spent.
    pub(super) fn spend(&self, key: K, now: Instant) -> Result<Decision, Ask> {
        let mut leases = self.lock();
        let Some(lease) = leases.get_mut(&key) else {
            // A share of one leaves nothing to keep: no entry (addresses, small limits).
            if self.share > 1 {
                leases.insert(
                    key,
                    Lease {
                        left: 0,
                        remaining: 0,
                        full_at: now,
                        expires: now,
                        refused_until: None,
                        refilling_until: now + REFILL_WAIT,
                    },
                );
            }
            return Err(Ask {
                take: self.share,
                returned: 0,
            });
        };
        let full_in = lease.full_at.saturating_duration_since(now);
        if lease.left > 0 && now < lease.expires {
            lease.left -= 1;
            return Ok(Decision {
                allowed: true,
                remaining: lease.remaining.saturating_add(lease.left),
                full_in,
                retry_after: Duration::ZERO,
            });
        }
        if let Some(until) = lease.refused_until
            && now < until
        {
            return Ok(Decision {
                allowed: false,
                remaining: 0,
                full_in,
                retry_after: until - now,
            });
        }
        let returned = std::mem::take(&mut lease.left);
        if now < lease.refilling_until {
            return Err(Ask { take: 1, returned });
        }
        lease.refilling_until = now + REFILL_WAIT;
        Err(Ask {
            take: self.share,
            returned,
        })
    }

    /// Keeps what Redis granted for `key` (asked with `ask`) beyond the request that
    /// asked, and decides that request.
    pub(super) fn keep(&self, key: K, ask: Ask, grant: Grant, now: Instant) -> Decision {
        let full_at = now + grant.full_in;
        let mut leases = self.lock();
        let held = leases.get_mut(&key);
        let Some(lease) = held else {
            // Nothing held: a share of one, or forgotten meanwhile. A refusal is kept.
            if grant.taken != 1 {
                leases.insert(
                    key,
                    Lease {
                        left: grant.taken.saturating_sub(1),
                        remaining: grant.remaining,
                        full_at,
                        expires: now + LEASE_LIFE,
                        refused_until: (grant.taken == 0).then(|| now + grant.retry_after),
                        refilling_until: now,
                    },
                );
            }
            return granted(&grant, grant.taken.saturating_sub(1));
        };
        if ask.take == self.share {
            lease.refilling_until = now;
        }
        if now >= lease.expires {
            lease.left = 0;
        }
        if grant.taken == 0 {
            if lease.left > 0 {
                // Refused in Redis, but a share taken meanwhile still has some.
                lease.left -= 1;
                return Decision {
                    allowed: true,
                    remaining: lease.left,
                    full_in: grant.full_in,
                    retry_after: Duration::ZERO,
                };
            }
            lease.refused_until = Some(now + grant.retry_after);
            lease.full_at = full_at;
            return granted(&grant, 0);
        }
        *lease = Lease {
            left: lease.left + grant.taken - 1,
            remaining: grant.remaining,
            full_at,
            expires: now + LEASE_LIFE,
            refused_until: None,
            ..*lease
        };
        granted(&grant, lease.left)
    }

    /// Redis did not answer `ask` for `key`: another request may take the next share.
    pub(super) fn unanswered(&self, key: &K, ask: Ask) {
        if ask.take == self.share
            && let Some(lease) = self.lock().get_mut(key)
        {
            lease.refilling_until = Instant::now();
        }
    }

    /// Forgets the shares that have expired and refusals that have passed, so memory
    /// follows the recent callers. Their unspent requests stay taken; the budget's key in
    /// Redis expires once it is full again anyway.
    pub(super) fn forget_idle(&self, now: Instant) {
        self.lock().retain(|_, lease| {
            now < lease.expires
                || lease.refused_until.is_some_and(|until| now < until)
                || now < lease.refilling_until
        });
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The decision for the request that asked Redis: allowed with `held` more held here, or
/// refused.
fn granted(grant: &Grant, held: u32) -> Decision {
    Decision {
        allowed: grant.taken > 0,
        remaining: grant.remaining.saturating_add(held),
        full_in: grant.full_in,
        retry_after: grant.retry_after,
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

    /// Shares of 4.
    fn leases() -> Leases<u64> {
        Leases::new(Limit::new(200, 40).unwrap())
    }

    const SHARE: Ask = Ask {
        take: 4,
        returned: 0,
    };

    #[test]
    fn a_share_is_spent_locally_then_redis_is_asked_again() {
        let leases = leases();
        let now = Instant::now();
        assert_eq!(leases.spend(1, now), Err(SHARE), "nothing held yet");
        let first = leases.keep(1, SHARE, grant(4, 10), now);
        assert!(first.allowed);
        assert_eq!(first.remaining, 13, "Redis' 10 and the 3 held here");
        for remaining in (10..13).rev() {
            let decision = leases.spend(1, now).unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.remaining, remaining);
        }
        assert_eq!(leases.spend(1, now), Err(SHARE), "the share is spent");
        assert_eq!(leases.spend(2, now), Err(SHARE), "another key has its own");
    }

    #[test]
    fn while_one_request_takes_a_share_the_others_take_one_each() {
        let leases = leases();
        let now = Instant::now();
        assert_eq!(leases.spend(1, now), Err(SHARE));
        let one = Ask {
            take: 1,
            returned: 0,
        };
        assert_eq!(leases.spend(1, now), Err(one), "a share is on its way");
        assert!(leases.keep(1, one, grant(1, 30), now).allowed);
        // Redis refused the share (other instances took the budget), but the request
        // that took one is served, and the next asks for a share again.
        assert!(!leases.keep(1, SHARE, grant(0, 0), now).allowed);
        let later = now + Duration::from_millis(20);
        assert_eq!(leases.spend(1, later), Err(SHARE));
        // A request dropped while it waited for its share holds the others back no
        // longer than REFILL_WAIT.
        assert_eq!(leases.spend(1, later), Err(one));
        assert_eq!(leases.spend(1, later + REFILL_WAIT), Err(SHARE));
        leases.unanswered(&1, SHARE);
        assert_eq!(leases.spend(1, later + REFILL_WAIT), Err(SHARE));
    }

    #[test]
    fn units_held_are_spent_even_when_redis_refuses_another_share() {
        let leases = leases();
        let now = Instant::now();
        assert_eq!(leases.spend(1, now), Err(SHARE));
        leases.keep(1, SHARE, grant(4, 0), now);
        let one = Ask {
            take: 1,
            returned: 0,
        };
        // Two requests raced past an empty share: one got a share, the other's refusal
        // is served from it.
        let decision = leases.keep(1, one, grant(0, 0), now);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 2);
    }

    #[test]
    fn an_expired_share_goes_back_to_redis_once() {
        let leases = leases();
        let now = Instant::now();
        assert_eq!(leases.spend(1, now), Err(SHARE));
        leases.keep(1, SHARE, grant(4, 0), now);
        leases.spend(1, now).unwrap();
        let later = now + LEASE_LIFE;
        let back = Ask {
            take: 4,
            returned: 2,
        };
        assert_eq!(leases.spend(1, later), Err(back), "two unspent go back");
        leases.unanswered(&1, back);
        assert_eq!(leases.spend(1, later), Err(SHARE), "and only once");
        leases.unanswered(&1, SHARE);
        leases.forget_idle(later);
        assert_eq!(leases.len(), 0);
    }

    #[test]
    fn a_refusal_is_kept_until_redis_said_and_a_share_of_one_keeps_nothing_else() {
        let leases = Leases::new(Limit::new(1, 6).unwrap());
        let one = Ask {
            take: 1,
            returned: 0,
        };
        let now = Instant::now();
        assert_eq!(leases.spend(7, now), Err(one));
        assert!(leases.keep(7, one, grant(1, 4), now).allowed);
        assert_eq!(leases.len(), 0, "nothing kept for a share of one");
        assert_eq!(leases.spend(7, now), Err(one));
        assert!(!leases.keep(7, one, grant(0, 0), now).allowed);
        let again = leases.spend(7, now + Duration::from_millis(5)).unwrap();
        assert_eq!(
            (again.allowed, again.retry_after),
            (false, Duration::from_millis(15))
        );
        assert_eq!(leases.spend(7, now + Duration::from_millis(20)), Err(one));
    }

    #[test]
    fn a_request_that_read_the_clock_before_a_grant_came_in_is_never_refused() {
        let leases = leases();
        let before = Instant::now();
        assert_eq!(leases.spend(1, before), Err(SHARE));
        // Redis had one request left to give; its grant is kept a moment after another
        // request read the clock (that one waited for the lock meanwhile). That request
        // finds the share spent: it asks Redis, nobody refused it.
        leases.keep(1, SHARE, grant(1, 0), before + Duration::from_millis(3));
        assert!(leases.spend(1, before).is_err());
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
