//! Cutting request- and remote-derived text to a bound before it is logged, echoed in a
//! problem detail or kept in an error: the one place this is done.

/// The longest request-derived text (a path) put into a tracing event, in bytes.
const MAX_TRACED_BYTES: usize = 256;

/// `text` cut to at most `max` bytes, on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Request-derived `text` cut for a tracing event, so a hostile request cannot make log
/// lines arbitrarily large.
pub(crate) fn bounded(text: &str) -> &str {
    truncate(text, MAX_TRACED_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        // `é` is two bytes: a cut inside it steps back before it.
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("", 0), "");
        assert_eq!(bounded(&"x".repeat(1000)).len(), 256);
    }
}
