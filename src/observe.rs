//! The decision observer: every layer reports each decision it makes to one [`Observe`]
//! implementation, so that logs, metrics and an audit trail plug in at one point without
//! touching the layers.
//!
//! The default, [`TracingObserver`], turns each decision into one `tracing` event (targets
//! `portcullis::authenticate`, `portcullis::authorize`, `portcullis::validate`,
//! `portcullis::shield`, `portcullis::rate_limit`; block events at `portcullis::shield`). Install your
//! own with `observer(...)` on a layer or on the gateway builder; wrap [`TracingObserver`]
//! inside it to keep the events.
//!
//! A refusal's [`Reason`] also travels in the response's extensions, so an outer layer (a
//! metrics or trace layer) can read it without parsing the body.
//!
//! # Example
//!
//! Counting refusals per reason, beside the tracing events:
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use http::{Request, StatusCode};
//! use portcullis::observe::{Decision, Observe, Outcome, TracingObserver};
//! use portcullis::{AuthFuture, AuthOutcome, AuthenticationLayer, Reason, Rejection};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! #[derive(Default)]
//! struct Refusals(AtomicUsize);
//!
//! impl Observe for Refusals {
//!     fn decision(&self, decision: &Decision<'_>) {
//!         TracingObserver.decision(decision);
//!         if decision.outcome == Outcome::Refused {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let refusals = Arc::new(Refusals::default());
//! let refuse_all = |_: &http::request::Parts| {
//!     AuthFuture::ready(AuthOutcome::Rejected(Rejection::new(Reason::InvalidCredentials)))
//! };
//! let service = ServiceBuilder::new()
//!     .layer(AuthenticationLayer::new(refuse_all).observer(refusals.clone()))
//!     .service(service_fn(|_: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     }));
//! let response = service.oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.extensions().get::<Reason>(), Some(&Reason::InvalidCredentials));
//! assert_eq!(refusals.0.load(Ordering::Relaxed), 1);
//! # }
//! ```

mod audit;
#[cfg(feature = "metrics")]
mod handles;
#[cfg(feature = "metrics")]
mod metrics;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use crate::principal::Principal;
use crate::rejection::Reason;

/// Which layer made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// The authentication chain (API keys, bearer tokens, your authenticators).
    Authenticate,
    /// The route rules.
    Authorize,
    /// Request validation.
    Validate,
    /// The shield in front of everything: IP rules and brute-force blocks.
    Shield,
    /// A rate-limit layer (before authentication, per IP, or after it, per identity).
    RateLimit,
}

impl Stage {
    /// A stable lower-case name: `authenticate`, `authorize`, `validate`, `shield`,
    /// `rate_limit`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::Authorize => "authorize",
            Self::Validate => "validate",
            Self::Shield => "shield",
            Self::RateLimit => "rate_limit",
        }
    }
}

/// What a layer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The request goes on (authentication: with or without a principal).
    Allowed,
    /// The request is refused; [`Decision::reason`] says why.
    Refused,
    /// An authenticator answered the request with a response of its own (a login
    /// redirect, a callback); the service is not called.
    Answered,
    /// Report-only mode: the request would have been refused, and goes on.
    WouldRefuse,
}

impl Outcome {
    /// A stable lower-case name: `allowed`, `refused`, `answered`, `would_refuse`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Refused => "refused",
            Self::Answered => "answered",
            Self::WouldRefuse => "would_refuse",
        }
    }
}

/// One decision, as reported to an [`Observe`] implementation. Borrowed from the request:
/// copy out what you keep.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Decision<'a> {
    /// The layer that decided.
    pub stage: Stage,
    /// What it decided.
    pub outcome: Outcome,
    /// Why a request was (or would have been) refused: the precise reason, which may be
    /// more specific than what the client is told ([`Reason::public`]).
    pub reason: Option<Reason>,
    /// A finer cause, for logs only (`token_expired`, `bad_signature`, …), when the
    /// authenticator gives one.
    pub cause: Option<&'static str>,
    /// The status of the refusal or answer.
    pub status: Option<StatusCode>,
    /// The matched route rule (`GET /orders/{id}`), when the layer knows it.
    pub route: Option<&'a str>,
    /// The request method.
    pub method: &'a Method,
    /// The request path, as received (cut to a bound by [`TracingObserver`]).
    pub path: &'a str,
    /// The caller, when known.
    pub principal: Option<&'a Principal>,
    /// Where the client's IP address comes from; read through [`Decision::client_ip`], so
    /// that it is worked out only for observers that want it.
    pub(crate) client: Client<'a>,
    /// The rate limit that refused (or would have refused) the request, by its name.
    pub limit: Option<&'a str>,
    /// When the layer began deciding; read through [`Decision::elapsed`], so that the
    /// clock is read a second time only by observers that want the duration.
    pub(crate) started: Instant,
}

