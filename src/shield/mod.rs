//! The shield, in front of everything: the client IP (behind trusted proxies), IP allow
//! and deny lists, and brute-force blocking.
//!
//! [`ShieldLayer`] runs before any credential is looked at, so a denied or blocked source
//! costs no key-store lookup and no introspection call:
//!
//! - **Client IP**: the connecting peer's address (axum's `ConnectInfo<SocketAddr>` with the
//!   `axum` feature, a `SocketAddr` extension, or your
//!   [`peer_address`](ShieldBuilder::peer_address)). `Forwarded` / `X-Forwarded-For` are
//!   read only when the peer is a configured [trusted proxy](ShieldBuilder::trusted_proxies),
//!   from the right, taking the first address that is not a trusted proxy: a client cannot
//!   forge its address by sending the header itself. The address goes in the request's
//!   extensions as [`ClientIp`](crate::ClientIp). A forwarded hop that cannot be read
//!   (not text, `unknown`, garbage) makes the client unknown, never the proxy's address.
//!   Where IP rules or brute-force blocking apply, a request whose client is unknown is
//!   refused: 503 `unavailable` without a connection address (axum served without
//!   `ConnectInfo`), 400 `invalid_request` for an unreadable forwarded hop (opt out with
//!   [`insecure_allow_unknown_client_ip`](ShieldBuilder::insecure_allow_unknown_client_ip)).
//! - **IP rules**: allow and deny lists of CIDR ranges (IPv4 and IPv6; IPv4-mapped IPv6
//!   addresses count as IPv4), globally and per route; deny wins; refused with 403
//!   `ip_denied`.
//! - **Brute-force blocking** ([`BruteForce`]): authentication failures counted per client
//!   IP (IPv6 by /64 by default, see [`BruteForce::ipv6_prefix`]; and, opted in, per
//!   API-key id claimed); above a threshold the source is refused
//!   with 429 `blocked` and `Retry-After` for a period that doubles with repeat offences.
//!   Each block and unblock is reported to the observer (`Observe::block`, see
//!   [`crate::observe`]).
//!
//! # Example
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use http::{Request, StatusCode};
//! use portcullis::shield::{BruteForce, ShieldLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let shield = ShieldLayer::builder()
//!     .deny(["192.0.2.0/24"])
//!     .route_allow("POST /admin/{*rest}", ["10.0.0.0/8"])
//!     .brute_force(BruteForce::new().threshold(5, Duration::from_secs(60)))
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(shield)
//!     .service(service_fn(|_: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     }));
//!
//! let mut request = Request::get("/orders").body(String::new())?;
//! // axum's `into_make_service_with_connect_info` gives the peer address; here by hand.
//! request.extensions_mut().insert("192.0.2.7:5000".parse::<SocketAddr>()?);
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # Ok(()) }
//! ```

mod brute_force;
mod checks;
pub(crate) mod client_ip;
mod future;
pub(crate) mod ip_rules;
mod layer;
mod service;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::Extensions;

#[doc(inline)]
pub use self::brute_force::{
    BlockSource, BlockState, BlockStore, BruteForce, FailureCount, MemoryBlockStore,
};
#[doc(inline)]
pub use self::client_ip::ForwardedHeader;
#[doc(inline)]
pub use self::future::ResponseFuture;
#[doc(inline)]
pub use self::layer::ShieldLayer;
#[doc(inline)]
pub use self::service::Shield;
#[doc(inline)]
pub use crate::store::StoreFuture;

use self::client_ip::{ClientIpResolver, PeerAddress};
use self::ip_rules::{IpRules, NetList};
pub(crate) use self::layer::ClaimedIdentity;
use self::layer::Config;
use crate::authenticate::Authenticate;
use crate::error::ConfigError;
use crate::observe::{Observe, default_observer};
use crate::rejection::{RejectionResponse, default_renderer};
use crate::route::RouteTable;

#[cfg(feature = "rate-limit")]
pub(crate) use self::checks::seconds;
#[cfg(feature = "rate-limit")]
pub(crate) use self::checks::unknown_client;
#[cfg(feature = "rate-limit")]
pub(crate) use self::client_ip::{ClientIpUnknown, UnknownClient};
#[cfg(feature = "rate-limit")]
pub(crate) use self::client_ip::{DEFAULT_V6_PREFIX, check_v6_prefix, counting_key};
pub(crate) use self::client_ip::{client_ip_of, connection_peer};

/// Configures a [`ShieldLayer`]. Every setting documents its default; everything is
/// checked by [`build`](Self::build).
#[derive(Default)]
#[must_use]
pub struct ShieldBuilder {
    trusted: Vec<String>,
    header: ForwardedHeader,
    peer: Option<PeerAddress>,
    allow: Vec<String>,
    deny: Vec<String>,
    routes: Vec<(String, Vec<String>, Vec<String>)>,
    brute_force: Option<BruteForce>,
    allow_unknown_ip: bool,
    identity: Option<ClaimedIdentity>,
    observer: Option<Arc<dyn Observe>>,
    renderer: Option<Arc<dyn RejectionResponse>>,
}

impl fmt::Debug for ShieldBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShieldBuilder")
            .field("trusted", &self.trusted)
            .field("header", &self.header)
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .field("brute_force", &self.brute_force)
            .finish_non_exhaustive()
    }
}

/// Collects texts into owned strings.
fn owned<I, T>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = T>,
    T: AsRef<str>,
{
    items
        .into_iter()
        .map(|item| item.as_ref().to_owned())
        .collect()
}

