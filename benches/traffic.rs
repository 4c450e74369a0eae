//! What traffic protection costs per request, beside a bare service in the same run.
//!
//! Group `rate_limit` (every request carries a `Principal` authenticated by API key, as an
//! authentication layer leaves it, and a peer address, as axum's `ConnectInfo` would):
//!
//! - `bare_service`: build the request and call a bare `tower::service_fn`. The floor.
//! - `one_keyed_limit`: the same through a `RateLimitLayer` with one limit keyed by the API
//!   key (a quota never exhausted here), `RateLimit` fields on the response (the default).
//!   The limit's cost is this minus `bare_service`; the target is at most 0.3 µs.
//! - `one_keyed_limit_no_fields`: the same without the response fields.
//! - `router` and `one_keyed_limit_router`: the floor and the keyed limit with its fields
//!   again, beside a bare axum `Router` with one route whose handler answers text: the
//!   floor the target is stated against.
//! - `one_keyed_limit_router_difference` and `one_keyed_limit_no_fields_router_difference`:
//!   the keyed limit's cost itself beside the bare router, with and without the fields:
//!   batches of 64 requests to each, alternating, and the layered batches' time minus the
//!   bare ones', per request. Both see the same moments of a noisy machine, where two
//!   separate measurements may not.
//! - `one_ip_limit`: one limit keyed by client IP.
//! - `text_service` and `one_keyed_limit_text_service`: the floor and the keyed limit with
//!   its fields again, with a service that answers as an axum handler returning text does,
//!   with a `content-type` header: the response's header map is already allocated, so the
//!   fields' cost is the fields, not the map's first allocation the empty floor leaves to
//!   the layer.
//!
//! Group `shield`:
//!
//! - `bare_service`: as above.
//! - `open_source`: through a `ShieldLayer` with brute-force blocking, from a source that is
//!   not blocked (the block-store check on every request).
//! - `blocked_source`: from a blocked source: refused with 429 and problem+json before the
//!   service. The target is under 1 µs.
//! - `ip_denied`: from an address on the deny list: refused with 403.
//!
//! The futures complete synchronously, so they are polled once with a no-op waker, the same
//! way for the floor and the layers, without an async runtime (the stores read tokio's
//! `Instant`, which is the system clock outside a runtime).
//!
//! Run with `cargo bench --bench traffic -- --warm-up-time 1 --measurement-time 3`.

#[path = "support/poll.rs"]
mod poll;

use poll::complete;
use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use portcullis::rate_limit::{Limit, LimitKey, Quota, RateLimitLayer};
use portcullis::shield::{BlockSource, BlockStore, BruteForce, MemoryBlockStore, ShieldLayer};
use portcullis::{AuthMethod, Principal};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A quota no benchmark run exhausts: a billion requests a second.
const HUGE: Quota = Quota::per_second(1_000_000_000);

async fn bare(request: Request<String>) -> Result<Response<String>, Infallible> {
    black_box(&request);
    Ok(Response::new(String::new()))
}

