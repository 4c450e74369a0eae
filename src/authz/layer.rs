//! [`AuthorizeLayer`] and its service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::object::{BodyFacts, Facts, Params};
#[cfg(feature = "validate")]
use super::rules::PendingObjectCheck;
use super::rules::RouteRules;
use crate::authenticate::Challenges;
use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::observe::{self, Observe, Outcome, Stage, default_observer};
use crate::principal::Principal;
use crate::rejection::{Challenge, Reason, Rejection, RejectionResponse, default_renderer};

/// Decides, per request, whether the caller may use the route; see the
/// [module documentation](super).
///
/// Defaults: enforcing (not report-only), problem+json rejections, decisions reported as
/// `tracing` events. A CORS preflight is a
/// request like any other here: answer preflights with tower-http's `CorsLayer` outside
/// this layer (or the gateway's `cors`).
#[derive(Clone)]
#[must_use]
pub struct AuthorizeLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    rules: RouteRules,
    report_only: bool,
    /// Whether a validation stage follows that decides rules reading the body (the
    /// gateway's); alone, such rules are refused.
    defer_body: bool,
    renderer: Arc<dyn RejectionResponse>,
    observer: Arc<dyn Observe>,
}

impl AuthorizeLayer {
    /// A layer enforcing `rules`.
    pub fn new(rules: RouteRules) -> Self {
        Self {
            config: Arc::new(Config {
                rules,
                report_only: false,
                defer_body: false,
                renderer: default_renderer(),
                observer: default_observer(),
            }),
        }
    }

    /// **Dangerous**: report-only (shadow) mode, which turns authorization *off*. Every
    /// request is evaluated and the would-be refusals are reported (`warn` events,
    /// outcome `would_refuse`), but **every request is let through**, anonymous ones to
    /// protected routes included. For trying new rules on real traffic, never for
    /// protecting anything. Logs a warning when set. Defaults to off (enforcing).
    pub fn dangerous_report_only(mut self) -> Self {
        warn_report_only();
        Arc::make_mut(&mut self.config).report_only = true;
        self
    }

    /// Reports every decision to `observer` instead of the default
    /// [`TracingObserver`](crate::observe::TracingObserver).
    pub fn observer(mut self, observer: Arc<dyn Observe>) -> Self {
        Arc::make_mut(&mut self.config).observer = observer;
        self
    }

    /// Renders rejections with `renderer` instead of problem+json.
    pub fn rejection_response(self, renderer: impl RejectionResponse) -> Self {
        self.renderer(Arc::new(renderer))
    }

    pub(crate) fn renderer(mut self, renderer: Arc<dyn RejectionResponse>) -> Self {
        Arc::make_mut(&mut self.config).renderer = renderer;
        self
    }

    /// Leaves rules that read the body to the validation stage that follows (the
    /// gateway's), which decides them once the body is parsed.
    #[cfg(feature = "validate")]
    pub(crate) fn defer_body_rules(mut self) -> Self {
        Arc::make_mut(&mut self.config).defer_body = true;
        self
    }
}

