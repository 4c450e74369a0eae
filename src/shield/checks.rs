//! The checks of one request: refusals for unknown clients, block states source by source,
//! failures, and what is reported.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};

use super::brute_force::{BlockSource, BlockState, BruteForce};
use super::client_ip::UnknownClient;
use super::layer::{Config, Sources};
use crate::observe::{BlockAction, BlockEvent, Decision, Outcome, Stage};
use crate::rejection::{Reason, Rejection};

/// The refusal of a request whose client address is unknown, where something depends on
/// it: 503 when the server gives no connection address (a deployment fault), 400 when a
/// trusted proxy forwarded an unreadable hop (the client sent garbage, or the proxy wrote
/// `unknown`).
pub(crate) fn unknown_client(unknown: UnknownClient) -> Rejection {
    match unknown {
        UnknownClient::NoPeer => {
            super::client_ip::warn_no_peer_address("portcullis::shield");
            Rejection::new(Reason::Unavailable)
                .with_cause("client_ip_unknown")
                .with_detail("The client's address cannot be determined.")
        }
        UnknownClient::Unreadable => Rejection::new(Reason::InvalidRequest)
            .with_cause("forwarded_header_unreadable")
            .with_detail("The forwarded client address cannot be read."),
    }
}

/// Reports one shield decision.
pub(super) fn observe<B>(
    config: &Config,
    request: &Request<B>,
    route: Option<usize>,
    outcome: Outcome,
    rejection: Option<&Rejection>,
    started: Instant,
) {
    config.observer.decision(&Decision {
        stage: Stage::Shield,
        outcome,
        reason: rejection.map(Rejection::reason),
        cause: rejection.and_then(Rejection::cause),
        status: rejection.map(Rejection::status),
        // The per-route IP rule that matched, as written.
        route: route
            .and_then(|index| config.routes.entry(index))
            .map(|(rule, _)| rule),
        method: request.method(),
        path: request.uri().path(),
        principal: None,
        client: crate::observe::Client::Request(request.extensions()),
        limit: None,
        started,
    });
}

/// The block checks of one request, source by source.
pub(super) struct Checks {
    /// The next source to check.
    pub(super) index: usize,
    /// Whether a would-be refusal was reported (report-only mode).
    pub(super) reported: bool,
    pub(super) started: Instant,
    /// The per-route IP rule that matched (its index in the shield's route table).
    pub(super) route: Option<usize>,
}

impl Checks {
    /// The next source to check, moving past it.
    pub(super) fn next_source<'s>(&mut self, sources: &'s Sources) -> Option<&'s BlockSource> {
        while let Some(slot) = sources.get(self.index) {
            self.index += 1;
            if let Some(source) = slot {
                return Some(source);
            }
        }
        None
    }

    /// What one source's block state means for the request: a refusal, or `None` to go on.
    pub(super) fn decide<B>(
        &mut self,
        config: &Config,
        request: &Request<B>,
        source: &BlockSource,
        state: BlockState,
    ) -> Option<Response<Bytes>> {
        let (policy, _) = config.brute_force.as_ref()?;
        match state {
            BlockState::Blocked { remaining } => {
                let rejection =
                    Rejection::new(Reason::Blocked).with_retry_after(seconds(remaining));
                if policy.report_only {
                    if !self.reported {
                        observe(
                            config,
                            request,
                            self.route,
                            Outcome::WouldRefuse,
                            Some(&rejection),
                            self.started,
                        );
                        self.reported = true;
                    }
                    return None;
                }
                observe(
                    config,
                    request,
                    self.route,
                    Outcome::Refused,
                    Some(&rejection),
                    self.started,
                );
                Some(rejection.render(&*config.renderer))
            }
            BlockState::Unblocked { offences } => {
                let event = Block::new(BlockAction::Unblocked, 0, offences, Duration::ZERO);
                event.report(config, policy, source);
                None
            }
            BlockState::Open => None,
        }
    }

    /// Every source passed: report it.
    pub(super) fn pass<B>(&self, config: &Config, request: &Request<B>) {
        if !self.reported {
            observe(
                config,
                request,
                self.route,
                Outcome::Allowed,
                None,
                self.started,
            );
        }
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub(crate) fn seconds(duration: Duration) -> u32 {
    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(whole.max(1)).unwrap_or(u32::MAX)
}

/// A block or unblock to report.
pub(super) struct Block {
    action: BlockAction,
    failures: u32,
    offences: u32,
    duration: Duration,
}

impl Block {
    pub(super) fn new(
        action: BlockAction,
        failures: u32,
        offences: u32,
        duration: Duration,
    ) -> Self {
        Self {
            action,
            failures,
            offences,
            duration,
        }
    }

    pub(super) fn report(&self, config: &Config, policy: &BruteForce, source: &BlockSource) {
        let text = source.to_string();
        config.observer.block(&BlockEvent {
            action: self.action,
            kind: source.kind(),
            source: &text,
            reason: "authentication_failures",
            failures: self.failures,
            offences: self.offences,
            duration: self.duration,
            report_only: policy.report_only,
        });
    }
}

/// Whether a response is an authentication failure: bad credentials, from any
/// authenticator (a request without credentials is not one), or a login flow's failed
/// login (an OIDC callback with a refused code or a forged ID token).
pub(super) fn is_failure<T>(response: &Response<T>) -> bool {
    let extensions = response.extensions();
    (response.status() == StatusCode::UNAUTHORIZED
        && extensions
            .get::<Reason>()
            .is_some_and(|reason| reason.public() == Reason::InvalidCredentials))
        || extensions
            .get::<crate::authenticate::FailedLogin>()
            .is_some()
}
