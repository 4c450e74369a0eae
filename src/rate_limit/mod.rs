//! Rate limits: GCRA buckets per API key, subject, OAuth client, tenant, client IP or
//! route, with quota tiers chosen from the caller, and the IETF `RateLimit` response fields.
//!
//! A [`RateLimitLayer`] holds one or more [`Limit`]s; every limit that applies to a request
//! must have room for it (several may apply: 100/s per key *and* 10,000/s per route). A
//! limit does not apply when its key is absent (a per-key limit and an anonymous caller) or
//! the request is not on its routes.
//!
//! Limits are checked in a fixed order, whatever order they were added in: keyed by
//! [client IP](LimitKey::ClientIp), then by identity (API key, subject, client, tenant),
//! then by [route](LimitKey::Route), then [shared](LimitKey::Shared). The checks stop at
//! the first refusal, and each limit that allowed the request before it has counted it: so
//! a caller over its own limit never uses up a route's or a shared bucket.
//!
//! Two places in the stack (the gateway's `rate_limit_before_auth` and `rate_limit`):
//!
//! - **before authentication**, limits keyed by [`LimitKey::ClientIp`] (or route or shared)
//!   protect the key store, the introspection endpoint and login flows from anonymous
//!   floods: a refused request never reaches an authenticator;
//! - **after authentication** (and authorization), limits keyed by the caller's identity,
//!   with [`Tier`]s: a role, a scope, or API-key metadata such as `plan=gold`.
//!
//! A refusal is 429 with `Retry-After`, reason `rate_limited` and the
//! `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers: `q` the
//! burst, `w` the seconds to refill it, `r` the requests left now, `t` the seconds until
//! the whole burst is back); allowed responses carry them too, for the limit with the fewest
//! requests left (turn that off with [`RateLimitBuilder::response_headers`]). When the
//! store cannot answer ([`LimitState::unknown`]) no field is sent. Report-only mode counts and reports, and
//! refuses nothing.
//!
//! The buckets live in a [`RateLimitStore`]: by default a [`MemoryRateLimitStore`] in
//! process (GCRA buckets in sharded tables, a bounded number per limit).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, StatusCode};
//! use portcullis::{AuthMethod, Principal};
//! use portcullis::rate_limit::{Limit, LimitKey, Quota, RateLimitLayer, Tier};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limits = RateLimitLayer::builder()
//!     .limit(
//!         Limit::new("per-key", LimitKey::ApiKey, Quota::per_minute(1))
//!             .tier(Tier::role("admin"), Quota::per_minute(100)),
//!     )
//!     .build()?;
//! let mut service = ServiceBuilder::new()
//!     .layer(limits)
//!     .service(service_fn(|_: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     }));
//!
//! // An authentication layer in front puts the caller here.
//! let caller = Principal::builder("vera", AuthMethod::ApiKey { key_id: "k1".into() }).build();
//! let request = || {
//!     let mut request = Request::new(String::new());
//!     request.extensions_mut().insert(caller.clone());
//!     request
//! };
//! let first = service.ready().await?.call(request()).await?;
//! assert_eq!(first.status(), StatusCode::OK);
//! assert_eq!(first.headers()["ratelimit"], "\"per-key\";r=0;t=60");
//! let second = service.ready().await?.call(request()).await?;
//! assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(second.headers()["retry-after"], "60");
//! # Ok(()) }
//! ```

mod checks;
mod future;
mod headers;
mod layer;
mod limit;
mod memory;
mod service;
mod store;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

#[doc(inline)]
pub use self::future::ResponseFuture;
#[doc(inline)]
pub use self::layer::RateLimitLayer;
#[doc(inline)]
pub use self::limit::{BucketKey, Limit, LimitKey, Quota, Tier};
#[doc(inline)]
pub use self::memory::MemoryRateLimitStore;
#[doc(inline)]
pub use self::service::RateLimit;
#[doc(inline)]
pub use self::store::{LimitCheck, LimitState, RateLimitStore};
#[doc(inline)]
pub use crate::store::StoreFuture;

