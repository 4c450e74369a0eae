//! Readiness: whether an authenticator can answer now (its keys loaded, its store
//! reachable), for a readiness probe.

use std::borrow::Cow;
use std::fmt;

use std::future::Future;
use std::pin::Pin;

/// Why an authenticator cannot answer yet: its keys are not loaded, its store does not
/// answer. Meant for a readiness probe's log and body; never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    reason: Cow<'static, str>,
}

impl NotReady {
    /// Not ready, because of `reason` (`"the keys of https://idp.example are not loaded"`).
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Why.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NotReady {}

/// The answer of a readiness check. Boxed: readiness is asked by probes, never on a
/// request's path.
pub type ReadyFuture = Pin<Box<dyn Future<Output = Result<(), NotReady>> + Send>>;

/// Ready, at once.
pub(crate) fn ready() -> ReadyFuture {
    Box::pin(std::future::ready(Ok(())))
}
