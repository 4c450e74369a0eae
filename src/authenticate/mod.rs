//! The [`Authenticate`] extension point and the layer that runs a chain of authenticators.
//!
//! An authenticator looks at the request head and answers ([`AuthOutcome`]): none of its
//! credentials are here, here is the caller's [`Principal`], or its credentials are here
//! but bad (a [`Rejection`]). A login flow may also answer the request itself (a redirect
//! to the identity provider with a cookie) or let it go on and add headers to the
//! response (a refreshed session cookie). The built-in API-key and bearer (and later OIDC)
//! authenticators implement the trait, and so can yours: an HMAC request-signature scheme,
//! a client certificate check, a session lookup.
//!
//! [`AuthenticationLayer`] runs several authenticators over each request, in the order they
//! were added:
//!
//! - a request that carries none of their credentials goes on without a `Principal` (whether
//!   it may is the authorization layer's decision);
//! - a request with bad credentials is refused;
//! - a request with good credentials goes on with the `Principal` in its extensions;
//! - a request with credentials good for two authenticators is refused: we never guess
//!   which identity the caller meant;
//! - a request an authenticator answers itself gets that answer, and no later
//!   authenticator runs.
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

mod chain;
#[cfg(any(feature = "api-key", feature = "bearer"))]
pub(crate) mod credentials;
mod ready;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Response};

#[cfg(feature = "authz")]
pub(crate) use self::chain::MatchRoute;
pub use self::chain::{Authentication, AuthenticationLayer, ResponseFuture};
pub(crate) use self::ready::ready;
pub use self::ready::{NotReady, ReadyFuture};
use crate::principal::Principal;
use crate::rejection::{Challenge, Rejection, RejectionResponse};

/// What an authenticator found in a request.
///
/// New answers may be added (`#[non_exhaustive]`): match with a `_` arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthOutcome {
    /// None of this authenticator's credentials are in the request.
    Absent,
    /// The credentials are good; this is the caller.
    Authenticated(Principal),
    /// The credentials are present but bad, or cannot be checked right now.
    Rejected(Rejection),
    /// Answer the request with this response instead of calling the service (a redirect
    /// to an identity provider with a `Set-Cookie`, a login callback's redirect back). No
    /// later authenticator runs.
    Respond(Response<Bytes>),
    /// Go on, as the caller `principal` (or anonymously), and append `response_headers`
    /// to the service's response (a refreshed or cleared session cookie).
    Continue {
        /// The caller, if the credentials identified one.
        principal: Option<Principal>,
        /// Headers appended to the response the service returns.
        response_headers: HeaderMap,
    },
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

impl AuthFuture {
    /// The outcome, if it was known without waiting.
    pub(crate) fn take_ready(&mut self) -> Option<AuthOutcome> {
        match &mut self.state {
            AuthFutureState::Ready(outcome) => outcome.take(),
            AuthFutureState::Boxed(_) => None,
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

    /// The identity the request's credentials claim, before anything is checked (an API
    /// key's public id), for brute-force protection per identity: the shield counts failures
    /// against it and refuses a blocked identity before its credentials are looked at. Must
    /// be cheap and never wait; never a secret. Defaults to none.
    fn claimed_identity(&self, _request: &Parts) -> Option<Arc<str>> {
        None
    }

    /// Whether this authenticator can answer now: its keys loaded, its store reachable.
    /// Asked by readiness probes ([`GatewaySecurityLayer::ready`](crate::GatewaySecurityLayer::ready)),
    /// never on a request's path; may start what it lacks (a key fetch). Defaults to ready.
    fn ready(&self) -> ReadyFuture {
        ready()
    }
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

    fn claimed_identity(&self, request: &Parts) -> Option<Arc<str>> {
        (**self).claimed_identity(request)
    }

    fn ready(&self) -> ReadyFuture {
        (**self).ready()
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

/// What the authentication layer leaves in the extensions of each request it passes on,
/// for later layers and extractors: the challenges of its authenticators (so a later 401
/// or 403 can name them) and how it renders refusals (so an extractor's refusal looks like
/// the layer's); in the gateway, also the route matched for the request. Cloning is a
/// reference-count increment.
#[derive(Clone)]
pub struct Challenges {
    chain: Arc<chain::Chain>,
    /// The gateway's one route match, for authorization (one extension, not two).
    #[cfg_attr(not(feature = "authz"), allow(dead_code))]
    route: CarriedRoute,
}

/// Put in a response's extensions by a login flow whose attempt failed on what the client
/// presented (a refused authorization code, a forged ID token or login cookie): the shield
/// counts it as an authentication failure, as it counts a 401 for bad credentials.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(any(feature = "oidc", feature = "shield")), allow(dead_code))]
pub(crate) struct FailedLogin;

/// The route match the gateway carries from before authentication to authorization
/// (nothing without authorization rules).
#[cfg(feature = "authz")]
pub(crate) type CarriedRoute = Option<crate::route::RouteMatch>;
#[cfg(not(feature = "authz"))]
pub(crate) type CarriedRoute = ();

impl Challenges {
    pub(crate) fn new(chain: Arc<chain::Chain>, route: CarriedRoute) -> Self {
        Self { chain, route }
    }

    /// The challenges, in authenticator order.
    #[must_use]
    pub fn as_slice(&self) -> &[Challenge] {
        &self.chain.challenges
    }

    /// The route the gateway matched for this request, if it did.
    #[cfg(feature = "authz")]
    pub(crate) fn route(&self) -> Option<&crate::route::RouteMatch> {
        self.route.as_ref()
    }

    /// The rule the gateway matched for this request, as written (`GET /orders/{id}`), for
    /// the decisions of the layers after authentication.
    #[cfg(all(feature = "authz", feature = "rate-limit"))]
    pub(crate) fn route_text(&self) -> Option<&str> {
        self.chain.match_route.as_ref()?.text(&self.route)
    }

    /// The challenges as the shared list a rejection holds.
    #[cfg(any(feature = "authz", feature = "axum"))]
    pub(crate) fn shared(&self) -> Arc<[Challenge]> {
        self.chain.challenges.clone()
    }

    /// The renderer of the layer that passed the request on.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn renderer(&self) -> Arc<dyn RejectionResponse> {
        self.chain.renderer.clone()
    }
}

impl fmt::Debug for Challenges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Challenges").field(&self.as_slice()).finish()
    }
}
