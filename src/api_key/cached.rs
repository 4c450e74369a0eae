//! [`CachedKeyStore`]: a bounded cache in front of a key store that lives across the
//! network, so a repeated key costs no round trip.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::Cache;
use tokio::time::Instant;

use super::admin::KeyAdmin;
use super::format::{KeyFormat, KeyId};
use super::record::{IssuedKey, KeyRecord, NewKey};
use super::store::{KeyStore, Lookup, LookupFuture, StoreError};
use crate::error::ConfigError;

/// Entries kept by default.
const DEFAULT_CAPACITY: usize = 10_000;
/// How long an answer is believed by default.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);
/// The longest `max_age` accepted: a revocation must reach every instance in bounded time.
const MAX_MAX_AGE: Duration = Duration::from_secs(300);

/// A bounded cache of lookups in front of another [`KeyStore`].
///
/// - Found records *and* "no such key" answers are kept, at most
///   [`capacity`](CachedKeyStoreBuilder::capacity) entries (least recently used go first),
///   each for at most [`max_age`](CachedKeyStoreBuilder::max_age). Errors are never kept:
///   the next request asks the store again.
/// - A hit answers at once ([`KeyStore::find_now`]), with no allocation and no await.
/// - A revocation or rotation made through this wrapper ([`KeyAdmin`]) is seen here at
///   once; one made elsewhere (another instance, the database directly) is seen within
///   `max_age`. That bound is the price of the cache: keep it short.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use portcullis::api_key::{ApiKeyAuthenticator, CachedKeyStore, MemoryKeyStore};
///
/// # fn main() -> Result<(), portcullis::ConfigError> {
/// // Stands in for a store across the network (a database, Redis).
/// let remote = MemoryKeyStore::new();
/// let store = CachedKeyStore::builder(remote)
///     .capacity(50_000)
///     .max_age(Duration::from_millis(500))
///     .build()?;
/// let authenticator = ApiKeyAuthenticator::new(Arc::new(store));
/// # Ok(()) }
/// ```
pub struct CachedKeyStore<S> {
    inner: S,
    cache: Cache<KeyId, Entry>,
    capacity: usize,
    max_age: Duration,
}

#[derive(Clone)]
struct Entry {
    record: Option<Arc<KeyRecord>>,
    fetched: Instant,
}

impl<S: KeyStore> CachedKeyStore<S> {
    /// A cache in front of `inner`, with the defaults: 10,000 entries, 1 second.
    #[must_use]
    pub fn new(inner: S) -> Self {
        Self::with(inner, DEFAULT_CAPACITY, DEFAULT_MAX_AGE)
    }

    /// Configures the bounds.
    pub fn builder(inner: S) -> CachedKeyStoreBuilder<S> {
        CachedKeyStoreBuilder {
            inner,
            capacity: DEFAULT_CAPACITY,
            max_age: DEFAULT_MAX_AGE,
        }
    }

    fn with(inner: S, capacity: usize, max_age: Duration) -> Self {
        Self {
            inner,
            cache: Cache::new(capacity),
            capacity,
            max_age,
        }
    }

    /// The store behind the cache.
    #[must_use]
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Forgets every cached answer.
    pub fn clear(&self) {
        self.cache.clear();
    }

    /// Forgets the cached answer for `id`.
    pub fn forget(&self, id: &KeyId) {
        self.cache.remove(id);
    }

    fn fresh(&self, id: &KeyId) -> Option<Option<Arc<KeyRecord>>> {
        let entry = self.cache.get(id)?;
        if entry.fetched.elapsed() < self.max_age {
            Some(entry.record)
        } else {
            self.cache.remove(id);
            None
        }
    }

    fn remember(&self, id: &KeyId, lookup: &Lookup, fetched: Instant) {
        if let Ok(record) = lookup {
            let entry = Entry {
                record: record.clone(),
                fetched,
            };
            self.cache.insert(*id, entry);
        }
    }
}

