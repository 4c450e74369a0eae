//! The checks of one request: which limits apply, the store's answers, the decision, and
//! the `RateLimit` fields of the response.

use std::time::Instant;

use bytes::Bytes;
use http::{Extensions, HeaderValue, Method, Request, Response};

use super::headers::{self, RATELIMIT, RATELIMIT_POLICY};
use super::layer::Config;
use super::limit::LimitKey;
use super::store::{LimitCheck, LimitState};
use crate::observe::{Decision, Outcome, Stage};
use crate::principal::Principal;
use crate::rejection::{Reason, Rejection};
use crate::shield::{ClientIpUnknown, UnknownClient, seconds};
use crate::store::StoreFuture;

#[derive(Clone, Copy)]
pub(super) struct Head<'a> {
    method: &'a Method,
    path: &'a str,
    extensions: &'a Extensions,
    /// The caller, looked up once.
    principal: Option<&'a Principal>,
}

impl<'a> Head<'a> {
    pub(super) fn of<B>(request: &'a Request<B>) -> Self {
        let extensions = request.extensions();
        Self {
            method: request.method(),
            path: request.uri().path(),
            extensions,
            principal: extensions.get::<Principal>(),
        }
    }
}

/// One limit's check in flight: the limit, the tier, and the store's answer.
pub(super) struct Check {
    pub(super) limit: usize,
    pub(super) tier: Option<usize>,
    pub(super) answer: StoreFuture<LimitState>,
}

/// What the checks so far have found.
pub(super) struct Evaluation {
    started: Instant,
    /// When the request is counted: `started`, on tokio's clock.
    now: tokio::time::Instant,
    /// The next limit to look at.
    next: usize,
    /// Whether any limit applied.
    applied: bool,
    /// Whether a refusal was reported (report-only mode).
    reported: bool,
    /// The allowed answer with the fewest requests left: the one the headers show.
    tightest: Option<(usize, Option<usize>, LimitState)>,
    /// A per-IP limit applied and the client's address is unknown: the request is refused
    /// (unless the layer lets unknown addresses through).
    unknown: Option<(usize, UnknownClient)>,
}

impl Evaluation {
    pub(super) fn new() -> Self {
        // One reading of the clock for the decision's timing and every check.
        let now = tokio::time::Instant::now();
        Self {
            started: now.into_std(),
            now,
            next: 0,
            applied: false,
            reported: false,
            tightest: None,
            unknown: None,
        }
    }

    /// The next limit that applies to the request, asked of the store.
    pub(super) fn next_check(&mut self, config: &Config, head: Head<'_>) -> Option<Check> {
        let principal = head.principal;
        while let Some(limit) = config.limits.get(self.next) {
            let index = self.next;
            self.next += 1;
            let route = match &limit.routes {
                None => None,
                Some(table) => match table.at(head.method, head.path) {
                    Some(matched) => Some(matched.value),
                    None => continue,
                },
            };
            let Some(key) = limit.key.bucket(
                &limit.shared,
                head.extensions,
                principal,
                route,
                config.ipv6_prefix,
            ) else {
                if limit.key == LimitKey::ClientIp && !config.allow_unknown_ip {
                    // A per-IP limit cannot count a client it cannot name: refuse rather
                    // than let it past every per-IP limit.
                    self.applied = true;
                    let unknown = head
                        .extensions
                        .get::<ClientIpUnknown>()
                        .map_or(UnknownClient::NoPeer, |marker| marker.0);
                    self.unknown.get_or_insert((index, unknown));
                    if !config.report_only {
                        return None;
                    }
                }
                continue;
            };
            let tier = principal.and_then(|principal| {
                limit
                    .tiers
                    .iter()
                    .position(|(tier, _)| tier.matches(principal))
            });
            self.applied = true;
            let answer = config.store.check(&LimitCheck::at(
                &limit.name,
                &key,
                limit.policy(tier).quota,
                self.now,
            ));
            return Some(Check {
                limit: index,
                tier,
                answer,
            });
        }
        None
    }

