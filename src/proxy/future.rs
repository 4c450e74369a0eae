//! [`ResponseFuture`]: the upstream's response head, or 502 / 504.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::client::legacy;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::headers::remove_hop_by_hop;
use crate::body::ResponseBody;
use crate::rejection::{Reason, Rejection, RejectionResponse};

pin_project! {
    /// The future of [`Proxy`](super::Proxy): the upstream's response, its body streamed,
    /// or a 502 / 504 rejection.
    pub struct ResponseFuture {
        #[pin]
        state: State,
        renderer: Arc<dyn RejectionResponse>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Upstream {
            #[pin]
            upstream: legacy::ResponseFuture,
            #[pin]
            deadline: Sleep,
        },
        Unreachable,
        /// Answered by the proxy itself.
        Local { response: Option<Response<ResponseBody<Incoming>>> },
        /// Refused before the upstream was asked.
        Refused { rejection: Option<Rejection> },
    }
}

impl ResponseFuture {
    pub(super) fn new(
        upstream: legacy::ResponseFuture,
        deadline: Sleep,
        renderer: Arc<dyn RejectionResponse>,
    ) -> Self {
        Self {
            state: State::Upstream { upstream, deadline },
            renderer,
        }
    }

    /// A refusal without asking the upstream.
    pub(super) fn refused(rejection: Rejection, renderer: Arc<dyn RejectionResponse>) -> Self {
        Self {
            state: State::Refused {
                rejection: Some(rejection),
            },
            renderer,
        }
    }

    /// The proxy's own answer (the JWKS).
    #[cfg(feature = "identity-token")]
    pub(super) fn local(
        response: Response<ResponseBody<Incoming>>,
        renderer: Arc<dyn RejectionResponse>,
    ) -> Self {
        Self {
            state: State::Local {
                response: Some(response),
            },
            renderer,
        }
    }

    /// A 502 without asking the upstream: the request could not be addressed to it.
    pub(super) fn unreachable(renderer: Arc<dyn RejectionResponse>) -> Self {
        Self {
            state: State::Unreachable,
            renderer,
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ResponseFuture");
        if let State::Upstream { deadline, .. } = &self.state {
            debug.field("deadline", &deadline.deadline());
        }
        debug.finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody<Incoming>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (upstream, deadline) = match this.state.project() {
            StateProj::Upstream { upstream, deadline } => (upstream, deadline),
            StateProj::Unreachable => {
                return Poll::Ready(Ok(render(&bad_gateway(), &**this.renderer)));
            }
            StateProj::Local { response } => {
                return Poll::Ready(Ok(response
                    .take()
                    .unwrap_or_else(|| render(&bad_gateway(), &**this.renderer))));
            }
            StateProj::Refused { rejection } => {
                let rejection = rejection.take().unwrap_or_else(bad_gateway);
                return Poll::Ready(Ok(render(&rejection, &**this.renderer)));
            }
        };
        match upstream.poll(cx) {
            Poll::Ready(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                return Poll::Ready(Ok(Response::from_parts(parts, ResponseBody::inner(body))));
            }
            Poll::Ready(Err(error)) => {
                tracing::warn!(
                    target: "portcullis::proxy",
                    error = %error,
                    connect = error.is_connect(),
                    "the upstream could not be reached or did not answer"
                );
                return Poll::Ready(Ok(render(&bad_gateway(), &**this.renderer)));
            }
            Poll::Pending => {}
        }
        match deadline.poll(cx) {
            Poll::Ready(()) => {
                tracing::warn!(
                    target: "portcullis::proxy",
                    "the upstream did not answer in time"
                );
                let rejection = Rejection::new(Reason::Unavailable)
                    .with_status(StatusCode::GATEWAY_TIMEOUT)
                    .with_cause("upstream_timeout")
                    .with_detail("The upstream service did not answer in time.");
                Poll::Ready(Ok(render(&rejection, &**this.renderer)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// 502: the upstream could not be reached, or dropped the connection before its head.
fn bad_gateway() -> Rejection {
    Rejection::new(Reason::Unavailable)
        .with_status(StatusCode::BAD_GATEWAY)
        .with_cause("upstream_unreachable")
        .with_detail("The upstream service could not be reached.")
}

/// The rejection's response, with a body of the proxy's type.
pub(super) fn render(
    rejection: &Rejection,
    renderer: &dyn RejectionResponse,
) -> Response<ResponseBody<Incoming>> {
    rejection.render(renderer).map(ResponseBody::rejection)
}
