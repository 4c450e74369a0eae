//! [`MetricsObserver`]: decisions as metrics, through the `metrics` facade.

use metrics::{counter, histogram};

use super::{BlockAction, BlockEvent, Decision, Observe, Outcome, Stage};

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
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsObserver;

impl MetricsObserver {
    /// A metrics observer.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
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
        let stage = decision.stage.name();
        let outcome = decision.outcome.name();
        // OpenTelemetry's `http.route` is the path template; the method has its own label.
        let route = decision
            .route
            .map_or("none", |rule| {
                rule.split_once(' ').map_or(rule, |(_, path)| path)
            })
            .to_owned();
        counter!(
            "portcullis.decisions",
            "stage" => stage,
            "outcome" => outcome,
            "reason" => decision.reason.map_or("none", |reason| reason.code()),
            "http.route" => route,
            "http.request.method" => method_label(decision.method),
        )
        .increment(1);
        histogram!(
            "portcullis.decision.duration",
            "stage" => stage,
            "outcome" => outcome,
        )
        .record(decision.elapsed().as_secs_f64());
        if decision.stage == Stage::RateLimit
            && matches!(decision.outcome, Outcome::Refused | Outcome::WouldRefuse)
        {
            let limit = decision.limit.unwrap_or("none").to_owned();
            counter!(
                "portcullis.rate_limit.refusals",
                "limit" => limit,
                "outcome" => outcome,
            )
            .increment(1);
        }
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
