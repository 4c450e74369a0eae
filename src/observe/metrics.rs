//! [`MetricsObserver`]: decisions as metrics, through the `metrics` facade.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use metrics::{Counter, Histogram, counter, histogram};

use super::handles::{Handles, LabelHasher};
use super::{BlockAction, BlockEvent, Decision, Observe, Outcome, Stage};
use crate::rejection::Reason;

/// Records every decision through the [`metrics`] facade; you install the recorder (a
/// Prometheus exporter, OpenTelemetry, StatsD, …), the library never picks one.
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `portcullis.decisions` | counter | `stage`, `outcome`, `reason`, `http.route`, `http.request.method` |
/// | `portcullis.decision.duration` | histogram, seconds | `stage`, `outcome` |
/// | `portcullis.rate_limit.refusals` | counter | `limit`, `outcome` (`refused` or `would_refuse`) |
/// | `portcullis.shield.blocks` | counter | `kind` (`ip` or `identity`), `report_only` |
/// | `portcullis.shield.unblocks` | counter | `kind` (`ip` or `identity`) |
///
/// With the `bearer` feature, JWKS fetches, token-cache and introspection-cache lookups and
/// introspection calls are counted through the same facade (they are not decisions; see
/// `docs/monitoring.md`).
///
/// Labels have bounded cardinality: `stage`, `outcome` and `reason` are fixed vocabularies
/// (`reason` is `none` for allowed requests), `http.route` is the matched rule's path
/// template (`/orders/{id}` for the rule `GET /orders/{id}`, never the raw path; `none`
/// where the stage has no rule), `http.request.method` is one of the standard methods or
/// `_OTHER` (OpenTelemetry's conventions), `limit` a configured limit's name. Never a subject, a key id, an address
/// or a path.
///
/// It records only: wrap it with [`TracingObserver`](super::TracingObserver) (a tuple
/// `(TracingObserver, MetricsObserver)` is an observer) to keep the events.
///
/// Each label set is registered with the recorder when it is first seen and its handles
/// are kept (clones of an observer share them): a decision then costs a lookup in a table
/// read without a lock, where the `metrics` macros would register the metric again on
/// every request. The label sets are registered again with a new recorder (one installed
/// after the first decisions, a thread's local recorder), and at least once a minute, so
/// that a metric the recorder dropped while idle (the Prometheus exporter's
/// `idle_timeout`) comes back within a minute of its next use. A local recorder dropped
/// and another made at the same address is taken for the same one: in tests, give each
/// local recorder its own observer.
#[derive(Clone)]
pub struct MetricsObserver {
    handles: Arc<Handles<LabelSet, DecisionHandles>>,
    /// When the observer was made: decisions' start times are seconds since then, for the
    /// handles' refresh (no clock read per decision).
    made: Instant,
}

impl Default for MetricsObserver {
    fn default() -> Self {
        Self {
            handles: Arc::default(),
            made: Instant::now(),
        }
    }
}

impl fmt::Debug for MetricsObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsObserver").finish_non_exhaustive()
    }
}

impl MetricsObserver {
    /// A metrics observer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// The labels of one decision's metrics.
#[derive(Clone)]
struct LabelSet {
    stage: Stage,
    outcome: Outcome,
    reason: Option<Reason>,
    method: &'static str,
    /// The matched rule (`GET /orders/{id}`), whose path is the `http.route` label.
    rule: Option<Box<str>>,
    /// The limit, for a rate limit's refusal.
    limit: Option<Box<str>>,
}

/// A decision's labels as the decision holds them: hashed like a [`LabelSet`].
#[derive(Hash)]
struct Seen<'a> {
    stage: Stage,
    outcome: Outcome,
    reason: Option<Reason>,
    method: &'static str,
    rule: Option<&'a str>,
    limit: Option<&'a str>,
}

impl Seen<'_> {
    fn is(&self, set: &LabelSet) -> bool {
        self.stage == set.stage
            && self.outcome == set.outcome
            && self.reason == set.reason
            && self.method == set.method
            && self.rule == set.rule.as_deref()
            && self.limit == set.limit.as_deref()
    }

    fn owned(&self) -> LabelSet {
        LabelSet {
            stage: self.stage,
            outcome: self.outcome,
            reason: self.reason,
            method: self.method,
            rule: self.rule.map(Box::from),
            limit: self.limit.map(Box::from),
        }
    }

    /// Registers the metrics of these labels with the current recorder.
    fn register(&self) -> DecisionHandles {
        let stage = self.stage.name();
        let outcome = self.outcome.name();
        // OpenTelemetry's `http.route` is the path template; the method has its own label.
        let route = self
            .rule
            .map_or("none", |rule| {
                rule.split_once(' ').map_or(rule, |(_, path)| path)
            })
            .to_owned();
        let refusals = self.limit.map(|limit| {
            counter!(
                "portcullis.rate_limit.refusals",
                "limit" => limit.to_owned(),
                "outcome" => outcome,
            )
        });
        DecisionHandles {
            decisions: counter!(
                "portcullis.decisions",
                "stage" => stage,
                "outcome" => outcome,
                "reason" => self.reason.map_or("none", |reason| reason.code()),
                "http.route" => route,
                "http.request.method" => self.method,
            ),
            duration: histogram!(
                "portcullis.decision.duration",
                "stage" => stage,
                "outcome" => outcome,
            ),
            refusals,
        }
    }
}

/// The metrics one decision records.
#[derive(Clone)]
struct DecisionHandles {
    decisions: Counter,
    duration: Histogram,
    /// A rate limit's refusals (and would-be refusals), by limit.
    refusals: Option<Counter>,
}

