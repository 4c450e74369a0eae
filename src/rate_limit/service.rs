//! [`RateLimit`]: the service, deciding in `call` while the store answers at once.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::checks::{Check, Evaluation, Head};
use super::future::{Pending, ResponseFuture};
use super::layer::Config;
use crate::body::ResponseBody;

/// The service made by [`RateLimitLayer`](super::RateLimitLayer).
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RateLimit<S> {
    pub(super) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the layer's service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let config = &*self.config;
        if config.limits.is_empty() {
            return ResponseFuture::calling(self.inner.call(request), None);
        }
        let mut evaluation = Evaluation::new();
        let head = Head::of(&request);
        // The in-process store answers at once: decide here, without moving the request
        // into the future, while every answer is ready.
        while let Some(check) = evaluation.next_check(config, head) {
            match check.answer.into_ready() {
                Ok(state) => {
                    if let Some(response) =
                        evaluation.absorb(config, head, check.limit, check.tier, state)
                    {
                        return ResponseFuture::answered(response);
                    }
                }
                Err(answer) => {
                    let clone = self.inner.clone();
                    let service = mem::replace(&mut self.inner, clone);
                    return ResponseFuture::checking(Box::new(Pending {
                        config: self.config.clone(),
                        evaluation,
                        check: Check { answer, ..check },
                        request,
                        service,
                    }));
                }
            }
        }
        match evaluation.finish(config, head) {
            Ok(headers) => ResponseFuture::calling(self.inner.call(request), headers),
            Err(refusal) => ResponseFuture::answered(*refusal),
        }
    }
}
