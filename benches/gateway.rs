//! The gateway's cost through an axum `Router`, in process: the same routes bare and behind
//! `GatewaySecurityLayer` (API keys, bearer tokens with the token cache, role-mapped rules,
//! a JSON Schema for the `POST`), four scenarios, both routers in the same run. The app is
//! described in `support/e2e_app.rs`; `scripts/bench-e2e.sh` measures the same app over
//! loopback with `wrk`.
//!
//! Each measurement builds its request, calls the router and reads the response body; every
//! future completes without waiting, so it is polled once with a no-op waker, inside a
//! tokio runtime context (the validation layer arms its read timer only when a body makes
//! it wait). The gateway's cost for a scenario is `gated` minus `bare`; `reloadable` is the
//! same gateway in a `ReloadableLayer` after one reload, so `reloadable` minus `gated` is what
//! being reloadable costs.
//!
//! `metered` is the gateway reporting to `(TracingObserver, MetricsObserver)` with a
//! Prometheus recorder current; `metered_macros` the same with an observer that records the
//! same metrics through the `metrics` macros on every decision (registering each metric
//! again every time, as the macros do): `metered` minus `gated` is what the metrics cost,
//! and `metered_macros` minus `metered` what keeping the handles saves.
//!
//! Run with `cargo bench --bench gateway -- --warm-up-time 1 --measurement-time 3`.

#![allow(missing_docs, clippy::expect_used)]

#[path = "support/orders.rs"]
mod orders;
#[path = "support/poll.rs"]
mod poll;

#[path = "support/e2e_app.rs"]
#[allow(dead_code)]
mod e2e_app;

use poll::complete;
use std::hint::black_box;

use std::sync::Arc;

use axum::Router;
use criterion::{Criterion, criterion_group, criterion_main};
use e2e_app::{Fixture, Scenario};
use metrics::{counter, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;
use portcullis::observe::{Decision, MetricsObserver, Observe, Outcome, Stage, TracingObserver};
use tower::Service;

/// The metrics `MetricsObserver` records, through the `metrics` macros on every decision.
struct MacroObserver;

impl Observe for MacroObserver {
    fn decision(&self, decision: &Decision<'_>) {
        let stage = decision.stage.name();
        let outcome = decision.outcome.name();
        let route = decision
            .route
            .map_or("none", |rule| {
                rule.split_once(' ').map_or(rule, |(_, path)| path)
            })
            .to_owned();
        let method = match decision.method.as_str() {
            "GET" => "GET",
            "POST" => "POST",
            _ => "_OTHER",
        };
        counter!(
            "portcullis.decisions",
            "stage" => stage,
            "outcome" => outcome,
            "reason" => decision.reason.map_or("none", |reason| reason.code()),
            "http.route" => route,
            "http.request.method" => method,
        )
        .increment(1);
        histogram!("portcullis.decision.duration", "stage" => stage, "outcome" => outcome)
            .record(decision.elapsed().as_secs_f64());
        if decision.stage == Stage::RateLimit
            && matches!(decision.outcome, Outcome::Refused | Outcome::WouldRefuse)
        {
            let limit = decision.limit.unwrap_or("none").to_owned();
            counter!("portcullis.rate_limit.refusals", "limit" => limit, "outcome" => outcome)
                .increment(1);
        }
    }
}

fn send(router: &mut Router, fixture: &Fixture, scenario: Scenario) {
    let response = complete(router.call(fixture.request(scenario))).expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
    let body = complete(axum::body::to_bytes(response.into_body(), usize::MAX)).expect("body");
    black_box(body);
}

fn gateway(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let (mut gated, fixture) = runtime.block_on(e2e_app::gated_router());
    let (mut reloaded, reloaded_fixture) = runtime.block_on(e2e_app::reloaded_router());
    let mut bare = e2e_app::bare_router();
    let (mut metered, metered_fixture) = runtime.block_on(e2e_app::observed_router(Arc::new((
        TracingObserver,
        MetricsObserver::new(),
    ))));
    let (mut macros, macros_fixture) = runtime.block_on(e2e_app::observed_router(Arc::new((
        TracingObserver,
        MacroObserver,
    ))));
    let recorder = PrometheusBuilder::new().build_recorder();
    let mut group = c.benchmark_group("gateway");
    for scenario in Scenario::ALL {
        // Fills the token cache before measuring.
        send(&mut gated, &fixture, scenario);
        group.bench_function(format!("{}/bare", scenario.name()), |b| {
            b.iter(|| send(&mut bare, &fixture, scenario));
        });
        group.bench_function(format!("{}/gated", scenario.name()), |b| {
            b.iter(|| send(&mut gated, &fixture, scenario));
        });
        send(&mut reloaded, &reloaded_fixture, scenario);
        group.bench_function(format!("{}/reloadable", scenario.name()), |b| {
            b.iter(|| send(&mut reloaded, &reloaded_fixture, scenario));
        });
        // The histograms' samples are drained before each measurement, as an exporter's
        // upkeep does, so that neither measurement inherits the other's.
        metrics::with_local_recorder(&recorder, || {
            send(&mut metered, &metered_fixture, scenario);
            send(&mut macros, &macros_fixture, scenario);
            recorder.handle().run_upkeep();
            group.bench_function(format!("{}/metered", scenario.name()), |b| {
                b.iter(|| send(&mut metered, &metered_fixture, scenario));
            });
            recorder.handle().run_upkeep();
            group.bench_function(format!("{}/metered_macros", scenario.name()), |b| {
                b.iter(|| send(&mut macros, &macros_fixture, scenario));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, gateway);
criterion_main!(benches);
