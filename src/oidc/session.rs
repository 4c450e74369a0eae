//! Server-side sessions: what a login leaves behind ([`Session`]), the key it is stored
//! under ([`SessionId`]), the store trait ([`SessionStore`]) and the bounded in-memory store
//! ([`MemorySessionStore`]).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::principal::{AuthMethod, Principal};

/// The default number of sessions a [`MemorySessionStore`] holds.
const DEFAULT_CAPACITY: usize = 100_000;

/// Domain separation for session-id digests.
const ID_CONTEXT: &[u8] = b"portcullis oidc session v1\0";

/// The key a session is stored under: the SHA-256 digest of the opaque value in the
/// browser's cookie, so that a copy of the store (a Redis dump, a memory snapshot) yields
/// no usable cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// The id of the session whose cookie holds `cookie_value` (for stores and tools that
    /// look a session up from the browser's cookie).
    #[must_use]
    pub fn of_cookie(cookie_value: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(ID_CONTEXT);
        hasher.update(cookie_value.as_bytes());
        Self(hasher.finalize().into())
    }

    /// The 32 bytes, for stores that key records by them.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An id from bytes a store saved.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SessionId({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// What a login leaves on the server: who logged in (the ID token's claims, mapped roles
/// and granted scopes), the tokens, and when the session ends.
///
/// Serializable, so that a store may keep it elsewhere (Redis). `Debug` never shows the
/// tokens.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    subject: String,
    issuer: String,
    sid: Option<String>,
    claims: Map<String, Value>,
    roles: Vec<String>,
    scopes: Vec<String>,
    id_token: String,
    access_token: Option<String>,
    refresh_token: Option<String>,
    /// When the access token expires, in seconds since the Unix epoch.
    access_token_expires_at: Option<u64>,
    /// When the login happened, in seconds since the Unix epoch.
    created_at: u64,
    /// When the session ends whatever happens (the absolute timeout).
    expires_at: u64,
    /// The claims the userinfo endpoint added at login (those the ID token did not have):
    /// kept across refreshes, whose ID tokens replace the ID token's claims.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    userinfo: Map<String, Value>,
    #[serde(skip)]
    principal: OnceLock<Principal>,
}

/// The tokens of a token-endpoint answer, as a session keeps them. `Debug` does not show
/// them.
pub(crate) struct Tokens {
    pub(crate) id_token: String,
    pub(crate) access_token: Option<String>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) access_token_expires_at: Option<u64>,
    pub(crate) scopes: Vec<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("id_token", &"[redacted]")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The scopes of a space-separated `scope` value (RFC 6749 section 3.3).
pub(crate) fn split_scopes(scope: &str) -> Vec<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Who an ID token names.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) sid: Option<String>,
    pub(crate) claims: Map<String, Value>,
    pub(crate) roles: Vec<String>,
}

impl Session {
    pub(crate) fn new(
        identity: Identity,
        tokens: Tokens,
        created_at: u64,
        expires_at: u64,
    ) -> Self {
        Self {
            subject: identity.subject,
            issuer: identity.issuer,
            sid: identity.sid,
            claims: identity.claims,
            roles: identity.roles,
            scopes: tokens.scopes,
            id_token: tokens.id_token,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            access_token_expires_at: tokens.access_token_expires_at,
            created_at,
            expires_at,
            userinfo: Map::new(),
            principal: OnceLock::new(),
        }
    }

    /// The session, remembering `claims` as the ones userinfo added.
    pub(crate) fn with_userinfo(mut self, claims: Map<String, Value>) -> Self {
        self.userinfo = claims;
        self
    }

    /// The claims userinfo added at login.
    pub(crate) fn userinfo_claims(&self) -> &Map<String, Value> {
        &self.userinfo
    }

    /// The scopes granted at login or the last refresh.
    pub(crate) fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The same session after a refresh: new tokens, and the new ID token's claims if the
    /// provider sent one (same subject, checked by the caller).
    pub(crate) fn refreshed(&self, identity: Option<Identity>, tokens: Tokens) -> Self {
        let mut next = self.clone();
        next.principal = OnceLock::new();
        if let Some(identity) = identity {
            next.claims = identity.claims;
            next.roles = identity.roles;
            if identity.sid.is_some() {
                next.sid = identity.sid;
            }
            next.id_token = tokens.id_token;
        }
        next.access_token = tokens.access_token.or(next.access_token);
        next.refresh_token = tokens.refresh_token.or(next.refresh_token);
        next.access_token_expires_at = tokens.access_token_expires_at;
        if !tokens.scopes.is_empty() {
            next.scopes = tokens.scopes;
        }
        next
    }

