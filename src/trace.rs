//! Helpers for the `tracing` events every decision emits.

/// The longest request-derived text (a path) put into a tracing event, in bytes.
const MAX_TRACED_BYTES: usize = 256;

/// Cuts request-derived `text` to a bound on a character boundary, so a hostile request
/// cannot make log lines arbitrarily large.
pub(crate) fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TRACED_BYTES {
        return text;
    }
    let mut end = MAX_TRACED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