impl ShieldBuilder {
    /// The proxies (CIDR ranges or addresses) whose forwarded header is believed. Defaults
    /// to none: the client IP is the connecting peer's, and forwarded headers are ignored.
    pub fn trusted_proxies<I, T>(mut self, proxies: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.trusted.extend(owned(proxies));
        self
    }

    /// Which header the trusted proxies write. Defaults to `X-Forwarded-For`.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Reads the connecting peer's address from the request's extensions with `peer`
    /// instead of from axum's `ConnectInfo<SocketAddr>` or a `SocketAddr` extension (for
    /// servers that put it elsewhere). Defaults to those two.
    pub fn peer_address(
        mut self,
        peer: impl Fn(&Extensions) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.peer = Some(Arc::new(peer));
        self
    }

    /// Only clients in these ranges may call any route. Defaults to everyone.
    pub fn allow<I, T>(mut self, ranges: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.allow.extend(owned(ranges));
        self
    }

    /// Clients in these ranges may call no route. Wins over every allow list. Defaults to
    /// none.
    pub fn deny<I, T>(mut self, ranges: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.deny.extend(owned(ranges));
        self
    }

    /// Only clients in these ranges may call routes matching `rule` (`METHOD /path`, as in
    /// the route rules), in addition to the global lists.
    pub fn route_allow<I, T>(mut self, rule: &str, ranges: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.route_entry(rule).1.extend(owned(ranges));
        self
    }

    /// Clients in these ranges may not call routes matching `rule`.
    pub fn route_deny<I, T>(mut self, rule: &str, ranges: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.route_entry(rule).2.extend(owned(ranges));
        self
    }

    fn route_entry(&mut self, rule: &str) -> &mut (String, Vec<String>, Vec<String>) {
        let index = match self.routes.iter().position(|(text, ..)| text == rule) {
            Some(index) => index,
            None => {
                self.routes.push((rule.to_owned(), Vec::new(), Vec::new()));
                self.routes.len() - 1
            }
        };
        &mut self.routes[index]
    }

    /// **Insecure**: lets a request whose client address is unknown go on where IP rules or
    /// brute-force blocking apply (it passes deny lists, fails allow lists, and its failures
    /// are not counted per IP), instead of refusing it.
    ///
    /// The address is unknown when the server gives no connection address (axum served
    /// without `ConnectInfo`: refused with 503 `unavailable`, cause `client_ip_unknown`) or
    /// when a trusted proxy forwards a hop that is not an address (refused with 400
    /// `invalid_request`, cause `forwarded_header_unreadable`). Defaults to refusing. Limits
    /// keyed by client IP behind the shield have their own opt-out
    /// (`RateLimitBuilder::insecure_allow_unknown_client_ip`): they never fall back to the
    /// connection's address when the shield found the client unknown.
    pub fn insecure_allow_unknown_client_ip(mut self) -> Self {
        self.allow_unknown_ip = true;
        self
    }

    /// Turns on brute-force blocking. Defaults to off.
    pub fn brute_force(mut self, brute_force: BruteForce) -> Self {
        self.brute_force = Some(brute_force);
        self
    }

    /// The authenticator whose [`claimed_identity`](crate::Authenticate::claimed_identity)
    /// names the identity of a request, for [`BruteForce::per_identity`] (the gateway uses
    /// its own authenticators). Defaults to none.
    pub fn identities_from(mut self, authenticator: impl Authenticate) -> Self {
        self.identity = Some(Arc::new(move |parts: &http::request::Parts| {
            authenticator.claimed_identity(parts)
        }));
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

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCidr`] for a range that does not parse or has host bits set;
    /// [`ConfigError::InvalidRoute`] / [`ConfigError::ConflictingRules`] for a bad route;
    /// [`ConfigError::InvalidLimit`] for a zero brute-force setting or an IPv6 prefix
    /// outside 1 to 128;
    /// [`ConfigError::NoClientIpSource`] when nothing can tell the peer's address (no
    /// `axum` feature and no [`peer_address`](Self::peer_address)).
    pub fn build(self) -> Result<ShieldLayer, ConfigError> {
        let peer = match self.peer {
            Some(peer) => peer,
            None if cfg!(feature = "axum") => Arc::new(connection_peer),
            None => return Err(ConfigError::NoClientIpSource),
        };
        let resolver = ClientIpResolver {
            peer,
            trusted: NetList::parse(self.trusted.iter().map(String::as_str))?,
            header: self.header,
        };
        let global = IpRules {
            allow: NetList::parse(self.allow.iter().map(String::as_str))?,
            deny: NetList::parse(self.deny.iter().map(String::as_str))?,
        };
        let mut routes = RouteTable::default();
        for (rule, allow, deny) in &self.routes {
            let rules = IpRules {
                allow: NetList::parse(allow.iter().map(String::as_str))?,
                deny: NetList::parse(deny.iter().map(String::as_str))?,
            };
            routes.insert(rule, rules)?;
        }
        let brute_force = match self.brute_force {
            Some(policy) => {
                policy.check()?;
                let store = policy.store_or_memory();
                Some((policy, store))
            }
            None => None,
        };
        if brute_force
            .as_ref()
            .is_some_and(|(policy, _)| policy.report_only)
        {
            tracing::warn!(
                target: "portcullis::shield",
                "brute-force protection is in report-only mode: blocks are only reported"
            );
        }
        Ok(ShieldLayer::from_config(Config {
            enabled: true,
            resolver,
            global,
            routes: Arc::new(routes),
            brute_force,
            allow_unknown_ip: self.allow_unknown_ip,
            identity: self.identity,
            observer: self.observer.unwrap_or_else(default_observer),
            renderer: self.renderer.unwrap_or_else(default_renderer),
        }))
    }
}
