//! [`Introspection`]: asks the authorization server about opaque tokens (RFC 7662), with a
//! bounded cache, one request per token at a time, and bounds on the calls anonymous
//! callers can cause.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{AuthMethod, Principal};
use quick_cache::sync::Cache;
use serde_json::{Map, Value};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use super::cache::{TokenCache, TokenDigest};
use super::load::{CallBudget, LoadWarning, Overload};
use crate::error::ConfigError;
use crate::jwt::claims::{check_audience, push_words, roles_at, time};
use crate::jwt::token::Failure;
use crate::observe::RequestCounters;
use crate::remote::introspection::{ClientAuth, IntrospectionClient};
use crate::remote::{HttpClient, ReqwestClient, check_url};
use crate::secret::ClientSecret;

/// How long an active token's answer is kept by default (never past its `exp`).
const DEFAULT_MAX_CACHE: Duration = Duration::from_secs(5 * 60);
/// How long an inactive token's answer is kept by default.
const DEFAULT_NEGATIVE_CACHE: Duration = Duration::from_secs(5);
/// The clock skew forgiven on `exp` and `nbf` in an answer (as for JWTs by default).
const INTROSPECTION_LEEWAY: Duration = Duration::from_secs(60);
/// The longest one introspection call may hold a permit, whatever the HTTP client's own
/// timeout (the default client gives up after 5 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many answers are kept by default.
const DEFAULT_CAPACITY: usize = 10_000;
/// The most tokens being introspected at once that share their request; beyond that,
/// requests for new tokens are sent without sharing.
const MAX_IN_FLIGHT: usize = 4_096;
/// How many introspection calls may be in flight at once by default.
const DEFAULT_MAX_CONCURRENT: usize = 32;
/// The largest bound on concurrent calls that may be set.
const MAX_MAX_CONCURRENT: usize = MAX_IN_FLIGHT;
/// The default call budget: this many calls per [`DEFAULT_BUDGET_PERIOD`], as a burst.
const DEFAULT_BUDGET_CALLS: u32 = 50;
/// The period of the default call budget.
const DEFAULT_BUDGET_PERIOD: Duration = Duration::from_secs(1);
/// The longest period a call budget may be spread over.
const MAX_BUDGET_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest token sent to the endpoint by default, in bytes.
const DEFAULT_MIN_TOKEN_BYTES: usize = 8;
/// The largest minimum token length that may be set, in bytes.
const MAX_MIN_TOKEN_BYTES: usize = 1024;
/// At most one warning about refusals under load per this interval.
const LOAD_WARNING_INTERVAL: Duration = Duration::from_secs(1);
/// The `Retry-After` for a token refused because every call permit is taken, in seconds.
const BUSY_RETRY_AFTER: u32 = 1;
/// The largest `Retry-After` for a token refused because the budget is spent, in seconds.
const MAX_BUDGET_RETRY_AFTER: u32 = 60;

/// Why a token is refused after introspection, or without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `active` is not `true`.
    Inactive,
    /// The answer is active but a member fails a check (expired, wrong audience, …).
    Claim(Failure),
    /// The token cannot be a token (too short, too long, characters outside RFC 6750's
    /// `b64token`): refused without a call.
    Shape(Failure),
}

/// The answer for one token.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The token is active and acceptable.
    Active(Principal),
    /// The token must be refused (401).
    Refused(Refusal),
    /// The endpoint could not give a usable answer (503); `reason` is logged.
    Unavailable(&'static str),
    /// The token was not sent because the calls are at their bound (503 with this
    /// `Retry-After`, in seconds); the refusals are logged by the [`Introspection`], at
    /// most once a second.
    Overloaded {
        /// Seconds until a call is likely to be allowed.
        retry_after: u32,
    },
}

/// What can be said about a token without a call.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The answer: a refusal for its shape, or a cached result.
    Done(Outcome),
    /// Not cached: [`Introspection::introspect`] with this digest.
    Uncached(TokenDigest),
}

/// Counts of what introspection has done since it was built, for metrics; see
/// [`Introspection::stats`].
///
/// Each count only grows (wrapping after 2^64). The fields may be read but new ones may be
/// added, so the type cannot be built outside this crate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntrospectionStats {
    /// Requests sent to the introspection endpoint.
    pub calls: u64,
    /// Tokens answered from the cache (active and inactive alike).
    pub cache_hits: u64,
    /// New tokens refused with 503 because
    /// [`max_concurrent`](IntrospectionBuilder::max_concurrent) calls were in flight.
    pub refused_busy: u64,
    /// New tokens refused with 503 because the
    /// [`call_budget`](IntrospectionBuilder::call_budget) was spent.
    pub refused_over_budget: u64,
    /// Tokens refused with 401 without a call because of their length or characters.
    pub refused_malformed: u64,
}

/// The live counters behind [`IntrospectionStats`].
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    cache_hits: AtomicU64,
    refused_busy: AtomicU64,
    refused_over_budget: AtomicU64,
    refused_malformed: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Introspects opaque bearer tokens at an authorization server (RFC 7662).
