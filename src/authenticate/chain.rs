//! [`AuthenticationLayer`]: runs the installed authenticators over each request, in order.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{AuthFuture, AuthOutcome, Authenticate, CarriedRoute, Challenges};
use crate::body::ResponseBody;
use crate::future::append_headers;
use crate::observe::{Decision, Observe, Outcome, Stage, default_observer};
use crate::principal::Principal;
use crate::rejection::{Challenge, Reason, Rejection, RejectionResponse, default_renderer};

/// The gateway's route match, made before authentication and carried on to authorization.
pub(crate) trait MatchRoute: Send + Sync + 'static {
    /// The request's route, and whether it is public (authentication is then skipped).
    fn find(&self, request: &Parts) -> (CarriedRoute, bool);

    /// The route's rule as written (`GET /orders/{id}`), for decisions.
    fn text(&self, route: &CarriedRoute) -> Option<&str>;
}

/// Everything the layer holds, shared by its services and, through [`Challenges`], by the
/// requests it passes on.
#[derive(Clone)]
pub(crate) struct Chain {
    authenticators: Vec<Arc<dyn Authenticate>>,
    pub(super) challenges: Arc<[Challenge]>,
    pub(super) renderer: Arc<dyn RejectionResponse>,
    observer: Arc<dyn Observe>,
    pub(super) match_route: Option<Arc<dyn MatchRoute>>,
}

/// Runs one or more [`Authenticate`] implementations over every request.
///
/// Defaults: problem+json rejections, decisions reported as `tracing` events. A CORS
/// preflight is a request like any other here (it carries no credentials): answer
/// preflights with tower-http's `CorsLayer` outside this layer, or with the gateway's
/// `cors`, so that they never reach your service.
#[derive(Clone)]
#[must_use]
pub struct AuthenticationLayer {
    chain: Arc<Chain>,
}

impl AuthenticationLayer {
    /// A layer running `authenticator`.
    pub fn new(authenticator: impl Authenticate) -> Self {
        Self::new_shared(Arc::new(authenticator))
    }

    pub(crate) fn new_shared(authenticator: Arc<dyn Authenticate>) -> Self {
        Self {
            chain: Arc::new(Chain {
                authenticators: Vec::new(),
                challenges: Arc::new([]),
                renderer: default_renderer(),
                observer: default_observer(),
                match_route: None,
            }),
        }
        .and_shared(authenticator)
    }

    /// Adds another authenticator after the ones already installed.
    pub fn and(self, authenticator: impl Authenticate) -> Self {
        self.and_shared(Arc::new(authenticator))
    }

    pub(crate) fn and_shared(mut self, authenticator: Arc<dyn Authenticate>) -> Self {
        let chain = self.chain_mut();
        if let Some(challenge) = authenticator.challenge() {
            let mut challenges = chain.challenges.to_vec();
            challenges.push(challenge);
            chain.challenges = challenges.into();
        }
        chain.authenticators.push(authenticator);
        self
    }

    /// Renders rejections with `renderer` instead of problem+json.
    pub fn rejection_response(self, renderer: impl RejectionResponse) -> Self {
        self.renderer(Arc::new(renderer))
    }

    /// Reports every decision to `observer` instead of the default
    /// [`TracingObserver`](crate::observe::TracingObserver).
    pub fn observer(mut self, observer: Arc<dyn Observe>) -> Self {
        self.chain_mut().observer = observer;
        self
    }

    pub(crate) fn renderer(mut self, renderer: Arc<dyn RejectionResponse>) -> Self {
        self.chain_mut().renderer = renderer;
        self
    }

    #[cfg(feature = "authz")]
    pub(crate) fn match_route(mut self, match_route: Arc<dyn MatchRoute>) -> Self {
        self.chain_mut().match_route = Some(match_route);
        self
    }

    fn chain_mut(&mut self) -> &mut Chain {
        Arc::make_mut(&mut self.chain)
    }
}

impl AuthenticationLayer {
    /// Whether every authenticator can answer now (keys loaded, stores reachable), asked in
    /// order; the first that cannot says why. For readiness probes.
    ///
    /// # Errors
    ///
    /// The first authenticator's [`NotReady`](crate::NotReady).
    pub fn ready(&self) -> impl Future<Output = Result<(), crate::NotReady>> + Send + 'static {
        let chain = self.chain.clone();
        async move {
            for authenticator in &chain.authenticators {
                authenticator.ready().await?;
            }
            Ok(())
        }
    }
}

