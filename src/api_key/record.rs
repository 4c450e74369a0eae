//! What a key store keeps: [`KeyRecord`]; and what is given to it and gets back when a
//! key is issued: [`NewKey`], [`IssuedKey`].

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::format::KeyId;
use crate::principal::{AuthMethod, Names, Principal};
use crate::secret::{ApiKey, KeyDigest};

/// Everything known about one API key, except its secret.
///
/// Records serialise to JSON (times as Unix seconds, the digest as hex) so stores can
/// persist them as they are. Because that form includes the digest, do not return it from
/// an API as it is: show [`KeyRecord::summary`] instead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    id: KeyId,
    digest: KeyDigest,
    owner: Arc<str>,
    #[serde(default)]
    roles: Names,
    #[serde(default)]
    scopes: Names,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<Arc<str>>,
    #[serde(default)]
    metadata: Arc<Map<String, Value>>,
    #[serde(with = "unix_seconds")]
    created_at: SystemTime,
    #[serde(default, with = "unix_seconds_option")]
    expires_at: Option<SystemTime>,
    #[serde(default, with = "unix_seconds_option")]
    revoked_at: Option<SystemTime>,
    /// Who the key authenticates as, built on first use (every field it reads is fixed for
    /// the record's life), so that a request shares it instead of building its own.
    #[serde(skip)]
    principal: OnceLock<Principal>,
}

impl KeyRecord {
    /// A record for a key `id` whose secret has `digest`, described by `spec`.
    #[must_use]
    pub fn new(id: KeyId, digest: KeyDigest, spec: NewKey, created_at: SystemTime) -> Self {
        let expires_at = spec.expiry.at(created_at);
        Self {
            id,
            digest,
            owner: spec.owner,
            roles: spec.roles,
            scopes: spec.scopes,
            tenant: spec.tenant,
            metadata: Arc::new(spec.metadata),
            created_at,
            expires_at,
            revoked_at: None,
            principal: OnceLock::new(),
        }
    }

    /// The principal a request authenticated by this key acts as.
    pub(crate) fn principal(&self) -> &Principal {
        self.principal.get_or_init(|| {
            let method = AuthMethod::ApiKey {
                key_id: self.id.shared(),
            };
            let mut principal = Principal::builder(self.owner.clone(), method)
                .role_names(self.roles.clone())
                .scope_names(self.scopes.clone())
                .claims(self.metadata.clone());
            if let Some(tenant) = &self.tenant {
                principal = principal.tenant(tenant.clone());
            }
            principal.build()
        })
    }

    /// What may be shown about the key to its owner or an admin: everything but the digest.
    #[must_use]
    pub fn summary(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.remove("digest");
        }
        value
    }

    /// The key's public identifier.
    #[must_use]
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The digest of the key's secret.
    #[must_use]
    pub fn digest(&self) -> &KeyDigest {
        &self.digest
    }

    /// Who the key belongs to; becomes the principal's subject.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The roles the key grants.
    #[must_use]
    pub fn roles(&self) -> &Names {
        &self.roles
    }

    /// The scopes the key grants.
    #[must_use]
    pub fn scopes(&self) -> &Names {
        &self.scopes
    }

    /// The tenant the key belongs to.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Free-form metadata; becomes the principal's claims.
    #[must_use]
    pub fn metadata(&self) -> &Arc<Map<String, Value>> {
        &self.metadata
    }

    /// When the key was issued.
    #[must_use]
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// When the key stops working, if ever.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// When the key was revoked, if it was.
    #[must_use]
    pub fn revoked_at(&self) -> Option<SystemTime> {
        self.revoked_at
    }

    /// Whether the key has expired at `now`.
    #[must_use]
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Marks the key revoked at `at` (keeps an earlier revocation time).
    pub fn revoke(&mut self, at: SystemTime) {
        self.revoked_at.get_or_insert(at);
    }

    /// Makes the key expire no later than `at`.
    pub fn expire_by(&mut self, at: SystemTime) {
        self.expires_at = Some(self.expires_at.map_or(at, |current| current.min(at)));
    }

    /// The description of a key that replaces this one: same owner, roles, scopes, tenant
    /// and metadata, and the same lifetime counted from its own issue. A key already rotated
    /// (in its overlap) has a shortened lifetime, which its successor would inherit: rotate
    /// the successor instead. Stores refuse to rotate an expired key.
    pub fn successor(&self) -> NewKey {
        let lifetime = self
            .expires_at
            .and_then(|at| at.duration_since(self.created_at).ok());
        NewKey {
            owner: self.owner.clone(),
            roles: self.roles.clone(),
            scopes: self.scopes.clone(),
            tenant: self.tenant.clone(),
            metadata: Map::clone(&self.metadata),
            expiry: lifetime.map_or(Expiry::Never, Expiry::After),
        }
    }
}

