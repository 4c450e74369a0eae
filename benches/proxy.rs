//! What the identity token costs per request: the proxy to a real upstream on the loopback
//! (an axum server answering `ok`), without the token (the identity headers only) and with
//! it, in the same run; and signing one token alone.
//!
//! Each measurement sends one request through the proxy (a pooled keep-alive connection to
//! the upstream, on a current-thread runtime that also runs the upstream) and reads the
//! response body. The token's cost is `with_token` minus `headers_only`; `sign` is the
//! ECDSA P-256 signature and the claims' JSON alone.
//!
//! Run with `cargo bench --features identity-token --bench proxy -- --warm-up-time 1
//! --measurement-time 3`.

#![allow(missing_docs, clippy::expect_used)]

use std::future::IntoFuture;
use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis::proxy::{IdentityToken, Proxy};
use portcullis::{AuthMethod, Principal};
use tower::ServiceExt;

fn principal() -> Principal {
    Principal::builder("ada", AuthMethod::Bearer)
        .roles(["member", "viewer"])
        .scopes(["orders:read", "orders:write"])
        .build()
}

async fn send(proxy: &Proxy, principal: &Principal) {
    let mut request = Request::get("/orders?page=2")
        .body(Body::empty())
        .expect("request");
    request.extensions_mut().insert(principal.clone());
    let response = proxy.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    black_box(body);
}

fn proxy(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = runtime.block_on(async {
        let app = Router::new().fallback(|| async { "ok" });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(axum::serve(listener, app).into_future());
        format!("http://{address}")
    });
    let token = IdentityToken::builder(
        IdentityToken::example_key_pem(),
        "https://gateway.example.com",
        "orders-service",
    )
    .build()
    .expect("token");
    let (plain, signed) = {
        let _entered = runtime.enter();
        (
            Proxy::builder(upstream.as_str()).build().expect("proxy"),
            Proxy::builder(upstream.as_str())
                .identity_token(token.clone())
                .build()
                .expect("proxy"),
        )
    };
    let principal = principal();
    // Opens the pooled connections before measuring.
    runtime.block_on(send(&plain, &principal));
    runtime.block_on(send(&signed, &principal));

    let mut group = c.benchmark_group("proxy");
    group.bench_function("headers_only", |b| {
        b.iter(|| runtime.block_on(send(&plain, &principal)));
    });
    group.bench_function("with_token", |b| {
        b.iter(|| runtime.block_on(send(&signed, &principal)));
    });
    // Again, to see how far the shared machine drifted during the run.
    group.bench_function("headers_only_again", |b| {
        b.iter(|| runtime.block_on(send(&plain, &principal)));
    });
    group.finish();

    c.bench_function("identity_token/sign", |b| {
        b.iter(|| black_box(token.sign(black_box(&principal)).expect("signs")));
    });
}

criterion_group!(benches, proxy);
criterion_main!(benches);
