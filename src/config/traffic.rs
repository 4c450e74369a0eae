//! The policy file's `traffic` section: the client IP behind trusted proxies, IP rules,
//! brute-force blocking and rate limits, built into the gateway's shield and rate-limit
//! layers, their counters in a [`SharedState`] that outlives a reload.
//!
//! Quotas and durations are short text: `10/s`, `600/min`, `1000/h`, `100/10s`; `30s`,
//! `1m`, `1h`, `1d`, `500ms`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::error::PolicyError;
use super::state::SharedState;
use crate::gateway::GatewaySecurityBuilder;
use crate::suggest::closest;

/// The `traffic` section: everything that protects the gateway from floods and guessing,
/// before and after authentication. Every part is optional; a part left out is not
/// installed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TrafficSection {
    /// Where the client's address comes from (needs the `shield` feature).
    #[serde(default)]
    pub client_ip: Option<ClientIpSection>,
    /// IP allow and deny lists, globally and per route (needs the `shield` feature).
    #[serde(default)]
    pub ip_rules: Option<IpRulesSection>,
    /// Brute-force blocking (needs the `shield` feature).
    #[serde(default)]
    pub brute_force: Option<BruteForceSection>,
    /// Rate limits before and after authentication (needs the `rate-limit` feature).
    #[serde(default)]
    pub rate_limits: Option<RateLimitsSection>,
}

/// `traffic.client_ip`: the client's address, for IP rules, brute-force blocking and
/// per-IP limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientIpSection {
    /// The proxies (CIDR ranges or addresses) whose forwarded header is believed. Defaults
    /// to none: the client is the connecting peer.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies write: `x-forwarded-for` (the default) or
    /// `forwarded` (RFC 7239).
    #[serde(default)]
    pub forwarded_header: Option<String>,
    /// IPv6 clients are counted (by brute-force blocking and per-IP limits) by their
    /// network of this many bits, 1 to 128. Defaults to 64.
    #[serde(default)]
    pub ipv6_prefix: Option<u8>,
    /// **Insecure**: a request whose client address is unknown goes on (unblocked,
    /// uncounted per IP) instead of being refused. Defaults to `false`.
    #[serde(default)]
    pub insecure_allow_unknown: bool,
}

/// `traffic.ip_rules`: allow and deny lists of CIDR ranges; deny wins.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IpRulesSection {
    /// Only clients in these ranges may call any route. Defaults to everyone; an empty list
    /// is refused (it reads as "no one" but would let everyone in).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Clients in these ranges may call no route. Defaults to none.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Lists for some routes, in addition to the global ones.
    #[serde(default)]
    pub routes: Vec<IpRouteRules>,
}

/// The IP lists of one route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IpRouteRules {
    /// `METHOD /path`, as in `routes`.
    pub route: String,
    /// Only clients in these ranges may call it. An empty list is refused, as for the
    /// global one.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Clients in these ranges may not call it.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `traffic.brute_force`: authentication failures counted per client IP (and, opted in,
/// per API-key id); above the threshold the source is refused with 429 `blocked`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BruteForceSection {
    /// Failures within `window` that start a block. Defaults to 20.
    #[serde(default)]
    pub failures: Option<u32>,
    /// The sliding window failures are counted in. Defaults to `10m`.
    #[serde(default)]
    pub window: Option<String>,
    /// The first block's length; each repeat offence doubles it. Defaults to `1m`.
    #[serde(default)]
    pub block_for: Option<String>,
    /// The longest block. Defaults to `1h`.
    #[serde(default)]
    pub max_block: Option<String>,
    /// A source not blocked for this long starts again from `block_for`. Defaults to `24h`.
    #[serde(default)]
    pub forget_after: Option<String>,
    /// Also count failures per API-key id claimed. Defaults to `false` (anyone who knows a
    /// key's id could lock it out).
    #[serde(default)]
    pub per_identity: bool,
    /// **Dangerous**: count and report blocks, refuse nothing. Defaults to `false`.
    #[serde(default)]
    pub dangerous_report_only: bool,
}

/// `traffic.rate_limits`: limits before authentication (per client IP, route or shared)
/// and after it (per identity, with tiers).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitsSection {
    /// Checked after the shield, before any credential is looked at: keyed by
    /// `client_ip`, `route` or `shared`, without tiers.
    #[serde(default)]
    pub before_auth: Vec<LimitEntry>,
    /// Checked after authorization, before validation: keyed by anything, with tiers.
    #[serde(default)]
    pub after_auth: Vec<LimitEntry>,
    /// Whether allowed responses carry `RateLimit-Policy` and `RateLimit` (refusals always
    /// do). Defaults to `true`; then every quota's refill time (burst × period / requests)
    /// must be whole seconds.
    #[serde(default)]
    pub response_headers: Option<bool>,
    /// **Dangerous**: count and report, refuse nothing. Defaults to `false`.
    #[serde(default)]
    pub dangerous_report_only: bool,
}

