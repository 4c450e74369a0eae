//! [`BearerAuthenticator`]: finds an OAuth 2.0 bearer token in a request and verifies it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{AuthFuture, AuthMethod, AuthOutcome, Authenticate, Challenge, Principal};
use crate::{ConfigError, Reason, Rejection};
use http::header::{AUTHORIZATION, HeaderValue};
use http::request::Parts;
use serde_json::Value;

use super::cache::{DEFAULT_CAPACITY, TokenCache};
use super::rules::{BearerConfigError, IssuerRules};
use super::token::{self, Failure};

/// The largest token accepted by default, in bytes.
const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The query parameter RFC 6750 section 2.3 defines for tokens.
const QUERY_PARAMETER: &str = "access_token";

/// Verifies OAuth 2.0 bearer tokens (JWT access tokens, RFC 9068) from one or more issuers.
///
/// Reads `Authorization: Bearer <token>`; picks the issuer by the token's `iss`; checks
/// the header, the signature with that issuer's keys, and the claims; and answers with a
/// [`Principal`] whose subject is `sub` (or `client_id`), with the token's scopes, roles
/// and claims. Every failure gets a 401 with a `Bearer` challenge; the precise reason goes
/// to a `tracing` event (target `portcullis::bearer`, field `reason`).
///
/// Requests with no bearer token (or another `Authorization` scheme) are passed on
/// without a principal. Cloning is a reference-count increment.
#[derive(Clone)]
pub struct BearerAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: Vec<IssuerRules>,
    realm: Cow<'static, str>,
    max_token_bytes: usize,
    allow_query_token: bool,
    cache: Option<TokenCache>,
}

impl fmt::Debug for BearerAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("BearerAuthenticator")
            .field("issuers", &inner.issuers)
            .field("realm", &inner.realm)
            .field("max_token_bytes", &inner.max_token_bytes)
            .field("allow_query_token", &inner.allow_query_token)
            .field("cache", &inner.cache)
            .finish()
    }
}

impl BearerAuthenticator {
    /// An authenticator for one issuer with the strict defaults; see
    /// [`BearerAuthenticatorBuilder`].
    #[must_use]
    pub fn new(issuer: IssuerRules) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuers: vec![issuer],
                realm: Cow::Borrowed("api"),
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
                allow_query_token: false,
                cache: Some(TokenCache::new(DEFAULT_CAPACITY)),
            }),
        }
    }

    /// Configures issuers, realm, limits and the cache.
    pub fn builder() -> BearerAuthenticatorBuilder {
        BearerAuthenticatorBuilder {
            issuers: Vec::new(),
            realm: Cow::Borrowed("api"),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            allow_query_token: false,
            cache_capacity: Some(DEFAULT_CAPACITY),
        }
    }

    /// Verifies `token` (the text after `Bearer `) as the layer would, for callers that get
    /// tokens some other way (a WebSocket subprotocol, a message header).
    ///
    /// # Errors
    ///
    /// The [`Rejection`] the layer would answer with: `invalid_credentials` (401, with a
    /// `Bearer` challenge) for every kind of bad token.
    pub fn verify(&self, token: &str) -> Result<Principal, Rejection> {
        self.check(token, SystemTime::now())
            .map_err(|failure| self.refuse(failure))
    }

    /// Forgets every cached verification (call it when a key is withdrawn).
    pub fn clear_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
    }

    fn challenge_for(&self) -> Challenge {
        Challenge::new("Bearer", self.inner.realm.clone())
    }

    fn refuse(&self, failure: Failure) -> Rejection {
        tracing::info!(
            target: "portcullis::bearer",
            reason = failure.code(),
            "bearer token refused"
        );
        Rejection::new(Reason::InvalidCredentials)
            .with_detail(failure.detail())
            .with_challenge(self.challenge_for())
    }

    fn refuse_request(
        &self,
        reason: Reason,
        code: &'static str,
        detail: &'static str,
    ) -> Rejection {
        tracing::info!(
            target: "portcullis::bearer",
            reason = code,
            "bearer request refused"
        );
        Rejection::new(reason)
            .with_detail(detail)
            .with_challenge(self.challenge_for())
    }

    fn check(&self, token: &str, now: SystemTime) -> Result<Principal, Failure> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(Failure::TooLarge);
        }
        let digest = inner.cache.as_ref().map(|cache| {
            let digest = TokenCache::digest(token);
            (cache, digest)
        });
        if let Some((cache, digest)) = &digest
            && let Some(principal) = cache.get(digest, now)
        {
            return Ok(principal);
        }

        let unverified = token::parse(token)?;
        let issuer = match unverified.claims.get("iss") {
            Some(Value::String(iss)) => inner
                .issuers
                .iter()
                .find(|rules| rules.issuer() == iss)
                .ok_or(Failure::IssMismatch)?,
            Some(_) => return Err(Failure::ClaimType),
            None => return Err(Failure::MissingClaim),
        };
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let verified = issuer.verify(unverified, seconds)?;
        let principal = Principal::builder(verified.subject, AuthMethod::Bearer)
            .issuer(issuer.issuer())
            .scopes(verified.scopes)
            .roles(verified.roles)
            .claims(verified.claims)
            .build();
        if let Some((cache, digest)) = digest {
            cache.insert(digest, principal.clone(), verified.valid_until);
        }
        Ok(principal)
    }

    /// The one bearer token in the request, if any.
    fn presented<'a>(&self, request: &'a Parts) -> Result<Option<&'a str>, Rejection> {
        let mut found = None;
        for value in request.headers.get_all(AUTHORIZATION) {
            match bearer_value(value.as_bytes()) {
                BearerValue::OtherScheme => {}
                BearerValue::Malformed => {
                    return Err(self.refuse_request(
                        Reason::InvalidRequest,
                        "malformed_header",
                        "The Authorization header is malformed.",
                    ));
                }
                BearerValue::Token(token) => {
                    if found.replace(token).is_some() {
                        return Err(self.more_than_one());
                    }
                }
            }
        }
        if let Some(query) = request.uri.query() {
            let mut in_query = query_values(query);
            if let Some(token) = in_query.next() {
                if found.is_some() || in_query.next().is_some() {
                    return Err(self.more_than_one());
                }
                if !self.inner.allow_query_token {
                    return Err(self.refuse_request(
                        Reason::CredentialsInQuery,
                        "credentials_in_query",
                        "Tokens must not be sent in the query string.",
                    ));
                }
                if !token.bytes().all(is_token_byte) || token.is_empty() {
                    return Err(self.refuse_request(
                        Reason::InvalidRequest,
                        "malformed_query",
                        "The access_token parameter is malformed.",
                    ));
                }
                found = Some(token);
            }
        }
        Ok(found)
    }

    fn more_than_one(&self) -> Rejection {
        self.refuse_request(
            Reason::InvalidRequest,
            "multiple_tokens",
            "The request carries more than one bearer token.",
        )
    }
}

