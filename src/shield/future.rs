//! [`ResponseFuture`]: waits on a block store that does not answer at once, on the service,
//! and on the store again to count a failure.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::brute_force::{BlockSource, BlockState, FailureCount};
use super::checks::{Block, Checks, is_failure};
use super::layer::{Config, Sources};
use crate::body::{ResponseBody, unreachable_response};
use crate::observe::BlockAction;
use crate::store::StoreFuture;

/// A request waiting on the block store before it goes on.
pub(super) struct Pending<S, B> {
    pub(super) config: Arc<Config>,
    pub(super) service: S,
    pub(super) request: Request<B>,
    pub(super) sources: Sources,
    pub(super) checks: Checks,
}

/// A failed response, its failures being counted source by source.
struct Recording<R> {
    config: Arc<Config>,
    sources: Sources,
    /// The source being counted now.
    current: usize,
    response: Option<R>,
}

pin_project! {
    /// The response future of [`Shield`].
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
        // Boxed: only a store that waits takes this path, and the future stays small.
        Checking { state: StoreFuture<BlockState>, pending: Option<Box<Pending<S, B>>> },
        Calling {
            #[pin] future: S::Future,
            // Set when failures of the sources are counted.
            tracked: Option<(Arc<Config>, Sources)>,
        },
        Recording {
            record: StoreFuture<FailureCount>,
            recording: Box<Recording<S::Response>>,
        },
        Answered { response: Option<Response<Bytes>> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn checking(state: StoreFuture<BlockState>, pending: Box<Pending<S, B>>) -> Self {
        Self {
            state: State::Checking {
                state,
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

    pub(super) fn calling(future: S::Future, tracked: Option<(Arc<Config>, Sources)>) -> Self {
        Self {
            state: State::Calling { future, tracked },
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

/// The next source of `sources` from `from` on, with its position.
fn source_from(sources: &Sources, from: usize) -> Option<(usize, &BlockSource)> {
    sources
        .iter()
        .enumerate()
        .skip(from)
        .find_map(|(index, source)| source.as_ref().map(|source| (index, source)))
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
                StateProj::Checking {
                    state: check,
                    pending,
                } => {
                    let block = ready!(Pin::new(&mut *check).poll(cx));
                    let Some(waiting) = pending.as_mut() else {
                        return Poll::Ready(
                            Ok(unreachable_response().map(ResponseBody::rejection)),
                        );
                    };
                    let Pending {
                        config,
                        request,
                        sources,
                        checks,
                        ..
                    } = &mut **waiting;
                    // The source just answered is the one before `checks.index`.
                    let answered = checks
                        .index
                        .checked_sub(1)
                        .and_then(|i| sources[i].as_ref());
                    if let Some(source) = answered
                        && let Some(response) = checks.decide(config, request, source, block)
                    {
                        state.set(State::Answered {
                            response: Some(response),
                        });
                        continue;
                    }
                    if let Some(next) = checks.next_source(sources) {
                        if let Some((_, store)) = &config.brute_force {
                            *check = store.state(next);
                        }
                        continue;
                    }
                    let Some(done) = pending.take() else { continue };
                    let Pending {
                        config,
                        mut service,
                        request,
                        sources,
                        checks,
                    } = *done;
                    checks.pass(&config, &request);
                    state.set(State::Calling {
                        future: service.call(request),
                        tracked: Some((config, sources)),
                    });
                }
                StateProj::Calling { future, tracked } => {
                    let response = ready!(future.poll(cx))?;
                    let failed = tracked.is_some() && is_failure(&response);
                    let (true, Some((config, sources))) = (failed, tracked.take()) else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    let (Some((policy, store)), Some((current, source))) =
                        (&config.brute_force, source_from(&sources, 0))
                    else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    let record = store.record_failure(source, policy);
                    state.set(State::Recording {
                        record,
                        recording: Box::new(Recording {
                            config,
                            sources,
                            current,
                            response: Some(response),
                        }),
                    });
                }
                StateProj::Recording { record, recording } => {
                    let count = ready!(Pin::new(&mut *record).poll(cx));
                    let Recording {
                        config,
                        sources,
                        current,
                        response,
                    } = &mut **recording;
                    let Some((policy, store)) = &config.brute_force else {
                        return Poll::Ready(
                            Ok(unreachable_response().map(ResponseBody::rejection)),
                        );
                    };
                    if let (Some((offence, duration)), Some(source)) =
                        (count.blocked, sources[*current].as_ref())
                    {
                        Block::new(BlockAction::Blocked, count.failures, offence, duration)
                            .report(config, policy, source);
                    }
                    if let Some((next, source)) = source_from(sources, *current + 1) {
                        *current = next;
                        *record = store.record_failure(source, policy);
                        continue;
                    }
                    let response = response.take().map_or_else(
                        || unreachable_response().map(ResponseBody::rejection),
                        |response| response.map(ResponseBody::inner),
                    );
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
