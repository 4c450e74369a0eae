//! [`JwksCache`]: the current key set of one issuer, fetched from a JWKS URL (directly or
//! through discovery) and refreshed on a timer and on an unknown `kid`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use sha2::{Digest, Sha256};

use super::client::{HttpResponse, ReqwestClient, content_type_accepted, short};
use super::discovery::{DISCOVERY_PATHS, ProviderMetadata};
use super::{HttpClient, RemoteError, check_url};
use crate::error::ConfigError;
use crate::jwt::KeySet;

/// The content types a JWKS may be served with.
const ACCEPT_JWKS: &[&str] = &["application/jwk-set+json", "application/json"];

/// The default time between refreshes when the server sends no `max-age`.
/// The longest a failed refresh may leave the last good set in use.
const MAX_STALE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
const DEFAULT_REFRESH: Duration = Duration::from_secs(5 * 60);
/// The default shortest time between timer refreshes.
const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(60);
/// The longest time between refreshes.
const MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// The default shortest time between two refetches caused by requests.
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// The default longest time a set is used after its last successful fetch.
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest one refresh may take, whatever the HTTP client does (a backstop for custom
/// clients without a timeout; [`ReqwestClient`] has its own).
const FETCH_BACKSTOP: Duration = Duration::from_secs(60);

/// Marks the refresh timer as stopped when its task is dropped.
struct TimerStopped(std::sync::Weak<JwksCache>);

impl Drop for TimerStopped {
    fn drop(&mut self) {
        if let Some(cache) = self.0.upgrade() {
            cache.background.store(false, Ordering::Release);
        }
    }
}

/// Where an issuer's JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksSource {
    /// This JWKS URL.
    Url(String),
    /// The `jwks_uri` of the issuer's discovery document
    /// (`<issuer>/.well-known/openid-configuration`, falling back to
    /// `<issuer>/.well-known/oauth-authorization-server`), whose `issuer` must equal this
    /// issuer exactly.
    Discover(String),
}

/// The last good key set, and when it was fetched.
struct Current {
    keys: Arc<KeySet>,
    fetched_at: Instant,
    next_due: Instant,
    digest: [u8; 32],
}

/// A called-back function for when the key set changes.
type Listener = Box<dyn Fn() + Send + Sync>;

/// The current key set of one issuer, fetched from a JWKS URL.
///
/// - [`load_in_background`](Self::load_in_background) starts the first fetch and a timer
///   refreshing the set at the server's `Cache-Control: max-age` (clamped to [60 s, 24 h],
///   default 5 min); the timer stops when the cache is dropped.
/// - [`refresh_for_unknown_kid`](Self::refresh_for_unknown_kid) refetches at most once per
///   cooldown (default 30 s), single-flight: concurrent callers wait for the fetch in
///   flight instead of starting their own.
/// - A failed refresh (transport error, non-2xx status, wrong content type, oversize,
///   unparseable or empty JWKS) keeps the last good set, for at most `max_stale` (default
///   24 h) after the last success; after that no set is usable and requests get 503.
///
/// Readers clone an `Arc` under a read lock; no lock is held across a fetch.
pub struct JwksCache {
    source: JwksSource,
    allow_http: bool,
    client: Arc<dyn HttpClient>,
    current: RwLock<Option<Current>>,
    fetch_guard: tokio::sync::Mutex<()>,
    last_attempt: Mutex<Option<Instant>>,
    /// The provider's metadata, once discovered (with `JwksSource::Discover`).
    metadata: Mutex<Option<Discovered>>,
    cooldown: Duration,
    max_stale: Duration,
    min_refresh: Duration,
    fetch_count: AtomicU64,
    generation: AtomicU64,
    background: AtomicBool,
    due_refresh_spawned: AtomicBool,
    listeners: Mutex<Vec<Listener>>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("source", &self.source)
            .field("ready", &self.is_ready())
            .field("fetch_count", &self.fetch_count())
            .field("cooldown", &self.cooldown)
            .field("max_stale", &self.max_stale)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// Starts a cache for `source`; see [`JwksCacheBuilder`].
    pub fn builder(source: JwksSource) -> JwksCacheBuilder {
        JwksCacheBuilder {
            source,
            client: None,
            allow_http: false,
            cooldown: DEFAULT_COOLDOWN,
            max_stale: DEFAULT_MAX_STALE,
            min_refresh: DEFAULT_MIN_REFRESH,
        }
    }

