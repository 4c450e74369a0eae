//! OpenID Connect relying party: browser login with the authorization code flow and PKCE,
//! server-side sessions, token refresh, RP-initiated and back-channel logout.
//!
//! Two pieces, both from one [`Oidc`]:
//!
//! - [`Oidc`] itself is an [`Authenticate`](crate::Authenticate) implementation: it turns
//!   a session cookie into the caller's [`Principal`](crate::Principal) (roles and scopes
//!   mapped as for bearer tokens, [`AuthMethod::Oidc`](crate::AuthMethod::Oidc)),
//!   refreshes the access token shortly before it expires (one refresh per session at a
//!   time), and refuses cross-site writes (CSRF). Put it in an
//!   [`AuthenticationLayer`](crate::AuthenticationLayer) or the gateway beside API keys and
//!   bearer tokens.
//! - [`OidcLayer`] (from [`Oidc::layer`]) goes outside everything else and owns the login
//!   routes: the login start, the callback, logout (`POST`, with an optional `GET`
//!   confirmation page) and the back-channel logout endpoint. It also turns a `401` for a
//!   browser (a `GET` that accepts `text/html` and carries no `Authorization`) into a
//!   redirect to the login.
//!
//! What is where: the browser holds an opaque, random session id (`__Host-` cookie,
//! `Secure`, `HttpOnly`, `SameSite=Lax`) and, during a login, a short-lived login cookie
//! sealed with AES-256-GCM (state, nonce, PKCE verifier, return address); the server holds
//! the session (claims, tokens, expiry) in a [`SessionStore`] under the digest of the id.
//! `docs/oidc.md` in the repository explains the flow and the threat model.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{AuthenticationLayer, Principal};
//! use portcullis::oidc::Oidc;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), portcullis::ConfigError> {
//! let oidc = Oidc::builder("https://login.example.com")
//!     .client_id("orders-web")
//!     .client_secret("s3cret")
//!     .redirect_uri("https://orders.example.com/auth/callback")
//!     .scopes(["openid", "profile", "email"])
//!     .roles_claim("roles")
//!     .idle_timeout(Duration::from_secs(30 * 60))
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|who: Principal| async move { who.subject().to_owned() }))
//!     .layer(AuthenticationLayer::new(oidc.clone()))
//!     .layer(oidc.layer());
//!
//! // A browser without a session is sent to the login, an API client gets 401.
//! let browser = Request::get("/me").header("accept", "text/html").body(Body::empty()).unwrap();
//! let response = app.clone().oneshot(browser).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FOUND);
//! assert_eq!(response.headers()["location"], "/auth/login?return_to=%2Fme");
//!
//! let api = Request::get("/me").header("accept", "application/json").body(Body::empty()).unwrap();
//! let response = app.clone().oneshot(api).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//!
//! // Cross-site writes are refused before anything else: logout needs our origin.
//! let forged = Request::post("/auth/logout")
//!     .header("origin", "https://evil.example")
//!     .body(Body::empty())
//!     .unwrap();
//! assert_eq!(app.oneshot(forged).await.unwrap().status(), StatusCode::FORBIDDEN);
//! # Ok(()) }
//! ```

mod authenticator;
mod cookie;
mod id_token;
mod layer;
mod login;
mod logout;
mod pages;
mod random;
mod session;
mod token_endpoint;
mod userinfo;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "axum")]
pub use self::authenticator::AccessToken;
pub use self::layer::{OidcLayer, OidcService, ResponseFuture};
pub use self::session::{
    MemorySessionStore, Session, SessionId, SessionStore, StoreError, StoreFuture,
};

use self::cookie::CookieSettings;
use self::login::UsedStates;
use crate::bearer::IssuerRules;
use crate::bearer::rules::Profile;
use crate::error::ConfigError;
use crate::remote::{HttpClient, JwksCache, ReqwestClient};
use crate::secret::{ClientSecret, SessionKey};

/// The default idle timeout of a session.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The default absolute timeout of a session.
const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 60 * 60);
/// The default time a login may take, from the redirect to the provider to the callback.
const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The default margin before the access token's expiry at which it is refreshed.
const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// The default bound on an ID token's age (`iat`) when it is received.
const DEFAULT_ID_TOKEN_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// The default leeway for clock differences with the provider.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// The most token-endpoint requests in flight at once; more are answered as if the
/// provider were unavailable (503), so that callbacks cannot make us flood the provider.
const MAX_TOKEN_REQUESTS: usize = 64;
/// The default cookie name (after the `__Host-` prefix).
const DEFAULT_COOKIE_NAME: &str = "portcullis-session";

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret.
    Basic,
    /// `client_secret_post`: id and secret in the form.
    Post,
    /// A public client: the id in the form, PKCE only.
    None,
}