impl<S> fmt::Debug for CachedKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeyStore")
            .field("capacity", &self.capacity)
            .field("max_age", &self.max_age)
            .field("entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl<S: KeyStore> KeyStore for CachedKeyStore<S> {
    fn format(&self) -> &KeyFormat {
        self.inner.format()
    }

    fn find_now(&self, id: &KeyId) -> Option<Lookup> {
        if let Some(record) = self.fresh(id) {
            return Some(Ok(record));
        }
        // A store that answers at once needs no future either.
        let fetched = Instant::now();
        let lookup = self.inner.find_now(id)?;
        self.remember(id, &lookup, fetched);
        Some(lookup)
    }

    fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
        Box::pin(async move {
            if let Some(record) = self.fresh(id) {
                return Ok(record);
            }
            // The age counts from before the question: an answer is never believed longer
            // than `max_age` after the store gave it.
            let fetched = Instant::now();
            let lookup = self.inner.find(id).await;
            self.remember(id, &lookup, fetched);
            lookup
        })
    }

    fn ready(&self) -> crate::ReadyFuture {
        self.inner.ready()
    }
}

impl<S: KeyAdmin> KeyAdmin for CachedKeyStore<S> {
    async fn issue(&self, spec: NewKey) -> Result<IssuedKey, StoreError> {
        let issued = self.inner.issue(spec).await?;
        self.forget(issued.record.id());
        Ok(issued)
    }

    async fn list(&self, owner: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.list(owner).await
    }

    async fn rotate(&self, id: &KeyId, overlap: Duration) -> Result<IssuedKey, StoreError> {
        let result = self.inner.rotate(id, overlap).await;
        self.forget(id);
        result
    }

    async fn revoke(&self, id: &KeyId) -> Result<(), StoreError> {
        let result = self.inner.revoke(id).await;
        self.forget(id);
        result
    }
}

/// Configures a [`CachedKeyStore`]. Every setting documents its default.
#[must_use]
#[derive(Debug)]
pub struct CachedKeyStoreBuilder<S> {
    inner: S,
    capacity: usize,
    max_age: Duration,
}

