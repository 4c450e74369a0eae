//! [`Proxy`]: a reverse proxy to one HTTP upstream, to put behind the gateway, so that the
//! whole [`GatewaySecurityLayer`](crate::GatewaySecurityLayer) stands in front of a service
//! written in any language. `portcullis serve` is this proxy behind a policy file's gateway.
//!
//! For each request the proxy:
//!
//! - **removes the hop-by-hop headers** (RFC 9110 §7.6.1) both ways: `Connection` and every
//!   header it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`,
//!   `Upgrade` (so no protocol upgrade, WebSocket included, passes the proxy yet);
//! - **refuses what the upstream could read as something else**, before asking it: a path
//!   with dot segments (`..`, `%2e%2e`), `;` parameters, empty segments, encoded slashes or
//!   backslashes, or NUL → 400 (Tomcat, Spring or a normalising server would route it
//!   elsewhere than the rule the gateway matched); `CONNECT` and `TRACE` → 405; and it never
//!   passes on `X-Original-URL`, `X-Rewrite-URL` or the method-override headers;
//! - **hands the caller's identity on** as headers, from the [`Principal`] the gateway put in
//!   the request's extensions: `X-Auth-Subject`, `X-Auth-Method` (`api_key`, `bearer`, …),
//!   `X-Auth-Roles` and `X-Auth-Scopes` (comma-separated, empty when there are none), names
//!   configurable; nothing for an anonymous caller (`optional` and `public` routes). Every
//!   incoming header a client could pass off as one is **removed first, on every request**,
//!   public routes included: those names, the defaults even when names are configured, any
//!   `x-auth-…` header, and the same names spelled with `_` (which CGI and WSGI servers read
//!   as the same variable). The identity goes whole or not at all: a subject or method
//!   outside visible ASCII, or a role or scope that is empty, outside visible ASCII or holds
//!   a comma (it would read as two), is refused with 403 `invalid_claims` rather than passed
//!   on partly;
//! - **and as a signed token**, with the `identity-token` feature and an `IdentityToken`
//!   (`ProxyBuilder::identity_token`): a short-lived JWT (ES256, 60 s by default) signed by
//!   the proxy, naming the caller (`sub`, `auth_method`, `roles`, `scope`), the issuer and
//!   the upstream (`iss`, `aud`), in `X-Auth-Token` by default, for upstreams that verify
//!   rather than trust; a client's own header of that name is removed on every request, and
//!   an anonymous caller gets none (`ProxyBuilder::identity_headers(false)` makes it the one
//!   way the identity arrives). The proxy answers the key set to verify it (the JWKS)
//!   **itself** at the token's `jwks_path` (`/.well-known/jwks.json`), for every method
//!   (`GET`, `HEAD`; others 405), and never forwards that path. Behind a gateway, route that
//!   exact path to the proxy in front of the gateway, so that the policy need not list it
//!   and no other request skips the gateway (see the second example);
//! - **says where the request came from**, as the edge: `Forwarded` (RFC 7239: `for` the
//!   connecting peer or `unknown`, `host` the `Host` the client asked for, `proto=http`) and
//!   `X-Forwarded-For` (the peer) **replace** what the client sent, so a client never picks
//!   the address an upstream trusts as the last hop; `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are set. The peer is axum's `ConnectInfo<SocketAddr>` (with the
//!   `axum` feature) or a `SocketAddr` in the extensions. The `Host` header sent upstream is
//!   the upstream's own. (Behind another proxy, its chain is dropped: trusted proxies are to
//!   come.)
//! - **streams both bodies**: nothing is buffered whole, whatever the size (put a body limit
//!   in front with the gateway's validation where you want one);
//! - **answers upstream failures itself**, as problem+json (or the configured
//!   [`RejectionResponse`]) with reason `unavailable`: **502** when the upstream cannot be
//!   reached or drops the connection before its response head, **504** when the head does not
//!   arrive within the [timeout](ProxyBuilder::timeout). A body that stalls after the head is
//!   not timed.
//!
//! Only `http://` upstreams, over HTTP/1.1, are supported yet; TLS to the upstream is to come.
//! The proxy needs a Tokio runtime.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::Router;
//! use http::{Request, StatusCode};
//! use portcullis::GatewaySecurityLayer;
//! use portcullis::authz::{RouteRules, public};
//! use portcullis::proxy::Proxy;
//! use portcullis::{AuthFuture, AuthOutcome};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Nothing listens on port 9 of the loopback: the upstream is down.
//! let proxy = Proxy::builder("http://127.0.0.1:9")
//!     .timeout(Duration::from_secs(5))
//!     .build()?;
//! let gateway = GatewaySecurityLayer::builder()
//!     .authenticate(|_: &http::request::Parts| AuthFuture::ready(AuthOutcome::Absent))
//!     .rules(RouteRules::builder().route("GET /health", public()).build()?)
//!     .build()?;
//! let app = Router::new().fallback_service(proxy).layer(gateway);
//!
//! let health = Request::get("/health").body(axum::body::Body::empty())?;
//! assert_eq!(app.clone().oneshot(health).await?.status(), StatusCode::BAD_GATEWAY);
//! // A request the policy refuses never reaches the upstream.
//! let other = Request::get("/orders").body(axum::body::Body::empty())?;
//! assert_eq!(app.oneshot(other).await?.status(), StatusCode::FORBIDDEN);
//! # Ok(()) }
//! ```
//!
//! With an identity token (feature `identity-token`), its key set served in front of the
//! gateway:
//!
//! ```
//! # #[cfg(feature = "identity-token")] {
//! use axum::Router;
//! use http::{Request, StatusCode};
//! use portcullis::GatewaySecurityLayer;
//! use portcullis::authz::RouteRules;
//! use portcullis::proxy::{IdentityToken, Proxy};
//! use portcullis::{AuthFuture, AuthOutcome};
//! use tower::{Layer, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! # let pem = IdentityToken::example_key_pem();
//! // `pem`: the P-256 private key, read from a secret store.
//! let token = IdentityToken::builder(pem, "https://gateway.example.com", "orders-service")
//!     .build()?;
//! let jwks_path = token.jwks_path().to_owned();
//! let proxy = Proxy::builder("http://127.0.0.1:9").identity_token(token).build()?;
//! let gateway = GatewaySecurityLayer::builder()
//!     .authenticate(|_: &http::request::Parts| AuthFuture::ready(AuthOutcome::Absent))
//!     .rules(RouteRules::builder().build()?) // every route denied
//!     .build()?;
//! let app = Router::new()
//!     // That exact path to the proxy, which answers it itself; the rest through the gateway.
//!     .route_service(&jwks_path, proxy.clone())
//!     .fallback_service(gateway.layer(proxy));
//!
//! let keys = Request::get("/.well-known/jwks.json").body(axum::body::Body::empty())?;
//! assert_eq!(app.clone().oneshot(keys).await?.status(), StatusCode::OK);
//! let other = Request::get("/.well-known/other").body(axum::body::Body::empty())?;
//! assert_eq!(app.oneshot(other).await?.status(), StatusCode::FORBIDDEN);
//! # Ok::<(), Box<dyn std::error::Error>>(()) })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod future;
mod headers;
#[cfg(feature = "identity-token")]
mod token;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Extensions, HeaderName, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_service::Service;