///
/// Built with [`Introspection::builder`] and given to
/// [`BearerAuthenticatorBuilder::introspection`](super::BearerAuthenticatorBuilder::introspection).
/// Answers are cached by the SHA-256 of the token (the cache holds no token): an active
/// token until its `exp` or [`max_cache`](IntrospectionBuilder::max_cache), whichever is
/// sooner; an inactive one for [`negative_cache`](IntrospectionBuilder::negative_cache).
/// Concurrent requests with the same uncached token share one introspection request.
/// When the endpoint is down, slow, or answers with something unusable, requests get 503
/// with `Retry-After` (never 401), while cached answers keep working.
///
/// # Bounds
///
/// Anyone can send a made-up token, so the calls anonymous callers can cause are bounded,
/// in this order:
///
/// 1. **Shape.** A token shorter than
///    [`min_token_bytes`](IntrospectionBuilder::min_token_bytes) (default 8), longer than
///    the authenticator's `max_token_bytes` (default 8 KiB), or not an RFC 6750
///    `b64token` (`A-Z a-z 0-9 - . _ ~ + /`, then only `=`) is refused with 401
///    `invalid_token` without a call.
/// 2. **Cache.** A cached answer, active or inactive, is used whatever the load.
/// 3. **Concurrency.** At most [`max_concurrent`](IntrospectionBuilder::max_concurrent)
///    calls (default 32) are in flight; a request for another new token gets 503 with
///    `Retry-After: 1` at once, never waiting. A request for a token already being
///    introspected waits for that call and needs no permit.
/// 4. **Budget.** At most [`call_budget`](IntrospectionBuilder::call_budget) calls
///    (default 50 per second, as a burst of 50) are made; beyond it new tokens get 503 with
///    `Retry-After` (the seconds until the budget allows a call) at once.
///
/// [`stats`](Self::stats) counts calls, cache hits and refusals; while tokens are refused
/// for load, a warning with the counts goes to `tracing` (target `portcullis::bearer`) at
/// most once a second.
///
/// # Subject
///
/// The principal's subject is `sub`, or `client_id` when the answer has no `sub`: RFC 7662
/// makes `sub` optional (JWT access tokens, by contrast, must have `sub`).
///
/// Cloning is a reference-count increment. `Debug` never shows the client secret.
#[derive(Clone)]
pub struct Introspection {
    inner: Arc<Inner>,
}