    /// Where the keys come from.
    #[must_use]
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// The provider's whole metadata (token, authorization, end-session, introspection
    /// endpoints, …), once discovery has run: `None` with a JWKS URL, or before the first
    /// fetch. A failed refresh keeps the last good metadata by the keys' rule: usable for
    /// at most `max_stale` after the last successful fetch (the next fetch discovers
    /// again).
    #[must_use]
    pub fn provider_metadata(&self) -> Option<Arc<ProviderMetadata>> {
        self.metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|discovered| discovered.confirmed_at.elapsed() <= self.max_stale)
            .map(|discovered| Arc::clone(&discovered.metadata))
    }

    /// The current key set, if one is usable (fetched, and not older than `max_stale`).
    #[must_use]
    pub fn snapshot(&self) -> Option<Arc<KeySet>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .filter(|current| current.fetched_at.elapsed() <= self.max_stale)
            .map(|current| Arc::clone(&current.keys))
    }

    /// Whether a usable key set is loaded (for health endpoints).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.snapshot().is_some()
    }

    /// How many refreshes were attempted (each is one JWKS request, plus up to two
    /// discovery requests when the `jwks_uri` is not known yet).
    #[must_use]
    pub fn fetch_count(&self) -> u64 {
        self.fetch_count.load(Ordering::Relaxed)
    }

    /// Bumped every time a fetched set differs from the one before.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Calls `listener` (after the new set is installed) whenever the set changes.
    pub(crate) fn on_change(&self, listener: Listener) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Starts the first fetch and the refresh timer on the current tokio runtime, without
    /// waiting for them. Returns false (and does nothing) outside a tokio runtime; calling
    /// it again is a no-op while the timer runs. The timer task holds only a weak reference,
    /// so it stops when the cache is dropped; if its runtime shuts down, the next request
    /// starts a new one. The runtime needs its time driver enabled.
    pub fn load_in_background(self: &Arc<Self>) -> bool {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.background.swap(true, Ordering::AcqRel) {
            return true;
        }
        let weak = Arc::downgrade(self);
        let stopped = TimerStopped(weak.clone());
        handle.spawn(async move {
            // Dropped with the task (the runtime shut down): lets the next request start a
            // new timer on its own runtime.
            let _stopped = stopped;
            loop {
                let delay = {
                    let Some(cache) = weak.upgrade() else {
                        break;
                    };
                    cache.refresh_if_due().await
                };
                tokio::time::sleep(delay).await;
            }
        });
        true
    }

    /// The current set for a request: starts background loading if it has not started
    /// (lazily, on the first request), and starts a refresh without waiting if the set is
    /// due for one.
    pub(crate) fn snapshot_for_request(self: &Arc<Self>) -> Option<Arc<KeySet>> {
        if !self.background.load(Ordering::Acquire) {
            self.load_in_background();
        }
        let due = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            current
                .as_ref()
                .is_some_and(|current| Instant::now() >= current.next_due)
        };
        if due && self.cooldown_passed() && !self.due_refresh_spawned.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let cache = Arc::clone(self);
                    handle.spawn(async move {
                        cache.refresh_if_due().await;
                        cache.due_refresh_spawned.store(false, Ordering::Release);
                    });
                }
                Err(_) => self.due_refresh_spawned.store(false, Ordering::Release),
            }
        }
        self.snapshot()
    }

    /// Refetches the set because a token names a `kid` it does not hold (or because no
    /// set is usable): at most once per cooldown, single-flight. Callers arriving while a
    /// fetch is in flight wait for it and do not fetch again.
    pub async fn refresh_for_unknown_kid(&self) {
        let _guard = self.fetch_guard.lock().await;
        if self.cooldown_passed() {
            let _ = self.fetch_locked().await;
        }
    }

    /// Refetches the set now, ignoring the cooldown (still single-flight).
    ///
    /// # Errors
    ///
    /// Why the fetch failed; the last good set is kept.
    pub async fn refresh_now(&self) -> Result<(), RemoteError> {
        let _guard = self.fetch_guard.lock().await;
        self.fetch_locked().await
    }

    /// The timer's step: refetches if the set is missing or due (and the cooldown has
    /// passed), and says how long to sleep before the next step.
    async fn refresh_if_due(&self) -> Duration {
        let _guard = self.fetch_guard.lock().await;
        let due = |cache: &Self| {
            let current = cache.current.read().unwrap_or_else(PoisonError::into_inner);
            current
                .as_ref()
                .is_none_or(|current| Instant::now() >= current.next_due)
        };
        if due(self) && self.cooldown_passed() {
            let _ = self.fetch_locked().await;
        }
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match current.as_ref() {
            Some(current) if current.next_due > now => current.next_due - now,
            _ => self.cooldown,
        }
    }

    fn cooldown_passed(&self) -> bool {
        let last = self
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.is_none_or(|at| at.elapsed() >= self.cooldown)
    }

    /// One fetch; the caller holds the fetch guard.
    async fn fetch_locked(&self) -> Result<(), RemoteError> {
        *self
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.fetch_count.fetch_add(1, Ordering::Relaxed);
        let fetched = tokio::time::timeout(FETCH_BACKSTOP, self.fetch_set())
            .await
            .unwrap_or(Err(RemoteError::Timeout));
        match fetched {
            Ok((keys, digest, max_age)) => {
                crate::observe::count("portcullis.jwks.fetches", "outcome", "ok");
                if let Some(discovered) = self
                    .metadata
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    discovered.confirmed_at = Instant::now();
                }
                self.install(keys, digest, max_age);
                Ok(())
            }
            Err(error) => {
                crate::observe::count("portcullis.jwks.fetches", "outcome", "failed");
                // The last good metadata stays usable (within `max_stale`), but the next
                // fetch discovers again: the provider may have moved its keys.
                if let Some(discovered) = self
                    .metadata
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    discovered.rediscover = true;
                }
                tracing::warn!(
                    target: "portcullis::remote",
                    source = ?self.source,
                    %error,
                    usable = self.is_ready(),
                    "JWKS refresh failed; keeping the last good key set"
                );
                Err(error)
            }
        }
    }

    async fn fetch_set(&self) -> Result<(KeySet, [u8; 32], Option<Duration>), RemoteError> {
        let url = self.jwks_url().await?;
        let response = self.client.get(&url, ACCEPT_JWKS).await?;
        let body = checked_body(&response, ACCEPT_JWKS)?;
        let (keys, skipped) = KeySet::from_jwks(body).map_err(RemoteError::KeySet)?;
        for key in &skipped {
            tracing::warn!(
                target: "portcullis::remote",
                url = %short(&url),
                skipped = %key,
                "JWKS key skipped"
            );
        }
        Ok((
            keys,
            Sha256::digest(body).into(),
            response.cache_control_max_age,
        ))
    }

    fn install(&self, keys: KeySet, digest: [u8; 32], max_age: Option<Duration>) {
        let now = Instant::now();
        let refresh = max_age
            .unwrap_or(DEFAULT_REFRESH)
            .max(self.min_refresh)
            .min(MAX_REFRESH);
        let changed = {
            let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
            let changed = current
                .as_ref()
                .is_none_or(|current| current.digest != digest);
            *current = Some(Current {
                keys: Arc::new(keys),
                fetched_at: now,
                next_due: now.checked_add(refresh).unwrap_or(now),
                digest,
            });
            changed
        };
        if changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
            let listeners = self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for listener in listeners.iter() {
                listener();
            }
        }
    }

    async fn jwks_url(&self) -> Result<String, RemoteError> {
        let issuer = match &self.source {
            JwksSource::Url(url) => return Ok(url.clone()),
            JwksSource::Discover(issuer) => issuer,
        };
        if let Some(discovered) = self
            .metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|discovered| !discovered.rediscover)
        {
            return Ok(discovered.metadata.jwks_uri.clone());
        }
        let metadata = ProviderMetadata::discover(&*self.client, issuer, self.allow_http).await?;
        let jwks_uri = metadata.jwks_uri.clone();
        *self.metadata.lock().unwrap_or_else(PoisonError::into_inner) = Some(Discovered {
            metadata: Arc::new(metadata),
            confirmed_at: Instant::now(),
            rediscover: false,
        });
        Ok(jwks_uri)
    }
}

