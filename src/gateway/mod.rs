//! [`GatewaySecurityLayer`]: authentication, authorization and validation in one layer.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::authenticate::{Authenticate, Authentication, AuthenticationLayer};
use crate::authz::{Authorize, AuthorizeLayer, RouteRules};
use crate::body::ResponseBody;
use crate::error::ConfigError;
use crate::rejection::{RejectionResponse, default_renderer};
#[cfg(feature = "validate")]
use crate::validate::{Validate, ValidateLayer, ValidationRules};

/// Authentication then authorization, assembled and checked as one policy.
///
/// ```text
/// request ──► authenticate ──► authorize ──► validate ──► your service
///             every installed   the route     schemas, JSON
///             authenticator     rules         limits (400 /
///             (401 / 400 / 503) (401 / 403)   408 / 413 / 415)
/// ```
///
/// The order never changes: nothing is authorized before the caller is known, and nothing
/// parses a body for a caller who is not allowed in (validation needs the `validate`
/// feature and [`GatewaySecurityBuilder::validate`]). The layer
/// is a stack of the public [`AuthenticationLayer`], [`AuthorizeLayer`] and (with the
/// `validate` feature) `ValidateLayer`, so each part
/// behaves exactly as it does alone, plus one thing only the whole can do: on `public()`
/// routes, credentials are not even looked at (so `/health` never touches a key store).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use http::{Request, StatusCode};
/// use portcullis::GatewaySecurityLayer;
/// use portcullis::api_key::{ApiKeyAuthenticator, KeyStore, MemoryKeyStore, NewKey};
/// use portcullis::authz::{RouteRules, public, role};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryKeyStore::new());
/// let viewer = store.issue(NewKey::for_owner("vera").roles(["viewer"])).await?;
///
/// let security = GatewaySecurityLayer::builder()
///     .authenticate(ApiKeyAuthenticator::new(store))
///     .rules(
///         RouteRules::builder()
///             .role("admin", ["*"])
///             .role("viewer", ["reports:read"])
///             .route("GET /health", public())
///             .route("GET /admin", role("admin"))
///             .build()?,
///     )
///     .build()?;
/// let app = Router::new()
///     .route("/health", get(|| async { "ok" }))
///     .route("/admin", get(|| async { "secret" }))
///     .layer(security);
///
/// let request = Request::get("/admin")
///     .header("x-api-key", viewer.key.expose_secret())
///     .body(axum::body::Body::empty())?;
/// assert_eq!(app.oneshot(request).await?.status(), StatusCode::FORBIDDEN);
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct GatewaySecurityLayer {
    authenticate: AuthenticationLayer,
    authorize: AuthorizeLayer,
    #[cfg(feature = "validate")]
    validate: ValidateLayer,
}

/// The stack inside [`GatewaySecurity`], innermost last.
#[cfg(feature = "validate")]
type Stack<S> = Authentication<Authorize<Validate<S>>>;
#[cfg(not(feature = "validate"))]
type Stack<S> = Authentication<Authorize<S>>;

/// The request body the service behind the gateway receives.
#[cfg(feature = "validate")]
type InnerBody<B> = crate::validate::RequestBody<B>;
#[cfg(not(feature = "validate"))]
type InnerBody<B> = B;

/// The response body of the gateway's service.
#[cfg(feature = "validate")]
type OuterBody<B> = ResponseBody<ResponseBody<ResponseBody<B>>>;
#[cfg(not(feature = "validate"))]
type OuterBody<B> = ResponseBody<ResponseBody<B>>;

impl GatewaySecurityLayer {
    /// Starts a gateway configuration.
    pub fn builder() -> GatewaySecurityBuilder {
        GatewaySecurityBuilder::default()
    }
}

impl fmt::Debug for GatewaySecurityLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("GatewaySecurityLayer");
        debug
            .field("authenticate", &self.authenticate)
            .field("authorize", &self.authorize);
        #[cfg(feature = "validate")]
        debug.field("validate", &self.validate);
        debug.finish()
    }
}

impl<S> Layer<S> for GatewaySecurityLayer {
    type Service = GatewaySecurity<S>;

    fn layer(&self, inner: S) -> GatewaySecurity<S> {
        #[cfg(feature = "validate")]
        let inner = self.validate.layer(inner);
        GatewaySecurity {
            inner: self.authenticate.layer(self.authorize.layer(inner)),
        }
    }
}

/// The service made by [`GatewaySecurityLayer`].
#[derive(Clone)]
pub struct GatewaySecurity<S> {
    inner: Stack<S>,
}

