//! Sends N requests of one scenario through the bare router or the gateway, in process,
//! for counting instructions with callgrind (see `scripts/callgrind-e2e.sh`).
//!
//! ```text
//! cargo run --release --example gateway_requests -- <public|api_key|bearer|post> <bare|gated> [N]
//! ```
//!
//! The requests are sent from `send_requests` (never inlined), so
//! `valgrind --tool=callgrind --toggle-collect='*send_requests*'` counts exactly them:
//! divide the total by N for instructions per request. One request of the same kind is sent
//! first, outside the count, to fill the caches (the bearer token cache among them).

#![allow(missing_docs, clippy::expect_used, clippy::print_stdout)]

#[path = "../benches/support/orders.rs"]
mod orders;
#[path = "../benches/support/poll.rs"]
mod poll;

#[path = "../benches/support/e2e_app.rs"]
#[allow(dead_code)]
mod e2e_app;

use poll::complete;
use std::hint::black_box;

use axum::Router;
use e2e_app::{Fixture, Scenario};
use tower::Service;

const USAGE: &str = "usage: gateway_requests <public|api_key|bearer|post> <bare|gated> [N]";

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args
        .next()
        .and_then(|name| Scenario::parse(&name))
        .expect(USAGE);
    let gated = match args.next().as_deref() {
        Some("bare") => false,
        Some("gated") => true,
        _ => panic!("{USAGE}"),
    };
    let count: usize = args.next().map_or(1000, |n| n.parse().expect(USAGE));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let (gated_router, fixture) = runtime.block_on(e2e_app::gated_router());
    let mut router = if gated {
        gated_router
    } else {
        e2e_app::bare_router()
    };
    send_one(&mut router, &fixture, scenario);
    send_requests(&mut router, &fixture, scenario, count);
    println!(
        "{} {} x{count}",
        scenario.name(),
        if gated { "gated" } else { "bare" }
    );
}

#[inline(never)]
fn send_requests(router: &mut Router, fixture: &Fixture, scenario: Scenario, count: usize) {
    for _ in 0..count {
        send_one(router, fixture, scenario);
    }
}

fn send_one(router: &mut Router, fixture: &Fixture, scenario: Scenario) {
    let request = fixture.request(scenario);
    let response = complete(router.call(request)).expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
    let body = complete(axum::body::to_bytes(response.into_body(), usize::MAX)).expect("body");
    black_box(body);
}