impl Decision<'_> {
    /// The client's IP address: the one a shield in front resolved
    /// ([`ClientIp`](crate::ClientIp)); else, with the `shield` feature, the connecting peer
    /// (axum's `ConnectInfo`, or a `SocketAddr` extension) unless a shield found the client
    /// unknown (a proxy's address is never taken for its client's).
    #[must_use]
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client.ip()
    }

    /// How long the layer took to decide (authentication: including waiting on stores
    /// and remote services), measured when this is called.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Where a decision's client IP address comes from.
#[derive(Clone, Copy)]
pub(crate) enum Client<'a> {
    /// Already worked out (by a layer that outlives the request's extensions).
    #[cfg(feature = "oidc")]
    Known(Option<IpAddr>),
    /// The request's extensions, asked only when an observer wants the address.
    Request(&'a http::Extensions),
}

impl Client<'_> {
    fn ip(self) -> Option<IpAddr> {
        match self {
            #[cfg(feature = "oidc")]
            Self::Known(ip) => ip,
            Self::Request(extensions) => client_ip(extensions),
        }
    }
}

impl std::fmt::Debug for Client<'_> {
    /// The address itself, wherever it comes from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.ip(), f)
    }
}

/// Receives every decision of the layers it is installed on.
///
/// Called on the request path: keep it cheap and never block (hand slow work, such as
/// writing an audit log, to a channel). Closures `Fn(&Decision<'_>)` implement it.
pub trait Observe: Send + Sync + 'static {
    /// Called once per decision.
    fn decision(&self, decision: &Decision<'_>);

    /// Called when the shield blocks a source for repeated authentication failures, or
    /// finds its block over. Defaults to nothing.
    fn block(&self, event: &BlockEvent<'_>) {
        let _ = event;
    }
}

pub use self::audit::AuditLog;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use self::metrics::MetricsObserver;

/// Two observers, each told everything: `(TracingObserver, AuditLog)`.
impl<A: Observe, B: Observe> Observe for (A, B) {
    fn decision(&self, decision: &Decision<'_>) {
        self.0.decision(decision);
        self.1.decision(decision);
    }

    fn block(&self, event: &BlockEvent<'_>) {
        self.0.block(event);
        self.1.block(event);
    }
}

/// Three observers, each told everything: `(TracingObserver, MetricsObserver, AuditLog)`.
impl<A: Observe, B: Observe, C: Observe> Observe for (A, B, C) {
    fn decision(&self, decision: &Decision<'_>) {
        self.0.decision(decision);
        self.1.decision(decision);
        self.2.decision(decision);
    }

    fn block(&self, event: &BlockEvent<'_>) {
        self.0.block(event);
        self.1.block(event);
        self.2.block(event);
    }
}

/// What a brute-force block event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockAction {
    /// The source is blocked from now on, for [`BlockEvent::duration`].
    Blocked,
    /// The source's block is over (reported when the source is next seen; one that never
    /// comes back gets none).
    Unblocked,
}

impl BlockAction {
    /// A stable lower-case name: `blocked`, `unblocked`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Unblocked => "unblocked",
        }
    }
}

/// A source blocked or unblocked by brute-force protection, as reported to
/// [`Observe::block`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BlockEvent<'a> {
    /// Blocked or unblocked.
    pub action: BlockAction,
    /// What is blocked: `ip` (the client IP) or `identity` (what the credentials claim).
    pub kind: &'static str,
    /// The source: the client IP's text, or the identity (`api_key:` and the key's id).
    pub source: &'a str,
    /// Why: `authentication_failures`.
    pub reason: &'static str,
    /// Failures counted in the window when the block started (0 for an unblock).
    pub failures: u32,
    /// How many times this source has been blocked, this block included.
    pub offences: u32,
    /// How long the block lasts (zero for an unblock).
    pub duration: Duration,
    /// Report-only mode: the block is counted but nothing is refused.
    pub report_only: bool,
}

