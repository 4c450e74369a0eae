//! [`OidcBuilder`]: every setting of the relying party, with its default, checked at
//! [`build`](OidcBuilder::build).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cookie::CookieSettings;
use super::login::{self, UsedStates};
use super::{Clock, Inner, MemorySessionStore, Oidc, SessionStore};
use crate::bearer::IssuerRules;
use crate::bearer::rules::Profile;
use crate::error::ConfigError;
use crate::remote::{HttpClient, ReqwestClient};
use crate::secret::{ClientSecret, SessionKey};

/// The default idle timeout of a session.
pub(super) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The default absolute timeout of a session.
pub(super) const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 60 * 60);
/// The default time a login may take, from the redirect to the provider to the callback.
pub(super) const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The default margin before the access token's expiry at which it is refreshed.
pub(super) const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// The default bound on an ID token's age (`iat`) when it is received.
pub(super) const DEFAULT_ID_TOKEN_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// The default leeway for clock differences with the provider.
pub(super) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// The longest absolute and idle timeout, `refresh_before` and `max_age`: 400 days (the
/// longest cookie lifetime browsers keep, RFC 6265bis).
pub(super) const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(400 * 24 * 60 * 60);
/// The longest login timeout: one day.
pub(super) const MAX_LOGIN_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// The most token-endpoint requests in flight at once; more are answered as if the
/// provider were unavailable (503), so that callbacks cannot make us flood the provider.
pub(super) const MAX_TOKEN_REQUESTS: usize = 64;
/// The default cookie name (after the `__Host-` prefix).
pub(super) const DEFAULT_COOKIE_NAME: &str = "portcullis-session";

/// Configures an [`Oidc`]; see [`Oidc::builder`]. Every setting documents its default;
/// [`build`](Self::build) checks them all.
#[must_use]
pub struct OidcBuilder {
    pub(super) issuer: String,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<ClientSecret>,
    pub(super) client_secret_post: bool,
    pub(super) redirect_uri: Option<String>,
    pub(super) scopes: Vec<String>,
    pub(super) prompt: Option<String>,
    pub(super) max_age: Option<Duration>,
    pub(super) acr_values: Vec<String>,
    pub(super) audiences: Vec<String>,
    pub(super) roles_claim: Option<String>,
    pub(super) userinfo: bool,
    pub(super) observer: Option<Arc<dyn crate::observe::Observe>>,
    pub(super) store: Option<Arc<dyn SessionStore>>,
    pub(super) key: Option<SessionKey>,
    pub(super) idle_timeout: Duration,
    pub(super) absolute_timeout: Duration,
    pub(super) login_timeout: Duration,
    pub(super) refresh_before: Duration,
    pub(super) id_token_max_age: Duration,
    pub(super) leeway: Duration,
    pub(super) login_path: String,
    pub(super) logout_path: String,
    pub(super) backchannel_logout_path: Option<String>,
    pub(super) post_logout_redirect_uri: Option<String>,
    pub(super) after_logout_path: String,
    pub(super) logout_confirmation_page: bool,
    pub(super) allowed_origins: Vec<String>,
    pub(super) browser_redirect: bool,
    pub(super) browser_media_type: String,
    pub(super) cookie_name: String,
    pub(super) http_client: Option<Arc<dyn HttpClient>>,
    pub(super) allow_http: bool,
    pub(super) http_cookies_on_loopback: bool,
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
    /// long ago, and the ID token's `auth_time` is checked against it. Defaults to none; at
    /// most 400 days.
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

    /// Reports the login routes' decisions (login started, completed or refused with its
    /// cause, logout, back-channel logout) to `observer`, as authentication decisions.
    /// Defaults to the [`TracingObserver`](crate::observe::TracingObserver).
    pub fn observer(mut self, observer: Arc<dyn crate::observe::Observe>) -> Self {
        self.observer = Some(observer);
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

    /// Ends a session not used for `timeout`. Defaults to 30 minutes; more than zero, at
    /// most the absolute timeout.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Ends a session `timeout` after the login, however active. Defaults to 8 hours; more
    /// than zero, at most 400 days (the longest cookie lifetime browsers keep).
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = timeout;
        self
    }

    /// Refuses a callback more than `timeout` after its login started. Defaults to 10
    /// minutes; more than zero, at most one day.
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// Refreshes the access token (when there is a refresh token) once it expires within
    /// `margin`. Defaults to 60 seconds; at most 400 days.
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
        let mut paths = vec![
            ("redirect_uri", &callback_path),
            ("login_path", &self.login_path),
            ("logout_path", &self.logout_path),
        ];
        paths.extend(
            self.backchannel_logout_path
                .as_ref()
                .map(|path| ("backchannel_logout_path", path)),
        );
        for (i, (setting, path)) in paths.iter().enumerate() {
            if paths[..i].iter().any(|(_, earlier)| earlier == path) {
                return Err(invalid(
                    setting,
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
        // Bounded so that no deadline computed from them can overflow at request time.
        for (setting, timeout, max) in [
            (
                "absolute_timeout",
                self.absolute_timeout,
                MAX_SESSION_TIMEOUT,
            ),
            ("idle_timeout", self.idle_timeout, MAX_SESSION_TIMEOUT),
            ("login_timeout", self.login_timeout, MAX_LOGIN_TIMEOUT),
        ] {
            if timeout.is_zero() {
                return Err(invalid(setting, "must be greater than zero"));
            }
            if timeout > max {
                return Err(invalid(setting, "longer than the allowed maximum"));
            }
        }
        if self.idle_timeout > self.absolute_timeout {
            return Err(invalid("idle_timeout", "longer than the absolute timeout"));
        }
        if self.refresh_before > MAX_SESSION_TIMEOUT {
            return Err(invalid("refresh_before", "longer than the allowed maximum"));
        }
        if self
            .max_age
            .is_some_and(|max_age| max_age > MAX_SESSION_TIMEOUT)
        {
            return Err(invalid("max_age", "longer than the allowed maximum"));
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
            // A public client: oauth2 sends the id in the form, whatever the type.
            (_, false) => oauth2::AuthType::BasicAuth,
            (Some(_), true) => oauth2::AuthType::RequestBody,
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
                provider_client: Mutex::new(None),
                observer: self
                    .observer
                    .unwrap_or_else(crate::observe::default_observer),
                clock: Clock::new(),
            }),
        })
    }
}
