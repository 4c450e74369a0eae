//! [`MemoryKeyStore`]: API keys held in process memory.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use super::admin::KeyAdmin;
use super::format::{KeyFormat, KeyId};
use super::record::{IssuedKey, KeyRecord, NewKey};
use super::store::{KeyStore, Lookup, LookupFuture, StoreError};

/// An in-memory [`KeyStore`] and [`KeyAdmin`]: for tests, demos, and services that load
/// their keys at start.
///
/// Holds records (digests, never secrets) in a map behind a read-write lock; lookups take
/// the read side only and answer at once ([`KeyStore::find_now`]). Contents are lost when
/// the process ends.
///
/// # Example
///
/// ```
/// use portcullis::api_key::{KeyAdmin, MemoryKeyStore, NewKey};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryKeyStore::new();
/// let issued = store.issue(NewKey::for_owner("alice").roles(["admin"])).await?;
/// println!("give this to alice once: {}", issued.key.expose_secret());
/// assert_eq!(store.list(Some("alice")).await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    format: KeyFormat,
    records: RwLock<HashMap<KeyId, Arc<KeyRecord>>>,
}

impl MemoryKeyStore {
    /// An empty store issuing keys with the default `pcl` prefix.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store issuing keys in `format`.
    #[must_use]
    pub fn with_format(format: KeyFormat) -> Self {
        Self {
            format,
            records: RwLock::default(),
        }
    }

    /// Adds an existing record (restored from elsewhere), replacing any with the same id.
    pub fn insert(&self, record: KeyRecord) {
        self.write().insert(*record.id(), Arc::new(record));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyId, Arc<KeyRecord>>> {
        // A panic while holding the lock cannot leave a record half-written: every write
        // is a single insert or field update. Keep serving.
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<KeyId, Arc<KeyRecord>>> {
        self.records.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn issue_now(&self, spec: NewKey) -> Result<IssuedKey, StoreError> {
        loop {
            let generated = self.format.generate_key()?;
            let (id, key) = (generated.id, generated.key);
            let record = KeyRecord::new(id, generated.digest, spec.clone(), SystemTime::now());
            let mut records = self.write();
            // 71 random bits make a repeat id practically impossible; still, never overwrite.
            if records.contains_key(&id) {
                continue;
            }
            records.insert(id, Arc::new(record.clone()));
            return Ok(IssuedKey { key, record });
        }
    }
}

impl KeyStore for MemoryKeyStore {
    fn format(&self) -> &KeyFormat {
        &self.format
    }

    fn find_now(&self, id: &KeyId) -> Option<Lookup> {
        Some(Ok(self.read().get(id).cloned()))
    }

    fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
        let found = self.read().get(id).cloned();
        Box::pin(async move { Ok(found) })
    }
}

impl KeyAdmin for MemoryKeyStore {
    async fn issue(&self, spec: NewKey) -> Result<IssuedKey, StoreError> {
        self.issue_now(spec)
    }

    async fn list(&self, owner: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let mut records: Vec<KeyRecord> = self
            .read()
            .values()
            .filter(|record| owner.is_none_or(|owner| record.owner() == owner))
            .map(|record| KeyRecord::clone(record))
            .collect();
        records.sort_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
        Ok(records)
    }

    async fn rotate(&self, id: &KeyId, overlap: Duration) -> Result<IssuedKey, StoreError> {
        let successor = {
            let records = self.read();
            let old = records.get(id).ok_or_else(|| StoreError::NotFound(*id))?;
            if old.revoked_at().is_some() {
                return Err(StoreError::Revoked(*id));
            }
            if old.is_expired_at(SystemTime::now()) {
                return Err(StoreError::Expired(*id));
            }
            old.successor()
        };
        let issued = self.issue_now(successor)?;
        let now = SystemTime::now();
        if let Some(old) = self.write().get_mut(id) {
            Arc::make_mut(old).expire_by(now.checked_add(overlap).unwrap_or(now));
        }
        Ok(issued)
    }

    async fn revoke(&self, id: &KeyId) -> Result<(), StoreError> {
        let mut records = self.write();
        let record = records
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(*id))?;
        Arc::make_mut(record).revoke(SystemTime::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn the_store_holds_no_secret_bytes() {
        block_on(async {
            let store = MemoryKeyStore::new();
            let issued = store
                .issue(NewKey::for_owner("alice").metadata("team", "ops"))
                .await
                .expect("issued");
            let secret = store
                .format()
                .parse(issued.key.expose_secret().as_bytes())
                .expect("parses")
                .secret
                .to_owned();
            let debug = format!("{store:?}");
            let json = serde_json::to_string(&store.list(None).await.expect("list"))
                .expect("records serialise");
            for dump in [&debug, &json] {
                // No 8-character window of the secret appears anywhere in the store.
                for window in secret.windows(8) {
                    let window = std::str::from_utf8(window).expect("ASCII");
                    assert!(!dump.contains(window), "secret bytes {window} in {dump}");
                }
            }
            assert!(json.contains(issued.record.id().as_str()));
        });
    }

    #[test]
    fn revoke_and_rotate() {
        block_on(async {
            let store = MemoryKeyStore::new();
            let first = store
                .issue(
                    NewKey::for_owner("bob")
                        .roles(["viewer"])
                        .expires_in(Duration::from_secs(3600)),
                )
                .await
                .expect("issued");
            let id = *first.record.id();
            let second = store
                .rotate(&id, Duration::from_secs(60))
                .await
                .expect("rotated");
            assert_ne!(second.record.id(), &id);
            assert_eq!(second.record.owner(), "bob");
            assert!(second.record.roles().contains("viewer"));
            let lifetime = second
                .record
                .expires_at()
                .and_then(|at| at.duration_since(second.record.created_at()).ok());
            assert_eq!(lifetime, Some(Duration::from_secs(3600)));
            let old = store.find(&id).await.expect("found").expect("exists");
            let left = old
                .expires_at()
                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                .expect("old key expires in the future");
            assert!(left <= Duration::from_secs(60));
            assert_eq!(store.list(Some("bob")).await.expect("list").len(), 2);

            store.revoke(&id).await.expect("revoked");
            let old = store.find(&id).await.expect("found").expect("exists");
            assert!(old.revoked_at().is_some());
            assert!(matches!(
                store.rotate(&id, Duration::ZERO).await,
                Err(StoreError::Revoked(_))
            ));
            let unknown = KeyId::parse("000000000000").expect("valid id");
            assert!(matches!(
                store.revoke(&unknown).await,
                Err(StoreError::NotFound(_))
            ));
        });
    }

    #[test]
    fn records_round_trip_through_json() {
        block_on(async {
            let store = MemoryKeyStore::new();
            let issued = store
                .issue(NewKey::for_owner("carol").scopes(["a", "b"]).tenant("acme"))
                .await
                .expect("issued");
            let json = serde_json::to_string(&issued.record).expect("serialises");
            let restored: KeyRecord = serde_json::from_str(&json).expect("deserialises");
            assert!(restored.digest().matches(issued.record.digest()));
            assert_eq!(restored.tenant(), Some("acme"));
            assert_eq!(restored.scopes(), issued.record.scopes());
        });
    }
}