struct Inner {
    exchange: IntrospectionClient,
    issuer: Option<String>,
    audiences: Vec<String>,
    roles_claim: Option<Vec<String>>,
    max_cache: Duration,
    negative_cache: Duration,
    /// Answers and until when they hold, on tokio's clock (so tests can pause it).
    cache: Cache<TokenDigest, (Result<Principal, Refusal>, Instant)>,
    in_flight: Mutex<HashMap<TokenDigest, Arc<OnceCell<Outcome>>>>,
    min_token_bytes: usize,
    max_concurrent: usize,
    permits: Semaphore,
    budget: CallBudget,
    budget_settings: (u32, Duration),
    load_warning: LoadWarning,
    counters: Counters,
    /// The cache lookups, through the `metrics` facade.
    lookups: RequestCounters,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Introspection")
            .field("exchange", &inner.exchange)
            .field("issuer", &inner.issuer)
            .field("audiences", &inner.audiences)
            .field("roles_claim", &inner.roles_claim)
            .field("max_cache", &inner.max_cache)
            .field("negative_cache", &inner.negative_cache)
            .field("min_token_bytes", &inner.min_token_bytes)
            .field("max_concurrent", &inner.max_concurrent)
            .field("call_budget", &inner.budget_settings)
            .field("cached", &inner.cache.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Introspection {
    /// Configures introspection at `url` (the authorization server's
    /// `introspection_endpoint`) as client `client_id` with `client_secret`.
    pub fn builder(
        url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> IntrospectionBuilder {
        IntrospectionBuilder {
            url: url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            auth: ClientAuth::Basic,
            issuer: None,
            audiences: Vec::new(),
            roles_claim: None,
            max_cache: DEFAULT_MAX_CACHE,
            negative_cache: DEFAULT_NEGATIVE_CACHE,
            cache_capacity: DEFAULT_CAPACITY,
            http_client: None,
            allow_http: false,
            min_token_bytes: DEFAULT_MIN_TOKEN_BYTES,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            call_budget: (DEFAULT_BUDGET_CALLS, DEFAULT_BUDGET_PERIOD),
            skip_audience: false,
        }
    }

    /// The introspection endpoint.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.inner.exchange.url
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// What introspection has done so far: calls made, cache hits, and tokens refused
    /// without a call (busy, over budget, malformed). Reading is a few relaxed atomic
    /// loads; export them to your metrics system as counters.
    #[must_use]
    pub fn stats(&self) -> IntrospectionStats {
        let counters = &self.inner.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        IntrospectionStats {
            calls: read(&counters.calls),
            cache_hits: read(&counters.cache_hits),
            refused_busy: read(&counters.refused_busy),
            refused_over_budget: read(&counters.refused_over_budget),
            refused_malformed: read(&counters.refused_malformed),
        }
    }

    /// What can be said about `token` without a call: refused for its shape (no longer
    /// than `max_bytes`), or answered from the cache.
    pub(crate) fn lookup(&self, token: &str, max_bytes: usize) -> Lookup {
        if let Err(failure) = self.check_shape(token, max_bytes) {
            Counters::add(&self.inner.counters.refused_malformed);
            return Lookup::Done(Outcome::Refused(Refusal::Shape(failure)));
        }
        let digest = TokenCache::digest(token);
        let now = Instant::now();
        let found = self.cached(&digest, now);
        // One lookup a request: the check again after waiting for another request's call
        // (`introspect`) is not counted.
        self.inner.lookups.count(
            self.inner.lookups.second_of(now.into_std()),
            "portcullis.introspection.cache",
            "result",
            if found.is_some() { "hit" } else { "miss" },
        );
        match found {
            Some(outcome) => Lookup::Done(outcome),
            None => Lookup::Uncached(digest),
        }
    }

    /// Whether `token` may be sent at all: within the length bounds, and an RFC 6750
    /// `b64token` (`1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`).
    fn check_shape(&self, token: &str, max_bytes: usize) -> Result<(), Failure> {
        if token.len() > max_bytes {
            return Err(Failure::TooLarge);
        }
        if token.len() < self.inner.min_token_bytes {
            return Err(Failure::TooShort);
        }
        let body = token.trim_end_matches('=');
        let body_ok = !body.is_empty()
            && body.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
            });
        if body_ok {
            Ok(())
        } else {
            Err(Failure::Malformed)
        }
    }

    /// The cached answer for `digest`, if it still holds at `now`.
    pub(crate) fn cached(&self, digest: &TokenDigest, now: Instant) -> Option<Outcome> {
        let (result, deadline) = self.inner.cache.get(digest)?;
        if now >= deadline {
            self.inner.cache.remove(digest);
            return None;
        }
        Counters::add(&self.inner.counters.cache_hits);
        Some(match result {
            Ok(principal) => Outcome::Active(principal),
            Err(refusal) => Outcome::Refused(refusal),
        })
    }

    /// The endpoint's answer for `token`, whose [`lookup`](Self::lookup) found nothing:
    /// one call per token at a time, within the bounds, or a refusal at once.
    pub(crate) async fn introspect(&self, token: &str, digest: TokenDigest) -> Outcome {
        let Some(cell) = self.join(digest) else {
            return self.call(token, digest).await;
        };
        let guard = InFlight {
            owner: self,
            digest,
            cell,
        };
        guard
            .cell
            .get_or_init(|| async {
                // Another request may have finished while this one waited for the map.
                match self.cached(&digest, Instant::now()) {
                    Some(outcome) => outcome,
                    None => self.call(token, digest).await,
                }
            })
            .await
            .clone()
    }

    /// The shared cell for `digest`, or `None` when too many tokens are in flight.
    fn join(&self, digest: TokenDigest) -> Option<Arc<OnceCell<Outcome>>> {
        let mut map = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = map.get(&digest) {
            return Some(Arc::clone(cell));
        }
        if map.len() >= MAX_IN_FLIGHT {
            return None;
        }
        let cell = Arc::new(OnceCell::new());
        map.insert(digest, Arc::clone(&cell));
        Some(cell)
    }

    /// Sends one introspection request if a permit and the budget allow it now; else
    /// refuses at once. The permit is held until the answer is in.
    async fn call(&self, token: &str, digest: TokenDigest) -> Outcome {
        let inner = &*self.inner;
        let Ok(_permit) = inner.permits.try_acquire() else {
            return self.overloaded(Overload::Busy, BUSY_RETRY_AFTER);
        };
        if let Err(wait) = inner.budget.try_take(Instant::now()) {
            let seconds = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0));
            let retry_after = u32::try_from(seconds)
                .unwrap_or(MAX_BUDGET_RETRY_AFTER)
                .clamp(1, MAX_BUDGET_RETRY_AFTER);
            return self.overloaded(Overload::OverBudget, retry_after);
        }
        Counters::add(&inner.counters.calls);
        crate::observe::count("portcullis.introspection.calls", "outcome", "sent");
        // The permit is held for the call: bound it whatever the HTTP client does, so a
        // client without a timeout cannot hold every permit.
        match tokio::time::timeout(CALL_TIMEOUT, self.fetch(token, digest)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(
                    target: "portcullis::bearer",
                    timeout_s = CALL_TIMEOUT.as_secs(),
                    "token introspection did not answer in time"
                );
                Outcome::Unavailable("introspection_timeout")
            }
        }
    }

    /// Counts a refusal for load, warns when a warning is due, and answers 503.
    fn overloaded(&self, overload: Overload, retry_after: u32) -> Outcome {
        let inner = &*self.inner;
        let (counter, reason) = match overload {
            Overload::Busy => (&inner.counters.refused_busy, "introspection_busy"),
            Overload::OverBudget => (
                &inner.counters.refused_over_budget,
                "introspection_over_budget",
            ),
        };
        Counters::add(counter);
        crate::observe::count("portcullis.introspection.calls", "outcome", reason);
        if let Some(refused) = inner.load_warning.note(overload, Instant::now()) {
            tracing::warn!(
                target: "portcullis::bearer",
                reason,
                refused_busy = refused.busy,
                refused_over_budget = refused.over_budget,
                max_concurrent = inner.max_concurrent,
                "token introspection refusing new tokens under load \
                 (counts since the last such warning)"
            );
        }
        Outcome::Overloaded { retry_after }
    }

    /// Sends one introspection request and caches a definite answer.
    async fn fetch(&self, token: &str, digest: TokenDigest) -> Outcome {
        let inner = &*self.inner;
        let answer = match inner.exchange.ask(token).await {
            Ok(answer) => answer,
            Err(unanswered) => {
                tracing::warn!(
                    target: "portcullis::bearer",
                    error = %unanswered,
                    "token introspection gave no usable answer"
                );
                return Outcome::Unavailable(unanswered.cause());
            }
        };
        // Claims are judged on the wall clock (`exp` is wall-clock time); how long the
        // answer is kept is counted on tokio's clock.
        let now = SystemTime::now();
        let (result, keep) = match self.judge(answer, now) {
            Ok((principal, until)) => {
                let left = until.duration_since(now).unwrap_or_default();
                (Ok(principal), left.min(inner.max_cache))
            }
            Err(refusal) => (Err(refusal), inner.negative_cache),
        };
        if !keep.is_zero() {
            inner
                .cache
                .insert(digest, (result.clone(), Instant::now() + keep));
        }
        match result {
            Ok(principal) => Outcome::Active(principal),
            Err(refusal) => Outcome::Refused(refusal),
        }
    }

    /// Checks an introspection answer; an active one gives the principal and the time it
    /// stops being acceptable.
    fn judge(
        &self,
        answer: Map<String, Value>,
        now: SystemTime,
    ) -> Result<(Principal, SystemTime), Refusal> {
        let inner = &*self.inner;
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(Refusal::Inactive);
        }
        let claim = Refusal::Claim;
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let leeway = INTROSPECTION_LEEWAY.as_secs_f64();
        let mut until = now + inner.max_cache;
        if let Some(exp) = time(&answer, "exp").map_err(claim)? {
            if seconds > exp + leeway {
                return Err(claim(Failure::Expired));
            }
            // Believed no longer than `exp` itself (the leeway only forgives clock skew).
            let exp = UNIX_EPOCH + Duration::try_from_secs_f64(exp).unwrap_or_default();
            until = until.min(exp);
        }
        if let Some(nbf) = time(&answer, "nbf").map_err(claim)?
            && seconds + leeway < nbf
        {
            return Err(claim(Failure::NbfFuture));
        }
        let issuer = match (answer.get("iss"), &inner.issuer) {
            (None, _) => None,
            (Some(Value::String(iss)), Some(expected)) if iss != expected => {
                return Err(claim(Failure::IssMismatch));
            }
            (Some(Value::String(iss)), _) => Some(iss.clone()),
            (Some(_), _) => return Err(claim(Failure::ClaimType)),
        };
        if !inner.audiences.is_empty() {
            check_audience(&inner.audiences, answer.get("aud")).map_err(claim)?;
        } else if answer
            .get("aud")
            .is_some_and(|aud| !(aud.is_string() || is_string_array(aud)))
        {
            return Err(claim(Failure::ClaimType));
        }
        let subject = match (answer.get("sub"), answer.get("client_id")) {
            (Some(Value::String(sub)), Some(Value::String(_)) | None) => sub.clone(),
            (None, Some(Value::String(client))) => client.clone(),
            (None, None) => return Err(claim(Failure::MissingClaim)),
            _ => return Err(claim(Failure::ClaimType)),
        };
        let mut scopes = Vec::new();
        match answer.get("scope") {
            None => {}
            Some(Value::String(scope)) => push_words(scope, &mut scopes),
            Some(_) => return Err(claim(Failure::ClaimType)),
        }
        let roles = roles_at(&answer, inner.roles_claim.as_deref()).map_err(claim)?;
        let mut principal = Principal::builder(subject, AuthMethod::Bearer)
            .scopes(scopes)
            .roles(roles);
        if let Some(issuer) = issuer {
            principal = principal.issuer(issuer);
        }
        Ok((principal.claims(answer).build(), until))
    }
}

