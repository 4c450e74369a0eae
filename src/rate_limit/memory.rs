//! [`MemoryRateLimitStore`]: GCRA buckets in process, with a bounded number of keys per
//! limit.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per bucket: its theoretical
//! arrival time (TAT), the time at which the bucket is full again. A request at `now` is
//! allowed when `TAT − (burst − 1) × interval ≤ now`, and then moves the TAT to
//! `max(TAT, now) + interval`.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, TryLockError};
use std::time::Duration;

use hashbrown::HashTable;

use super::limit::{BucketKey, Quota};
use super::store::{LimitCheck, LimitState, RateLimitStore};
use crate::store::StoreFuture;

/// Nanoseconds since the store's clock started: what a TAT is counted in.
type Nanos = u64;

/// One shard of a limit's buckets: each key with its TAT.
type Shard = HashTable<(BucketKey, Nanos)>;

/// The buckets of one limit under one quota.
type Limiter = (Arc<str>, Quota, Arc<Buckets>);

/// How many (limit, quota) pairs are found without taking a lock: more than usual policies
/// have (one pair per limit and tier).
const SLOTS: usize = 32;

const SECOND: Nanos = 1_000_000_000;

/// How often, in seconds, the buckets of limits no longer used are looked for and freed.
const RELEASE_EVERY: u64 = 60;

/// The buckets of one (limit, quota), in shards that each take their own lock.
struct Buckets {
    /// The time between two requests (at least 1 ns).
    interval: Nanos,
    /// How far the TAT may be ahead of now and still allow a request: interval × (burst − 1).
    tolerance: Nanos,
    /// The quota's burst, for the refusal's reset time.
    burst: u32,
    /// The shards, chosen by the key's hash (SipHash with random keys, so a client cannot
    /// choose keys that collide).
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// The TAT of the bucket every key past the bound shares until the next sweep.
    overflow: Mutex<Option<Nanos>>,
    /// How many buckets the shards hold: counted as they are made and set again at each
    /// sweep, so the shards are counted only when this says the limit may be full.
    keys: AtomicUsize,
    /// When the last sweep ran.
    last_sweep: Mutex<Option<Nanos>>,
    warned_full: AtomicBool,
    /// The last second (of the store's clock) a request was counted here: written at most
    /// once a second, so that idle buckets can be let go (see `release_idle`).
    used: AtomicU64,
}

/// What one GCRA step decided, and the TAT to store when the request is allowed.
fn step(buckets: &Buckets, tat: Option<Nanos>, now: Nanos) -> (LimitState, Option<Nanos>) {
    let tat = tat.unwrap_or(now);
    let earliest = tat.saturating_sub(buckets.tolerance);
    if now < earliest {
        let wait = Duration::from_nanos(earliest - now);
        let refill =
            Duration::from_nanos(buckets.interval).saturating_mul(buckets.burst.saturating_sub(1));
        return (LimitState::refused(wait, wait.saturating_add(refill)), None);
    }
    let next = tat.max(now).saturating_add(buckets.interval);
    let capacity = buckets.tolerance.saturating_add(buckets.interval);
    let room = now
        .saturating_add(capacity)
        .saturating_sub(next)
        .min(capacity);
    // At most the burst, a `u32`.
    let remaining = u32::try_from(room / buckets.interval).unwrap_or(u32::MAX);
    let state = LimitState::allowed(remaining, Duration::from_nanos(next - now));
    (state, Some(next))
}

