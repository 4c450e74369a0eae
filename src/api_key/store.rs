//! [`KeyStore`]: how the authenticator finds a key's record, and nothing more.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::format::{KeyFormat, KeyId};
use super::record::KeyRecord;

/// What a lookup finds: the record for an id, none, or an error meaning "cannot tell".
pub type Lookup = Result<Option<Arc<KeyRecord>>, StoreError>;

/// The future of an asynchronous lookup ([`KeyStore::find`]).
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = Lookup> + Send + 'a>>;

/// Why a key store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No key has this id.
    #[error("no API key with id {0}")]
    NotFound(KeyId),
    /// The key is revoked and cannot be rotated.
    #[error("API key {0} is revoked")]
    Revoked(KeyId),
    /// The key has expired (at the end of its lifetime, or of a rotation's overlap) and
    /// cannot be rotated: rotate its successor, or issue a new key.
    #[error("API key {0} has expired")]
    Expired(KeyId),
    /// The store cannot be reached or failed; requests needing it get 503.
    #[error("key store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The operating system could not provide randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Randomness(String),
}

/// Where the authenticator finds API-key records: the lookup on the request path, and
/// nothing else. Implement it for your database (and [`KeyAdmin`](super::KeyAdmin) too if
/// keys are issued through it); [`MemoryKeyStore`](super::MemoryKeyStore) is the
/// in-process implementation, and [`CachedKeyStore`](super::CachedKeyStore) puts a bounded
/// cache in front of a store that lives across the network.
///
/// Stores keep [`KeyRecord`]s, never secrets: the authenticator finds a record by the key's
/// public id and compares digests in constant time itself. The trait is dyn-compatible
/// (`Arc<dyn KeyStore>`), so the store can be chosen at run time.
///
/// # Example
///
/// A read-only store over a table loaded elsewhere:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use portcullis::api_key::{KeyFormat, KeyId, KeyRecord, KeyStore, Lookup, LookupFuture};
///
/// struct Table {
///     format: KeyFormat,
///     records: HashMap<KeyId, Arc<KeyRecord>>,
/// }
///
/// impl KeyStore for Table {
///     fn format(&self) -> &KeyFormat {
///         &self.format
///     }
///
///     // The answer is at hand: no future, no allocation.
///     fn find_now(&self, id: &KeyId) -> Option<Lookup> {
///         Some(Ok(self.records.get(id).cloned()))
///     }
///
///     fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
///         Box::pin(async move { Ok(self.records.get(id).cloned()) })
///     }
/// }
/// ```
pub trait KeyStore: Send + Sync + 'static {
    /// The format of the keys this store holds.
    fn format(&self) -> &KeyFormat;

    /// The answer for `id` when it is at hand without waiting (an in-memory table, a cache
    /// hit); `None` to have [`find`](Self::find) asked. Defaults to `None`.
    fn find_now(&self, _id: &KeyId) -> Option<Lookup> {
        None
    }

    /// The record for `id`, if there is one. Errors mean "cannot tell" and lead to 503
    /// with `Retry-After`, never to 401 and never to a pass.
    fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a>;

    /// Whether the store answers now (for readiness probes, never on a request's path): a
    /// store across the network asks its server. Defaults to ready.
    fn ready(&self) -> crate::ReadyFuture {
        crate::authenticate::ready()
    }
}

impl<S: KeyStore + ?Sized> KeyStore for Arc<S> {
    fn format(&self) -> &KeyFormat {
        (**self).format()
    }

    fn find_now(&self, id: &KeyId) -> Option<Lookup> {
        (**self).find_now(id)
    }

    fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
        (**self).find(id)
    }

    fn ready(&self) -> crate::ReadyFuture {
        (**self).ready()
    }
}
