//! [`IssuerRules`]: what one trusted issuer's tokens must look like, and the claim checks.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::jwt::claims::{check_audience, push_strings, push_words, roles_at, time};
use crate::jwt::token::{self, Failure, Unverified};
use crate::jwt::{Algorithm, KeySet};
use crate::remote::{HttpClient, JwksCache, JwksSource};

/// The leeway used when none is set.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// The largest leeway accepted: clocks that disagree by more are broken, not skewed.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The longest a verified token stays cached, whatever its `exp` says.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest token lifetime (`exp` − `iat`) accepted when none is set.
const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a logout token without `exp` is accepted after its `iat`.
#[cfg(feature = "oidc")]
const MAX_LOGOUT_TOKEN_AGE: f64 = 120.0;
/// The largest maximum token lifetime that may be set: a credential that lives longer than
/// a year is not an access token.
const MAX_MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// What tokens from one issuer must satisfy.
///
/// Built with [`IssuerRules::builder`]; cloning is a reference-count increment.
#[derive(Clone)]
pub struct IssuerRules {
    inner: Arc<Rules>,
}

#[derive(Clone)]
struct Rules {
    /// Which kind of token these rules check (access tokens unless OpenID Connect made a
    /// copy for its ID or logout tokens).
    profile: Profile,
    issuer: Arc<str>,
    audiences: Vec<String>,
    keys: KeySource,
    algorithms: Vec<Algorithm>,
    leeway: f64,
    max_token_age: Option<f64>,
    max_lifetime: f64,
    strict: bool,
    roles_claim: Option<Vec<String>>,
    allow_missing_typ: bool,
    allow_jwt_typ: bool,
}

impl fmt::Debug for IssuerRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules = &*self.inner;
        f.debug_struct("IssuerRules")
            .field("issuer", &rules.issuer)
            .field("audiences", &rules.audiences)
            .field("keys", &rules.keys)
            .field("algorithms", &rules.algorithms)
            .field("leeway", &rules.leeway)
            .field("max_token_age", &rules.max_token_age)
            .field("max_lifetime", &rules.max_lifetime)
            .field("rfc9068_strict", &rules.strict)
            .field("roles_claim", &rules.roles_claim)
            .field("allow_missing_typ", &rules.allow_missing_typ)
            .field("allow_jwt_typ", &rules.allow_jwt_typ)
            .finish()
    }
}

/// Which kind of token the rules check: the claim checks are the same, the `typ` and the
/// required `sub` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// An OAuth 2.0 access token (RFC 9068): `typ` `at+jwt` unless relaxed; `sub` required.
    Access,
    /// An OpenID Connect ID token: `typ` absent or `JWT`, never `at+jwt`; `sub` required.
    #[cfg(feature = "oidc")]
    Id,
    /// A back-channel logout token: `typ` absent or `logout+jwt`; `sub` optional (`sid`
    /// may stand in for it); `exp` optional.
    #[cfg(feature = "oidc")]
    Logout,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub(crate) enum KeySource {
    /// Keys given in code.
    Static(Arc<KeySet>),
    /// Keys fetched from a JWKS URL (directly or through discovery).
    Remote(Arc<JwksCache>),
}

/// The algorithms a fetched JWKS may serve keys for (never HMAC: `oct` keys are not
/// loaded from a JWKS).
const REMOTE_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A token that passed every check: who the caller is, and until when this may be
/// believed without checking again.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) subject: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) claims: Map<String, Value>,
    /// When the token stops being acceptable: `exp`, or `iat` + maximum age if sooner.
    pub(crate) valid_until: SystemTime,
}

