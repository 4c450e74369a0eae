//! The `RateLimit-Policy` and `RateLimit` response fields of
//! draft-ietf-httpapi-ratelimit-headers (structured-field lists of named policies):
//!
//! ```text
//! RateLimit-Policy: "per-key";q=100;w=60
//! RateLimit: "per-key";r=42;t=35
//! ```
//!
//! `q` is the quota's requests per window `w` (seconds); `r` the requests that still fit
//! now; `t` the seconds until the whole quota is available again.

use std::fmt::Write as _;

use http::HeaderValue;
use http::header::HeaderName;

use super::limit::Quota;
use super::store::LimitState;

/// `RateLimit-Policy`.
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up.
fn ceil_seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The `RateLimit-Policy` item of a limit's quota (computed once, when the layer is built).
/// `name` is checked to be a plain token, so it needs no escaping.
pub(crate) fn policy(name: &str, quota: Quota) -> HeaderValue {
    let text = format!(
        "\"{name}\";q={};w={}",
        quota.requests(),
        ceil_seconds(quota.period()).max(1)
    );
    // The name is `[A-Za-z0-9._-]`: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"limit\""))
}

/// The `RateLimit` item of one answer.
pub(crate) fn state(name: &str, state: &LimitState) -> HeaderValue {
    let mut text = String::with_capacity(name.len() + 24);
    let _ = write!(
        text,
        "\"{name}\";r={};t={}",
        state.remaining,
        ceil_seconds(state.reset_after)
    );
    // The text becomes the value's bytes without a copy.
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
            policy("per-key", Quota::per_minute(100)),
            "\"per-key\";q=100;w=60"
        );
        assert_eq!(
            policy("fast", Quota::new(10, Duration::from_millis(500))),
            "\"fast\";q=10;w=1"
        );
        assert_eq!(
            state(
                "per-key",
                &LimitState::allowed(42, Duration::from_millis(34_100))
            ),
            "\"per-key\";r=42;t=35"
        );
    }
}
