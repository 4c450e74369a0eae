//! [`ApiKeyAuthenticator`]: finds an API key in a request and checks it against a store.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{AUTHORIZATION, COOKIE, HeaderName};
use http::request::Parts;

use super::format::FormatError;
use super::record::KeyRecord;
use super::store::{KeyStore, Lookup};
use crate::authenticate::credentials::{
    SchemeValue, cookie_values, is_token, query_values, remove_cookies, remove_query_parameter,
    remove_scheme, scheme_value,
};
use crate::authenticate::{AuthFuture, AuthOutcome, Authenticate};
use crate::error::ConfigError;
use crate::rejection::{Challenge, Reason, Rejection};
use crate::secret::KeyDigest;

/// The `Authorization` scheme of API keys (`Authorization: ApiKey <key>`).
const SCHEME: &str = "ApiKey";
/// The query parameter watched for keys sent where they leak (logs, `Referer`).
const DEFAULT_QUERY_PARAMETER: &str = "api_key";
/// Seconds a client is asked to wait when the key store is down.
const STORE_RETRY_AFTER_SECONDS: u32 = 5;

/// Checks API keys: reads one from the request, refuses malformed ones before any lookup,
/// finds the record by the key's public id, compares digests in constant time, and enforces
/// revocation and expiry.
///
/// Every failure (malformed, bad checksum, unknown, wrong secret, revoked, expired) gets the
/// same 401; the precise reason goes to the `tracing` event only.
#[derive(Clone)]
pub struct ApiKeyAuthenticator {
    store: Arc<dyn KeyStore>,
    config: Arc<Config>,
}

impl fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Config {
    header: Option<HeaderName>,
    authorization_scheme: bool,
    cookie: Option<String>,
    query_parameter: String,
    query_allowed: bool,
    strip_credentials: bool,
    realm: Cow<'static, str>,
    /// The challenge every refusal carries, made once.
    challenges: Arc<[Challenge]>,
}

impl ApiKeyAuthenticator {
    /// An authenticator with the strict defaults; see [`ApiKeyAuthenticatorBuilder`].
    /// `store` is any [`KeyStore`] (`Arc<MemoryKeyStore>`, `Arc<dyn KeyStore>`, …).
    #[must_use]
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        let realm = Cow::Borrowed("api");
        Self {
            store,
            config: Arc::new(Config {
                header: Some(HeaderName::from_static("x-api-key")),
                authorization_scheme: true,
                cookie: None,
                query_parameter: DEFAULT_QUERY_PARAMETER.to_owned(),
                query_allowed: false,
                strip_credentials: true,
                challenges: challenges(realm.clone()),
                realm,
            }),
        }
    }

    /// Configures where keys are read from and what happens to them.
    pub fn builder(store: Arc<dyn KeyStore>) -> ApiKeyAuthenticatorBuilder {
        let config = Config::clone(&Self::new(store.clone()).config);
        ApiKeyAuthenticatorBuilder {
            store,
            config,
            header: None,
            error: None,
        }
    }

    /// The store keys are checked against.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    fn reject(&self, reason: Reason) -> AuthOutcome {
        AuthOutcome::Rejected(
            Rejection::new(reason).with_challenges(self.config.challenges.clone()),
        )
    }

    /// The key-shaped values in the request: the first, and whether any other differs
    /// from it (without collecting them: most requests carry exactly one).
    fn presented<'a>(&self, request: &'a Parts) -> Result<Presented<'a>, Reason> {
        let config = &*self.config;
        let mut found = Presented::default();
        if let Some(header) = &config.header {
            for value in request.headers.get_all(header) {
                found.push(Cow::Borrowed(value.as_bytes().trim_ascii()));
            }
        }
        if config.authorization_scheme {
            for value in request.headers.get_all(AUTHORIZATION) {
                match scheme_value(value.as_bytes(), SCHEME) {
                    SchemeValue::Other => {}
                    SchemeValue::Malformed => return Err(Reason::InvalidRequest),
                    SchemeValue::Credentials(key) => found.push(Cow::Borrowed(key.as_bytes())),
                }
            }
        }
        if let Some(cookie) = &config.cookie {
            for value in request.headers.get_all(COOKIE) {
                push_cookie_values(value.as_bytes(), cookie.as_bytes(), &mut found);
            }
        }
        if let Some(query) = request.uri.query() {
            let mut in_query = false;
            for value in query_values(query, &config.query_parameter) {
                in_query = true;
                found.push(match value {
                    Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                    Cow::Owned(text) => Cow::Owned(text.into_bytes()),
                });
            }
            if in_query && !config.query_allowed {
                return Err(Reason::CredentialsInQuery);
            }
        }
        Ok(found)
    }
}

/// The key values a request presents, from every place the authenticator looks.
#[derive(Default)]
struct Presented<'a> {
    first: Option<Cow<'a, [u8]>>,
    /// Another value, different from the first, was presented too.
    conflicting: bool,
}

