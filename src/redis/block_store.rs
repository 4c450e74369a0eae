//! [`RedisBlockStore`]: brute-force counters and blocks on Redis, shared by every instance.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::connection::RedisConnection;
use super::fallback::{Fallback, OutageLog};
use crate::shield::{
    BlockSource, BlockState, BlockStore, BruteForce, FailureCount, MemoryBlockStore, StoreFuture,
};

/// Whether a source is blocked, on the server's clock. A block found over is cleared and
/// reported once (by whichever instance sees it first).
///
/// KEYS: source. Returns {state, remaining ms, offences}: state 0 open, 1 blocked,
/// 2 just unblocked.
const STATE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local blocked_until = tonumber(redis.call('HGET', KEYS[1], 'until'))
if not blocked_until then return {0, 0, 0} end
if blocked_until > now then return {1, blocked_until - now, 0} end
redis.call('HDEL', KEYS[1], 'until')
redis.call('HSET', KEYS[1], 'end', string.format('%.0f', blocked_until))
return {2, 0, tonumber(redis.call('HGET', KEYS[1], 'off') or '0')}
";

/// Counts one failure in a sliding window (the previous fixed window weighted by its
/// overlap, plus the current one, as the in-process store does) and starts a block at the
/// threshold: the first block lasts `first`, each one within `forget` of the last doubles
/// it, up to `max`. The hash expires once nothing in it matters any more.
///
/// KEYS: source. ARGV: window ms, threshold, forget ms, first block ms, max block ms.
/// Returns {failures, offence started (0 if none), block ms}.
const FAILURE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local forget = tonumber(ARGV[3])
local first = tonumber(ARGV[4])
local max = tonumber(ARGV[5])
local h = redis.call('HMGET', KEYS[1], 'ws', 'prev', 'cur', 'off', 'until', 'end')
local ws = tonumber(h[1]) or now
local prev = tonumber(h[2]) or 0
local cur = tonumber(h[3]) or 0
local off = tonumber(h[4]) or 0
local blocked_until = tonumber(h[5])
local last_end = tonumber(h[6])
if blocked_until and blocked_until <= now then
  last_end = blocked_until
  blocked_until = nil
  redis.call('HDEL', KEYS[1], 'until')
end
local elapsed = now - ws
if elapsed >= 2 * window then
  prev = 0; cur = 0; ws = now
elseif elapsed >= window then
  prev = cur; cur = 0; ws = ws + window
end
cur = cur + 1
local overlap = 1 - (now - ws) / window
if overlap < 0 then overlap = 0 end
if overlap > 1 then overlap = 1 end
local failures = math.ceil(prev * overlap) + cur
local started, length = 0, 0
if (not blocked_until) and failures >= threshold then
  if last_end and (now - last_end) < forget then off = off + 1 else off = 1 end
  local doublings = off - 1
  if doublings > 31 then doublings = 31 end
  length = first * (2 ^ doublings)
  if length > max then length = max end
  blocked_until = now + length
  prev = 0; cur = 0; ws = now
  started = off
end
redis.call('HSET', KEYS[1], 'ws', string.format('%.0f', ws), 'prev', prev, 'cur', cur, 'off', off)
if blocked_until then redis.call('HSET', KEYS[1], 'until', string.format('%.0f', blocked_until)) end
if last_end then redis.call('HSET', KEYS[1], 'end', string.format('%.0f', last_end)) end
local keep = 2 * window
if blocked_until then
  keep = math.max(keep, blocked_until - now + forget)
elseif last_end then
  keep = math.max(keep, last_end + forget - now)
end
redis.call('PEXPIRE', KEYS[1], math.ceil(keep))
return {failures, started, length}
";

