//! [`KeyAdmin`]: issuing, listing, rotating and revoking keys.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::format::KeyId;
use super::record::{IssuedKey, KeyRecord, NewKey};
use super::store::{KeyStore, StoreError};

/// Administration of the keys in a [`KeyStore`]: what an admin API or a CLI does, never
/// the request path. A store the gateway may only read implements [`KeyStore`] alone.
///
/// `issue` and `rotate` return the new secret once; the store keeps only its digest.
pub trait KeyAdmin: KeyStore {
    /// Issues a new key.
    fn issue(&self, spec: NewKey) -> impl Future<Output = Result<IssuedKey, StoreError>> + Send;

    /// All records, or those of one owner.
    fn list(
        &self,
        owner: Option<&str>,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send;

    /// Issues a successor of key `id` with the same grants, and makes `id` expire `overlap`
    /// from now, so both work while clients switch. A zero overlap ends the old key at once.
    fn rotate(
        &self,
        id: &KeyId,
        overlap: Duration,
    ) -> impl Future<Output = Result<IssuedKey, StoreError>> + Send;

    /// Revokes key `id` with immediate effect (in this store; caches in front of it on
    /// other instances see it within their age bound).
    fn revoke(&self, id: &KeyId) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: KeyAdmin> KeyAdmin for Arc<S> {
    fn issue(&self, spec: NewKey) -> impl Future<Output = Result<IssuedKey, StoreError>> + Send {
        (**self).issue(spec)
    }

    fn list(
        &self,
        owner: Option<&str>,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, StoreError>> + Send {
        (**self).list(owner)
    }

    fn rotate(
        &self,
        id: &KeyId,
        overlap: Duration,
    ) -> impl Future<Output = Result<IssuedKey, StoreError>> + Send {
        (**self).rotate(id, overlap)
    }

    fn revoke(&self, id: &KeyId) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).revoke(id)
    }
}
