//! Brute-force blocking: authentication failures counted per client IP in a sliding window;
//! above a threshold the source is blocked for a period that doubles with each repeat
//! offence, up to a cap.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;
use crate::store::StoreFuture;

/// The longest window, block or memory of offences.
const MAX_PERIOD: Duration = Duration::from_secs(365 * 86_400);

/// Brute-force protection settings, given to
/// [`ShieldBuilder::brute_force`](super::ShieldBuilder::brute_force).
///
/// A failure is a response refused with `invalid_credentials` (any authenticator's 401 for
/// bad credentials; a request without credentials is not a failure), or a failed login at
/// the OpenID Connect callback (a refused code, a forged ID token; an expired, abandoned
/// or unreadable login is not one), when the shield is in front of the `OidcLayer`.
/// Successes do not wipe the count: credential stuffing spreads its guesses over many
/// accounts.
///
/// Defaults (conservative, so that an office behind one NAT address does not lock itself
/// out): 20 failures in 10 minutes block the IP for 1 minute; each new block within a day
/// of the last doubles the period, up to 1 hour; at most 100,000 sources are tracked; IPv6
/// clients are counted by their /64.
#[derive(Clone)]
#[must_use]
pub struct BruteForce {
    pub(crate) threshold: u32,
    pub(crate) window: Duration,
    pub(crate) block: Duration,
    pub(crate) max_block: Duration,
    pub(crate) forget_after: Duration,
    pub(crate) max_sources: usize,
    pub(crate) report_only: bool,
    pub(crate) per_identity: bool,
    pub(crate) ipv6_prefix: u8,
    pub(crate) store: Option<Arc<dyn BlockStore>>,
}

impl Default for BruteForce {
    fn default() -> Self {
        Self {
            threshold: 20,
            window: Duration::from_secs(600),
            block: Duration::from_secs(60),
            max_block: Duration::from_secs(3600),
            forget_after: Duration::from_secs(86_400),
            max_sources: 100_000,
            report_only: false,
            per_identity: false,
            ipv6_prefix: super::client_ip::DEFAULT_V6_PREFIX,
            store: None,
        }
    }
}

impl fmt::Debug for BruteForce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BruteForce")
            .field("threshold", &self.threshold)
            .field("window", &self.window)
            .field("block", &self.block)
            .field("max_block", &self.max_block)
            .field("report_only", &self.report_only)
            .field("per_identity", &self.per_identity)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish_non_exhaustive()
    }
}

impl BruteForce {
    /// The defaults (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks a source after `failures` failures within `window`. Defaults to 20 in 10
    /// minutes.
    pub fn threshold(mut self, failures: u32, window: Duration) -> Self {
        self.threshold = failures;
        self.window = window;
        self
    }

    /// The first block lasts `first`; each repeat offence doubles it, up to `max`.
    /// Defaults to 1 minute, up to 1 hour.
    pub fn block_for(mut self, first: Duration, max: Duration) -> Self {
        self.block = first;
        self.max_block = max;
        self
    }

    /// A source not blocked for `period` starts again from the first block period.
    /// Defaults to 24 hours.
    pub fn forget_after(mut self, period: Duration) -> Self {
        self.forget_after = period;
        self
    }

    /// The most sources the in-process store tracks. When it is full, entries that say
    /// nothing any more (no recent failure, no block, no offence to remember; an ended block
    /// counts as ended even if its source never came back) are swept, at most once a second,
    /// and if it is still full a tenth of the entries that are not blocked now, those whose
    /// last failure is oldest, are evicted (a warning is logged). Sources blocked now are
    /// never evicted. Failures of new sources are not counted only while the store stays
    /// full between two sweeps (more than a tenth of `sources` new sources in one second),
    /// or when every tracked source is blocked. Defaults to 100,000.
    pub fn max_sources(mut self, sources: usize) -> Self {
        self.max_sources = sources;
        self
    }

    /// Also counts failures per identity the credentials claim (an API key's public id,
    /// from `Authenticate::claimed_identity`), and refuses a blocked identity from any
    /// address before its credentials are checked. Defaults to off: anyone who knows a key's
    /// id (it is in logs, and the first part of the key) can then lock that key out by
    /// sending it with wrong secrets, and a key's secret is far too long to guess. In the
    /// gateway, the authenticators say what identity a request claims; alone, give them with
    /// `ShieldBuilder::identities_from`.
    pub fn per_identity(mut self) -> Self {
        self.per_identity = true;
        self
    }