/// One rate limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitEntry {
    /// Its name, in headers, logs and metrics: 1 to 64 letters, digits, `-`, `_`, `.`;
    /// unique in the file. Its buckets are kept under it across reloads.
    pub name: String,
    /// Whose bucket a request counts against: `api_key`, `subject`, `client_id`, `tenant`,
    /// `client_ip`, `route` (one bucket per route listed) or `shared` (one for all).
    pub key: String,
    /// The quota: `10/s`, `600/min`, `1000/h`, `100/10s`.
    pub quota: String,
    /// The largest burst. Defaults to the quota's request count.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Other quotas for some callers, the first that matches wins (after authentication
    /// only).
    #[serde(default)]
    pub tiers: Vec<TierEntry>,
    /// The routes it covers (`METHOD /path`). Defaults to every request.
    #[serde(default)]
    pub routes: Vec<String>,
}

/// A tier: callers with a role, a scope or a claim value get another quota.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TierEntry {
    /// Callers with this role.
    #[serde(default)]
    pub role: Option<String>,
    /// Callers with this scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// Callers whose claim (an API key's metadata) has this string value: `{plan: gold}`.
    #[serde(default)]
    pub claim: Option<BTreeMap<String, String>>,
    /// Their quota.
    pub quota: String,
    /// Their largest burst. Defaults to the quota's request count.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl super::PolicyFile {
    /// Every problem of the `traffic` section, found by building its layers once (with new
    /// counters, dropped).
    pub(super) fn traffic_problems(&self) -> Vec<PolicyError> {
        let mut errors = Vec::new();
        if let Some(section) = &self.traffic {
            let _layers = section.build(&SharedState::new(), &mut errors);
        }
        errors
    }
}

// ---------------------------------------------------------------------------------------
// Quotas and durations as text

/// Units of durations, and of a quota's period alone (`/min`).
const UNITS: [(&str, Duration); 11] = [
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("sec", Duration::from_secs(1)),
    ("second", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("min", Duration::from_secs(60)),
    ("minute", Duration::from_secs(60)),
    ("h", Duration::from_secs(3600)),
    ("hour", Duration::from_secs(3600)),
    ("d", Duration::from_secs(86_400)),
    ("day", Duration::from_secs(86_400)),
];

/// The unit named `text`.
fn unit(text: &str) -> Result<Duration, String> {
    if let Some(&(_, unit)) = UNITS.iter().find(|(name, _)| *name == text) {
        return Ok(unit);
    }
    // One letter is a step from every one-letter unit: no hint then.
    let hint = closest(text, UNITS.iter().map(|(name, _)| *name))
        .filter(|_| text.chars().count() > 1)
        .map(|name| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default();
    Err(format!(
        "unknown unit `{text}`{hint}: use ms, s, m (or min), h or d"
    ))
}

/// The longest quota or duration text read: errors repeat it, so it stays short.
const MAX_TEXT: usize = 64;

/// A duration: a whole number and a unit, `30s`, `1m`, `1h`, `1d`, `500ms`; never zero.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.len() > MAX_TEXT {
        return Err(format!("a duration is at most {MAX_TEXT} characters"));
    }
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    let (number, name) = trimmed.split_at(digits);
    if number.is_empty() {
        return Err(format!(
            "`{text}` is not a duration such as `30s`, `1m`, `1h` or `1d`"
        ));
    }
    let unit = unit(name.trim())?;
    let count: u32 = number
        .parse()
        .map_err(|_| format!("`{text}` is too long a duration"))?;
    let duration = unit
        .checked_mul(count)
        .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    if duration.is_zero() {
        return Err(format!("`{text}`: a duration must be longer than zero"));
    }
    Ok(duration)
}

