//! [`Stacked`]: the gateway's stack of layers, entered at authentication when every stage
//! before it (shield, per-IP limits, login) is a pass-through.
//!
//! A pass-through stage decides nothing, yet as a layer it still takes the request, wraps
//! the inner future in its own and the response body in its own: each level moves the
//! request, the future and the response once more. When none of those stages is configured,
//! the gateway calls the stack's core (authentication, authorization, the per-identity
//! limits and validation) itself, and wraps only the response body, so the response has the
//! same type either way.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{Core, CoreBody, InnerBody, OuterBody, Stack};

/// The gateway's stack, and whether its requests go straight to its core.
#[derive(Clone)]
pub(super) struct Stacked<S> {
    stack: Stack<S>,
    /// Every stage before authentication is a pass-through: set when the gateway is layered
    /// around its service, never changed.
    at_core: bool,
}

impl<S> Stacked<S> {
    pub(super) fn new(stack: Stack<S>, at_core: bool) -> Self {
        Self { stack, at_core }
    }

    /// The stages from authentication on, inside the pass-through ones.
    fn core(&mut self) -> &mut Core<S> {
        let stack = &mut self.stack;
        #[cfg(feature = "shield")]
        let stack = stack.get_mut();
        #[cfg(feature = "rate-limit")]
        let stack = stack.get_mut();
        #[cfg(feature = "oidc")]
        let stack = stack.get_mut();
        stack
    }
}

impl<S: fmt::Debug> fmt::Debug for Stacked<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stacked")
            .field("stack", &self.stack)
            .field("at_core", &self.at_core)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for Stacked<S>
where
    S: Service<Request<InnerBody<B>>, Response = Response<ResBody>> + Clone,
    Stack<S>: Service<Request<B>, Response = Response<OuterBody<ResBody>>, Error = S::Error>,
    Core<S>: Service<Request<B>, Response = Response<CoreBody<ResBody>>, Error = S::Error>,
{
    type Response = Response<OuterBody<ResBody>>;
    type Error = S::Error;
    type Future = StackFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // The stages before the core keep no readiness of their own: each asks the one
        // inside it, so the core is ready when the whole stack is.
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.at_core {
            StackFuture::Core {
                future: self.core().call(request),
            }
        } else {
            StackFuture::Whole {
                future: self.stack.call(request),
            }
        }
    }
}

pin_project! {
    /// The response future of [`Stacked`]: the whole stack's, or its core's.
    #[project = StackProj]
    pub(super) enum StackFuture<S, B>
    where
        Stack<S>: Service<Request<B>>,
        Core<S>: Service<Request<B>>,
    {
        Whole { #[pin] future: <Stack<S> as Service<Request<B>>>::Future },
        Core { #[pin] future: <Core<S> as Service<Request<B>>>::Future },
    }
}

impl<S, B, ResBody, E> Future for StackFuture<S, B>
where
    Stack<S>: Service<Request<B>, Response = Response<OuterBody<ResBody>>, Error = E>,
    Core<S>: Service<Request<B>, Response = Response<CoreBody<ResBody>>, Error = E>,
{
    type Output = Result<Response<OuterBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StackProj::Whole { future } => future.poll(cx),
            StackProj::Core { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(outer_body))),
        }
    }
}

/// The core's response body as the whole stack's: the body each pass-through stage would
/// have wrapped it in.
fn outer_body<B>(body: CoreBody<B>) -> OuterBody<B> {
    #[cfg(feature = "oidc")]
    let body = crate::body::ResponseBody::inner(body);
    #[cfg(feature = "rate-limit")]
    let body = crate::body::ResponseBody::inner(body);
    #[cfg(feature = "shield")]
    let body = crate::body::ResponseBody::inner(body);
    body
}
