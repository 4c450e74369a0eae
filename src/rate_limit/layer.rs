//! [`RateLimitLayer`], its service and response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{Extensions, HeaderValue, Method, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::RateLimitBuilder;
use super::headers::{self, RATELIMIT, RATELIMIT_POLICY};
use super::limit::{LimitKey, Quota, Tier};
use super::store::{LimitCheck, LimitState, RateLimitStore};
use crate::body::{ResponseBody, unreachable_response};
use crate::observe::{Decision, Observe, Outcome, Stage};
use crate::principal::Principal;
use crate::rejection::{Reason, Rejection, RejectionResponse};
use crate::route::RouteTable;
use crate::shield::{ClientIpUnknown, UnknownClient, seconds};
use crate::store::StoreFuture;

/// A quota and its `RateLimit-Policy` item, made once (`None` when its window is not whole
/// seconds and the layer sends no fields).
pub(crate) struct Policy {
    pub(crate) quota: Quota,
    pub(crate) header: Option<HeaderValue>,
}

/// A limit, ready to apply.
pub(crate) struct Compiled {
    pub(crate) name: Arc<str>,
    pub(crate) key: LimitKey,
    pub(crate) default: Policy,
    pub(crate) tiers: Vec<(Tier, Policy)>,
    /// The routes it covers; `None` for every request.
    pub(crate) routes: Option<RouteTable<()>>,
}

impl Compiled {
    fn policy(&self, tier: Option<usize>) -> &Policy {
        tier.and_then(|tier| self.tiers.get(tier))
            .map_or(&self.default, |(_, policy)| policy)
    }
}

/// Everything the layer holds.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) limits: Arc<[Compiled]>,
    pub(crate) store: Arc<dyn RateLimitStore>,
    pub(crate) headers: bool,
    pub(crate) report_only: bool,
    /// Let requests whose client address is unknown past per-IP limits.
    pub(crate) allow_unknown_ip: bool,
    /// IPv6 clients share a per-IP bucket per network of this many bits.
    pub(crate) ipv6_prefix: u8,
    pub(crate) observer: Arc<dyn Observe>,
    pub(crate) renderer: Arc<dyn RejectionResponse>,
}

/// Rate limits, checked per request; see the [module documentation](super).
#[derive(Clone)]
#[must_use]
pub struct RateLimitLayer {
    pub(crate) config: Arc<Config>,
}

impl RateLimitLayer {
    /// Starts a rate-limit configuration.
    pub fn builder() -> RateLimitBuilder {
        RateLimitBuilder::default()
    }

    /// The same limits reporting to `observer` and rendering with `renderer` (the
    /// gateway's, when set).
    #[cfg(feature = "authz")]
    pub(crate) fn with_gateway(
        self,
        observer: Option<Arc<dyn Observe>>,
        renderer: Option<Arc<dyn RejectionResponse>>,
    ) -> Self {
        let mut config = (*self.config).clone();
        if let Some(observer) = observer {
            config.observer = observer;
        }
        if let Some(renderer) = renderer {
            config.renderer = renderer;
        }
        Self {
            config: Arc::new(config),
        }
    }

    /// Limits that do nothing: the gateway's when none are configured.
    #[cfg(feature = "authz")]
    pub(crate) fn pass_through() -> Self {
        Self {
            config: Arc::new(Config {
                limits: Arc::new([]),
                store: Arc::new(super::MemoryRateLimitStore::new(1)),
                headers: false,
                report_only: false,
                allow_unknown_ip: true,
                ipv6_prefix: crate::shield::DEFAULT_V6_PREFIX,
                observer: crate::observe::default_observer(),
                renderer: crate::rejection::default_renderer(),
            }),
        }
    }

    /// Whether any limit needs an authenticated caller (and so cannot run before
    /// authentication).
    #[cfg(feature = "authz")]
    pub(crate) fn needs_identity(&self) -> Option<&str> {
        self.config
            .limits
            .iter()
            .find(|limit| limit.key.needs_identity() || !limit.tiers.is_empty())
            .map(|limit| &*limit.name)
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.config.limits.iter().map(|l| &*l.name).collect();
        f.debug_struct("RateLimitLayer")
            .field("limits", &names)
            .field("headers", &self.config.headers)
            .field("report_only", &self.config.report_only)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RateLimit<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the layer's service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// What the checks read of a request (borrowed, so the request is never taken apart).
#[derive(Clone, Copy)]
struct Head<'a> {
    method: &'a Method,
    path: &'a str,
    extensions: &'a Extensions,
}

impl<'a> Head<'a> {
    fn of<B>(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            path: request.uri().path(),
            extensions: request.extensions(),
        }
    }
}

/// One limit's check in flight: the limit, the tier, and the store's answer.
struct Check {
    limit: usize,
    tier: Option<usize>,
    answer: StoreFuture<LimitState>,
}