    /// Counts IPv6 clients by their network of `bits` bits (1 to 128): every address of a
    /// /64 is one source by default, since one subscriber commonly holds a whole /64 and
    /// could otherwise rotate through its addresses to escape a block. IPv4 addresses (and
    /// IPv4-mapped IPv6) are counted one by one. The source is the network's first address
    /// (`2001:db8:1:2::`), in block events and in a shared store's keys. Defaults to 64.
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// Keeps the counts and blocks in `store` (shared by instances) instead of in process.
    pub fn store(mut self, store: Arc<dyn BlockStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// **Dangerous**: report-only (shadow) mode: failures are counted and blocks reported
    /// (events, metrics, decisions with outcome `would_refuse`), but nothing is refused.
    /// Defaults to off.
    pub fn dangerous_report_only(mut self) -> Self {
        self.report_only = true;
        self
    }

    /// Failures within [`window`](Self::window) that start a block.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.threshold
    }

    /// The sliding window failures are counted in.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long the `offence`-th block lasts (1-based): doubling, capped.
    #[must_use]
    pub fn block_duration(&self, offence: u32) -> Duration {
        let doublings = offence.saturating_sub(1).min(32);
        self.block
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max_block)
            .min(self.max_block)
    }

    /// The period after which a source's past blocks are forgotten.
    #[must_use]
    pub fn forgotten_after(&self) -> Duration {
        self.forget_after
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let zero = |setting| Err(ConfigError::InvalidLimit { setting });
        if self.threshold == 0 {
            return zero("brute_force.threshold");
        }
        if self.window.is_zero() {
            return zero("brute_force.window");
        }
        if self.block.is_zero() || self.max_block < self.block {
            return zero("brute_force.block_for");
        }
        if self.max_sources == 0 {
            return zero("brute_force.max_sources");
        }
        super::client_ip::check_v6_prefix(self.ipv6_prefix, "brute_force.ipv6_prefix")?;
        for (setting, period) in [
            ("brute_force.window", self.window),
            ("brute_force.block_for", self.max_block),
            ("brute_force.forget_after", self.forget_after),
        ] {
            if period > MAX_PERIOD {
                return Err(ConfigError::DurationTooLong { setting });
            }
        }
        Ok(())
    }

    /// The store: the configured one, or a new in-process one.
    pub(crate) fn store_or_memory(&self) -> Arc<dyn BlockStore> {
        self.store
            .clone()
            .unwrap_or_else(|| Arc::new(MemoryBlockStore::new(self.max_sources)))
    }
}

/// What brute-force protection counts failures of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockSource {
    /// A client IP: an IPv4 address, or an IPv6 network's first address (see
    /// [`BruteForce::ipv6_prefix`]).
    Ip(IpAddr),
    /// The identity a request's credentials claim (`api_key:` and the key's public id),
    /// with [`BruteForce::per_identity`].
    Identity(Arc<str>),
}

impl BlockSource {
    /// What kind of source: `ip` or `identity`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ip(_) => "ip",
            Self::Identity(_) => "identity",
        }
    }
}

impl fmt::Display for BlockSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(address) => address.fmt(f),
            Self::Identity(identity) => f.write_str(identity),
        }
    }
}

/// Whether a source may go on, as a [`BlockStore`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BlockState {
    /// Not blocked.
    #[default]
    Open,
    /// Blocked for `remaining` more.
    Blocked {
        /// Until the block ends.
        remaining: Duration,
    },
    /// A block has just been found over (report it as an unblock); the source may go on.
    Unblocked {
        /// How many blocks this source has had.
        offences: u32,
    },
}

/// What recording one failure did, as a [`BlockStore`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FailureCount {
    /// Failures in the sliding window, this one included (before a block resets it).
    pub failures: u32,
    /// When this failure started a block: its ordinal (1 for the first) and length.
    pub blocked: Option<(u32, Duration)>,
}

impl FailureCount {
    /// A count, and the block it started, if any.
    #[must_use]
    pub fn new(failures: u32, blocked: Option<(u32, Duration)>) -> Self {
        Self { failures, blocked }
    }
}

/// Where brute-force counts and blocks live: in process ([`MemoryBlockStore`]) or on a
/// server shared by instances. Each call is one round trip.
///
/// A store that cannot answer should answer [`BlockState::Open`] and no block (failing
/// open: an outage of the counter store must not lock every caller out); the layer's
/// authentication still refuses bad credentials.
pub trait BlockStore: Send + Sync + 'static {
    /// Whether `source` is blocked now.
    fn state(&self, source: &BlockSource) -> StoreFuture<BlockState>;

    /// Counts one authentication failure of `source` under `policy`, and blocks it when
    /// the count reaches the threshold.
    fn record_failure(
        &self,
        source: &BlockSource,
        policy: &BruteForce,
    ) -> StoreFuture<FailureCount>;
}

