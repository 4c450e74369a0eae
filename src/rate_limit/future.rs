//! [`ResponseFuture`]: waits on a store that does not answer at once, then on the service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::checks::{Check, Evaluation, Head};
use super::headers::{RATELIMIT, RATELIMIT_POLICY};
use super::layer::Config;
use crate::body::{ResponseBody, unreachable_response};

pub(super) struct Pending<S, B> {
    pub(super) config: Arc<Config>,
    pub(super) evaluation: Evaluation,
    pub(super) check: Check,
    pub(super) request: Request<B>,
    pub(super) service: S,
}

pin_project! {
    /// The response future of [`RateLimit`].
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // Boxed: only a store that waits takes this path, and the future stays small
        // (cheap to move) for the in-process one.
        Checking { pending: Option<Box<Pending<S, B>>> },
        Calling { #[pin] future: S::Future, headers: Option<[HeaderValue; 2]> },
        Answered { response: Option<Response<Bytes>> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn checking(pending: Box<Pending<S, B>>) -> Self {
        Self {
            state: State::Checking {
                pending: Some(pending),
            },
        }
    }

    pub(super) fn answered(response: Response<Bytes>) -> Self {
        Self {
            state: State::Answered {
                response: Some(response),
            },
        }
    }

    pub(super) fn calling(future: S::Future, headers: Option<[HeaderValue; 2]>) -> Self {
        Self {
            state: State::Calling { future, headers },
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Answered { response } => {
                    let response = response.take().unwrap_or_else(unreachable_response);
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Calling { future, headers } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some([policy, current]) = headers.take() {
                        let map = response.headers_mut();
                        map.append(RATELIMIT_POLICY, policy);
                        map.append(RATELIMIT, current);
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Checking { pending } => {
                    let Some(waiting) = pending.as_mut() else {
                        return Poll::Ready(
                            Ok(unreachable_response().map(ResponseBody::rejection)),
                        );
                    };
                    let answer = ready!(Pin::new(&mut waiting.check.answer).poll(cx));
                    let (limit, tier) = (waiting.check.limit, waiting.check.tier);
                    let refusal = waiting.evaluation.absorb(
                        &waiting.config,
                        Head::of(&waiting.request),
                        limit,
                        tier,
                        answer,
                    );
                    if let Some(response) = refusal {
                        state.set(State::Answered {
                            response: Some(response),
                        });
                        continue;
                    }
                    if let Some(next) = waiting
                        .evaluation
                        .next_check(&waiting.config, Head::of(&waiting.request))
                    {
                        waiting.check = next;
                        continue;
                    }
                    let Some(done) = pending.take().map(|done| *done) else {
                        continue;
                    };
                    let headers = match done
                        .evaluation
                        .finish(&done.config, Head::of(&done.request))
                    {
                        Ok(headers) => headers,
                        Err(refusal) => {
                            state.set(State::Answered {
                                response: Some(*refusal),
                            });
                            continue;
                        }
                    };
                    let mut service = done.service;
                    let future = service.call(done.request);
                    state.set(State::Calling { future, headers });
                }
            }
        }
    }
}