pub use self::future::ResponseFuture;
use self::headers::{IdentityHeaders, remove_hop_by_hop, set_forwarded};
#[cfg(feature = "identity-token")]
#[cfg_attr(docsrs, doc(cfg(feature = "identity-token")))]
#[doc(inline)]
pub use self::token::{IdentityToken, IdentityTokenBuilder, IdentityTokenError};
#[cfg(all(feature = "identity-token", feature = "config"))]
pub(crate) use self::token::{check_header, check_jwks_path, check_lifetime};

/// Why `name` cannot be an identity header's, if it cannot: `_` in it, a header HTTP or the
/// proxy owns, the client's `authorization`.
pub(crate) fn identity_header_problem(name: &str) -> Option<&'static str> {
    headers::unusable_for_identity(name)
        .or((name == "authorization").then_some("the client's credentials"))
}
use crate::Principal;
use crate::body::ResponseBody;
use crate::rejection::{Reason, Rejection, RejectionResponse, default_renderer};

/// The error type of request bodies on their way upstream.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body sent upstream: the client's, streamed.
type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// A reverse proxy to one `http://` upstream: a tower [`Service`] that never fails (upstream
/// failures are 502 and 504 responses). Cheap to clone; clones share one connection pool.
///
/// See the [module documentation](self) for what it does to each request.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client<HttpConnector, UpstreamBody>,
    scheme: Scheme,
    authority: Authority,
    /// The upstream URL's path without its trailing `/`: requests' paths are appended to it.
    base_path: String,
    timeout: Duration,
    identity: IdentityHeaders,
    #[cfg(feature = "identity-token")]
    token: Option<IdentityToken>,
    renderer: Arc<dyn RejectionResponse>,
}

