//! [`RedisSessionStore`]: OpenID Connect sessions on Redis, sealed, shared by every
//! instance, with the back-channel logout index.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::connection::{CommandError, RedisConnection};
use crate::oidc::{Session, SessionId, SessionStore, StoreError, StoreFuture};
use crate::secret::SessionKey;

/// The associated data of a sealed session: a value sealed for anything else never opens
/// as a session.
const CONTEXT: &[u8] = b"portcullis redis session v1";

/// Sessions on Redis, so that a login on one instance works on every instance and a
/// logout (RP-initiated or back-channel) on one ends the session on all.
///
/// Each session is stored sealed (AES-256-GCM under the [`SessionKey`], the one every
/// instance shares), so a copy of Redis yields neither tokens nor claims, under the
/// digest of the browser's cookie ([`SessionId`]), so it yields no usable cookie either.
/// Its expiry in Redis is the idle timeout, never past the session's absolute end; every
/// load restarts it. Two sets per session, by provider session id (`sid`) and by subject,
/// let back-channel logout find it; they expire with the sessions they index.
///
/// While Redis cannot be reached (or does not answer within the connection's command
/// timeout) every call fails: the relying party answers 503, never a pass.
#[derive(Clone)]
pub struct RedisSessionStore {
    connection: RedisConnection,
    key: SessionKey,
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl RedisSessionStore {
    /// A store on `connection`, sealing sessions with `key`: give every instance the same
    /// key (the one the relying party uses for its cookies will do).
    #[must_use]
    pub fn new(connection: RedisConnection, key: SessionKey) -> Self {
        Self { connection, key }
    }

    fn session_key(&self, id: &SessionId) -> String {
        format!(
            "{}:session:{}",
            self.connection.prefix(),
            hex(id.as_bytes())
        )
    }

    /// The index of the sessions of `issuer` with `kind` (`sid` or `sub`) `value`; names
    /// are digests, so they hold no identifier in clear.
    fn index_key(&self, issuer: &str, kind: &str, value: &str) -> String {
        let mut hasher = Sha256::new();
        for part in [issuer, kind, value] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest: [u8; 32] = hasher.finalize().into();
        format!(
            "{}:session-index:{}",
            self.connection.prefix(),
            hex(&digest)
        )
    }

    async fn load_session(
        &self,
        id: &SessionId,
        idle_timeout: Duration,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let key = self.session_key(id);
        let sealed: Option<Vec<u8>> = self
            .connection
            .query(redis::cmd("GET").arg(&key))
            .await
            .map_err(unavailable)?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        // A value that does not open (another key, tampering) is no session.
        let Some(plaintext) = self.key.open(CONTEXT, sealed) else {
            return Ok(None);
        };
        let Ok(session) = serde_json::from_slice::<Session>(&plaintext) else {
            return Ok(None);
        };
        let Some(ttl) = time_to_live(&session, idle_timeout) else {
            return Ok(None);
        };
        // Loading restarts the idle timeout (bounded by the absolute end).
        let _: i64 = self
            .connection
            .query(redis::cmd("PEXPIRE").arg(&key).arg(millis(ttl)))
            .await
            .map_err(unavailable)?;
        Ok(Some(Arc::new(session)))
    }

    /// Stores `session`; with `only_if_present`, only over a session stored under `id`
    /// (`SET … XX`). Answers whether it was stored.
    async fn save_session(
        &self,
        id: &SessionId,
        session: &Session,
        idle_timeout: Duration,
        only_if_present: bool,
    ) -> Result<bool, StoreError> {
        let Some(ttl) = time_to_live(session, idle_timeout) else {
            return Ok(false);
        };
        let plaintext = serde_json::to_vec(session)
            .map_err(|error| StoreError::new(format!("session does not serialise: {error}")))?;
        let sealed = self.key.seal(CONTEXT, &plaintext);
        let key = self.session_key(id);
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(sealed).arg("PX").arg(millis(ttl));
        if only_if_present {
            set.arg("XX");
        }
        let stored: Option<String> = self.connection.query(&set).await.map_err(unavailable)?;
        if stored.is_none() {
            return Ok(false);
        }
        // Index for back-channel logout; each index lives as long as its longest session.
        let until = Duration::from_secs(session.expires_at().saturating_sub(unix_now()));
        let mut indexes = vec![self.index_key(session.issuer(), "sub", session.subject())];
        match session.sid() {
            Some(sid) => indexes.push(self.index_key(session.issuer(), "sid", sid)),
            // Matched by `sub` when a logout token names both `sid` and `sub`.
            None => indexes.push(self.index_key(session.issuer(), "sub-nosid", session.subject())),
        }
        for index in indexes {
            let _: i64 = self
                .connection
                .query(redis::cmd("SADD").arg(&index).arg(&key))
                .await
                .map_err(unavailable)?;
            let _: i64 = self
                .connection
                .query(
                    redis::cmd("PEXPIRE")
                        .arg(&index)
                        .arg(millis(until))
                        .arg("GT"),
                )
                .await
                .map_err(unavailable)?;
            // A fresh set has no expiry for `GT` to compare with: give it one.
            let _: i64 = self
                .connection
                .query(
                    redis::cmd("PEXPIRE")
                        .arg(&index)
                        .arg(millis(until))
                        .arg("NX"),
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(true)
    }

    async fn remove_session(&self, id: &SessionId) -> Result<(), StoreError> {
        let _: i64 = self
            .connection
            .query(redis::cmd("DEL").arg(self.session_key(id)))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove_indexed(
        &self,
        issuer: &str,
        sid: Option<&str>,
        subject: Option<&str>,
    ) -> Result<usize, StoreError> {
        // One given: that index; both: see below.
        let by_sid = match sid {
            Some(sid) => Some(self.members(&self.index_key(issuer, "sid", sid)).await?),
            None => None,
        };
        let by_sub = match subject {
            Some(subject) => Some(
                self.members(&self.index_key(issuer, "sub", subject))
                    .await?,
            ),
            None => None,
        };
        let keys: Vec<String> = match (by_sid, by_sub) {
            // Both: that subject's sessions with that sid, and those without a sid.
            (Some(sid), Some(sub)) => {
                let mut keys: Vec<String> =
                    sid.into_iter().filter(|key| sub.contains(key)).collect();
                if let Some(subject) = subject {
                    keys.extend(
                        self.members(&self.index_key(issuer, "sub-nosid", subject))
                            .await?,
                    );
                }
                keys
            }
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => Vec::new(),
        };
        let mut removed = 0;
        for key in keys {
            let deleted: i64 = self
                .connection
                .query(redis::cmd("DEL").arg(&key))
                .await
                .map_err(unavailable)?;
            removed += usize::from(deleted > 0);
        }
        Ok(removed)
    }

    async fn members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        self.connection
            .query(redis::cmd("SMEMBERS").arg(index))
            .await
            .map_err(unavailable)
    }
}

impl SessionStore for RedisSessionStore {
    fn load(
        &self,
        id: &SessionId,
        idle_timeout: Duration,
    ) -> StoreFuture<'_, Option<Arc<Session>>> {
        let id = *id;
        Box::pin(async move { self.load_session(&id, idle_timeout).await })
    }

    fn save(
        &self,
        id: &SessionId,
        session: Arc<Session>,
        idle_timeout: Duration,
    ) -> StoreFuture<'_, ()> {
        let id = *id;
        Box::pin(async move {
            self.save_session(&id, &session, idle_timeout, false)
                .await
                .map(drop)
        })
    }

    fn save_if_present(
        &self,
        id: &SessionId,
        session: Arc<Session>,
        idle_timeout: Duration,
    ) -> StoreFuture<'_, bool> {
        let id = *id;
        Box::pin(async move { self.save_session(&id, &session, idle_timeout, true).await })
    }

    fn remove(&self, id: &SessionId) -> StoreFuture<'_, ()> {
        let id = *id;
        Box::pin(async move { self.remove_session(&id).await })
    }

    fn remove_matching<'a>(
        &'a self,
        issuer: &'a str,
        sid: Option<&'a str>,
        subject: Option<&'a str>,
    ) -> StoreFuture<'a, usize> {
        Box::pin(self.remove_indexed(issuer, sid, subject))
    }
}

/// How long a session may stay in Redis from now: the idle timeout, cut at its absolute
/// end; `None` once that end has passed.
fn time_to_live(session: &Session, idle_timeout: Duration) -> Option<Duration> {
    let left = Duration::from_secs(session.expires_at().checked_sub(unix_now())?);
    let ttl = idle_timeout.min(left);
    (!ttl.is_zero()).then_some(ttl)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn unavailable(error: CommandError) -> StoreError {
    StoreError::new(error.to_string())
}
