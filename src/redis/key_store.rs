//! [`RedisKeyStore`]: API-key records on Redis, shared by every instance.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

use super::connection::{CommandError, RedisConnection};
use crate::api_key::{
    IssuedKey, KeyAdmin, KeyFormat, KeyId, KeyRecord, KeyStore, LookupFuture, NewKey, StoreError,
};

/// Stores the record only if no record has this id (ids are random: a repeat is
/// practically impossible, but never overwrite), and indexes it.
/// KEYS: record, index. ARGV: record JSON, id. Returns 1 when stored.
const ISSUE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'record', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
";

/// Marks the record revoked (keeping an earlier revocation).
/// KEYS: record. ARGV: Unix seconds. Returns 0 when there is no such record.
const REVOKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSETNX', KEYS[1], 'revoked_at', ARGV[1])
return 1
";

/// Makes the record expire no later than the given time.
/// KEYS: record. ARGV: Unix seconds. Returns 0 when there is no such record.
const EXPIRE_BY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[1], 'expires_by')
if not current or tonumber(current) > tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'expires_by', ARGV[1])
end
return 1
";

/// API-key records on Redis: lookup ([`KeyStore`]) and administration ([`KeyAdmin`]).
///
/// Each record is a hash at `{prefix}:key:<id>` holding the record as JSON (the digest of
/// the secret, never the secret), with revocation and earlier expiry as fields of their
/// own so that they are set atomically, whatever another instance does at the same time;
/// a set at `{prefix}:keys` lists the ids. All of them share one hash tag, so scripts work
/// on Redis Cluster too.
///
/// Every lookup is a round trip: put it behind [`CachedKeyStore`](crate::api_key::CachedKeyStore)
/// so that a hit costs none; a revocation on any instance is then refused everywhere within
/// the cache's age bound. While Redis cannot be reached (or does not answer within the
/// connection's command timeout) lookups fail, and the authenticator answers 503 with
/// `Retry-After`: never a pass, never a 401.
#[derive(Clone)]
pub struct RedisKeyStore {
    connection: RedisConnection,
    format: KeyFormat,
    scripts: Arc<Scripts>,
}

struct Scripts {
    issue: Script,
    revoke: Script,
    expire_by: Script,
}

impl fmt::Debug for RedisKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyStore")
            .field("connection", &self.connection)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl RedisKeyStore {
    /// A store on `connection` for keys in the default format.
    #[must_use]
    pub fn new(connection: RedisConnection) -> Self {
        Self::with_format(connection, KeyFormat::default())
    }

    /// A store on `connection` for keys in `format`.
    #[must_use]
    pub fn with_format(connection: RedisConnection, format: KeyFormat) -> Self {
        Self {
            connection,
            format,
            scripts: Arc::new(Scripts {
                issue: Script::new(ISSUE),
                revoke: Script::new(REVOKE),
                expire_by: Script::new(EXPIRE_BY),
            }),
        }
    }

    fn record_key(&self, id: &KeyId) -> String {
        format!("{{{}}}:key:{id}", self.connection.prefix())
    }

    fn index_key(&self) -> String {
        format!("{{{}}}:keys", self.connection.prefix())
    }

    async fn load(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let (record, revoked_at, expires_by): (Option<String>, Option<u64>, Option<u64>) = self
            .connection
            .query(
                redis::cmd("HMGET")
                    .arg(self.record_key(id))
                    .arg("record")
                    .arg("revoked_at")
                    .arg("expires_by"),
            )
            .await
            .map_err(unavailable)?;
        let Some(record) = record else {
            return Ok(None);
        };
        let mut record: KeyRecord = serde_json::from_str(&record).map_err(|error| {
            StoreError::Unavailable(format!("stored record {id} does not parse: {error}").into())
        })?;
        if let Some(at) = revoked_at {
            record.revoke(from_unix(at));
        }
        if let Some(at) = expires_by {
            record.expire_by(from_unix(at));
        }
        Ok(Some(record))
    }

    async fn issue_record(&self, spec: NewKey) -> Result<IssuedKey, StoreError> {
        loop {
            let generated = self.format.generate_key()?;
            let record = KeyRecord::new(
                generated.id,
                generated.digest,
                spec.clone(),
                SystemTime::now(),
            );
            let json = serde_json::to_string(&record)
                .map_err(|error| StoreError::Unavailable(Box::new(error)))?;
            let stored: i64 = self
                .connection
                .run_script(
                    self.scripts
                        .issue
                        .key(self.record_key(&generated.id))
                        .key(self.index_key())
                        .arg(json)
                        .arg(generated.id.as_str()),
                )
                .await
                .map_err(unavailable)?;
            if stored == 1 {
                return Ok(IssuedKey {
                    key: generated.key,
                    record,
                });
            }
        }
    }

    /// Runs a script over one record; `false` when the record does not exist.
    async fn update(
        &self,
        script: &Script,
        id: &KeyId,
        at: SystemTime,
    ) -> Result<bool, StoreError> {
        let done: i64 = self
            .connection
            .run_script(script.key(self.record_key(id)).arg(to_unix(at)))
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }
}

impl KeyStore for RedisKeyStore {
    fn format(&self) -> &KeyFormat {
        &self.format
    }

    fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
        Box::pin(async move { Ok(self.load(id).await?.map(Arc::new)) })
    }

    /// Asks Redis (`PING`), within the command timeout.
    fn ready(&self) -> crate::ReadyFuture {
        let connection = self.connection.clone();
        Box::pin(async move { connection.ping().await })
    }
}

impl KeyAdmin for RedisKeyStore {
    async fn issue(&self, spec: NewKey) -> Result<IssuedKey, StoreError> {
        self.issue_record(spec).await
    }

    async fn list(&self, owner: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let ids: Vec<String> = self
            .connection
            .query(redis::cmd("SMEMBERS").arg(self.index_key()))
            .await
            .map_err(unavailable)?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(id) = KeyId::parse(&id) else {
                continue;
            };
            if let Some(record) = self.load(&id).await?
                && owner.is_none_or(|owner| record.owner() == owner)
            {
                records.push(record);
            }
        }
        records.sort_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
        Ok(records)
    }

    async fn rotate(&self, id: &KeyId, overlap: Duration) -> Result<IssuedKey, StoreError> {
        let old = self
            .load(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(*id))?;
        if old.revoked_at().is_some() {
            return Err(StoreError::Revoked(*id));
        }
        if old.is_expired_at(SystemTime::now()) {
            return Err(StoreError::Expired(*id));
        }
        let issued = self.issue_record(old.successor()).await?;
        let now = SystemTime::now();
        let until = now.checked_add(overlap).unwrap_or(now);
        self.update(&self.scripts.expire_by, id, until).await?;
        Ok(issued)
    }

    async fn revoke(&self, id: &KeyId) -> Result<(), StoreError> {
        if self
            .update(&self.scripts.revoke, id, SystemTime::now())
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::NotFound(*id))
        }
    }
}

fn unavailable(error: CommandError) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

fn to_unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn from_unix(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}
