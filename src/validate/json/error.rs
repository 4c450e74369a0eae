//! Why a JSON body was refused, and where.

use std::error::Error;
use std::fmt;

/// Why a body was refused, where in the document (a JSON pointer), and at which byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonLimitError {
    /// What was wrong.
    kind: JsonLimitErrorKind,
    /// The limit that was broken, for the message.
    limit: Option<usize>,
    /// The JSON pointer (RFC 6901) of the value being read when the problem was found: the
    /// element or member one too many, too deep, too long or duplicated, or the innermost one
    /// the parser was in. `""` for the document itself.
    pointer: String,
    /// The byte offset where the parser stood, from the start of the body: just after the
    /// offending token for most problems, at it for a few; see the tests for examples.
    offset: Option<usize>,
}

impl JsonLimitError {
    /// A refusal of `kind` (with the `limit` broken, if any), positioned by the parser's
    /// `error`.
    #[cold]
    pub(super) fn new(
        kind: JsonLimitErrorKind,
        limit: Option<usize>,
        error: &serde_json::Error,
        bytes: &[u8],
        pointer: String,
    ) -> Self {
        Self {
            kind,
            limit,
            pointer,
            offset: offset(error, bytes),
        }
    }

    /// What was wrong.
    #[cfg(test)]
    pub(crate) fn kind(&self) -> JsonLimitErrorKind {
        self.kind
    }

    /// Where in the document.
    #[cfg(test)]
    pub(crate) fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The error as a body violation, for problem details.
    pub(crate) fn to_violation(&self) -> crate::Violation {
        crate::Violation::new("body", &self.pointer, self.kind.as_str(), &self.to_string())
    }
}

impl fmt::Display for JsonLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use JsonLimitErrorKind as Kind;
        match (self.kind, self.limit) {
            (Kind::TooDeep, Some(limit)) => write!(f, "nesting deeper than {limit}")?,
            (Kind::TooManyEntries, Some(limit)) => {
                write!(f, "object with more than {limit} entries")?;
            }
            (Kind::TooManyElements, Some(limit)) => {
                write!(f, "array with more than {limit} elements")?;
            }
            (Kind::StringTooLong, Some(limit)) => write!(f, "string longer than {limit} bytes")?,
            (Kind::KeyTooLong, Some(limit)) => write!(f, "object key longer than {limit} bytes")?,
            (Kind::TooManyValues, Some(limit)) => write!(f, "more than {limit} values")?,
            (kind, _) => f.write_str(kind.describe())?,
        }
        match self.offset {
            Some(offset) => write!(f, " at byte {offset}"),
            None => Ok(()),
        }
    }
}

impl Error for JsonLimitError {}

/// The byte offset of the parser's error position. `serde_json` reports a line (from 1) and
/// a column (bytes since the line's start); this finds the line's start again. Run only on
/// a refused body, so the scan costs nothing on the common path.
fn offset(error: &serde_json::Error, bytes: &[u8]) -> Option<usize> {
    let line = error.line();
    if line == 0 {
        return None;
    }
    let start = if line == 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .nth(line - 2)
            .map(|(index, _)| index + 1)?
    };
    Some(start.saturating_add(error.column()).min(bytes.len()))
}

/// What was wrong with a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonLimitErrorKind {
    /// More containers nested than [`JsonLimits::max_depth`](super::JsonLimits::max_depth)
    /// (or `serde_json`'s recursion limit).
    TooDeep,
    /// An object with more entries than `max_object_entries`.
    TooManyEntries,
    /// An array with more elements than `max_array_elements`.
    TooManyElements,
    /// A string value longer than `max_string_bytes`.
    StringTooLong,
    /// An object key longer than `max_key_bytes`.
    KeyTooLong,
    /// More values in the document than `max_values`.
    TooManyValues,
    /// An object with the same key twice, when `reject_duplicate_keys` is set.
    DuplicateKey,
    /// A string that is not valid UTF-8.
    InvalidUtf8,
    /// Not JSON: an unexpected byte, a malformed number, literal or escape, a raw control
    /// character in a string, an unpaired surrogate escape, or a byte order mark.
    Syntax,
    /// Something other than whitespace after the JSON value.
    TrailingData,
    /// A number no `f64` can hold (`1e309`, a 310-digit integer). Tiny numbers such as
    /// `1e-400` are fine: they round to zero.
    NumberOutOfRange,
    /// The body ended before a value began: it was empty or only whitespace.
    Empty,
    /// The body ended in the middle of the value.
    Truncated,
}

impl JsonLimitErrorKind {
    /// Which kind of refusal a `serde_json` error is, for the body it refused. `serde_json`
    /// exposes only a category (end of input, syntax, data); the finer kinds are told apart
    /// by the start of its message, which names its error code. An unknown message is a
    /// syntax error, so a future wording costs a keyword, never a refusal.
    #[cold]
    pub(super) fn of_parser_error(error: &serde_json::Error, bytes: &[u8]) -> Self {
        if error.is_eof() {
            return if bytes
                .iter()
                .all(|byte| matches!(byte, b' ' | b'\n' | b'\r' | b'\t'))
            {
                Self::Empty
            } else {
                Self::Truncated
            };
        }
        let message = error.to_string();
        [
            ("invalid unicode code point", Self::InvalidUtf8),
            ("number out of range", Self::NumberOutOfRange),
            ("recursion limit exceeded", Self::TooDeep),
            ("trailing characters", Self::TrailingData),
        ]
        .into_iter()
        .find(|(start, _)| message.starts_with(start))
        .map_or(Self::Syntax, |(_, kind)| kind)
    }

    /// A stable snake_case code for logs and error bodies, such as `json_too_deep`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::TooDeep => "json_too_deep",
            Self::TooManyEntries => "json_too_many_entries",
            Self::TooManyElements => "json_too_many_elements",
            Self::StringTooLong => "json_string_too_long",
            Self::KeyTooLong => "json_key_too_long",
            Self::TooManyValues => "json_too_many_values",
            Self::DuplicateKey => "json_duplicate_key",
            Self::InvalidUtf8 => "json_invalid_utf8",
            Self::Syntax => "json_syntax",
            Self::TrailingData => "json_trailing_data",
            Self::NumberOutOfRange => "json_number_out_of_range",
            Self::Empty => "json_empty",
            Self::Truncated => "json_truncated",
        }
    }

    /// A short human description, without the limit.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Self::TooDeep => "nesting too deep",
            Self::TooManyEntries => "object with too many entries",
            Self::TooManyElements => "array with too many elements",
            Self::StringTooLong => "string too long",
            Self::KeyTooLong => "object key too long",
            Self::TooManyValues => "too many values",
            Self::DuplicateKey => "duplicate object key",
            Self::InvalidUtf8 => "invalid UTF-8",
            Self::Syntax => "invalid JSON",
            Self::TrailingData => "data after the JSON value",
            Self::NumberOutOfRange => "number out of range",
            Self::Empty => "no JSON value",
            Self::Truncated => "JSON value cut short",
        }
    }
}