/// The method as a bounded label: a standard method, or `_OTHER`.
fn method_label(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
    }
}

impl Observe for MetricsObserver {
    fn decision(&self, decision: &Decision<'_>) {
        let refused = decision.stage == Stage::RateLimit
            && matches!(decision.outcome, Outcome::Refused | Outcome::WouldRefuse);
        let seen = Seen {
            stage: decision.stage,
            outcome: decision.outcome,
            reason: decision.reason,
            method: method_label(decision.method),
            rule: decision.route,
            limit: if refused {
                Some(decision.limit.unwrap_or("none"))
            } else {
                None
            },
        };
        let elapsed = decision.elapsed().as_secs_f64();
        self.handles.with(
            decision
                .started
                .saturating_duration_since(self.made)
                .as_secs(),
            LabelHasher::hash(&seen),
            |set| seen.is(set),
            || (seen.owned(), seen.register()),
            |handles| {
                handles.decisions.increment(1);
                handles.duration.record(elapsed);
                if let Some(refusals) = &handles.refusals {
                    refusals.increment(1);
                }
            },
        );
    }

    fn block(&self, event: &BlockEvent<'_>) {
        match event.action {
            BlockAction::Blocked => counter!(
                "portcullis.shield.blocks",
                "kind" => event.kind,
                "report_only" => if event.report_only { "true" } else { "false" },
            )
            .increment(1),
            BlockAction::Unblocked => {
                counter!("portcullis.shield.unblocks", "kind" => event.kind).increment(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use metrics::{Key, KeyName, Metadata, Recorder, SharedString, Unit, with_local_recorder};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::observe::Client;
    use crate::observe::handles::REFRESH;

    /// Counts registrations, records nothing.
    #[derive(Default)]
    struct Registrations {
        counters: AtomicUsize,
        histograms: AtomicUsize,
    }

    impl Recorder for Registrations {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            self.counters.fetch_add(1, Ordering::Relaxed);
            Counter::noop()
        }

        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }

        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            self.histograms.fetch_add(1, Ordering::Relaxed);
            Histogram::noop()
        }
    }

    fn decision<'a>(
        extensions: &'a http::Extensions,
        stage: Stage,
        outcome: Outcome,
        route: Option<&'a str>,
        limit: Option<&'a str>,
    ) -> Decision<'a> {
        Decision {
            stage,
            outcome,
            reason: (outcome == Outcome::Refused).then_some(Reason::RateLimited),
            cause: None,
            status: None,
            route,
            method: &http::Method::GET,
            path: "/orders/7",
            principal: None,
            client: Client::Request(extensions),
            limit,
            started: Instant::now(),
        }
    }

    #[test]
    fn each_label_set_is_registered_once() {
        let extensions = http::Extensions::new();
        let recorder = Registrations::default();
        let observer = MetricsObserver::new();
        let shared = observer.clone();
        with_local_recorder(&recorder, || {
            for _ in 0..3 {
                observer.decision(&decision(
                    &extensions,
                    Stage::Authorize,
                    Outcome::Allowed,
                    Some("GET /orders/{id}"),
                    None,
                ));
                shared.decision(&decision(
                    &extensions,
                    Stage::Authorize,
                    Outcome::Allowed,
                    Some("GET /reports"),
                    None,
                ));
                observer.decision(&decision(
                    &extensions,
                    Stage::RateLimit,
                    Outcome::Refused,
                    None,
                    Some("per-key"),
                ));
            }
        });
        // Two routes, and a refusal with its limit's counter besides.
        assert_eq!(recorder.counters.load(Ordering::Relaxed), 4);
        assert_eq!(recorder.histograms.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn label_sets_are_registered_again_after_a_while() {
        let extensions = http::Extensions::new();
        let recorder = Registrations::default();
        let observer = MetricsObserver::new();
        let at = |seconds| {
            let mut decision = decision(
                &extensions,
                Stage::Authenticate,
                Outcome::Allowed,
                None,
                None,
            );
            decision.started = observer.made + std::time::Duration::from_secs(seconds);
            decision
        };
        with_local_recorder(&recorder, || {
            observer.decision(&at(0));
            observer.decision(&at(REFRESH - 1));
            assert_eq!(recorder.counters.load(Ordering::Relaxed), 1);
            // A recorder may have dropped the metric while it was idle: registered again.
            observer.decision(&at(REFRESH));
            observer.decision(&at(REFRESH + 1));
        });
        assert_eq!(recorder.counters.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn another_recorder_gets_its_own_handles() {
        let extensions = http::Extensions::new();
        let first = Registrations::default();
        let second = DebuggingRecorder::new();
        let snapshotter = second.snapshotter();
        let observer = MetricsObserver::new();
        let allowed = || {
            decision(
                &extensions,
                Stage::Validate,
                Outcome::Allowed,
                Some("POST /orders"),
                None,
            )
        };
        with_local_recorder(&first, || observer.decision(&allowed()));
        with_local_recorder(&second, || {
            observer.decision(&allowed());
            observer.decision(&allowed());
        });
        with_local_recorder(&first, || observer.decision(&allowed()));
        assert_eq!(first.counters.load(Ordering::Relaxed), 2);
        let counted: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "portcullis.decisions")
            .map(|(key, _, _, value)| {
                let route = key
                    .key()
                    .labels()
                    .find(|label| label.key() == "http.route")
                    .map(|label| label.value().to_owned());
                (route, value)
            })
            .collect();
        assert_eq!(
            counted,
            vec![(Some("/orders".to_owned()), DebugValue::Counter(2))]
        );
    }
}