/// Discovered provider metadata, and when it last led to a good key set.
struct Discovered {
    metadata: Arc<ProviderMetadata>,
    confirmed_at: Instant,
    /// A fetch failed since: discover again before the next one.
    rediscover: bool,
}

/// The body of a 2xx answer with an accepted content type.
fn checked_body<'a>(response: &'a HttpResponse, accept: &[&str]) -> Result<&'a [u8], RemoteError> {
    if !(200..300).contains(&response.status) {
        return Err(RemoteError::Status {
            status: response.status,
        });
    }
    if !content_type_accepted(response.content_type.as_deref(), accept) {
        return Err(RemoteError::ContentType {
            content_type: response.content_type.as_deref().map(short),
        });
    }
    Ok(&response.body)
}

/// Configures a [`JwksCache`]; see [`JwksCache::builder`]. Every setting documents its
/// default.
#[must_use]
pub struct JwksCacheBuilder {
    source: JwksSource,
    client: Option<Arc<dyn HttpClient>>,
    allow_http: bool,
    cooldown: Duration,
    max_stale: Duration,
    min_refresh: Duration,
}

impl fmt::Debug for JwksCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCacheBuilder")
            .field("source", &self.source)
            .field("custom_client", &self.client.is_some())
            .field("allow_http", &self.allow_http)
            .field("cooldown", &self.cooldown)
            .field("max_stale", &self.max_stale)
            .field("min_refresh", &self.min_refresh)
            .finish()
    }
}