/// What one `Authorization` value holds.
enum BearerValue<'a> {
    /// Another scheme (`Basic`, `ApiKey`, …): not ours.
    OtherScheme,
    /// `Bearer` with no token, or a token with characters RFC 6750 does not allow.
    Malformed,
    /// `Bearer <token>`.
    Token(&'a str),
}

/// Reads `Bearer <token>` (scheme case-insensitive, RFC 6750 section 2.1).
fn bearer_value(value: &[u8]) -> BearerValue<'_> {
    const SCHEME: &[u8] = b"bearer";
    let Some(scheme) = value.get(..SCHEME.len()) else {
        return BearerValue::OtherScheme;
    };
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return BearerValue::OtherScheme;
    }
    let rest = &value[SCHEME.len()..];
    match rest.first() {
        None => return BearerValue::Malformed,
        Some(b' ' | b'\t') => {}
        // `Bearerish …` is some other scheme.
        Some(_) => return BearerValue::OtherScheme,
    }
    let token = rest.trim_ascii();
    if token.is_empty() || !token.iter().copied().all(is_token_byte) {
        return BearerValue::Malformed;
    }
    // Every byte is ASCII, so this cannot fail.
    std::str::from_utf8(token).map_or(BearerValue::Malformed, BearerValue::Token)
}

/// The `b64token` characters of RFC 6750: `ALPHA DIGIT - . _ ~ + / =`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// The values of `access_token` in a query string.
fn query_values(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').filter_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == QUERY_PARAMETER).then_some(value)
    })
}

impl Authenticate for BearerAuthenticator {
    fn authenticate(&self, request: &Parts) -> AuthFuture {
        let outcome = match self.presented(request) {
            Err(rejection) => AuthOutcome::Rejected(rejection),
            Ok(None) => AuthOutcome::Absent,
            Ok(Some(token)) => match self.verify(token) {
                Ok(principal) => AuthOutcome::Authenticated(principal),
                Err(rejection) => AuthOutcome::Rejected(rejection),
            },
        };
        AuthFuture::ready(outcome)
    }

    fn challenge(&self) -> Option<Challenge> {
        Some(self.challenge_for())
    }

