//! [`IssuerRules`]: what one trusted issuer's tokens must look like, and the claim checks.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::keys::KeySet;
use super::token::{self, Failure, Unverified};

/// The leeway used when none is set.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// The largest leeway accepted: clocks that disagree by more are broken, not skewed.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The longest a verified token stays cached, whatever its `exp` says.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A bearer-token configuration that cannot work, found when it is built.
///
/// Reported inside [`ConfigError::Bearer`](crate::ConfigError::Bearer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerConfigError {
    /// The issuer identifier is empty.
    #[error("the issuer identifier is empty")]
    EmptyIssuer,
    /// No accepted audience was given for an issuer.
    #[error("issuer `{issuer}` has no accepted audience; add one with `audience(...)`")]
    MissingAudience {
        /// The issuer.
        issuer: String,
    },
    /// No keys were given for an issuer.
    #[error("issuer `{issuer}` has no keys; add them with `keys(...)`")]
    MissingKeys {
        /// The issuer.
        issuer: String,
    },
    /// An allowed algorithm cannot be verified by any of the issuer's keys, or the
    /// allow-list is empty.
    #[error("issuer `{issuer}`: algorithm `{alg}` is not verifiable by any of its keys")]
    AlgorithmWithoutKey {
        /// The issuer.
        issuer: String,
        /// The algorithm (or `(none)` for an empty list).
        alg: String,
    },
    /// The leeway exceeds five minutes.
    #[error("leeway of {seconds} s exceeds the 300 s maximum")]
    LeewayTooLarge {
        /// The leeway asked for, in seconds.
        seconds: u64,
    },
    /// A duration or size setting is zero.
    #[error("`{setting}` must be greater than zero")]
    InvalidLimit {
        /// The setting.
        setting: &'static str,
    },
    /// The roles claim path is empty or has an empty segment.
    #[error("claim path `{path}` is empty or has an empty segment")]
    InvalidClaimPath {
        /// The path given.
        path: String,
    },
    /// The authenticator was built without an issuer.
    #[error("the bearer authenticator has no issuer; add one with `issuer(...)`")]
    NoIssuer,
    /// Two issuer configurations have the same issuer identifier.
    #[error("issuer `{issuer}` is configured twice")]
    DuplicateIssuer {
        /// The issuer.
        issuer: String,
    },
    /// The realm cannot appear in a `WWW-Authenticate` header.
    #[error("realm `{realm}` must be printable ASCII without `\"` or `\\`")]
    InvalidRealm {
        /// The realm given.
        realm: String,
    },
}

/// What tokens from one issuer must satisfy.
///
/// Built with [`IssuerRules::builder`]; cloning is a reference-count increment.
#[derive(Clone)]
pub struct IssuerRules {
    inner: Arc<Rules>,
}

struct Rules {
    issuer: Arc<str>,
    audiences: Vec<String>,
    keys: KeySet,
    algorithms: Vec<Algorithm>,
    leeway: f64,
    max_token_age: Option<f64>,
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
            .field("roles_claim", &rules.roles_claim)
            .field("allow_missing_typ", &rules.allow_missing_typ)
            .field("allow_jwt_typ", &rules.allow_jwt_typ)
            .finish()
    }
}

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
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            max_token_age: None,
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

    /// The issuer's keys.
    #[must_use]
    pub fn keys(&self) -> &KeySet {
        &self.inner.keys
    }

    /// Checks the header against the rules, the signature against the keys, then the
    /// claims, in that order. `now` is seconds since the Unix epoch.
    pub(crate) fn verify(&self, token: Unverified<'_>, now: f64) -> Result<Verified, Failure> {
        let rules = &*self.inner;
        if !rules.algorithms.contains(&token.alg) {
            return Err(Failure::AlgNotAllowed);
        }
        let typ_ok = match token.typ.as_deref() {
            None => rules.allow_missing_typ,
            Some(typ) => {
                token::is_access_token_typ(typ)
                    || (rules.allow_jwt_typ && token::is_generic_jwt_typ(typ))
            }
        };
        if !typ_ok {
            return Err(Failure::TypMismatch);
        }
        let key =
            rules
                .keys
                .select(token.kid.as_deref(), token.alg)
                .map_err(|error| match error {
                    super::keys::SelectError::UnknownKid => Failure::UnknownKid,
                    super::keys::SelectError::AlgorithmNotAllowed => Failure::AlgNotAllowed,
                })?;
        token.verify(key)?;
        self.check_claims(token.claims, now)
    }

    fn check_claims(&self, claims: Map<String, Value>, now: f64) -> Result<Verified, Failure> {
        let rules = &*self.inner;
        let leeway = rules.leeway;

        let exp = number(&claims, "exp")?.ok_or(Failure::MissingClaim)?;
        if now > exp + leeway {
            return Err(Failure::Expired);
        }
        if let Some(nbf) = number(&claims, "nbf")?
            && now + leeway < nbf
        {
            return Err(Failure::NbfFuture);
        }
        let mut valid_until = exp;
        match (number(&claims, "iat")?, rules.max_token_age) {
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
        self.check_audience(claims.get("aud"))?;

        let subject = match (claims.get("sub"), claims.get("client_id")) {
            (Some(Value::String(sub)), _) => sub.clone(),
            (Some(_), _) => return Err(Failure::ClaimType),
            (None, Some(Value::String(client))) => client.clone(),
            (None, Some(_)) => return Err(Failure::ClaimType),
            (None, None) => return Err(Failure::MissingClaim),
        };

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

        let mut roles = Vec::new();
        if let Some(path) = &rules.roles_claim {
            match claim_at(&claims, path) {
                None => {}
                Some(Value::String(role)) => roles.push(role.clone()),
                Some(Value::Array(items)) => push_strings(items, &mut roles)?,
                Some(_) => return Err(Failure::ClaimType),
            }
        }

        Ok(Verified {
            subject,
            scopes,
            roles,
            claims,
            valid_until: cache_deadline(valid_until, now),
        })
    }

    fn check_audience(&self, aud: Option<&Value>) -> Result<(), Failure> {
        let accepted = |aud: &str| self.inner.audiences.iter().any(|ok| ok == aud);
        match aud {
            None => Err(Failure::MissingClaim),
            Some(Value::String(aud)) if accepted(aud) => Ok(()),
            Some(Value::String(_)) => Err(Failure::AudMismatch),
            Some(Value::Array(items)) => {
                let mut found = false;
                for item in items {
                    let aud = item.as_str().ok_or(Failure::ClaimType)?;
                    found |= accepted(aud);
                }
                if found {
                    Ok(())
                } else {
                    Err(Failure::AudMismatch)
                }
            }
            Some(_) => Err(Failure::ClaimType),
        }
    }
}

