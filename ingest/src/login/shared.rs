//! The login throttle's state in Redis, so that guesses spread over several ingest
//! instances count as one: the same rules as the in-process throttle (failures counted
//! with GCRA per pair, address and username; a key that runs out is locked until it
//! would allow the next failure; addresses that failed are remembered), each step one
//! atomic script on Redis' clock. Keys expire with what they hold.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use redis::Script;
use service_kit::redis::Redis;

use super::{FAILING_FOR, PER_ADDRESS, PER_PAIR, PER_USERNAME};

/// KEYS: the pair's, address's and username's budgets, then their locks, then the
/// address's failing mark. ARGV: microseconds between failures and burst for each budget,
/// then how long the mark lasts (ms).
const FAILED: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
for i = 1, 3 do
  local interval = tonumber(ARGV[2 * i - 1])
  local capacity = interval * tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local used = tat + interval - now
  if used > capacity then
    redis.call('SET', KEYS[i + 3], 1, 'PX', math.ceil((used - capacity) / 1000))
  else
    redis.call('SET', KEYS[i], string.format('%d', now + used), 'PX', math.ceil(used / 1000))
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

/// A Redis call slower than this counts as a failure: the caller falls back to its own
/// throttle rather than hold the login.
const TIMEOUT: Duration = Duration::from_millis(250);

pub(super) struct SharedThrottle {
    redis: Redis,
    failed: Script,
    wait: Script,
}

impl SharedThrottle {
    pub(super) fn new(redis: Redis) -> Self {
        Self {
            redis,
            failed: Script::new(FAILED),
            wait: Script::new(WAIT),
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

    /// How long `username` from `address` must still wait (zero: not at all).
    pub(super) async fn wait(
        &self,
        username: &str,
        address: IpAddr,
    ) -> redis::RedisResult<Duration> {
        let [pair, address, username, failing] = self.keys(username, address);
        let mut invocation = self.wait.prepare_invoke();
        for key in [lock(&pair), lock(&address), lock(&username), failing] {
            invocation.key(key);
        }
        let waited = tokio::time::timeout(TIMEOUT, async {
            let mut connection = self.redis.connection().await?;
            invocation.invoke_async::<i64>(&mut connection).await
        });
        let millis = waited.await.map_err(timed_out)??;
        Ok(Duration::from_millis(millis.max(0) as u64))
    }

    /// Counts a failure against the pair, the address and the username.
    pub(super) async fn failed(&self, username: &str, address: IpAddr) -> redis::RedisResult<()> {
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
        let counted = tokio::time::timeout(TIMEOUT, async {
            let mut connection = self.redis.connection().await?;
            invocation.invoke_async::<i64>(&mut connection).await
        });
        counted.await.map_err(timed_out)?.map(drop)
    }
}

fn lock(key: &str) -> String {
    format!("{key}:lock")
}

fn timed_out(_: tokio::time::error::Elapsed) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "Redis did not answer in time"))
}
