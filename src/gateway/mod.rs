//! [`GatewaySecurityLayer`]: the shield, rate limits, authentication, authorization and
//! validation in one layer.

mod future;
mod reload;
mod stages;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
#[cfg(feature = "cors")]
use tower_http::cors::{Cors, CorsLayer};
use tower_layer::Layer;
use tower_service::Service;

pub use self::future::ResponseFuture;
pub use self::reload::{ReloadHandle, Reloadable, ReloadableLayer};
use self::stages::Stages;
use crate::authenticate::{Authenticate, Authentication, AuthenticationLayer};
use crate::authz::{Authorize, AuthorizeLayer, RouteRules};
use crate::body::ResponseBody;
use crate::error::ConfigError;
use crate::observe::{Observe, default_observer};
#[cfg(feature = "oidc")]
use crate::oidc::{Oidc, OidcLayer, OidcService};
#[cfg(feature = "rate-limit")]
use crate::rate_limit::{RateLimit, RateLimitLayer};
use crate::rejection::{RejectionResponse, default_renderer};
#[cfg(feature = "shield")]
use crate::shield::{Shield, ShieldLayer};
#[cfg(feature = "validate")]
use crate::validate::{Validate, ValidateLayer, ValidationRules};

/// The shield, rate limits, authentication, authorization and validation, assembled and
/// checked as one policy.
///
/// ```text
/// request ─► shield ──────► limit ───► login ────► authenticate ─► authorize ─► limit ────► validate ─► service
///            IP rules,      per IP     OIDC routes every installed the route    per key,    schemas, JSON
///            brute-force    (429)      (`login`,   authenticator   rules        subject,    limits (400 /
///            blocks (403 /             oidc only)  (401/400/503)   (401 / 403)  tenant, …   408 / 413 /
///            429 / 400 / 503)                                                   (429)       415)
/// ```
///
/// With the traffic features, a shield (IP rules, brute-force blocks) and a per-IP rate
/// limit come before authentication, and per-identity rate limits between authorization
/// and validation ([`shield`](GatewaySecurityBuilder::shield),
/// [`rate_limit_before_auth`](GatewaySecurityBuilder::rate_limit_before_auth),
/// [`rate_limit`](GatewaySecurityBuilder::rate_limit)); each is a pass-through until set.
///
/// The order never changes: a blocked or denied source costs no key lookup, nothing is
/// authorized before the caller is known, and nothing parses a body for a caller who is not
/// allowed in (validation needs the `validate` feature and
/// [`GatewaySecurityBuilder::validate`]). The layer is a stack of the public `ShieldLayer`
/// and `RateLimitLayer` (with the traffic features), [`AuthenticationLayer`],
/// [`AuthorizeLayer`] and (with the `validate` feature) `ValidateLayer`, so each part
/// behaves exactly as it does alone, plus one thing only the whole can do: on `public()`
/// routes, credentials are not even looked at (so `/health` never touches a key store).
/// With only authentication, authorization and validation configured, the stack is those
/// three layers: the others are not even pass-throughs.
///
/// # CORS
///
/// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) carries no
/// credentials, so without CORS it is a request like any other: refused unless a rule
/// makes its route public. With the `cors` feature, [`GatewaySecurityBuilder::cors`] puts
/// tower-http's `CorsLayer` in front of everything: it answers every `OPTIONS` request
/// itself, so no preflight (nor any other `OPTIONS` request) ever reaches your service,
/// and it adds the CORS headers to every other response, refusals included.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use http::{Request, StatusCode};
/// use portcullis::GatewaySecurityLayer;
/// use portcullis::api_key::{ApiKeyAuthenticator, KeyAdmin, MemoryKeyStore, NewKey};
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
    #[cfg(feature = "shield")]
    shield: ShieldLayer,
    #[cfg(feature = "rate-limit")]
    limit_before_auth: RateLimitLayer,
    #[cfg(feature = "rate-limit")]
    limit: RateLimitLayer,
    #[cfg(feature = "oidc")]
    login: OidcLayer,
    #[cfg(feature = "cors")]
    cors: Option<CorsLayer>,
}

