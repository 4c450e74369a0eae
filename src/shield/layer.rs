//! [`ShieldLayer`], its service and response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::ShieldBuilder;
use super::brute_force::{BlockSource, BlockState, BlockStore, BruteForce, FailureCount};
use super::client_ip::{ClientIpResolver, ClientIpUnknown, UnknownClient, counting_key};
use super::ip_rules::IpRules;
use crate::body::{ResponseBody, unreachable_response};
use crate::client_ip::ClientIp;
use crate::observe::{BlockAction, BlockEvent, Decision, Observe, Outcome, Stage};
use crate::rejection::{Reason, Rejection, RejectionResponse};
use crate::route::RouteTable;
use crate::store::StoreFuture;

/// Reads the identity a request's credentials claim, before they are checked.
pub(crate) type ClaimedIdentity = Arc<dyn Fn(&Parts) -> Option<Arc<str>> + Send + Sync>;

/// The sources of one request whose failures count: its IP and the identity it claims.
type Sources = [Option<BlockSource>; 2];

/// Everything the layer holds.
#[derive(Clone)]
pub(crate) struct Config {
    /// `false` for the gateway's stand-in when no shield is configured.
    pub(crate) enabled: bool,
    pub(crate) resolver: ClientIpResolver,
    pub(crate) global: IpRules,
    pub(crate) routes: Arc<RouteTable<IpRules>>,
    pub(crate) brute_force: Option<(BruteForce, Arc<dyn BlockStore>)>,
    /// Let requests whose client address is unknown through (not IP-limited, failing
    /// allow lists) instead of refusing them where an IP protection applies.
    pub(crate) allow_unknown_ip: bool,
    /// The identity a request's credentials claim (from the authenticators), for counting
    /// failures per identity.
    pub(crate) identity: Option<ClaimedIdentity>,
    pub(crate) observer: Arc<dyn Observe>,
    pub(crate) renderer: Arc<dyn RejectionResponse>,
}

/// The shield: client IP, IP rules and brute-force blocks, before anything else; see the
/// [module documentation](super).
#[derive(Clone)]
#[must_use]
pub struct ShieldLayer {
    config: Arc<Config>,
}

impl ShieldLayer {
    /// Starts a shield configuration.
    pub fn builder() -> ShieldBuilder {
        ShieldBuilder::default()
    }

