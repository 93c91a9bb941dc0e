//! The budgets in Redis, so that every instance behind a load balancer draws on the same
//! one: the same GCRA as governor's, run as one Lua script per request on Redis' clock
//! (instances' clocks may differ). A budget's key expires once it is full again, so Redis
//! holds only recent callers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::Script;

use super::{Decision, Limit};
use crate::redis::Redis;

/// KEYS[1] the budget; ARGV[1] microseconds between requests at the sustained rate,
/// ARGV[2] the burst. Answers {allowed, remaining, µs until full, µs until the next one}.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local capacity = interval * tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local used = tat + interval - now
if used > capacity then
  return {0, 0, tat - now, used - capacity}
end
redis.call('SET', KEYS[1], string.format('%d', now + used), 'PX', math.ceil(used / 1000))
return {1, math.floor((capacity - used) / interval), used, 0}
";

/// A Redis call slower than this counts as Redis being away: a rate limit must not make
/// every request wait.
const TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, the per-instance budgets decide alone for this long before Redis is
/// asked again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

pub(super) struct Shared {
    redis: Redis,
    script: Script,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not asked.
    away_until: AtomicU64,
    away: AtomicBool,
}

impl Shared {
    pub(super) fn new(redis: Redis) -> Self {
        Self {
            redis,
            script: Script::new(GCRA),
            started: Instant::now(),
            away_until: AtomicU64::new(0),
            away: AtomicBool::new(false),
        }
    }

    /// Whether the budgets are shared right now (Redis answered the last time it was asked).
    pub(super) fn is_shared(&self) -> bool {
        !self.away.load(Ordering::Relaxed)
    }

    /// Takes one request from the budget `key` in Redis; `None` when Redis is away (the
    /// caller decides with its own budgets then).
    pub(super) async fn check(&self, key: &str, limit: Limit) -> Option<Decision> {
        let now = self.started.elapsed().as_millis() as u64;
        if now < self.away_until.load(Ordering::Relaxed) {
            return None;
        }
        match tokio::time::timeout(TIMEOUT, self.ask(key, limit)).await {
            Ok(Ok(decision)) => {
                if self.away.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared by every instance");
                }
                Some(decision)
            }
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {TIMEOUT:?}"),
                };
                let retry_at = now + RETRY_AFTER_FAILURE.as_millis() as u64;
                self.away_until.store(retry_at, Ordering::Relaxed);
                if !self.away.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "Redis is unreachable: rate limits are per instance until it answers");
                }
                None
            }
        }
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