/// A numeric time claim: absent is `None`, a JSON number is its value, anything else
/// (a string, a boolean, null) is a type error.
fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Failure> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(Failure::ClaimType),
        Some(_) => Err(Failure::ClaimType),
    }
}

fn push_words(text: &str, out: &mut Vec<String>) {
    out.extend(text.split(' ').filter(|w| !w.is_empty()).map(str::to_owned));
}

fn push_strings(items: &[Value], out: &mut Vec<String>) -> Result<(), Failure> {
    for item in items {
        out.push(item.as_str().ok_or(Failure::ClaimType)?.to_owned());
    }
    Ok(())
}

fn claim_at<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// Converts `until` (seconds since the epoch) to the time a cached verification expires,
/// never later than a day from `now`.
fn cache_deadline(until: f64, now: f64) -> SystemTime {
    let until = until.min(now + MAX_CACHE_LIFETIME.as_secs_f64()).max(0.0);
    UNIX_EPOCH + Duration::try_from_secs_f64(until).unwrap_or_default()
}

/// Builds [`IssuerRules`]; see [`IssuerRules::builder`]. Every setting documents its default.
#[must_use]
#[derive(Debug)]
pub struct IssuerRulesBuilder {
    issuer: String,
    audiences: Vec<String>,
    keys: Option<KeySet>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    max_token_age: Option<Duration>,
    roles_claim: Option<String>,
    allow_missing_typ: bool,
    allow_jwt_typ: bool,
}

impl IssuerRulesBuilder {
    /// Accepts tokens whose `aud` contains `audience`. Call again to accept several.
    /// Required: there is no default audience, because a token for another API of the same
    /// issuer must not be accepted here.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Verifies signatures with `keys`. Required.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(keys);
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
    /// A [`ConfigError::Bearer`](crate::ConfigError::Bearer) for an empty issuer, no audience, no keys, an algorithm no
    /// key can verify, a leeway over 5 minutes, a zero maximum age, or a bad claim path.
    pub fn build(self) -> Result<IssuerRules, crate::ConfigError> {
        self.try_build().map_err(crate::ConfigError::from)
    }

    fn try_build(self) -> Result<IssuerRules, BearerConfigError> {
        if self.issuer.is_empty() {
            return Err(BearerConfigError::EmptyIssuer);
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(BearerConfigError::MissingAudience {
                issuer: self.issuer,
            });
        }
        let Some(keys) = self.keys else {
            return Err(BearerConfigError::MissingKeys {
                issuer: self.issuer,
            });
        };
        let algorithms = match self.algorithms {
            None => keys.algorithms(),
            Some(algorithms) => {
                let supported = keys.algorithms();
                if let Some(alg) = algorithms.iter().find(|alg| !supported.contains(alg)) {
                    return Err(BearerConfigError::AlgorithmWithoutKey {
                        issuer: self.issuer,
                        alg: format!("{alg:?}"),
                    });
                }
                if algorithms.is_empty() {
                    return Err(BearerConfigError::AlgorithmWithoutKey {
                        issuer: self.issuer,
                        alg: "(none)".to_owned(),
                    });
                }
                algorithms
            }
        };
        if self.leeway > MAX_LEEWAY {
            return Err(BearerConfigError::LeewayTooLarge {
                seconds: self.leeway.as_secs(),
            });
        }
        if self.max_token_age.is_some_and(|age| age.is_zero()) {
            return Err(BearerConfigError::InvalidLimit {
                setting: "max_token_age",
            });
        }
        let roles_claim = match self.roles_claim {
            None => None,
            Some(path) => {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(BearerConfigError::InvalidClaimPath { path });
                }
                Some(segments)
            }
        };
        Ok(IssuerRules {
            inner: Arc::new(Rules {
                issuer: self.issuer.into(),
                audiences: self.audiences,
                keys,
                algorithms,
                leeway: self.leeway.as_secs_f64(),
                max_token_age: self.max_token_age.map(|age| age.as_secs_f64()),
                roles_claim,
                allow_missing_typ: self.allow_missing_typ,
                allow_jwt_typ: self.allow_jwt_typ,
            }),
        })
    }
}