impl<F> Observe for F
where
    F: Fn(&Decision<'_>) + Send + Sync + 'static,
{
    fn decision(&self, decision: &Decision<'_>) {
        self(decision);
    }
}

/// The default observer: one `tracing` event per decision.
///
/// Targets `portcullis::authenticate`, `portcullis::authorize`, `portcullis::validate`,
/// `portcullis::shield` and `portcullis::rate_limit`;
/// level `debug` when a request goes on, `info` when it is refused, `warn` for report-only
/// would-be refusals. Fields: `outcome`, `reason`, `cause`, `status`, `rule`, `subject`,
/// `client_ip`, `auth_method`, `http.method`, `http.path` (cut to 256 bytes) and `elapsed_us`. Never a
/// credential, a claim or a body.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingObserver;

/// Emits one event with the decision's fields at a fixed target and level.
macro_rules! decision_event {
    ($target:literal, $level:expr, $decision:expr, $message:literal) => {{
        let d = $decision;
        tracing::event!(
            target: $target,
            $level,
            outcome = d.outcome.name(),
            reason = d.reason.map(Reason::code),
            cause = d.cause,
            status = d.status.map(|status| status.as_u16()),
            rule = d.route,
            subject = d.principal.map(Principal::subject),
            client_ip = d.client_ip().map(tracing::field::display),
            limit = d.limit,
            auth_method = d.principal.map(|p| p.auth_method().name()),
            http.method = %d.method,
            http.path = crate::text::bounded(d.path),
            elapsed_us = u64::try_from(d.elapsed().as_micros()).unwrap_or(u64::MAX),
            $message
        )
    }};
}

/// One stage's events at each level.
macro_rules! stage_events {
    ($target:literal, $decision:expr) => {{
        let d = $decision;
        match d.outcome {
            Outcome::Allowed | Outcome::Answered => {
                decision_event!($target, tracing::Level::DEBUG, d, "request allowed")
            }
            Outcome::Refused => {
                decision_event!($target, tracing::Level::INFO, d, "request refused")
            }
            Outcome::WouldRefuse => decision_event!(
                $target,
                tracing::Level::WARN,
                d,
                "report-only: request would be refused; letting it through"
            ),
        }
    }};
}

impl Observe for TracingObserver {
    fn decision(&self, decision: &Decision<'_>) {
        match decision.stage {
            Stage::Authenticate => stage_events!("portcullis::authenticate", decision),
            Stage::Authorize => stage_events!("portcullis::authorize", decision),
            Stage::Validate => stage_events!("portcullis::validate", decision),
            Stage::Shield => stage_events!("portcullis::shield", decision),
            Stage::RateLimit => stage_events!("portcullis::rate_limit", decision),
        }
    }

    fn block(&self, event: &BlockEvent<'_>) {
        tracing::warn!(
            target: "portcullis::shield",
            action = event.action.name(),
            kind = event.kind,
            source = event.source,
            reason = event.reason,
            failures = event.failures,
            offences = event.offences,
            duration_s = event.duration.as_secs(),
            report_only = event.report_only,
            "brute-force protection: source {}",
            event.action.name()
        );
    }
}

/// Counts one event of the bearer layers' remote work (JWKS fetches, introspection calls)
/// through the `metrics` facade: these are not decisions, so they do not go through
/// [`Observe`]. Nothing without the `metrics` feature. For events of every request, see
/// [`RequestCounters`].
#[cfg(feature = "bearer")]
#[inline]
pub(crate) fn count(name: &'static str, label: &'static str, value: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(name, label => value).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, label, value);
}

/// The bearer layers' counters of every request (token-cache and introspection-cache
/// lookups), kept by the cache that counts: each label set is registered with the recorder
/// once (see `observe/handles.rs`), not on every request as [`count`] does.
#[cfg(feature = "bearer")]
pub(crate) struct RequestCounters {
    #[cfg(feature = "metrics")]
    handles: handles::Handles<(&'static str, &'static str, &'static str), ::metrics::Counter>,
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

#[cfg(feature = "bearer")]
impl Default for RequestCounters {
    fn default() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            handles: handles::Handles::default(),
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }
}

#[cfg(feature = "bearer")]
impl RequestCounters {
    /// Counts one event at `second`, in seconds of any clock the caller has at hand (so
    /// that counting reads none): [`Self::second_of`], or the seconds of the Unix epoch.
    #[inline]
    pub(crate) fn count(
        &self,
        second: u64,
        name: &'static str,
        label: &'static str,
        value: &'static str,
    ) {
        #[cfg(feature = "metrics")]
        {
            let key = (name, label, value);
            self.handles.with(
                second,
                handles::LabelHasher::hash(&key),
                |seen| *seen == key,
                || (key, ::metrics::counter!(name, label => value)),
                |counter| counter.increment(1),
            );
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (second, name, label, value);
    }

    /// `at`, in seconds since these counters were made.
    pub(crate) fn second_of(&self, at: std::time::Instant) -> u64 {
        #[cfg(feature = "metrics")]
        return at.saturating_duration_since(self.started).as_secs();
        #[cfg(not(feature = "metrics"))]
        {
            let _ = at;
            0
        }
    }
}

/// The client IP, for [`Decision::client_ip`]: the one a shield resolved (behind trusted
/// proxies), else the connecting peer.
pub(crate) fn client_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    // With the shield compiled in: its answer, else the peer unless it found the client
    // unknown (a proxy's address is never blamed for its clients).
    #[cfg(feature = "shield")]
    return crate::shield::client_ip_of(extensions);
    #[cfg(not(feature = "shield"))]
    extensions.get::<crate::ClientIp>().map(|ip| ip.0)
}

/// The shared default observer.
pub(crate) fn default_observer() -> Arc<dyn Observe> {
    static DEFAULT: OnceLock<Arc<dyn Observe>> = OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(TracingObserver)).clone()
}
