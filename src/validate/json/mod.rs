//! JSON bodies: parsed once into a `serde_json::Value`, with limits on their shape enforced
//! in that same pass.
//!
//! A gateway that hands a request body to a JSON parser trusts that parser with whatever the
//! client sent: ten thousand nested arrays, a million keys in one object, a gigabyte string,
//! the same key twice with two different values. [`parse`] refuses such a body while it builds
//! the value, as soon as it breaks one of the [`JsonLimits`] or is not JSON at all.
//!
//! What it checks:
//!
//! - **Syntax**, UTF-8, escapes and number range: by `serde_json` itself, which does the
//!   parsing. A body is accepted exactly when `serde_json` accepts it and the limits hold
//!   (differential tests and property tests in `tests.rs` hold us to that).
//! - **Shape**: nesting depth, entries per object, elements per array, string and key length,
//!   the total number of values, and (by default) duplicate keys, compared after unescaping,
//!   so `{"a":1,"\u0061":2}` is refused. Duplicate keys matter because parsers disagree on them
//!   (first wins, last wins, error), which lets a body mean one thing to the gateway and another
//!   to the backend.
//!
//! How: a [`DeserializeSeed`](serde::de::DeserializeSeed) ([`limited`]) drives
//! `serde_json::Deserializer` and counts as it goes. Every count is checked before the pass
//! goes further: the depth before a container's first element, the element and entry counts
//! before the next element or key is parsed. The pass recurses once per nesting level, and
//! the depth is capped at [`MAX_PARSER_DEPTH`] (below `serde_json`'s own recursion limit),
//! so ten thousand `[` are a cheap `json_too_deep` at the 65th, never a stack overflow.
//! Memory is the value being built, bounded by the body size and [`JsonLimits::max_values`].

mod error;
mod limited;
#[cfg(test)]
mod tests;

use serde::de::DeserializeSeed;
use serde_json::Value;

use self::error::{JsonLimitError, JsonLimitErrorKind};
use self::limited::{LimitedValue, Tally};
use crate::error::ConfigError;

/// The deepest nesting the pass admits, whatever [`JsonLimits::max_depth`] says: what
/// `serde_json`'s recursion limit admits (it refuses the 128th nested container before the
/// pass sees it; that refusal is reported as `json_too_deep` too). Kept rather than
/// disabled: it bounds the recursion of the pass (a few hundred bytes of stack per level, see
/// the `nesting_at_the_cap_fits_a_small_stack` test) far below any thread's stack size.
pub(crate) const MAX_PARSER_DEPTH: usize = 127;

/// Limits on the shape of a JSON body, enforced while it is parsed.
///
/// Every limit is inclusive: a body exactly at a limit passes, one more fails. Every limit
/// must be above zero: [`ValidationRulesBuilder::build`](super::ValidationRulesBuilder::build)
/// refuses a zero with [`ConfigError::InvalidLimit`]. The defaults suit JSON APIs; raise a
/// limit for a route that needs more rather than everywhere.
///
/// ```
/// use portcullis::validate::JsonLimits;
///
/// let limits = JsonLimits::new().max_depth(32).max_string_bytes(64 * 1024);
/// assert!(limits.check(br#"{"name": "Ada"}"#).is_ok());
/// let violation = limits.check(&[b'['; 40]).unwrap_err();
/// assert_eq!(violation.keyword(), "json_too_deep");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLimits {
    /// Containers (arrays and objects together) nested inside each other.
    ///
    /// Default 64. API payloads rarely nest more than a dozen levels; 64 leaves room and stays
    /// well below [`MAX_PARSER_DEPTH`] (127), which caps any larger setting.
    max_depth: usize,
    /// Entries (key-value pairs) in one object, duplicates included.
    ///
    /// Default 1,000. Objects are records, not collections; this bounds map sizes downstream.
    max_object_entries: usize,
    /// Elements in one array.
    ///
    /// Default 10,000. Generous for list payloads, while keeping one array from holding the
    /// whole value budget.
    max_array_elements: usize,
    /// Length of one string value, in bytes of UTF-8 after unescaping (so `\n` counts 1 byte
    /// and `\u00e9` counts 2): what a parser holds in memory.
    ///
    /// Default 1 MiB. The text as written is bounded by the body limit.
    max_string_bytes: usize,
    /// Length of one object key, measured like [`max_string_bytes`](Self::max_string_bytes).
    /// Keys are checked against this limit only, not against `max_string_bytes`.
    ///
    /// Default 1,024. Keys are names; a long key is a sign of abuse.
    max_key_bytes: usize,
    /// Values in the whole document: every scalar, array and object counts one (keys do not).
    ///
    /// Default 100,000. Bounds the number of nodes in the `serde_json::Value` built.
    max_values: usize,
    /// Whether an object that has the same key twice, compared after unescaping, is refused.
    ///
    /// Default `true`. RFC 8259 leaves duplicates to the parser, and parsers disagree (first
    /// wins, last wins, error): a body can then mean one thing to the gateway and another to the
    /// backend. Keys are compared exactly, in the map being built, so the check costs no
    /// memory of its own and a client cannot craft a false match.
    reject_duplicate_keys: bool,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_object_entries: 1_000,
            max_array_elements: 10_000,
            max_string_bytes: 1024 * 1024,
            max_key_bytes: 1_024,
            max_values: 100_000,
            reject_duplicate_keys: true,
        }
    }
}

