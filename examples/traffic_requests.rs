//! Sends N requests through a bare service or through one traffic layer, in process, for
//! counting instructions with callgrind: run it with N and with 0, subtract, divide by N.
//!
//! ```text
//! cargo build --release --example traffic_requests
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/traffic_requests <bare|limit|limit_no_fields|ip_limit|open|blocked> N
//! ```
//!
//! Requests are built as in `benches/traffic.rs`.

#![allow(missing_docs, clippy::expect_used, clippy::print_stdout)]

#[path = "../benches/support/poll.rs"]
mod poll;

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use poll::complete;
use portcullis::rate_limit::{Limit, LimitKey, Quota, RateLimitLayer};
use portcullis::shield::{BlockSource, BlockStore, BruteForce, MemoryBlockStore, ShieldLayer};
use portcullis::{AuthMethod, Principal};
use tower::{Layer, Service, ServiceExt, service_fn};

async fn bare(request: Request<String>) -> Result<Response<String>, Infallible> {
    black_box(&request);
    Ok(Response::new(String::new()))
}

fn request(principal: &Principal, peer: SocketAddr) -> Request<String> {
    let mut request = Request::new(String::new());
    request.extensions_mut().insert(principal.clone());
    request.extensions_mut().insert(peer);
    request
}

#[inline(never)]
fn send_requests<S, ResBody>(service: &mut S, principal: &Principal, peer: SocketAddr, n: u64)
where
    S: Service<Request<String>, Response = Response<ResBody>, Error = Infallible>,
{
    for _ in 0..n {
        let response = complete(async {
            match service.ready().await {
                Ok(ready) => ready.call(request(principal, peer)).await,
                Err(never) => match never {},
            }
        });
        black_box(response.map(|response| response.status()).ok());
    }
}

fn limits(limit: Limit, fields: bool) -> RateLimitLayer {
    RateLimitLayer::builder()
        .limit(limit)
        .response_headers(fields)
        .build()
        .expect("valid limits")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "bare".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let principal = Principal::builder(
        "vera",
        AuthMethod::ApiKey {
            key_id: "k_01HZX3KQ8V5M2N7P4R6T".into(),
        },
    )
    .build();
    let open: SocketAddr = "198.51.100.7:40000".parse().expect("address");
    let blocked: SocketAddr = "203.0.113.9:40000".parse().expect("address");
    let huge = Quota::per_second(1_000_000_000);
    let shield = || {
        let policy = BruteForce::new().threshold(3, Duration::from_secs(600));
        let store = Arc::new(MemoryBlockStore::new(100_000));
        for _ in 0..3 {
            complete(store.record_failure(&BlockSource::Ip(blocked.ip()), &policy));
        }
        ShieldLayer::builder()
            .brute_force(policy.store(store))
            .build()
            .expect("valid shield")
    };
    match scenario.as_str() {
        "bare" => send_requests(&mut service_fn(bare), &principal, open, n),
        "limit" => {
            let mut service =
                limits(Limit::new("per-key", LimitKey::ApiKey, huge), true).layer(service_fn(bare));
            send_requests(&mut service, &principal, open, n);
        }
        "limit_no_fields" => {
            let mut service = limits(Limit::new("per-key", LimitKey::ApiKey, huge), false)
                .layer(service_fn(bare));
            send_requests(&mut service, &principal, open, n);
        }
        "ip_limit" => {
            let mut service = limits(Limit::new("per-ip", LimitKey::ClientIp, huge), true)
                .layer(service_fn(bare));
            send_requests(&mut service, &principal, open, n);
        }
        "open" => send_requests(&mut shield().layer(service_fn(bare)), &principal, open, n),
        "blocked" => send_requests(
            &mut shield().layer(service_fn(bare)),
            &principal,
            blocked,
            n,
        ),
        other => panic!("unknown scenario {other}"),
    }
}