/// A quota: requests per period, `10/s`, `600/min`, `1000/h`, `100/10s`: the request
/// count (at least 1) and the period.
pub(crate) fn parse_quota(text: &str) -> Result<(u32, Duration), String> {
    if text.len() > MAX_TEXT {
        return Err(format!("a quota is at most {MAX_TEXT} characters"));
    }
    let Some((requests, period)) = text.split_once('/') else {
        return Err(format!(
            "`{text}` is not a quota such as `10/s`, `600/min` or `100/10s`"
        ));
    };
    let requests = requests.trim();
    if requests.is_empty() || !requests.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}`: the request count before `/` is a whole number"
        ));
    }
    let requests: u32 = requests
        .parse()
        .map_err(|_| format!("`{text}`: at most {} requests", u32::MAX))?;
    if requests == 0 {
        return Err(format!("`{text}`: a quota allows at least one request"));
    }
    let period = period.trim();
    let period = if period.starts_with(|c: char| c.is_ascii_digit()) {
        parse_duration(period)
    } else {
        unit(period)
    }
    .map_err(|message| format!("`{text}`: {message}"))?;
    Ok((requests, period))
}

// ---------------------------------------------------------------------------------------
// From the section to the layers

/// Whose bucket a limit counts against, as the file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    ApiKey,
    Subject,
    ClientId,
    Tenant,
    ClientIp,
    Route,
    Shared,
}

const KEYS: [(&str, KeyKind); 7] = [
    ("api_key", KeyKind::ApiKey),
    ("subject", KeyKind::Subject),
    ("client_id", KeyKind::ClientId),
    ("tenant", KeyKind::Tenant),
    ("client_ip", KeyKind::ClientIp),
    ("route", KeyKind::Route),
    ("shared", KeyKind::Shared),
];

impl KeyKind {
    fn parse(text: &str) -> Result<Self, String> {
        if let Some(&(_, kind)) = KEYS.iter().find(|(name, _)| *name == text.trim()) {
            return Ok(kind);
        }
        let hint = closest(text.trim(), KEYS.iter().map(|(name, _)| *name))
            .map(|name| format!(" (did you mean `{name}`?)"))
            .unwrap_or_default();
        Err(format!(
            "unknown key `{text}`{hint}: one of api_key, subject, client_id, tenant, \
             client_ip, route, shared"
        ))
    }

    fn needs_identity(self) -> bool {
        matches!(
            self,
            Self::ApiKey | Self::Subject | Self::ClientId | Self::Tenant
        )
    }
}

/// A quota as read: requests, period, burst.
type QuotaText = (u32, Duration, Option<u32>);

/// A tier's condition as read.
#[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
enum TierKind<'a> {
    Role(&'a str),
    Scope(&'a str),
    Claim(&'a str, &'a str),
}

/// A limit whose texts all read.
#[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
struct ReadLimit<'a> {
    place: String,
    entry: &'a LimitEntry,
    key: KeyKind,
    quota: QuotaText,
    tiers: Vec<(TierKind<'a>, QuotaText)>,
}

/// The brute-force settings as read.
#[cfg_attr(not(feature = "shield"), allow(dead_code))]
struct ReadBruteForce {
    failures: u32,
    window: Duration,
    block_for: Duration,
    max_block: Duration,
    forget_after: Duration,
}

/// The layers a `traffic` section builds.
#[derive(Default)]
pub(super) struct TrafficLayers {
    #[cfg(feature = "shield")]
    shield: Option<crate::shield::ShieldLayer>,
    #[cfg(feature = "rate-limit")]
    before_auth: Option<crate::rate_limit::RateLimitLayer>,
    #[cfg(feature = "rate-limit")]
    after_auth: Option<crate::rate_limit::RateLimitLayer>,
}

impl TrafficLayers {
    /// Installs the layers in `builder`.
    pub(super) fn install(self, builder: GatewaySecurityBuilder) -> GatewaySecurityBuilder {
        #[cfg_attr(not(feature = "shield"), allow(unused_mut))]
        let mut builder = builder;
        #[cfg(feature = "shield")]
        if let Some(shield) = self.shield {
            builder = builder.shield(shield);
        }
        #[cfg(feature = "rate-limit")]
        if let Some(limits) = self.before_auth {
            builder = builder.rate_limit_before_auth(limits);
        }
        #[cfg(feature = "rate-limit")]
        if let Some(limits) = self.after_auth {
            builder = builder.rate_limit(limits);
        }
        builder
    }
}

impl TrafficSection {
    /// Builds the layers the section describes, their counters in `state`; every problem
    /// goes to `errors` with its place.
    pub(super) fn build(
        &self,
        state: &SharedState,
        errors: &mut Vec<PolicyError>,
    ) -> TrafficLayers {
        let before = errors.len();
        // In the order of the file: client IP, IP rules, brute force, rate limits.
        #[cfg(feature = "shield")]
        if let Some(section) = &self.client_ip {
            check_ranges(
                &section.trusted_proxies,
                "traffic.client_ip.trusted_proxies",
                errors,
            );
        }
        let client_ip = self.client_ip.as_ref();
        let forwarded = client_ip
            .and_then(|section| section.forwarded_header.as_deref())
            .and_then(|header| match header.trim().to_ascii_lowercase().as_str() {
                "x-forwarded-for" => Some(false),
                "forwarded" => Some(true),
                _ => {
                    let hint = closest(header.trim(), ["x-forwarded-for", "forwarded"])
                        .map(|name| format!(" (did you mean `{name}`?)"))
                        .unwrap_or_default();
                    errors.push(PolicyError::at(
                        "traffic.client_ip.forwarded_header",
                        format!(
                            "unknown header `{header}`{hint}: `x-forwarded-for` or `forwarded`"
                        ),
                    ));
                    None
                }
            })
            .unwrap_or(false);
        let ipv6_prefix = client_ip.and_then(|section| section.ipv6_prefix);
        if let Some(bits) = ipv6_prefix
            && !(1..=128).contains(&bits)
        {
            errors.push(PolicyError::at(
                "traffic.client_ip.ipv6_prefix",
                format!("{bits}: a prefix is 1 to 128 bits"),
            ));
        }
        #[cfg(feature = "shield")]
        if let Some(rules) = &self.ip_rules {
            check_ip_rules(rules, errors);
        }
        let brute_force = self
            .brute_force
            .as_ref()
            .and_then(|section| read_brute_force(section, errors));
        let limits = self.read_limits(errors);
        let needs_shield =
            self.client_ip.is_some() || self.ip_rules.is_some() || self.brute_force.is_some();
        #[cfg(not(feature = "shield"))]
        for (given, place) in [
            (self.client_ip.is_some(), "traffic.client_ip"),
            (self.ip_rules.is_some(), "traffic.ip_rules"),
            (self.brute_force.is_some(), "traffic.brute_force"),
        ] {
            if given {
                errors.push(PolicyError::at(place, "needs the `shield` feature"));
            }
        }
        #[cfg(not(feature = "rate-limit"))]
        if self.rate_limits.is_some() {
            errors.push(PolicyError::at(
                "traffic.rate_limits",
                "rate limits need the `rate-limit` feature",
            ));
        }
        if errors.len() > before {
            return TrafficLayers::default();
        }
        #[cfg_attr(
            not(any(feature = "shield", feature = "rate-limit")),
            allow(unused_mut)
        )]
        let mut layers = TrafficLayers::default();
        #[cfg(feature = "shield")]
        if needs_shield {
            layers.shield = self.shield(state, forwarded, ipv6_prefix, brute_force, errors);
        }
        #[cfg(feature = "rate-limit")]
        if let Some(section) = &self.rate_limits {
            let allow_unknown = client_ip.is_some_and(|section| section.insecure_allow_unknown);
            for (list, read) in [("before_auth", &limits.0), ("after_auth", &limits.1)] {
                if read.is_empty() {
                    continue;
                }
                let layer = rate_limit_layer(section, read, state, ipv6_prefix, allow_unknown)
                    .map_err(|error| {
                        // What the checks above did not find: at the limit it names.
                        let problem = match &error {
                            crate::ConfigError::InvalidRateLimit { limit, reason } => read
                                .iter()
                                .find(|read| read.entry.name == *limit)
                                .map(|read| PolicyError::at(read.place.clone(), reason.clone())),
                            _ => None,
                        };
                        errors.push(problem.unwrap_or_else(|| {
                            PolicyError::at(
                                format!("traffic.rate_limits.{list}"),
                                error.to_string(),
                            )
                        }));
                    })
                    .ok();
                if list == "before_auth" {
                    layers.before_auth = layer;
                } else {
                    layers.after_auth = layer;
                }
            }
        }
        #[cfg(not(feature = "rate-limit"))]
        let _ = &limits;
        #[cfg(not(feature = "shield"))]
        let _ = (state, needs_shield, forwarded, &brute_force);
        layers
    }

    /// Reads every limit's texts, and checks them as far as the layer's builder would.
    #[allow(clippy::type_complexity)]
    fn read_limits(
        &self,
        errors: &mut Vec<PolicyError>,
    ) -> (Vec<ReadLimit<'_>>, Vec<ReadLimit<'_>>) {
        let Some(section) = &self.rate_limits else {
            return (Vec::new(), Vec::new());
        };
        let headers = section.response_headers.unwrap_or(true);
        let mut names: BTreeMap<&str, String> = BTreeMap::new();
        let mut lists = [Vec::new(), Vec::new()];
        for (slot, (list, entries)) in [
            ("before_auth", &section.before_auth),
            ("after_auth", &section.after_auth),
        ]
        .into_iter()
        .enumerate()
        {
            for (index, entry) in entries.iter().enumerate() {
                let place = format!("traffic.rate_limits.{list}[{index}]");
                let before = errors.len();
                if let Some(first) = names.get(entry.name.as_str()) {
                    errors.push(PolicyError::at(
                        format!("{place}.name"),
                        format!("`{}` is the name of {first} too", entry.name),
                    ));
                } else {
                    names.insert(&entry.name, place.clone());
                    check_name(&entry.name, &place, errors);
                }
                let key = KeyKind::parse(&entry.key)
                    .map_err(|message| {
                        errors.push(PolicyError::at(format!("{place}.key"), message))
                    })
                    .ok();
                if slot == 0 && key.is_some_and(KeyKind::needs_identity) {
                    errors.push(PolicyError::at(
                        format!("{place}.key"),
                        format!(
                            "`{}`: before authentication the caller is unknown: key it by \
                             client_ip, route or shared, or move it to `after_auth`",
                            entry.key
                        ),
                    ));
                }
                if slot == 0 && !entry.tiers.is_empty() {
                    errors.push(PolicyError::at(
                        format!("{place}.tiers"),
                        "before authentication the caller is unknown: tiers only after_auth",
                    ));
                }
                let quota = read_quota(
                    &entry.quota,
                    entry.burst,
                    headers,
                    &format!("{place}.quota"),
                    errors,
                );
                let mut tiers = Vec::new();
                for (number, tier) in entry.tiers.iter().enumerate() {
                    let at = format!("{place}.tiers[{number}]");
                    let kind = match (&tier.role, &tier.scope, &tier.claim) {
                        (Some(role), None, None) => Some(TierKind::Role(role)),
                        (None, Some(scope), None) => Some(TierKind::Scope(scope)),
                        (None, None, Some(claim)) => match claim.iter().next() {
                            Some((name, value)) if claim.len() == 1 => {
                                Some(TierKind::Claim(name, value))
                            }
                            _ => {
                                errors.push(PolicyError::at(
                                    format!("{at}.claim"),
                                    "one claim and its value: `{plan: gold}`",
                                ));
                                None
                            }
                        },
                        _ => {
                            errors.push(PolicyError::at(
                                at.clone(),
                                "give exactly one of `role`, `scope` and `claim`",
                            ));
                            None
                        }
                    };
                    let quota = read_quota(
                        &tier.quota,
                        tier.burst,
                        headers,
                        &format!("{at}.quota"),
                        errors,
                    );
                    if let (Some(kind), Some(quota)) = (kind, quota) {
                        tiers.push((kind, quota));
                    }
                }
                check_routes(
                    entry.routes.iter().map(String::as_str),
                    &format!("{place}.routes"),
                    errors,
                );
                if key == Some(KeyKind::Route) && entry.routes.is_empty() {
                    errors.push(PolicyError::at(
                        format!("{place}.routes"),
                        "a limit keyed by route needs the routes it covers",
                    ));
                }
                if let (Some(key), Some(quota), true) = (key, quota, errors.len() == before) {
                    lists[slot].push(ReadLimit {
                        place,
                        entry,
                        key,
                        quota,
                        tiers,
                    });
                }
            }
        }
        let [before_auth, after_auth] = lists;
        (before_auth, after_auth)
    }

    /// The shield: client IP, IP rules, brute-force blocking with `state`'s store.
    #[cfg(feature = "shield")]
    fn shield(
        &self,
        state: &SharedState,
        forwarded: bool,
        ipv6_prefix: Option<u8>,
        brute_force: Option<ReadBruteForce>,
        errors: &mut Vec<PolicyError>,
    ) -> Option<crate::shield::ShieldLayer> {
        use crate::shield::{BruteForce, ForwardedHeader, ShieldLayer};
        let mut shield = ShieldLayer::builder();
        if let Some(section) = &self.client_ip {
            shield = shield
                .trusted_proxies(&section.trusted_proxies)
                .forwarded_header(if forwarded {
                    ForwardedHeader::Forwarded
                } else {
                    ForwardedHeader::XForwardedFor
                });
            if section.insecure_allow_unknown {
                shield = shield.insecure_allow_unknown_client_ip();
            }
        }
        if let Some(rules) = &self.ip_rules {
            shield = shield
                .allow(rules.allow.as_deref().unwrap_or_default())
                .deny(&rules.deny);
            for route in &rules.routes {
                // An empty list adds the route with nothing to check: harmless.
                shield = shield
                    .route_allow(&route.route, route.allow.as_deref().unwrap_or_default())
                    .route_deny(&route.route, &route.deny);
            }
        }
        if let (Some(read), Some(section)) = (brute_force, &self.brute_force) {
            let mut policy = BruteForce::new()
                .threshold(read.failures, read.window)
                .block_for(read.block_for, read.max_block)
                .forget_after(read.forget_after)
                .store(state.blocks.clone());
            if let Some(bits) = ipv6_prefix {
                policy = policy.ipv6_prefix(bits);
            }
            if section.per_identity {
                policy = policy.per_identity();
            }
            if section.dangerous_report_only {
                policy = policy.dangerous_report_only();
            }
            shield = shield.brute_force(policy);
        }
        shield
            .build()
            .map_err(|error| errors.push(PolicyError::at("traffic", error.to_string())))
            .ok()
    }

    /// The names of the rate limits that count requests of the route rule `rule` (`GET
    /// /orders/{id}`, as written in `routes`), before and after authentication: every
    /// limit without routes, and those with a route for one of the rule's methods whose
    /// path covers the rule's path or part of it. `None` for `unmatched` gives only the
    /// limits without routes. For `portcullis check`'s table.
    #[must_use]
    pub fn limits_on(&self, rule: Option<&str>) -> Vec<&str> {
        let Some(section) = &self.rate_limits else {
            return Vec::new();
        };
        let rule = rule.and_then(|rule| crate::route::parse_rule(rule).ok());
        section
            .before_auth
            .iter()
            .chain(&section.after_auth)
            .filter(|limit| {
                if limit.routes.is_empty() {
                    return true;
                }
                let Some((methods, path)) = &rule else {
                    return false;
                };
                limit.routes.iter().any(|route| {
                    let Ok((their_methods, their_path)) = crate::route::parse_rule(route) else {
                        return false;
                    };
                    let methods_meet = match (methods, &their_methods) {
                        (Some(ours), Some(theirs)) => ours.iter().any(|m| theirs.contains(m)),
                        _ => true,
                    };
                    methods_meet && (covers(&their_path, path) || covers(path, &their_path))
                })
            })
            .map(|limit| limit.name.as_str())
            .collect()
    }
}

