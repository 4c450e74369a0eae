//! [`StoreFuture`]: what the traffic stores (rate-limit and brute-force state) answer with.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future a traffic store ([`RateLimitStore`](crate::rate_limit::RateLimitStore),
/// [`BlockStore`](crate::shield::BlockStore)) returns.
///
/// [`StoreFuture::ready`] costs nothing (the in-process stores answer at once);
/// [`StoreFuture::new`] boxes an `async` block for a store that waits on a server (one
/// round trip per call).
pub struct StoreFuture<T> {
    state: State<T>,
}

enum State<T> {
    Ready(Option<T>),
    Boxed(Pin<Box<dyn Future<Output = T> + Send>>),
}

impl<T> StoreFuture<T> {
    /// An answer known without waiting.
    #[must_use]
    pub fn ready(value: T) -> Self {
        Self {
            state: State::Ready(Some(value)),
        }
    }

    /// An answer that needs to wait on a server.
    pub fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            state: State::Boxed(Box::pin(future)),
        }
    }

    /// The answer, when it is known without waiting; else the future back.
    pub(crate) fn into_ready(self) -> Result<T, Self> {
        match self.state {
            State::Ready(Some(value)) => Ok(value),
            state => Err(Self { state }),
        }
    }
}

impl<T: Default> Future for StoreFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // `State` holds no self-references: the boxed future is pinned on the heap.
        let this = Pin::into_inner(self);
        match &mut this.state {
            // Polled again after completion: the default answer rather than a panic.
            State::Ready(value) => Poll::Ready(value.take().unwrap_or_default()),
            State::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> Unpin for StoreFuture<T> {}

impl<T> fmt::Debug for StoreFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Boxed(_) => "pending",
        };
        f.debug_struct("StoreFuture")
            .field("state", &state)
            .finish()
    }
}
