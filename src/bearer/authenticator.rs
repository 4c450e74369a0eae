//! [`BearerAuthenticator`]: finds an OAuth 2.0 bearer token in a request and verifies it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{AuthFuture, AuthMethod, AuthOutcome, Authenticate, Challenge, Principal};
use crate::{ConfigError, Reason, Rejection};
use http::header::AUTHORIZATION;
use http::request::Parts;
use serde_json::Value;

use super::cache::{DEFAULT_CAPACITY, TokenCache, TokenDigest};
use super::introspection::{Introspection, Lookup, Outcome, Refusal};
use super::revocation::{Revocation, SharedRevocations, TokenRevocations};
use super::rules::{IssuerRules, KeySource};
use crate::authenticate::credentials::{
    SchemeValue, is_token68, query_values, remove_query_parameter, remove_scheme, scheme_value,
};
use crate::jwt::KeySet;
use crate::jwt::token::{self, Failure};
use crate::remote::JwksCache;

/// The largest token accepted by default, in bytes.
const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The `Authorization` scheme of RFC 6750 section 2.1.
const SCHEME: &str = "Bearer";
/// The query parameter RFC 6750 section 2.3 defines for tokens.
const QUERY_PARAMETER: &str = "access_token";
/// The `Retry-After` sent with 503 while no usable fetched key set is loaded, in seconds.
const UNAVAILABLE_RETRY_AFTER: u32 = 5;

/// Why a token could not be accepted now.
enum CheckError {
    /// The token is bad: 401.
    Token(Failure),
    /// The issuer's keys are fetched and none is usable now.
    NoKeys(Arc<JwksCache>),
    /// The token names a `kid` the fetched set does not hold.
    UnknownKid(Arc<JwksCache>),
    /// No issuer's rules apply (no `iss`, or an issuer not configured): 401, or
    /// introspection with `introspect_jwts()`.
    NoRules(Failure),
}

/// What deciding about a token needs next.
enum Step {
    /// The answer.
    Done(Result<Principal, Rejection>),
    /// An introspection call (the token is not cached).
    Introspect(Introspection, TokenDigest),
    /// A refetch of the issuer's keys; `otherwise` is the answer if that cannot help.
    Refetch {
        jwks: Arc<JwksCache>,
        otherwise: Rejection,
    },
}

/// A decision after the revocation list was asked.
enum Checked {
    /// The answer.
    Done(Result<Principal, Rejection>),
    /// The list's answer is on its way.
    Wait {
        principal: Principal,
        answer: crate::store::StoreFuture<Revocation>,
    },
}

impl From<Failure> for CheckError {
    fn from(failure: Failure) -> Self {
        Self::Token(failure)
    }
}

