//! [`RateLimitLayer`]: the limits, compiled once, and the layer that makes the service.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use tower_layer::Layer;

use super::RateLimitBuilder;
use super::limit::{BucketKey, LimitKey, Quota, Tier};
use super::service::RateLimit;
use super::store::RateLimitStore;
use crate::observe::Observe;
use crate::rejection::RejectionResponse;
use crate::route::RouteTable;

/// A quota and its `RateLimit-Policy` item, made once (`None` when its window is not whole
/// seconds and the layer sends no fields).
pub(crate) struct Policy {
    pub(crate) quota: Quota,
    pub(crate) header: Option<HeaderValue>,
}

/// A limit, ready to apply.
pub(crate) struct Compiled {
    pub(crate) name: Arc<str>,
    pub(crate) key: LimitKey,
    pub(crate) default: Policy,
    pub(crate) tiers: Vec<(Tier, Policy)>,
    /// The routes it covers, each with its bucket key (for a limit keyed by route); `None`
    /// for every request.
    pub(crate) routes: Option<RouteTable<BucketKey>>,
    /// The bucket key of a shared limit: its name.
    pub(crate) shared: BucketKey,
}

impl Compiled {
    pub(super) fn policy(&self, tier: Option<usize>) -> &Policy {
        tier.and_then(|tier| self.tiers.get(tier))
            .map_or(&self.default, |(_, policy)| policy)
    }
}

/// Everything the layer holds.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) limits: Arc<[Compiled]>,
    pub(crate) store: Arc<dyn RateLimitStore>,
    pub(crate) headers: bool,
    pub(crate) report_only: bool,
    /// Let requests whose client address is unknown past per-IP limits.
    pub(crate) allow_unknown_ip: bool,
    /// IPv6 clients share a per-IP bucket per network of this many bits.
    pub(crate) ipv6_prefix: u8,
    pub(crate) observer: Arc<dyn Observe>,
    pub(crate) renderer: Arc<dyn RejectionResponse>,
}

/// Rate limits, checked per request; see the [module documentation](super).
#[derive(Clone)]
#[must_use]
pub struct RateLimitLayer {
    pub(crate) config: Arc<Config>,
}

impl RateLimitLayer {
    /// Starts a rate-limit configuration.
    pub fn builder() -> RateLimitBuilder {
        RateLimitBuilder::default()
    }

    /// The same limits reporting to `observer` and rendering with `renderer` (the
    /// gateway's, when set).
    #[cfg(feature = "authz")]
    pub(crate) fn with_gateway(
        self,
        observer: Option<Arc<dyn Observe>>,
        renderer: Option<Arc<dyn RejectionResponse>>,
    ) -> Self {
        let mut config = (*self.config).clone();
        if let Some(observer) = observer {
            config.observer = observer;
        }
        if let Some(renderer) = renderer {
            config.renderer = renderer;
        }
        Self {
            config: Arc::new(config),
        }
    }

    /// Whether these limits do nothing to a request: there are none (the gateway then
    /// leaves them out of a request's path). The gateway calls past them only because
    /// `poll_ready` reserves nothing (it asks the inner service): keep it so.
    #[cfg(feature = "authz")]
    pub(crate) fn is_pass_through(&self) -> bool {
        self.config.limits.is_empty()
    }

    /// Limits that do nothing: the gateway's when none are configured.
    #[cfg(feature = "authz")]
    pub(crate) fn pass_through() -> Self {
        Self {
            config: Arc::new(Config {
                limits: Arc::new([]),
                store: Arc::new(super::MemoryRateLimitStore::new(1)),
                headers: false,
                report_only: false,
                allow_unknown_ip: true,
                ipv6_prefix: crate::shield::DEFAULT_V6_PREFIX,
                observer: crate::observe::default_observer(),
                renderer: crate::rejection::default_renderer(),
            }),
        }
    }

    /// Whether any limit needs an authenticated caller (and so cannot run before
    /// authentication).
    #[cfg(feature = "authz")]
    pub(crate) fn needs_identity(&self) -> Option<&str> {
        self.config
            .limits
            .iter()
            .find(|limit| limit.key.needs_identity() || !limit.tiers.is_empty())
            .map(|limit| &*limit.name)
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.config.limits.iter().map(|l| &*l.name).collect();
        f.debug_struct("RateLimitLayer")
            .field("limits", &names)
            .field("headers", &self.config.headers)
            .field("report_only", &self.config.report_only)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit::new(inner, self.config.clone())
    }
}
