//! The response future of [`GatewaySecurity`](super::GatewaySecurity): the stack's own, or
//! (with the `cors` feature) CORS's around it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

#[cfg(feature = "cors")]
pin_project! {
    /// The response future of [`GatewaySecurity`](super::GatewaySecurity).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

#[cfg(feature = "cors")]
pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Plain { #[pin] future: F },
        Cors { #[pin] future: tower_http::cors::ResponseFuture<F> },
    }
}

#[cfg(not(feature = "cors"))]
pin_project! {
    /// The response future of [`GatewaySecurity`](super::GatewaySecurity).
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
    }
}

impl<F> ResponseFuture<F> {
    #[cfg(feature = "cors")]
    pub(super) fn plain(future: F) -> Self {
        Self {
            kind: Kind::Plain { future },
        }
    }

    #[cfg(not(feature = "cors"))]
    pub(super) fn plain(future: F) -> Self {
        Self { future }
    }

    #[cfg(feature = "cors")]
    pub(super) fn cors(future: tower_http::cors::ResponseFuture<F>) -> Self {
        Self {
            kind: Kind::Cors { future },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: Default,
{
    type Output = Result<http::Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        #[cfg(feature = "cors")]
        return match self.project().kind.project() {
            KindProj::Plain { future } => future.poll(cx),
            KindProj::Cors { future } => future.poll(cx),
        };
        #[cfg(not(feature = "cors"))]
        return self.project().future.poll(cx);
    }
}