impl fmt::Debug for AuthenticationLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticationLayer")
            .field("authenticators", &self.chain.authenticators.len())
            .field("challenges", &self.chain.challenges)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AuthenticationLayer {
    type Service = Authentication<S>;

    fn layer(&self, inner: S) -> Authentication<S> {
        Authentication {
            inner,
            chain: self.chain.clone(),
        }
    }
}

/// The service made by [`AuthenticationLayer`]; see there.
#[derive(Clone)]
pub struct Authentication<S> {
    inner: S,
    chain: Arc<Chain>,
}

impl<S> Authentication<S> {
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

impl<S: fmt::Debug> fmt::Debug for Authentication<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authentication")
            .field("inner", &self.inner)
            .field("authenticators", &self.chain.authenticators.len())
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Authentication<S>
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
        let (mut parts, body) = request.into_parts();
        let chain = &self.chain;

        let mut route = CarriedRoute::default();
        if let Some(match_route) = &chain.match_route {
            let public;
            (route, public) = match_route.find(&parts);
            if public {
                for authenticator in &chain.authenticators {
                    authenticator.strip_credentials(&mut parts);
                }
                parts
                    .extensions
                    .insert(Challenges::new(chain.clone(), route));
                // Called at once: the ready service is used, no swap needed.
                let future = self.inner.call(Request::from_parts(parts, body));
                return ResponseFuture::decided(crate::future::ResponseFuture::inner(future));
            }
        }

        // Authenticators that answer at once (a malformed key, a cached token or key) are
        // run here, so that the common request never builds the waiting state below.
        let mut progress = Progress {
            chain: chain.clone(),
            route,
            started: Instant::now(),
            index: 0,
            found: None,
            response_headers: None,
        };
        let mut current = chain.authenticators[0].authenticate(&parts);
        loop {
            let Some(outcome) = current.take_ready() else {
                // The ready service goes into the future; a fresh clone stays for the
                // next call.
                let clone = self.inner.clone();
                let service = mem::replace(&mut self.inner, clone);
                return ResponseFuture {
                    state: State::Authenticating {
                        pending: Some(Box::new(Pending {
                            progress,
                            current,
                            parts,
                            body,
                            service,
                        })),
                    },
                };
            };
            match progress.advance(outcome, &parts) {
                Step::Next(next) => current = next,
                Step::Answer(response) => {
                    return ResponseFuture::decided(crate::future::ResponseFuture::rejected(
                        response,
                    ));
                }
                Step::Done => {
                    // Decided within `call`: the ready service is called at once.
                    let headers = progress.finish(&mut parts);
                    let future = self.inner.call(Request::from_parts(parts, body));
                    return ResponseFuture::decided(
                        crate::future::ResponseFuture::inner_with_headers(future, headers),
                    );
                }
            }
        }
    }
}

/// How far the chain has come: the part of the state that does not own the request.
struct Progress {
    chain: Arc<Chain>,
    route: CarriedRoute,
    started: Instant,
    index: usize,
    found: Option<Principal>,
    response_headers: Option<HeaderMap>,
}

/// A request waiting on an authenticator.
struct Pending<S, B> {
    progress: Progress,
    current: AuthFuture,
    parts: Parts,
    body: B,
    service: S,
}

/// How one authenticator's answer moves the chain on.
enum Step {
    /// Wait for the next authenticator.
    Next(AuthFuture),
    /// Every authenticator has run: pass the request on.
    Done,
    /// Answer with this response.
    Answer(Response<Bytes>),
}

pin_project! {
    /// The response future of [`Authentication`].
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
        // Boxed: only an authenticator that waits gets here, and the request it holds
        // would otherwise make every request's future larger.
        Authenticating { pending: Option<Box<Pending<S, B>>> },
        Decided { #[pin] future: crate::future::ResponseFuture<S::Future> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn decided(future: crate::future::ResponseFuture<S::Future>) -> Self {
        Self {
            state: State::Decided { future },
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
                StateProj::Decided { future } => return future.poll(cx),
                StateProj::Authenticating { pending } => {
                    let Some(waiting) = pending.as_mut() else {
                        // Only reachable if polled after a panic inside an authenticator.
                        let response =
                            Rejection::new(Reason::Unavailable).render(&*default_renderer());
                        state.set(State::Decided {
                            future: crate::future::ResponseFuture::rejected(response),
                        });
                        continue;
                    };
                    let outcome = ready!(Pin::new(&mut waiting.current).poll(cx));
                    match waiting.progress.advance(outcome, &waiting.parts) {
                        Step::Next(next) => waiting.current = next,
                        Step::Done => {
                            let Some(done) = pending.take() else { continue };
                            let Pending {
                                progress,
                                mut parts,
                                body,
                                mut service,
                                ..
                            } = *done;
                            let headers = progress.finish(&mut parts);
                            state.set(State::Decided {
                                future: crate::future::ResponseFuture::inner_with_headers(
                                    service.call(Request::from_parts(parts, body)),
                                    headers,
                                ),
                            });
                        }
                        Step::Answer(response) => {
                            state.set(State::Decided {
                                future: crate::future::ResponseFuture::rejected(response),
                            });
                        }
                    }
                }
            }
        }
    }
}

