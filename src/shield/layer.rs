//! [`ShieldLayer`], its service and response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::ShieldBuilder;
use super::brute_force::{BlockSource, BlockState, BlockStore, BruteForce, FailureCount};
use super::client_ip::ClientIpResolver;
use super::ip_rules::IpRules;
use crate::body::ResponseBody;
use crate::client_ip::ClientIp;
use crate::observe::{BlockAction, BlockEvent, Decision, Observe, Outcome, Stage};
use crate::rejection::{Reason, Rejection, RejectionResponse};
use crate::route::RouteTable;
use crate::store::StoreFuture;

/// Everything the layer holds.
#[derive(Clone)]
pub(crate) struct Config {
    /// `false` for the gateway's stand-in when no shield is configured.
    pub(crate) enabled: bool,
    pub(crate) resolver: ClientIpResolver,
    pub(crate) global: IpRules,
    pub(crate) routes: Arc<RouteTable<IpRules>>,
    pub(crate) brute_force: Option<(BruteForce, Arc<dyn BlockStore>)>,
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
    ) -> Self {
        let mut config = (*self.config).clone();
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
        let address = config
            .resolver
            .resolve(request.headers(), request.extensions());
        if let Some(address) = address {
            request.extensions_mut().insert(ClientIp(address));
        }
        let route_rules = config
            .routes
            .at(request.method(), request.uri().path())
            .map(|matched| matched.value);
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
        let source = address.map(BlockSource::Ip);
        let (Some(source), Some((_, store))) = (source, &config.brute_force) else {
            if !config.global.is_empty() || route_rules.is_some() {
                observe(config, &request, Outcome::Allowed, None, started);
            }
            return ResponseFuture::calling(self.inner.call(request), None);
        };
        let state = store.state(&source);
        match state.into_ready() {
            Ok(state) => match decide(config, &request, &source, state, started) {
                Some(response) => ResponseFuture::answered(response),
                None => ResponseFuture::calling(
                    self.inner.call(request),
                    Some((config.clone(), source)),
                ),
            },
            Err(state) => {
                // The ready service goes into the future; a fresh clone stays for the next call.
                let clone = self.inner.clone();
                let service = mem::replace(&mut self.inner, clone);
                ResponseFuture {
                    state: State::Checking {
                        state,
                        pending: Some(Box::new(Pending {
                            config: config.clone(),
                            service,
                            request,
                            source,
                            started,
                        })),
                    },
                }
            }
        }
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
        cause: None,
        status: rejection.map(Rejection::status),
        route: None,
        method: request.method(),
        path: request.uri().path(),
        principal: None,
        client_ip: crate::observe::client_ip(request.extensions()),
        limit: None,
        elapsed: started.elapsed(),
    });
}

/// What a source's block state means for its request: a refusal, or `None` to go on.
fn decide<B>(
    config: &Config,
    request: &Request<B>,
    source: &BlockSource,
    state: BlockState,
    started: Instant,
) -> Option<Response<Bytes>> {
    let Some((policy, _)) = &config.brute_force else {
        return None;
    };
    match state {
        BlockState::Blocked { remaining } => {
            let rejection = Rejection::new(Reason::Blocked).with_retry_after(seconds(remaining));
            if policy.report_only {
                observe(
                    config,
                    request,
                    Outcome::WouldRefuse,
                    Some(&rejection),
                    started,
                );
                return None;
            }
            observe(config, request, Outcome::Refused, Some(&rejection), started);
            Some(rejection.render(&*config.renderer))
        }
        BlockState::Unblocked { offences } => {
            report_block(
                config,
                policy,
                source,
                BlockAction::Unblocked,
                0,
                offences,
                Duration::ZERO,
            );
            observe(config, request, Outcome::Allowed, None, started);
            None
        }
        BlockState::Open => {
            observe(config, request, Outcome::Allowed, None, started);
            None
        }
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub(crate) fn seconds(duration: Duration) -> u32 {
    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(whole.max(1)).unwrap_or(u32::MAX)
}

fn report_block(
    config: &Config,
    policy: &BruteForce,
    source: &BlockSource,
    action: BlockAction,
    failures: u32,
    offences: u32,
    duration: Duration,
) {
    let text = source.to_string();
    config.observer.block(&BlockEvent {
        action,
        kind: match source {
            BlockSource::Ip(_) => "ip",
        },
        source: &text,
        reason: "authentication_failures",
        failures,
        offences,
        duration,
        report_only: policy.report_only,
    });
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
    source: BlockSource,
    started: Instant,
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
            // Set when failures of the source are counted.
            tracked: Option<(Arc<Config>, BlockSource)>,
        },
        Recording {
            record: StoreFuture<FailureCount>,
            config: Arc<Config>,
            source: BlockSource,
            response: Option<S::Response>,
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

    fn calling(future: S::Future, tracked: Option<(Arc<Config>, BlockSource)>) -> Self {
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
                    let response = response.take().unwrap_or_default();
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Checking {
                    state: check,
                    pending,
                } => {
                    let block = ready!(Pin::new(check).poll(cx));
                    let Some(Pending {
                        config,
                        mut service,
                        request,
                        source,
                        started,
                    }) = pending.take().map(|pending| *pending)
                    else {
                        return Poll::Ready(Ok(Response::default().map(ResponseBody::rejection)));
                    };
                    match decide(&config, &request, &source, block, started) {
                        Some(response) => state.set(State::Answered {
                            response: Some(response),
                        }),
                        None => state.set(State::Calling {
                            future: service.call(request),
                            tracked: Some((config, source)),
                        }),
                    }
                }
                StateProj::Calling { future, tracked } => {
                    let response = ready!(future.poll(cx))?;
                    let failed = tracked.is_some() && is_failure(&response);
                    let (true, Some((config, source))) = (failed, tracked.take()) else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    let Some((policy, store)) = &config.brute_force else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    let record = store.record_failure(&source, policy);
                    state.set(State::Recording {
                        record,
                        config,
                        source,
                        response: Some(response),
                    });
                }
                StateProj::Recording {
                    record,
                    config,
                    source,
                    response,
                } => {
                    let count = ready!(Pin::new(record).poll(cx));
                    if let (Some((offence, duration)), Some((policy, _))) =
                        (count.blocked, &config.brute_force)
                    {
                        report_block(
                            config,
                            policy,
                            source,
                            BlockAction::Blocked,
                            count.failures,
                            offence,
                            duration,
                        );
                    }
                    let response = response.take().map_or_else(
                        || Response::default().map(ResponseBody::rejection),
                        |response| response.map(ResponseBody::inner),
                    );
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