/// Checks CIDR ranges, each at its place (`{place}[{index}]`).
#[cfg(feature = "shield")]
fn check_ranges(ranges: &[String], place: &str, errors: &mut Vec<PolicyError>) {
    for (index, range) in ranges.iter().enumerate() {
        if let Err(error) = crate::shield::ip_rules::NetList::parse([range.as_str()]) {
            errors.push(PolicyError::at(
                format!("{place}[{index}]"),
                error.to_string(),
            ));
        }
    }
}

/// Checks an allow list: absent (everyone), or ranges, never empty.
#[cfg(feature = "shield")]
fn check_allow(allow: Option<&[String]>, place: &str, errors: &mut Vec<PolicyError>) {
    match allow {
        None => {}
        Some([]) => errors.push(PolicyError::at(
            place,
            "an empty allow list would let everyone in: leave `allow` out, or name the \
             ranges (`deny: [0.0.0.0/0, ::/0]` refuses everyone)",
        )),
        Some(ranges) => check_ranges(ranges, place, errors),
    }
}

/// Checks every range and route of `ip_rules`, each at its place.
#[cfg(feature = "shield")]
fn check_ip_rules(rules: &IpRulesSection, errors: &mut Vec<PolicyError>) {
    check_allow(rules.allow.as_deref(), "traffic.ip_rules.allow", errors);
    check_ranges(&rules.deny, "traffic.ip_rules.deny", errors);
    let mut table = crate::route::RouteTable::default();
    for (index, route) in rules.routes.iter().enumerate() {
        let place = format!("traffic.ip_rules.routes[{index}]");
        if let Err(error) = table.insert(&route.route, ()) {
            errors.push(PolicyError::at(format!("{place}.route"), error.to_string()));
        }
        check_allow(route.allow.as_deref(), &format!("{place}.allow"), errors);
        check_ranges(&route.deny, &format!("{place}.deny"), errors);
    }
}