// Each optional layer is a type of its own when its feature is on (a pass-through when not
// configured), and nothing when it is off.
#[cfg(feature = "validate")]
type WithValidate<S> = Validate<S>;
#[cfg(not(feature = "validate"))]
type WithValidate<S> = S;
#[cfg(feature = "rate-limit")]
type WithLimit<S> = RateLimit<S>;
#[cfg(not(feature = "rate-limit"))]
type WithLimit<S> = S;
#[cfg(feature = "shield")]
type WithShield<S> = Shield<S>;
#[cfg(not(feature = "shield"))]
type WithShield<S> = S;
#[cfg(feature = "oidc")]
type WithLogin<S> = OidcService<S>;
#[cfg(not(feature = "oidc"))]
type WithLogin<S> = S;

/// The stages from authentication on, innermost last.
type Core<S> = Authentication<Authorize<WithLimit<WithValidate<S>>>>;

/// Authentication, authorization and validation alone (see `stages.rs`); the same as
/// [`Core`] without the `rate-limit` feature.
type Lean<S> = Authentication<Authorize<WithValidate<S>>>;

/// The stack inside [`GatewaySecurity`], innermost last: the stages before authentication
/// around [`Core`].
type Stack<S> = WithShield<WithLimit<WithLogin<Core<S>>>>;

/// The request body the service behind the gateway receives.
#[cfg(feature = "validate")]
type InnerBody<B> = crate::validate::RequestBody<B>;
#[cfg(not(feature = "validate"))]
type InnerBody<B> = B;

#[cfg(feature = "validate")]
type ValidateBody<B> = ResponseBody<B>;
#[cfg(not(feature = "validate"))]
type ValidateBody<B> = B;
#[cfg(feature = "rate-limit")]
type LimitBody<B> = ResponseBody<B>;
#[cfg(not(feature = "rate-limit"))]
type LimitBody<B> = B;
#[cfg(feature = "shield")]
type ShieldBody<B> = ResponseBody<B>;
#[cfg(not(feature = "shield"))]
type ShieldBody<B> = B;
#[cfg(feature = "oidc")]
type LoginBody<B> = ResponseBody<B>;
#[cfg(not(feature = "oidc"))]
type LoginBody<B> = B;

/// The response body of [`Core`].
type CoreBody<B> = ResponseBody<ResponseBody<LimitBody<ValidateBody<B>>>>;

/// The response body of [`Lean`].
type LeanBody<B> = ResponseBody<ResponseBody<ValidateBody<B>>>;

/// The response body of the gateway's service.
type OuterBody<B> = ShieldBody<LimitBody<LoginBody<CoreBody<B>>>>;

impl GatewaySecurityLayer {
    /// Starts a gateway configuration.
    pub fn builder() -> GatewaySecurityBuilder {
        GatewaySecurityBuilder::default()
    }

    /// Whether the gateway can answer now: every authenticator's keys loaded and stores
    /// reachable (see [`Authenticate::ready`](crate::Authenticate::ready)). For readiness
    /// probes; asking starts a key fetch that has not happened yet.
    ///
    /// # Errors
    ///
    /// The first authenticator that cannot answer, and why.
    pub fn ready(&self) -> impl Future<Output = Result<(), crate::NotReady>> + Send + 'static {
        self.authenticate.ready()
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
        #[cfg(feature = "shield")]
        debug.field("shield", &self.shield);
        #[cfg(feature = "rate-limit")]
        debug
            .field("limit_before_auth", &self.limit_before_auth)
            .field("limit", &self.limit);
        #[cfg(feature = "oidc")]
        debug.field("login", &self.login);
        #[cfg(feature = "cors")]
        debug.field("cors", &self.cors);
        debug.finish()
    }
}

