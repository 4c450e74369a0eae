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
mod builder;
mod cookie;
mod id_token;
mod layer;
mod login;
mod logout;
mod pages;
mod random;
mod session;
mod token_endpoint;
mod token_http;
mod userinfo;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use self::builder::{
    DEFAULT_ABSOLUTE_TIMEOUT, DEFAULT_COOKIE_NAME, DEFAULT_ID_TOKEN_MAX_AGE, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LEEWAY, DEFAULT_LOGIN_TIMEOUT, DEFAULT_REFRESH_BEFORE,
};

#[cfg(feature = "axum")]
pub use self::authenticator::AccessToken;
pub use self::builder::OidcBuilder;
pub use self::layer::{OidcLayer, OidcService, ResponseFuture};
pub use self::session::{
    MemorySessionStore, Session, SessionId, SessionStore, StoreError, StoreFuture,
};

use self::cookie::CookieSettings;
use self::login::UsedStates;
use crate::bearer::IssuerRules;
use crate::remote::{HttpClient, JwksCache};
use crate::secret::{ClientSecret, SessionKey};

/// An OpenID Connect relying party: its configuration, its session store and the
/// provider's keys. Cheap to clone (an `Arc`); see the [module documentation](self).
#[derive(Clone)]
pub struct Oidc {
    inner: Arc<Inner>,
}

/// Where the requests waiting for a session's refresh read its outcome.
pub(crate) type RefreshFlight = tokio::sync::watch::Receiver<Option<authenticator::Flown>>;

pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<ClientSecret>,
    /// How the client secret is sent (`client_secret_basic` or `client_secret_post`).
    pub(crate) client_auth: oauth2::AuthType,
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
    /// The refresh in flight per session: its outcome, once published.
    pub(crate) refreshing: Mutex<HashMap<SessionId, RefreshFlight>>,
    /// Bounds the token-endpoint requests in flight (code exchanges, refreshes,
    /// revocations).
    pub(crate) token_requests: tokio::sync::Semaphore,
    /// The oauth2 client for the provider's current metadata.
    pub(crate) provider_client: Mutex<token_endpoint::CachedClient>,
    /// Where the login routes report their decisions.
    pub(crate) observer: Arc<dyn crate::observe::Observe>,
    pub(crate) clock: Clock,
}

/// Our clock for token and session times (`exp`, `iat`, `auth_time`, session ends): the
/// system's wall clock, read at every use, so that it stays right across a suspend or a
/// clock step (a monotonic clock that stops during a suspend would accept expired tokens).
#[derive(Debug)]
pub(crate) enum Clock {
    /// `SystemTime::now()`.
    System,
    /// For unit tests: the wall clock when built, advanced by tokio's clock (so that tests
    /// can move time with tokio's paused clock).
    #[cfg(test)]
    FollowingTokio {
        wall: SystemTime,
        start: tokio::time::Instant,
    },
}

impl Clock {
    fn new() -> Self {
        #[cfg(test)]
        {
            Self::FollowingTokio {
                wall: SystemTime::now(),
                start: tokio::time::Instant::now(),
            }
        }
        #[cfg(not(test))]
        {
            Self::System
        }
    }

    /// Seconds since the Unix epoch, with fractions.
    pub(crate) fn now(&self) -> f64 {
        let now = match self {
            Self::System => SystemTime::now(),
            #[cfg(test)]
            Self::FollowingTokio { wall, start } => {
                *wall + tokio::time::Instant::now().saturating_duration_since(*start)
            }
        };
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
            observer: None,
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

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_is_the_wall_clock_whatever_tokio_says() {
        // Tokio's clock running ahead (or a monotonic clock that disagrees with the wall
        // clock after a suspend or a step) does not move token times.
        let clock = Clock::System;
        tokio::time::advance(Duration::from_secs(3600)).await;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (clock.now() - wall).abs() < 5.0,
            "{} vs {wall}",
            clock.now()
        );
    }
}