    /// The `sub` of the ID token.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The provider's session id (`sid`), when the ID token has one: back-channel logout
    /// ends sessions by it.
    #[must_use]
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// When the session ends whatever happens (the absolute timeout), in seconds since the
    /// Unix epoch.
    #[must_use]
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// When the login happened, in seconds since the Unix epoch.
    #[must_use]
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// When the access token expires, in seconds since the Unix epoch, if the provider said.
    #[must_use]
    pub fn access_token_expires_at(&self) -> Option<u64> {
        self.access_token_expires_at
    }

    pub(crate) fn id_token(&self) -> &str {
        &self.id_token
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn access_token(&self) -> Option<&str> {
        self.access_token.as_deref()
    }

    pub(crate) fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref()
    }

    /// The caller this session authenticates, built once per loaded session.
    pub(crate) fn principal(&self) -> Principal {
        self.principal
            .get_or_init(|| {
                Principal::builder(self.subject.as_str(), AuthMethod::Oidc)
                    .issuer(self.issuer.as_str())
                    .roles(self.roles.iter().map(String::as_str))
                    .scopes(self.scopes.iter().map(String::as_str))
                    .claims(self.claims.clone())
                    .build()
            })
            .clone()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("sid", &self.sid)
            .field("roles", &self.roles)
            .field("scopes", &self.scopes)
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a [`SessionStore`] could not answer. The relying party fails closed on it: the
/// request gets 503, never a pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the session store is unavailable: {reason}")]
pub struct StoreError {
    reason: String,
}

impl StoreError {
    /// An error saying why.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// The boxed future a [`SessionStore`] returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where sessions live: in this process ([`MemorySessionStore`]) or elsewhere (a Redis
/// store, so that every instance of a service sees every session).
///
/// The store owns the idle timeout: a session not loaded for `idle_timeout` is gone.
/// Every answer may be an error ([`StoreError`]); the relying party then answers 503.
pub trait SessionStore: Send + Sync + 'static {
    /// The session stored under `id`, if any and not idle for longer than `idle_timeout`;
    /// loading it restarts its idle timeout.
    fn load(&self, id: &SessionId, idle_timeout: Duration)
    -> StoreFuture<'_, Option<Arc<Session>>>;

    /// Stores `session` under `id` (replacing what was there), idle for at most
    /// `idle_timeout` from now.
    fn save(
        &self,
        id: &SessionId,
        session: Arc<Session>,
        idle_timeout: Duration,
    ) -> StoreFuture<'_, ()>;

    /// Replaces the session stored under `id` with `session` only if one is stored there
    /// now, atomically (idle for at most `idle_timeout` from now); answers whether it did.
    ///
    /// A refresh saves with this, so that a logout (or back-channel logout) that removed
    /// the session while the provider was answering stays a logout.
    fn save_if_present(
        &self,
        id: &SessionId,
        session: Arc<Session>,
        idle_timeout: Duration,
    ) -> StoreFuture<'_, bool>;

    /// Removes the session stored under `id`, if any.
    fn remove(&self, id: &SessionId) -> StoreFuture<'_, ()>;

    /// Removes every session of `issuer` that a back-channel logout token naming `sid`
    /// and/or `subject` (at least one of the two is given) ends: with `sid` only, the
    /// sessions with that provider session id; with `subject` only, every session of that
    /// subject; with both, the sessions of that subject with that `sid` or with no `sid`
    /// at all (an ID token without `sid` cannot be matched by it). Returns how many were
    /// removed.
    fn remove_matching<'a>(
        &'a self,
        issuer: &'a str,
        sid: Option<&'a str>,
        subject: Option<&'a str>,
    ) -> StoreFuture<'a, usize>;
}

/// Sessions in this process's memory, at most `capacity` of them (default 100 000).
///
/// When full, a new session first evicts the sessions past their idle timeout, then the
/// one idle the longest (that user logs in again). Back-channel logout scans every
/// session (it is rare, and needs a token signed by the provider). Sessions do not survive
/// a restart and are not shared between instances: use a shared store for that.
pub struct MemorySessionStore {
    sessions: Mutex<HashMap<SessionId, Entry>>,
    capacity: usize,
}

struct Entry {
    session: Arc<Session>,
    idle_deadline: Instant,
    idle_timeout: Duration,
}

impl MemorySessionStore {
    /// A store for at most 100 000 sessions.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A store for at most `capacity` sessions (at least one).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// How many sessions are stored (idle ones not yet evicted included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Entry>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn load_now(&self, id: &SessionId, idle_timeout: Duration) -> Option<Arc<Session>> {
        let now = Instant::now();
        let mut sessions = self.lock();
        let entry = sessions.get_mut(id)?;
        if now > entry.idle_deadline {
            sessions.remove(id);
            return None;
        }
        entry.idle_timeout = idle_timeout;
        entry.idle_deadline = now + idle_timeout;
        Some(Arc::clone(&entry.session))
    }

