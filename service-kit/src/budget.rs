//! Budgets shared by every instance through Redis. Two parts, each written once:
//!
//! - **GCRA** (the generic cell rate algorithm, as governor runs it in process), as a Lua
//!   function that each caller's script calls, on Redis' clock (instances' clocks may
//!   differ); a budget's key expires once it is full again, so Redis holds only recent
//!   callers.
//! - **A breaker**: a Redis call that fails or is slower than [`TIMEOUT`] makes the
//!   callers decide alone, per instance, for [`RETRY_AFTER_FAILURE`] before Redis is asked
//!   again — so while Redis is away a request pays no failed call — and each change of
//!   state is logged once.
//!
//! The rate limiter (`ratelimit`) and ingest's login throttle are built on both.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::{RedisResult, Script};

/// `now_micros()`: Redis' clock in microseconds. `gcra(key, interval, burst, now, units)`:
/// takes up to `units` (at least one) from the budget at `key` — units `interval` µs apart
/// at the sustained rate, up to `burst` at once — and returns how many it took (0 when
/// not even one fits), the µs of the budget in use counting them (refused: counting one
/// more), and the budget's capacity in µs.
const GCRA: &str = r"
local function now_micros()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local function gcra(key, interval, burst, now, units)
  local capacity = interval * burst
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local taken = math.min(units or 1, math.floor((capacity - (tat - now)) / interval))
  if taken < 1 then return 0, tat + interval - now, capacity end
  local used = tat + taken * interval - now
  redis.call('SET', key, string.format('%d', now + used), 'PX', math.ceil(used / 1000))
  return taken, used, capacity
end
";

/// A script whose `body` may call `now_micros()` and `gcra(key, interval, burst, now, units)`.
pub fn gcra_script(body: &str) -> Script {
    Script::new(&format!("{GCRA}{body}"))
}

/// A Redis call slower than this counts as Redis being away: a budget must not make every
/// request wait.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, callers decide alone for this long before Redis is asked again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Whether Redis answers, shared by the calls of one kind of budget.
#[derive(Debug)]
pub struct Breaker {
    /// What the budgets are, for the log: "rate limits", "login throttles".
    what: &'static str,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not asked.
    away_until: AtomicU64,
    away: AtomicBool,
}

impl Breaker {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            started: Instant::now(),
            away_until: AtomicU64::new(0),
            away: AtomicBool::new(false),
        }
    }

    /// Whether the budgets are shared right now (Redis answered the last time it was asked).
    pub fn is_shared(&self) -> bool {
        !self.away.load(Ordering::Relaxed)
    }

    /// Runs `call` unless Redis failed within the last [`RETRY_AFTER_FAILURE`]; `None`
    /// when it did, fails now, or takes longer than [`TIMEOUT`]: the caller decides alone.
    pub async fn call<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        let now = self.started.elapsed().as_millis() as u64;
        if now < self.away_until.load(Ordering::Relaxed) {
            return None;
        }
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(answer)) => {
                if self.away.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        "Redis answers again: {} are shared by every instance.",
                        self.what
                    );
                }
                Some(answer)
            }
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {TIMEOUT:?}"),
                };
                let retry_at = now + RETRY_AFTER_FAILURE.as_millis() as u64;
                self.away_until.store(retry_at, Ordering::Relaxed);
                if !self.away.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        "Redis is unreachable: {} are per instance until it answers.",
                        self.what
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_call_skips_redis_for_a_while_then_tries_again() {
        let breaker = Breaker::new("test budgets");
        let failing =
            || async { Err::<(), _>(redis::RedisError::from((redis::ErrorKind::Io, "away"))) };
        assert_eq!(breaker.call(failing()).await, None);
        assert!(!breaker.is_shared());
        let mut asked = false;
        let answer = breaker
            .call(async {
                asked = true;
                Ok(1)
            })
            .await;
        assert_eq!(
            (answer, asked),
            (None, false),
            "Redis is not asked while away"
        );
        tokio::time::sleep(RETRY_AFTER_FAILURE).await;
        assert_eq!(breaker.call(async { Ok(2) }).await, Some(2));
        assert!(breaker.is_shared());
    }

    #[tokio::test]
    async fn a_call_slower_than_the_timeout_counts_as_a_failure() {
        let breaker = Breaker::new("test budgets");
        let slow = async {
            tokio::time::sleep(TIMEOUT * 2).await;
            Ok(())
        };
        assert_eq!(breaker.call(slow).await, None);
        assert!(!breaker.is_shared());
    }
}