/// What the checks so far have found.
struct Evaluation {
    started: Instant,
    /// The next limit to look at.
    next: usize,
    /// Whether any limit applied.
    applied: bool,
    /// Whether a refusal was reported (report-only mode).
    reported: bool,
    /// The allowed answer with the fewest requests left: the one the headers show.
    tightest: Option<(usize, Option<usize>, LimitState)>,
    /// A per-IP limit applied and the client's address is unknown: the request is refused
    /// (unless the layer lets unknown addresses through).
    unknown: Option<(usize, UnknownClient)>,
}

impl Evaluation {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            next: 0,
            applied: false,
            reported: false,
            tightest: None,
            unknown: None,
        }
    }

    /// The next limit that applies to the request, asked of the store.
    fn next_check(&mut self, config: &Config, head: Head<'_>) -> Option<Check> {
        let principal = head.extensions.get::<Principal>();
        while let Some(limit) = config.limits.get(self.next) {
            let index = self.next;
            self.next += 1;
            let route = match &limit.routes {
                None => None,
                Some(table) => match table.at(head.method, head.path) {
                    Some(matched) => table.entry(matched.index).map(|(text, ())| text),
                    None => continue,
                },
            };
            let Some(key) =
                limit
                    .key
                    .bucket(&limit.name, head.extensions, route, config.ipv6_prefix)
            else {
                if limit.key == LimitKey::ClientIp && !config.allow_unknown_ip {
                    // A per-IP limit cannot count a client it cannot name: refuse rather
                    // than let it past every per-IP limit.
                    self.applied = true;
                    let unknown = head
                        .extensions
                        .get::<ClientIpUnknown>()
                        .map_or(UnknownClient::NoPeer, |marker| marker.0);
                    self.unknown.get_or_insert((index, unknown));
                    if !config.report_only {
                        return None;
                    }
                }
                continue;
            };
            let tier = principal.and_then(|principal| {
                limit
                    .tiers
                    .iter()
                    .position(|(tier, _)| tier.matches(principal))
            });
            self.applied = true;
            let answer = config.store.check(&LimitCheck {
                limit: &limit.name,
                key: &key,
                quota: limit.policy(tier).quota,
            });
            return Some(Check {
                limit: index,
                tier,
                answer,
            });
        }
        None
    }

    /// Takes one answer: a refusal to send, or `None` to go on.
    fn absorb(
        &mut self,
        config: &Config,
        head: Head<'_>,
        limit: usize,
        tier: Option<usize>,
        state: LimitState,
    ) -> Option<Response<Bytes>> {
        if state.allowed {
            // A store that cannot answer: nothing true to say in the fields.
            if !state.known {
                return None;
            }
            if self
                .tightest
                .as_ref()
                .is_none_or(|(_, _, tightest)| state.remaining < tightest.remaining)
            {
                self.tightest = Some((limit, tier, state));
            }
            return None;
        }
        let compiled = config.limits.get(limit)?;
        let rejection =
            Rejection::new(Reason::RateLimited).with_retry_after(seconds(state.retry_after));
        let outcome = if config.report_only {
            Outcome::WouldRefuse
        } else {
            Outcome::Refused
        };
        if config.report_only {
            // One decision per request: the first limit that would refuse it.
            if !self.reported {
                self.observe(config, head, outcome, Some((&rejection, &compiled.name)));
                self.reported = true;
            }
            return None;
        }
        self.observe(config, head, outcome, Some((&rejection, &compiled.name)));
        let mut response = rejection.render(&*config.renderer);
        if let Some(policy) = &compiled.policy(tier).header {
            let headers = response.headers_mut();
            headers.append(&RATELIMIT_POLICY, policy.clone());
            headers.append(&RATELIMIT, headers::state(&compiled.name, &state));
        }
        Some(response)
    }

    /// The checks are over: a refusal for an unknown client, or the request goes on (report
    /// it) with the headers to add to its response.
    fn finish(
        &self,
        config: &Config,
        head: Head<'_>,
    ) -> Result<Option<[HeaderValue; 2]>, Box<Response<Bytes>>> {
        if !self.applied {
            return Ok(None);
        }
        let mut reported = self.reported;
        if let Some((limit, unknown)) = self.unknown {
            let rejection = crate::shield::unknown_client(unknown);
            let name = config.limits.get(limit).map_or("", |limit| &*limit.name);
            if !config.report_only {
                self.observe(config, head, Outcome::Refused, Some((&rejection, name)));
                return Err(Box::new(rejection.render(&*config.renderer)));
            }
            if !reported {
                self.observe(config, head, Outcome::WouldRefuse, Some((&rejection, name)));
                reported = true;
            }
        }
        if !reported {
            self.observe(config, head, Outcome::Allowed, None);
        }
        if !config.headers || config.report_only {
            return Ok(None);
        }
        let Some((limit, tier, state)) = self.tightest.as_ref() else {
            return Ok(None);
        };
        let Some(compiled) = config.limits.get(*limit) else {
            return Ok(None);
        };
        let Some(policy) = &compiled.policy(*tier).header else {
            return Ok(None);
        };
        Ok(Some([
            policy.clone(),
            headers::state(&compiled.name, state),
        ]))
    }

    fn observe(
        &self,
        config: &Config,
        head: Head<'_>,
        outcome: Outcome,
        refusal: Option<(&Rejection, &str)>,
    ) {
        config.observer.decision(&Decision {
            stage: Stage::RateLimit,
            outcome,
            reason: refusal.map(|(rejection, _)| rejection.reason()),
            cause: refusal.and_then(|(rejection, _)| rejection.cause()),
            status: refusal.map(|(rejection, _)| rejection.status()),
            route: matched_rule(head.extensions),
            method: head.method,
            path: head.path,
            principal: head.extensions.get::<Principal>(),
            client_ip: crate::observe::client_ip(head.extensions),
            limit: refusal.map(|(_, name)| name),
            started: self.started,
        });
    }
}