/// A newly issued or rotated key: the secret (shown once; store it nowhere) and its record.
#[derive(Debug)]
pub struct IssuedKey {
    /// The key to hand to its owner.
    pub key: ApiKey,
    /// What the store keeps.
    pub record: KeyRecord,
}

#[derive(Debug, Clone, Copy)]
enum Expiry {
    Never,
    After(Duration),
    At(SystemTime),
}

impl Expiry {
    fn at(self, created_at: SystemTime) -> Option<SystemTime> {
        match self {
            Self::Never => None,
            Self::After(lifetime) => created_at.checked_add(lifetime),
            Self::At(at) => Some(at),
        }
    }
}

/// The description of a key to issue. Defaults: no roles, scopes, tenant or metadata, and
/// no expiry.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use portcullis::api_key::NewKey;
///
/// let spec = NewKey::for_owner("billing-service")
///     .roles(["viewer"])
///     .scopes(["invoices:read"])
///     .expires_in(Duration::from_secs(90 * 24 * 3600));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NewKey {
    owner: Arc<str>,
    roles: Names,
    scopes: Names,
    tenant: Option<Arc<str>>,
    metadata: Map<String, Value>,
    expiry: Expiry,
}

impl NewKey {
    /// A key belonging to `owner`, who becomes the principal's subject.
    pub fn for_owner(owner: impl Into<Arc<str>>) -> Self {
        Self {
            owner: owner.into(),
            roles: Names::default(),
            scopes: Names::default(),
            tenant: None,
            metadata: Map::new(),
            expiry: Expiry::Never,
        }
    }

    /// The roles the key grants.
    pub fn roles<I, T>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Box<str>>,
    {
        self.roles = Names::new(roles);
        self
    }

    /// The scopes the key grants.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Box<str>>,
    {
        self.scopes = Names::new(scopes);
        self
    }

    /// The tenant the key belongs to.
    pub fn tenant(mut self, tenant: impl Into<Arc<str>>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Adds a metadata entry (readable by handlers as a claim).
    pub fn metadata(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(name.into(), value.into());
        self
    }

    /// The key stops working `lifetime` after it is issued.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expiry = Expiry::After(lifetime);
        self
    }

    /// The key stops working at `at`.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expiry = Expiry::At(at);
        self
    }
}

mod unix_seconds {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        serializer.serialize_u64(seconds)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let seconds = u64::deserialize(deserializer)?;
        UNIX_EPOCH
            .checked_add(Duration::from_secs(seconds))
            .ok_or_else(|| serde::de::Error::custom("time out of range"))
    }
}

mod unix_seconds_option {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`.
    pub(super) fn serialize<S: Serializer>(
        time: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::unix_seconds::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        #[derive(Deserialize)]
        struct Seconds(#[serde(with = "super::unix_seconds")] SystemTime);
        Ok(Option::<Seconds>::deserialize(deserializer)?.map(|Seconds(time)| time))
    }
}