impl<S: fmt::Debug> fmt::Debug for GatewaySecurity<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewaySecurity")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for GatewaySecurity<S>
where
    S: Service<Request<InnerBody<B>>, Response = Response<ResBody>> + Clone,
    Stack<S>: Service<Request<B>, Response = Response<OuterBody<ResBody>>, Error = S::Error>,
{
    type Response = Response<OuterBody<ResBody>>;
    type Error = S::Error;
    type Future = <Stack<S> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.inner.call(request)
    }
}

/// Configures a [`GatewaySecurityLayer`]. Every setting documents its default.
#[derive(Default)]
#[must_use]
pub struct GatewaySecurityBuilder {
    authenticators: Vec<Arc<dyn Authenticate>>,
    rules: Option<RouteRules>,
    #[cfg(feature = "validate")]
    validation: Option<ValidationRules>,
    report_only: bool,
    allow_cors_preflight: bool,
    renderer: Option<Arc<dyn RejectionResponse>>,
}

impl fmt::Debug for GatewaySecurityBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewaySecurityBuilder")
            .field("authenticators", &self.authenticators.len())
            .field("rules", &self.rules)
            .field("report_only", &self.report_only)
            .field("allow_cors_preflight", &self.allow_cors_preflight)
            .finish_non_exhaustive()
    }
}

impl GatewaySecurityBuilder {
    /// Adds an authenticator (API key, bearer, OIDC, or your own). They run in the order
    /// added; a request with good credentials for two of them is refused.
    pub fn authenticate(mut self, authenticator: impl Authenticate) -> Self {
        self.authenticators.push(Arc::new(authenticator));
        self
    }

    /// The route rules. Required.
    pub fn rules(mut self, rules: RouteRules) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Request validation, run after authorization: nothing parses a body for a caller who
    /// is not allowed in. Defaults to none (requests pass unvalidated).
    #[cfg(feature = "validate")]
    pub fn validate(mut self, rules: ValidationRules) -> Self {
        self.validation = Some(rules);
        self
    }

    /// Report-only (shadow) authorization: decide and log, let everything through.
    /// Authentication still refuses bad credentials. Defaults to false.
    pub fn report_only(mut self, report_only: bool) -> Self {
        self.report_only = report_only;
        self
    }

    /// Lets CORS preflight requests through authentication and authorization untouched
    /// (validation rules for `OPTIONS`, if any, still apply). Defaults to false: put
    /// tower-http's `CorsLayer` outside the gateway instead, where it answers preflights
    /// before they reach us.
    pub fn allow_cors_preflight(mut self, allow: bool) -> Self {
        self.allow_cors_preflight = allow;
        self
    }

    /// Renders every rejection with `renderer` instead of problem+json.
    pub fn rejection_response(mut self, renderer: impl RejectionResponse) -> Self {
        self.renderer = Some(Arc::new(renderer));
        self
    }

    /// Checks the whole policy and builds the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingRules`] without rules; [`ConfigError::NoAuthenticator`] without
    /// an authenticator.
    pub fn build(self) -> Result<GatewaySecurityLayer, ConfigError> {
        let rules = self.rules.ok_or(ConfigError::MissingRules)?;
        let mut authenticators = self.authenticators.into_iter();
        let Some(first) = authenticators.next() else {
            return Err(ConfigError::NoAuthenticator);
        };
        let renderer = self.renderer.unwrap_or_else(default_renderer);
        let public_routes = rules.clone();
        let authenticate = authenticators
            .fold(
                AuthenticationLayer::new_shared(first),
                AuthenticationLayer::and_shared,
            )
            .allow_cors_preflight(self.allow_cors_preflight)
            .renderer(renderer.clone())
            .skip_when(Arc::new(move |request| {
                public_routes.is_public(&request.method, request.uri.path())
            }));
        let authorize = AuthorizeLayer::new(rules)
            .report_only(self.report_only)
            .allow_cors_preflight(self.allow_cors_preflight)
            .renderer(renderer.clone());
        #[cfg(feature = "validate")]
        let validate = {
            let rules = match self.validation {
                Some(rules) => rules,
                None => ValidationRules::builder().build()?,
            };
            ValidateLayer::new(rules).renderer(renderer)
        };
        #[cfg(not(feature = "validate"))]
        drop(renderer);
        Ok(GatewaySecurityLayer {
            authenticate,
            authorize,
            #[cfg(feature = "validate")]
            validate,
        })
    }
}
