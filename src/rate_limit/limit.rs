//! What a limit is: a [`Quota`], a [`LimitKey`] saying whose bucket a request counts
//! against, [`Tier`]s choosing another quota from the caller, and the routes it covers.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Extensions;

use crate::principal::{AuthMethod, BucketKeys, Principal};

/// How many requests a bucket allows: `requests` per `period`, refilled steadily (GCRA),
/// with bursts of up to `burst` requests (by default `requests`).
///
/// `Quota::per_second(100)` allows a burst of 100 and then one request every 10 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    requests: u32,
    period: Duration,
    burst: u32,
}

impl Quota {
    /// `requests` per `period`.
    #[must_use]
    pub const fn new(requests: u32, period: Duration) -> Self {
        Self {
            requests,
            period,
            burst: requests,
        }
    }

    /// `requests` per second.
    #[must_use]
    pub const fn per_second(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(1))
    }

    /// `requests` per minute.
    #[must_use]
    pub const fn per_minute(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(60))
    }

    /// `requests` per hour.
    #[must_use]
    pub const fn per_hour(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(3600))
    }

    /// Allows bursts of up to `burst` requests. Defaults to the quota's `requests`.
    #[must_use]
    pub const fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// The requests per period.
    #[must_use]
    pub const fn requests(&self) -> u32 {
        self.requests
    }

    /// The period.
    #[must_use]
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// The largest burst.
    #[must_use]
    pub const fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The time one request's allowance takes to refill: `period / requests`.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.period
            .checked_div(self.requests)
            .unwrap_or(Duration::ZERO)
    }

    /// What is wrong with the quota, if anything.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.requests == 0 {
            Some("a quota must allow at least one request")
        } else if self.burst == 0 {
            Some("a burst must be at least one request")
        } else if self.interval().is_zero() {
            Some("the period is too short for that many requests")
        } else if self
            .interval()
            .checked_mul(self.requests.max(self.burst))
            .is_none_or(|whole| whole > Duration::from_secs(365 * 86_400))
        {
            Some("a quota refills within a year at most (period, and interval × burst)")
        } else {
            None
        }
    }
}

/// Whose bucket a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKey {
    /// The API key's identifier (callers authenticated otherwise are not limited by it).
    ApiKey,
    /// The caller's subject, with its issuer.
    Subject,
    /// The OAuth client: the `client_id` claim, else `azp`.
    ClientId,
    /// The caller's tenant.
    Tenant,
    /// The client IP ([`ClientIp`](crate::ClientIp) from a shield in front, else the connection's peer):
    /// IPv4 addresses one by one, IPv6 by network (a /64 by default, see
    /// [`RateLimitBuilder::ipv6_prefix`](super::RateLimitBuilder::ipv6_prefix)).
    ClientIp,
    /// The route: one bucket per route pattern the limit lists (needs
    /// [`Limit::routes`]).
    Route,
    /// One bucket for everything the limit covers (a route group's total).
    Shared,
}

impl LimitKey {
    /// Whether the key needs an authenticated caller.
    #[cfg(feature = "authz")]
    pub(crate) fn needs_identity(self) -> bool {
        matches!(
            self,
            Self::ApiKey | Self::Subject | Self::ClientId | Self::Tenant
        )
    }

    /// Where the limit comes in the layer's checks: client IP, identities, route, shared.
    pub(crate) fn order(self) -> u8 {
        match self {
            Self::ClientIp => 0,
            Self::ApiKey | Self::Subject | Self::ClientId | Self::Tenant => 1,
            Self::Route => 2,
            Self::Shared => 3,
        }
    }

