//! The response future of [`GatewaySecurity`](super::GatewaySecurity): the stack's own, or
//! (with the `cors` feature) CORS's around it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::stages::StagesFuture;
use super::{Core, CoreBody, Lean, LeanBody, OuterBody, Stack};

#[cfg(feature = "cors")]
pin_project! {
    /// The response future of [`GatewaySecurity`](super::GatewaySecurity).
    pub struct ResponseFuture<S, B>
    where
        Stack<S>: Service<Request<B>>,
        Core<S>: Service<Request<B>>,
        Lean<S>: Service<Request<B>>,
    {
        #[pin]
        kind: Kind<S, B>,
    }
}

#[cfg(feature = "cors")]
pin_project! {
    #[project = KindProj]
    enum Kind<S, B>
    where
        Stack<S>: Service<Request<B>>,
        Core<S>: Service<Request<B>>,
        Lean<S>: Service<Request<B>>,
    {
        Plain { #[pin] future: StagesFuture<S, B> },
        Cors { #[pin] future: tower_http::cors::ResponseFuture<StagesFuture<S, B>> },
    }
}

#[cfg(not(feature = "cors"))]
pin_project! {
    /// The response future of [`GatewaySecurity`](super::GatewaySecurity).
    pub struct ResponseFuture<S, B>
    where
        Stack<S>: Service<Request<B>>,
        Core<S>: Service<Request<B>>,
        Lean<S>: Service<Request<B>>,
    {
        #[pin]
        future: StagesFuture<S, B>,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    Stack<S>: Service<Request<B>>,
    Core<S>: Service<Request<B>>,
    Lean<S>: Service<Request<B>>,
{
    #[cfg(feature = "cors")]
    pub(super) fn plain(future: StagesFuture<S, B>) -> Self {
        Self {
            kind: Kind::Plain { future },
        }
    }

    #[cfg(not(feature = "cors"))]
    pub(super) fn plain(future: StagesFuture<S, B>) -> Self {
        Self { future }
    }

    #[cfg(feature = "cors")]
    pub(super) fn cors(future: tower_http::cors::ResponseFuture<StagesFuture<S, B>>) -> Self {
        Self {
            kind: Kind::Cors { future },
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    Stack<S>: Service<Request<B>>,
    Core<S>: Service<Request<B>>,
    Lean<S>: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody, E> Future for ResponseFuture<S, B>
where
    Stack<S>: Service<Request<B>, Response = Response<OuterBody<ResBody>>, Error = E>,
    Core<S>: Service<Request<B>, Response = Response<CoreBody<ResBody>>, Error = E>,
    Lean<S>: Service<Request<B>, Response = Response<LeanBody<ResBody>>, Error = E>,
{
    type Output = Result<Response<OuterBody<ResBody>>, E>;

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
