//! The `RateLimit-Policy` and `RateLimit` response fields of
//! draft-ietf-httpapi-ratelimit-headers (structured-field lists of named policies):
//!
//! ```text
//! RateLimit-Policy: "per-key";q=100;w=60
//! RateLimit: "per-key";r=42;t=35
//! ```
//!
//! `q` is the quota's burst: the requests a full bucket allows at once, and `w` (seconds)
//! the time the bucket takes to refill from empty (burst × the interval between two
//! requests, which must be whole seconds); `r` the requests that still fit now (at most
//! `q`); `t` the seconds until the whole burst is available again.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use http::HeaderValue;
use http::header::HeaderName;

use super::limit::Quota;
use super::store::LimitState;

// Constants rather than statics: each use is a fresh name over static bytes, moved into the
// header map without cloning (the atomic inside `Bytes` is never touched for static bytes).
/// `RateLimit-Policy`.
#[allow(clippy::declare_interior_mutable_const)]
pub(crate) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
#[allow(clippy::declare_interior_mutable_const)]
pub(crate) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up.
fn ceil_seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The `RateLimit-Policy` item of a limit's quota (computed once, when the layer is built):
/// `q` the burst, `w` the seconds a bucket takes to refill from empty (burst × period /
/// requests, computed exactly). `None` when that is not a whole number of seconds: the
/// field cannot say it. `name` is checked to be a plain token, so it needs no escaping.
pub(crate) fn policy(name: &str, quota: Quota) -> Option<HeaderValue> {
    let window = window_seconds(quota)?;
    let text = format!("\"{name}\";q={};w={window}", quota.burst_size());
    // `from_static` takes visible ASCII only (names are checked to be tokens already).
    if !text
        .bytes()
        .all(|byte| byte.is_ascii_graphic() || byte == b' ')
    {
        return None;
    }
    Some(HeaderValue::from_static(interned(text)))
}

/// `text`, kept for the life of the process: a policy's value is then static bytes, sent on
/// every response without touching a reference count. Each distinct text is kept once, so
/// the memory is bounded by the distinct policies ever configured (a reload with the same
/// limits keeps nothing more).
fn interned(text: String) -> &'static str {
    static TEXTS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut texts = TEXTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(kept) = texts.get(text.as_str()) {
        return kept;
    }
    let kept: &'static str = Box::leak(text.into_boxed_str());
    texts.insert(kept);
    kept
}

/// burst × period / requests in whole seconds (at least 1), when it is exactly that.
pub(crate) fn window_seconds(quota: Quota) -> Option<u64> {
    let refill = u128::from(quota.burst_size()).checked_mul(quota.period().as_nanos())?;
    let requests = u128::from(quota.requests());
    let per_second = requests.checked_mul(1_000_000_000)?;
    if requests == 0 || refill % per_second != 0 {
        return None;
    }
    u64::try_from(refill / per_second).ok().filter(|w| *w >= 1)
}

/// The `RateLimit` item of one answer (on every response: written without `fmt`, into a
/// buffer of the exact size, so that the value takes its bytes without another allocation).
pub(crate) fn state(name: &str, state: &LimitState) -> HeaderValue {
    let mut remaining = itoa::Buffer::new();
    let remaining = remaining.format(state.remaining).as_bytes();
    let mut reset = itoa::Buffer::new();
    let reset = reset.format(ceil_seconds(state.reset_after)).as_bytes();
    // `"` name `";r=` digits `;t=` digits
    let mut text = Vec::with_capacity(name.len() + 8 + remaining.len() + reset.len());
    text.push(b'"');
    text.extend_from_slice(name.as_bytes());
    text.extend_from_slice(b"\";r=");
    text.extend_from_slice(remaining);
    text.extend_from_slice(b";t=");
    text.extend_from_slice(reset);
    // Exactly full, so `Bytes` takes the vector as it is.
    debug_assert_eq!(text.len(), text.capacity());
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .unwrap_or_else(|_| HeaderValue::from_static("\"limit\""))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn fields_as_the_draft_writes_them() {
        assert_eq!(
            policy("per-key", Quota::per_minute(100)).expect("whole"),
            "\"per-key\";q=100;w=60"
        );
        // q is the burst, w the time to refill it: 10 per second in bursts of 20.
        assert_eq!(
            policy("burst", Quota::per_second(10).burst(20)).expect("whole"),
            "\"burst\";q=20;w=2"
        );
        assert_eq!(
            policy("deep", Quota::per_second(2).burst(10)).expect("whole"),
            "\"deep\";q=10;w=5"
        );
        // Exact: a third of a second times three is one second.
        assert_eq!(
            policy("thirds", Quota::per_second(3)).expect("whole"),
            "\"thirds\";q=3;w=1"
        );
        // One text kept per distinct policy, however often a layer is built.
        let first = policy("kept", Quota::per_minute(7)).expect("whole");
        let again = policy("kept", Quota::per_minute(7)).expect("whole");
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
        // 10 per 500 ms refills in half a second: not a whole window, no field.
        assert_eq!(
            policy("fast", Quota::new(10, Duration::from_millis(500))),
            None
        );
        assert_eq!(policy("fast", Quota::per_second(20).burst(10)), None);
        assert_eq!(
            state(
                "per-key",
                &LimitState::allowed(42, Duration::from_millis(34_100))
            ),
            "\"per-key\";r=42;t=35"
        );
        assert_eq!(
            state("x", &LimitState::allowed(0, Duration::ZERO)),
            "\"x\";r=0;t=0"
        );
        assert_eq!(
            state("x", &LimitState::allowed(u32::MAX, Duration::from_secs(10))),
            "\"x\";r=4294967295;t=10"
        );
        assert_eq!(
            state("x", &LimitState::allowed(9, Duration::from_secs(10))),
            "\"x\";r=9;t=10"
        );
        assert_eq!(
            state("x", &LimitState::allowed(7, Duration::from_secs(u64::MAX))),
            "\"x\";r=7;t=18446744073709551615"
        );
    }
}