    /// The bucket of this request, or `None` when the key does not apply (no caller, no
    /// API key, no tenant). A principal's keys are worked out once and borrowed after.
    pub(crate) fn bucket<'a>(
        self,
        shared: &'a BucketKey,
        extensions: &Extensions,
        principal: Option<&'a Principal>,
        route: Option<&'a BucketKey>,
        ipv6_prefix: u8,
    ) -> Option<Cow<'a, BucketKey>> {
        let of_principal = |cell: fn(&BucketKeys) -> &OnceLock<Option<BucketKey>>,
                            make: fn(&Principal) -> Option<BucketKey>| {
            let principal = principal?;
            cell(principal.bucket_keys())
                .get_or_init(|| make(principal))
                .as_ref()
                .map(Cow::Borrowed)
        };
        match self {
            Self::ApiKey => of_principal(
                |keys| &keys.api_key,
                |principal| match principal.auth_method() {
                    AuthMethod::ApiKey { key_id } => Some(BucketKey::Text(key_id.clone())),
                    _ => None,
                },
            ),
            Self::Subject => of_principal(
                |keys| &keys.subject,
                |principal| {
                    let issuer = principal.issuer().unwrap_or("");
                    // The NUL cannot be in an issuer URL: no two pairs make one text.
                    Some(BucketKey::Text(
                        format!("{issuer}\u{0}{}", principal.subject()).into(),
                    ))
                },
            ),
            Self::ClientId => of_principal(
                |keys| &keys.client_id,
                |principal| {
                    let client = principal
                        .claim("client_id")
                        .or_else(|| principal.claim("azp"))?
                        .as_str()?;
                    Some(BucketKey::Text(client.into()))
                },
            ),
            Self::Tenant => of_principal(
                |keys| &keys.tenant,
                |principal| Some(BucketKey::Text(principal.tenant()?.into())),
            ),
            Self::ClientIp => Some(Cow::Owned(BucketKey::Ip(crate::shield::counting_key(
                client_ip(extensions)?,
                ipv6_prefix,
            )))),
            Self::Route => route.map(Cow::Borrowed),
            Self::Shared => Some(Cow::Borrowed(shared)),
        }
    }
}

/// The client's address (see [`crate::shield::client_ip_of`]).
pub(crate) fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    crate::shield::client_ip_of(extensions)
}

/// One bucket of a limit: whose requests count together.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BucketKey {
    /// A client IP: an IPv4 address, or an IPv6 network's first address (`2001:db8:1:2::`
    /// for the /64).
    Ip(IpAddr),
    /// A key id, subject, client, tenant, route pattern or the limit's own name.
    Text(Arc<str>),
}

impl Hash for BucketKey {
    /// A text key hashes as its bytes alone, in one write (the in-process store hashes a
    /// key on every request); equal keys hash alike, as `Eq` needs.
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Self::Ip(address) => address.hash(state),
            Self::Text(text) => state.write(text.as_bytes()),
        }
    }
}

impl fmt::Display for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(address) => address.fmt(f),
            Self::Text(text) => f.write_str(text),
        }
    }
}

/// A condition on the caller that picks a tier's quota.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tier {
    /// The caller has this role.
    Role(Arc<str>),
    /// The caller has this scope.
    Scope(Arc<str>),
    /// The caller's claim (for API keys: the key's metadata) has this string value, e.g.
    /// `plan` = `gold`.
    Claim {
        /// The claim's name.
        name: Arc<str>,
        /// The value it must have.
        value: Arc<str>,
    },
}

impl Tier {
    /// Callers with role `role`.
    pub fn role(role: impl Into<Arc<str>>) -> Self {
        Self::Role(role.into())
    }

    /// Callers with scope `scope`.
    pub fn scope(scope: impl Into<Arc<str>>) -> Self {
        Self::Scope(scope.into())
    }

    /// Callers whose claim (API-key metadata) `name` is the string `value`.
    pub fn claim(name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        Self::Claim {
            name: name.into(),
            value: value.into(),
        }
    }

    pub(crate) fn matches(&self, principal: &Principal) -> bool {
        match self {
            Self::Role(role) => principal.has_role(role),
            Self::Scope(scope) => principal.has_scope(scope),
            Self::Claim { name, value } => {
                principal
                    .claims()
                    .get(&**name)
                    .and_then(serde_json::Value::as_str)
                    == Some(&**value)
            }
        }
    }
}

