//! Revoked access tokens, by issuer and `jti`: [`TokenRevocations`] and the in-process
//! [`MemoryRevocations`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::store::StoreFuture;

/// What a revocation list says about one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Revocation {
    /// Not revoked.
    Valid,
    /// Revoked: refused with 401.
    Revoked,
    /// The list cannot answer now (its backend is unreachable): refused with 503, never
    /// let through.
    #[default]
    Unknown,
}

/// Why a revocation could not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("the revocation list is unavailable: {0}")]
pub struct RevocationError(pub String);

/// The future of [`TokenRevocations::revoke`].
pub type RevokeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RevocationError>> + Send + 'a>>;

/// A list of revoked access tokens, by issuer and `jti`, consulted for every JWT access
/// token the bearer layer accepts (with
/// [`BearerAuthenticatorBuilder::revocations`](super::BearerAuthenticatorBuilder::revocations)).
///
/// Entries need live only until the token expires: `revoke` is given that time. In
/// process: [`MemoryRevocations`]; shared by every instance: `RedisRevocations` (feature
/// `redis`).
pub trait TokenRevocations: Send + Sync + 'static {
    /// Whether token `jti` of `issuer` is revoked. Called on the request path: answer at
    /// once ([`StoreFuture::ready`]) when you can.
    fn check(&self, issuer: &str, jti: &str) -> StoreFuture<Revocation>;

    /// Revokes token `jti` of `issuer` until `expires_at` (its `exp`).
    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: SystemTime,
    ) -> RevokeFuture<'a>;
}

/// A revocation list as the bearer layer holds it (`Debug` without the list's contents).
#[derive(Clone)]
pub(crate) struct SharedRevocations(pub(crate) std::sync::Arc<dyn TokenRevocations>);

impl fmt::Debug for SharedRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenRevocations")
    }
}

/// The digest a revocation is kept under: no token id in clear, and a fixed size whatever
/// the `jti`.
pub(crate) fn revocation_id(issuer: &str, jti: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((issuer.len() as u64).to_be_bytes());
    hasher.update(issuer.as_bytes());
    hasher.update(jti.as_bytes());
    hasher.finalize().into()
}

/// Revocations in this process's memory: one entry per revoked token until it expires, at
/// most `capacity` of them (default 1,000,000; expired entries are dropped first; beyond
/// that, `revoke` fails rather than forget a revocation).
pub struct MemoryRevocations {
    entries: Mutex<HashMap<[u8; 32], SystemTime>>,
    capacity: usize,
}

impl fmt::Debug for MemoryRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocations")
            .field("entries", &self.lock().len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for MemoryRevocations {
    fn default() -> Self {
        Self::with_capacity(1_000_000)
    }
}

impl MemoryRevocations {
    /// An empty list for at most 1,000,000 live revocations.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list for at most `capacity` live revocations.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], SystemTime>> {
        // Every write is one insert or one retain: a panic cannot leave a half entry.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenRevocations for MemoryRevocations {
    fn check(&self, issuer: &str, jti: &str) -> StoreFuture<Revocation> {
        let id = revocation_id(issuer, jti);
        let revoked = self
            .lock()
            .get(&id)
            .is_some_and(|until| *until > SystemTime::now());
        StoreFuture::ready(if revoked {
            Revocation::Revoked
        } else {
            Revocation::Valid
        })
    }

    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: SystemTime,
    ) -> RevokeFuture<'a> {
        let id = revocation_id(issuer, jti);
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&id) {
            let now = SystemTime::now();
            entries.retain(|_, until| *until > now);
        }
        let result = if entries.len() >= self.capacity && !entries.contains_key(&id) {
            Err(RevocationError(format!(
                "the list holds {} live revocations",
                self.capacity
            )))
        } else {
            entries.insert(id, expires_at);
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn revoked_until_expiry_and_bounded() {
        let list = MemoryRevocations::with_capacity(2);
        let later = SystemTime::now() + Duration::from_secs(60);
        let earlier = SystemTime::now() - Duration::from_secs(1);
        assert_eq!(list.check("iss", "a").await, Revocation::Valid);
        list.revoke("iss", "a", later).await.expect("revoked");
        assert_eq!(list.check("iss", "a").await, Revocation::Revoked);
        assert_eq!(
            list.check("other", "a").await,
            Revocation::Valid,
            "per issuer"
        );
        // An entry past its token's expiry no longer counts, and makes room.
        list.revoke("iss", "old", earlier).await.expect("revoked");
        assert_eq!(list.check("iss", "old").await, Revocation::Valid);
        list.revoke("iss", "b", later)
            .await
            .expect("room after sweeping");
        assert!(list.revoke("iss", "c", later).await.is_err(), "full");
        assert_eq!(list.check("iss", "b").await, Revocation::Revoked);
    }
}