impl GatewaySecurityLayer {
    /// Whether every stage before authentication (shield, per-IP limits, login) is a
    /// pass-through, so that requests can go straight to authentication.
    fn nothing_before_authentication(&self) -> bool {
        let at_core = true;
        #[cfg(feature = "shield")]
        let at_core = at_core && self.shield.is_pass_through();
        #[cfg(feature = "rate-limit")]
        let at_core = at_core && self.limit_before_auth.is_pass_through();
        #[cfg(feature = "oidc")]
        let at_core = at_core && self.login.is_pass_through();
        at_core
    }
}

impl<S> Layer<S> for GatewaySecurityLayer {
    type Service = GatewaySecurity<S>;

    fn layer(&self, inner: S) -> GatewaySecurity<S> {
        let stack = Stages::new(self, inner);
        #[cfg(feature = "cors")]
        if let Some(cors) = &self.cors {
            // `build()` has checked that this layer's rules are usable: no panic here.
            return GatewaySecurity {
                inner: Front::Cors(cors.layer(stack)),
            };
        }
        GatewaySecurity {
            inner: Front::Plain(stack),
        }
    }
}

/// The service made by [`GatewaySecurityLayer`].
#[derive(Clone)]
pub struct GatewaySecurity<S> {
    inner: Front<S>,
}