    fn save_now(&self, id: &SessionId, session: Arc<Session>, idle_timeout: Duration) {
        let now = Instant::now();
        let mut sessions = self.lock();
        if sessions.len() >= self.capacity && !sessions.contains_key(id) {
            sessions.retain(|_, entry| entry.idle_deadline >= now);
            if sessions.len() >= self.capacity {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, entry)| entry.idle_deadline - entry.idle_timeout)
                    .map(|(id, _)| *id);
                if let Some(oldest) = oldest {
                    sessions.remove(&oldest);
                    tracing::warn!(
                        capacity = self.capacity,
                        "session store full: the longest-idle session was evicted"
                    );
                }
            }
        }
        sessions.insert(
            *id,
            Entry {
                session,
                idle_deadline: now + idle_timeout,
                idle_timeout,
            },
        );
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("sessions", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl SessionStore for MemorySessionStore {
    fn load(
        &self,
        id: &SessionId,
        idle_timeout: Duration,
    ) -> StoreFuture<'_, Option<Arc<Session>>> {
        let found = self.load_now(id, idle_timeout);
        Box::pin(std::future::ready(Ok(found)))
    }

    fn save(
        &self,
        id: &SessionId,
        session: Arc<Session>,
        idle_timeout: Duration,
    ) -> StoreFuture<'_, ()> {
        self.save_now(id, session, idle_timeout);
        Box::pin(std::future::ready(Ok(())))
    }

    fn save_if_present(
        &self,
        id: &SessionId,
        session: Arc<Session>,
        idle_timeout: Duration,
    ) -> StoreFuture<'_, bool> {
        let now = Instant::now();
        let saved = match self.lock().get_mut(id) {
            Some(entry) if now <= entry.idle_deadline => {
                *entry = Entry {
                    session,
                    idle_deadline: now + idle_timeout,
                    idle_timeout,
                };
                true
            }
            _ => false,
        };
        Box::pin(std::future::ready(Ok(saved)))
    }

    fn remove(&self, id: &SessionId) -> StoreFuture<'_, ()> {
        self.lock().remove(id);
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove_matching<'a>(
        &'a self,
        issuer: &'a str,
        sid: Option<&'a str>,
        subject: Option<&'a str>,
    ) -> StoreFuture<'a, usize> {
        let removed = if sid.is_none() && subject.is_none() {
            0
        } else {
            let mut sessions = self.lock();
            let before = sessions.len();
            sessions.retain(|_, entry| {
                let session = &entry.session;
                let matches = session.issuer == issuer
                    && back_channel_match(session.sid.as_deref(), &session.subject, sid, subject);
                !matches
            });
            before - sessions.len()
        };
        Box::pin(std::future::ready(Ok(removed)))
    }
}

