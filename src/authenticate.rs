//! The [`Authenticate`] extension point and the layer that runs a chain of authenticators.
//!
//! An authenticator looks at the request head and answers one of three things
//! ([`AuthOutcome`]): none of its credentials are here, here is the caller's [`Principal`],
//! or its credentials are here but bad (a [`Rejection`]). The built-in API-key (and later
//! bearer and OIDC) authenticators implement the trait, and so can yours: an HMAC
//! request-signature scheme, a client certificate check, a session lookup.
//!
//! [`AuthenticationLayer`] runs several authenticators over each request, in the order they
//! were added:
//!
//! - a request that carries none of their credentials goes on without a `Principal` (whether
//!   it may is the authorization layer's decision);
//! - a request with bad credentials is refused;
//! - a request with good credentials goes on with the `Principal` in its extensions;
//! - a request with credentials good for two authenticators is refused: we never guess
//!   which identity the caller meant.
//!
//! # Example
//!
//! A custom authenticator that accepts one fixed client-certificate fingerprint, forwarded by
//! a TLS-terminating proxy:
//!
//! ```
//! use http::{Request, StatusCode, request::Parts};
//! use portcullis::{AuthFuture, AuthMethod, AuthOutcome, Authenticate, AuthenticationLayer};
//! use portcullis::{Challenge, Principal, Reason, Rejection};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! struct ClientCertificate;
//!
//! impl Authenticate for ClientCertificate {
//!     fn authenticate(&self, request: &Parts) -> AuthFuture {
//!         let outcome = match request.headers.get("x-client-cert-sha256") {
//!             None => AuthOutcome::Absent,
//!             Some(value) if value == "8f2c…" => AuthOutcome::Authenticated(
//!                 Principal::builder("billing-batch", AuthMethod::Custom("mtls".into()))
//!                     .roles(["batch"])
//!                     .build(),
//!             ),
//!             Some(_) => AuthOutcome::Rejected(Rejection::new(Reason::InvalidCredentials)),
//!         };
//!         AuthFuture::ready(outcome)
//!     }
//!
//!     fn challenge(&self) -> Option<Challenge> {
//!         Some(Challenge::new("Mutual", "api"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(AuthenticationLayer::new(ClientCertificate))
//!     .service(service_fn(|request: Request<String>| async move {
//!         let who = request.extensions().get::<Principal>().map(|p| p.subject().to_owned());
//!         Ok::<_, std::convert::Infallible>(http::Response::new(format!("{who:?}")))
//!     }));
//!
//! let request = Request::get("/").header("x-client-cert-sha256", "bogus").body(String::new()).unwrap();
//! let response = service.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//!
//! let request = Request::get("/").header("x-client-cert-sha256", "8f2c…").body(String::new()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::principal::Principal;
use crate::rejection::{Challenge, Reason, Rejection, RejectionResponse, default_renderer};

/// What an authenticator found in a request.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    /// None of this authenticator's credentials are in the request.
    Absent,
    /// The credentials are good; this is the caller.
    Authenticated(Principal),
    /// The credentials are present but bad, or cannot be checked right now.
    Rejected(Rejection),
}

/// The future an [`Authenticate`] implementation returns.
///
/// [`AuthFuture::ready`] costs nothing; [`AuthFuture::new`] boxes an `async` block for
/// authenticators that must wait on a store or a remote service. It owns everything it
/// needs (`'static`): copy what you need out of the request head before the `async move`.
pub struct AuthFuture {
    state: AuthFutureState,
}

enum AuthFutureState {
    Ready(Option<AuthOutcome>),
    Boxed(Pin<Box<dyn Future<Output = AuthOutcome> + Send>>),
}

impl AuthFuture {
    /// An outcome known without waiting.
    #[must_use]
    pub fn ready(outcome: AuthOutcome) -> Self {
        Self {
            state: AuthFutureState::Ready(Some(outcome)),
        }
    }

    /// An outcome that needs to wait, e.g. on a key store lookup.
    pub fn new(future: impl Future<Output = AuthOutcome> + Send + 'static) -> Self {
        Self {
            state: AuthFutureState::Boxed(Box::pin(future)),
        }
    }
}

impl Future for AuthFuture {
    type Output = AuthOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AuthOutcome> {
        match &mut self.state {
            AuthFutureState::Ready(outcome) => {
                // Polled again after completion: answer "absent" rather than panic.
                Poll::Ready(outcome.take().unwrap_or(AuthOutcome::Absent))
            }
            AuthFutureState::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for AuthFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            AuthFutureState::Ready(_) => "ready",
            AuthFutureState::Boxed(_) => "pending",
        };
        f.debug_struct("AuthFuture").field("state", &state).finish()
    }
}

/// Finds and checks one kind of credentials in a request.
///
/// Implement it to add your own authentication scheme beside the built-in ones; install it
/// with [`AuthenticationLayer`] or the gateway builder's `authenticate`.
pub trait Authenticate: Send + Sync + 'static {
    /// Looks at the request head and answers (see [`AuthOutcome`]).
    ///
    /// Return [`AuthOutcome::Absent`] when the request carries none of your credentials, so
    /// that other authenticators and the authorization rules decide.
    fn authenticate(&self, request: &Parts) -> AuthFuture;

    /// The `WWW-Authenticate` challenge sent when a route needs an identity and the request
    /// has none (`ApiKey realm="api"`). Defaults to none.
    fn challenge(&self) -> Option<Challenge> {
        None
    }

    /// Removes this authenticator's credentials from a request before it is passed on (or,
    /// if you keep them, marks their headers sensitive with `HeaderValue::set_sensitive`).
    /// Called for every request that goes on, whatever the outcome. Defaults to nothing.
    fn strip_credentials(&self, _request: &mut Parts) {}
}