/// Whether matchit `pattern` matches `path` read as a plain path (its `{id}` as text).
fn covers(pattern: &str, path: &str) -> bool {
    let mut router = matchit::Router::new();
    router.insert(pattern, ()).is_ok() && router.at(path).is_ok()
}

/// Checks a limit's name as the layer's builder would.
fn check_name(name: &str, place: &str, errors: &mut Vec<PolicyError>) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        errors.push(PolicyError::at(
            format!("{place}.name"),
            format!("`{name}`: a name is 1 to 64 ASCII letters, digits, `-`, `_` or `.`"),
        ));
    }
}

/// Checks a limit's routes, each at its place, and together (conflicts name the later).
fn check_routes<'a>(
    routes: impl Iterator<Item = &'a str>,
    place: &str,
    errors: &mut Vec<PolicyError>,
) {
    let mut table = crate::route::RouteTable::default();
    for (index, route) in routes.enumerate() {
        if let Err(error) = table.insert(route, ()) {
            errors.push(PolicyError::at(
                format!("{place}[{index}]"),
                error.to_string(),
            ));
        }
    }
}

/// Reads a quota and its burst, checked as the rate-limit builder checks it (with the
/// response fields on, its refill time in whole seconds).
fn read_quota(
    text: &str,
    burst: Option<u32>,
    headers: bool,
    place: &str,
    errors: &mut Vec<PolicyError>,
) -> Option<QuotaText> {
    let (requests, period) = parse_quota(text)
        .map_err(|message| errors.push(PolicyError::at(place, message)))
        .ok()?;
    let read = (requests, period, burst);
    #[cfg(feature = "rate-limit")]
    {
        use crate::rate_limit::{Limit, LimitKey, RateLimitLayer};
        // The builder's own checks, on this quota alone.
        let probe = RateLimitLayer::builder()
            .limit(Limit::new("quota", LimitKey::Shared, quota(read)))
            .response_headers(headers)
            .build();
        if let Err(error) = probe {
            let message = match error {
                crate::ConfigError::InvalidRateLimit { reason, .. } => reason,
                other => other.to_string(),
            };
            errors.push(PolicyError::at(place, format!("`{text}`: {message}")));
            return None;
        }
    }
    #[cfg(not(feature = "rate-limit"))]
    let _ = headers;
    Some(read)
}