/// A service answering as a handler returning text does: with a `content-type`.
async fn text(request: Request<String>) -> Result<Response<String>, Infallible> {
    black_box(&request);
    let mut response = Response::new(String::new());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

fn send<S, ResBody>(service: &mut S, request: Request<String>) -> Response<ResBody>
where
    S: Service<Request<String>, Response = Response<ResBody>, Error = Infallible>,
{
    complete(async {
        match service.ready().await {
            Ok(ready) => ready.call(request).await,
            Err(never) => match never {},
        }
    })
    .unwrap_or_else(|never| match never {})
}

/// The time `layered` takes beyond `bare` for `iterations` requests: batches of 64 requests
/// to each, alternating, each batch timed; the layered batches' time minus the bare ones'.
/// Both see the same moments of a noisy machine, where two separate measurements may not.
fn difference<A, B, RA, RB>(
    iterations: u64,
    bare: &mut A,
    layered: &mut B,
    request: impl Fn() -> Request<String>,
) -> Duration
where
    A: Service<Request<String>, Response = Response<RA>, Error = Infallible>,
    B: Service<Request<String>, Response = Response<RB>, Error = Infallible>,
{
    const BATCH: u64 = 64;
    let mut bare_time = Duration::ZERO;
    let mut layered_time = Duration::ZERO;
    let mut done = 0;
    while done < iterations {
        let batch = BATCH.min(iterations - done);
        let started = std::time::Instant::now();
        for _ in 0..batch {
            black_box(send(bare, request()).status());
        }
        bare_time += started.elapsed();
        let started = std::time::Instant::now();
        for _ in 0..batch {
            black_box(send(layered, request()).status());
        }
        layered_time += started.elapsed();
        done += batch;
    }
    layered_time.saturating_sub(bare_time)
}

/// A fresh request from `peer`, carrying a clone of `principal`.
fn request(principal: &Principal, peer: SocketAddr) -> Request<String> {
    let mut request = Request::new(String::new());
    request.extensions_mut().insert(principal.clone());
    request.extensions_mut().insert(peer);
    request
}

fn limits(limit: Limit, fields: bool) -> RateLimitLayer {
    RateLimitLayer::builder()
        .limit(limit)
        .response_headers(fields)
        .build()
        .expect("valid limits")
}

fn rate_limit(c: &mut Criterion) {
    let principal = Principal::builder(
        "vera",
        AuthMethod::ApiKey {
            key_id: "k_01HZX3KQ8V5M2N7P4R6T".into(),
        },
    )
    .roles(["viewer"])
    .build();
    let peer: SocketAddr = "198.51.100.7:40000".parse().expect("address");
    let mut group = c.benchmark_group("rate_limit");

    let mut floor = service_fn(bare);
    group.bench_function("bare_service", |b| {
        b.iter(|| send(&mut floor, request(&principal, peer)).status());
    });

    let per_key = || Limit::new("per-key", LimitKey::ApiKey, HUGE);
    let mut keyed = limits(per_key(), true).layer(service_fn(bare));
    assert_eq!(
        send(&mut keyed, request(&principal, peer)).status(),
        StatusCode::OK
    );
    group.bench_function("one_keyed_limit", |b| {
        b.iter(|| send(&mut keyed, request(&principal, peer)).status());
    });

    let mut quiet = limits(per_key(), false).layer(service_fn(bare));
    group.bench_function("one_keyed_limit_no_fields", |b| {
        b.iter(|| send(&mut quiet, request(&principal, peer)).status());
    });

    let mut text_floor = service_fn(text);
    group.bench_function("text_service", |b| {
        b.iter(|| send(&mut text_floor, request(&principal, peer)).status());
    });
    let mut keyed_text = limits(per_key(), true).layer(service_fn(text));
    group.bench_function("one_keyed_limit_text_service", |b| {
        b.iter(|| send(&mut keyed_text, request(&principal, peer)).status());
    });

    // Beside a bare axum router, as the issue states the target: one route whose handler
    // answers text.
    let router = || {
        axum::Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .with_state(())
    };
    let mut router_floor = router();
    group.bench_function("router", |b| {
        b.iter(|| send(&mut router_floor, request(&principal, peer)).status());
    });
    let mut keyed_router = limits(per_key(), true).layer(router());
    assert_eq!(
        send(&mut keyed_router, request(&principal, peer)).status(),
        StatusCode::OK
    );
    group.bench_function("one_keyed_limit_router", |b| {
        b.iter(|| send(&mut keyed_router, request(&principal, peer)).status());
    });

    // The difference itself, measured on a noisy shared machine (see `difference`).
    let mut bare_router = router();
    let mut layered_router = limits(per_key(), true).layer(router());
    group.bench_function("one_keyed_limit_router_difference", |b| {
        b.iter_custom(|iterations| {
            difference(iterations, &mut bare_router, &mut layered_router, || {
                request(&principal, peer)
            })
        });
    });
    let mut quiet_router = limits(per_key(), false).layer(router());
    group.bench_function("one_keyed_limit_no_fields_router_difference", |b| {
        b.iter_custom(|iterations| {
            difference(iterations, &mut bare_router, &mut quiet_router, || {
                request(&principal, peer)
            })
        });
    });

    let per_ip = Limit::new("per-ip", LimitKey::ClientIp, HUGE);
    let mut by_ip = limits(per_ip, true).layer(service_fn(bare));
    group.bench_function("one_ip_limit", |b| {
        b.iter(|| send(&mut by_ip, request(&principal, peer)).status());
    });
    group.finish();
}

fn shield(c: &mut Criterion) {
    let principal = Principal::builder("vera", AuthMethod::Bearer).build();
    let open: SocketAddr = "198.51.100.7:40000".parse().expect("address");
    let blocked: SocketAddr = "203.0.113.9:40000".parse().expect("address");
    let denied: SocketAddr = "192.0.2.1:40000".parse().expect("address");

    // A one-hour block: the default 60 s could end in the middle of a measurement.
    let policy = BruteForce::new()
        .threshold(3, Duration::from_secs(600))
        .block_for(Duration::from_secs(3600), Duration::from_secs(3600));
    let store = Arc::new(MemoryBlockStore::new(100_000));
    for _ in 0..3 {
        let source = BlockSource::Ip(blocked.ip());
        complete(store.record_failure(&source, &policy));
    }
    let layer = ShieldLayer::builder()
        .deny(["192.0.2.0/24"])
        .brute_force(policy.store(store))
        .build()
        .expect("valid shield");
    let mut shielded = layer.layer(service_fn(bare));
    assert_eq!(
        send(&mut shielded, request(&principal, open)).status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut shielded, request(&principal, blocked)).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&mut shielded, request(&principal, denied)).status(),
        StatusCode::FORBIDDEN
    );

    let mut group = c.benchmark_group("shield");
    let mut floor = service_fn(bare);
    group.bench_function("bare_service", |b| {
        b.iter(|| send(&mut floor, request(&principal, open)).status());
    });
    group.bench_function("open_source", |b| {
        b.iter(|| send(&mut shielded, request(&principal, open)).status());
    });
    group.bench_function("blocked_source", |b| {
        b.iter(|| send(&mut shielded, request(&principal, blocked)).status());
    });
    group.bench_function("ip_denied", |b| {
        b.iter(|| send(&mut shielded, request(&principal, denied)).status());
    });
    group.finish();
}

criterion_group!(benches, rate_limit, shield);
criterion_main!(benches);