impl Progress {
    /// Takes one authenticator's outcome.
    fn advance(&mut self, outcome: AuthOutcome, parts: &Parts) -> Step {
        let principal = match outcome {
            AuthOutcome::Absent => None,
            AuthOutcome::Authenticated(principal) => Some(principal),
            AuthOutcome::Continue {
                principal,
                response_headers,
            } => {
                match &mut self.response_headers {
                    Some(headers) => append_headers(headers, response_headers),
                    None => self.response_headers = Some(response_headers),
                }
                principal
            }
            AuthOutcome::Rejected(rejection) => {
                return Step::Answer(self.reject(rejection, parts));
            }
            AuthOutcome::Respond(response) => return Step::Answer(self.answer(response, parts)),
        };
        if let Some(principal) = principal {
            if self.found.is_some() {
                let rejection = Rejection::new(Reason::AmbiguousCredentials)
                    .with_detail("The request carries credentials for more than one identity.");
                return Step::Answer(self.reject(rejection, parts));
            }
            self.found = Some(principal);
        }
        self.index += 1;
        match self.chain.authenticators.get(self.index) {
            Some(next) => Step::Next(next.authenticate(parts)),
            None => Step::Done,
        }
    }

    /// Strips the credentials, reports the decision and leaves the principal and the
    /// challenges in the request; returns the headers to add to the response.
    fn finish(self, parts: &mut Parts) -> Option<HeaderMap> {
        for authenticator in &self.chain.authenticators {
            authenticator.strip_credentials(parts);
        }
        self.observe(Outcome::Allowed, None, parts);
        let extensions = &mut parts.extensions;
        extensions.insert(Challenges::new(self.chain, self.route));
        if let Some(principal) = self.found {
            extensions.insert(principal);
        }
        self.response_headers
    }

    fn reject(&self, mut rejection: Rejection, parts: &Parts) -> Response<Bytes> {
        if rejection.challenges().is_empty() && rejection.status() == StatusCode::UNAUTHORIZED {
            rejection = rejection.with_challenges(self.chain.challenges.clone());
        }
        self.observe(Outcome::Refused, Some(&rejection), parts);
        let mut response = rejection.render(&*self.chain.renderer);
        if let Some(headers) = &self.response_headers {
            append_headers(response.headers_mut(), headers.clone());
        }
        response
    }

    fn answer(&self, mut response: Response<Bytes>, parts: &Parts) -> Response<Bytes> {
        self.observe_status(Outcome::Answered, None, Some(response.status()), parts);
        if let Some(headers) = &self.response_headers {
            append_headers(response.headers_mut(), headers.clone());
        }
        response
    }

    fn observe(&self, outcome: Outcome, rejection: Option<&Rejection>, parts: &Parts) {
        self.observe_status(outcome, rejection, rejection.map(Rejection::status), parts);
    }

