//! The end of every layer's response future: the inner service's future, or a rendered
//! rejection. Authorization decides synchronously and is nothing more; authentication and
//! validation wait first (on authenticators, on the body), then end here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, Response};
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

pin_project! {
    /// The response future of a layer that has decided: the inner service's future, or a
    /// ready rejection.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        // Boxed: both are rare, and every layer's future would otherwise carry a whole
        // header map and response inline (the gateway's future was 760 bytes).
        Inner { #[pin] future: F, headers: Option<Box<HeaderMap>> },
        Rejected { response: Option<Box<Response<Bytes>>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                headers: None,
            },
        }
    }

    /// The inner service's future, with `headers` appended to its response (a refreshed
    /// session cookie).
    pub(crate) fn inner_with_headers(future: F, headers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                headers: headers.map(Box::new),
            },
        }
    }

    /// A response decided here: a rejection, or an authenticator's own answer.
    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(Box::new(response)),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, headers } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(headers) = headers.take() {
                    append_headers(response.headers_mut(), *headers);
                }
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Rejected { response } => {
                let response = response
                    .take()
                    .map_or_else(Response::default, |boxed| *boxed);
                Poll::Ready(Ok(response.map(ResponseBody::rejection)))
            }
        }
    }
}

/// Appends every value of `extra` to `headers`, keeping what is there.
pub(crate) fn append_headers(headers: &mut HeaderMap, extra: HeaderMap) {
    let mut name = None;
    for (next, value) in extra {
        if let Some(next) = next {
            name = Some(next);
        }
        if let Some(name) = &name {
            headers.append(name, value);
        }
    }
}