use self::layer::{Compiled, Config, Policy};
use crate::error::ConfigError;
use crate::observe::{Observe, default_observer};
use crate::rejection::{RejectionResponse, default_renderer};
use crate::route::RouteTable;

/// Configures a [`RateLimitLayer`]. Every setting documents its default; everything is
/// checked by [`build`](Self::build).
#[must_use]
pub struct RateLimitBuilder {
    limits: Vec<Limit>,
    store: Option<Arc<dyn RateLimitStore>>,
    max_keys: usize,
    headers: bool,
    report_only: bool,
    allow_unknown_ip: bool,
    ipv6_prefix: u8,
    observer: Option<Arc<dyn Observe>>,
    renderer: Option<Arc<dyn RejectionResponse>>,
}

impl Default for RateLimitBuilder {
    fn default() -> Self {
        Self {
            limits: Vec::new(),
            store: None,
            max_keys: 100_000,
            headers: true,
            report_only: false,
            allow_unknown_ip: false,
            ipv6_prefix: crate::shield::DEFAULT_V6_PREFIX,
            observer: None,
            renderer: None,
        }
    }
}

impl fmt::Debug for RateLimitBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitBuilder")
            .field("limits", &self.limits)
            .field("max_keys", &self.max_keys)
            .field("headers", &self.headers)
            .field("report_only", &self.report_only)
            .finish_non_exhaustive()
    }
}

impl RateLimitBuilder {
    /// Adds a limit. A request must fit every limit that applies to it.
    pub fn limit(mut self, limit: Limit) -> Self {
        self.limits.push(limit);
        self
    }

    /// Keeps the buckets in `store` (shared by instances, or shared by two layers: buckets
    /// of limits with the same name and quota are the same buckets). Defaults to a new
    /// [`MemoryRateLimitStore`] for this layer.
    pub fn store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The most buckets the default in-process store holds per limit and quota. Defaults
    /// to 100,000 (see [`MemoryRateLimitStore`] for what happens past it).
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// Whether allowed responses carry `RateLimit-Policy` and `RateLimit`. Refusals always
    /// do, for quotas the fields can describe. Defaults to `true`; then every quota's
    /// refill time (burst × period / requests) must be a whole number of seconds, the
    /// field's window `w`.
    pub fn response_headers(mut self, on: bool) -> Self {
        self.headers = on;
        self
    }

    /// **Dangerous**: report-only (shadow) mode: every request is counted and every
    /// would-be refusal reported (outcome `would_refuse`, `warn` events, metrics), but
    /// nothing is refused and no `RateLimit` fields are sent. For trying limits on real
    /// traffic. Defaults to off.
    pub fn dangerous_report_only(mut self) -> Self {
        self.report_only = true;
        self
    }

    /// Limits keyed by [`LimitKey::ClientIp`] count IPv6 clients by their network of `bits`
    /// bits (1 to 128): one bucket per /64 by default, since one subscriber commonly holds a
    /// whole /64 and could otherwise rotate through its addresses to escape the limit. IPv4
    /// addresses (and IPv4-mapped IPv6) have a bucket each. The bucket is named by the
    /// network's first address (`2001:db8:1:2::`), also in a shared store's keys. Defaults
    /// to 64.
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// **Insecure**: a request whose client address is unknown is not counted by limits
    /// keyed by [`LimitKey::ClientIp`] instead of being refused. The address is unknown when
    /// the server gives no connection address (axum served without `ConnectInfo`: 503
    /// `unavailable`, cause `client_ip_unknown`) or a shield in front found the forwarded
    /// header unreadable (400 `invalid_request`, cause `forwarded_header_unreadable`).
    /// Defaults to refusing.
    pub fn insecure_allow_unknown_client_ip(mut self) -> Self {
        self.allow_unknown_ip = true;
        self
    }

