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

use axum::body::Body;
use e2e_app::{Fixture, Scenario};
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::Service;

const USAGE: &str = "usage: gateway_requests <public|api_key|bearer|post> <bare|gated|wrapped> [N]";

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args
        .next()
        .and_then(|name| Scenario::parse(&name))
        .expect(USAGE);
    let router = args.next().expect(USAGE);
    let count: usize = args.next().map_or(1000, |n| n.parse().expect(USAGE));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    match router.as_str() {
        "bare" => {
            let (_, fixture) = runtime.block_on(e2e_app::gated_router());
            run(e2e_app::bare_router(), &fixture, scenario, count);
        }
        "gated" => {
            let (gated, fixture) = runtime.block_on(e2e_app::gated_router());
            run(gated, &fixture, scenario, count);
        }
        "wrapped" => {
            let (_, wrapped, fixture) = runtime.block_on(e2e_app::gated_routers());
            run(wrapped, &fixture, scenario, count);
        }
        _ => panic!("{USAGE}"),
    }
    println!("{} {router} x{count}", scenario.name());
}

fn run<S, B>(mut router: S, fixture: &Fixture, scenario: Scenario, count: usize)
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    send_one(&mut router, fixture, scenario);
    send_requests(&mut router, fixture, scenario, count);
}

#[inline(never)]
fn send_requests<S, B>(router: &mut S, fixture: &Fixture, scenario: Scenario, count: usize)
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    for _ in 0..count {
        send_one(router, fixture, scenario);
    }
}

fn send_one<S, B>(router: &mut S, fixture: &Fixture, scenario: Scenario)
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = fixture.request(scenario);
    let response = complete(router.call(request)).expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
    let body = complete(response.into_body().collect()).expect("body");
    black_box(body.to_bytes());
}