impl Proxy {
    /// Starts a proxy to `upstream`, an `http://` URL whose path, if any, is put before every
    /// request's path (`http://10.0.0.2:8080/api` sends `GET /orders?x=1` to
    /// `/api/orders?x=1`).
    pub fn builder(upstream: impl Into<String>) -> ProxyBuilder {
        ProxyBuilder {
            upstream: upstream.into(),
            timeout: DEFAULT_TIMEOUT,
            identity: IdentityHeaders::default(),
            #[cfg(feature = "identity-token")]
            token: None,
            renderer: None,
        }
    }

    /// The upstream's address, as requests are sent to it.
    #[must_use]
    pub fn upstream(&self) -> String {
        format!(
            "{}://{}{}",
            self.shared.scheme, self.shared.authority, self.shared.base_path
        )
    }

    /// The identity token the proxy signs, if it has one: where it serves its JWKS.
    #[cfg(feature = "identity-token")]
    #[cfg_attr(docsrs, doc(cfg(feature = "identity-token")))]
    #[must_use]
    pub fn identity_token(&self) -> Option<&IdentityToken> {
        self.shared.token.as_ref()
    }

    /// The URI a request for `uri` is sent to.
    fn target(&self, uri: &Uri) -> Option<Uri> {
        let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let path = format!("{}{path}", self.shared.base_path);
        Uri::builder()
            .scheme(self.shared.scheme.clone())
            .authority(self.shared.authority.clone())
            .path_and_query(path)
            .build()
            .ok()
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Proxy");
        debug
            .field("upstream", &self.upstream())
            .field("timeout", &self.shared.timeout)
            .field("identity", &self.shared.identity);
        #[cfg(feature = "identity-token")]
        debug.field("identity_token", &self.shared.token);
        debug.finish_non_exhaustive()
    }
}

/// The proxy's own answer at its JWKS path: the key set for `GET` and `HEAD`, 405 for the
/// rest; never the upstream's.
#[cfg(feature = "identity-token")]
fn jwks_response(
    token: &IdentityToken,
    method: &Method,
    renderer: &Arc<dyn RejectionResponse>,
) -> ResponseFuture {
    use http::HeaderValue;
    use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
    let mut response = if matches!(*method, Method::GET | Method::HEAD) {
        let body = if *method == Method::GET {
            token.jwks().clone()
        } else {
            Bytes::new()
        };
        let mut response = Response::new(ResponseBody::rejection(body));
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        );
        // The key changes only with a restart: verifiers may keep it for a while.
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        // The length `GET` would send, for `HEAD` too.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(token.jwks().len()));
        response
    } else {
        let rejection = Rejection::new(Reason::InvalidRequest)
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
            .with_detail("The key set is read with GET.");
        future::render(&rejection, &**renderer)
    };
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    ResponseFuture::local(response, renderer.clone())
}