/// The in-process [`BlockStore`]: one small entry per source that failed recently or is
/// blocked, at most `max_sources` of them.
///
/// The window is a sliding-window counter (the previous fixed window's count, weighted by
/// how much of it still overlaps, plus the current one's): constant memory per source.
/// Time is tokio's clock, so tests can pause and advance it.
pub struct MemoryBlockStore {
    entries: Mutex<Entries>,
    max_sources: usize,
    warned_full: AtomicBool,
}

#[derive(Default)]
struct Entries {
    map: HashMap<BlockSource, Entry>,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    previous: u32,
    current: u32,
    offences: u32,
    blocked_until: Option<Instant>,
    last_block_end: Option<Instant>,
    /// The last failure counted: eviction takes the least recent first.
    last_failure: Instant,
}

impl fmt::Debug for MemoryBlockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBlockStore")
            .field("max_sources", &self.max_sources)
            .finish_non_exhaustive()
    }
}

impl MemoryBlockStore {
    /// A store tracking at most `max_sources` sources.
    #[must_use]
    pub fn new(max_sources: usize) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            max_sources,
            warned_full: AtomicBool::new(false),
        }
    }

    /// How many sources are tracked now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no source is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave an entry half-written: recover.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            previous: 0,
            current: 0,
            offences: 0,
            blocked_until: None,
            last_block_end: None,
            last_failure: now,
        }
    }

    /// Whether a block is in force at `now`.
    fn is_blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|until| until > now)
    }

    /// When the last block ended, counting one that ended without the source coming back.
    fn block_ended(&self, now: Instant) -> Option<Instant> {
        match self.blocked_until {
            Some(until) if until <= now => Some(until),
            _ => self.last_block_end,
        }
    }

    /// Moves the fixed windows on to `now`.
    fn roll(&mut self, now: Instant, window: Duration) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= window.saturating_mul(2) {
            self.previous = 0;
            self.current = 0;
            self.window_start = now;
        } else if elapsed >= window {
            self.previous = self.current;
            self.current = 0;
            self.window_start += window;
        }
    }

    /// The sliding-window estimate of failures in the last `window`.
    fn count(&self, now: Instant, window: Duration) -> u32 {
        let into = now
            .saturating_duration_since(self.window_start)
            .as_secs_f64();
        let overlap = (1.0 - into / window.as_secs_f64()).clamp(0.0, 1.0);
        // Rounded up: a failure is never forgotten early.
        let weighted = (f64::from(self.previous) * overlap).ceil();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let weighted = weighted as u32;
        weighted.saturating_add(self.current)
    }

    /// Whether the entry says nothing any more: no block in force, no recent failure, no
    /// offence to remember (a block that ended while its source stayed away counts as
    /// ended).
    fn is_stale(&self, now: Instant, window: Duration, forget_after: Duration) -> bool {
        !self.is_blocked(now)
            && now.saturating_duration_since(self.window_start) >= window.saturating_mul(2)
            && self
                .block_ended(now)
                .is_none_or(|end| now.saturating_duration_since(end) >= forget_after)
    }
}

impl Entries {
    /// Makes room in a full map: sweeps stale entries, then evicts the tenth of the unblocked
    /// entries whose last failure is oldest. At most once a second: `None` when not due,
    /// else how many entries were evicted (beyond the stale ones).
    fn make_room(
        &mut self,
        now: Instant,
        policy: &BruteForce,
        max_sources: usize,
    ) -> Option<usize> {
        // At most once a second: a flood of new sources must not make every failure a
        // walk over the whole map.
        let due = self
            .last_sweep
            .is_none_or(|last| now.saturating_duration_since(last) >= Duration::from_secs(1));
        if !due {
            return None;
        }
        self.last_sweep = Some(now);
        let (window, forget_after) = (policy.window, policy.forget_after);
        self.map
            .retain(|_, entry| !entry.is_stale(now, window, forget_after));
        if self.map.len() < max_sources {
            return Some(0);
        }
        let mut candidates: Vec<(Instant, BlockSource)> = self
            .map
            .iter()
            .filter(|(_, entry)| !entry.is_blocked(now))
            .map(|(source, entry)| (entry.last_failure, source.clone()))
            .collect();
        let evict = (max_sources / 10).clamp(1, candidates.len().max(1));
        if candidates.len() > evict {
            candidates.select_nth_unstable_by_key(evict, |(last, _)| *last);
            candidates.truncate(evict);
        }
        for (_, source) in &candidates {
            self.map.remove(source);
        }
        Some(candidates.len())
    }
}

