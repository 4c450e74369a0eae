//! [`Shield`]: the service, deciding in `call` while the block store answers at once.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower_service::Service;

use super::brute_force::BlockSource;
use super::checks::{Checks, observe, unknown_client};
use super::client_ip::{ClientIpUnknown, counting_key};
use super::future::{Pending, ResponseFuture};
use super::layer::{Config, Sources};
use crate::body::ResponseBody;
use crate::client_ip::ClientIp;
use crate::observe::Outcome;
use crate::rejection::{Reason, Rejection};

/// The service made by [`ShieldLayer`](super::ShieldLayer).
#[derive(Clone)]
pub struct Shield<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Shield<S> {
    pub(super) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the layer's service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for Shield<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Shield<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let config = &self.config;
        if !config.enabled {
            return ResponseFuture::calling(self.inner.call(request), None);
        }
        let started = Instant::now();
        let matched = config.routes.at(request.method(), request.uri().path());
        let route = matched.as_ref().map(|matched| matched.index);
        let route_rules = matched.map(|matched| matched.value);
        let address = match config
            .resolver
            .resolve(request.headers(), request.extensions())
        {
            Ok(address) => {
                request.extensions_mut().insert(ClientIp(address));
                Some(address)
            }
            Err(unknown) => {
                // Later layers must not take the connection's address (a proxy's) instead.
                request.extensions_mut().insert(ClientIpUnknown(unknown));
                let needs_address = !config.global.is_empty()
                    || route_rules.is_some_and(|rules| !rules.is_empty())
                    || config.brute_force.is_some();
                if needs_address && !config.allow_unknown_ip {
                    let rejection = unknown_client(unknown);
                    observe(
                        config,
                        &request,
                        route,
                        Outcome::Refused,
                        Some(&rejection),
                        started,
                    );
                    return ResponseFuture::answered(rejection.render(&*config.renderer));
                }
                None
            }
        };
        let permitted = config.global.permits(address)
            && route_rules.is_none_or(|rules| rules.permits(address));
        if !permitted {
            let rejection = Rejection::new(Reason::IpDenied);
            observe(
                config,
                &request,
                route,
                Outcome::Refused,
                Some(&rejection),
                started,
            );
            return ResponseFuture::answered(rejection.render(&*config.renderer));
        }
        let Some((policy, store)) = &config.brute_force else {
            if !config.global.is_empty() || route_rules.is_some() {
                observe(config, &request, route, Outcome::Allowed, None, started);
            }
            return ResponseFuture::calling(self.inner.call(request), None);
        };
        let identity = match &config.identity {
            Some(claimed) if policy.per_identity => {
                // Only with per-identity counting on: the authenticators read the head.
                let (parts, body) = request.into_parts();
                let identity = claimed(&parts);
                request = Request::from_parts(parts, body);
                identity.map(BlockSource::Identity)
            }
            _ => None,
        };
        let sources: Sources = [
            address.map(|address| BlockSource::Ip(counting_key(address, policy.ipv6_prefix))),
            identity,
        ];
        let mut checks = Checks {
            index: 0,
            reported: false,
            started,
            route,
        };
        // The in-process store answers at once: decide here while every answer is ready.
        while let Some(source) = checks.next_source(&sources) {
            match store.state(source).into_ready() {
                Ok(state) => {
                    if let Some(response) = checks.decide(config, &request, source, state) {
                        return ResponseFuture::answered(response);
                    }
                }
                Err(state) => {
                    // The ready service goes into the future; a fresh clone stays.
                    let clone = self.inner.clone();
                    let service = mem::replace(&mut self.inner, clone);
                    return ResponseFuture::checking(
                        state,
                        Box::new(Pending {
                            config: config.clone(),
                            service,
                            request,
                            sources,
                            checks,
                        }),
                    );
                }
            }
        }
        checks.pass(config, &request);
        ResponseFuture::calling(self.inner.call(request), Some((config.clone(), sources)))
    }
}
