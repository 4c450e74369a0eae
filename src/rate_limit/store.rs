//! [`RateLimitStore`]: where the buckets live.

use std::time::Duration;

use super::limit::{BucketKey, Quota};
use crate::store::StoreFuture;

/// One check of one bucket, as a [`RateLimitStore`] receives it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LimitCheck<'a> {
    /// The limit's name: buckets of different limits never mix.
    pub limit: &'a str,
    /// The bucket.
    pub key: &'a BucketKey,
    /// The quota that applies to this request (its tier's).
    pub quota: Quota,
    /// When the request is counted, on tokio's clock: read once by the layer for all of a
    /// request's checks (and its decision's timing). An in-process store counts with it; a
    /// shared one counts with its own clock.
    pub now: tokio::time::Instant,
}

impl<'a> LimitCheck<'a> {
    /// A check of `key`'s bucket of `limit` under `quota`, now (for testing a store).
    #[must_use]
    pub fn new(limit: &'a str, key: &'a BucketKey, quota: Quota) -> Self {
        Self::at(limit, key, quota, tokio::time::Instant::now())
    }

    /// A check of `key`'s bucket of `limit` under `quota`, counted at `now`.
    #[must_use]
    pub fn at(limit: &'a str, key: &'a BucketKey, quota: Quota, now: tokio::time::Instant) -> Self {
        Self {
            limit,
            key,
            quota,
            now,
        }
    }
}

/// A bucket's answer: whether the request fits, and what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitState {
    /// Whether the request fits (and was counted).
    pub allowed: bool,
    /// Requests that would still fit in a burst right now.
    pub remaining: u32,
    /// When refused: how long until one request fits again.
    pub retry_after: Duration,
    /// How long until the bucket is full again (the whole burst available).
    pub reset_after: Duration,
    /// Whether the store knows the bucket's state: `false` for [`LimitState::unknown`] (a
    /// store that cannot answer), for which no `RateLimit` field is sent.
    pub known: bool,
}

impl LimitState {
    /// A request that fits, leaving `remaining`, the bucket full again after `reset_after`.
    #[must_use]
    pub fn allowed(remaining: u32, reset_after: Duration) -> Self {
        Self {
            allowed: true,
            remaining,
            retry_after: Duration::ZERO,
            reset_after,
            known: true,
        }
    }

    /// Allowed, nothing known: what a store that cannot answer says (failing open; see
    /// [`RateLimitStore`]). No `RateLimit` field is sent for it.
    #[must_use]
    pub fn unknown() -> Self {
        Self {
            known: false,
            ..Self::allowed(0, Duration::ZERO)
        }
    }

    /// A request refused; one fits again after `retry_after`.
    #[must_use]
    pub fn refused(retry_after: Duration, reset_after: Duration) -> Self {
        Self {
            allowed: false,
            remaining: 0,
            retry_after,
            reset_after,
            known: true,
        }
    }
}

impl Default for LimitState {
    /// [`LimitState::unknown`].
    fn default() -> Self {
        Self::unknown()
    }
}

/// Where rate-limit buckets live: in process ([`MemoryRateLimitStore`](super::MemoryRateLimitStore))
/// or on a server shared by instances.
///
/// One call checks and counts one request against one bucket: a GCRA step that a server
/// does in one round trip (a Redis script keyed by `limit` and `key`, taking the quota's
/// interval and burst, returning allowed, remaining, retry-after and reset-after).
///
/// A store that cannot answer should say so in its logs and answer
/// [`LimitState::unknown`] (allowed, and no `RateLimit` field sent): rate limits protect capacity, and an outage of the
/// counter store should not take the API down with it. Authentication and authorization
/// never depend on this answer.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Checks and counts one request.
    fn check(&self, check: &LimitCheck<'_>) -> StoreFuture<LimitState>;
}
