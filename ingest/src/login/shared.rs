//! The login throttle's state in Redis, so that guesses spread over several ingest
//! instances count as one: the same rules as the in-process throttle (failures counted
//! with GCRA per pair, address and username; a key that runs out is locked until it
//! would allow the next failure; addresses that failed are remembered), each step one
//! atomic script on Redis' clock, on the shared GCRA and breaker of
//! `service_kit::budget`. Keys expire with what they hold.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use redis::Script;
use service_kit::budget::{Breaker, gcra_script};
use service_kit::redis::Redis;

use super::{FAILING_FOR, PER_ADDRESS, PER_PAIR, PER_USERNAME};

/// KEYS: the pair's, address's and username's budgets, then their locks, then the
/// address's failing mark. ARGV: microseconds between failures and burst for each budget,
/// then how long the mark lasts (ms).
const FAILED: &str = r"
local now = now_micros()
for i = 1, 3 do
  local taken, used, capacity = gcra(KEYS[i], tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]), now, 1)
  if taken == 0 then
    redis.call('SET', KEYS[i + 3], 1, 'PX', math.ceil((used - capacity) / 1000))
  end
end
redis.call('SET', KEYS[7], 1, 'PX', ARGV[7])
return 1
";

/// KEYS: the pair's, address's and username's locks, the address's failing mark. The
/// milliseconds to wait: the username's lock counts only for an address that has failed.
const WAIT: &str = r"
local wait = math.max(redis.call('PTTL', KEYS[1]), redis.call('PTTL', KEYS[2]), 0)
if redis.call('EXISTS', KEYS[4]) == 1 then
  wait = math.max(wait, redis.call('PTTL', KEYS[3]))
end
return wait
";

pub(super) struct SharedThrottle {
    redis: Redis,
    failed: Script,
    wait: Script,
    breaker: Breaker,
}

impl SharedThrottle {
    pub(super) fn new(redis: Redis) -> Self {
        Self {
            redis,
            failed: gcra_script(FAILED),
            wait: Script::new(WAIT),
            breaker: Breaker::new("login throttles"),
        }
    }

    fn keys(&self, username: &str, address: IpAddr) -> [String; 4] {
        // Usernames are the client's text: hashed, so a key's length is bounded.
        let mut hasher =
            std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
        hasher.write(username.as_bytes());
        let user = hasher.finish();
        [
            format!("pair:{user:016x}:{address}"),
            format!("address:{address}"),
            format!("username:{user:016x}"),
            format!("failing:{address}"),
        ]
        .map(|key| self.redis.key(&format!("login:{key}")))
    }

    /// How long `username` from `address` must still wait (zero: not at all); `None` when
    /// Redis is away (the caller throttles alone then).
    pub(super) async fn wait(&self, username: &str, address: IpAddr) -> Option<Duration> {
        let [pair, address, username, failing] = self.keys(username, address);
        let mut invocation = self.wait.prepare_invoke();
        for key in [lock(&pair), lock(&address), lock(&username), failing] {
            invocation.key(key);
        }
        let millis = self
            .breaker
            .call(async {
                let mut connection = self.redis.connection().await?;
                invocation.invoke_async::<i64>(&mut connection).await
            })
            .await?;
        Some(Duration::from_millis(millis.max(0) as u64))
    }

    /// Counts a failure against the pair, the address and the username; `None` when Redis
    /// is away (the caller counts it alone then).
    pub(super) async fn failed(&self, username: &str, address: IpAddr) -> Option<()> {
        let [pair, address, username, failing] = self.keys(username, address);
        let mut invocation = self.failed.prepare_invoke();
        for key in [&pair, &address, &username] {
            invocation.key(key.as_str());
        }
        for key in [&pair, &address, &username] {
            invocation.key(lock(key));
        }
        invocation.key(failing);
        for (failures, every) in [PER_PAIR, PER_ADDRESS, PER_USERNAME] {
            // The `failures`-th failure in a row is the one refused, as in-process.
            invocation
                .arg(every.as_micros() as u64)
                .arg(failures.saturating_sub(1).max(1));
        }
        invocation.arg(FAILING_FOR.as_millis() as u64);
        self.breaker
            .call(async {
                let mut connection = self.redis.connection().await?;
                invocation.invoke_async::<i64>(&mut connection).await
            })
            .await
            .map(drop)
    }
}

fn lock(key: &str) -> String {
    format!("{key}:lock")
}
