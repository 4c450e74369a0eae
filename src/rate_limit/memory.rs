//! [`MemoryRateLimitStore`]: buckets in process, on `governor`'s GCRA, with a bounded
//! number of keys per limit.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{NotUntil, RateLimiter};

use super::limit::{BucketKey, Quota};
use super::store::{LimitCheck, LimitState, RateLimitStore};
use crate::store::StoreFuture;

/// A `governor` clock on tokio's `Instant`, so a paused tokio clock drives the limits
/// (tests advance time instead of sleeping).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let now = tokio::time::Instant::now();
        LAST_NOW.set(Some(now));
        Nanos::from(now.saturating_duration_since(self.start))
    }
}

thread_local! {
    /// The clock's last reading on this thread: the check reuses governor's reading
    /// instead of asking the (virtualised, often slow) clock again.
    static LAST_NOW: std::cell::Cell<Option<tokio::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

impl TokioClock {
    /// The reading governor just took on this thread, or a new one.
    fn just_now(&self) -> Nanos {
        match LAST_NOW.take() {
            Some(now) => Nanos::from(now.saturating_duration_since(self.start)),
            None => self.now(),
        }
    }
}

/// A bucket key as stored: the request's, or the shared overflow bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum StoredKey {
    Ip(IpAddr),
    Text(Arc<str>),
    /// Every key that came when the limit was full.
    Overflow,
}

impl From<&BucketKey> for StoredKey {
    fn from(key: &BucketKey) -> Self {
        match key {
            BucketKey::Ip(address) => Self::Ip(*address),
            BucketKey::Text(text) => Self::Text(text.clone()),
        }
    }
}

/// governor's dashmap state, shared with the store so it can see its size and keys.
#[derive(Clone)]
struct SharedState(Arc<DashMapStateStore<StoredKey>>);

thread_local! {
    /// What governor last stored on this thread: the theoretical arrival time (what the
    /// bucket needs to say exactly when it is full again, which governor's snapshot does not
    /// give), and whether the bucket was new (to count buckets without asking the map).
    static STORED: std::cell::Cell<Option<(Nanos, bool)>> = const { std::cell::Cell::new(None) };
}

impl StateStore for SharedState {
    type Key = StoredKey;

    fn measure_and_replace<T, F, E>(&self, key: &StoredKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, |previous| {
            let answer = f(previous);
            // The last successful call is the one stored (governor retries on a race).
            if let Ok((_, tat)) = &answer {
                STORED.set(Some((*tat, previous.is_none())));
            }
            answer
        })
    }
}

impl ShrinkableKeyedStateStore<StoredKey> for SharedState {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The buckets of each limit and quota: a handful, found by scanning.
type Limiters = Vec<(Arc<str>, Quota, Arc<Buckets>)>;

type Limiter = RateLimiter<StoredKey, SharedState, TokioClock, StateInformationMiddleware>;

/// The buckets of one (limit, quota).
struct Buckets {
    limiter: Limiter,
    /// The clock's reading when the limiter was made: governor's times count from it.
    start: Nanos,
    state: SharedState,
    /// The map's size, counted as governor makes buckets (see `check_in`) and set again at
    /// each sweep: the map itself is asked only when this says the limit may be full.
    keys: AtomicUsize,
    last_sweep: Mutex<Option<tokio::time::Instant>>,
    warned_full: AtomicBool,
}

/// The in-process [`RateLimitStore`]: `governor`'s keyed GCRA, one limiter per limit and
/// quota, at most `max_keys` buckets each.
///
/// Memory is bounded: when a limit holds `max_keys` buckets, at most once a second, buckets
/// that are full again (indistinguishable from new) are swept, and if that is not enough
/// the buckets closest to full again (the least debt, so the least recently or least heavily
/// used) are evicted until a tenth of the room is free (a warning is logged): an evicted
/// caller starts again with a full bucket. Only when more than a tenth of `max_keys` new
/// keys arrive within one second do the keys past that share one overflow bucket with the
/// limit's quota until the next sweep, so a flood of distinct IPs or keys never grows the
/// map. Measured in `docs/benchmarks.md`:
/// 43 bytes a bucket keyed by IP, 83 keyed by a 24-byte key id (4.1 and 7.9 MiB for 100,000).
pub struct MemoryRateLimitStore {
    limiters: RwLock<Limiters>,
    max_keys: usize,
    clock: TokioClock,
}

impl fmt::Debug for MemoryRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimitStore")
            .field("max_keys", &self.max_keys)
            .field("keys", &self.len())
            .finish()
    }
}

impl Default for MemoryRateLimitStore {
    /// At most 100,000 buckets per limit.
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl MemoryRateLimitStore {
    /// A store holding at most `max_keys` buckets per limit and quota (at least 1).
    #[must_use]
    pub fn new(max_keys: usize) -> Self {
        Self {
            limiters: RwLock::new(Vec::new()),
            max_keys: max_keys.max(1),
            clock: TokioClock::new(),
        }
    }

    /// The number of buckets held, over every limit.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read()
            .iter()
            .map(|(_, _, buckets)| buckets.state.0.len())
            .sum()
    }

