//! [`RedisRateLimitStore`]: GCRA buckets on Redis, one script call per check.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::connection::RedisConnection;
use super::fallback::{Fallback, OutageLog};
use crate::rate_limit::{
    BucketKey, LimitCheck, LimitState, MemoryRateLimitStore, RateLimitStore, StoreFuture,
};

/// One GCRA step on one bucket, on the server's clock (so instances with skewed clocks
/// agree): the bucket holds its theoretical arrival time (TAT) in microseconds and expires
/// when it is full again, so idle buckets vanish.
///
/// KEYS: bucket. ARGV: emission interval (µs), burst. Returns allowed (1/0), remaining,
/// retry-after (µs), reset-after (µs).
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - now
if wait > tolerance then
  return {0, 0, wait - tolerance, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil(wait / 1000))
return {1, math.floor((tolerance - wait) / interval), 0, wait}
";

/// Rate-limit buckets on Redis, so that a limit of N per second holds across every
/// instance: the same GCRA as [`MemoryRateLimitStore`], computed atomically in Redis by one
/// script, one round trip per check, on the server's clock.
///
/// Each bucket is one key (`{prefix}:rl:<limit>:<interval µs>x<burst>:<bucket>`, spread
/// over a cluster's slots) that expires once the bucket is full again: each quota of a
/// limit (a tier's, or the one before a reload changed it) counts in buckets of its own. While Redis cannot answer, the store does
/// what its [`Fallback`] says (by default, counts in this process), with an error event at
/// most once a second.
#[derive(Clone)]
pub struct RedisRateLimitStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: RedisConnection,
    script: Script,
    fallback: Fallback,
    local: MemoryRateLimitStore,
    outage: OutageLog,
}

impl fmt::Debug for RedisRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimitStore")
            .field("connection", &self.inner.connection)
            .field("fallback", &self.inner.fallback)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimitStore {
    /// A store on `connection` that counts locally while Redis is unavailable.
    #[must_use]
    pub fn new(connection: RedisConnection) -> Self {
        Self::with_fallback(connection, Fallback::Local)
    }

    /// A store on `connection` doing `fallback` while Redis is unavailable.
    #[must_use]
    pub fn with_fallback(connection: RedisConnection, fallback: Fallback) -> Self {
        Self {
            inner: Arc::new(Inner {
                connection,
                script: Script::new(GCRA),
                fallback,
                local: MemoryRateLimitStore::default(),
                outage: OutageLog::default(),
            }),
        }
    }

    /// The bucket's key, naming the quota as the script counts it (the emission interval
    /// and the burst), so that each quota of a limit (its tiers, or its quota before and
    /// after a reload) has its own buckets, as in [`MemoryRateLimitStore`].
    fn bucket_key(&self, limit: &str, interval: u64, burst: u32, key: &BucketKey) -> String {
        let prefix = self.inner.connection.prefix();
        format!("{prefix}:rl:{limit}:{interval}x{burst}:{key}")
    }
}

impl RateLimitStore for RedisRateLimitStore {
    fn check(&self, check: &LimitCheck<'_>) -> StoreFuture<LimitState> {
        let quota = check.quota;
        let interval = emission_interval_micros(quota.period(), quota.requests());
        let burst = quota.burst_size().max(1);
        let bucket = self.bucket_key(check.limit, interval, burst, check.key);
        let this = self.clone();
        // The local answer is computed only when needed, from owned copies.
        let limit: Arc<str> = check.limit.into();
        let key = check.key.clone();
        StoreFuture::new(async move {
            let inner = &this.inner;
            let answer: Result<(i64, i64, i64, i64), _> = inner
                .connection
                .run_script(inner.script.key(bucket).arg(interval).arg(burst))
                .await;
            match answer {
                Ok((allowed, remaining, retry_after, reset_after)) => {
                    let remaining = u32::try_from(remaining.max(0)).unwrap_or(u32::MAX);
                    let retry_after = micros(retry_after);
                    let reset_after = micros(reset_after);
                    if allowed == 1 {
                        LimitState::allowed(remaining, reset_after)
                    } else {
                        LimitState::refused(retry_after, reset_after)
                    }
                }
                Err(error) => {
                    inner.outage.failed("rate_limit", inner.fallback, &error);
                    match inner.fallback {
                        Fallback::Open => LimitState::unknown(),
                        Fallback::Closed => {
                            LimitState::refused(Duration::from_secs(1), Duration::from_secs(1))
                        }
                        Fallback::Local => {
                            inner
                                .local
                                .check(&LimitCheck::new(&limit, &key, quota))
                                .await
                        }
                    }
                }
            }
        })
    }
}

/// The time between two requests of a quota, in microseconds (at least 1).
fn emission_interval_micros(period: Duration, requests: u32) -> u64 {
    let period = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
    (period / u64::from(requests.max(1))).max(1)
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value.max(0)).unwrap_or(0))
}