/// The rule the gateway matched, when the limits run after its authentication (the
/// per-identity limits); `None` before it or alone.
fn matched_rule(extensions: &Extensions) -> Option<&str> {
    #[cfg(feature = "authz")]
    {
        extensions
            .get::<crate::authenticate::Challenges>()
            .and_then(crate::authenticate::Challenges::route_text)
    }
    #[cfg(not(feature = "authz"))]
    {
        let _ = extensions;
        None
    }
}

impl<S, B, ResBody> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let config = &*self.config;
        if config.limits.is_empty() {
            return ResponseFuture::calling(self.inner.call(request), None);
        }
        let mut evaluation = Evaluation::new();
        // The in-process store answers at once: decide here, without moving the request
        // into the future, while every answer is ready.
        while let Some(check) = evaluation.next_check(config, Head::of(&request)) {
            match check.answer.into_ready() {
                Ok(state) => {
                    let head = Head::of(&request);
                    if let Some(response) =
                        evaluation.absorb(config, head, check.limit, check.tier, state)
                    {
                        return ResponseFuture::answered(response);
                    }
                }
                Err(answer) => {
                    let clone = self.inner.clone();
                    let service = mem::replace(&mut self.inner, clone);
                    return ResponseFuture {
                        state: State::Checking {
                            pending: Some(Box::new(Pending {
                                config: self.config.clone(),
                                evaluation,
                                check: Check { answer, ..check },
                                request,
                                service,
                            })),
                        },
                    };
                }
            }
        }
        match evaluation.finish(config, Head::of(&request)) {
            Ok(headers) => ResponseFuture::calling(self.inner.call(request), headers),
            Err(refusal) => ResponseFuture::answered(*refusal),
        }
    }
}

/// A request waiting on the store.
struct Pending<S, B> {
    config: Arc<Config>,
    evaluation: Evaluation,
    check: Check,
    request: Request<B>,
    service: S,
}

pin_project! {
    /// The response future of [`RateLimit`].
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // Boxed: only a store that waits takes this path, and the future stays small
        // (cheap to move) for the in-process one.
        Checking { pending: Option<Box<Pending<S, B>>> },
        Calling { #[pin] future: S::Future, headers: Option<[HeaderValue; 2]> },
        Answered { response: Option<Response<Bytes>> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn answered(response: Response<Bytes>) -> Self {
        Self {
            state: State::Answered {
                response: Some(response),
            },
        }
    }

    fn calling(future: S::Future, headers: Option<[HeaderValue; 2]>) -> Self {
        Self {
            state: State::Calling { future, headers },
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Answered { response } => {
                    let response = response.take().unwrap_or_else(unreachable_response);
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Calling { future, headers } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some([policy, current]) = headers.take() {
                        let map = response.headers_mut();
                        map.append(&RATELIMIT_POLICY, policy);
                        map.append(&RATELIMIT, current);
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Checking { pending } => {
                    let Some(waiting) = pending.as_mut() else {
                        return Poll::Ready(
                            Ok(unreachable_response().map(ResponseBody::rejection)),
                        );
                    };
                    let answer = ready!(Pin::new(&mut waiting.check.answer).poll(cx));
                    let (limit, tier) = (waiting.check.limit, waiting.check.tier);
                    let refusal = waiting.evaluation.absorb(
                        &waiting.config,
                        Head::of(&waiting.request),
                        limit,
                        tier,
                        answer,
                    );
                    if let Some(response) = refusal {
                        state.set(State::Answered {
                            response: Some(response),
                        });
                        continue;
                    }
                    if let Some(next) = waiting
                        .evaluation
                        .next_check(&waiting.config, Head::of(&waiting.request))
                    {
                        waiting.check = next;
                        continue;
                    }
                    let Some(done) = pending.take().map(|done| *done) else {
                        continue;
                    };
                    let headers = match done
                        .evaluation
                        .finish(&done.config, Head::of(&done.request))
                    {
                        Ok(headers) => headers,
                        Err(refusal) => {
                            state.set(State::Answered {
                                response: Some(*refusal),
                            });
                            continue;
                        }
                    };
                    let mut service = done.service;
                    let future = service.call(done.request);
                    state.set(State::Calling { future, headers });
                }
            }
        }
    }
}