/// Brute-force counters and blocks on Redis: a source blocked through one instance is
/// blocked on every instance, and failures spread over instances add up. The same sliding
/// window and doubling blocks as [`MemoryBlockStore`], each call one script (one round
/// trip) on the server's clock.
///
/// One hash per source (`{prefix}:bf:<ip or identity>`), expiring once neither its
/// window nor its blocks matter. While Redis cannot answer, the store does what its
/// [`Fallback`] says (by default, counts in this process), with an error event at most once
/// a second; [`Fallback::Closed`] treats every source as blocked for a second.
#[derive(Clone)]
pub struct RedisBlockStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: RedisConnection,
    state: Script,
    failure: Script,
    fallback: Fallback,
    local: MemoryBlockStore,
    outage: OutageLog,
}

impl fmt::Debug for RedisBlockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBlockStore")
            .field("connection", &self.inner.connection)
            .field("fallback", &self.inner.fallback)
            .finish_non_exhaustive()
    }
}

/// Sources the local fallback tracks at most.
const LOCAL_SOURCES: usize = 100_000;

impl RedisBlockStore {
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
                state: Script::new(STATE),
                failure: Script::new(FAILURE),
                fallback,
                local: MemoryBlockStore::new(LOCAL_SOURCES),
                outage: OutageLog::default(),
            }),
        }
    }

    fn source_key(&self, source: &BlockSource) -> String {
        format!(
            "{}:bf:{}:{source}",
            self.inner.connection.prefix(),
            source.kind()
        )
    }
}

impl BlockStore for RedisBlockStore {
    fn state(&self, source: &BlockSource) -> StoreFuture<BlockState> {
        let key = self.source_key(source);
        let source = source.clone();
        let this = self.clone();
        StoreFuture::new(async move {
            let inner = &this.inner;
            let answer: Result<(i64, i64, i64), _> =
                inner.connection.run_script(&inner.state.key(key)).await;
            match answer {
                Ok((1, remaining, _)) => BlockState::Blocked {
                    remaining: millis(remaining),
                },
                Ok((2, _, offences)) => BlockState::Unblocked {
                    offences: u32::try_from(offences.max(0)).unwrap_or(u32::MAX),
                },
                Ok(_) => BlockState::Open,
                Err(error) => {
                    inner.outage.failed("brute_force", inner.fallback, &error);
                    match inner.fallback {
                        Fallback::Open => BlockState::Open,
                        Fallback::Closed => BlockState::Blocked {
                            remaining: Duration::from_secs(1),
                        },
                        Fallback::Local => inner.local.state(&source).await,
                    }
                }
            }
        })
    }

    fn record_failure(
        &self,
        source: &BlockSource,
        policy: &BruteForce,
    ) -> StoreFuture<FailureCount> {
        let key = self.source_key(source);
        let source = source.clone();
        let policy = policy.clone();
        let this = self.clone();
        StoreFuture::new(async move {
            let inner = &this.inner;
            let answer: Result<(i64, i64, i64), _> = inner
                .connection
                .run_script(
                    inner
                        .failure
                        .key(key)
                        .arg(as_millis(policy.window()))
                        .arg(policy.failures())
                        .arg(as_millis(policy.forgotten_after()))
                        .arg(as_millis(policy.block_duration(1)))
                        .arg(as_millis(policy.block_duration(u32::MAX))),
                )
                .await;
            match answer {
                Ok((failures, offence, length)) => FailureCount::new(
                    u32::try_from(failures.max(0)).unwrap_or(u32::MAX),
                    (offence > 0)
                        .then(|| (u32::try_from(offence).unwrap_or(u32::MAX), millis(length))),
                ),
                Err(error) => {
                    inner.outage.failed("brute_force", inner.fallback, &error);
                    match inner.fallback {
                        Fallback::Open | Fallback::Closed => FailureCount::default(),
                        Fallback::Local => inner.local.record_failure(&source, &policy).await,
                    }
                }
            }
        })
    }
}

fn as_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn millis(value: i64) -> Duration {
    Duration::from_millis(u64::try_from(value.max(0)).unwrap_or(0))
}