#[cfg(feature = "rate-limit")]
fn quota((requests, period, burst): QuotaText) -> crate::rate_limit::Quota {
    let quota = crate::rate_limit::Quota::new(requests, period);
    match burst {
        Some(burst) => quota.burst(burst),
        None => quota,
    }
}

/// Reads the brute-force settings, each at its place.
fn read_brute_force(
    section: &BruteForceSection,
    errors: &mut Vec<PolicyError>,
) -> Option<ReadBruteForce> {
    let before = errors.len();
    let mut duration = |text: &Option<String>, name: &str, default: Duration| match text {
        None => default,
        Some(text) => parse_duration(text)
            .and_then(|duration| {
                if duration > Duration::from_secs(365 * 86_400) {
                    Err(format!("`{text}`: at most 365 days"))
                } else {
                    Ok(duration)
                }
            })
            .unwrap_or_else(|message| {
                errors.push(PolicyError::at(
                    format!("traffic.brute_force.{name}"),
                    message,
                ));
                default
            }),
    };
    let window = duration(&section.window, "window", Duration::from_secs(600));
    let block_for = duration(&section.block_for, "block_for", Duration::from_secs(60));
    let max_block = duration(&section.max_block, "max_block", Duration::from_secs(3600));
    let forget_after = duration(
        &section.forget_after,
        "forget_after",
        Duration::from_secs(86_400),
    );
    let failures = section.failures.unwrap_or(20);
    if failures == 0 {
        errors.push(PolicyError::at(
            "traffic.brute_force.failures",
            "at least one failure",
        ));
    }
    if errors.len() == before && max_block < block_for {
        errors.push(PolicyError::at(
            "traffic.brute_force.max_block",
            format!("shorter than `block_for` ({}s)", block_for.as_secs_f64()),
        ));
    }
    (errors.len() == before).then_some(ReadBruteForce {
        failures,
        window,
        block_for,
        max_block,
        forget_after,
    })
}