impl JsonLimits {
    /// Checks a whole JSON document against these limits and the JSON grammar, as the
    /// validation layer does with a body (the value it builds is dropped).
    ///
    /// # Errors
    ///
    /// The first problem found, as a body [`Violation`](crate::Violation) whose keyword is
    /// the limit's code (`json_too_deep`, `json_duplicate_key`, …), whose pointer is where in
    /// the document it was found, and whose message gives the byte offset.
    pub fn check(&self, json: &[u8]) -> Result<(), crate::Violation> {
        parse(json, self)
            .map(drop)
            .map_err(|error| error.to_violation())
    }

    /// The default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how many containers may nest inside each other; default 64. Values above 127
    /// act as 127 (`serde_json`'s recursion limit is 128).
    #[must_use]
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Sets how many entries one object may have; default 1,000.
    #[must_use]
    pub fn max_object_entries(mut self, entries: usize) -> Self {
        self.max_object_entries = entries;
        self
    }

    /// Sets how many elements one array may have; default 10,000.
    #[must_use]
    pub fn max_array_elements(mut self, elements: usize) -> Self {
        self.max_array_elements = elements;
        self
    }

    /// Sets the longest string value, in bytes of UTF-8 after unescaping; default 1 MiB.
    #[must_use]
    pub fn max_string_bytes(mut self, bytes: usize) -> Self {
        self.max_string_bytes = bytes;
        self
    }

    /// Sets the longest object key, in bytes of UTF-8 after unescaping; default 1,024.
    #[must_use]
    pub fn max_key_bytes(mut self, bytes: usize) -> Self {
        self.max_key_bytes = bytes;
        self
    }

    /// Sets how many values the whole document may hold; default 100,000.
    #[must_use]
    pub fn max_values(mut self, values: usize) -> Self {
        self.max_values = values;
        self
    }

    /// Sets whether an object with the same key twice is refused; default `true`.
    #[must_use]
    pub fn reject_duplicate_keys(mut self, reject: bool) -> Self {
        self.reject_duplicate_keys = reject;
        self
    }

    /// Refuses a limit of zero, which would refuse every body (or every container), as
    /// every other builder of the crate refuses a zero limit.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let limits = [
            (self.max_depth, "json_limits.max_depth"),
            (self.max_object_entries, "json_limits.max_object_entries"),
            (self.max_array_elements, "json_limits.max_array_elements"),
            (self.max_string_bytes, "json_limits.max_string_bytes"),
            (self.max_key_bytes, "json_limits.max_key_bytes"),
            (self.max_values, "json_limits.max_values"),
        ];
        match limits.into_iter().find(|(limit, _)| *limit == 0) {
            Some((_, setting)) => Err(ConfigError::InvalidLimit { setting }),
            None => Ok(()),
        }
    }
}

/// Parses `bytes` as one JSON value (with optional whitespace around it), enforcing `limits`
/// in the same pass.
///
/// # Errors
///
/// The first limit broken or the parser's refusal, with where it was found.
pub(crate) fn parse(bytes: &[u8], limits: &JsonLimits) -> Result<Value, JsonLimitError> {
    let mut tally = Tally::new(limits);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match LimitedValue::new(&mut tally).deserialize(&mut deserializer) {
        Ok(value) => match deserializer.end() {
            Ok(()) => Ok(value),
            // `end` refuses only what follows the value.
            Err(error) => Err(JsonLimitError::new(
                JsonLimitErrorKind::TrailingData,
                None,
                &error,
                bytes,
                String::new(),
            )),
        },
        Err(error) => Err(tally.into_error(&error, bytes)),
    }
}