/// An OpenID Connect relying party: its configuration, its session store and the
/// provider's keys. Cheap to clone (an `Arc`); see the [module documentation](self).
#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<ClientSecret>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) redirect_uri: String,
    /// `scheme://host[:port]` of the redirect URI: our origin, for CSRF checks.
    pub(crate) origin: String,
    pub(crate) callback_path: String,
    pub(crate) scopes: String,
    pub(crate) prompt: Option<String>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) acr_values: Vec<String>,
    pub(crate) audiences: Vec<String>,
    /// Whether the userinfo endpoint is asked at login.
    pub(crate) userinfo: bool,
    /// Where roles are in the claims (split), for claims merged from userinfo.
    pub(crate) roles_claim: Option<Vec<String>>,
    pub(crate) id_token_rules: IssuerRules,
    pub(crate) logout_token_rules: IssuerRules,
    pub(crate) jwks: Arc<JwksCache>,
    pub(crate) http: Arc<dyn HttpClient>,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) key: SessionKey,
    pub(crate) cookies: CookieSettings,
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_timeout: Duration,
    pub(crate) login_timeout: Duration,
    pub(crate) refresh_before: Duration,
    pub(crate) login_path: String,
    pub(crate) logout_path: String,
    pub(crate) backchannel_logout_path: Option<String>,
    pub(crate) post_logout_redirect_uri: Option<String>,
    pub(crate) after_logout_path: String,
    pub(crate) logout_confirmation_page: bool,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) browser_redirect: bool,
    pub(crate) browser_media_type: String,
    pub(crate) used_states: Mutex<UsedStates>,
    pub(crate) seen_logout_tokens: Mutex<UsedStates>,
    pub(crate) refreshing: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds the token-endpoint requests in flight (code exchanges, refreshes,
    /// revocations).
    pub(crate) token_requests: tokio::sync::Semaphore,
    pub(crate) clock: Clock,
}

/// Our clock: the wall clock when the relying party was built, advanced by tokio's clock
/// (so that tests can move time with tokio's paused clock).
#[derive(Debug)]
pub(crate) struct Clock {
    wall: SystemTime,
    start: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            wall: SystemTime::now(),
            start: tokio::time::Instant::now(),
        }
    }

    /// Seconds since the Unix epoch, with fractions.
    pub(crate) fn now(&self) -> f64 {
        let now = self.wall + tokio::time::Instant::now().saturating_duration_since(self.start);
        now.duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64())
    }

    /// Whole seconds since the Unix epoch.
    pub(crate) fn now_secs(&self) -> u64 {
        self.now() as u64
    }
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Oidc")
            .field("issuer", &inner.issuer)
            .field("client_id", &inner.client_id)
            .field("client_auth", &inner.client_auth)
            .field("redirect_uri", &inner.redirect_uri)
            .field("scopes", &inner.scopes)
            .field("idle_timeout", &inner.idle_timeout)
            .field("absolute_timeout", &inner.absolute_timeout)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// Starts the configuration of a relying party of the provider `issuer` (its exact
    /// issuer identifier; the provider is found by discovery).
    pub fn builder(issuer: impl Into<String>) -> OidcBuilder {
        OidcBuilder {
            issuer: issuer.into(),
            client_id: None,
            client_secret: None,
            client_secret_post: false,
            redirect_uri: None,
            scopes: vec!["openid".to_owned()],
            prompt: None,
            max_age: None,
            acr_values: Vec::new(),
            audiences: Vec::new(),
            roles_claim: None,
            userinfo: false,
            store: None,
            key: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            absolute_timeout: DEFAULT_ABSOLUTE_TIMEOUT,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            refresh_before: DEFAULT_REFRESH_BEFORE,
            id_token_max_age: DEFAULT_ID_TOKEN_MAX_AGE,
            leeway: DEFAULT_LEEWAY,
            login_path: "/auth/login".to_owned(),
            logout_path: "/auth/logout".to_owned(),
            backchannel_logout_path: Some("/auth/backchannel-logout".to_owned()),
            post_logout_redirect_uri: None,
            after_logout_path: "/".to_owned(),
            logout_confirmation_page: true,
            allowed_origins: Vec::new(),
            browser_redirect: true,
            browser_media_type: "text/html".to_owned(),
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            http_client: None,
            allow_http: false,
            http_cookies_on_loopback: false,
        }
    }

    /// The layer that owns the login routes and redirects browsers to the login.
    pub fn layer(&self) -> OidcLayer {
        OidcLayer::new(self.clone())
    }

    /// The issuer identifier.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The client id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The session store.
    #[must_use]
    pub fn session_store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The provider's key cache (and, once discovery has run, its metadata).
    #[must_use]
    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.inner.jwks
    }

    /// The name of the session cookie (`__Host-portcullis-session` by default).
    #[must_use]
    pub fn session_cookie_name(&self) -> &str {
        &self.inner.cookies.session_name
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Verifies an ID token issued to this client outside the login flow (a native or
    /// single-page app sending the ID token it got): every check of the login except the
    /// ones bound to a login in this browser (`c_hash`, `at_hash`, `auth_time` against
    /// `max_age`); `nonce` is checked when given. Keys come from the provider's JWKS,
    /// fetched if needed (one refetch on an unknown `kid`, rate-limited).
    ///
    /// # Errors
    ///
    /// A [`Rejection`](crate::Rejection): `invalid_credentials` (401) with the reason as
    /// its cause for a token that fails a check, `unavailable` (503) when no key set can
    /// be fetched.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<crate::Principal, crate::Rejection> {
        let expected = id_token::Expected {
            nonce,
            ..id_token::Expected::default()
        };
        match id_token::verify(&self.inner, id_token, &expected).await {
            Ok(identity) => Ok(crate::Principal::builder(
                identity.subject,
                crate::AuthMethod::Oidc,
            )
            .issuer(identity.issuer)
            .roles(identity.roles)
            .claims(identity.claims)
            .build()),
            Err(id_token::Refused::Invalid(cause)) => {
                Err(crate::Rejection::new(crate::Reason::InvalidCredentials).with_cause(cause))
            }
            Err(id_token::Refused::Unavailable) => {
                Err(crate::Rejection::new(crate::Reason::Unavailable)
                    .with_cause("no_keys")
                    .with_retry_after(5))
            }
        }
    }
}