impl Buckets {
    /// The buckets of `quota`, or `None` for a quota that cannot be counted (see
    /// [`Quota::problem`]).
    fn new(quota: Quota) -> Option<Self> {
        if quota.problem().is_some() {
            return None;
        }
        let interval = u64::try_from(quota.interval().as_nanos()).ok()?.max(1);
        let tolerance = interval.checked_mul(u64::from(quota.burst_size() - 1))?;
        // As many shards as a few times the threads that may contend, a power of two.
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let shards = (threads * 4).next_power_of_two().min(64);
        Some(Self {
            interval,
            tolerance,
            burst: quota.burst_size(),
            shards: (0..shards).map(|_| Mutex::new(HashTable::new())).collect(),
            hasher: RandomState::new(),
            overflow: Mutex::new(None),
            keys: AtomicUsize::new(0),
            last_sweep: Mutex::new(None),
            warned_full: AtomicBool::new(false),
            used: AtomicU64::new(0),
        })
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // The high half chooses the shard: the table inside uses the low bits and the top
        // seven, which this leaves evenly spread.
        #[allow(clippy::cast_possible_truncation)]
        let index = (hash >> 32) as usize & (self.shards.len() - 1);
        lock(&self.shards[index])
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Drops the buckets whose TAT is at most `below`.
    fn retain_above(&self, below: Nanos) {
        for shard in &self.shards {
            lock(shard).retain(|(_, tat)| *tat > below);
        }
    }

    /// Notes that a request is counted at `now`.
    fn use_at(&self, now: Nanos) {
        // Only raised: a request whose time was read a little earlier than another's must
        // not make the buckets look idle sooner.
        let second = now / SECOND;
        if self.used.load(Ordering::Relaxed) < second {
            self.used.fetch_max(second, Ordering::Relaxed);
        }
    }

    /// Whether every bucket is full again at `now`: no request was counted since the last
    /// one's TAT passed (the TAT is at most `interval + tolerance` after its request).
    fn idle_at(&self, now: Nanos) -> bool {
        let last = self.used.load(Ordering::Relaxed);
        let full_again = (last + 1)
            .saturating_mul(SECOND)
            .saturating_add(self.interval)
            .saturating_add(self.tolerance);
        full_again < now
    }

    /// Frees the memory of buckets that are all full again (the same as no bucket), when
    /// this (limit, quota) has not been used since: such a table stays after a reload
    /// changes the limit's quota or name. Checked under each shard's lock, where a request
    /// counted meanwhile is seen.
    fn release_idle(&self, now: Nanos) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            if !self.idle_at(now) {
                return;
            }
            let released = std::mem::take(&mut *shard);
            drop(shard);
            // Counted down by what was there; a sweep may have counted again meanwhile.
            let _ = self
                .keys
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |keys| {
                    Some(keys.saturating_sub(released.len()))
                });
            drop(released);
        }
        let mut overflow = lock(&self.overflow);
        if self.idle_at(now) {
            *overflow = None;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A shard holds plain numbers: a panic elsewhere cannot leave one half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The in-process [`RateLimitStore`]: GCRA buckets, one set per limit and quota, at most
/// `max_keys` buckets each.
///
/// Memory is bounded: when a limit holds `max_keys` buckets, at most once a second, buckets
/// that are full again (indistinguishable from new) are swept, and if that is not enough
/// the buckets closest to full again (the least debt, so the least recently or least heavily
/// used) are evicted until a tenth of the room is free (a warning is logged): an evicted
/// caller starts again with a full bucket. Only when more than a tenth of `max_keys` new
/// keys arrive within one second do the keys past that share one overflow bucket with the
/// limit's quota until the next sweep, so a flood of distinct IPs or keys never grows the
/// map. Measured in `docs/benchmarks.md`.
///
/// The buckets of a (limit, quota) no request has used since they were all full again are
/// freed (looked for once a minute): after a reload changes a limit's quota or name, the old
/// one's buckets do not stay. What stays of the pair is its empty table, about 3 KB.
///
/// It counts each request at its check's [`LimitCheck::now`], on tokio's clock, so a paused
/// tokio clock drives the limits (tests advance time instead of sleeping).
pub struct MemoryRateLimitStore {
    /// The first pairs, each set once and from then on read without a lock (found by
    /// scanning: a handful).
    slots: [OnceLock<Limiter>; SLOTS],
    /// The pairs past the slots.
    more: RwLock<Vec<Limiter>>,
    /// Taken to make a pair, so that each is made once.
    making: Mutex<()>,
    max_keys: usize,
    start: tokio::time::Instant,
    /// The second (of the store's clock) idle buckets are next looked for.
    next_release: AtomicU64,
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
            slots: [const { OnceLock::new() }; SLOTS],
            more: RwLock::new(Vec::new()),
            making: Mutex::new(()),
            max_keys: max_keys.max(1),
            start: tokio::time::Instant::now(),
            next_release: AtomicU64::new(RELEASE_EVERY),
        }
    }

    /// The number of buckets held, over every limit (the overflow buckets in use
    /// included).
    #[must_use]
    pub fn len(&self) -> usize {
        let count = |(_, _, buckets): &Limiter| {
            buckets.len() + usize::from(lock(&buckets.overflow).is_some())
        };
        let slots: usize = self.slots.iter().filter_map(OnceLock::get).map(count).sum();
        slots + self.more().iter().map(count).sum::<usize>()
    }

    /// Whether no bucket is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn more(&self) -> std::sync::RwLockReadGuard<'_, Vec<Limiter>> {
        self.more.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the buckets of `limit` under `quota`, when they exist. The slots fill in
    /// order, so the list past them is looked at only when every slot is set.
    fn with_buckets<R>(
        &self,
        limit: &str,
        quota: Quota,
        f: impl FnOnce(&Arc<Buckets>) -> R,
    ) -> Option<R> {
        let matches = |(name, q, _): &&Limiter| **name == *limit && *q == quota;
        let mut set = 0;
        for found in self.slots.iter().map_while(OnceLock::get) {
            if matches(&found) {
                return Some(f(&found.2));
            }
            set += 1;
        }
        if set < SLOTS {
            return None;
        }
        self.more().iter().find(matches).map(|found| f(&found.2))
    }

    /// `at`, on the store's clock.
    fn nanos(&self, at: tokio::time::Instant) -> Nanos {
        let elapsed = at.saturating_duration_since(self.start);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The buckets of `limit` under `quota`, made on first use.
    fn buckets(&self, limit: &str, quota: Quota) -> Option<Arc<Buckets>> {
        let _making = lock(&self.making);
        // Another request may have made them meanwhile (under `making`, so seen here): keep
        // the first.
        if let Some(found) = self.with_buckets(limit, quota, Arc::clone) {
            return Some(found);
        }
        let buckets = Arc::new(Buckets::new(quota)?);
        let made = (limit.into(), quota, buckets.clone());
        match self.slots.iter().find(|slot| slot.get().is_none()) {
            // Only this request sets slots (under `making`): the empty one stays empty.
            Some(slot) => {
                let set = slot.set(made);
                debug_assert!(set.is_ok(), "a slot is set only under `making`");
            }
            None => self
                .more
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .push(made),
        }
        Some(buckets)
    }

    /// One GCRA step for `check.key` in `buckets`, at `now`.
    fn check_in(&self, buckets: &Buckets, check: &LimitCheck<'_>, now: Nanos) -> LimitState {
        buckets.use_at(now);
        let hash = buckets.hasher.hash_one(check.key);
        // A new key's bucket is made when the limit has room; else room is made first.
        let has_room = || buckets.keys.load(Ordering::Relaxed) < self.max_keys;
        if let Some(state) = self.count(buckets, hash, check.key, now, has_room) {
            return state;
        }
        // Under the shard's lock again: another request for the same key may have made
        // its bucket meanwhile (one bucket a key, or each racing request would start with a
        // full one).
        if self.make_room(buckets, check.limit, now)
            && let Some(state) = self.count(buckets, hash, check.key, now, || true)
        {
            return state;
        }
        let mut overflow = lock(&buckets.overflow);
        let (state, next) = step(buckets, *overflow, now);
        *overflow = next.or(*overflow);
        state
    }

    /// One step in `key`'s bucket, under its shard's lock: the bucket found, or made when
    /// `may_make` says so; `None` when there is no bucket and none may be made.
    fn count(
        &self,
        buckets: &Buckets,
        hash: u64,
        key: &BucketKey,
        now: Nanos,
        may_make: impl FnOnce() -> bool,
    ) -> Option<LimitState> {
        let mut shard = buckets.shard(hash);
        if let Some((_, tat)) = shard.find_mut(hash, |(stored, _)| stored == key) {
            let (state, next) = step(buckets, Some(*tat), now);
            *tat = next.unwrap_or(*tat);
            return Some(state);
        }
        if !may_make() {
            return None;
        }
        let (state, next) = step(buckets, None, now);
        if let Some(tat) = next {
            shard.insert_unique(hash, (key.clone(), tat), |(key, _)| {
                buckets.hasher.hash_one(key)
            });
            buckets.keys.fetch_add(1, Ordering::Relaxed);
        }
        Some(state)
    }

    /// Makes room in a full limit, at most once a second: sweeps the buckets full again,
    /// then evicts those closest to full again. Whether there is room now.
    fn make_room(&self, buckets: &Buckets, limit: &str, now: Nanos) -> bool {
        // One request sweeps; the others go on (a poisoned lock holds only a time).
        let last = match buckets.last_sweep.try_lock() {
            Ok(last) => Some(last),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(mut last) = last {
            let due = last.is_none_or(|at| now.saturating_sub(at) >= SECOND);
            if due {
                *last = Some(now);
                // A bucket full again is the same as no bucket.
                buckets.retain_above(now);
                let mut overflow = lock(&buckets.overflow);
                if overflow.is_some_and(|tat| tat <= now) {
                    *overflow = None;
                }
                drop(overflow);
                self.evict(buckets, now);
                buckets.keys.store(buckets.len(), Ordering::Relaxed);
                buckets.warned_full.store(false, Ordering::Relaxed);
            }
        }
        if buckets.keys.load(Ordering::Relaxed) < self.max_keys {
            return true;
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
        false
    }

    /// Frees the buckets of every (limit, quota) no request has used since they were all
    /// full again, at most once every `RELEASE_EVERY` seconds (one request does it; the
    /// others go on).
    #[cold]
    fn release_idle(&self, now: Nanos, due: u64) {
        let next = now / SECOND + RELEASE_EVERY;
        if self
            .next_release
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        for found in self.slots.iter().map_while(OnceLock::get) {
            found.2.release_idle(now);
        }
        for found in self.more().iter() {
            found.2.release_idle(now);
        }
    }

    /// Makes room in a full limit: evicts the buckets closest to full again (the least
    /// debt: the least recently or least heavily used), until at most nine tenths of
    /// `max_keys` are left. In at most four passes, each dropping buckets full again within
    /// a larger share of the quota's refill time; the last drops every bucket.
    fn evict(&self, buckets: &Buckets, now: Nanos) {
        let target = self.max_keys - self.max_keys / 10;
        if buckets.len() < target {
            return;
        }
        let refill = buckets
            .tolerance
            .saturating_add(buckets.interval.saturating_mul(2));
        let before = buckets.len();
        for quarter in 1..=4u64 {
            let horizon = refill.saturating_mul(quarter) / 4;
            buckets.retain_above(now.saturating_add(horizon));
            if buckets.len() < target {
                break;
            }
        }
        // Other requests may have made buckets meanwhile.
        let evicted = before.saturating_sub(buckets.len());
        if evicted > 0 {
            tracing::warn!(
                target: "portcullis::rate_limit",
                max_keys = self.max_keys,
                evicted,
                "rate limit full: the buckets closest to full again were forgotten"
            );
        }
    }
}

impl RateLimitStore for MemoryRateLimitStore {
    fn check(&self, check: &LimitCheck<'_>) -> StoreFuture<LimitState> {
        let now = self.nanos(check.now);
        // The common case: the limit's buckets exist, found without a lock.
        let state = match self.with_buckets(check.limit, check.quota, |buckets| {
            self.check_in(buckets, check, now)
        }) {
            Some(state) => state,
            None => match self.buckets(check.limit, check.quota) {
                Some(buckets) => self.check_in(&buckets, check, now),
                None => {
                    // The layer refuses such quotas when it is built; a caller of the store
                    // may not.
                    tracing::warn!(
                        target: "portcullis::rate_limit",
                        limit = check.limit,
                        "a quota the store cannot count with (see `RateLimitBuilder::build`): \
                         not limited"
                    );
                    LimitState::unknown()
                }
            },
        };
        // Outside `with_buckets`: the release reads the list of pairs too.
        let due = self.next_release.load(Ordering::Relaxed);
        if now / SECOND >= due {
            self.release_idle(now, due);
        }
        StoreFuture::ready(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(store: &MemoryRateLimitStore, key: &str, quota: Quota) -> LimitState {
        let key = BucketKey::Text(key.into());
        store.check(&LimitCheck::new("test", &key, quota)).await
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

    /// A burst above the rate: the whole burst at once, then one request per interval; the
    /// reset time is when the whole burst is back.
    #[tokio::test(start_paused = true)]
    async fn a_burst_larger_than_the_rate_refills_one_interval_at_a_time() {
        let store = MemoryRateLimitStore::new(10);
        let quota = Quota::per_second(10).burst(20);
        for left in (0..20).rev() {
            let state = check(&store, "a", quota).await;
            assert!(state.allowed);
            assert_eq!(state.remaining, left);
            assert_eq!(
                state.reset_after,
                Duration::from_millis(100 * (20 - u64::from(left)))
            );
        }
        let refused = check(&store, "a", quota).await;
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert_eq!(refused.reset_after, Duration::from_millis(2_000));
        // Half a second later five requests fit again, and no more.
        tokio::time::advance(Duration::from_millis(500)).await;
        for _ in 0..5 {
            assert!(check(&store, "a", quota).await.allowed);
        }
        assert!(!check(&store, "a", quota).await.allowed);
    }

    /// After a reload changes a limit's quota, the old quota's buckets are freed once they
    /// are all full again: memory does not grow with each change.
    #[tokio::test(start_paused = true)]
    async fn buckets_of_a_quota_no_longer_used_are_freed() {
        let store = MemoryRateLimitStore::new(1_000);
        let old = Quota::per_second(10);
        for key in 0..100 {
            assert!(check(&store, &key.to_string(), old).await.allowed);
        }
        let new = Quota::per_second(20);
        assert!(check(&store, "0", new).await.allowed);
        assert_eq!(store.len(), 101);
        tokio::time::advance(Duration::from_secs(RELEASE_EVERY - 1)).await;
        assert!(check(&store, "0", new).await.allowed);
        assert_eq!(store.len(), 101, "looked for only every {RELEASE_EVERY} s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(check(&store, "0", new).await.allowed);
        assert_eq!(store.len(), 1);
    }

    /// Buckets that are not all full again are kept when idle ones are freed: a key that
    /// spent a long quota stays refused, even when its limit saw no request since.
    #[tokio::test(start_paused = true)]
    async fn buckets_not_yet_full_again_are_kept() {
        let store = MemoryRateLimitStore::new(1_000);
        let hourly = Quota::per_hour(1);
        assert!(check(&store, "b", hourly).await.allowed);
        tokio::time::advance(Duration::from_secs(RELEASE_EVERY + 1)).await;
        // Another limit's request looks for idle buckets.
        assert!(check(&store, "c", Quota::per_second(1)).await.allowed);
        assert_eq!(store.len(), 2);
        assert!(!check(&store, "b", hourly).await.allowed);
    }

    /// A key that already has its bucket keeps it while the limit is full: only new keys
    /// share the overflow bucket, until the next sweep.
    #[tokio::test(start_paused = true)]
    async fn a_full_limit_keeps_counting_known_keys_in_their_own_buckets() {
        let store = MemoryRateLimitStore::new(4);
        let quota = Quota::per_minute(2);
        for key in ["a", "b", "c", "d"] {
            assert!(check(&store, key, quota).await.allowed);
        }
        // Full: the sweep evicts the buckets closest to full again (here all of them, with
        // equal debts) to make room for "e".
        assert!(check(&store, "e", quota).await.allowed);
        for key in ["f", "g", "h"] {
            assert!(check(&store, key, quota).await.allowed);
        }
        // Full again within the second: "i" and "j" share the overflow bucket.
        assert!(check(&store, "i", quota).await.allowed);
        assert!(check(&store, "j", quota).await.allowed);
        assert!(!check(&store, "i", quota).await.allowed);
        // "e" still has one request of its own.
        assert_eq!(check(&store, "e", quota).await.remaining, 0);
        assert!(!check(&store, "e", quota).await.allowed);
        assert_eq!(store.len(), 5, "four buckets and the overflow bucket");
    }

    /// Requests racing for one new key on a full limit get one bucket between them (and at
    /// most the overflow bucket's one request besides), never a full bucket each.
    #[test]
    fn racing_requests_for_a_new_key_share_one_bucket() {
        let quota = Quota::per_hour(1);
        for _ in 0..300 {
            let store = MemoryRateLimitStore::new(64);
            for i in 0..64 {
                let key = BucketKey::Text(format!("old-{i}").into());
                let first = store
                    .check(&LimitCheck::new("race", &key, quota))
                    .into_ready();
                assert!(first.is_ok_and(|state| state.allowed));
            }
            let key = BucketKey::Text("new".into());
            let barrier = std::sync::Barrier::new(8);
            let allowed: usize = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            let check = LimitCheck::new("race", &key, quota);
                            usize::from(
                                store
                                    .check(&check)
                                    .into_ready()
                                    .is_ok_and(|state| state.allowed),
                            )
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|thread| thread.join().unwrap_or(0))
                    .sum()
            });
            assert!((1..=2).contains(&allowed), "{allowed} requests allowed");
        }
    }

    /// More limits than the lock-free slots: the rest are found as well.
    #[tokio::test(start_paused = true)]
    async fn limits_past_the_slots_are_counted_alike() {
        let store = MemoryRateLimitStore::new(10);
        let quota = Quota::per_minute(1);
        let key = BucketKey::Text("a".into());
        for round in 0..2 {
            for limit in 0..SLOTS + 8 {
                let name = format!("limit-{limit}");
                let state = store.check(&LimitCheck::new(&name, &key, quota)).await;
                assert_eq!(state.allowed, round == 0, "{name}, round {round}");
            }
        }
        assert_eq!(store.len(), SLOTS + 8);
    }

    /// A quota the layer would refuse (a store used on its own) is not counted, rather than
    /// a panic or an overflow.
    #[tokio::test(start_paused = true)]
    async fn a_quota_that_cannot_be_counted_is_not_a_panic() {
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
