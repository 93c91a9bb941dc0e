//! The budgets in Redis, so that every instance behind a load balancer draws on the same
//! one: the shared GCRA and breaker of [`crate::budget`]. One call takes a share of a
//! budget (see [`super::lease`]) and gives back what an expired share left unspent.

use std::time::Duration;

use prometheus::IntCounter;
use redis::Script;

use super::Limit;
use super::lease::Ask;
use crate::budget::{Breaker, gcra_script};
use crate::redis::Redis;

/// KEYS[1] the budget; ARGV[1] microseconds between requests at the sustained rate,
/// ARGV[2] the burst, ARGV[3] how many to take at most, ARGV[4] how many to give back
/// first. Answers {taken, remaining, µs until full, µs until the next one}.
const TAKE: &str = r"
local interval = tonumber(ARGV[1])
local returned = tonumber(ARGV[4])
if returned > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]))
  if tat then
    redis.call('SET', KEYS[1], string.format('%d', tat - returned * interval), 'KEEPTTL')
  end
end
local taken, used, capacity = gcra(KEYS[1], interval, tonumber(ARGV[2]), now_micros(), tonumber(ARGV[3]))
if taken == 0 then
  return {0, 0, used - interval, used - capacity}
end
return {taken, math.floor((capacity - used) / interval), used, 0}
";

/// What one call to Redis took from a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grant {
    /// Requests taken, up to the share asked for; 0: refused.
    pub taken: u32,
    /// Requests left in the burst after these.
    pub remaining: u32,
    /// Until the whole burst is available again.
    pub full_in: Duration,
    /// Refused: until one more request would be allowed.
    pub retry_after: Duration,
}

pub(super) struct Shared {
    redis: Redis,
    script: Script,
    breaker: Breaker,
    /// Round trips to Redis, to compare with the requests they served.
    calls: IntCounter,
}

impl Shared {
    pub(super) fn new(redis: Redis, calls: IntCounter) -> Self {
        Self {
            redis,
            script: gcra_script(TAKE),
            breaker: Breaker::new("rate limits"),
            calls,
        }
    }

    /// Whether the budgets are shared right now (Redis answered the last time it was asked).
    pub(super) fn is_shared(&self) -> bool {
        self.breaker.is_shared()
    }

    /// Gives `ask.returned` unspent requests back to the budget `key` in Redis, then takes
    /// up to `ask.take`; `None` when Redis is away (the caller decides with its own budgets
    /// then).
    pub(super) async fn take(&self, key: &str, limit: Limit, ask: Ask) -> Option<Grant> {
        self.breaker.call(self.ask(key, limit, ask)).await
    }

    async fn ask(&self, key: &str, limit: Limit, ask: Ask) -> redis::RedisResult<Grant> {
        let mut connection = self.redis.connection().await?;
        self.calls.inc();
        let interval = 1_000_000 / u64::from(limit.per_second.get());
        let (taken, remaining, full_in, next_in): (i64, i64, i64, i64) = self
            .script
            .key(self.redis.key(key))
            .arg(interval.max(1))
            .arg(limit.burst.get())
            .arg(ask.take)
            .arg(ask.returned)
            .invoke_async(&mut connection)
            .await?;
        let count = |value: i64| value.clamp(0, i64::from(u32::MAX)) as u32;
        let micros = |value: i64| Duration::from_micros(value.max(0) as u64);
        Ok(Grant {
            taken: count(taken),
            remaining: count(remaining),
            full_in: micros(full_in),
            retry_after: micros(next_in),
        })
    }
}