/// What stands first in the gateway: its stages, or CORS in front of them.
// One is chosen per layer and never changes; boxing the large one would cost an
// allocation on every clone (axum clones the service per request).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Front<S> {
    Plain(Stages<S>),
    #[cfg(feature = "cors")]
    Cors(Cors<Stages<S>>),
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
    Core<S>: Service<Request<B>, Response = Response<CoreBody<ResBody>>, Error = S::Error>,
    Lean<S>: Service<Request<B>, Response = Response<LeanBody<ResBody>>, Error = S::Error>,
{
    type Response = Response<OuterBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        match &mut self.inner {
            Front::Plain(stack) => stack.poll_ready(cx),
            #[cfg(feature = "cors")]
            Front::Cors(cors) => cors.poll_ready(cx),
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match &mut self.inner {
            Front::Plain(stack) => ResponseFuture::plain(stack.call(request)),
            #[cfg(feature = "cors")]
            Front::Cors(cors) => ResponseFuture::cors(cors.call(request)),
        }
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
    observer: Option<Arc<dyn Observe>>,
    #[cfg(feature = "cors")]
    cors: Option<CorsLayer>,
    #[cfg(feature = "shield")]
    shield: Option<ShieldLayer>,
    #[cfg(feature = "rate-limit")]
    limit_before_auth: Option<RateLimitLayer>,
    #[cfg(feature = "rate-limit")]
    limit: Option<RateLimitLayer>,
    /// The login, and where its authenticator goes among the others.
    #[cfg(feature = "oidc")]
    login: Option<(Oidc, usize)>,
    renderer: Option<Arc<dyn RejectionResponse>>,
}

impl fmt::Debug for GatewaySecurityBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewaySecurityBuilder")
            .field("authenticators", &self.authenticators.len())
            .field("rules", &self.rules)
            .field("report_only", &self.report_only)
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

    /// **Dangerous**: report-only (shadow) authorization, which turns the rules *off*:
    /// every decision is reported (would-be refusals as `warn` events, outcome
    /// `would_refuse`) and **every request is let through**, anonymous ones to protected
    /// routes included. Authentication still refuses bad credentials, and validation still
    /// runs. For trying new rules on real traffic, never for protecting anything; `build()`
    /// logs a warning. Defaults to off (enforcing).
    pub fn dangerous_report_only(mut self) -> Self {
        self.report_only = true;
        self
    }

    /// Reports every decision of every step to `observer` instead of the default
    /// [`TracingObserver`](crate::observe::TracingObserver).
    pub fn observer(mut self, observer: Arc<dyn Observe>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Answers CORS with `cors` (tower-http's `CorsLayer`), put in front of everything:
    /// every `OPTIONS` request is answered by it and never reaches authentication, the
    /// rules or your service; every other response, refusals included, gets its CORS
    /// headers. Defaults to none: a preflight is then a request like any other, refused
    /// unless a rule makes its route public.
    #[cfg(feature = "cors")]
    pub fn cors(mut self, cors: CorsLayer) -> Self {
        self.cors = Some(cors);
        self
    }

    /// The shield, in front of everything: the client IP, IP rules and brute-force
    /// blocking, decided before any credential is looked at. Defaults to none.
    ///
    /// With the gateway's [`observer`](Self::observer) or
    /// [`rejection_response`](Self::rejection_response) set, the shield uses those.
    #[cfg(feature = "shield")]
    pub fn shield(mut self, shield: ShieldLayer) -> Self {
        self.shield = Some(shield);
        self
    }

    /// Rate limits checked before authentication (after the shield): per client IP, so an
    /// anonymous flood never reaches a key store, an introspection endpoint or a login
    /// flow. Only limits keyed by [`ClientIp`](crate::rate_limit::LimitKey::ClientIp),
    /// route or shared, without tiers, fit here. Defaults to none.
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit_before_auth(mut self, limits: RateLimitLayer) -> Self {
        self.limit_before_auth = Some(limits);
        self
    }

    /// Rate limits checked after authorization, before validation: per API key, subject,
    /// client, tenant or route, with tiers chosen from the caller. Defaults to none.
    #[cfg(feature = "rate-limit")]
    pub fn rate_limit(mut self, limits: RateLimitLayer) -> Self {
        self.limit = Some(limits);
        self
    }

    /// Browser login with `oidc` inside the gateway: its routes (login, callback, logout,
    /// back-channel logout) answered after the shield and the limits before authentication,
    /// so that they are shielded and limited like every request and a failed login counts
    /// against its source; and its sessions authenticated, `oidc` taking its place among the
    /// authenticators at this point of the order they are added in (do not also give it to
    /// [`authenticate`](Self::authenticate): two authenticators taking the same cookie
    /// refuse it as ambiguous). A `401` for a browser becomes a redirect to the login. The
    /// routes' decisions go to the gateway's [`observer`](Self::observer) when one is set.
    /// The back-channel logout route is shielded and limited too: let the provider's
    /// addresses through the IP rules and the limits before authentication. Defaults to
    /// none; a second call replaces the first.
    #[cfg(feature = "oidc")]
    pub fn login(mut self, oidc: Oidc) -> Self {
        self.login = Some((oidc, self.authenticators.len()));
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
    /// an authenticator; [`ConfigError::InvalidCors`] for a CORS configuration tower-http
    /// refuses (credentials with a wildcard); `ConfigError::InvalidRateLimit` for a limit
    /// before authentication keyed by the caller's identity or with tiers.
    pub fn build(self) -> Result<GatewaySecurityLayer, ConfigError> {
        let rules = self.rules.ok_or(ConfigError::MissingRules)?;
        #[cfg(feature = "rate-limit")]
        if let Some(name) = self
            .limit_before_auth
            .as_ref()
            .and_then(RateLimitLayer::needs_identity)
        {
            return Err(ConfigError::InvalidRateLimit {
                limit: name.to_owned(),
                reason: "before authentication the caller is unknown: key it by client IP, \
                         route or shared, without tiers, or give it to `rate_limit`"
                    .to_owned(),
            });
        }
        let custom_observer = self.observer.clone();
        let custom_renderer = self.renderer.clone();
        let listed = self.authenticators;
        #[cfg(feature = "oidc")]
        let (listed, login) = with_login(listed, self.login, custom_observer.clone());
        #[cfg(feature = "cors")]
        if let Some(cors) = &self.cors {
            check_cors(cors)?;
        }
        #[cfg(feature = "shield")]
        let identity_sources: Arc<[Arc<dyn Authenticate>]> = listed.clone().into();
        let mut authenticators = listed.into_iter();
        let Some(first) = authenticators.next() else {
            return Err(ConfigError::NoAuthenticator);
        };
        let renderer = self.renderer.unwrap_or_else(default_renderer);
        let observer = self.observer.unwrap_or_else(default_observer);
        let public_routes = rules.clone();
        let authenticate = authenticators
            .fold(
                AuthenticationLayer::new_shared(first),
                AuthenticationLayer::and_shared,
            )
            .renderer(renderer.clone())
            .observer(observer.clone())
            // The one route match of the request: authorization reads it back.
            .match_route(Arc::new(public_routes));
        #[cfg(feature = "validate")]
        let validation = match self.validation {
            Some(validation) => validation,
            None => ValidationRules::builder().build()?,
        };
        // A rule reading the body is decided by the validation stage, on a body it has
        // parsed and checked: the route must have a body schema.
        for rule in rules.body_rules() {
            #[cfg(feature = "validate")]
            let validated = validation.has_body_schema(rule)?;
            #[cfg(not(feature = "validate"))]
            let validated = false;
            if !validated {
                return Err(ConfigError::BodyRuleWithoutSchema {
                    rule: rule.to_owned(),
                });
            }
        }
        let mut authorize = AuthorizeLayer::new(rules)
            .renderer(renderer.clone())
            .observer(observer.clone());
        #[cfg(feature = "validate")]
        {
            authorize = authorize.defer_body_rules();
        }
        if self.report_only {
            authorize = authorize.dangerous_report_only();
        }
        #[cfg(feature = "validate")]
        let validate = ValidateLayer::new(validation)
            .renderer(renderer)
            .observer(observer);
        #[cfg(not(feature = "validate"))]
        drop((renderer, observer));
        #[cfg(feature = "shield")]
        let shield = self
            .shield
            .map_or_else(ShieldLayer::pass_through, |shield| {
                let authenticators = identity_sources.clone();
                let identity: crate::shield::ClaimedIdentity = Arc::new(move |parts| {
                    authenticators
                        .iter()
                        .find_map(|authenticator| authenticator.claimed_identity(parts))
                });
                shield.with_gateway(custom_observer.clone(), custom_renderer.clone(), identity)
            });
        #[cfg(feature = "rate-limit")]
        let [limit_before_auth, limit] = [self.limit_before_auth, self.limit].map(|layer| {
            layer.map_or_else(RateLimitLayer::pass_through, |layer| {
                layer.with_gateway(custom_observer.clone(), custom_renderer.clone())
            })
        });
        #[cfg(not(any(feature = "shield", feature = "rate-limit")))]
        drop((custom_observer, custom_renderer));
        Ok(GatewaySecurityLayer {
            authenticate,
            authorize,
            #[cfg(feature = "validate")]
            validate,
            #[cfg(feature = "shield")]
            shield,
            #[cfg(feature = "rate-limit")]
            limit_before_auth,
            #[cfg(feature = "rate-limit")]
            limit,
            #[cfg(feature = "oidc")]
            login,
            #[cfg(feature = "cors")]
            cors: self.cors,
        })
    }
}

/// The authenticators with the login's in its place, and the login's layer (a pass-through
/// without a login).
#[cfg(feature = "oidc")]
fn with_login(
    mut authenticators: Vec<Arc<dyn Authenticate>>,
    login: Option<(Oidc, usize)>,
    observer: Option<Arc<dyn Observe>>,
) -> (Vec<Arc<dyn Authenticate>>, OidcLayer) {
    match login {
        Some((oidc, position)) => {
            let position = position.min(authenticators.len());
            authenticators.insert(position, Arc::new(oidc.clone()));
            // The login routes' decisions go where the gateway's go.
            (authenticators, OidcLayer::new(oidc).observer(observer))
        }
        None => (authenticators, OidcLayer::none()),
    }
}

/// tower-http checks a `CorsLayer`'s rules only by panicking when it is applied: apply it
/// once here, at build time, and turn that panic into a [`ConfigError`].
#[cfg(feature = "cors")]
fn check_cors(cors: &CorsLayer) -> Result<(), ConfigError> {
    let probe = std::panic::AssertUnwindSafe(|| drop(cors.layer(())));
    std::panic::catch_unwind(probe).map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .unwrap_or_else(|| "refused by tower-http".to_owned());
        ConfigError::InvalidCors { reason }
    })
}