impl JwksCacheBuilder {
    /// Fetches through `client`. Defaults to a [`ReqwestClient`] with its defaults.
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.client = Some(client);
        self
    }

    /// Accepts plain `http` URLs to any host. Defaults to false: `https` is required except
    /// for loopback hosts (127.0.0.0/8, `::1`, `localhost`).
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Refetches because of an unknown `kid` at most once per `cooldown`. Defaults to 30 s.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Keeps using the last good set for at most `max_stale` after its fetch when refreshes
    /// fail. Defaults to 24 h; at most 7 days (a key the provider withdrew must not stay
    /// trusted without bound).
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Refreshes on the timer no more often than every `min_refresh`, whatever `max-age`
    /// says. Defaults to 60 s; at most 24 h.
    pub fn min_refresh(mut self, min_refresh: Duration) -> Self {
        self.min_refresh = min_refresh;
        self
    }

    /// Checks the settings and makes the cache (empty; nothing is fetched yet).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for a URL breaking the URL rule,
    /// [`ConfigError::InvalidLimit`] for a zero duration or a minimum refresh over
    /// 24 h, [`ConfigError::HttpClient`] if the default client cannot be built.
    pub fn build(self) -> Result<Arc<JwksCache>, ConfigError> {
        match &self.source {
            JwksSource::Url(url) => {
                check_url(url, self.allow_http).map_err(RemoteError::into_config_error)?;
            }
            JwksSource::Discover(issuer) => {
                let url = format!("{}{}", issuer.trim_end_matches('/'), DISCOVERY_PATHS[0]);
                check_url(&url, self.allow_http).map_err(RemoteError::into_config_error)?;
            }
        }
        for (setting, value) in [
            ("jwks_cooldown", self.cooldown),
            ("max_stale", self.max_stale),
            ("jwks_min_refresh", self.min_refresh),
        ] {
            if value.is_zero() {
                return Err(ConfigError::InvalidLimit { setting });
            }
        }
        if self.max_stale > MAX_STALE {
            return Err(ConfigError::LimitTooLarge {
                setting: "max_stale",
                max: MAX_STALE.as_secs(),
            });
        }
        if self.min_refresh > MAX_REFRESH {
            return Err(ConfigError::InvalidLimit {
                setting: "jwks_min_refresh",
            });
        }
        let client: Arc<dyn HttpClient> = match self.client {
            Some(client) => client,
            None => Arc::new(ReqwestClient::new().map_err(RemoteError::into_config_error)?),
        };
        Ok(Arc::new(JwksCache {
            source: self.source,
            allow_http: self.allow_http,
            client,
            current: RwLock::new(None),
            fetch_guard: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
            metadata: Mutex::new(None),
            cooldown: self.cooldown,
            max_stale: self.max_stale,
            min_refresh: self.min_refresh,
            fetch_count: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            background: AtomicBool::new(false),
            due_refresh_spawned: AtomicBool::new(false),
            listeners: Mutex::new(Vec::new()),
        }))
    }
}