    pub(super) fn from_config(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The same shield reporting to `observer` and rendering with `renderer` (the
    /// gateway's, when set).
    #[cfg(feature = "authz")]
    pub(crate) fn with_gateway(
        self,
        observer: Option<Arc<dyn Observe>>,
        renderer: Option<Arc<dyn RejectionResponse>>,
        identity: ClaimedIdentity,
    ) -> Self {
        let mut config = (*self.config).clone();
        if config.identity.is_none() {
            config.identity = Some(identity);
        }
        if let Some(observer) = observer {
            config.observer = observer;
        }
        if let Some(renderer) = renderer {
            config.renderer = renderer;
        }
        Self::from_config(config)
    }

    /// A shield that does nothing: the gateway's when none is configured.
    #[cfg(feature = "authz")]
    pub(crate) fn pass_through() -> Self {
        Self::from_config(Config {
            enabled: false,
            resolver: ClientIpResolver {
                peer: Arc::new(|_| None),
                trusted: super::ip_rules::NetList::default(),
                header: super::ForwardedHeader::default(),
            },
            global: IpRules::default(),
            routes: Arc::new(RouteTable::default()),
            brute_force: None,
            allow_unknown_ip: true,
            identity: None,
            observer: crate::observe::default_observer(),
            renderer: crate::rejection::default_renderer(),
        })
    }
}

impl fmt::Debug for ShieldLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShieldLayer")
            .field("client_ip", &self.config.resolver)
            .field("ip_rules", &self.config.global)
            .field(
                "brute_force",
                &self.config.brute_force.as_ref().map(|(policy, _)| policy),
            )
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ShieldLayer {
    type Service = Shield<S>;

    fn layer(&self, inner: S) -> Shield<S> {
        Shield {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`ShieldLayer`].
#[derive(Clone)]
pub struct Shield<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Shield<S> {
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

impl<S: fmt::Debug> fmt::Debug for Shield<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Shield<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let config = &self.config;
        if !config.enabled {
            return ResponseFuture::calling(self.inner.call(request), None);
        }
        let started = Instant::now();
        let route_rules = config
            .routes
            .at(request.method(), request.uri().path())
            .map(|matched| matched.value);
        let address = match config
            .resolver
            .resolve(request.headers(), request.extensions())
        {
            Ok(address) => {
                request.extensions_mut().insert(ClientIp(address));
                Some(address)
            }
            Err(unknown) => {
                // Later layers must not take the connection's address (a proxy's) instead.
                request.extensions_mut().insert(ClientIpUnknown(unknown));
                let needs_address = !config.global.is_empty()
                    || route_rules.is_some_and(|rules| !rules.is_empty())
                    || config.brute_force.is_some();
                if needs_address && !config.allow_unknown_ip {
                    let rejection = unknown_client(unknown);
                    observe(
                        config,
                        &request,
                        Outcome::Refused,
                        Some(&rejection),
                        started,
                    );
                    return ResponseFuture::answered(rejection.render(&*config.renderer));
                }
                None
            }
        };
        let permitted = config.global.permits(address)
            && route_rules.is_none_or(|rules| rules.permits(address));
        if !permitted {
            let rejection = Rejection::new(Reason::IpDenied);
            observe(
                config,
                &request,
                Outcome::Refused,
                Some(&rejection),
                started,
            );
            return ResponseFuture::answered(rejection.render(&*config.renderer));
        }
        let Some((policy, store)) = &config.brute_force else {
            if !config.global.is_empty() || route_rules.is_some() {
                observe(config, &request, Outcome::Allowed, None, started);
            }
            return ResponseFuture::calling(self.inner.call(request), None);
        };
        let identity = match &config.identity {
            Some(claimed) if policy.per_identity => {
                // Only with per-identity counting on: the authenticators read the head.
                let (parts, body) = request.into_parts();
                let identity = claimed(&parts);
                request = Request::from_parts(parts, body);
                identity.map(BlockSource::Identity)
            }
            _ => None,
        };
        let sources: Sources = [
            address.map(|address| BlockSource::Ip(counting_key(address, policy.ipv6_prefix))),
            identity,
        ];
        let mut checks = Checks {
            index: 0,
            reported: false,
            started,
        };
        // The in-process store answers at once: decide here while every answer is ready.
        while let Some(source) = checks.next_source(&sources) {
            match store.state(source).into_ready() {
                Ok(state) => {
                    if let Some(response) = checks.decide(config, &request, source, state) {
                        return ResponseFuture::answered(response);
                    }
                }
                Err(state) => {
                    // The ready service goes into the future; a fresh clone stays.
                    let clone = self.inner.clone();
                    let service = mem::replace(&mut self.inner, clone);
                    return ResponseFuture {
                        state: State::Checking {
                            state,
                            pending: Some(Box::new(Pending {
                                config: config.clone(),
                                service,
                                request,
                                sources,
                                checks,
                            })),
                        },
                    };
                }
            }
        }
        checks.pass(config, &request);
        ResponseFuture::calling(self.inner.call(request), Some((config.clone(), sources)))
    }
}

/// The refusal of a request whose client address is unknown, where something depends on
/// it: 503 when the server gives no connection address (a deployment fault), 400 when a
/// trusted proxy forwarded an unreadable hop (the client sent garbage, or the proxy wrote
/// `unknown`).
pub(crate) fn unknown_client(unknown: UnknownClient) -> Rejection {
    match unknown {
        UnknownClient::NoPeer => {
            super::client_ip::warn_no_peer_address("portcullis::shield");
            Rejection::new(Reason::Unavailable)
                .with_cause("client_ip_unknown")
                .with_detail("The client's address cannot be determined.")
        }
        UnknownClient::Unreadable => Rejection::new(Reason::InvalidRequest)
            .with_cause("forwarded_header_unreadable")
            .with_detail("The forwarded client address cannot be read."),
    }
}

/// Reports one shield decision.
fn observe<B>(
    config: &Config,
    request: &Request<B>,
    outcome: Outcome,
    rejection: Option<&Rejection>,
    started: Instant,
) {
    config.observer.decision(&Decision {
        stage: Stage::Shield,
        outcome,
        reason: rejection.map(Rejection::reason),
        cause: rejection.and_then(Rejection::cause),
        status: rejection.map(Rejection::status),
        route: None,
        method: request.method(),
        path: request.uri().path(),
        principal: None,
        client_ip: crate::observe::client_ip(request.extensions()),
        limit: None,
        started,
    });
}

/// The block checks of one request, source by source.
struct Checks {
    /// The next source to check.
    index: usize,
    /// Whether a would-be refusal was reported (report-only mode).
    reported: bool,
    started: Instant,
}

impl Checks {
    /// The next source to check, moving past it.
    fn next_source<'s>(&mut self, sources: &'s Sources) -> Option<&'s BlockSource> {
        while let Some(slot) = sources.get(self.index) {
            self.index += 1;
            if let Some(source) = slot {
                return Some(source);
            }
        }
        None
    }

    /// What one source's block state means for the request: a refusal, or `None` to go on.
    fn decide<B>(
        &mut self,
        config: &Config,
        request: &Request<B>,
        source: &BlockSource,
        state: BlockState,
    ) -> Option<Response<Bytes>> {
        let (policy, _) = config.brute_force.as_ref()?;
        match state {
            BlockState::Blocked { remaining } => {
                let rejection =
                    Rejection::new(Reason::Blocked).with_retry_after(seconds(remaining));
                if policy.report_only {
                    if !self.reported {
                        observe(
                            config,
                            request,
                            Outcome::WouldRefuse,
                            Some(&rejection),
                            self.started,
                        );
                        self.reported = true;
                    }
                    return None;
                }
                observe(
                    config,
                    request,
                    Outcome::Refused,
                    Some(&rejection),
                    self.started,
                );
                Some(rejection.render(&*config.renderer))
            }
            BlockState::Unblocked { offences } => {
                let event = Block::new(BlockAction::Unblocked, 0, offences, Duration::ZERO);
                event.report(config, policy, source);
                None
            }
            BlockState::Open => None,
        }
    }

    /// Every source passed: report it.
    fn pass<B>(&self, config: &Config, request: &Request<B>) {
        if !self.reported {
            observe(config, request, Outcome::Allowed, None, self.started);
        }
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub(crate) fn seconds(duration: Duration) -> u32 {
    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(whole.max(1)).unwrap_or(u32::MAX)
}

/// A block or unblock to report.
struct Block {
    action: BlockAction,
    failures: u32,
    offences: u32,
    duration: Duration,
}

impl Block {
    fn new(action: BlockAction, failures: u32, offences: u32, duration: Duration) -> Self {
        Self {
            action,
            failures,
            offences,
            duration,
        }
    }

    fn report(&self, config: &Config, policy: &BruteForce, source: &BlockSource) {
        let text = source.to_string();
        config.observer.block(&BlockEvent {
            action: self.action,
            kind: source.kind(),
            source: &text,
            reason: "authentication_failures",
            failures: self.failures,
            offences: self.offences,
            duration: self.duration,
            report_only: policy.report_only,
        });
    }
}

/// Whether a response is an authentication failure: bad credentials, from any
/// authenticator (a request without credentials is not one).
fn is_failure<T>(response: &Response<T>) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        && response
            .extensions()
            .get::<Reason>()
            .is_some_and(|reason| reason.public() == Reason::InvalidCredentials)
}

/// A request waiting on the block store before it goes on.
struct Pending<S, B> {
    config: Arc<Config>,
    service: S,
    request: Request<B>,
    sources: Sources,
    checks: Checks,
}

/// A failed response, its failures being counted source by source.
struct Recording<R> {
    config: Arc<Config>,
    sources: Sources,
    /// The source being counted now.
    current: usize,
    response: Option<R>,
}

pin_project! {
    /// The response future of [`Shield`].
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
        // Boxed: only a store that waits takes this path, and the future stays small.
        Checking { state: StoreFuture<BlockState>, pending: Option<Box<Pending<S, B>>> },
        Calling {
            #[pin] future: S::Future,
            // Set when failures of the sources are counted.
            tracked: Option<(Arc<Config>, Sources)>,
        },
        Recording {
            record: StoreFuture<FailureCount>,
            recording: Box<Recording<S::Response>>,
        },
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

    fn calling(future: S::Future, tracked: Option<(Arc<Config>, Sources)>) -> Self {
        Self {
            state: State::Calling { future, tracked },
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

/// The next source of `sources` from `from` on, with its position.
fn source_from(sources: &Sources, from: usize) -> Option<(usize, &BlockSource)> {
    sources
        .iter()
        .enumerate()
        .skip(from)
        .find_map(|(index, source)| source.as_ref().map(|source| (index, source)))
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
                StateProj::Checking {
                    state: check,
                    pending,
                } => {
                    let block = ready!(Pin::new(&mut *check).poll(cx));
                    let Some(waiting) = pending.as_mut() else {
                        return Poll::Ready(
                            Ok(unreachable_response().map(ResponseBody::rejection)),
                        );
                    };
                    let Pending {
                        config,
                        request,
                        sources,
                        checks,
                        ..
                    } = &mut **waiting;
                    // The source just answered is the one before `checks.index`.
                    let answered = checks
                        .index
                        .checked_sub(1)
                        .and_then(|i| sources[i].as_ref());
                    if let Some(source) = answered
                        && let Some(response) = checks.decide(config, request, source, block)
                    {
                        state.set(State::Answered {
                            response: Some(response),
                        });
                        continue;
                    }
                    if let Some(next) = checks.next_source(sources) {
                        if let Some((_, store)) = &config.brute_force {
                            *check = store.state(next);
                        }
                        continue;
                    }
                    let Some(done) = pending.take() else { continue };
                    let Pending {
                        config,
                        mut service,
                        request,
                        sources,
                        checks,
                    } = *done;
                    checks.pass(&config, &request);
                    state.set(State::Calling {
                        future: service.call(request),
                        tracked: Some((config, sources)),
                    });
                }
                StateProj::Calling { future, tracked } => {
                    let response = ready!(future.poll(cx))?;
                    let failed = tracked.is_some() && is_failure(&response);
                    let (true, Some((config, sources))) = (failed, tracked.take()) else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    let (Some((policy, store)), Some((current, source))) =
                        (&config.brute_force, source_from(&sources, 0))
                    else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    let record = store.record_failure(source, policy);
                    state.set(State::Recording {
                        record,
                        recording: Box::new(Recording {
                            config,
                            sources,
                            current,
                            response: Some(response),
                        }),
                    });
                }
                StateProj::Recording { record, recording } => {
                    let count = ready!(Pin::new(&mut *record).poll(cx));
                    let Recording {
                        config,
                        sources,
                        current,
                        response,
                    } = &mut **recording;
                    let Some((policy, store)) = &config.brute_force else {
                        return Poll::Ready(
                            Ok(unreachable_response().map(ResponseBody::rejection)),
                        );
                    };
                    if let (Some((offence, duration)), Some(source)) =
                        (count.blocked, sources[*current].as_ref())
                    {
                        Block::new(BlockAction::Blocked, count.failures, offence, duration)
                            .report(config, policy, source);
                    }
                    if let Some((next, source)) = source_from(sources, *current + 1) {
                        *current = next;
                        *record = store.record_failure(source, policy);
                        continue;
                    }
                    let response = response.take().map_or_else(
                        || unreachable_response().map(ResponseBody::rejection),
                        |response| response.map(ResponseBody::inner),
                    );
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