/// Leaves the in-flight map when its request is done (or every waiter has given up).
struct InFlight<'a> {
    owner: &'a Introspection,
    digest: TokenDigest,
    cell: Arc<OnceCell<Outcome>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .owner
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ours = map
            .get(&self.digest)
            .is_some_and(|cell| Arc::ptr_eq(cell, &self.cell));
        // Done, or nobody else is waiting on this entry (the map and this guard hold it).
        if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) <= 2) {
            map.remove(&self.digest);
        }
    }
}

fn is_string_array(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.iter().all(Value::is_string))
}

/// Builds an [`Introspection`]; see [`Introspection::builder`]. Every setting documents
/// its default.
#[must_use]
pub struct IntrospectionBuilder {
    url: String,
    client_id: String,
    client_secret: ClientSecret,
    auth: ClientAuth,
    issuer: Option<String>,
    audiences: Vec<String>,
    roles_claim: Option<String>,
    max_cache: Duration,
    negative_cache: Duration,
    cache_capacity: usize,
    http_client: Option<Arc<dyn HttpClient>>,
    allow_http: bool,
    min_token_bytes: usize,
    max_concurrent: usize,
    call_budget: (u32, Duration),
    skip_audience: bool,
}

impl fmt::Debug for IntrospectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionBuilder")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("auth", &self.auth)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("roles_claim", &self.roles_claim)
            .field("max_cache", &self.max_cache)
            .field("negative_cache", &self.negative_cache)
            .field("cache_capacity", &self.cache_capacity)
            .field("custom_http_client", &self.http_client.is_some())
            .field("allow_http", &self.allow_http)
            .field("min_token_bytes", &self.min_token_bytes)
            .field("max_concurrent", &self.max_concurrent)
            .field("call_budget", &self.call_budget)
            .finish()
    }
}

