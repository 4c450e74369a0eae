//! The end-to-end measurement's server: the same axum routes served bare on one port,
//! behind the gateway applied with `Router::layer` on another, and with the gateway wrapped
//! around the whole router on a third, by one process on a single-threaded runtime (pin it
//! to one core). `scripts/bench-e2e.sh` runs it and drives it with `wrk`.
//!
//! ```text
//! cargo run --release --example bench_server -- [BARE_PORT] [GATED_PORT] [WRAPPED_PORT]
//! ```
//!
//! Ports default to 8081 (bare), 8082 (`Router::layer`) and 8083 (wrapped). At start it prints one line per
//! credential, `api_key=<key>` and `token=<jwt>`, then `ready`; the scenarios and routes
//! are described in `benches/support/e2e_app.rs`. It writes the `POST` body to the file
//! named by `BENCH_BODY_FILE` when set, for the load generator. Logs only with `RUST_LOG`.

#![allow(missing_docs, clippy::expect_used, clippy::print_stdout)]

#[path = "../benches/support/orders.rs"]
mod orders;

#[path = "../benches/support/e2e_app.rs"]
#[allow(dead_code)]
mod e2e_app;

use std::io::Write;

use axum::body::Body;
use axum::response::IntoResponse;
use http::Request;
use tokio::net::TcpListener;
use tower::ServiceExt;

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let mut args = std::env::args().skip(1);
    let bare_port: u16 = args.next().map_or(8081, |p| p.parse().expect("port"));
    let gated_port: u16 = args.next().map_or(8082, |p| p.parse().expect("port"));
    let wrapped_port: u16 = args.next().map_or(8083, |p| p.parse().expect("port"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (gated, wrapped, fixture) = e2e_app::gated_routers().await;
        let bare = e2e_app::bare_router();
        let bare_listener = TcpListener::bind(("127.0.0.1", bare_port))
            .await
            .expect("bind bare port");
        let gated_listener = TcpListener::bind(("127.0.0.1", gated_port))
            .await
            .expect("bind gated port");
        let wrapped_listener = TcpListener::bind(("127.0.0.1", wrapped_port))
            .await
            .expect("bind wrapped port");
        if let Some(path) = std::env::var_os("BENCH_BODY_FILE") {
            std::fs::write(path, &fixture.body).expect("write body file");
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "api_key={}", fixture.api_key).expect("stdout");
        writeln!(out, "token={}", fixture.token).expect("stdout");
        writeln!(out, "ready").expect("stdout");
        out.flush().expect("stdout");
        drop(out);
        let bare = tokio::spawn(async move { axum::serve(bare_listener, bare).await });
        let gated = tokio::spawn(async move { axum::serve(gated_listener, gated).await });
        // `axum::serve` wants axum's own response body.
        let wrapped =
            ServiceExt::<Request<Body>>::map_response(wrapped, IntoResponse::into_response);
        let wrapped = tokio::spawn(async move {
            axum::serve(
                wrapped_listener,
                axum::ServiceExt::<Request<Body>>::into_make_service(wrapped),
            )
            .await
        });
        tokio::select! {
            result = bare => result.expect("bare server").expect("serve"),
            result = gated => result.expect("gated server").expect("serve"),
            result = wrapped => result.expect("wrapped server").expect("serve"),
            _ = tokio::signal::ctrl_c() => {}
        }
    });
}