/// One rate-limit layer of limits that read, its buckets in `state`'s store.
#[cfg(feature = "rate-limit")]
fn rate_limit_layer(
    section: &RateLimitsSection,
    limits: &[ReadLimit<'_>],
    state: &SharedState,
    ipv6_prefix: Option<u8>,
    allow_unknown_ip: bool,
) -> Result<crate::rate_limit::RateLimitLayer, crate::ConfigError> {
    use crate::rate_limit::{Limit, LimitKey, RateLimitLayer, Tier};
    let mut builder = RateLimitLayer::builder()
        .store(state.rate_limits.clone())
        .response_headers(section.response_headers.unwrap_or(true));
    if section.dangerous_report_only {
        builder = builder.dangerous_report_only();
    }
    if let Some(bits) = ipv6_prefix {
        builder = builder.ipv6_prefix(bits);
    }
    if allow_unknown_ip {
        builder = builder.insecure_allow_unknown_client_ip();
    }
    for read in limits {
        let key = match read.key {
            KeyKind::ApiKey => LimitKey::ApiKey,
            KeyKind::Subject => LimitKey::Subject,
            KeyKind::ClientId => LimitKey::ClientId,
            KeyKind::Tenant => LimitKey::Tenant,
            KeyKind::ClientIp => LimitKey::ClientIp,
            KeyKind::Route => LimitKey::Route,
            KeyKind::Shared => LimitKey::Shared,
        };
        let mut limit =
            Limit::new(&read.entry.name, key, quota(read.quota)).routes(&read.entry.routes);
        for (kind, tier_quota) in &read.tiers {
            let tier = match kind {
                TierKind::Role(role) => Tier::role(*role),
                TierKind::Scope(scope) => Tier::scope(*scope),
                TierKind::Claim(name, value) => Tier::claim(*name, *value),
            };
            limit = limit.tier(tier, quota(*tier_quota));
        }
        builder = builder.limit(limit);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_read_as_requests_per_period() {
        assert_eq!(parse_quota("10/s"), Ok((10, Duration::from_secs(1))));
        assert_eq!(parse_quota("600/min"), Ok((600, Duration::from_secs(60))));
        assert_eq!(parse_quota("600/m"), Ok((600, Duration::from_secs(60))));
        assert_eq!(parse_quota("1000/h"), Ok((1000, Duration::from_secs(3600))));
        assert_eq!(parse_quota("5/day"), Ok((5, Duration::from_secs(86_400))));
        assert_eq!(parse_quota("100/10s"), Ok((100, Duration::from_secs(10))));
        assert_eq!(
            parse_quota(" 3 / 500ms "),
            Ok((3, Duration::from_millis(500)))
        );
    }

    #[test]
    fn bad_quotas_say_why_and_never_panic() {
        let error = |text: &str| parse_quota(text).expect_err(text);
        // A long text is refused without being repeated.
        let long = "9".repeat(10_000) + "/s";
        assert_eq!(error(&long), "a quota is at most 64 characters");
        assert_eq!(
            parse_duration(&"1".repeat(65)).expect_err("long"),
            "a duration is at most 64 characters"
        );
        assert!(
            error("10").contains("not a quota such as"),
            "{}",
            error("10")
        );
        assert!(error("0/s").contains("at least one request"));
        assert!(error("-1/s").contains("whole number"));
        assert!(error("/s").contains("whole number"));
        assert!(error("4294967296/s").contains("at most 4294967295"));
        assert!(error("99999999999999999999999/s").contains("at most"));
        assert_eq!(
            error("10/sek"),
            "`10/sek`: unknown unit `sek` (did you mean `sec`?): use ms, s, m (or min), h or d"
        );
        assert!(error("10/").contains("unknown unit ``"));
        assert!(error("10/0s").contains("longer than zero"));
        assert!(error("10/s/s").contains("unknown unit"));
        assert!(error("1/4294967296d").contains("too long"));
        assert!(error("1/99999999999999999999d").contains("too long"));
        assert!(error("½/s").contains("whole number"));
        assert!(error("10/sé").contains("unknown unit"));
    }

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10 min"), Ok(Duration::from_secs(600)));
        for bad in [
            "",
            "s",
            "10",
            "10x",
            "0s",
            "-1s",
            "1.5s",
            "4294967296s",
            "1e3s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(
            parse_duration("10")
                .expect_err("no unit")
                .contains("unknown unit ``"),
            "a number alone names no unit"
        );
    }

    /// A section the build cannot serve is refused where it is written; its texts are
    /// still read.
    #[cfg(not(feature = "rate-limit"))]
    #[test]
    fn sections_without_their_feature_are_refused_at_their_place() {
        use crate::config::{Format, PolicyFile};
        let policy = PolicyFile::parse(
            "traffic:\n  client_ip: {}\n  brute_force: {}\n  rate_limits:\n    \
             after_auth: [{name: a, key: api_key, quota: 10/x}]\n",
            Format::Yaml,
        )
        .expect("parses");
        let errors = policy.check().expect_err("no features");
        let places: Vec<&str> = errors.errors().iter().map(|e| e.place.as_str()).collect();
        let expected: &[&str] = if cfg!(feature = "shield") {
            &[
                "traffic.rate_limits.after_auth[0].quota",
                "traffic.rate_limits",
            ]
        } else {
            &[
                "traffic.rate_limits.after_auth[0].quota",
                "traffic.client_ip",
                "traffic.brute_force",
                "traffic.rate_limits",
            ]
        };
        assert_eq!(places, expected, "{errors}");
    }

    #[test]
    #[cfg(feature = "shield")]
    fn an_empty_allow_list_is_refused_not_read_as_everyone() {
        let mut errors = Vec::new();
        let rules = IpRulesSection {
            allow: Some(Vec::new()),
            deny: Vec::new(),
            routes: vec![IpRouteRules {
                route: "GET /admin".to_owned(),
                allow: Some(Vec::new()),
                deny: Vec::new(),
            }],
        };
        check_ip_rules(&rules, &mut errors);
        let places: Vec<&str> = errors.iter().map(|error| error.place.as_str()).collect();
        assert_eq!(
            places,
            ["traffic.ip_rules.allow", "traffic.ip_rules.routes[0].allow"]
        );
        assert!(
            errors[0].message.contains("let everyone in"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn limit_keys_suggest_the_nearest() {
        assert_eq!(KeyKind::parse("client_ip"), Ok(KeyKind::ClientIp));
        assert_eq!(
            KeyKind::parse("apikey").expect_err("typo"),
            "unknown key `apikey` (did you mean `api_key`?): one of api_key, subject, \
             client_id, tenant, client_ip, route, shared"
        );
    }
}
