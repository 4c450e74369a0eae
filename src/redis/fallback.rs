//! [`Fallback`]: what the counting stores (rate limits, brute-force blocks) do while Redis
//! cannot answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a counting store on Redis does while Redis cannot be reached or does not answer
/// within the command timeout. Kong's `fault_tolerant` is the model. Key lookups and
/// sessions have no such choice: they always fail closed (503).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// Count in this process instead (the same algorithm, per instance: a limit of N/s
    /// becomes at most N/s per instance, a block applies on the instance that saw the
    /// failures). The default: protection degrades, it does not vanish.
    #[default]
    Local,
    /// Let every request through uncounted, unblocked.
    Open,
    /// Refuse (rate limits: 429; brute force: every source is treated as blocked), for
    /// services where an unmetered request costs more than a refused one.
    Closed,
}

/// At most one warning per second about one store's outage: loud, not a flood.
#[derive(Debug, Default)]
pub(crate) struct OutageLog {
    last_second: AtomicU64,
}

impl OutageLog {
    pub(crate) fn failed(
        &self,
        store: &'static str,
        fallback: Fallback,
        error: &dyn std::fmt::Display,
    ) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if self.last_second.swap(now, Ordering::Relaxed) != now {
            tracing::error!(
                target: "portcullis::redis",
                store,
                fallback = ?fallback,
                %error,
                "Redis unavailable: falling back"
            );
        }
    }
}