    /// Reports every decision to `observer` instead of the default
    /// [`TracingObserver`](crate::observe::TracingObserver).
    pub fn observer(mut self, observer: Arc<dyn Observe>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Renders rejections with `renderer` instead of problem+json.
    pub fn rejection_response(mut self, renderer: impl RejectionResponse) -> Self {
        self.renderer = Some(Arc::new(renderer));
        self
    }

    /// Checks the limits and builds the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidRateLimit`] for a name that is empty, too long, not a plain
    /// token or used twice, a quota of zero, a [`LimitKey::Route`] limit without routes,
    /// with response fields on, a quota whose refill time is not whole seconds;
    /// [`ConfigError::InvalidRoute`] / [`ConfigError::ConflictingRules`] for its routes;
    /// [`ConfigError::InvalidLimit`] for `max_keys(0)` or an IPv6 prefix outside 1 to 128.
    pub fn build(self) -> Result<RateLimitLayer, ConfigError> {
        if self.max_keys == 0 {
            return Err(ConfigError::InvalidLimit {
                setting: "rate_limit.max_keys",
            });
        }
        crate::shield::check_v6_prefix(self.ipv6_prefix, "rate_limit.ipv6_prefix")?;
        let mut names = HashSet::new();
        let mut limits = Vec::with_capacity(self.limits.len());
        for limit in self.limits {
            let invalid = |reason: &str| ConfigError::InvalidRateLimit {
                limit: limit.name.to_string(),
                reason: reason.to_owned(),
            };
            let name_ok = !limit.name.is_empty()
                && limit.name.len() <= 64
                && limit
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                return Err(invalid(
                    "a name is 1 to 64 ASCII letters, digits, `-`, `_` or `.`",
                ));
            }
            if !names.insert(limit.name.clone()) {
                return Err(invalid("the name is used twice"));
            }
            for quota in std::iter::once(&limit.quota).chain(limit.tiers.iter().map(|(_, q)| q)) {
                if let Some(problem) = quota.problem() {
                    return Err(invalid(problem));
                }
            }
            if limit.key == LimitKey::Route && limit.routes.is_empty() {
                return Err(invalid(
                    "a limit keyed by route needs the routes it covers: add `routes(...)`",
                ));
            }
            let routes = if limit.routes.is_empty() {
                None
            } else {
                let mut table = RouteTable::default();
                for rule in &limit.routes {
                    table.insert(rule, BucketKey::Text(rule.as_str().into()))?;
                }
                Some(table)
            };
            let mut policies = Vec::with_capacity(limit.tiers.len() + 1);
            for quota in std::iter::once(limit.quota).chain(limit.tiers.iter().map(|(_, q)| *q)) {
                let header = headers::policy(&limit.name, quota);
                if header.is_none() && self.headers {
                    return Err(invalid(
                        "the RateLimit-Policy window (burst × period / requests: the time to \
                         refill a burst) is not a whole number of seconds; change the quota \
                         or turn the fields off with `response_headers(false)`",
                    ));
                }
                policies.push(Policy { quota, header });
            }
            let mut policies = policies.into_iter();
            let Some(default) = policies.next() else {
                return Err(invalid("a limit has a quota"));
            };
            limits.push(Compiled {
                default,
                tiers: limit
                    .tiers
                    .iter()
                    .map(|(tier, _)| tier.clone())
                    .zip(policies)
                    .collect(),
                name: limit.name.clone(),
                key: limit.key,
                routes,
                shared: BucketKey::Text(limit.name.clone()),
            });
        }
        // Limits keyed by the client's address or identity first, routes' and shared ones
        // last: a request refused by its own bucket never drains a bucket it shares with
        // everyone (each limit that allows a request counts it, in this order).
        limits.sort_by_key(|limit| limit.key.order());
        if self.report_only {
            tracing::warn!(
                target: "portcullis::rate_limit",
                "rate limits are in report-only mode: nothing is refused"
            );
        }
        Ok(RateLimitLayer {
            config: Arc::new(Config {
                limits: limits.into(),
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryRateLimitStore::new(self.max_keys))),
                headers: self.headers,
                report_only: self.report_only,
                allow_unknown_ip: self.allow_unknown_ip,
                ipv6_prefix: self.ipv6_prefix,
                observer: self.observer.unwrap_or_else(default_observer),
                renderer: self.renderer.unwrap_or_else(default_renderer),
            }),
        })
    }
}