impl<'a> Presented<'a> {
    fn push(&mut self, value: Cow<'a, [u8]>) {
        match &self.first {
            None => self.first = Some(value),
            Some(first) => self.conflicting |= *first != value,
        }
    }
}

/// Appends the values of cookie `name` in one `Cookie` header to `out`.
fn push_cookie_values<'h>(header: &'h [u8], name: &[u8], out: &mut Presented<'h>) {
    for value in cookie_values(header, name) {
        out.push(Cow::Borrowed(value));
    }
}

/// The one challenge of an API-key authenticator in `realm`.
fn challenges(realm: Cow<'static, str>) -> Arc<[Challenge]> {
    Arc::new([Challenge::new(SCHEME, realm)])
}

impl Authenticate for ApiKeyAuthenticator {
    /// Whether the key store answers.
    fn ready(&self) -> crate::ReadyFuture {
        self.store.ready()
    }

    /// `api_key:` and the key's public id, when the request carries exactly one
    /// well-formed key (prefix, length, alphabet and checksum right).
    fn claimed_identity(&self, request: &Parts) -> Option<Arc<str>> {
        let presented = self.presented(request).ok()?;
        if presented.conflicting {
            return None;
        }
        let first = presented.first?;
        let parsed = self.store.format().parse(first.as_ref()).ok()?;
        Some(format!("api_key:{}", parsed.id).into())
    }

    fn authenticate(&self, request: &Parts) -> AuthFuture {
        let presented = match self.presented(request) {
            Ok(presented) => presented,
            Err(reason) => return AuthFuture::ready(self.reject(reason)),
        };
        let Some(first) = &presented.first else {
            return AuthFuture::ready(AuthOutcome::Absent);
        };
        if presented.conflicting {
            return AuthFuture::ready(self.reject(Reason::AmbiguousCredentials));
        }
        let parsed = match self.store.format().parse(first.as_ref()) {
            Ok(parsed) => parsed,
            Err(FormatError::Malformed) => {
                return AuthFuture::ready(self.reject(Reason::MalformedKey));
            }
            Err(FormatError::BadChecksum) => {
                return AuthFuture::ready(self.reject(Reason::BadChecksum));
            }
        };
        let id = parsed.id;
        // Digest before the lookup, so unknown and known ids take the same work.
        let digest = KeyDigest::of_bytes(parsed.secret);
        if let Some(lookup) = self.store.find_now(&id) {
            return AuthFuture::ready(self.judge(lookup, &digest));
        }
        let this = self.clone();
        AuthFuture::new(async move {
            let lookup = this.store.find(&id).await;
            this.judge(lookup, &digest)
        })
    }

    fn challenge(&self) -> Option<Challenge> {
        self.config.challenges.first().cloned()
    }

    fn strip_credentials(&self, request: &mut Parts) {
        let config = &*self.config;
        if !config.strip_credentials {
            mark_sensitive(request, config);
            return;
        }
        if let Some(header) = &config.header {
            request.headers.remove(header);
        }
        if config.authorization_scheme {
            remove_scheme(request, SCHEME);
        }
        if let Some(cookie) = &config.cookie {
            remove_cookies(request, |key| key == cookie.as_bytes());
        }
        // Even where query keys are refused (or not looked at, on public routes), one
        // that was sent is not passed on.
        remove_query_parameter(request, &config.query_parameter);
    }
}

impl ApiKeyAuthenticator {
    /// The answer for a lookup's result.
    fn judge(&self, lookup: Lookup, digest: &KeyDigest) -> AuthOutcome {
        match lookup {
            Ok(Some(record)) => self.check(&record, digest),
            Ok(None) => self.reject(Reason::UnknownKey),
            Err(error) => {
                tracing::warn!(
                    target: "portcullis::api_key",
                    %error,
                    "key store lookup failed; refusing with 503"
                );
                AuthOutcome::Rejected(
                    Rejection::new(Reason::Unavailable).with_retry_after(STORE_RETRY_AFTER_SECONDS),
                )
            }
        }
    }

    fn check(&self, record: &KeyRecord, digest: &KeyDigest) -> AuthOutcome {
        if !record.digest().matches(digest) {
            return self.reject(Reason::KeyMismatch);
        }
        if record.revoked_at().is_some() {
            return self.reject(Reason::KeyRevoked);
        }
        if record.expires_at().is_some() && record.is_expired_at(SystemTime::now()) {
            return self.reject(Reason::KeyExpired);
        }
        AuthOutcome::Authenticated(record.principal().clone())
    }
}

fn mark_sensitive(request: &mut Parts, config: &Config) {
    let mut names = vec![AUTHORIZATION, COOKIE];
    names.extend(config.header.clone());
    for name in names {
        if let http::header::Entry::Occupied(mut entry) = request.headers.entry(name) {
            for value in entry.iter_mut() {
                value.set_sensitive(true);
            }
        }
    }
}