/// Verifies OAuth 2.0 bearer tokens (JWT access tokens, RFC 9068) from one or more issuers.
///
/// Reads `Authorization: Bearer <token>`; picks the issuer by the token's `iss`; checks
/// the header, the signature with that issuer's keys, and the claims; and answers with a
/// [`Principal`] whose subject is `sub`, with the token's scopes, roles and claims. Every
/// failure gets a 401 with a `Bearer` challenge; the precise reason goes to a `tracing`
/// decision (the rejection's `cause`, in the `portcullis::authenticate` event).
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
    cache: Option<Arc<TokenCache>>,
    introspection: Option<Introspection>,
    introspect_jwts: bool,
    revocations: Option<Arc<dyn TokenRevocations>>,
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
            .field("introspection", &inner.introspection)
            .field("introspect_jwts", &inner.introspect_jwts)
            .field("revocations", &inner.revocations.is_some())
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
                cache: Some(Arc::new(TokenCache::new(DEFAULT_CAPACITY))),
                introspection: None,
                introspect_jwts: false,
                revocations: None,
            }),
        }
        .start()
    }

    /// Wires each fetched key set to the token cache (cleared when the set changes) and
    /// starts background loading if a tokio runtime is present (else it starts on the
    /// first request).
    fn start(self) -> Self {
        for rules in &self.inner.issuers {
            if let Some(jwks) = rules.jwks() {
                if let Some(cache) = &self.inner.cache {
                    let weak = Arc::downgrade(cache);
                    jwks.on_change(Box::new(move || {
                        if let Some(cache) = weak.upgrade() {
                            cache.clear();
                        }
                    }));
                }
                if tokio::runtime::Handle::try_current().is_ok() {
                    jwks.load_in_background();
                }
            }
        }
        self
    }

    /// Whether every issuer has usable keys (for health endpoints): always true for keys
    /// given in code; for fetched keys, once a usable set is loaded and not too stale.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.inner.issuers.iter().all(IssuerRules::is_ready)
    }

    /// Configures issuers, realm, limits and the cache.
    pub fn builder() -> BearerAuthenticatorBuilder {
        BearerAuthenticatorBuilder {
            issuers: Vec::new(),
            realm: Cow::Borrowed("api"),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            allow_query_token: false,
            cache_capacity: Some(DEFAULT_CAPACITY),
            introspection: None,
            introspect_jwts: false,
            revocations: None,
        }
    }

    /// Verifies `token` (the text after `Bearer `) as the layer would, for callers that get
    /// tokens some other way (a WebSocket subprotocol, a message header).
    ///
    /// # Errors
    ///
    /// The [`Rejection`] the layer would answer with: `invalid_credentials` (401, with a
    /// `Bearer` challenge) for every kind of bad token; `unavailable` (503, `Retry-After`)
    /// while an issuer's fetched keys are not usable. This call never waits for a fetch,
    /// so a token with a `kid` the current set lacks is refused here where the layer would
    /// refetch once, and a token to introspect is answered only from the introspection
    /// cache (`unavailable` when it is not cached).
    ///
    /// With a revocation list, a list that cannot answer at once makes this `unavailable`.
    pub fn verify(&self, token: &str) -> Result<Principal, Rejection> {
        let result = match self.step(token) {
            Step::Done(result) => result,
            Step::Introspect(..) => {
                self.introspected(Outcome::Unavailable("introspection_not_cached"))
            }
            Step::Refetch { otherwise, .. } => Err(otherwise),
        };
        match self.revocation_check(result) {
            Checked::Done(result) => result,
            Checked::Wait { .. } => Err(self.revocations_unavailable()),
        }
    }

    /// The one decision about a token, shared by the layer and [`verify`](Self::verify):
    /// an answer now, or what must be waited for first.
    fn step(&self, token: &str) -> Step {
        if token.len() > self.inner.max_token_bytes {
            return Step::Done(Err(self.refuse(Failure::TooLarge)));
        }
        if let Some(introspection) = self.introspection_first(token) {
            return self.introspection_step(introspection, token);
        }
        match self.check(token, SystemTime::now()) {
            Ok(principal) => Step::Done(Ok(principal)),
            Err(CheckError::Token(failure)) => Step::Done(Err(self.refuse(failure))),
            Err(CheckError::NoRules(failure)) => match self.introspection_fallback() {
                Some(introspection) => self.introspection_step(introspection, token),
                None => Step::Done(Err(self.refuse(failure))),
            },
            Err(CheckError::UnknownKid(jwks)) => Step::Refetch {
                jwks,
                otherwise: self.refuse(Failure::UnknownKid),
            },
            Err(CheckError::NoKeys(jwks)) => Step::Refetch {
                jwks,
                otherwise: self.unavailable(),
            },
        }
    }

    /// Introspection's answer now (shape checks, cache), or the call to make.
    fn introspection_step(&self, introspection: &Introspection, token: &str) -> Step {
        match introspection.lookup(token, self.inner.max_token_bytes) {
            Lookup::Done(outcome) => Step::Done(self.introspected(outcome)),
            Lookup::Uncached(digest) => Step::Introspect(introspection.clone(), digest),
        }
    }

    /// The introspection to use before any JWT check: configured, and `token` is not
    /// JWT-shaped.
    fn introspection_first(&self, token: &str) -> Option<&Introspection> {
        self.inner
            .introspection
            .as_ref()
            .filter(|_| !looks_like_jwt(token))
    }

    /// The introspection for a JWT no issuer's rules match, with `introspect_jwts()`.
    fn introspection_fallback(&self) -> Option<&Introspection> {
        self.inner
            .introspection
            .as_ref()
            .filter(|_| self.inner.introspect_jwts)
    }

    /// The result of an introspection answer, logged.
    fn introspected(&self, outcome: Outcome) -> Result<Principal, Rejection> {
        match outcome {
            Outcome::Active(principal) => Ok(principal),
            Outcome::Refused(Refusal::Claim(failure) | Refusal::Shape(failure)) => {
                Err(self.refuse(failure))
            }
            Outcome::Refused(Refusal::Inactive) => Err(Rejection::new(Reason::InvalidCredentials)
                .with_cause("inactive")
                .with_detail("The token is not active.")
                .with_challenge(self.challenge_for())),
            Outcome::Unavailable(reason) => Err(Rejection::new(Reason::Unavailable)
                .with_cause(reason)
                .with_retry_after(UNAVAILABLE_RETRY_AFTER)),
            // Logged by the introspection, at most once a second: a flood of refusals must
            // not become a flood of events.
            Outcome::Overloaded { retry_after } => {
                Err(Rejection::new(Reason::Unavailable).with_retry_after(retry_after))
            }
        }
    }

    /// An accepted token checked against the revocation list, when there is one: the
    /// answer now, or the list's answer to wait for.
    fn revocation_check(&self, result: Result<Principal, Rejection>) -> Checked {
        let Some(list) = &self.inner.revocations else {
            return Checked::Done(result);
        };
        let principal = match result {
            Ok(principal) => principal,
            Err(rejection) => return Checked::Done(Err(rejection)),
        };
        // A token without `jti` (or issuer) cannot have been revoked by it.
        let (Some(issuer), Some(jti)) = (
            principal.issuer(),
            principal.claim("jti").and_then(Value::as_str),
        ) else {
            return Checked::Done(Ok(principal));
        };
        match list.check(issuer, jti).into_ready() {
            Ok(answer) => Checked::Done(self.judge_revocation(answer, principal)),
            Err(answer) => Checked::Wait { principal, answer },
        }
    }

    /// [`revocation_check`](Self::revocation_check), waiting for the list if needed.
    async fn revocation_checked(
        &self,
        result: Result<Principal, Rejection>,
    ) -> Result<Principal, Rejection> {
        match self.revocation_check(result) {
            Checked::Done(result) => result,
            Checked::Wait { principal, answer } => self.judge_revocation(answer.await, principal),
        }
    }

    fn judge_revocation(
        &self,
        answer: Revocation,
        principal: Principal,
    ) -> Result<Principal, Rejection> {
        match answer {
            Revocation::Valid => Ok(principal),
            Revocation::Revoked => Err(Rejection::new(Reason::InvalidCredentials)
                .with_cause("token_revoked")
                .with_detail("The token has been revoked.")
                .with_challenge(self.challenge_for())),
            Revocation::Unknown => Err(self.revocations_unavailable()),
        }
    }

    fn revocations_unavailable(&self) -> Rejection {
        Rejection::new(Reason::Unavailable)
            .with_cause("revocations_unavailable")
            .with_retry_after(UNAVAILABLE_RETRY_AFTER)
    }

    fn unavailable(&self) -> Rejection {
        Rejection::new(Reason::Unavailable)
            .with_cause("keys_unavailable")
            .with_retry_after(UNAVAILABLE_RETRY_AFTER)
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

    /// Refuses a bad token. The precise failure travels as the rejection's cause, for the
    /// one decision event (never to the client).
    fn refuse(&self, failure: Failure) -> Rejection {
        Rejection::new(Reason::InvalidCredentials)
            .with_cause(failure.code())
            .with_detail(failure.detail())
            .with_challenge(self.challenge_for())
    }

    fn refuse_request(
        &self,
        reason: Reason,
        code: &'static str,
        detail: &'static str,
    ) -> Rejection {
        Rejection::new(reason)
            .with_cause(code)
            .with_detail(detail)
            .with_challenge(self.challenge_for())
    }

    fn check(&self, token: &str, now: SystemTime) -> Result<Principal, CheckError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(Failure::TooLarge.into());
        }
        let digest = inner.cache.as_ref().map(|cache| {
            let digest = TokenCache::digest(token);
            (cache, digest)
        });
        let cached = digest
            .as_ref()
            .and_then(|(cache, digest)| cache.get(digest, now));
        if let Some(principal) = cached {
            // A token verified with fetched keys is not believed once no usable set is
            // left (fail closed when the keys are too stale).
            let issuer = principal
                .issuer()
                .and_then(|iss| inner.issuers.iter().find(|rules| rules.issuer() == iss));
            match issuer.map(IssuerRules::key_source) {
                Some(KeySource::Remote(jwks)) if !jwks.is_ready() => {
                    return Err(CheckError::NoKeys(Arc::clone(jwks)));
                }
                _ => return Ok(principal),
            }
        }

        let unverified = token::parse(token)?;
        let issuer = match unverified.claims.get("iss") {
            Some(Value::String(iss)) => inner
                .issuers
                .iter()
                .find(|rules| rules.issuer() == iss)
                .ok_or(CheckError::NoRules(Failure::IssMismatch))?,
            Some(_) => return Err(Failure::ClaimType.into()),
            None => return Err(CheckError::NoRules(Failure::MissingClaim)),
        };
        let (keys, remote, generation): (Arc<KeySet>, _, _) = match issuer.key_source() {
            KeySource::Static(keys) => (Arc::clone(keys), None, 0),
            KeySource::Remote(jwks) => {
                let generation = jwks.generation();
                match jwks.snapshot_for_request() {
                    Some(keys) => (keys, Some(jwks), generation),
                    None => return Err(CheckError::NoKeys(Arc::clone(jwks))),
                }
            }
        };
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let verified = match (issuer.verify(unverified, &keys, seconds), remote) {
            (Ok(verified), _) => verified,
            (Err(Failure::UnknownKid), Some(jwks)) => {
                return Err(CheckError::UnknownKid(Arc::clone(jwks)));
            }
            (Err(failure), _) => return Err(failure.into()),
        };
        let principal = Principal::builder(verified.subject, AuthMethod::Bearer)
            .issuer(issuer.issuer())
            .scopes(verified.scopes)
            .roles(verified.roles)
            .claims(verified.claims)
            .build();
        if let Some((cache, digest)) = digest {
            cache.insert(digest, principal.clone(), verified.valid_until);
            // The set changed while this token was checked: the entry may have been
            // verified with a key that is gone, and the clear may have run before it.
            if remote.is_some_and(|jwks| jwks.generation() != generation) {
                cache.remove(&digest);
            }
        }
        Ok(principal)
    }

    /// The one bearer token in the request, if any.
    fn presented<'a>(&self, request: &'a Parts) -> Result<Option<Cow<'a, str>>, Rejection> {
        let mut found = None;
        for value in request.headers.get_all(AUTHORIZATION) {
            match scheme_value(value.as_bytes(), SCHEME) {
                SchemeValue::Other => {}
                SchemeValue::Malformed => {
                    return Err(self.refuse_request(
                        Reason::InvalidRequest,
                        "malformed_header",
                        "The Authorization header is malformed.",
                    ));
                }
                SchemeValue::Credentials(token) => {
                    if found.replace(Cow::Borrowed(token)).is_some() {
                        return Err(self.more_than_one());
                    }
                }
            }
        }
        if let Some(query) = request.uri.query() {
            let mut in_query = query_values(query, QUERY_PARAMETER);
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
                if !is_token68(token.as_bytes()) {
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

/// Whether `token` has the shape of a compact JWS: three base64url parts separated by
/// dots, the first two non-empty.
fn looks_like_jwt(token: &str) -> bool {
    let is_b64url = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => {
            !header.is_empty()
                && !payload.is_empty()
                && is_b64url(header)
                && is_b64url(payload)
                && is_b64url(signature)
        }
        _ => false,
    }
}

/// An authentication outcome from a verification result.
fn into_outcome(result: Result<Principal, Rejection>) -> AuthOutcome {
    match result {
        Ok(principal) => AuthOutcome::Authenticated(principal),
        Err(rejection) => AuthOutcome::Rejected(rejection),
    }
}

impl Authenticate for BearerAuthenticator {
    /// Ready once every issuer's keys are loaded; an issuer whose keys are not is asked for
    /// them (in the background) by the question.
    fn ready(&self) -> crate::ReadyFuture {
        let mut missing = None;
        for rules in &self.inner.issuers {
            if let Some(jwks) = rules.jwks()
                && !jwks.is_ready()
            {
                jwks.load_in_background();
                missing.get_or_insert_with(|| rules.issuer().to_owned());
            }
        }
        Box::pin(std::future::ready(match missing {
            None => Ok(()),
            Some(issuer) => Err(crate::NotReady::new(format!(
                "the keys of {} are not loaded",
                crate::text::bounded(&issuer)
            ))),
        }))
    }

    fn authenticate(&self, request: &Parts) -> AuthFuture {
        let token = match self.presented(request) {
            Err(rejection) => return AuthFuture::ready(AuthOutcome::Rejected(rejection)),
            Ok(None) => return AuthFuture::ready(AuthOutcome::Absent),
            Ok(Some(token)) => token,
        };
        match self.step(&token) {
            Step::Done(result) => match self.revocation_check(result) {
                Checked::Done(result) => AuthFuture::ready(into_outcome(result)),
                Checked::Wait { principal, answer } => {
                    let this = self.clone();
                    AuthFuture::new(async move {
                        into_outcome(this.judge_revocation(answer.await, principal))
                    })
                }
            },
            Step::Introspect(introspection, digest) => {
                let this = self.clone();
                let token = token.into_owned();
                AuthFuture::new(async move {
                    let outcome = introspection.introspect(&token, digest).await;
                    into_outcome(this.revocation_checked(this.introspected(outcome)).await)
                })
            }
            // The token names a `kid` the fetched set lacks, or no fetched set is usable:
            // refetch (rate-limited, single-flight) and decide once more.
            Step::Refetch { jwks, .. } => {
                let this = self.clone();
                let token = token.into_owned();
                AuthFuture::new(async move {
                    jwks.refresh_for_unknown_kid().await;
                    let result = match this.step(&token) {
                        Step::Done(result) => result,
                        Step::Introspect(introspection, digest) => {
                            this.introspected(introspection.introspect(&token, digest).await)
                        }
                        Step::Refetch { otherwise, .. } => Err(otherwise),
                    };
                    into_outcome(this.revocation_checked(result).await)
                })
            }
        }
    }

    fn challenge(&self) -> Option<Challenge> {
        Some(self.challenge_for())
    }

    fn strip_credentials(&self, request: &mut Parts) {
        remove_scheme(request, SCHEME);
        remove_query_parameter(request, QUERY_PARAMETER);
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
    introspection: Option<Introspection>,
    introspect_jwts: bool,
    revocations: Option<SharedRevocations>,
}

impl BearerAuthenticatorBuilder {
    /// Trusts tokens from this issuer. Call again for more; at least one is required, and
    /// each issuer identifier may appear once.
    pub fn issuer(mut self, rules: IssuerRules) -> Self {
        self.issuers.push(rules);
        self
    }

    /// Introspects tokens that are not JWTs (RFC 7662) with `introspection`. With it, the
    /// authenticator may have no issuer (opaque tokens only). Defaults to none: such
    /// tokens are refused as malformed.
    pub fn introspection(mut self, introspection: Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// Refuses accepted tokens whose issuer and `jti` are on `list` (401, cause
    /// `token_revoked`), checked on every request, cached token or not; a list that
    /// cannot answer makes the request 503 (never a pass). Tokens without a `jti` cannot be
    /// revoked this way (RFC 9068 requires one: see `rfc9068_strict`). Defaults to none.
    /// For a list shared by every instance, use `portcullis::redis::RedisRevocations`.
    pub fn revocations(mut self, list: Arc<dyn TokenRevocations>) -> Self {
        self.revocations = Some(SharedRevocations(list));
        self
    }

    /// Also introspects JWT-shaped tokens whose `iss` is missing or names no configured
    /// issuer (needs [`introspection`](Self::introspection)). Defaults to false: such
    /// tokens are refused.
    pub fn introspect_jwts(mut self) -> Self {
        self.introspect_jwts = true;
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
    /// A [`ConfigError`] for no issuer (and no introspection), an issuer given
    /// twice, a realm that cannot be sent in a header, or a zero size limit or cache
    /// capacity.
    pub fn build(self) -> Result<BearerAuthenticator, ConfigError> {
        if self.issuers.is_empty() && self.introspection.is_none() {
            return Err(ConfigError::NoIssuer);
        }
        for (index, rules) in self.issuers.iter().enumerate() {
            if self.issuers[..index]
                .iter()
                .any(|earlier| earlier.issuer() == rules.issuer())
            {
                return Err(ConfigError::DuplicateIssuer {
                    issuer: rules.issuer().to_owned(),
                });
            }
        }
        if !crate::rejection::valid_realm(&self.realm) {
            return Err(ConfigError::InvalidRealm {
                realm: self.realm.into_owned(),
            });
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::InvalidLimit {
                setting: "max_token_bytes",
            });
        }
        if self.cache_capacity == Some(0) {
            return Err(ConfigError::InvalidLimit {
                setting: "cache_capacity",
            });
        }
        Ok(BearerAuthenticator {
            inner: Arc::new(Inner {
                issuers: self.issuers,
                realm: self.realm,
                max_token_bytes: self.max_token_bytes,
                allow_query_token: self.allow_query_token,
                cache: self
                    .cache_capacity
                    .map(|capacity| Arc::new(TokenCache::new(capacity))),
                introspection: self.introspection,
                introspect_jwts: self.introspect_jwts,
                revocations: self.revocations.map(|list| list.0),
            }),
        }
        .start())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_like_jwt_needs_three_base64url_parts() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(looks_like_jwt("a.b."));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt(".b.c"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a+.b.c"));
    }
}