    fn strip_credentials(&self, request: &mut Parts) {
        let headers = request.headers.get_all(AUTHORIZATION);
        let is_ours = |value: &HeaderValue| {
            !matches!(bearer_value(value.as_bytes()), BearerValue::OtherScheme)
        };
        if headers.iter().any(is_ours) {
            let kept: Vec<HeaderValue> = headers.iter().filter(|v| !is_ours(v)).cloned().collect();
            request.headers.remove(AUTHORIZATION);
            for value in kept {
                request.headers.append(AUTHORIZATION, value);
            }
        }
        crate::credentials::remove_query_parameter(request, QUERY_PARAMETER);
    }
}

/// Configures a [`BearerAuthenticator`]. Every setting documents its default.
#[must_use]
#[derive(Debug)]
pub struct BearerAuthenticatorBuilder {
    issuers: Vec<IssuerRules>,
    realm: Cow<'static, str>,
    max_token_bytes: usize,
    allow_query_token: bool,
    cache_capacity: Option<usize>,
}

impl BearerAuthenticatorBuilder {
    /// Trusts tokens from this issuer. Call again for more; at least one is required, and
    /// each issuer identifier may appear once.
    pub fn issuer(mut self, rules: IssuerRules) -> Self {
        self.issuers.push(rules);
        self
    }

    /// Names the realm in `WWW-Authenticate` challenges. Defaults to `api`.
    pub fn realm(mut self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Refuses tokens longer than `bytes` before decoding them. Defaults to 8 KiB.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Keeps up to `entries` verified tokens, so a repeated token skips the signature check
    /// (until its `exp`). Defaults to 10,000.
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = Some(entries);
        self
    }

    /// Verifies every token in full, every time. Defaults to caching (see
    /// [`cache_capacity`](Self::cache_capacity)).
    pub fn no_cache(mut self) -> Self {
        self.cache_capacity = None;
        self
    }

    /// Accepts a token in the `access_token` query parameter (RFC 6750 section 2.3).
    /// Defaults to false (refused with 400): query strings end up in logs, browser history
    /// and `Referer` headers.
    pub fn insecure_allow_query_token(mut self) -> Self {
        self.allow_query_token = true;
        self
    }

    /// Checks the settings and finishes the authenticator.
    ///
    /// # Errors
    ///
    /// A [`ConfigError::Bearer`] for no issuer, an issuer given twice, a realm that cannot
    /// be sent in a header, or a zero size limit or cache capacity.
    pub fn build(self) -> Result<BearerAuthenticator, ConfigError> {
        self.try_build().map_err(ConfigError::from)
    }

    fn try_build(self) -> Result<BearerAuthenticator, BearerConfigError> {
        if self.issuers.is_empty() {
            return Err(BearerConfigError::NoIssuer);
        }
        for (index, rules) in self.issuers.iter().enumerate() {
            if self.issuers[..index]
                .iter()
                .any(|earlier| earlier.issuer() == rules.issuer())
            {
                return Err(BearerConfigError::DuplicateIssuer {
                    issuer: rules.issuer().to_owned(),
                });
            }
        }
        if !crate::rejection::valid_realm(&self.realm) {
            return Err(BearerConfigError::InvalidRealm {
                realm: self.realm.into_owned(),
            });
        }
        if self.max_token_bytes == 0 {
            return Err(BearerConfigError::InvalidLimit {
                setting: "max_token_bytes",
            });
        }
        if self.cache_capacity == Some(0) {
            return Err(BearerConfigError::InvalidLimit {
                setting: "cache_capacity",
            });
        }
        Ok(BearerAuthenticator {
            inner: Arc::new(Inner {
                issuers: self.issuers,
                realm: self.realm,
                max_token_bytes: self.max_token_bytes,
                allow_query_token: self.allow_query_token,
                cache: self.cache_capacity.map(TokenCache::new),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_values() {
        assert!(matches!(
            bearer_value(b"Bearer abc.def"),
            BearerValue::Token("abc.def")
        ));
        assert!(matches!(
            bearer_value(b"bEaReR   abc  "),
            BearerValue::Token("abc")
        ));
        assert!(matches!(bearer_value(b"Bearer"), BearerValue::Malformed));
        assert!(matches!(bearer_value(b"Bearer "), BearerValue::Malformed));
        assert!(matches!(
            bearer_value(b"Bearer a b"),
            BearerValue::Malformed
        ));
        assert!(matches!(
            bearer_value(b"Bearer a,b"),
            BearerValue::Malformed
        ));
        assert!(matches!(
            bearer_value(b"Bearerx abc"),
            BearerValue::OtherScheme
        ));
        assert!(matches!(
            bearer_value(b"ApiKey abc"),
            BearerValue::OtherScheme
        ));
        assert!(matches!(bearer_value(b""), BearerValue::OtherScheme));
    }
}