impl fmt::Debug for AuthorizeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeLayer")
            .field("rules", &self.config.rules)
            .field("report_only", &self.config.report_only)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`AuthorizeLayer`].
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Authorize<S> {
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

impl<S: fmt::Debug> fmt::Debug for Authorize<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("inner", &self.inner)
            .field("rules", &self.config.rules)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Authorize<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let config = &*self.config;
        if config.rules.maps_roles()
            && let Some(principal) = request.extensions_mut().get_mut::<Principal>()
            && let Some(permissions) = config.rules.resolve_permissions(principal)
        {
            // In place: no copy of the principal unless something else shares it.
            principal.set_permission_names(permissions);
        }

        let started = Instant::now();
        let matched = config.rules.resolve(
            request
                .extensions()
                .get::<Challenges>()
                .and_then(Challenges::route),
            request.method(),
            request.uri().path(),
        );
        let reads = config.rules.reads(matched);
        // Under `require`, path parameters come from the router that matched the route.
        let decoded = if reads.params && matched.index.is_none() {
            router_params(&mut request)
        } else {
            Vec::new()
        };
        let principal = request.extensions().get::<Principal>();
        let decision = if reads.request {
            let facts = Facts {
                path: request.uri().path(),
                params: if matched.index.is_some() {
                    Params::Path
                } else {
                    Params::Decoded(&decoded)
                },
                query: request.uri().query(),
                headers: Some(request.headers()),
                body: BodyFacts::NotYet,
            };
            config
                .rules
                .decide(matched, principal, &facts, config.defer_body)
        } else {
            config.rules.decide(matched, principal, &Facts::NONE, false)
        };
        let outcome = match (&decision.rejection, config.report_only) {
            (None, _) => Outcome::Allowed,
            (Some(_), true) => Outcome::WouldRefuse,
            (Some(_), false) => Outcome::Refused,
        };
        let rejection = decision
            .rejection
            .map(|rejection| with_challenges(rejection, &request));
        // A deferred decision is reported once made, by the validation stage.
        if !decision.deferred {
            config.observer.decision(&observe::Decision {
                stage: Stage::Authorize,
                outcome,
                reason: rejection.as_ref().map(Rejection::reason),
                cause: None,
                status: rejection.as_ref().map(Rejection::status),
                route: Some(decision.rule),
                method: request.method(),
                path: request.uri().path(),
                principal,
                client: observe::Client::Request(request.extensions()),
                limit: None,
                started,
            });
        }
        #[cfg(feature = "validate")]
        let deferred = decision.deferred;
        match rejection {
            Some(rejection) if outcome == Outcome::Refused => {
                ResponseFuture::rejected(rejection.render(&*config.renderer))
            }
            _ => {
                #[cfg(feature = "validate")]
                if deferred {
                    request.extensions_mut().insert(PendingObjectCheck {
                        rules: config.rules.clone(),
                        matched,
                        report_only: config.report_only,
                    });
                }
                ResponseFuture::inner(self.inner.call(request))
            }
        }
    }
}

/// The path parameters axum's router matched, percent-decoded (none outside axum).
fn router_params<B>(request: &mut Request<B>) -> Vec<(String, String)> {
    #[cfg(feature = "axum")]
    {
        use axum::extract::{FromRequestParts, RawPathParams};
        use std::future::Future;
        // axum's extractor reads only the extensions, and completes at once.
        let (mut parts, ()) = Request::new(()).into_parts();
        std::mem::swap(&mut parts.extensions, request.extensions_mut());
        let params = {
            let extracted = std::pin::pin!(RawPathParams::from_request_parts(&mut parts, &()));
            match extracted.poll(&mut Context::from_waker(std::task::Waker::noop())) {
                Poll::Ready(Ok(params)) => params
                    .iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect(),
                _ => Vec::new(),
            }
        };
        std::mem::swap(&mut parts.extensions, request.extensions_mut());
        params
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = request;
        Vec::new()
    }
}

/// Adds the challenges a 401 (all installed authenticators) or an `insufficient_scope` 403
/// (the caller's own scheme) must carry.
fn with_challenges<B>(rejection: Rejection, request: &Request<B>) -> Rejection {
    let challenges = request.extensions().get::<Challenges>();
    if rejection.status() == StatusCode::UNAUTHORIZED {
        return match challenges {
            Some(challenges) => rejection.with_challenges(challenges.shared()),
            None => rejection,
        };
    }
    if rejection.reason() == Reason::InsufficientScope
        && let Some(principal) = request.extensions().get::<Principal>()
    {
        let scheme = principal.auth_method().scheme();
        let realm = challenges
            .and_then(|challenges| {
                challenges
                    .as_slice()
                    .iter()
                    .find(|challenge| challenge.scheme().eq_ignore_ascii_case(scheme))
            })
            .map(Challenge::realm);
        // Only answer in the scheme the caller used, in its installed realm; never invent one.
        if let Some(realm) = realm {
            return rejection.with_challenge(Challenge::new(scheme.to_owned(), realm.to_owned()));
        }
    }
    rejection
}

/// The loud warning that authorization is off.
pub(crate) fn warn_report_only() {
    tracing::warn!(
        target: "portcullis::authorize",
        "authorization is in report-only mode: refusals are only reported and EVERY request \
         is let through; never use this to protect anything"
    );
}