impl IntrospectionBuilder {
    /// Sends the client id and secret in the form body (`client_secret_post`). Defaults
    /// to `Authorization: Basic` (`client_secret_basic`).
    pub fn client_secret_post(mut self) -> Self {
        self.auth = ClientAuth::Post;
        self
    }

    /// Requires `iss`, when the answer has one, to be `issuer`; it becomes the
    /// principal's issuer. Defaults to accepting any `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Accepts tokens for `audience`; call again for more: `aud` (a string or an array of
    /// strings) must be present and name one of them. At least one is required, unless
    /// [`insecure_skip_audience`](Self::insecure_skip_audience).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// **Insecure**: accepts active tokens whatever their `aud`, so a token the server
    /// issued for another API is good here too. Only for an authorization server that
    /// issues tokens for this API alone and never includes `aud`. Defaults to off: an
    /// audience is required.
    pub fn insecure_skip_audience(mut self) -> Self {
        self.skip_audience = true;
        self
    }

    /// Reads roles from this member of the answer (a dot-separated path such as
    /// `realm_access.roles`; a string or an array of strings). Defaults to no roles.
    pub fn roles_claim(mut self, path: impl Into<String>) -> Self {
        self.roles_claim = Some(path.into());
        self
    }

    /// Keeps an active token's answer at most this long (never past its `exp`). Zero
    /// asks the endpoint every time. Defaults to 5 minutes.
    pub fn max_cache(mut self, max: Duration) -> Self {
        self.max_cache = max;
        self
    }

    /// Keeps an inactive token's answer this long. Zero asks the endpoint every time.
    /// Defaults to 5 seconds.
    pub fn negative_cache(mut self, duration: Duration) -> Self {
        self.negative_cache = duration;
        self
    }

    /// Keeps at most `entries` answers. Defaults to 10,000.
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// Refuses tokens shorter than `bytes` with 401 `invalid_token`, without a call.
    /// Defaults to 8 bytes (no provider issues shorter tokens, and short ones are cheap
    /// to guess); from 1 to 1024.
    pub fn min_token_bytes(mut self, bytes: usize) -> Self {
        self.min_token_bytes = bytes;
        self
    }

    /// Makes at most `calls` introspection calls at once; a request for another new
    /// token then gets 503 with `Retry-After: 1` at once instead of waiting (requests for
    /// a token already being introspected share its call). Defaults to 32; from 1 to 4096.
    pub fn max_concurrent(mut self, calls: usize) -> Self {
        self.max_concurrent = calls;
        self
    }

    /// Makes at most `calls` introspection calls per `per`, as a token bucket: a burst of
    /// `calls`, then one every `per / calls`. Beyond it, new tokens get 503 with
    /// `Retry-After` at once; cached answers keep working. Defaults to 50 calls per second.
    /// `calls` must be at least 1 and `per` between one nanosecond per call and 24 hours.
    pub fn call_budget(mut self, calls: u32, per: Duration) -> Self {
        self.call_budget = (calls, per);
        self
    }