    /// Takes one answer: a refusal to send, or `None` to go on.
    pub(super) fn absorb(
        &mut self,
        config: &Config,
        head: Head<'_>,
        limit: usize,
        tier: Option<usize>,
        state: LimitState,
    ) -> Option<Response<Bytes>> {
        if state.allowed {
            // A store that cannot answer: nothing true to say in the fields.
            if !state.known {
                return None;
            }
            if self
                .tightest
                .as_ref()
                .is_none_or(|(_, _, tightest)| state.remaining < tightest.remaining)
            {
                self.tightest = Some((limit, tier, state));
            }
            return None;
        }
        let compiled = config.limits.get(limit)?;
        let rejection =
            Rejection::new(Reason::RateLimited).with_retry_after(seconds(state.retry_after));
        let outcome = if config.report_only {
            Outcome::WouldRefuse
        } else {
            Outcome::Refused
        };
        if config.report_only {
            // One decision per request: the first limit that would refuse it.
            if !self.reported {
                self.observe(config, head, outcome, Some((&rejection, &compiled.name)));
                self.reported = true;
            }
            return None;
        }
        self.observe(config, head, outcome, Some((&rejection, &compiled.name)));
        let mut response = rejection.render(&*config.renderer);
        if let Some(policy) = &compiled.policy(tier).header {
            let headers = response.headers_mut();
            headers.append(RATELIMIT_POLICY, policy.clone());
            headers.append(RATELIMIT, headers::state(&compiled.name, &state));
        }
        Some(response)
    }

    /// The checks are over: a refusal for an unknown client, or the request goes on (report
    /// it) with the headers to add to its response.
    pub(super) fn finish(
        &self,
        config: &Config,
        head: Head<'_>,
    ) -> Result<Option<[HeaderValue; 2]>, Box<Response<Bytes>>> {
        if !self.applied {
            return Ok(None);
        }
        let mut reported = self.reported;
        if let Some((limit, unknown)) = self.unknown {
            let rejection = crate::shield::unknown_client(unknown);
            let name = config.limits.get(limit).map_or("", |limit| &*limit.name);
            if !config.report_only {
                self.observe(config, head, Outcome::Refused, Some((&rejection, name)));
                return Err(Box::new(rejection.render(&*config.renderer)));
            }
            if !reported {
                self.observe(config, head, Outcome::WouldRefuse, Some((&rejection, name)));
                reported = true;
            }
        }
        if !reported {
            self.observe(config, head, Outcome::Allowed, None);
        }
        if !config.headers || config.report_only {
            return Ok(None);
        }
        let Some((limit, tier, state)) = self.tightest.as_ref() else {
            return Ok(None);
        };
        let Some(compiled) = config.limits.get(*limit) else {
            return Ok(None);
        };
        let Some(policy) = &compiled.policy(*tier).header else {
            return Ok(None);
        };
        Ok(Some([
            policy.clone(),
            headers::state(&compiled.name, state),
        ]))
    }

    fn observe(
        &self,
        config: &Config,
        head: Head<'_>,
        outcome: Outcome,
        refusal: Option<(&Rejection, &str)>,
    ) {
        config.observer.decision(&Decision {
            stage: Stage::RateLimit,
            outcome,
            reason: refusal.map(|(rejection, _)| rejection.reason()),
            cause: refusal.and_then(|(rejection, _)| rejection.cause()),
            status: refusal.map(|(rejection, _)| rejection.status()),
            route: matched_rule(head.extensions),
            method: head.method,
            path: head.path,
            principal: head.principal,
            client: crate::observe::Client::Request(head.extensions),
            limit: refusal.map(|(_, name)| name),
            started: self.started,
        });
    }
}

/// The rule the gateway matched, when the limits run after its authentication (the
/// per-identity limits); `None` before it or alone.
fn matched_rule(extensions: &Extensions) -> Option<&str> {
    #[cfg(feature = "authz")]
    {
        extensions
            .get::<crate::authenticate::Challenges>()
            .and_then(crate::authenticate::Challenges::route_text)
    }
    #[cfg(not(feature = "authz"))]
    {
        let _ = extensions;
        None
    }
}