    /// Whether no bucket is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Limiters> {
        self.limiters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The buckets of `limit` under `quota`, made on first use.
    fn buckets(&self, limit: &str, quota: Quota) -> Option<Arc<Buckets>> {
        let find = |limiters: &Limiters| {
            limiters
                .iter()
                .find(|(name, q, _)| **name == *limit && *q == quota)
                .map(|(_, _, buckets)| buckets.clone())
        };
        if let Some(found) = find(&self.read()) {
            return Some(found);
        }
        // governor panics on quotas whose burst time overflows (`Duration::MAX`): the same
        // checks as the layer's build first.
        if quota.problem().is_some() {
            return None;
        }
        let governor_quota = governor::Quota::with_period(quota.interval())?
            .allow_burst(NonZeroU32::new(quota.burst_size())?);
        let state = SharedState(Arc::new(DashMapStateStore::default()));
        let start = self.clock.now();
        let buckets = Arc::new(Buckets {
            start,
            limiter: RateLimiter::<_, _, _, NoOpMiddleware<Nanos>>::new(
                governor_quota,
                state.clone(),
                self.clock,
            )
            .with_middleware::<StateInformationMiddleware>(),
            state,
            keys: AtomicUsize::new(0),
            last_sweep: Mutex::new(None),
            warned_full: AtomicBool::new(false),
        });
        let mut limiters = self
            .limiters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another request may have made them meanwhile: keep the first.
        if let Some(found) = find(&limiters) {
            return Some(found);
        }
        limiters.push((limit.into(), quota, buckets.clone()));
        Some(buckets)
    }

    /// The key to count `key` under: itself, or the overflow bucket when the limit is full.
    fn admit(&self, buckets: &Buckets, limit: &str, quota: Quota, key: StoredKey) -> StoredKey {
        // The count of buckets is kept as they are made (see `check`): the map is asked
        // only when the limit may be full.
        if buckets.keys.load(Ordering::Relaxed) < self.max_keys
            || buckets.state.0.contains_key(&key)
        {
            return key;
        }
        let now = tokio::time::Instant::now();
        if let Ok(mut last) = buckets.last_sweep.try_lock() {
            let due =
                last.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
            if due {
                *last = Some(now);
                buckets.limiter.retain_recent();
                self.evict(buckets, quota);
                buckets.keys.store(buckets.state.0.len(), Ordering::Relaxed);
                buckets.warned_full.store(false, Ordering::Relaxed);
            }
        }
        if buckets.state.0.len() < self.max_keys {
            return key;
        }
        if !buckets.warned_full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "portcullis::rate_limit",
                limit,
                max_keys = self.max_keys,
                "rate limit full: new keys share one overflow bucket until the next sweep \
                 (within a second)"
            );
        }
        StoredKey::Overflow
    }

    /// Makes room in a full limit: evicts the buckets closest to full again (the least
    /// debt: the least recently or least heavily used), until at most nine tenths of
    /// `max_keys` are left. In at most four passes, each dropping buckets full again within
    /// a larger share of the quota's refill time; the last drops every bucket.
    fn evict(&self, buckets: &Buckets, quota: Quota) {
        let target = self.max_keys - self.max_keys / 10;
        if buckets.state.0.len() <= target.saturating_sub(1) {
            return;
        }
        let refill = quota
            .interval()
            .saturating_mul(quota.burst_size().saturating_add(1));
        let now = self.clock.now().duration_since(buckets.start);
        let mut evicted = 0;
        for quarter in 1..=4u32 {
            let before = buckets.state.0.len();
            let horizon = Nanos::from(refill.saturating_mul(quarter) / 4);
            buckets.state.0.retain_recent(now + horizon);
            evicted += before - buckets.state.0.len();
            if buckets.state.0.len() < target {
                break;
            }
        }
        if evicted > 0 {
            tracing::warn!(
                target: "portcullis::rate_limit",
                max_keys = self.max_keys,
                evicted,
                "rate limit full: the buckets closest to full again were forgotten"
            );
        }
    }

    /// Checks `key` in `buckets`.
    fn check_in(&self, buckets: &Buckets, check: &LimitCheck<'_>) -> LimitState {
        let key = self.admit(
            buckets,
            check.limit,
            check.quota,
            StoredKey::from(check.key),
        );
        let interval = check.quota.interval();
        let burst = check.quota.burst_size();
        STORED.set(None);
        LAST_NOW.set(None);
        let answer = buckets.limiter.check_key(&key);
        // The thread-local captures rely on how governor 0.10 checks a key (pinned with
        // `~0.10.4` in Cargo.toml): it reads the clock on this thread before deciding, and an
        // allowed check ends with one successful `measure_and_replace` on this thread. A
        // governor that did otherwise would make these fall back (release) or fail (debug).
        debug_assert!(
            LAST_NOW.get().is_some(),
            "governor read the clock on another thread, or not at all"
        );
        debug_assert!(
            answer.is_err() || STORED.get().is_some(),
            "governor allowed a check without storing the bucket on this thread"
        );
        match answer {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset_after = match STORED.take() {
                    Some((tat, new)) => {
                        if new {
                            buckets.keys.fetch_add(1, Ordering::Relaxed);
                        }
                        // The bucket is full again once its arrival time is reached.
                        Duration::from((buckets.start + tat).duration_since(self.clock.just_now()))
                    }
                    None => intervals(interval, burst.saturating_sub(remaining)),
                };
                LimitState::allowed(remaining, reset_after)
            }
            Err(not_until) => refused(&not_until, &self.clock, interval, burst),
        }
    }
}