impl IssuerRules {
    /// Starts the rules for tokens whose `iss` is exactly `issuer`.
    pub fn builder(issuer: impl Into<String>) -> IssuerRulesBuilder {
        IssuerRulesBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            keys: None,
            jwks_url: None,
            discover: false,
            http_client: None,
            jwks_cooldown: None,
            max_stale: None,
            jwks_min_refresh: None,
            allow_http: false,
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            max_token_age: None,
            max_token_lifetime: DEFAULT_MAX_LIFETIME,
            rfc9068_strict: false,
            roles_claim: None,
            allow_missing_typ: false,
            allow_jwt_typ: false,
        }
    }

    /// The issuer identifier (`iss`).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The accepted audiences.
    #[must_use]
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// The algorithms accepted from this issuer.
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.inner.algorithms
    }

    /// The issuer's keys now: the keys given in code, or the current usable fetched set
    /// (`None` while none is loaded or the last one is too stale).
    #[must_use]
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        match &self.inner.keys {
            KeySource::Static(keys) => Some(Arc::clone(keys)),
            KeySource::Remote(cache) => cache.snapshot(),
        }
    }

    /// The JWKS cache, when the keys are fetched (`jwks_url` or `discover`).
    #[must_use]
    pub fn jwks(&self) -> Option<&Arc<JwksCache>> {
        match &self.inner.keys {
            KeySource::Static(_) => None,
            KeySource::Remote(cache) => Some(cache),
        }
    }

    /// Whether keys are available: always for keys given in code; for fetched keys, once a
    /// usable set is loaded.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        match &self.inner.keys {
            KeySource::Static(_) => true,
            KeySource::Remote(cache) => cache.is_ready(),
        }
    }

    pub(crate) fn key_source(&self) -> &KeySource {
        &self.inner.keys
    }

    /// The same rules, keys and key cache, checking another kind of token.
    #[cfg(feature = "oidc")]
    pub(crate) fn for_profile(&self, profile: Profile) -> Self {
        let mut rules = (*self.inner).clone();
        rules.profile = profile;
        Self {
            inner: Arc::new(rules),
        }
    }

    /// The leeway, in seconds.
    #[cfg(feature = "oidc")]
    pub(crate) fn leeway_seconds(&self) -> f64 {
        self.inner.leeway
    }

    /// Checks the header against the rules, the signature against `keys`, then the
    /// claims, in that order. `now` is seconds since the Unix epoch.
    pub(crate) fn verify(
        &self,
        token: Unverified<'_>,
        keys: &KeySet,
        now: f64,
    ) -> Result<Verified, Failure> {
        let rules = &*self.inner;
        if !rules.algorithms.contains(&token.alg) {
            return Err(Failure::AlgNotAllowed);
        }
        let typ_ok = match (rules.profile, token.typ.as_deref()) {
            (Profile::Access, None) => rules.allow_missing_typ,
            (Profile::Access, Some(typ)) => {
                token::is_access_token_typ(typ)
                    || (rules.allow_jwt_typ && token::is_generic_jwt_typ(typ))
            }
            #[cfg(feature = "oidc")]
            (Profile::Id, typ) => typ.is_none_or(token::is_generic_jwt_typ),
            #[cfg(feature = "oidc")]
            (Profile::Logout, typ) => typ.is_none_or(token::is_logout_token_typ),
        };
        if !typ_ok {
            return Err(Failure::TypMismatch);
        }
        let key = keys
            .select(token.kid.as_deref(), token.alg)
            .map_err(|error| match error {
                crate::jwt::SelectError::UnknownKid => Failure::UnknownKid,
                crate::jwt::SelectError::AlgorithmNotAllowed => Failure::AlgNotAllowed,
            })?;
        token.verify(key)?;
        self.check_claims(token.claims, now)
    }

    fn check_claims(&self, claims: Map<String, Value>, now: f64) -> Result<Verified, Failure> {
        let rules = &*self.inner;
        let leeway = rules.leeway;

        let exp = match time(&claims, "exp")? {
            Some(exp) => exp,
            #[cfg(feature = "oidc")]
            None if rules.profile == Profile::Logout => {
                // Back-Channel Logout 1.0 made `exp` required only late; without it the
                // token must still be recent (`iat`) and is usable once (`jti`).
                let iat = time(&claims, "iat")?.ok_or(Failure::MissingIat)?;
                iat + rules.max_lifetime.min(MAX_LOGOUT_TOKEN_AGE)
            }
            None => return Err(Failure::MissingClaim),
        };
        if now > exp + leeway {
            return Err(Failure::Expired);
        }
        if let Some(nbf) = time(&claims, "nbf")?
            && now + leeway < nbf
        {
            return Err(Failure::NbfFuture);
        }
        let iat = time(&claims, "iat")?;
        // How long the issuer meant the token to live; without `iat`, how long it has left
        // (our clock may be behind the issuer's by up to the leeway).
        let lifetime = match iat {
            Some(iat) => exp - iat,
            None => exp - now - leeway,
        };
        if lifetime > rules.max_lifetime {
            return Err(Failure::LifetimeTooLong);
        }
        let mut valid_until = exp;
        match (iat, rules.max_token_age) {
            (Some(iat), _) if iat > now + leeway => return Err(Failure::IatFuture),
            (Some(iat), Some(max_age)) => {
                if now - iat > max_age + leeway {
                    return Err(Failure::TooOld);
                }
                valid_until = valid_until.min(iat + max_age);
            }
            (None, Some(_)) => return Err(Failure::MissingClaim),
            _ => {}
        }

        match claims.get("iss") {
            None => return Err(Failure::MissingClaim),
            Some(Value::String(iss)) if **iss == *rules.issuer => {}
            Some(Value::String(_)) => return Err(Failure::IssMismatch),
            Some(_) => return Err(Failure::ClaimType),
        }
        check_audience(&rules.audiences, claims.get("aud"))?;

        // RFC 9068 section 2.2: `sub` is required. No `client_id` stands in for it here
        // (introspection answers, where RFC 7662 makes `sub` optional, are another matter).
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) => sub.clone(),
            Some(_) => return Err(Failure::ClaimType),
            #[cfg(feature = "oidc")]
            None if rules.profile == Profile::Logout => String::new(),
            None => return Err(Failure::MissingSub),
        };
        if rules.strict {
            if iat.is_none() {
                return Err(Failure::MissingIat);
            }
            for (name, missing) in [
                ("jti", Failure::MissingJti),
                ("client_id", Failure::MissingClientId),
            ] {
                match claims.get(name) {
                    Some(Value::String(_)) => {}
                    Some(_) => return Err(Failure::ClaimType),
                    None => return Err(missing),
                }
            }
        }

        let mut scopes = Vec::new();
        match claims.get("scope") {
            None => {}
            Some(Value::String(scope)) => push_words(scope, &mut scopes),
            Some(_) => return Err(Failure::ClaimType),
        }
        match claims.get("scp") {
            None => {}
            Some(Value::String(scp)) => push_words(scp, &mut scopes),
            Some(Value::Array(items)) => push_strings(items, &mut scopes)?,
            Some(_) => return Err(Failure::ClaimType),
        }

        let roles = roles_at(&claims, rules.roles_claim.as_deref())?;

        Ok(Verified {
            subject,
            scopes,
            roles,
            claims,
            valid_until: cache_deadline(valid_until, now),
        })
    }
}