/// Rewrites the `Cookie` headers without cookie `name`.
/// Configures an [`ApiKeyAuthenticator`]. Every setting documents its default.
#[must_use]
pub struct ApiKeyAuthenticatorBuilder {
    store: Arc<dyn KeyStore>,
    config: Config,
    header: Option<String>,
    error: Option<ConfigError>,
}

impl fmt::Debug for ApiKeyAuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticatorBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ApiKeyAuthenticatorBuilder {
    /// Reads keys from header `name`. Defaults to `x-api-key`.
    pub fn header(mut self, name: &str) -> Self {
        self.header = Some(name.to_owned());
        self
    }

    /// Stops reading keys from a dedicated header (keys then come only from
    /// `Authorization`, a cookie, or the query).
    pub fn no_header(mut self) -> Self {
        self.config.header = None;
        self.header = None;
        self
    }

    /// Whether to read keys from `Authorization: ApiKey <key>`. Defaults to true.
    pub fn authorization_scheme(mut self, enabled: bool) -> Self {
        self.config.authorization_scheme = enabled;
        self
    }

    /// Reads keys from the cookie `name` too. Defaults to none: browsers attach cookies to
    /// cross-site requests, so cookie keys need CSRF protection in front of the service.
    pub fn cookie(mut self, name: &str) -> Self {
        if !is_token(name) {
            self.error.get_or_insert(ConfigError::InvalidParameterName {
                name: name.to_owned(),
            });
        }
        self.config.cookie = Some(name.to_owned());
        self
    }

    /// **Insecure**: accepts keys in the query parameter `name`, where they end up in access
    /// logs, browser history and `Referer` headers. Defaults to off: a request with a key in
    /// the `api_key` query parameter is refused with 400.
    pub fn insecure_allow_query_key(mut self, name: &str) -> Self {
        if !is_token(name) {
            self.error.get_or_insert(ConfigError::InvalidParameterName {
                name: name.to_owned(),
            });
        }
        self.config.query_parameter = name.to_owned();
        self.config.query_allowed = true;
        self
    }

    /// Whether to remove the key from the request before the inner service sees it.
    /// Defaults to true. When false, the headers carrying it are marked sensitive instead,
    /// so `Debug` output and well-behaved loggers hide them.
    pub fn strip_credentials(mut self, strip: bool) -> Self {
        self.config.strip_credentials = strip;
        self
    }

    /// The realm named in `WWW-Authenticate: ApiKey realm="…"`. Defaults to `api`.
    pub fn realm(mut self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.config.realm = realm.into();
        self
    }

    /// Checks the configuration and builds the authenticator.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidHeaderName`], [`ConfigError::InvalidParameterName`],
    /// [`ConfigError::InvalidRealm`], or [`ConfigError::NoKeySource`] when every source is
    /// turned off.
    pub fn build(mut self) -> Result<ApiKeyAuthenticator, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if let Some(name) = self.header {
            let header = HeaderName::try_from(name.as_str())
                .map_err(|_| ConfigError::InvalidHeaderName { name: name.clone() })?;
            self.config.header = Some(header);
        }
        if !crate::rejection::valid_realm(&self.config.realm) {
            return Err(ConfigError::InvalidRealm {
                realm: self.config.realm.into_owned(),
            });
        }
        let config = &self.config;
        if config.header.is_none()
            && !config.authorization_scheme
            && config.cookie.is_none()
            && !config.query_allowed
        {
            return Err(ConfigError::NoKeySource);
        }
        self.config.challenges = challenges(self.config.realm.clone());
        Ok(ApiKeyAuthenticator {
            store: self.store,
            config: Arc::new(self.config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut found = Presented::default();
        push_cookie_values(b"a=1; api_key=k1;x=2;api_key = k1", b"api_key", &mut found);
        assert_eq!(found.first.as_deref(), Some(&b"k1"[..]));
        assert!(!found.conflicting, "the same key twice is one key");
        push_cookie_values(b"api_key = k2", b"api_key", &mut found);
        assert!(found.conflicting, "a second, different key is found");
        let mut found = Presented::default();
        push_cookie_values(b"xapi_key=1", b"api_key", &mut found);
        assert!(found.first.is_none());
    }

    #[test]
    fn cookie_is_removed_and_others_kept() {
        let (mut parts, ()) = http::Request::get("/")
            .header(COOKIE, "a=1; api_key=k; b=2")
            .header(COOKIE, "api_key=k")
            .body(())
            .expect("request")
            .into_parts();
        remove_cookies(&mut parts, |key| key == b"api_key");
        let cookies: Vec<_> = parts.headers.get_all(COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; b=2"]);
    }
}