impl<A: Authenticate + ?Sized> Authenticate for Arc<A> {
    fn authenticate(&self, request: &Parts) -> AuthFuture {
        (**self).authenticate(request)
    }

    fn challenge(&self) -> Option<Challenge> {
        (**self).challenge()
    }

    fn strip_credentials(&self, request: &mut Parts) {
        (**self).strip_credentials(request);
    }
}

impl<F> Authenticate for F
where
    F: Fn(&Parts) -> AuthFuture + Send + Sync + 'static,
{
    fn authenticate(&self, request: &Parts) -> AuthFuture {
        self(request)
    }
}

/// The challenges of every installed authenticator, put in the extensions of each request
/// that goes on, so that a later 401 or 403 can name them.
#[derive(Debug, Clone)]
pub struct Challenges(pub(crate) Arc<[Challenge]>);

impl Challenges {
    /// The challenges, in authenticator order.
    #[must_use]
    pub fn as_slice(&self) -> &[Challenge] {
        &self.0
    }
}

/// A predicate over the request head; the gateway uses one to skip authentication on
/// public routes.
pub(crate) type SkipAuthentication = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

#[derive(Clone)]
struct Chain {
    authenticators: Vec<Arc<dyn Authenticate>>,
    challenges: Arc<[Challenge]>,
    renderer: Arc<dyn RejectionResponse>,
    skip: Option<SkipAuthentication>,
}

/// Runs one or more [`Authenticate`] implementations over every request.
///
/// Defaults: problem+json rejections. A CORS preflight is a request like any other here (it
/// carries no credentials): answer preflights with tower-http's `CorsLayer` outside this
/// layer, or with the gateway's `cors`, so that they never reach your service.
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
    pub fn rejection_response(mut self, renderer: impl RejectionResponse) -> Self {
        self.chain_mut().renderer = Arc::new(renderer);
        self
    }

    #[cfg(feature = "authz")]
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
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let (mut parts, body) = request.into_parts();
        let chain = &self.chain;

        if chain.skip.as_ref().is_some_and(|skip| skip(&parts)) {
            for authenticator in &chain.authenticators {
                authenticator.strip_credentials(&mut parts);
            }
            let future = inner.call(Request::from_parts(parts, body));
            return ResponseFuture {
                state: State::Decided {
                    future: crate::future::ResponseFuture::inner(future),
                },
            };
        }

        let current = chain.authenticators[0].authenticate(&parts);
        ResponseFuture {
            state: State::Authenticating {
                pending: Some(Pending {
                    chain: chain.clone(),
                    index: 0,
                    current,
                    found: None,
                    parts,
                    body,
                    service: inner,
                }),
            },
        }
    }
}

struct Pending<S, B> {
    chain: Arc<Chain>,
    index: usize,
    current: AuthFuture,
    found: Option<Principal>,
    parts: Parts,
    body: B,
    service: S,
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
                        Ok(true) => continue,
                        Ok(false) => {
                            let Some(done) = pending.take() else { continue };
                            let (mut service, request) = done.finish();
                            state.set(State::Decided {
                                future: crate::future::ResponseFuture::inner(service.call(request)),
                            });
                        }
                        Err(rejection) => {
                            let response = step.reject(rejection);
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
    /// Takes one authenticator's outcome. `Ok(true)`: another authenticator is to run;
    /// `Ok(false)`: all have run and the request goes on; `Err`: the request is refused.
    fn advance(&mut self, outcome: AuthOutcome) -> Result<bool, Rejection> {
        match outcome {
            AuthOutcome::Absent => {}
            AuthOutcome::Authenticated(principal) => {
                if self.found.is_some() {
                    return Err(Rejection::new(Reason::AmbiguousCredentials).with_detail(
                        "The request carries credentials for more than one identity.",
                    ));
                }
                self.found = Some(principal);
            }
            AuthOutcome::Rejected(rejection) => return Err(rejection),
        }
        self.index += 1;
        match self.chain.authenticators.get(self.index) {
            Some(next) => {
                self.current = next.authenticate(&self.parts);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn finish(mut self) -> (S, Request<B>) {
        for authenticator in &self.chain.authenticators {
            authenticator.strip_credentials(&mut self.parts);
        }
        match &self.found {
            Some(principal) => tracing::debug!(
                target: "portcullis::authenticate",
                outcome = "authenticated",
                subject = principal.subject(),
                method = principal.auth_method().name(),
                "caller authenticated"
            ),
            None => tracing::debug!(
                target: "portcullis::authenticate",
                outcome = "anonymous",
                "no credentials presented"
            ),
        }
        let extensions = &mut self.parts.extensions;
        extensions.insert(Challenges(self.chain.challenges.clone()));
        if let Some(principal) = self.found {
            extensions.insert(principal);
        }
        (self.service, Request::from_parts(self.parts, self.body))
    }

    fn reject(&self, mut rejection: Rejection) -> Response<Bytes> {
        if rejection.challenges().is_empty() && rejection.status() == http::StatusCode::UNAUTHORIZED
        {
            rejection = rejection.with_challenges(self.chain.challenges.clone());
        }
        tracing::info!(
            target: "portcullis::authenticate",
            outcome = "rejected",
            reason = rejection.reason().code(),
            status = rejection.status().as_u16(),
            http.method = %self.parts.method,
            http.path = crate::trace::bounded(self.parts.uri.path()),
            "request refused by authentication"
        );
        rejection.render(&*self.chain.renderer)
    }
}