/// Converts `until` (seconds since the epoch) to the time a cached verification expires,
/// never later than a day from `now`.
fn cache_deadline(until: f64, now: f64) -> SystemTime {
    let until = until.min(now + MAX_CACHE_LIFETIME.as_secs_f64()).max(0.0);
    UNIX_EPOCH + Duration::try_from_secs_f64(until).unwrap_or_default()
}

/// Builds [`IssuerRules`]; see [`IssuerRules::builder`]. Every setting documents its default.
#[must_use]
pub struct IssuerRulesBuilder {
    issuer: String,
    audiences: Vec<String>,
    keys: Option<KeySet>,
    jwks_url: Option<String>,
    discover: bool,
    http_client: Option<Arc<dyn HttpClient>>,
    jwks_cooldown: Option<Duration>,
    max_stale: Option<Duration>,
    jwks_min_refresh: Option<Duration>,
    allow_http: bool,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    max_token_age: Option<Duration>,
    max_token_lifetime: Duration,
    rfc9068_strict: bool,
    roles_claim: Option<String>,
    allow_missing_typ: bool,
    allow_jwt_typ: bool,
}

impl fmt::Debug for IssuerRulesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerRulesBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("keys", &self.keys)
            .field("jwks_url", &self.jwks_url)
            .field("discover", &self.discover)
            .field("custom_http_client", &self.http_client.is_some())
            .field("jwks_cooldown", &self.jwks_cooldown)
            .field("max_stale", &self.max_stale)
            .field("jwks_min_refresh", &self.jwks_min_refresh)
            .field("allow_http", &self.allow_http)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .field("max_token_age", &self.max_token_age)
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field("rfc9068_strict", &self.rfc9068_strict)
            .field("roles_claim", &self.roles_claim)
            .field("allow_missing_typ", &self.allow_missing_typ)
            .field("allow_jwt_typ", &self.allow_jwt_typ)
            .finish()
    }
}

