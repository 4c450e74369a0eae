//! Accepting connections for `portcullis serve`: HTTP/1.1 with a bound on everything a
//! client controls: how long it may take to send a request head (or sit idle between
//! requests), how large the head may be, and how many connections are open at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_service::Service;

/// What a client may hold of the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The longest a client may take to send a request head, or stay idle between
    /// requests, before its connection is closed.
    pub(crate) header_timeout: Duration,
    /// The most connections open at once; more wait in the kernel's queue until one closes.
    pub(crate) max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(20),
            max_connections: 4096,
        }
    }
}

/// The largest request head read, in bytes: beyond it the connection gets 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Pause after a failed `accept` (no file descriptor left, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish
/// their requests for up to `grace`.
///
/// # Errors
///
/// Requests still running after `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> Result<(), String> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    loop {
        // A permit first: at the cap, connections wait to be accepted.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), with_peer(app.clone(), peer));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection ends in an error when its client goes away or is too slow:
            // nothing to do but close it.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Ok(()),
        () = tokio::time::sleep(grace) => {
            Err(format!("requests still running after {grace:?}; stopped anyway"))
        }
    }
}

/// Until `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// `app`, with the connection's peer address in each request's extensions (axum's
/// `ConnectInfo`, where the gateway's shield and the proxy read the client's address).
fn with_peer(
    app: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { app.call(request).await }
    })
}
