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

use super::{AuthFuture, AuthOutcome, Authenticate, Challenges};
use crate::body::ResponseBody;
use crate::future::append_headers;
use crate::observe::{Decision, Observe, Outcome, Stage, default_observer};
use crate::principal::Principal;
use crate::rejection::{Challenge, Reason, Rejection, RejectionResponse, default_renderer};

/// A predicate over the request head; the gateway uses one to skip authentication on
/// public routes (and to leave the route it matched in the extensions, for the next layer).
pub(crate) type SkipAuthentication = Arc<dyn Fn(&mut Parts) -> bool + Send + Sync>;

/// Everything the layer holds, shared by its services and, through [`Challenges`], by the
/// requests it passes on.
#[derive(Clone)]
pub(crate) struct Chain {
    authenticators: Vec<Arc<dyn Authenticate>>,
    pub(super) challenges: Arc<[Challenge]>,
    pub(super) renderer: Arc<dyn RejectionResponse>,
    observer: Arc<dyn Observe>,
    skip: Option<SkipAuthentication>,
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
                skip: None,
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
    pub(crate) fn skip_when(mut self, skip: SkipAuthentication) -> Self {
        self.chain_mut().skip = Some(skip);
        self
    }

    fn chain_mut(&mut self) -> &mut Chain {
        Arc::make_mut(&mut self.chain)
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

        if chain.skip.as_ref().is_some_and(|skip| skip(&mut parts)) {
            // Called at once: the ready service is used, no swap needed.
            for authenticator in &chain.authenticators {
                authenticator.strip_credentials(&mut parts);
            }
            let future = self.inner.call(Request::from_parts(parts, body));
            return ResponseFuture {
                state: State::Decided {
                    future: crate::future::ResponseFuture::inner(future),
                },
            };
        }

        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let service = mem::replace(&mut self.inner, clone);
        let current = chain.authenticators[0].authenticate(&parts);
        ResponseFuture {
            state: State::Authenticating {
                pending: Some(Pending {
                    chain: chain.clone(),
                    started: Instant::now(),
                    index: 0,
                    current,
                    found: None,
                    response_headers: None,
                    parts,
                    body,
                    service,
                }),
            },
        }
    }
}

struct Pending<S, B> {
    chain: Arc<Chain>,
    started: Instant,
    index: usize,
    current: AuthFuture,
    found: Option<Principal>,
    response_headers: Option<HeaderMap>,
    parts: Parts,
    body: B,
    service: S,
}

/// How one authenticator's answer moves the chain on.
enum Step {
    /// Run the next authenticator.
    Next,
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
        Authenticating { pending: Option<Pending<S, B>> },
        Decided { #[pin] future: crate::future::ResponseFuture<S::Future> },
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
                    let Some(step) = pending.as_mut() else {
                        // Only reachable if polled after a panic inside an authenticator.
                        let response =
                            Rejection::new(Reason::Unavailable).render(&*default_renderer());
                        state.set(State::Decided {
                            future: crate::future::ResponseFuture::rejected(response),
                        });
                        continue;
                    };
                    let outcome = ready!(Pin::new(&mut step.current).poll(cx));
                    match step.advance(outcome) {
                        Step::Next => continue,
                        Step::Done => {
                            let Some(done) = pending.take() else { continue };
                            let (mut service, request, headers) = done.finish();
                            state.set(State::Decided {
                                future: crate::future::ResponseFuture::inner_with_headers(
                                    service.call(request),
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

impl<S, B> Pending<S, B> {
    /// Takes one authenticator's outcome.
    fn advance(&mut self, outcome: AuthOutcome) -> Step {
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
            AuthOutcome::Rejected(rejection) => return Step::Answer(self.reject(rejection)),
            AuthOutcome::Respond(response) => return Step::Answer(self.answer(response)),
        };
        if let Some(principal) = principal {
            if self.found.is_some() {
                let rejection = Rejection::new(Reason::AmbiguousCredentials)
                    .with_detail("The request carries credentials for more than one identity.");
                return Step::Answer(self.reject(rejection));
            }
            self.found = Some(principal);
        }
        self.index += 1;
        match self.chain.authenticators.get(self.index) {
            Some(next) => {
                self.current = next.authenticate(&self.parts);
                Step::Next
            }
            None => Step::Done,
        }
    }

    fn finish(mut self) -> (S, Request<B>, Option<HeaderMap>) {
        for authenticator in &self.chain.authenticators {
            authenticator.strip_credentials(&mut self.parts);
        }
        self.observe(Outcome::Allowed, None);
        let extensions = &mut self.parts.extensions;
        extensions.insert(Challenges(self.chain.clone()));
        if let Some(principal) = self.found {
            extensions.insert(principal);
        }
        (
            self.service,
            Request::from_parts(self.parts, self.body),
            self.response_headers,
        )
    }

    fn reject(&self, mut rejection: Rejection) -> Response<Bytes> {
        if rejection.challenges().is_empty() && rejection.status() == StatusCode::UNAUTHORIZED {
            rejection = rejection.with_challenges(self.chain.challenges.clone());
        }
        self.observe(Outcome::Refused, Some(&rejection));
        let mut response = rejection.render(&*self.chain.renderer);
        if let Some(headers) = &self.response_headers {
            append_headers(response.headers_mut(), headers.clone());
        }
        response
    }

    fn answer(&self, mut response: Response<Bytes>) -> Response<Bytes> {
        self.observe_status(Outcome::Answered, None, Some(response.status()));
        if let Some(headers) = &self.response_headers {
            append_headers(response.headers_mut(), headers.clone());
        }
        response
    }

    fn observe(&self, outcome: Outcome, rejection: Option<&Rejection>) {
        self.observe_status(outcome, rejection, rejection.map(Rejection::status));
    }

    fn observe_status(
        &self,
        outcome: Outcome,
        rejection: Option<&Rejection>,
        status: Option<StatusCode>,
    ) {
        self.chain.observer.decision(&Decision {
            stage: Stage::Authenticate,
            outcome,
            reason: rejection.map(Rejection::reason),
            cause: rejection.and_then(Rejection::cause),
            status,
            route: None,
            method: &self.parts.method,
            path: self.parts.uri.path(),
            principal: self.found.as_ref(),
            client_ip: crate::observe::client_ip(&self.parts.extensions),
            limit: None,
            elapsed: self.started.elapsed(),
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
