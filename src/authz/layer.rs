//! [`AuthorizeLayer`] and its service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::rules::RouteRules;
use crate::authenticate::Challenges;
use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::principal::Principal;
use crate::rejection::{Challenge, Reason, Rejection, RejectionResponse, default_renderer};

/// Decides, per request, whether the caller may use the route; see the
/// [module documentation](super).
///
/// Defaults: enforcing (not report-only), problem+json rejections. A CORS preflight is a
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
    renderer: Arc<dyn RejectionResponse>,
}

impl AuthorizeLayer {
    /// A layer enforcing `rules`.
    pub fn new(rules: RouteRules) -> Self {
        Self {
            config: Arc::new(Config {
                rules,
                report_only: false,
                renderer: default_renderer(),
            }),
        }
    }

    /// Report-only (shadow) mode: evaluate every request and emit the decision as a tracing
    /// event, but let every request through. For rolling out new rules safely. Defaults to
    /// false.
    pub fn report_only(mut self, report_only: bool) -> Self {
        Arc::make_mut(&mut self.config).report_only = report_only;
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
        if config.rules.maps_roles() {
            let resolved = request
                .extensions()
                .get::<Principal>()
                .and_then(|principal| config.rules.resolve_permissions(principal));
            if let Some(principal) = resolved {
                request.extensions_mut().insert(principal);
            }
        }

        let principal = request.extensions().get::<Principal>();
        let decision = config
            .rules
            .decide(request.method(), request.uri().path(), principal);
        let subject = principal.map(Principal::subject);
        let Some(rejection) = decision.rejection else {
            tracing::debug!(
                target: "portcullis::authorize",
                outcome = "allowed",
                rule = decision.rule,
                subject,
                http.method = %request.method(),
                "request allowed"
            );
            return ResponseFuture::inner(self.inner.call(request));
        };
        if config.report_only {
            tracing::warn!(
                target: "portcullis::authorize",
                outcome = "would_deny",
                reason = rejection.reason().code(),
                rule = decision.rule,
                subject,
                http.method = %request.method(),
                http.path = crate::trace::bounded(request.uri().path()),
                "report-only: request would be refused; letting it through"
            );
            return ResponseFuture::inner(self.inner.call(request));
        }
        tracing::info!(
            target: "portcullis::authorize",
            outcome = "denied",
            reason = rejection.reason().code(),
            rule = decision.rule,
            subject,
            http.method = %request.method(),
            http.path = crate::trace::bounded(request.uri().path()),
            "request refused by authorization"
        );
        let rejection = with_challenges(rejection, &request);
        ResponseFuture::rejected(rejection.render(&*config.renderer))
    }
}

/// Adds the challenges a 401 (all installed authenticators) or an `insufficient_scope` 403
/// (the caller's own scheme) must carry.
fn with_challenges<B>(rejection: Rejection, request: &Request<B>) -> Rejection {
    let challenges = request.extensions().get::<Challenges>();
    if rejection.status() == StatusCode::UNAUTHORIZED {
        return match challenges {
            Some(challenges) => rejection.with_challenges(challenges.0.clone()),
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