impl<B> Service<Request<B>> for Proxy
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<Incoming>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The client is always ready: it queues for a pooled connection in the future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let shared = &self.shared;
        let (mut parts, body) = request.into_parts();
        #[cfg(feature = "identity-token")]
        if let Some(token) = &shared.token
            && parts.uri.path() == token.jwks_path()
        {
            return jwks_response(token, &parts.method, &shared.renderer);
        }
        let Some(target) = self.target(&parts.uri) else {
            return ResponseFuture::unreachable(shared.renderer.clone());
        };
        if matches!(parts.method, Method::CONNECT | Method::TRACE) {
            let rejection = Rejection::new(Reason::InvalidRequest)
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
                .with_detail("CONNECT and TRACE are not passed on.");
            return ResponseFuture::refused(rejection, shared.renderer.clone());
        }
        if let Some(why) = headers::ambiguous_path(parts.uri.path()) {
            tracing::info!(target: "portcullis::proxy", why, "ambiguous path refused");
            let rejection = Rejection::new(Reason::InvalidRequest)
                .with_cause("ambiguous_path")
                .with_detail("The path could mean another path to the service; it is refused.");
            return ResponseFuture::refused(rejection, shared.renderer.clone());
        }
        let peer = headers::peer(&parts.extensions);
        remove_hop_by_hop(&mut parts.headers);
        if let Err(why) = shared
            .identity
            .replace(&mut parts.headers, parts.extensions.get::<Principal>())
        {
            tracing::warn!(target: "portcullis::proxy", why, "identity cannot be handed on");
            let rejection = Rejection::new(Reason::InvalidClaims)
                .with_detail("The caller's identity cannot be handed on to the service.");
            return ResponseFuture::refused(rejection, shared.renderer.clone());
        }
        #[cfg(feature = "identity-token")]
        if let Some(token) = &shared.token
            && let Err(error) =
                token.replace(&mut parts.headers, parts.extensions.get::<Principal>())
        {
            tracing::warn!(target: "portcullis::proxy", %error, "no identity token for the caller");
            let rejection = match error {
                IdentityTokenError::UnrepresentableScope => Rejection::new(Reason::InvalidClaims)
                    .with_detail("The caller's identity cannot be handed on to the service."),
                _ => Rejection::new(Reason::Unavailable)
                    .with_detail("The caller's identity token could not be made."),
            };
            return ResponseFuture::refused(rejection, shared.renderer.clone());
        }
        set_forwarded(&mut parts.headers, peer, "http");
        parts.uri = target;
        parts.version = Version::HTTP_11;
        // Nothing of this process's request state goes to the client.
        parts.extensions = Extensions::new();
        let body = body.map_err(Into::into).boxed_unsync();
        let upstream = shared.client.request(Request::from_parts(parts, body));
        ResponseFuture::new(
            upstream,
            tokio::time::sleep(shared.timeout),
            shared.renderer.clone(),
        )
    }
}

/// How long the upstream has to send its response head by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures a [`Proxy`]. Every setting documents its default.
#[must_use]
pub struct ProxyBuilder {
    upstream: String,
    timeout: Duration,
    identity: IdentityHeaders,
    #[cfg(feature = "identity-token")]
    token: Option<IdentityToken>,
    renderer: Option<Arc<dyn RejectionResponse>>,
}

impl fmt::Debug for ProxyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ProxyBuilder");
        debug
            .field("upstream", &self.upstream)
            .field("timeout", &self.timeout)
            .field("identity", &self.identity);
        #[cfg(feature = "identity-token")]
        debug.field("identity_token", &self.token);
        debug.finish_non_exhaustive()
    }
}

impl ProxyBuilder {
    /// How long the upstream has, from the moment the request is sent (connecting
    /// included), to send its response head; then the client gets 504. The body is not
    /// timed. Defaults to 30 seconds, long enough for slow reports, short enough that a
    /// hung upstream does not hold connections forever.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The header the caller's subject is handed on in. Defaults to `x-auth-subject`.
    pub fn subject_header(mut self, name: HeaderName) -> Self {
        self.identity.subject = name;
        self
    }

    /// The header the way the caller authenticated (`api_key`, `bearer`, `oidc` or a
    /// custom authenticator's name) is handed on in. Defaults to `x-auth-method`.
    pub fn method_header(mut self, name: HeaderName) -> Self {
        self.identity.method = name;
        self
    }

    /// The header the caller's roles are handed on in, comma-separated. Defaults to
    /// `x-auth-roles`.
    pub fn roles_header(mut self, name: HeaderName) -> Self {
        self.identity.roles = name;
        self
    }

    /// The header the caller's scopes are handed on in, comma-separated. Defaults to
    /// `x-auth-scopes`.
    pub fn scopes_header(mut self, name: HeaderName) -> Self {
        self.identity.scopes = name;
        self
    }

