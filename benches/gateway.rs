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

use axum::Router;
use criterion::{Criterion, criterion_group, criterion_main};
use e2e_app::{Fixture, Scenario};
use tower::Service;

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
    }
    group.finish();
}

criterion_group!(benches, gateway);
criterion_main!(benches);