/// Configures an [`Oidc`]; see [`Oidc::builder`]. Every setting documents its default;
/// [`build`](Self::build) checks them all.
#[must_use]
pub struct OidcBuilder {
    issuer: String,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    client_secret_post: bool,
    redirect_uri: Option<String>,
    scopes: Vec<String>,
    prompt: Option<String>,
    max_age: Option<Duration>,
    acr_values: Vec<String>,
    audiences: Vec<String>,
    roles_claim: Option<String>,
    userinfo: bool,
    store: Option<Arc<dyn SessionStore>>,
    key: Option<SessionKey>,
    idle_timeout: Duration,
    absolute_timeout: Duration,
    login_timeout: Duration,
    refresh_before: Duration,
    id_token_max_age: Duration,
    leeway: Duration,
    login_path: String,
    logout_path: String,
    backchannel_logout_path: Option<String>,
    post_logout_redirect_uri: Option<String>,
    after_logout_path: String,
    logout_confirmation_page: bool,
    allowed_origins: Vec<String>,
    browser_redirect: bool,
    browser_media_type: String,
    cookie_name: String,
    http_client: Option<Arc<dyn HttpClient>>,
    allow_http: bool,
    http_cookies_on_loopback: bool,
}

impl fmt::Debug for OidcBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcBuilder")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl OidcBuilder {
    /// The client id registered at the provider. Required.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The client secret, sent with `client_secret_basic` (HTTP Basic) unless
    /// [`client_secret_post`](Self::client_secret_post). Without a secret the client is
    /// public: it authenticates by PKCE alone.
    pub fn client_secret(mut self, secret: impl Into<ClientSecret>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Sends the client secret in the token request's form (`client_secret_post`) instead
    /// of HTTP Basic. Defaults to Basic.
    pub fn client_secret_post(mut self) -> Self {
        self.client_secret_post = true;
        self
    }

    /// Where the provider sends the browser back (the callback), exactly as registered at
    /// the provider. Required; `https`, or `http` to a loopback host with
    /// [`insecure_http_cookies_on_loopback`](Self::insecure_http_cookies_on_loopback).
    /// Its path is the callback route the layer answers; its origin is the one CSRF
    /// checks accept.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// The scopes asked for. Defaults to `openid`; `openid` is added if missing.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        if !self.scopes.iter().any(|scope| scope == "openid") {
            self.scopes.insert(0, "openid".to_owned());
        }
        self
    }

    /// Sends `prompt` (`login`, `consent`, `select_account`, `none`). Defaults to none.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Sends `max_age`: the user must have authenticated at the provider at most this
    /// long ago, and the ID token's `auth_time` is checked against it. Defaults to none.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Sends `acr_values`, and then requires the ID token's `acr` to be one of them.
    /// Defaults to none.
    pub fn acr_values<I, T>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.acr_values = values.into_iter().map(Into::into).collect();
        self
    }

    /// Also trusts ID tokens whose `aud` names `audience` beside our client id (the
    /// client id must always be there, and `azp` must then name us). Defaults to none:
    /// an ID token for several audiences is refused.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Reads roles from the ID token claim at `path` (dotted), as the bearer layer does.
    /// Defaults to none (no roles).
    pub fn roles_claim(mut self, path: impl Into<String>) -> Self {
        self.roles_claim = Some(path.into());
        self
    }

    /// Also asks the provider's userinfo endpoint at login, with the new access token: its
    /// claims fill in what the ID token does not say (the ID token's own claims are kept;
    /// the answer's `sub` must be the ID token's), and roles are read from the merged
    /// claims. Not asked again at refresh. Defaults to off: the ID token alone.
    pub fn userinfo(mut self) -> Self {
        self.userinfo = true;
        self
    }

    /// Keeps sessions in `store`. Defaults to a [`MemorySessionStore`] of 100 000
    /// sessions.
    pub fn session_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Seals login cookies with `key`. Defaults to a random key for this process: give
    /// every instance the same key when a login may end on another instance.
    pub fn session_key(mut self, key: SessionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Ends a session not used for `timeout`. Defaults to 30 minutes.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Ends a session `timeout` after the login, however active. Defaults to 8 hours.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = timeout;
        self
    }

    /// Refuses a callback more than `timeout` after its login started. Defaults to 10
    /// minutes.
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// Refreshes the access token (when there is a refresh token) once it expires within
    /// `margin`. Defaults to 60 seconds.
    pub fn refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before = margin;
        self
    }

    /// Refuses ID tokens issued (`iat`) more than `age` ago. Defaults to 10 minutes.
    pub fn id_token_max_age(mut self, age: Duration) -> Self {
        self.id_token_max_age = age;
        self
    }

    /// Tolerates this much clock difference with the provider. Defaults to 60 s; at most
    /// 300 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The path that starts a login (`?return_to=/path` says where to land). Defaults to
    /// `/auth/login`.
    pub fn login_path(mut self, path: impl Into<String>) -> Self {
        self.login_path = path.into();
        self
    }

    /// The logout path (`POST` logs out; `GET` shows a confirmation form). Defaults to
    /// `/auth/logout`.
    pub fn logout_path(mut self, path: impl Into<String>) -> Self {
        self.logout_path = path.into();
        self
    }

    /// The back-channel logout endpoint's path (register
    /// `<origin><path>` as `backchannel_logout_uri` at the provider). Defaults to
    /// `/auth/backchannel-logout`.
    pub fn backchannel_logout_path(mut self, path: impl Into<String>) -> Self {
        self.backchannel_logout_path = Some(path.into());
        self
    }

    /// Turns the back-channel logout endpoint off. Defaults to on.
    pub fn no_backchannel_logout(mut self) -> Self {
        self.backchannel_logout_path = None;
        self
    }

    /// Where the provider sends the browser after RP-initiated logout
    /// (`post_logout_redirect_uri`, registered at the provider). Defaults to none: the
    /// provider shows its own page.
    pub fn post_logout_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.post_logout_redirect_uri = Some(uri.into());
        self
    }

    /// Where a local logout (a provider without `end_session_endpoint`) lands. Defaults
    /// to `/`.
    pub fn after_logout_path(mut self, path: impl Into<String>) -> Self {
        self.after_logout_path = path.into();
        self
    }

    /// Answers `GET` on the logout path with `405` instead of a confirmation form.
    /// Defaults to the form.
    pub fn no_logout_confirmation_page(mut self) -> Self {
        self.logout_confirmation_page = false;
        self
    }

    /// Also accepts cookie-authenticated writes from `origin` (`https://admin.example.com`),
    /// beside our own origin. Defaults to none.
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// Answers unauthenticated browsers with `401` like API clients instead of
    /// redirecting them to the login. Defaults to redirecting.
    pub fn no_browser_redirect(mut self) -> Self {
        self.browser_redirect = false;
        self
    }

    /// Treats requests whose `Accept` names `media_type` as browsers (redirected to the
    /// login on `401`). Defaults to `text/html`.
    pub fn browser_media_type(mut self, media_type: impl Into<String>) -> Self {
        self.browser_media_type = media_type.into();
        self
    }

    /// Names the session cookie `__Host-<name>` (and login cookies `__Host-<name>-login-…`).
    /// Defaults to `portcullis-session`.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// Talks to the provider through `client` (discovery, keys, token, revocation).
    /// Defaults to a [`ReqwestClient`] with a 5 s timeout, a 1 MiB cap and no redirects
    /// followed.
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Accepts a provider reached over plain `http` on a non-loopback host. Defaults to
    /// false: `https`, or `http` to loopback only.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// For development on `http://127.0.0.1` or `http://localhost`: cookies without
    /// `Secure` and without the `__Host-` prefix (which needs `Secure`). Only accepted with
    /// a loopback `http` redirect URI. Defaults to false.
    pub fn insecure_http_cookies_on_loopback(mut self) -> Self {
        self.http_cookies_on_loopback = true;
        self
    }

    /// Checks the configuration and builds the relying party. Discovery and keys are
    /// fetched in the background on first use; nothing is fetched here.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidOidc`] naming the setting that is missing or unusable
    /// (client id, redirect URI, paths, scopes, timeouts, origins, cookie name);
    /// the issuer rules' errors ([`ConfigError::EmptyIssuer`], [`ConfigError::InvalidUrl`],
    /// [`ConfigError::LeewayTooLarge`], …).
    pub fn build(self) -> Result<Oidc, ConfigError> {
        let invalid = |setting: &'static str, reason: &str| ConfigError::InvalidOidc {
            setting,
            reason: reason.to_owned(),
        };
        let client_id = self
            .client_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| invalid("client_id", "required"))?;
        let redirect_uri = self
            .redirect_uri
            .ok_or_else(|| invalid("redirect_uri", "required"))?;
        let parsed = reqwest::Url::parse(&redirect_uri)
            .map_err(|_| invalid("redirect_uri", "not an absolute URL"))?;
        if parsed.fragment().is_some() || !parsed.username().is_empty() {
            return Err(invalid(
                "redirect_uri",
                "no fragment or credentials allowed",
            ));
        }
        let loopback = parsed.host_str().is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        let secure = match parsed.scheme() {
            "https" => !self.http_cookies_on_loopback,
            "http" if loopback && self.http_cookies_on_loopback => false,
            "http" if loopback => {
                return Err(invalid(
                    "redirect_uri",
                    "plain http needs `insecure_http_cookies_on_loopback()` (development only)",
                ));
            }
            _ => {
                return Err(invalid(
                    "redirect_uri",
                    "must be https (or http to a loopback host, for development)",
                ));
            }
        };
        if self.http_cookies_on_loopback && !(parsed.scheme() == "http" && loopback) {
            return Err(invalid(
                "insecure_http_cookies_on_loopback",
                "only for an http redirect URI on a loopback host",
            ));
        }
        let origin = parsed.origin().ascii_serialization();
        let callback_path = parsed.path().to_owned();
        for (setting, path) in [
            ("login_path", &self.login_path),
            ("logout_path", &self.logout_path),
            ("after_logout_path", &self.after_logout_path),
        ]
        .into_iter()
        .chain(
            self.backchannel_logout_path
                .as_ref()
                .map(|path| ("backchannel_logout_path", path)),
        ) {
            if login::safe_return_path(path).is_none() || path.contains('?') {
                return Err(invalid(
                    setting,
                    "must be an absolute path such as `/auth/login`",
                ));
            }
        }
        let mut paths = vec![&callback_path, &self.login_path, &self.logout_path];
        paths.extend(self.backchannel_logout_path.as_ref());
        for (i, path) in paths.iter().enumerate() {
            if paths[..i].contains(path) {
                return Err(invalid(
                    "login_path",
                    "the login routes must have distinct paths",
                ));
            }
        }
        for scope in &self.scopes {
            if scope.is_empty()
                || !scope
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(invalid("scopes", "a scope is empty or not printable ASCII"));
            }
        }
        if self.idle_timeout.is_zero()
            || self.absolute_timeout.is_zero()
            || self.login_timeout.is_zero()
        {
            return Err(invalid(
                "idle_timeout",
                "timeouts must be greater than zero",
            ));
        }
        if self.idle_timeout > self.absolute_timeout {
            return Err(invalid("idle_timeout", "longer than the absolute timeout"));
        }
        if self.cookie_name.is_empty()
            || !self
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("cookie_name", "letters, digits, `-` and `_` only"));
        }
        let mut allowed_origins = Vec::new();
        for origin in self.allowed_origins {
            let parsed = reqwest::Url::parse(&origin).map_err(|_| {
                invalid(
                    "allowed_origin",
                    "not an origin such as https://app.example",
                )
            })?;
            let serialized = parsed.origin().ascii_serialization();
            if serialized == "null" || parsed.path() != "/" {
                return Err(invalid(
                    "allowed_origin",
                    "not an origin such as https://app.example",
                ));
            }
            allowed_origins.push(serialized);
        }
        if let Some(uri) = &self.post_logout_redirect_uri {
            crate::remote::check_url(uri, true)
                .map_err(|_| invalid("post_logout_redirect_uri", "not an absolute http(s) URL"))?;
        }
        if self.browser_media_type.is_empty() {
            return Err(invalid("browser_media_type", "empty"));
        }
        let client_auth = match (&self.client_secret, self.client_secret_post) {
            (None, true) => return Err(invalid("client_secret_post", "no client secret given")),
            (None, false) => ClientAuth::None,
            (Some(_), false) => ClientAuth::Basic,
            (Some(_), true) => ClientAuth::Post,
        };
        let http: Arc<dyn HttpClient> = match self.http_client {
            Some(client) => client,
            None => Arc::new(
                ReqwestClient::builder()
                    .no_redirects()
                    .build()
                    .map_err(|error| error.into_config_error())?,
            ),
        };
        let mut rules = IssuerRules::builder(self.issuer.clone())
            .audience(client_id.clone())
            .discover()
            .http_client(Arc::clone(&http))
            .leeway(self.leeway)
            .max_token_age(self.id_token_max_age);
        for audience in &self.audiences {
            rules = rules.audience(audience.clone());
        }
        let roles_claim = self
            .roles_claim
            .as_ref()
            .map(|path| path.split('.').map(str::to_owned).collect::<Vec<_>>());
        if let Some(path) = self.roles_claim {
            rules = rules.roles_claim(path);
        }
        if self.allow_http {
            rules = rules.insecure_allow_http();
        }
        let rules = rules.build()?;
        crate::remote::check_url(&self.issuer, self.allow_http)
            .map_err(crate::remote::RemoteError::into_config_error)?;
        let jwks = rules
            .jwks()
            .cloned()
            .ok_or_else(|| invalid("issuer", "no key cache"))?;
        let mut audiences = vec![client_id.clone()];
        audiences.extend(self.audiences);
        Ok(Oidc {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                client_id,
                client_secret: self.client_secret,
                client_auth,
                redirect_uri,
                origin,
                callback_path,
                scopes: self.scopes.join(" "),
                prompt: self.prompt,
                max_age: self.max_age,
                acr_values: self.acr_values,
                audiences,
                userinfo: self.userinfo,
                roles_claim,
                id_token_rules: rules.for_profile(Profile::Id),
                logout_token_rules: rules.for_profile(Profile::Logout),
                jwks,
                http,
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemorySessionStore::new())),
                key: self.key.unwrap_or_else(SessionKey::generate),
                cookies: CookieSettings::new(secure, &self.cookie_name),
                idle_timeout: self.idle_timeout,
                absolute_timeout: self.absolute_timeout,
                login_timeout: self.login_timeout,
                refresh_before: self.refresh_before,
                login_path: self.login_path,
                logout_path: self.logout_path,
                backchannel_logout_path: self.backchannel_logout_path,
                post_logout_redirect_uri: self.post_logout_redirect_uri,
                after_logout_path: self.after_logout_path,
                logout_confirmation_page: self.logout_confirmation_page,
                allowed_origins,
                browser_redirect: self.browser_redirect,
                browser_media_type: self.browser_media_type.to_ascii_lowercase(),
                used_states: Mutex::new(UsedStates::new(login::MAX_PENDING_LOGINS)),
                seen_logout_tokens: Mutex::new(UsedStates::new(login::MAX_PENDING_LOGINS)),
                refreshing: Mutex::new(HashMap::new()),
                token_requests: tokio::sync::Semaphore::new(MAX_TOKEN_REQUESTS),
                clock: Clock::new(),
            }),
        })
    }
}