/// Whole time for `n` intervals.
fn intervals(interval: Duration, n: u32) -> Duration {
    interval.saturating_mul(n)
}

impl RateLimitStore for MemoryRateLimitStore {
    fn check(&self, check: &LimitCheck<'_>) -> StoreFuture<LimitState> {
        // The common case: the limit's buckets exist; check under the read lock, which
        // only their creation takes for writing.
        if let Some(state) = self
            .read()
            .iter()
            .find(|(name, quota, _)| **name == *check.limit && *quota == check.quota)
            .map(|(_, _, buckets)| self.check_in(buckets, check))
        {
            return StoreFuture::ready(state);
        }
        let Some(buckets) = self.buckets(check.limit, check.quota) else {
            // The layer refuses such quotas when it is built; a caller of the store may not.
            tracing::warn!(
                target: "portcullis::rate_limit",
                limit = check.limit,
                "a quota the store cannot count with (see `RateLimitBuilder::build`): not limited"
            );
            return StoreFuture::ready(LimitState::unknown());
        };
        StoreFuture::ready(self.check_in(&buckets, check))
    }
}

/// A refusal: one request fits after the wait, the whole burst `burst - 1` intervals later.
fn refused(
    not_until: &NotUntil<Nanos>,
    clock: &TokioClock,
    interval: Duration,
    burst: u32,
) -> LimitState {
    let wait = not_until.wait_time_from(clock.just_now());
    LimitState::refused(wait, wait + intervals(interval, burst.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(store: &MemoryRateLimitStore, key: &str, quota: Quota) -> LimitState {
        let key = BucketKey::Text(key.into());
        store
            .check(&LimitCheck {
                limit: "test",
                key: &key,
                quota,
            })
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_per_interval() {
        let store = MemoryRateLimitStore::new(10);
        let quota = Quota::per_second(2);
        let first = check(&store, "a", quota).await;
        assert_eq!(first, LimitState::allowed(1, Duration::from_millis(500)));
        let second = check(&store, "a", quota).await;
        assert_eq!(second, LimitState::allowed(0, Duration::from_secs(1)));
        let third = check(&store, "a", quota).await;
        assert!(!third.allowed);
        assert_eq!(third.retry_after, Duration::from_millis(500));
        assert_eq!(third.reset_after, Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(check(&store, "a", quota).await.allowed);
        assert!(!check(&store, "a", quota).await.allowed);
    }

    /// A quota the layer would refuse (a store used on its own) is not counted, rather than
    /// a panic inside governor.
    #[tokio::test(start_paused = true)]
    async fn a_quota_governor_cannot_count_with_is_not_a_panic() {
        let store = MemoryRateLimitStore::new(10);
        for quota in [
            Quota::new(1, Duration::MAX),
            Quota::per_second(1).burst(u32::MAX),
            Quota::per_second(0),
        ] {
            assert_eq!(check(&store, "a", quota).await, LimitState::unknown());
        }
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_independent() {
        let store = MemoryRateLimitStore::new(10);
        let quota = Quota::per_minute(1);
        assert!(check(&store, "a", quota).await.allowed);
        assert!(!check(&store, "a", quota).await.allowed);
        assert!(check(&store, "b", quota).await.allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_keys_stays_within_the_bound() {
        let store = MemoryRateLimitStore::new(100);
        let quota = Quota::per_minute(1);
        for i in 0..1_000 {
            check(&store, &format!("key-{i}"), quota).await;
        }
        // 100 buckets plus the overflow bucket.
        assert!(store.len() <= 101, "{} buckets", store.len());
        // A second later, a new key has its own bucket: the full limit evicted buckets
        // instead of making every newcomer share the overflow bucket the flood used up.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(check(&store, "late-comer", quota).await.allowed);
        assert!(!check(&store, "late-comer", quota).await.allowed);
        assert!(store.len() <= 101, "{} buckets", store.len());
    }

    /// The buckets evicted first are those closest to full again: a key that used its
    /// bucket long ago goes before one that used it just now.
    #[tokio::test(start_paused = true)]
    async fn eviction_takes_the_buckets_closest_to_full() {
        let store = MemoryRateLimitStore::new(10);
        let quota = Quota::per_minute(6);
        for i in 0..10 {
            check(&store, &format!("key-{i}"), quota).await;
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // key-9 drains its bucket; key-0 used one request ten seconds ago.
        for _ in 0..5 {
            check(&store, "key-9", quota).await;
        }
        assert!(check(&store, "newcomer", quota).await.allowed);
        assert!(
            !check(&store, "key-9", quota).await.allowed,
            "key-9 was kept"
        );
        assert!(store.len() <= 10, "{} buckets", store.len());
    }
}