impl IssuerRulesBuilder {
    /// Accepts tokens whose `aud` contains `audience`. Call again to accept several.
    /// Required: there is no default audience, because a token for another API of the same
    /// issuer must not be accepted here.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Verifies signatures with `keys` given in code. Exactly one key source is required:
    /// this, [`jwks_url`](Self::jwks_url) or [`discover`](Self::discover).
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Verifies signatures with the keys of the JWKS at `url`, fetched in the background
    /// and refreshed (see [`JwksCache`]). The URL must be `https` (or `http` to a loopback
    /// host, unless [`insecure_allow_http`](Self::insecure_allow_http)).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Verifies signatures with the keys of the JWKS named by the issuer's discovery
    /// document (`<issuer>/.well-known/openid-configuration`, falling back to
    /// `/.well-known/oauth-authorization-server`), whose `issuer` must equal this issuer.
    pub fn discover(mut self) -> Self {
        self.discover = true;
        self
    }

    /// Fetches remote keys through `client`. Defaults to a
    /// [`ReqwestClient`](crate::remote::ReqwestClient) (5 s timeout, 1 MiB cap).
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Refetches the JWKS because of an unknown `kid` at most once per `cooldown`.
    /// Defaults to 30 s.
    pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_cooldown = Some(cooldown);
        self
    }

    /// Keeps using the last good JWKS for at most `max_stale` after it was fetched while
    /// refreshes fail; after that requests get 503. Defaults to 24 h; at most 7 days.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = Some(max_stale);
        self
    }

    /// Refreshes the JWKS on the timer no more often than every `interval`, whatever its
    /// `Cache-Control: max-age` says. Defaults to 60 s; at most 24 h.
    pub fn jwks_min_refresh(mut self, interval: Duration) -> Self {
        self.jwks_min_refresh = Some(interval);
        self
    }

    /// Accepts plain `http` JWKS and discovery URLs to any host. Defaults to false:
    /// `https` is required except for loopback hosts.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Accepts only these algorithms. Defaults to every algorithm the keys allow (so `HS*`
    /// only when an HMAC key was given in code). Each must be verifiable by some key.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Tolerates this much clock skew on `exp`, `nbf` and `iat`. Defaults to 60 seconds; at
    /// most 5 minutes.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Refuses tokens issued (`iat`) longer ago than `age`, and tokens without `iat`.
    /// Defaults to none (only `exp` limits a token's life).
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_token_age = Some(age);
        self
    }

    /// Refuses tokens meant to live longer than `lifetime`: `exp` − `iat`, or, without
    /// `iat`, `exp` − now (less the leeway). Defaults to 24 hours; at most 366 days. A
    /// stolen long-lived token is a long-lived breach, and a lifetime of years is the
    /// mark of a forged or mis-issued token.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Applies the full RFC 9068 profile: besides what is always required (`iss`, `exp`,
    /// `aud`, `sub`, `typ` `at+jwt`), requires `iat` (a number), `jti` (a string) and
    /// `client_id` (a string). Defaults to off, because many providers omit `jti` or
    /// `client_id`. The `insecure_allow_*_typ` options still apply when also set.
    pub fn rfc9068_strict(mut self) -> Self {
        self.rfc9068_strict = true;
        self
    }

    /// Reads roles from the claim at this dotted path (`realm_access.roles`,
    /// `resource_access.my-client.roles`, `roles`): an array of strings or one string.
    /// Defaults to none (no roles).
    pub fn roles_claim(mut self, path: impl Into<String>) -> Self {
        self.roles_claim = Some(path.into());
        self
    }

    /// Accepts tokens without a `typ` header. Defaults to false: RFC 9068 access tokens say
    /// `at+jwt`, which keeps ID tokens and other JWTs from the same issuer from passing as
    /// access tokens.
    pub fn insecure_allow_missing_typ(mut self) -> Self {
        self.allow_missing_typ = true;
        self
    }

    /// Accepts tokens whose `typ` is the generic `JWT` (as some identity providers send for
    /// access tokens). Defaults to false, for the same reason as
    /// [`insecure_allow_missing_typ`](Self::insecure_allow_missing_typ).
    pub fn insecure_allow_jwt_typ(mut self) -> Self {
        self.allow_jwt_typ = true;
        self
    }

    /// Checks the settings and finishes the rules.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`](crate::ConfigError) for an empty issuer, no
    /// audience, no keys, an algorithm no key can verify, a leeway over 5 minutes, a zero
    /// maximum age, a maximum token lifetime that is zero or over 366 days, or a bad claim
    /// path.
    pub fn build(self) -> Result<IssuerRules, crate::ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::MissingAudience {
                issuer: self.issuer,
            });
        }
        let sources = usize::from(self.keys.is_some())
            + usize::from(self.jwks_url.is_some())
            + usize::from(self.discover);
        if sources > 1 {
            return Err(ConfigError::ConflictingKeySources {
                issuer: self.issuer,
            });
        }
        let remote = match (self.jwks_url, self.discover) {
            (Some(url), _) => Some(JwksSource::Url(url)),
            (None, true) => Some(JwksSource::Discover(self.issuer.clone())),
            (None, false) => None,
        };
        let keys = match (self.keys, remote) {
            (Some(keys), _) => KeySource::Static(Arc::new(keys)),
            (None, Some(source)) => {
                let mut cache = JwksCache::builder(source);
                if let Some(client) = self.http_client {
                    cache = cache.http_client(client);
                }
                if let Some(cooldown) = self.jwks_cooldown {
                    cache = cache.cooldown(cooldown);
                }
                if let Some(max_stale) = self.max_stale {
                    cache = cache.max_stale(max_stale);
                }
                if let Some(interval) = self.jwks_min_refresh {
                    cache = cache.min_refresh(interval);
                }
                if self.allow_http {
                    cache = cache.insecure_allow_http();
                }
                KeySource::Remote(cache.build()?)
            }
            (None, None) => {
                return Err(ConfigError::MissingKeys {
                    issuer: self.issuer,
                });
            }
        };
        let algorithms = match self.algorithms {
            None => match &keys {
                KeySource::Static(keys) => keys.algorithms(),
                KeySource::Remote(_) => REMOTE_ALGORITHMS.to_vec(),
            },
            Some(algorithms) => {
                let supported = match &keys {
                    KeySource::Static(keys) => keys.algorithms(),
                    KeySource::Remote(_) => REMOTE_ALGORITHMS.to_vec(),
                };
                if let Some(alg) = algorithms.iter().find(|alg| !supported.contains(alg)) {
                    return Err(ConfigError::AlgorithmWithoutKey {
                        issuer: self.issuer,
                        alg: format!("{alg:?}"),
                    });
                }
                if algorithms.is_empty() {
                    return Err(ConfigError::AlgorithmWithoutKey {
                        issuer: self.issuer,
                        alg: "(none)".to_owned(),
                    });
                }
                algorithms
            }
        };
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge {
                seconds: self.leeway.as_secs(),
            });
        }
        if self.max_token_age.is_some_and(|age| age.is_zero()) {
            return Err(ConfigError::InvalidLimit {
                setting: "max_token_age",
            });
        }
        if self.max_token_lifetime.is_zero() {
            return Err(ConfigError::InvalidLimit {
                setting: "max_token_lifetime",
            });
        }
        if self.max_token_lifetime > MAX_MAX_LIFETIME {
            return Err(ConfigError::LimitTooLarge {
                setting: "max_token_lifetime",
                max: MAX_MAX_LIFETIME.as_secs(),
            });
        }
        let roles_claim = match self.roles_claim {
            None => None,
            Some(path) => {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(ConfigError::InvalidClaimPath { path });
                }
                Some(segments)
            }
        };
        Ok(IssuerRules {
            inner: Arc::new(Rules {
                profile: Profile::Access,
                issuer: self.issuer.into(),
                audiences: self.audiences,
                keys,
                algorithms,
                leeway: self.leeway.as_secs_f64(),
                max_token_age: self.max_token_age.map(|age| age.as_secs_f64()),
                max_lifetime: self.max_token_lifetime.as_secs_f64(),
                strict: self.rfc9068_strict,
                roles_claim,
                allow_missing_typ: self.allow_missing_typ,
                allow_jwt_typ: self.allow_jwt_typ,
            }),
        })
    }
}