/// One rate limit: a name (in headers, logs and metrics), whose bucket a request counts
/// against, its quota, tiers, and the routes it covers.
///
/// ```
/// use portcullis::rate_limit::{Limit, LimitKey, Quota, Tier};
///
/// let per_key = Limit::new("per-key", LimitKey::ApiKey, Quota::per_second(10))
///     .tier(Tier::role("admin"), Quota::per_second(100))
///     .tier(Tier::claim("plan", "gold"), Quota::per_second(50));
/// let orders = Limit::new("orders", LimitKey::Shared, Quota::per_second(1_000))
///     .routes(["POST /orders", "DELETE /orders/{id}"]);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Limit {
    pub(crate) name: Arc<str>,
    pub(crate) key: LimitKey,
    pub(crate) quota: Quota,
    pub(crate) tiers: Vec<(Tier, Quota)>,
    pub(crate) routes: Vec<String>,
}

impl Limit {
    /// A limit named `name` (letters, digits, `-`, `_`, `.`; up to 64), keyed by `key`,
    /// allowing `quota` per bucket.
    pub fn new(name: &str, key: LimitKey, quota: Quota) -> Self {
        Self {
            name: name.into(),
            key,
            quota,
            tiers: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Callers matching `tier` get `quota` instead. Tiers are tried in the order added;
    /// the first that matches wins.
    pub fn tier(mut self, tier: Tier, quota: Quota) -> Self {
        self.tiers.push((tier, quota));
        self
    }

    /// Covers only requests matching these rules (`METHOD /path`). Defaults to every
    /// request.
    pub fn routes<I, T>(mut self, rules: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.routes
            .extend(rules.into_iter().map(|rule| rule.as_ref().to_owned()));
        self
    }

    /// The limit's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whose bucket a request counts against.
    #[must_use]
    pub fn key(&self) -> LimitKey {
        self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A principal's bucket keys are worked out once: later requests borrow the same key,
    /// and a principal without the key's part has no bucket.
    #[test]
    fn principal_keys_are_worked_out_once() {
        let principal = Principal::builder(
            "vera",
            AuthMethod::ApiKey {
                key_id: "k_1".into(),
            },
        )
        .issuer("https://issuer.example")
        .build();
        let shared = BucketKey::Text("per-key".into());
        let extensions = Extensions::new();
        let bucket = |key: LimitKey| key.bucket(&shared, &extensions, Some(&principal), None, 64);
        let first = bucket(LimitKey::ApiKey).expect("an API-key principal");
        let again = bucket(LimitKey::ApiKey).expect("an API-key principal");
        assert!(
            matches!((&first, &again), (Cow::Borrowed(a), Cow::Borrowed(b)) if std::ptr::eq(*a, *b))
        );
        assert_eq!(*first, BucketKey::Text("k_1".into()));
        assert_eq!(
            *bucket(LimitKey::Subject).expect("a subject"),
            BucketKey::Text("https://issuer.example\u{0}vera".into())
        );
        assert!(bucket(LimitKey::Tenant).is_none());
        assert!(bucket(LimitKey::ClientId).is_none());
        assert!(
            LimitKey::ApiKey
                .bucket(&shared, &extensions, None, None, 64)
                .is_none()
        );
    }

    /// Route and shared limits borrow the keys the layer made when it was built: nothing is
    /// made per request.
    #[test]
    fn route_and_shared_keys_are_borrowed() {
        let shared = BucketKey::Text("everyone".into());
        let route = BucketKey::Text("POST /orders".into());
        let extensions = Extensions::new();
        let borrowed = |key: Option<Cow<'_, BucketKey>>, from: &BucketKey| matches!(key, Some(Cow::Borrowed(key)) if std::ptr::eq(key, from));
        let bucket = |key: LimitKey, route| key.bucket(&shared, &extensions, None, route, 64);
        assert!(borrowed(bucket(LimitKey::Shared, None), &shared));
        assert!(borrowed(bucket(LimitKey::Route, Some(&route)), &route));
        assert!(bucket(LimitKey::Route, None).is_none());
    }
}