/// Whether a session with provider session id `session_sid` and subject
/// `session_subject` is ended by a logout token naming `sid` and/or `subject` (see
/// [`SessionStore::remove_matching`]).
fn back_channel_match(
    session_sid: Option<&str>,
    session_subject: &str,
    sid: Option<&str>,
    subject: Option<&str>,
) -> bool {
    match (sid, subject) {
        (Some(sid), None) => session_sid == Some(sid),
        (None, Some(subject)) => session_subject == subject,
        (Some(sid), Some(subject)) => {
            session_subject == subject && session_sid.is_none_or(|session_sid| session_sid == sid)
        }
        (None, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(subject: &str, sid: Option<&str>) -> Arc<Session> {
        Arc::new(Session::new(
            Identity {
                subject: subject.into(),
                issuer: "https://idp".into(),
                sid: sid.map(str::to_owned),
                claims: Map::new(),
                roles: vec!["viewer".into()],
            },
            Tokens {
                id_token: "id".into(),
                access_token: Some("at".into()),
                refresh_token: None,
                access_token_expires_at: None,
                scopes: vec![],
            },
            0,
            u64::MAX,
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_are_gone_and_loading_restarts_the_idle_timeout() {
        let store = MemorySessionStore::new();
        let id = SessionId::of_cookie("a");
        let idle = Duration::from_secs(60);
        store.save(&id, session("alice", None), idle).await.unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(store.load(&id, idle).await.unwrap().is_some());
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(store.load(&id, idle).await.unwrap().is_some());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(store.load(&id, idle).await.unwrap().is_none());
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_store_evicts_the_longest_idle_session() {
        let store = MemorySessionStore::with_capacity(2);
        let idle = Duration::from_secs(600);
        let (a, b, c) = (
            SessionId::of_cookie("a"),
            SessionId::of_cookie("b"),
            SessionId::of_cookie("c"),
        );
        store.save(&a, session("a", None), idle).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        store.save(&b, session("b", None), idle).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(store.load(&a, idle).await.unwrap().is_some());
        store.save(&c, session("c", None), idle).await.unwrap();
        assert_eq!(store.len(), 2);
        assert!(store.load(&b, idle).await.unwrap().is_none());
        assert!(store.load(&a, idle).await.unwrap().is_some());
    }

    #[test]
    fn debug_does_not_show_the_tokens() {
        let tokens = Tokens {
            id_token: "ID-secret".into(),
            access_token: Some("AT-secret".into()),
            refresh_token: Some("RT-secret".into()),
            access_token_expires_at: Some(1),
            scopes: vec!["openid".into()],
        };
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("openid"), "{shown}");
    }

    #[tokio::test(start_paused = true)]
    async fn save_if_present_never_brings_a_removed_session_back() {
        let store = MemorySessionStore::new();
        let id = SessionId::of_cookie("a");
        let idle = Duration::from_secs(60);
        assert!(
            !store
                .save_if_present(&id, session("alice", None), idle)
                .await
                .unwrap()
        );
        assert!(store.is_empty());
        store.save(&id, session("alice", None), idle).await.unwrap();
        assert!(
            store
                .save_if_present(&id, session("alice2", None), idle)
                .await
                .unwrap()
        );
        assert_eq!(
            store.load(&id, idle).await.unwrap().unwrap().subject(),
            "alice2"
        );
        store.remove(&id).await.unwrap();
        assert!(
            !store
                .save_if_present(&id, session("alice3", None), idle)
                .await
                .unwrap()
        );
        assert!(store.load(&id, idle).await.unwrap().is_none());
        // Idle past its timeout: gone too.
        store.save(&id, session("alice", None), idle).await.unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(
            !store
                .save_if_present(&id, session("alice4", None), idle)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn back_channel_matching_by_sid_or_subject() {
        let store = MemorySessionStore::new();
        let idle = Duration::from_secs(600);
        store
            .save(
                &SessionId::of_cookie("1"),
                session("alice", Some("s1")),
                idle,
            )
            .await
            .unwrap();
        store
            .save(
                &SessionId::of_cookie("2"),
                session("alice", Some("s2")),
                idle,
            )
            .await
            .unwrap();
        store
            .save(&SessionId::of_cookie("3"), session("bob", Some("s3")), idle)
            .await
            .unwrap();
        assert_eq!(
            store
                .remove_matching("https://idp", None, None)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .remove_matching("https://other", Some("s1"), None)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .remove_matching("https://idp", Some("s1"), Some("bob"))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .remove_matching("https://idp", Some("s1"), None)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .remove_matching("https://idp", None, Some("alice"))
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.len(), 1);
        // Both sid and sub: a session of that subject without a sid ends too; one with
        // another sid does not.
        store
            .save(&SessionId::of_cookie("4"), session("bob", None), idle)
            .await
            .unwrap();
        store
            .save(&SessionId::of_cookie("5"), session("bob", Some("s5")), idle)
            .await
            .unwrap();
        store
            .save(&SessionId::of_cookie("6"), session("carol", None), idle)
            .await
            .unwrap();
        assert_eq!(
            store
                .remove_matching("https://idp", Some("s3"), Some("bob"))
                .await
                .unwrap(),
            2
        );
        assert!(
            store
                .load(&SessionId::of_cookie("5"), idle)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .load(&SessionId::of_cookie("6"), idle)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.len(), 2);
    }
}