    /// Sends requests with `client` instead of a default [`ReqwestClient`] (5 s timeout,
    /// 1 MiB cap).
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Allows a plain `http` URL to any host. Defaults to `https`, or `http` only to a
    /// loopback host.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Checks the settings and finishes the introspection client.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for a URL that breaks the URL rule;
    /// [`ConfigError::MissingIntrospectionClient`] for an empty client id;
    /// [`ConfigError::InvalidLimit`] for a zero cache capacity, minimum token length,
    /// concurrency bound or call budget; [`ConfigError::LimitTooLarge`] for a
    /// minimum token length over 1024, a concurrency bound over 4096 or a budget period
    /// over 24 hours;
    /// [`ConfigError::InvalidClaimPath`] for a bad roles path;
    /// [`ConfigError::HttpClient`] if the default client cannot be built — each inside
    /// the [`ConfigError`](crate::ConfigError) variant that says what is wrong.
    pub fn build(self) -> Result<Introspection, crate::ConfigError> {
        check_url(&self.url, self.allow_http).map_err(|error| error.into_config_error())?;
        if self.client_id.is_empty() {
            return Err(ConfigError::MissingIntrospectionClient);
        }
        if self.audiences.is_empty() && !self.skip_audience {
            return Err(ConfigError::MissingAudience {
                issuer: self.issuer.clone().unwrap_or_else(|| self.url.clone()),
            });
        }
        if self.cache_capacity == 0 {
            return Err(ConfigError::InvalidLimit {
                setting: "cache_capacity",
            });
        }
        let limits = [
            ("min_token_bytes", self.min_token_bytes, MAX_MIN_TOKEN_BYTES),
            ("max_concurrent", self.max_concurrent, MAX_MAX_CONCURRENT),
        ];
        for (setting, value, max) in limits {
            if value == 0 {
                return Err(ConfigError::InvalidLimit { setting });
            }
            if value > max {
                return Err(ConfigError::LimitTooLarge {
                    setting,
                    max: max as u64,
                });
            }
        }
        let (calls, per) = self.call_budget;
        if per > MAX_BUDGET_PERIOD {
            return Err(ConfigError::LimitTooLarge {
                setting: "call_budget",
                max: MAX_BUDGET_PERIOD.as_secs(),
            });
        }
        let budget = CallBudget::new(calls, per).ok_or(ConfigError::InvalidLimit {
            setting: "call_budget",
        })?;
        let roles_claim = match self.roles_claim {
            None => None,
            Some(path) => {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(ConfigError::InvalidClaimPath { path });
                }
                Some(segments)
            }
        };
        let client: Arc<dyn HttpClient> = match self.http_client {
            Some(client) => client,
            None => Arc::new(
                ReqwestClient::new().map_err(|error| ConfigError::HttpClient {
                    reason: error.to_string(),
                })?,
            ),
        };
        Ok(Introspection {
            inner: Arc::new(Inner {
                exchange: IntrospectionClient {
                    url: self.url,
                    client_id: self.client_id,
                    client_secret: self.client_secret,
                    auth: self.auth,
                    http: client,
                },
                issuer: self.issuer,
                audiences: self.audiences,
                roles_claim,
                max_cache: self.max_cache,
                negative_cache: self.negative_cache,
                cache: Cache::new(self.cache_capacity),
                in_flight: Mutex::new(HashMap::new()),
                min_token_bytes: self.min_token_bytes,
                max_concurrent: self.max_concurrent,
                permits: Semaphore::new(self.max_concurrent),
                budget,
                budget_settings: self.call_budget,
                load_warning: LoadWarning::new(LOAD_WARNING_INTERVAL),
                counters: Counters::default(),
                lookups: RequestCounters::default(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn introspection() -> Introspection {
        Introspection::builder("http://127.0.0.1:1/introspect", "id", "s3cret")
            .issuer("https://idp.example")
            .audience("api")
            .roles_claim("realm_access.roles")
            .build()
            .expect("valid settings")
    }

    fn judge(answer: Value) -> Result<Principal, Refusal> {
        let Value::Object(answer) = answer else {
            return Err(Refusal::Inactive);
        };
        introspection()
            .judge(answer, SystemTime::now())
            .map(|(principal, _)| principal)
    }

    #[test]
    fn secret_is_redacted() {
        let text = format!("{:?}", introspection());
        assert!(!text.contains("s3cret"), "{text}");
        let builder = Introspection::builder("https://idp.example/i", "id", "s3cret");
        assert!(!format!("{builder:?}").contains("s3cret"));
    }

    #[test]
    fn only_boolean_true_is_active() {
        for active in [
            serde_json::json!("true"),
            serde_json::json!(1),
            serde_json::json!(false),
            Value::Null,
        ] {
            assert_eq!(
                judge(serde_json::json!({"active": active, "sub": "a", "aud": "api"})),
                Err(Refusal::Inactive)
            );
        }
        assert_eq!(
            judge(serde_json::json!({"sub": "a", "aud": "api"})),
            Err(Refusal::Inactive)
        );
    }

    #[test]
    fn members_are_checked() {
        let principal = judge(serde_json::json!({
            "active": true, "client_id": "c", "aud": ["x", "api"],
            "iss": "https://idp.example", "scope": "a b",
            "realm_access": {"roles": ["admin"]}, "exp": 4_000_000_000_u64
        }))
        .expect("active");
        assert_eq!(principal.subject(), "c");
        assert_eq!(principal.issuer(), Some("https://idp.example"));
        assert!(principal.has_scope("a") && principal.has_scope("b"));
        assert!(principal.has_role("admin"));

        let refused = |answer| judge(answer).err();
        let claim = |failure| Some(Refusal::Claim(failure));
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "other"})),
            claim(Failure::AudMismatch)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a"})),
            claim(Failure::MissingClaim)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "api", "exp": "9"})),
            claim(Failure::ClaimType)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "api", "exp": 1})),
            claim(Failure::Expired)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "api", "iss": "x"})),
            claim(Failure::IssMismatch)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": 5, "aud": "api"})),
            claim(Failure::ClaimType)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "api", "scope": []})),
            claim(Failure::ClaimType)
        );
    }

    /// An endpoint in the process: answers `active` for tokens starting with `good`, else
    /// inactive; optionally holds every answer until released; counts calls and the peak
    /// number in flight.
    struct FakeEndpoint {
        hold: std::sync::atomic::AtomicBool,
        gate: Semaphore,
        calls: AtomicU64,
        in_flight: AtomicU64,
        peak: AtomicU64,
    }

    impl Default for FakeEndpoint {
        fn default() -> Self {
            Self {
                hold: std::sync::atomic::AtomicBool::new(false),
                gate: Semaphore::new(0),
                calls: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
                peak: AtomicU64::new(0),
            }
        }
    }

    impl HttpClient for FakeEndpoint {
        fn get(&self, _: &str, _: &[&str]) -> crate::remote::HttpFuture<'_> {
            Box::pin(async { Err(crate::remote::RemoteError::Timeout) })
        }

        fn post_form(
            &self,
            _: &str,
            form: &[(&str, &str)],
            _: Option<(&str, &str)>,
            _: &[&str],
        ) -> crate::remote::HttpFuture<'_> {
            let active = form
                .iter()
                .any(|(name, value)| *name == "token" && value.starts_with("good"));
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(now, Ordering::SeqCst);
                if self.hold.load(Ordering::SeqCst) {
                    let _ = self.gate.acquire().await.map(|permit| permit.forget());
                }
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                let body: &'static [u8] = if active {
                    br#"{"active":true,"sub":"alice","aud":"api","exp":4102444800}"#
                } else {
                    br#"{"active":false}"#
                };
                Ok(crate::remote::HttpResponse::new(
                    200,
                    Some("application/json"),
                    bytes::Bytes::from_static(body),
                ))
            })
        }
    }

    fn bounded(endpoint: &Arc<FakeEndpoint>) -> IntrospectionBuilder {
        Introspection::builder("https://idp.example/introspect", "id", "secret")
            .audience("api")
            .http_client(Arc::clone(endpoint) as Arc<dyn HttpClient>)
    }

    async fn answer(introspection: &Introspection, token: &str) -> Outcome {
        match introspection.lookup(token, 8 * 1024) {
            Lookup::Done(outcome) => outcome,
            Lookup::Uncached(digest) => introspection.introspect(token, digest).await,
        }
    }

    fn is_active(outcome: &Outcome) -> bool {
        matches!(outcome, Outcome::Active(_))
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_refuses_new_tokens_at_once_while_cached_ones_keep_working() {
        let endpoint = Arc::new(FakeEndpoint::default());
        let introspection = bounded(&endpoint)
            .call_budget(3, Duration::from_secs(1))
            .build()
            .expect("valid settings");

        assert!(is_active(&answer(&introspection, "good-token-1").await));
        for n in 0..2 {
            let outcome = answer(&introspection, &format!("random-token-{n}")).await;
            assert!(matches!(outcome, Outcome::Refused(Refusal::Inactive)));
        }
        // Spent: new tokens are refused at once, with a Retry-After.
        for n in 2..10 {
            let outcome = answer(&introspection, &format!("random-token-{n}")).await;
            assert!(
                matches!(outcome, Outcome::Overloaded { retry_after: 1 }),
                "{outcome:?}"
            );
        }
        // Cached answers, positive and negative, need no budget.
        assert!(is_active(&answer(&introspection, "good-token-1").await));
        let negative = answer(&introspection, "random-token-0").await;
        assert!(matches!(negative, Outcome::Refused(Refusal::Inactive)));
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 3);

        // A third of a second later, one more call is allowed.
        tokio::time::advance(Duration::from_millis(334)).await;
        assert!(is_active(&answer(&introspection, "good-token-2").await));
        assert!(matches!(
            answer(&introspection, "good-token-3").await,
            Outcome::Overloaded { .. }
        ));
        assert_eq!(
            introspection.stats(),
            IntrospectionStats {
                calls: 4,
                cache_hits: 2,
                refused_busy: 0,
                refused_over_budget: 9,
                refused_malformed: 0,
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_max_concurrent_new_tokens_are_refused_without_waiting() {
        let endpoint = Arc::new(FakeEndpoint::default());
        endpoint.hold.store(true, Ordering::SeqCst);
        let introspection = bounded(&endpoint)
            .max_concurrent(2)
            .build()
            .expect("valid settings");

        let held: Vec<_> = ["good-held-1", "good-held-2", "good-held-1"]
            .into_iter()
            .map(|token| {
                let introspection = introspection.clone();
                tokio::spawn(async move { answer(&introspection, token).await })
            })
            .collect();
        for _ in 0..100 {
            if endpoint.in_flight.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(endpoint.in_flight.load(Ordering::SeqCst), 2);

        // Both permits are taken: a new token is refused at once (this does not wait for
        // the held calls, which are only released below).
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            answer(&introspection, "good-new-token"),
        )
        .await
        .expect("refused without waiting for the held calls");
        assert!(
            matches!(outcome, Outcome::Overloaded { retry_after: 1 }),
            "{outcome:?}"
        );

        endpoint.gate.add_permits(2);
        for task in held {
            assert!(is_active(&task.await.expect("task")));
        }
        // The third request joined the call for its token: two calls, not three.
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 2);
        assert_eq!(endpoint.peak.load(Ordering::SeqCst), 2);
        assert_eq!(introspection.stats().refused_busy, 1);
        // Permits are back once the calls are done.
        endpoint.gate.add_permits(1);
        assert!(is_active(&answer(&introspection, "good-new-token").await));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_kept_within_their_age_bounds_on_tokio_s_clock() {
        let endpoint = Arc::new(FakeEndpoint::default());
        let introspection = bounded(&endpoint)
            .max_cache(Duration::from_millis(500))
            .negative_cache(Duration::from_millis(100))
            .build()
            .expect("valid settings");
        let calls = || endpoint.calls.load(Ordering::SeqCst);

        assert!(is_active(&answer(&introspection, "good-token-1").await));
        assert!(!is_active(&answer(&introspection, "bad-token-1").await));
        assert_eq!(calls(), 2);

        // Within both bounds: no call.
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(is_active(&answer(&introspection, "good-token-1").await));
        assert!(!is_active(&answer(&introspection, "bad-token-1").await));
        assert_eq!(calls(), 2);

        // Past the negative bound only: the refusal is asked again, the answer is not.
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!is_active(&answer(&introspection, "bad-token-1").await));
        assert!(is_active(&answer(&introspection, "good-token-1").await));
        assert_eq!(calls(), 3);

        // Past `max_cache`: asked again.
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(is_active(&answer(&introspection, "good-token-1").await));
        assert_eq!(calls(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_gives_its_permit_back() {
        let endpoint = Arc::new(FakeEndpoint::default());
        endpoint.hold.store(true, Ordering::SeqCst);
        let introspection = bounded(&endpoint)
            .max_concurrent(1)
            .build()
            .expect("valid settings");
        // The endpoint never answers (a client without a timeout): the call is bounded.
        let outcome = answer(&introspection, "good-hanging-1").await;
        assert!(
            matches!(outcome, Outcome::Unavailable("introspection_timeout")),
            "{outcome:?}"
        );
        // The one permit is back: the next new token is asked, not refused as busy.
        endpoint.hold.store(false, Ordering::SeqCst);
        assert!(is_active(&answer(&introspection, "good-token-after").await));
        assert_eq!(introspection.stats().refused_busy, 0);
    }

    #[tokio::test]
    async fn tokens_of_the_wrong_shape_are_refused_without_a_call() {
        let endpoint = Arc::new(FakeEndpoint::default());
        let introspection = bounded(&endpoint).build().expect("valid settings");
        for (token, failure) in [
            ("", Failure::TooShort),
            ("good-12", Failure::TooShort),
            ("good-token with space", Failure::Malformed),
            ("good-token=tail", Failure::Malformed),
            ("good-token\u{e9}", Failure::Malformed),
            ("good-token\t", Failure::Malformed),
            ("========", Failure::Malformed),
            ("good-token-that-is-too-long", Failure::TooLarge),
        ] {
            let outcome = match introspection.lookup(token, 24) {
                Lookup::Done(outcome) => outcome,
                Lookup::Uncached(_) => panic!("{token:?} passed the shape check"),
            };
            assert!(
                matches!(outcome, Outcome::Refused(Refusal::Shape(f)) if f == failure),
                "{token:?}: {outcome:?}"
            );
        }
        for token in ["good-tok", "good/+~._-A9==", "good-token-of-24-bytes--"] {
            assert!(
                matches!(introspection.lookup(token, 24), Lookup::Uncached(_)),
                "{token:?}"
            );
        }
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 0);
        assert_eq!(introspection.stats().refused_malformed, 8);
    }

    #[test]
    fn bounds_are_checked_at_build() {
        let build = |builder: IntrospectionBuilder| builder.build().err();
        let base = || Introspection::builder("https://idp.example/i", "id", "s").audience("api");
        let zero = |setting| Some(ConfigError::InvalidLimit { setting });
        assert_eq!(build(base().max_concurrent(0)), zero("max_concurrent"));
        assert_eq!(build(base().min_token_bytes(0)), zero("min_token_bytes"));
        assert_eq!(
            build(base().call_budget(0, Duration::from_secs(1))),
            zero("call_budget")
        );
        assert_eq!(
            build(base().call_budget(5, Duration::ZERO)),
            zero("call_budget")
        );
        assert!(matches!(
            build(base().max_concurrent(100_000)),
            Some(ConfigError::LimitTooLarge {
                setting: "max_concurrent",
                ..
            })
        ));
        assert!(matches!(
            build(base().call_budget(1, Duration::MAX)),
            Some(ConfigError::LimitTooLarge {
                setting: "call_budget",
                ..
            })
        ));
        assert_eq!(
            build(
                base()
                    .max_concurrent(4096)
                    .call_budget(u32::MAX, Duration::from_secs(24 * 60 * 60))
            ),
            None
        );
    }

    #[test]
    fn an_audience_is_required_unless_waived_by_name() {
        let builder = || Introspection::builder("https://idp.example/i", "id", "s");
        assert_eq!(
            builder().build().err(),
            Some(ConfigError::MissingAudience {
                issuer: "https://idp.example/i".to_owned()
            })
        );
        let waived = builder()
            .insecure_skip_audience()
            .build()
            .expect("audience waived");
        let answer = serde_json::json!({"active": true, "sub": "a", "aud": "some-other-api"});
        let Value::Object(answer) = answer else {
            unreachable!()
        };
        assert!(waived.judge(answer, SystemTime::now()).is_ok());
    }

    #[test]
    fn exp_and_nbf_forgive_a_minute_of_clock_skew_and_no_more() {
        let now = SystemTime::now();
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let judge_at = |member: &str, value: u64| {
            let mut answer = serde_json::json!({"active": true, "sub": "a", "aud": "api"});
            answer[member] = value.into();
            let Value::Object(answer) = answer else {
                unreachable!()
            };
            introspection().judge(answer, now).err()
        };
        assert_eq!(judge_at("exp", seconds - 30), None);
        assert_eq!(
            judge_at("exp", seconds - 90),
            Some(Refusal::Claim(Failure::Expired))
        );
        assert_eq!(judge_at("nbf", seconds + 30), None);
        assert_eq!(
            judge_at("nbf", seconds + 90),
            Some(Refusal::Claim(Failure::NbfFuture))
        );
    }

    #[test]
    fn url_rule_and_limits() {
        let build = |url: &str| {
            Introspection::builder(url, "id", "s")
                .audience("api")
                .build()
        };
        assert!(matches!(
            build("http://idp.example/i"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(build("https://idp.example/i").is_ok());
        assert_eq!(
            Introspection::builder("https://idp.example/i", "", "s")
                .audience("api")
                .build()
                .err(),
            Some(ConfigError::MissingIntrospectionClient)
        );
        assert!(
            Introspection::builder("https://idp.example/i", "id", "s")
                .audience("api")
                .cache_capacity(0)
                .build()
                .is_err()
        );
    }
}
