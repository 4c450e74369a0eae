//! [`TokenCache`]: a bounded cache of verified tokens, so a token presented again costs a
//! hash and a lookup instead of a signature check.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Principal;
use crate::observe::RequestCounters;
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

/// How many verified tokens are kept by default.
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;

/// The SHA-256 of a token: the cache key, so the cache holds no bearer credential.
pub(crate) type TokenDigest = [u8; 32];

/// Verified tokens by digest, each with the time it stops being acceptable.
///
/// Only successful verifications are stored; an entry is used only before its deadline
/// (the token's `exp`, or sooner), so a cached answer never outlives the token. The cache
/// is bounded; the least useful entries are evicted first.
pub(crate) struct TokenCache {
    entries: Cache<TokenDigest, (Principal, SystemTime)>,
    counters: RequestCounters,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.entries.len())
            .field("capacity", &self.entries.capacity())
            .finish()
    }
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens (more than zero).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::new(capacity),
            counters: RequestCounters::default(),
        }
    }

    /// The digest of `token`.
    pub(crate) fn digest(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The principal of a token verified before, if it is still acceptable at `now`; the
    /// lookup is counted (`portcullis.token_cache.lookups`).
    pub(crate) fn get(&self, digest: &TokenDigest, now: SystemTime) -> Option<Principal> {
        let found = self.entries.get(digest).and_then(|(principal, deadline)| {
            if now < deadline {
                Some(principal)
            } else {
                self.entries.remove(digest);
                None
            }
        });
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let result = if found.is_some() { "hit" } else { "miss" };
        self.counters
            .count(second, "portcullis.token_cache.lookups", "result", result);
        found
    }

    /// Remembers a verified token until `deadline`.
    pub(crate) fn insert(&self, digest: TokenDigest, principal: Principal, deadline: SystemTime) {
        self.entries.insert(digest, (principal, deadline));
    }

    /// Forgets one token.
    pub(crate) fn remove(&self, digest: &TokenDigest) {
        self.entries.remove(digest);
    }

    /// Forgets every token (for when keys are removed).
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::AuthMethod;

    use super::*;

    #[test]
    fn entries_never_outlive_their_deadline() {
        let cache = TokenCache::new(4);
        let now = SystemTime::now();
        let principal = Principal::builder("alice", AuthMethod::Bearer).build();
        let digest = TokenCache::digest("a.b.c");
        cache.insert(digest, principal.clone(), now + Duration::from_secs(10));
        assert_eq!(cache.get(&digest, now), Some(principal.clone()));
        assert_eq!(cache.get(&digest, now + Duration::from_secs(10)), None);
        // Expired entries are dropped on sight.
        assert_eq!(cache.get(&digest, now), None);
        assert_ne!(TokenCache::digest("a.b.d"), digest);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = TokenCache::new(8);
        let later = SystemTime::now() + Duration::from_secs(60);
        for i in 0..1000 {
            let principal = Principal::builder("p", AuthMethod::Bearer).build();
            cache.insert(TokenCache::digest(&i.to_string()), principal, later);
        }
        assert!(cache.entries.len() <= 8);
    }
}