impl BlockStore for MemoryBlockStore {
    fn state(&self, source: &BlockSource) -> StoreFuture<BlockState> {
        let now = Instant::now();
        let mut entries = self.lock();
        let Some(entry) = entries.map.get_mut(source) else {
            return StoreFuture::ready(BlockState::Open);
        };
        StoreFuture::ready(match entry.blocked_until {
            Some(until) if until > now => BlockState::Blocked {
                remaining: until - now,
            },
            Some(until) => {
                entry.blocked_until = None;
                entry.last_block_end = Some(until);
                BlockState::Unblocked {
                    offences: entry.offences,
                }
            }
            None => BlockState::Open,
        })
    }

    fn record_failure(
        &self,
        source: &BlockSource,
        policy: &BruteForce,
    ) -> StoreFuture<FailureCount> {
        let now = Instant::now();
        let window = policy.window;
        let mut entries = self.lock();
        if !entries.map.contains_key(source) && entries.map.len() >= self.max_sources {
            if let Some(evicted) = entries.make_room(now, policy, self.max_sources) {
                self.warned_full.store(false, Ordering::Relaxed);
                if evicted > 0 {
                    tracing::warn!(
                        target: "portcullis::shield",
                        max_sources = self.max_sources,
                        evicted,
                        "brute-force store full: the sources whose last failure is oldest \
                         were forgotten"
                    );
                }
            }
            if entries.map.len() >= self.max_sources {
                if !self.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "portcullis::shield",
                        max_sources = self.max_sources,
                        "brute-force store full: failures of new sources are not counted \
                         until the next sweep (within a second) or until blocks end"
                    );
                }
                return StoreFuture::ready(FailureCount::default());
            }
        }
        let entry = entries
            .map
            .entry(source.clone())
            .or_insert_with(|| Entry::new(now));
        entry.roll(now, window);
        entry.current = entry.current.saturating_add(1);
        entry.last_failure = now;
        let failures = entry.count(now, window);
        let blocked = entry.blocked_until.is_some_and(|until| until > now);
        if blocked || failures < policy.threshold {
            return StoreFuture::ready(FailureCount::new(failures, None));
        }
        let remembered = entry
            .last_block_end
            .is_some_and(|end| now.saturating_duration_since(end) < policy.forget_after);
        entry.offences = if remembered {
            entry.offences.saturating_add(1)
        } else {
            1
        };
        let duration = policy.block_duration(entry.offences);
        // `check` bounds every period to a year: no overflow.
        entry.blocked_until = Some(now.checked_add(duration).unwrap_or(now));
        // The block is the answer to these failures: count afresh after it.
        entry.previous = 0;
        entry.current = 0;
        entry.window_start = now;
        StoreFuture::ready(FailureCount::new(
            failures,
            Some((entry.offences, duration)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> BlockSource {
        BlockSource::Ip("192.0.2.1".parse().expect("ip"))
    }

    async fn fail(store: &MemoryBlockStore, policy: &BruteForce, times: u32) -> FailureCount {
        let mut last = FailureCount::default();
        for _ in 0..times {
            last = store.record_failure(&source(), policy).await;
        }
        last
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_at_the_threshold_and_doubles_for_repeat_offences() {
        let policy = BruteForce::new()
            .threshold(3, Duration::from_secs(60))
            .block_for(Duration::from_secs(60), Duration::from_secs(150));
        let store = MemoryBlockStore::new(10);
        assert_eq!(fail(&store, &policy, 2).await.blocked, None);
        assert_eq!(store.state(&source()).await, BlockState::Open);
        let third = fail(&store, &policy, 1).await;
        assert_eq!(third.failures, 3);
        assert_eq!(third.blocked, Some((1, Duration::from_secs(60))));
        assert_eq!(
            store.state(&source()).await,
            BlockState::Blocked {
                remaining: Duration::from_secs(60)
            }
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            store.state(&source()).await,
            BlockState::Unblocked { offences: 1 }
        );
        assert_eq!(store.state(&source()).await, BlockState::Open);
        // The second offence: twice as long; the third: capped at 150 s.
        assert_eq!(
            fail(&store, &policy, 3).await.blocked,
            Some((2, Duration::from_secs(120)))
        );
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(matches!(
            store.state(&source()).await,
            BlockState::Unblocked { offences: 2 }
        ));
        assert_eq!(
            fail(&store, &policy, 3).await.blocked,
            Some((3, Duration::from_secs(150)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_slide_out_of_the_window() {
        let policy = BruteForce::new().threshold(3, Duration::from_secs(60));
        let store = MemoryBlockStore::new(10);
        fail(&store, &policy, 2).await;
        tokio::time::advance(Duration::from_secs(121)).await;
        let later = fail(&store, &policy, 2).await;
        assert_eq!(later.failures, 2);
        assert_eq!(later.blocked, None);
    }

    #[tokio::test(start_paused = true)]
    async fn offences_are_forgotten() {
        let policy = BruteForce::new()
            .threshold(1, Duration::from_secs(10))
            .block_for(Duration::from_secs(10), Duration::from_secs(1000))
            .forget_after(Duration::from_secs(100));
        let store = MemoryBlockStore::new(10);
        assert_eq!(fail(&store, &policy, 1).await.blocked.map(|b| b.0), Some(1));
        tokio::time::advance(Duration::from_secs(10)).await;
        store.state(&source()).await;
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(fail(&store, &policy, 1).await.blocked.map(|b| b.0), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded() {
        let policy = BruteForce::new().threshold(5, Duration::from_secs(10));
        let store = MemoryBlockStore::new(100);
        for i in 0..1_000u32 {
            let source = BlockSource::Ip(IpAddr::from(i.to_be_bytes()));
            store.record_failure(&source, &policy).await;
        }
        assert_eq!(store.len(), 100);
        // Once their failures are stale, new sources are tracked again.
        tokio::time::advance(Duration::from_secs(21)).await;
        store.record_failure(&source(), &policy).await;
        assert_eq!(store.len(), 1);
    }

    /// Sources blocked once that never come back: their ended blocks are stale once
    /// forgotten, and new sources are counted again.
    #[tokio::test(start_paused = true)]
    async fn ended_blocks_of_sources_that_never_return_are_swept() {
        let policy = BruteForce::new()
            .threshold(1, Duration::from_secs(10))
            .block_for(Duration::from_secs(10), Duration::from_secs(10))
            .forget_after(Duration::from_secs(100));
        let store = MemoryBlockStore::new(10);
        for i in 0..10u32 {
            let source = BlockSource::Ip(IpAddr::from((i + 1).to_be_bytes()));
            assert!(
                store
                    .record_failure(&source, &policy)
                    .await
                    .blocked
                    .is_some()
            );
        }
        tokio::time::advance(Duration::from_secs(121)).await;
        let count = store.record_failure(&source(), &policy).await;
        assert_eq!(
            count,
            FailureCount::new(1, Some((1, Duration::from_secs(10))))
        );
        assert_eq!(store.len(), 1);
    }

    /// A full store of recent (unblocked) sources evicts the least recent to count a new
    /// one, instead of not counting it; sources blocked now are kept.
    #[tokio::test(start_paused = true)]
    async fn a_full_store_evicts_the_least_recent_unblocked_source() {
        let policy = BruteForce::new().threshold(3, Duration::from_secs(600));
        let store = MemoryBlockStore::new(10);
        let other = |i: u32| BlockSource::Ip(IpAddr::from((i + 1).to_be_bytes()));
        // One source blocked, nine with one failure each, one second apart.
        for _ in 0..3 {
            store.record_failure(&other(0), &policy).await;
        }
        for i in 1..10 {
            tokio::time::advance(Duration::from_secs(1)).await;
            store.record_failure(&other(i), &policy).await;
        }
        assert_eq!(store.len(), 10);
        let first = store.record_failure(&source(), &policy).await;
        assert_eq!(first.failures, 1, "the new source is counted");
        assert!(store.len() <= 10);
        // The oldest unblocked source went; the blocked one stayed.
        assert!(matches!(
            store.state(&other(0)).await,
            BlockState::Blocked { .. }
        ));
        assert_eq!(fail(&store, &policy, 2).await.blocked.map(|b| b.0), Some(1));
        let lock = store.lock();
        assert!(!lock.map.contains_key(&other(1)));
        assert!(lock.map.contains_key(&other(9)));
    }

    #[test]
    fn block_durations_double_and_cap() {
        let policy = BruteForce::new();
        assert_eq!(policy.block_duration(1), Duration::from_secs(60));
        assert_eq!(policy.block_duration(2), Duration::from_secs(120));
        assert_eq!(policy.block_duration(6), Duration::from_secs(1920));
        assert_eq!(policy.block_duration(7), Duration::from_secs(3600));
        assert_eq!(policy.block_duration(u32::MAX), Duration::from_secs(3600));
    }
}