    /// Hands the caller's identity on also as a JWT signed by `token`, in its own header
    /// (beside the identity headers), and answers `token`'s JWKS path itself. No token by
    /// default.
    #[cfg(feature = "identity-token")]
    #[cfg_attr(docsrs, doc(cfg(feature = "identity-token")))]
    pub fn identity_token(mut self, token: IdentityToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Whether the identity headers are set. Defaults to `true`. Turn them off when the
    /// upstream reads only the [identity token](Self::identity_token), so that it is the
    /// one way the identity arrives (a subject the headers could not carry, outside visible
    /// ASCII, then passes too). Incoming headers that could pass for them are removed
    /// either way.
    pub fn identity_headers(mut self, send: bool) -> Self {
        self.identity.send = send;
        self
    }

    /// Renders the proxy's own 502 and 504 with `renderer` instead of problem+json.
    pub fn rejection_response(mut self, renderer: impl RejectionResponse) -> Self {
        self.renderer = Some(Arc::new(renderer));
        self
    }

    /// Checks the settings and builds the proxy (and its connection pool).
    ///
    /// # Errors
    ///
    /// [`ProxyConfigError::InvalidUpstream`] for an upstream that is not an `http://` URL
    /// with a host and no query; [`ProxyConfigError::ZeroTimeout`] for a zero timeout.
    pub fn build(self) -> Result<Proxy, ProxyConfigError> {
        let invalid = |reason| ProxyConfigError::InvalidUpstream {
            url: crate::text::bounded(&self.upstream).to_string(),
            reason,
        };
        let uri: Uri = self.upstream.parse().map_err(|_| invalid("not a URL"))?;
        let parts = uri.into_parts();
        match parts.scheme {
            Some(scheme) if scheme == Scheme::HTTP => {}
            Some(scheme) if scheme == Scheme::HTTPS => {
                return Err(invalid("https upstreams are not supported yet; use http"));
            }
            _ => return Err(invalid("the scheme must be http")),
        }
        let Some(authority) = parts.authority else {
            return Err(invalid("no host"));
        };
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let base_path = match &parts.path_and_query {
            Some(path) if path.query().is_some() => return Err(invalid("it has a query")),
            Some(path) => path.path().trim_end_matches('/').to_owned(),
            None => String::new(),
        };
        if self.timeout.is_zero() {
            return Err(ProxyConfigError::ZeroTimeout);
        }
        let identity = &self.identity;
        let names = [
            &identity.subject,
            &identity.method,
            &identity.roles,
            &identity.scopes,
        ];
        for (index, name) in names.iter().enumerate() {
            let reason = identity_header_problem(name.as_str()).or(names[..index]
                .contains(name)
                .then_some("the name of another identity header"));
            if let Some(reason) = reason {
                return Err(ProxyConfigError::InvalidIdentityHeader {
                    header: name.as_str().to_owned(),
                    reason,
                });
            }
        }
        #[cfg(feature = "identity-token")]
        if let Some(token) = &self.token {
            let taken = [
                &identity.subject,
                &identity.method,
                &identity.roles,
                &identity.scopes,
            ];
            if taken.contains(&token.header()) {
                return Err(ProxyConfigError::InvalidIdentityToken {
                    setting: "header",
                    reason: "the same as an identity header's",
                });
            }
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(self.timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Proxy {
            shared: Arc::new(Shared {
                client,
                scheme: Scheme::HTTP,
                authority,
                base_path,
                timeout: self.timeout,
                identity: self.identity,
                #[cfg(feature = "identity-token")]
                token: self.token,
                renderer: self.renderer.unwrap_or_else(default_renderer),
            }),
        })
    }
}

/// A [`ProxyBuilder`] setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyConfigError {
    /// The upstream is not an `http://` URL with a host and no query.
    #[error("upstream `{url}` refused: {reason}")]
    InvalidUpstream {
        /// The URL, as given (cut if long).
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The timeout is zero: every request would fail.
    #[error("the upstream timeout must be greater than zero")]
    ZeroTimeout,
    /// The identity token's signing key is not a P-256 private key in PEM. The reason says
    /// what was found, never what the key holds.
    #[error("the identity token's signing key is refused: {reason}")]
    InvalidSigningKey {
        /// Why it was refused.
        reason: &'static str,
    },
    /// An identity header's name cannot work: it has `_` (a client's header spelled with
    /// `-` would reach a CGI-style upstream as the same variable), it belongs to the proxy
    /// or HTTP, or two identity headers share it.
    #[error("identity header `{header}` refused: {reason}")]
    InvalidIdentityHeader {
        /// The name.
        header: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An identity token setting cannot work.
    #[error("identity token `{setting}`: {reason}")]
    InvalidIdentityToken {
        /// The setting: `issuer`, `audience`, `lifetime`, `header`, `jwks_path`.
        setting: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
}