    fn observe_status(
        &self,
        outcome: Outcome,
        rejection: Option<&Rejection>,
        status: Option<StatusCode>,
        parts: &Parts,
    ) {
        self.chain.observer.decision(&Decision {
            stage: Stage::Authenticate,
            outcome,
            reason: rejection.map(Rejection::reason),
            cause: rejection.and_then(Rejection::cause),
            status,
            route: self
                .chain
                .match_route
                .as_ref()
                .and_then(|match_route| match_route.text(&self.route)),
            method: &parts.method,
            path: parts.uri.path(),
            principal: self.found.as_ref(),
            client: crate::observe::Client::Request(&parts.extensions),
            limit: None,
            started: self.started,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::header::{LOCATION, SET_COOKIE};
    use http_body_util::BodyExt;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::principal::AuthMethod;

    /// A service that counts its calls and answers with the caller's subject and one
    /// `set-cookie` of its own.
    fn counting(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<
        Request<String>,
        Response = Response<String>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<String>, Infallible>> + Send,
    > + Clone {
        service_fn(move |request: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let who = request
                .extensions()
                .get::<Principal>()
                .map_or("anonymous".to_owned(), |p| p.subject().to_owned());
            async move {
                let mut response = Response::new(who);
                response
                    .headers_mut()
                    .append(SET_COOKIE, "app=1".parse().expect("value"));
                Ok(response)
            }
        })
    }

    fn principal(subject: &str) -> Principal {
        Principal::builder(subject, AuthMethod::Custom("test".into())).build()
    }

    fn cookie_headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, value.parse().expect("value"));
        headers
    }

    async fn run(
        layer: AuthenticationLayer,
        calls: &Arc<AtomicUsize>,
    ) -> (StatusCode, HeaderMap, String) {
        let service = layer.layer(counting(calls.clone()));
        let response = service
            .oneshot(Request::new(String::new()))
            .await
            .expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn set_cookies(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    #[tokio::test]
    async fn an_authenticator_can_answer_the_request_itself() {
        let calls = Arc::new(AtomicUsize::new(0));
        let later = Arc::new(AtomicUsize::new(0));
        let later_runs = later.clone();
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let seen = outcomes.clone();
        let layer = AuthenticationLayer::new(|_: &Parts| {
            let response = Response::builder()
                .status(StatusCode::FOUND)
                .header(LOCATION, "https://idp.example/authorize")
                .header(SET_COOKIE, "__Host-state=s; Secure; HttpOnly; Path=/")
                .body(Bytes::new())
                .expect("response");
            AuthFuture::ready(AuthOutcome::Respond(response))
        })
        .and(move |_: &Parts| {
            later_runs.fetch_add(1, Ordering::SeqCst);
            AuthFuture::ready(AuthOutcome::Absent)
        })
        .observer(Arc::new(move |decision: &Decision<'_>| {
            seen.lock()
                .expect("lock")
                .push((decision.outcome, decision.status));
        }));
        let (status, headers, _) = run(layer, &calls).await;
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(headers[LOCATION], "https://idp.example/authorize");
        assert_eq!(
            set_cookies(&headers),
            ["__Host-state=s; Secure; HttpOnly; Path=/"]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0, "the service was called");
        assert_eq!(later.load(Ordering::SeqCst), 0, "a later authenticator ran");
        assert_eq!(
            *outcomes.lock().expect("lock"),
            [(Outcome::Answered, Some(StatusCode::FOUND))]
        );
    }

    #[tokio::test]
    async fn an_authenticator_can_add_headers_to_the_response() {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = AuthenticationLayer::new(|_: &Parts| {
            AuthFuture::new(async {
                AuthOutcome::Continue {
                    principal: Some(principal("sam")),
                    response_headers: cookie_headers("session=refreshed"),
                }
            })
        });
        let (status, headers, body) = run(layer, &calls).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "sam");
        // The service's own header is kept; ours is appended.
        assert_eq!(set_cookies(&headers), ["app=1", "session=refreshed"]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn continuing_anonymously_leaves_the_identity_to_later_authenticators() {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = AuthenticationLayer::new(|_: &Parts| {
            AuthFuture::ready(AuthOutcome::Continue {
                principal: None,
                response_headers: cookie_headers("session=; Max-Age=0"),
            })
        })
        .and(|_: &Parts| AuthFuture::ready(AuthOutcome::Authenticated(principal("kim"))));
        let (status, headers, body) = run(layer, &calls).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "kim");
        assert_eq!(set_cookies(&headers), ["app=1", "session=; Max-Age=0"]);
    }

    #[tokio::test]
    async fn headers_to_add_go_on_a_refusal_too() {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = AuthenticationLayer::new(|_: &Parts| {
            AuthFuture::ready(AuthOutcome::Continue {
                principal: None,
                response_headers: cookie_headers("session=; Max-Age=0"),
            })
        })
        .and(|_: &Parts| {
            AuthFuture::ready(AuthOutcome::Rejected(Rejection::new(
                Reason::InvalidCredentials,
            )))
        });
        let (status, headers, _) = run(layer, &calls).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(set_cookies(&headers), ["session=; Max-Age=0"]);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn two_identities_are_refused_whichever_way_they_come() {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = AuthenticationLayer::new(|_: &Parts| {
            AuthFuture::ready(AuthOutcome::Continue {
                principal: Some(principal("sam")),
                response_headers: HeaderMap::new(),
            })
        })
        .and(|_: &Parts| AuthFuture::ready(AuthOutcome::Authenticated(principal("kim"))));
        let (status, _, body) = run(layer, &calls).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            body.contains("\"code\":\"ambiguous_credentials\""),
            "{body}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
