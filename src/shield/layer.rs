//! [`ShieldLayer`]: the shield's settings, built once, and the layer that makes the service.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tower_layer::Layer;

use super::ShieldBuilder;
use super::brute_force::{BlockSource, BlockStore, BruteForce};
use super::client_ip::ClientIpResolver;
use super::ip_rules::IpRules;
use super::service::Shield;
use crate::observe::Observe;
use crate::rejection::RejectionResponse;
use crate::route::RouteTable;

/// Reads the identity a request's credentials claim, before they are checked.
pub(crate) type ClaimedIdentity = Arc<dyn Fn(&Parts) -> Option<Arc<str>> + Send + Sync>;

/// The sources of one request whose failures count: its IP and the identity it claims.
pub(super) type Sources = [Option<BlockSource>; 2];

/// Everything the layer holds.
#[derive(Clone)]
pub(crate) struct Config {
    /// `false` for the gateway's stand-in when no shield is configured.
    pub(crate) enabled: bool,
    pub(crate) resolver: ClientIpResolver,
    pub(crate) global: IpRules,
    pub(crate) routes: Arc<RouteTable<IpRules>>,
    pub(crate) brute_force: Option<(BruteForce, Arc<dyn BlockStore>)>,
    /// Let requests whose client address is unknown through (not IP-limited, failing
    /// allow lists) instead of refusing them where an IP protection applies.
    pub(crate) allow_unknown_ip: bool,
    /// The identity a request's credentials claim (from the authenticators), for counting
    /// failures per identity.
    pub(crate) identity: Option<ClaimedIdentity>,
    pub(crate) observer: Arc<dyn Observe>,
    pub(crate) renderer: Arc<dyn RejectionResponse>,
}

/// The shield: client IP, IP rules and brute-force blocks, before anything else; see the
/// [module documentation](super).
#[derive(Clone)]
#[must_use]
pub struct ShieldLayer {
    config: Arc<Config>,
}

impl ShieldLayer {
    /// Starts a shield configuration.
    pub fn builder() -> ShieldBuilder {
        ShieldBuilder::default()
    }

    pub(super) fn from_config(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The same shield reporting to `observer` and rendering with `renderer` (the
    /// gateway's, when set).
    #[cfg(feature = "authz")]
    pub(crate) fn with_gateway(
        self,
        observer: Option<Arc<dyn Observe>>,
        renderer: Option<Arc<dyn RejectionResponse>>,
        identity: ClaimedIdentity,
    ) -> Self {
        let mut config = (*self.config).clone();
        if config.identity.is_none() {
            config.identity = Some(identity);
        }
        if let Some(observer) = observer {
            config.observer = observer;
        }
        if let Some(renderer) = renderer {
            config.renderer = renderer;
        }
        Self::from_config(config)
    }

    /// Whether this shield does nothing to a request (the gateway then leaves it out of a
    /// request's path). The gateway calls past it only because its `poll_ready` reserves
    /// nothing (it asks the inner service): keep it so.
    #[cfg(feature = "authz")]
    pub(crate) fn is_pass_through(&self) -> bool {
        !self.config.enabled
    }

    /// A shield that does nothing: the gateway's when none is configured.
    #[cfg(feature = "authz")]
    pub(crate) fn pass_through() -> Self {
        Self::from_config(Config {
            enabled: false,
            resolver: ClientIpResolver {
                peer: Arc::new(|_| None),
                trusted: super::ip_rules::NetList::default(),
                header: super::ForwardedHeader::default(),
            },
            global: IpRules::default(),
            routes: Arc::new(RouteTable::default()),
            brute_force: None,
            allow_unknown_ip: true,
            identity: None,
            observer: crate::observe::default_observer(),
            renderer: crate::rejection::default_renderer(),
        })
    }
}

impl fmt::Debug for ShieldLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShieldLayer")
            .field("client_ip", &self.config.resolver)
            .field("ip_rules", &self.config.global)
            .field(
                "brute_force",
                &self.config.brute_force.as_ref().map(|(policy, _)| policy),
            )
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ShieldLayer {
    type Service = Shield<S>;

    fn layer(&self, inner: S) -> Shield<S> {
        Shield::new(inner, self.config.clone())
    }
}
