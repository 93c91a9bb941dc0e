//! The budgets in Redis, so that every instance behind a load balancer draws on the same
//! one: the shared GCRA and breaker of [`crate::budget`], one script per request.

use std::time::Duration;

use redis::Script;

use super::{Decision, Limit};
use crate::budget::{Breaker, gcra_script};
use crate::redis::Redis;

/// KEYS[1] the budget; ARGV[1] microseconds between requests at the sustained rate,
/// ARGV[2] the burst. Answers {allowed, remaining, µs until full, µs until the next one}.
const TAKE: &str = r"
local interval = tonumber(ARGV[1])
local taken, used, capacity = gcra(KEYS[1], interval, tonumber(ARGV[2]), now_micros())
if not taken then
  return {0, 0, used - interval, used - capacity}
end
return {1, math.floor((capacity - used) / interval), used, 0}
";

pub(super) struct Shared {
    redis: Redis,
    script: Script,
    breaker: Breaker,
}

impl Shared {
    pub(super) fn new(redis: Redis) -> Self {
        Self {
            redis,
            script: gcra_script(TAKE),
            breaker: Breaker::new("rate limits"),
        }
    }

    /// Whether the budgets are shared right now (Redis answered the last time it was asked).
    pub(super) fn is_shared(&self) -> bool {
        self.breaker.is_shared()
    }

    /// Takes one request from the budget `key` in Redis; `None` when Redis is away (the
    /// caller decides with its own budgets then).
    pub(super) async fn check(&self, key: &str, limit: Limit) -> Option<Decision> {
        self.breaker.call(self.ask(key, limit)).await
    }

    async fn ask(&self, key: &str, limit: Limit) -> redis::RedisResult<Decision> {
        let mut connection = self.redis.connection().await?;
        let interval = 1_000_000 / u64::from(limit.per_second.get());
        let (allowed, remaining, full_in, next_in): (i64, i64, i64, i64) = self
            .script
            .key(self.redis.key(key))
            .arg(interval.max(1))
            .arg(limit.burst.get())
            .invoke_async(&mut connection)
            .await?;
        let micros = |value: i64| Duration::from_micros(value.max(0) as u64);
        Ok(Decision {
            allowed: allowed == 1,
            remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
            full_in: micros(full_in),
            retry_after: micros(next_in),
        })
    }
}