impl<S: KeyStore> CachedKeyStoreBuilder<S> {
    /// Keeps at most `entries` answers. Defaults to 10,000.
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }

    /// Believes an answer for at most `age`: a revocation made elsewhere is seen within
    /// it. Defaults to 1 second; at most 5 minutes.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Checks the bounds and builds the cache.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidLimit`] for a zero capacity or age, or an age over 5 minutes.
    pub fn build(self) -> Result<CachedKeyStore<S>, ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::InvalidLimit {
                setting: "capacity",
            });
        }
        if self.max_age.is_zero() || self.max_age > MAX_MAX_AGE {
            return Err(ConfigError::InvalidLimit { setting: "max_age" });
        }
        Ok(CachedKeyStore::with(
            self.inner,
            self.capacity,
            self.max_age,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::api_key::MemoryKeyStore;

    /// A store across the network: answers only asynchronously, and counts the questions.
    #[derive(Default)]
    struct Remote {
        store: MemoryKeyStore,
        asked: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    impl KeyStore for Remote {
        fn format(&self) -> &KeyFormat {
            self.store.format()
        }

        fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if self.down.load(Ordering::SeqCst) {
                    return Err(StoreError::Unavailable("connection refused".into()));
                }
                self.store.find(id).await
            })
        }
    }

    impl KeyAdmin for Remote {
        async fn issue(&self, spec: NewKey) -> Result<IssuedKey, StoreError> {
            self.store.issue(spec).await
        }
        async fn list(&self, owner: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
            self.store.list(owner).await
        }
        async fn rotate(&self, id: &KeyId, overlap: Duration) -> Result<IssuedKey, StoreError> {
            self.store.rotate(id, overlap).await
        }
        async fn revoke(&self, id: &KeyId) -> Result<(), StoreError> {
            self.store.revoke(id).await
        }
    }

    fn cached(max_age: Duration) -> CachedKeyStore<Arc<Remote>> {
        CachedKeyStore::builder(Arc::new(Remote::default()))
            .max_age(max_age)
            .capacity(2)
            .build()
            .expect("valid bounds")
    }

    fn asked(store: &CachedKeyStore<Arc<Remote>>) -> usize {
        store.get_ref().asked.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_hit_costs_no_round_trip_until_the_age_bound() {
        let store = cached(Duration::from_secs(1));
        let issued = store
            .get_ref()
            .store
            .issue(NewKey::for_owner("ann"))
            .await
            .expect("issued");
        let id = issued.record.id();
        assert!(store.find_now(id).is_none(), "a miss must ask the store");
        assert!(store.find(id).await.expect("found").is_some());
        assert_eq!(asked(&store), 1);
        let hit = store
            .find_now(id)
            .expect("hit")
            .expect("ok")
            .expect("record");
        assert_eq!(hit.owner(), "ann");
        assert_eq!(asked(&store), 1);

        // Revoked behind the cache's back (another instance): seen within the age bound.
        store.get_ref().store.revoke(id).await.expect("revoked");
        tokio::time::advance(Duration::from_millis(999)).await;
        let stale = store
            .find_now(id)
            .expect("hit")
            .expect("ok")
            .expect("record");
        assert!(stale.revoked_at().is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            store.find_now(id).is_none(),
            "an old answer must not be believed"
        );
        let fresh = store.find(id).await.expect("ok").expect("record");
        assert!(fresh.revoked_at().is_some());
        assert_eq!(asked(&store), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn revocation_through_the_cache_is_seen_at_once() {
        let store = cached(Duration::from_secs(60));
        let issued = store.issue(NewKey::for_owner("bo")).await.expect("issued");
        let id = *issued.record.id();
        assert!(store.find(&id).await.expect("ok").is_some());
        store.revoke(&id).await.expect("revoked");
        let fresh = store.find(&id).await.expect("ok").expect("record");
        assert!(fresh.revoked_at().is_some());
        assert_eq!(asked(&store), 2);

        let successor = store.rotate(&id, Duration::ZERO).await;
        assert!(matches!(successor, Err(StoreError::Revoked(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_ids_are_cached_and_errors_are_not() {
        let store = cached(Duration::from_secs(1));
        let unknown = KeyId::parse("000000000000").expect("valid id");
        assert!(store.find(&unknown).await.expect("ok").is_none());
        assert!(
            store
                .find_now(&unknown)
                .expect("hit")
                .expect("ok")
                .is_none()
        );
        assert_eq!(asked(&store), 1);

        store.get_ref().down.store(true, Ordering::SeqCst);
        let other = KeyId::parse("111111111111").expect("valid id");
        assert!(store.find(&other).await.is_err());
        assert!(store.find(&other).await.is_err());
        assert_eq!(asked(&store), 3, "an error must not be cached");
    }

    #[tokio::test(start_paused = true)]
    async fn entries_are_bounded_in_number() {
        let store = cached(Duration::from_secs(60));
        for n in 0..100 {
            let id = KeyId::parse(&format!("{n:012}")).expect("valid id");
            store.find(&id).await.expect("ok");
        }
        assert!(store.cache.len() <= 2, "{} entries", store.cache.len());
    }

    #[test]
    fn bounds_are_checked_at_build() {
        let build = |capacity, age| {
            CachedKeyStore::builder(MemoryKeyStore::new())
                .capacity(capacity)
                .max_age(age)
                .build()
                .map(drop)
        };
        assert!(build(1, Duration::from_secs(1)).is_ok());
        assert!(build(0, Duration::from_secs(1)).is_err());
        assert!(build(1, Duration::ZERO).is_err());
        assert!(build(1, Duration::from_secs(301)).is_err());
    }
}
