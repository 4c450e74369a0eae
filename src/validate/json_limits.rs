//! Limits on the shape of a JSON request body, checked while the body streams in.
//!
//! A gateway that hands a request body to a JSON parser trusts that parser with whatever the
//! client sent: ten thousand nested arrays, a million keys in one object, a gigabyte string,
//! the same key twice with two different values. [`JsonScanner`] looks at the body first, chunk
//! by chunk as it arrives from the network, and refuses it as soon as it breaks one of the
//! [`JsonLimits`] or is not JSON at all — before anything buffers or parses it.
//!
//! What it checks:
//!
//! - **Syntax**, fully, per RFC 8259: a body it accepts is one that `serde_json` accepts, and the
//!   other way round (within the limits; see [`JsonLimitErrorKind::NumberOutOfRange`] for the one
//!   documented gap). Exactly one value, with optional whitespace around it. A leading UTF-8 byte
//!   order mark is refused as a syntax error, as `serde_json` does.
//! - **UTF-8** in strings, incrementally: a character split between two chunks is fine;
//!   overlong forms, UTF-16 surrogates encoded in UTF-8, code points above U+10FFFF, stray
//!   continuation bytes and cut-off sequences are not. `\u` escapes must pair surrogates.
//! - **Shape**: nesting depth, entries per object, elements per array, string and key length,
//!   the total number of values, and (by default) duplicate keys, compared after unescaping, so
//!   `{"a":1,"\u0061":2}` is refused. Duplicate keys matter because parsers disagree on them
//!   (first wins, last wins, error), which lets a body mean one thing to the gateway and another
//!   to the backend.
//! - **Numbers** that no `f64` can hold.
//!
//! How:
//!
//! - **Streaming**: [`JsonScanner::feed`] takes the body in chunks of any size, and every token
//!   may be split at any byte. The result, including the reported byte offset, does not depend
//!   on how the body was chunked.
//! - **No recursion**: nesting is an explicit stack bounded by [`JsonLimits::max_depth`], so a
//!   body of ten thousand `[` is a cheap [`JsonLimitErrorKind::TooDeep`], not a stack overflow.
//! - **Bounded memory**, set by the limits and not by the body size. The scanner keeps no part
//!   of the body except the key being read (at most `max_key_bytes`, and only when duplicate keys
//!   are refused). For every open container it keeps 16 bytes. For every open object it also
//!   keeps the object's keys, when duplicate keys are refused: verbatim while the object has at
//!   most 16 keys of 256 bytes together (under 1 KiB), then as 128-bit fingerprints (see
//!   [`JsonLimits::reject_duplicate_keys`]), about 35 bytes per key in a hash set. The worst case
//!   is therefore about `max_depth × (1 KiB + 35 B × max_object_entries) + max_key_bytes`:
//!   about **2.2 MiB** with the defaults, reached only by a body of 64 nested objects of 1,000
//!   keys each. With duplicate keys allowed it is `max_depth × 16 B`: 1 KiB with the defaults.
//! - **Fast on the common case**: a token that lies whole in its chunk and is of a plain form
//!   (a string without escapes, a number without exponent, a literal) is scanned in one go
//!   rather than byte by byte through the state machine, and the `:` or `,` right after it is
//!   taken at once; plain runs of string bytes are skipped sixteen bytes at a time. Whatever the
//!   fast path does not finish, the state machine continues exactly where it stands, so chunk
//!   boundaries change nothing.
//! - **No panics** on any input, and no allocation per byte.

use std::collections::HashSet;
use std::error::Error;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// The longest number token accepted, in bytes. An `f64` is decided by at most 767
/// significant digits, so this leaves room for every number a serializer writes, while bounding
/// the work a downstream parser does on one number.
const MAX_NUMBER_BYTES: usize = 1_100;

/// The largest decimal magnitude accepted: a number is refused when it is at least
/// `10^(MAX_DECIMAL_MAGNITUDE + 1)`, which is above `f64::MAX` (about `1.8 × 10^308`).
const MAX_DECIMAL_MAGNITUDE: i64 = 308;

/// Exponent digits saturate here; any larger exponent is equally out of (or, when negative, in)
/// range, since a number has at most [`MAX_NUMBER_BYTES`] digits to move the magnitude back.
const EXPONENT_CAP: u32 = 1_000_000;

/// A duplicate-key hash set whose capacity is above this is dropped, not cleared, when the next
/// object at its depth outgrows the verbatim form, so that one big object does not make every
/// mid-sized sibling pay to clear a big table.
const KEEP_KEY_SET_CAPACITY: usize = 128;

/// An object keeps its keys verbatim, and compares them byte for byte, while it has at most
/// this many keys...
const EXACT_KEYS: usize = 16;

/// ...of at most this many bytes together; past either, it switches to fingerprints.
const EXACT_KEY_BYTES: usize = 256;

/// Limits on the shape of a JSON document, checked while the body streams in.
///
/// Every limit is inclusive: a body exactly at a limit passes, one more fails. The defaults
/// suit JSON APIs; raise a limit for a route that needs more rather than everywhere.
///
/// ```text
/// let limits = JsonLimits::new().max_depth(32).max_string_bytes(64 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLimits {
    /// Containers (arrays and objects together) nested inside each other.
    ///
    /// Default 64. API payloads rarely nest more than a dozen levels; 64 leaves room and stays
    /// well below `serde_json`'s own recursion limit (128) and any recursive code downstream.
    max_depth: usize,
    /// Entries (key-value pairs) in one object.
    ///
    /// Default 1,000. Objects are records, not collections; this bounds hash-map sizes
    /// downstream and the duplicate-key bookkeeping here.
    max_object_entries: usize,
    /// Elements in one array.
    ///
    /// Default 10,000. Generous for list payloads, while keeping one array from holding the
    /// whole value budget.
    max_array_elements: usize,
    /// Length of one string value, in bytes of its JSON text between the quotes, escapes as
    /// written (so `\n` counts 2 bytes and `\u00e9` counts 6).
    ///
    /// Default 1 MiB. The raw length is what arrives and what a parser must buffer; it is never
    /// less than the unescaped length.
    max_string_bytes: usize,
    /// Length of one object key, measured like [`max_string_bytes`](Self::max_string_bytes).
    /// Keys are checked against this limit only, not against `max_string_bytes`.
    ///
    /// Default 1,024. Keys are names; a long key is a sign of abuse, and keys are what the
    /// duplicate-key check has to buffer.
    max_key_bytes: usize,
    /// Values in the whole document: every scalar, array and object counts one (keys do not).
    ///
    /// Default 100,000. Bounds the number of nodes a parser builds into a `serde_json::Value`.
    max_values: usize,
    /// Whether an object that has the same key twice, compared after unescaping, is refused.
    ///
    /// Default `true`. RFC 8259 leaves duplicates to the parser, and parsers disagree (first
    /// wins, last wins, error): a body can then mean one thing to the gateway and another to the
    /// backend. A small object's keys are compared byte for byte; past 16 keys or 256 bytes of
    /// keys, they are remembered as 128-bit fingerprints (two SipHash outputs under a secret key
    /// chosen per scanner), so memory does not grow with key length and a client cannot craft a
    /// false match. An accidental one has a probability of about n² / 2^129 for an object of n
    /// keys: below 2^-108 with the default 1,000 entries.
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
    /// Checks a whole JSON document against these limits (and the JSON grammar) without
    /// parsing it, as the validation layer does while a body arrives.
    ///
    /// # Errors
    ///
    /// The first problem found, as a body [`Violation`](crate::Violation) whose keyword is
    /// the limit's code (`json_too_deep`, `json_duplicate_key`, …).
    pub fn check(&self, json: &[u8]) -> Result<(), crate::Violation> {
        check_json(json, self).map_err(|error| error.to_violation())
    }

    /// The default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how many containers may nest inside each other; default 64. With 0, only a
    /// scalar body passes.
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

    /// Sets the longest string value, in bytes as written between the quotes (escapes
    /// included); default 1 MiB.
    #[must_use]
    pub fn max_string_bytes(mut self, bytes: usize) -> Self {
        self.max_string_bytes = bytes;
        self
    }

    /// Sets the longest object key, in bytes as written between the quotes (escapes included);
    /// default 1,024.
    #[must_use]
    pub fn max_key_bytes(mut self, bytes: usize) -> Self {
        self.max_key_bytes = bytes;
        self
    }

    /// Sets how many values the whole document may hold; default 100,000. With 0, every
    /// body fails.
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

    /// How many containers may nest inside each other.
    #[cfg(test)]
    pub(crate) fn get_max_depth(&self) -> usize {
        self.max_depth
    }

    /// How many entries one object may have.
    #[cfg(test)]
    pub(crate) fn get_max_object_entries(&self) -> usize {
        self.max_object_entries
    }

    /// How many elements one array may have.
    #[cfg(test)]
    pub(crate) fn get_max_array_elements(&self) -> usize {
        self.max_array_elements
    }

    /// The longest string value, in bytes as written between the quotes.
    #[cfg(test)]
    pub(crate) fn get_max_string_bytes(&self) -> usize {
        self.max_string_bytes
    }

    /// The longest object key, in bytes as written between the quotes.
    #[cfg(test)]
    pub(crate) fn get_max_key_bytes(&self) -> usize {
        self.max_key_bytes
    }

    /// How many values the whole document may hold.
    #[cfg(test)]
    pub(crate) fn get_max_values(&self) -> usize {
        self.max_values
    }

    /// Whether an object with the same key twice is refused.
    #[cfg(test)]
    pub(crate) fn get_reject_duplicate_keys(&self) -> bool {
        self.reject_duplicate_keys
    }
}

/// Why a body was refused, and the byte offset (from the start of the body) where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonLimitError {
    /// What was wrong.
    kind: JsonLimitErrorKind,
    /// Offset of the byte where the problem was found; see [`JsonLimitErrorKind`] for which
    /// byte that is for each kind.
    offset: u64,
    /// The limit that was broken, for the message.
    limit: Option<usize>,
}

impl JsonLimitError {
    /// An error without a limit to report, boxed (see [`Scan`]).
    #[cold]
    fn new(kind: JsonLimitErrorKind, offset: u64) -> Box<Self> {
        Box::new(Self {
            kind,
            offset,
            limit: None,
        })
    }

    /// An error for going over `limit`, boxed (see [`Scan`]).
    #[cold]
    fn over_limit(kind: JsonLimitErrorKind, offset: u64, limit: usize) -> Box<Self> {
        Box::new(Self {
            kind,
            offset,
            limit: Some(limit),
        })
    }

    /// What was wrong.
    #[cfg(test)]
    pub(crate) fn kind(&self) -> JsonLimitErrorKind {
        self.kind
    }

    /// The byte offset, from the start of the body, where it was found.
    #[cfg(test)]
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
}

impl JsonLimitError {
    /// The error as a body violation, for problem details.
    pub(crate) fn to_violation(&self) -> crate::Violation {
        crate::Violation::new("body", "", self.kind.as_str(), &self.to_string())
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
            (Kind::NumberOutOfRange, Some(limit)) => {
                write!(f, "number longer than {limit} bytes")?;
            }
            (kind, _) => f.write_str(kind.describe())?,
        }
        write!(f, " at byte {}", self.offset)
    }
}

impl Error for JsonLimitError {}

/// What was wrong with a JSON body.
///
/// The offset in a [`JsonLimitError`] is that of the byte which broke the rule: the opening
/// bracket, quote or first byte of the value (or key) that was one too many or one too deep;
/// the first byte past the length limit of a string or key; the opening quote of a duplicate
/// key; the first byte of an out-of-range number; the first byte of a bad UTF-8 sequence; the
/// unexpected byte for syntax errors and trailing data; the end of the body for
/// [`Empty`](Self::Empty) and [`Truncated`](Self::Truncated).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonLimitErrorKind {
    /// More containers nested than [`JsonLimits::max_depth`].
    TooDeep,
    /// An object with more entries than [`JsonLimits::max_object_entries`].
    TooManyEntries,
    /// An array with more elements than [`JsonLimits::max_array_elements`].
    TooManyElements,
    /// A string value longer than [`JsonLimits::max_string_bytes`].
    StringTooLong,
    /// An object key longer than [`JsonLimits::max_key_bytes`].
    KeyTooLong,
    /// More values in the document than [`JsonLimits::max_values`].
    TooManyValues,
    /// An object with the same key twice, when [`JsonLimits::reject_duplicate_keys`] is set.
    DuplicateKey,
    /// A string that is not valid UTF-8.
    InvalidUtf8,
    /// Not JSON: an unexpected byte, a malformed number, literal or escape, a raw control
    /// character in a string, an unpaired surrogate escape, or a byte order mark.
    Syntax,
    /// Something other than whitespace after the JSON value.
    TrailingData,
    /// A number no `f64` can hold, or one longer than 1,100 bytes.
    ///
    /// The rule is decimal and exact: a non-zero number is refused when its magnitude is
    /// `10^309` or more, that is when (digits of the integer part − 1, or, for `0.000ddd`, minus
    /// the position of the first non-zero fraction digit) + the exponent is above 308. So `1e308`
    /// and a 309-digit integer pass, and `1e309`, `10e308` and a 310-digit integer fail.
    /// Numbers between `f64::MAX` (about `1.8e308`) and `1e309` pass here although `serde_json`
    /// refuses them: the parser still refuses them. Tiny numbers such as `1e-400` are fine:
    /// they round to zero.
    NumberOutOfRange,
    /// The body ended before a value began: it was empty or only whitespace.
    Empty,
    /// The body ended in the middle of the value.
    Truncated,
}

impl JsonLimitErrorKind {
    /// A stable snake_case code for logs and error bodies, such as `json_too_deep`.
    pub(crate) fn as_str(&self) -> &'static str {
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
    fn describe(self) -> &'static str {
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

/// Checks a whole body at once; the same as one [`JsonScanner::feed`] and
/// [`JsonScanner::finish`].
pub(crate) fn check_json(bytes: &[u8], limits: &JsonLimits) -> Result<(), JsonLimitError> {
    let mut scanner = JsonScanner::new(limits);
    scanner.feed(bytes)?;
    scanner.finish()
}

/// A streaming JSON checker: [`feed`](Self::feed) it the body chunk by chunk, then
/// [`finish`](Self::finish) it when the body ends.
///
/// After an error, every further call returns the same error.
#[derive(Debug)]
pub(crate) struct JsonScanner {
    /// The limits checked.
    limits: JsonLimits,
    /// Bytes in the chunks fed so far.
    consumed: u64,
    /// Where in the grammar the next byte goes.
    state: State,
    /// The open containers, outermost first; never longer than `limits.max_depth`.
    stack: Vec<Frame>,
    /// Values begun so far.
    values: usize,
    /// Duplicate-key bookkeeping; `None` when duplicate keys are allowed.
    duplicates: Option<DuplicateKeys>,
    /// The error already returned, if any.
    failed: Option<JsonLimitError>,
}

impl JsonScanner {
    /// A scanner at the start of a body.
    pub(crate) fn new(limits: &JsonLimits) -> Self {
        Self {
            limits: limits.clone(),
            consumed: 0,
            state: State::Between(Expect::Start),
            stack: Vec::new(),
            values: 0,
            duplicates: limits.reject_duplicate_keys.then(DuplicateKeys::new),
            failed: None,
        }
    }

    /// Feeds the next chunk of the body. Returns an error as soon as a limit or syntax error is
    /// found, and the same error on every call after that.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), JsonLimitError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.scan(chunk) {
            Ok(()) => {
                self.consumed = self.consumed.saturating_add(chunk.len() as u64);
                Ok(())
            }
            Err(error) => {
                self.failed = Some((*error).clone());
                Err(*error)
            }
        }
    }

    /// Ends the body: checks that exactly one complete value was seen, with nothing but
    /// whitespace after it.
    pub(crate) fn finish(self) -> Result<(), JsonLimitError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let end = self.consumed;
        match self.state {
            State::Between(Expect::Done) => Ok(()),
            State::Between(Expect::Start) => {
                Err(*JsonLimitError::new(JsonLimitErrorKind::Empty, end))
            }
            // A number only ends at the next byte, so a body that is one number ends here.
            State::Number(number) if self.stack.is_empty() && number.phase.is_complete() => {
                number.check_range().map_err(|error| *error)
            }
            _ => Err(*JsonLimitError::new(JsonLimitErrorKind::Truncated, end)),
        }
    }

    /// Scans one chunk, token by token.
    fn scan(&mut self, chunk: &[u8]) -> Scan<()> {
        // First the rest of a token cut by the end of the last chunk, then token after token.
        let mut index = self.scan_token(chunk, 0)?;
        while index < chunk.len() {
            index = self.scan_between(chunk, index)?;
            index = self.scan_token(chunk, index)?;
        }
        Ok(())
    }

    /// The body offset of `chunk[index]`.
    fn offset(&self, index: usize) -> u64 {
        self.consumed.saturating_add(index as u64)
    }

    /// Scans the string, number or literal in progress, if any, up to its end or the end of
    /// the chunk. Returns the index after it.
    fn scan_token(&mut self, chunk: &[u8], index: usize) -> Scan<usize> {
        match self.state {
            State::Between(_) => Ok(index),
            State::String(string) => self.scan_string(string, chunk, index),
            State::Number(number) => self.scan_number(number, chunk, index),
            State::Literal(rest) => self.scan_literal(rest, chunk, index),
        }
    }

    /// Skips whitespace and handles structural bytes until a token begins that does not end in
    /// this chunk (or needs a closer look), or until the chunk ends. Returns the index after the
    /// last byte handled.
    ///
    /// A token that begins here is usually whole in the chunk, and usually plain: a string
    /// without escapes, an integer, a literal. Such a token is finished on the spot by
    /// [`token_in_chunk`](Self::token_in_chunk), without going through the byte-at-a-time
    /// state machine. Any other token is left to [`scan_token`](Self::scan_token), which
    /// continues it from its second byte exactly as if the fast path had not looked at it.
    fn scan_between(&mut self, chunk: &[u8], mut index: usize) -> Scan<usize> {
        while let State::Between(expect) = self.state {
            let Some(&byte) = chunk.get(index) else {
                break;
            };
            let offset = self.offset(index);
            index += 1;
            if matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                continue;
            }
            let next = match self.structural(expect, byte, offset)? {
                Step::Expect(next) => next,
                Step::Token(token) => match self.token_in_chunk(token, chunk, index, offset)? {
                    TokenEnd::Complete(end) => {
                        index = end;
                        self.after_token(token, chunk, &mut index)
                    }
                    TokenEnd::Partial(end) => return Ok(end),
                },
            };
            self.state = State::Between(next);
        }
        Ok(index)
    }

    /// Handles a byte that is not whitespace, outside any token: what comes next, or the
    /// token it begins, already counted against the limits, for the caller to scan.
    #[inline(always)]
    fn structural(&mut self, expect: Expect, byte: u8, offset: u64) -> Scan<Step> {
        match (expect, byte) {
            (Expect::Start | Expect::Value, _) => self.begin_value(byte, offset),
            (Expect::ValueOrArrayEnd, b']') | (Expect::KeyOrObjectEnd, b'}') => {
                Ok(Step::Expect(self.close()))
            }
            (Expect::ValueOrArrayEnd, _) => self.begin_value(byte, offset),
            (Expect::KeyOrObjectEnd | Expect::Key, b'"') => {
                self.begin_key(offset)?;
                Ok(Step::Token(Token::String { key: true }))
            }
            (Expect::Colon, b':') => Ok(Step::Expect(Expect::Value)),
            (Expect::CommaOrEnd, _) => self.after_value(byte, offset).map(Step::Expect),
            (Expect::Done, _) => Err(JsonLimitError::new(
                JsonLimitErrorKind::TrailingData,
                offset,
            )),
            (Expect::KeyOrObjectEnd | Expect::Key | Expect::Colon, _) => Err(syntax(offset)),
        }
    }

    /// Handles the byte after a value inside a container: a comma or the closing bracket.
    #[inline(always)]
    fn after_value(&mut self, byte: u8, offset: u64) -> Scan<Expect> {
        let container = self.stack.last().map(|frame| frame.container);
        match (byte, container) {
            (b',', Some(Container::Array)) => Ok(Expect::Value),
            (b',', Some(Container::Object)) => Ok(Expect::Key),
            (b']', Some(Container::Array)) | (b'}', Some(Container::Object)) => Ok(self.close()),
            _ => Err(syntax(offset)),
        }
    }

    /// Begins the value whose first byte is `byte`, counting it against the limits. Opens a
    /// container; returns a scalar's token for the caller to scan.
    #[inline(always)]
    fn begin_value(&mut self, byte: u8, offset: u64) -> Scan<Step> {
        let step = match byte {
            b'{' => Step::Expect(Expect::KeyOrObjectEnd),
            b'[' => Step::Expect(Expect::ValueOrArrayEnd),
            b'"' => Step::Token(Token::String { key: false }),
            b'-' | b'0'..=b'9' => Step::Token(Token::Number { first: byte }),
            b't' => Step::Token(Token::Literal(Literal::True)),
            b'f' => Step::Token(Token::Literal(Literal::False)),
            b'n' => Step::Token(Token::Literal(Literal::Null)),
            _ => return Err(syntax(offset)),
        };
        if let Some(frame) = self.stack.last_mut()
            && frame.container == Container::Array
        {
            frame.count = frame.count.saturating_add(1);
            if frame.count > self.limits.max_array_elements {
                return Err(JsonLimitError::over_limit(
                    JsonLimitErrorKind::TooManyElements,
                    offset,
                    self.limits.max_array_elements,
                ));
            }
        }
        self.values = self.values.saturating_add(1);
        if self.values > self.limits.max_values {
            return Err(JsonLimitError::over_limit(
                JsonLimitErrorKind::TooManyValues,
                offset,
                self.limits.max_values,
            ));
        }
        match byte {
            b'{' => self.open(Container::Object, offset)?,
            b'[' => self.open(Container::Array, offset)?,
            _ => {}
        }
        Ok(step)
    }

    /// Hands a token whose first byte, at `offset`, has been handled to the byte-at-a-time
    /// scan ([`scan_token`](Self::scan_token)).
    fn begin_token(&mut self, token: Token, offset: u64) {
        self.state = match token {
            Token::String { key } => {
                if key && let Some(duplicates) = &mut self.duplicates {
                    duplicates.key.clear();
                }
                State::String(StringState::new(key, offset))
            }
            Token::Number { first } => State::Number(NumberState::new(first, offset)),
            Token::Literal(literal) => State::Literal(literal.rest()),
        };
    }

    /// Scans `token`, whose first byte is at `offset` and whose second would be
    /// `chunk[index]`, as far as it can without the byte-at-a-time state machine: to its end,
    /// when the whole of it is in the chunk and it is of a common, plain form. Otherwise the
    /// scanner's state is set for [`scan_token`](Self::scan_token) to go on with it.
    #[inline(always)]
    fn token_in_chunk(
        &mut self,
        token: Token,
        chunk: &[u8],
        index: usize,
        offset: u64,
    ) -> Scan<TokenEnd> {
        let end = match token {
            Token::String { key } => return self.string_in_chunk(key, chunk, index, offset),
            // The number's first byte is the one just before `index`.
            Token::Number { .. } => number_in_chunk(chunk, index - 1),
            // Every byte of the literal is here and as expected: exactly what `scan_literal`
            // would check one by one. (Fixed-size arrays, so the comparison is a couple of
            // integer compares rather than a call to `memcmp`.)
            Token::Literal(literal) => {
                let rest = chunk.get(index..).unwrap_or_default();
                let whole = match literal {
                    Literal::True => rest.first_chunk() == Some(b"rue"),
                    Literal::False => rest.first_chunk() == Some(b"alse"),
                    Literal::Null => rest.first_chunk() == Some(b"ull"),
                };
                whole.then_some(index + literal.rest().len())
            }
        };
        Ok(match end {
            Some(end) => TokenEnd::Complete(end),
            None => {
                self.begin_token(token, offset);
                TokenEnd::Partial(index)
            }
        })
    }

    /// The fast path of [`token_in_chunk`](Self::token_in_chunk) for a string or key whose
    /// opening quote is at `offset` and whose content begins at `chunk[index]`.
    ///
    /// This is the first round of [`scan_string`](Self::scan_string)'s loop, specialised to a
    /// fresh string: the same plain run (bounded by the length limit, cut short at the first
    /// invalid UTF-8), then the same test of the byte after it. When that byte is the closing
    /// quote, the string is complete and, for a key, the key is the run itself (there was
    /// nothing to unescape), checked for duplicates straight from the chunk. Otherwise the
    /// string is handed to `scan_string` in exactly the state its own first round would have
    /// left.
    #[inline(always)]
    fn string_in_chunk(
        &mut self,
        key: bool,
        chunk: &[u8],
        index: usize,
        offset: u64,
    ) -> Scan<TokenEnd> {
        let limit = if key {
            self.limits.max_key_bytes
        } else {
            self.limits.max_string_bytes
        };
        let rest = chunk.get(index..).unwrap_or_default();
        let window = rest.get(..limit).unwrap_or(rest);
        let run = plain_run(window);
        let mut length = run.length;
        let mut complete = run.quote;
        if run.non_ascii
            && let Some(head) = window.get(..length)
            && let Err(error) = std::str::from_utf8(head)
        {
            length = error.valid_up_to();
            complete = false;
        }
        let content = window.get(..length).unwrap_or_default();
        if complete {
            if key {
                self.check_key(content, offset)?;
            }
            return Ok(TokenEnd::Complete(index + length + 1));
        }
        let mut string = StringState::new(key, offset);
        string.length = length;
        if key && let Some(duplicates) = &mut self.duplicates {
            duplicates.key.clear();
            duplicates.key.extend_from_slice(content);
        }
        self.state = State::String(string);
        Ok(TokenEnd::Partial(index + length))
    }

    /// Opens a container, checking the depth limit.
    #[inline(always)]
    fn open(&mut self, container: Container, offset: u64) -> Scan<()> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(JsonLimitError::over_limit(
                JsonLimitErrorKind::TooDeep,
                offset,
                self.limits.max_depth,
            ));
        }
        if container == Container::Object
            && let Some(duplicates) = &mut self.duplicates
        {
            duplicates.open_object();
        }
        self.stack.push(Frame {
            container,
            count: 0,
        });
        Ok(())
    }

    /// Closes the innermost container, which the caller has checked matches the bracket.
    /// Returns what comes next.
    #[inline(always)]
    fn close(&mut self) -> Expect {
        if let Some(frame) = self.stack.pop()
            && frame.container == Container::Object
            && let Some(duplicates) = &mut self.duplicates
        {
            duplicates.close_object();
        }
        self.after_complete_value()
    }

    /// What comes after a complete value.
    fn after_complete_value(&self) -> Expect {
        if self.stack.is_empty() {
            Expect::Done
        } else {
            Expect::CommaOrEnd
        }
    }

    /// What comes after a complete token whose end is `chunk[*index]`: the colon after a key,
    /// else what comes after a value.
    ///
    /// In compact JSON that is also the next byte: a key is followed by `:`, and a value in a
    /// container by `,`. Such a byte is consumed here at once, with the same effect as one more
    /// round of [`scan_between`](Self::scan_between) would have, which saves that round.
    #[inline(always)]
    fn after_token(&self, token: Token, chunk: &[u8], index: &mut usize) -> Expect {
        let next = chunk.get(*index);
        if let Token::String { key: true } = token {
            if next == Some(&b':') {
                *index += 1;
                return Expect::Value;
            }
            return Expect::Colon;
        }
        match self.stack.last() {
            None => Expect::Done,
            Some(frame) if next == Some(&b',') => {
                *index += 1;
                match frame.container {
                    Container::Array => Expect::Value,
                    Container::Object => Expect::Key,
                }
            }
            Some(_) => Expect::CommaOrEnd,
        }
    }

    /// Moves on after a complete value.
    fn end_value(&mut self) {
        self.state = State::Between(self.after_complete_value());
    }

    /// Counts an object entry whose key's opening quote is at `offset`.
    #[inline(always)]
    fn begin_key(&mut self, offset: u64) -> Scan<()> {
        let Some(frame) = self.stack.last_mut() else {
            return Err(syntax(offset));
        };
        frame.count = frame.count.saturating_add(1);
        if frame.count > self.limits.max_object_entries {
            return Err(JsonLimitError::over_limit(
                JsonLimitErrorKind::TooManyEntries,
                offset,
                self.limits.max_object_entries,
            ));
        }
        Ok(())
    }

    /// Checks a complete object key, unescaped to `key`, against the object's other keys.
    #[inline(always)]
    fn check_key(&mut self, key: &[u8], key_offset: u64) -> Scan<()> {
        if let Some(duplicates) = &mut self.duplicates
            && !duplicates.insert(key)
        {
            return Err(JsonLimitError::new(
                JsonLimitErrorKind::DuplicateKey,
                key_offset,
            ));
        }
        Ok(())
    }

    /// Ends an object key read byte by byte into the key buffer.
    fn end_buffered_key(&mut self, key_offset: u64) -> Scan<()> {
        if let Some(duplicates) = &mut self.duplicates {
            let key = std::mem::take(&mut duplicates.key);
            let fresh = duplicates.insert(&key);
            duplicates.key = key;
            if !fresh {
                return Err(JsonLimitError::new(
                    JsonLimitErrorKind::DuplicateKey,
                    key_offset,
                ));
            }
        }
        self.state = State::Between(Expect::Colon);
        Ok(())
    }

    /// Scans string content, from just after the opening quote or where the last chunk ended.
    fn scan_string(
        &mut self,
        mut string: StringState,
        chunk: &[u8],
        mut index: usize,
    ) -> Scan<usize> {
        let base = self.consumed;
        let (limit, too_long) = if string.key {
            (self.limits.max_key_bytes, JsonLimitErrorKind::KeyTooLong)
        } else {
            (
                self.limits.max_string_bytes,
                JsonLimitErrorKind::StringTooLong,
            )
        };
        let mut key = match &mut self.duplicates {
            Some(duplicates) if string.key => Some(&mut duplicates.key),
            _ => None,
        };
        loop {
            if string.is_plain() {
                // Fast path: a run of bytes that are neither special to JSON nor part of a bad
                // or unfinished UTF-8 sequence. Whatever stops it is handled one byte at a time.
                // Bytes past the length limit are left for the slow path, which reports them.
                let rest = chunk.get(index..).unwrap_or_default();
                let room = limit.saturating_sub(string.length);
                let rest = rest.get(..room).unwrap_or(rest);
                let PlainRun {
                    length: mut run,
                    non_ascii,
                    ..
                } = plain_run(rest);
                if non_ascii
                    && let Some(head) = rest.get(..run)
                    && let Err(error) = std::str::from_utf8(head)
                {
                    run = error.valid_up_to();
                }
                if let Some(key) = key.as_deref_mut()
                    && let Some(head) = rest.get(..run)
                {
                    key.extend_from_slice(head);
                }
                string.length += run;
                index += run;
            }
            let Some(&byte) = chunk.get(index) else {
                self.state = State::String(string);
                return Ok(index);
            };
            let offset = base.saturating_add(index as u64);
            index += 1;
            if byte == b'"' && string.is_plain() {
                if string.key {
                    self.end_buffered_key(string.start)?;
                } else {
                    self.end_value();
                }
                return Ok(index);
            }
            if string.length >= limit {
                return Err(JsonLimitError::over_limit(too_long, offset, limit));
            }
            string.length += 1;
            string.step(byte, offset, key.as_deref_mut())?;
        }
    }

    /// Scans a number, from where the last chunk ended. The number ends at the first byte that
    /// cannot continue it, which is left for the caller.
    fn scan_number(
        &mut self,
        mut number: NumberState,
        chunk: &[u8],
        mut index: usize,
    ) -> Scan<usize> {
        use NumberPhase as Phase;
        while let Some(&byte) = chunk.get(index) {
            if byte.is_ascii_digit() && matches!(number.phase, Phase::Integer | Phase::Fraction) {
                // Fast path: a run of digits, the bulk of most numbers.
                let rest = chunk.get(index..).unwrap_or_default();
                let run = rest
                    .iter()
                    .take(MAX_NUMBER_BYTES + 1)
                    .take_while(|byte| byte.is_ascii_digit())
                    .count();
                if number.phase == Phase::Integer {
                    number.integer_digits += run;
                } else if !number.nonzero {
                    let digits = rest.get(..run).unwrap_or_default();
                    match digits.iter().position(|&digit| digit != b'0') {
                        Some(zeros) => {
                            number.leading_fraction_zeros += zeros;
                            number.nonzero = true;
                        }
                        None => number.leading_fraction_zeros += run,
                    }
                }
                number.length += run;
                if number.length > MAX_NUMBER_BYTES {
                    return Err(number.too_long());
                }
                index += run;
                continue;
            }
            number.phase = match (number.phase, byte) {
                (Phase::Minus, b'0') => Phase::Zero,
                (Phase::Minus, b'1'..=b'9') => {
                    number.integer_digits = 1;
                    number.nonzero = true;
                    Phase::Integer
                }
                // No leading zeros.
                (Phase::Zero, b'0'..=b'9') => return Err(syntax(self.offset(index))),
                (Phase::Integer, b'0'..=b'9') => {
                    number.integer_digits += 1;
                    Phase::Integer
                }
                (Phase::Zero | Phase::Integer, b'.') => Phase::Point,
                (Phase::Point | Phase::Fraction, b'0'..=b'9') => {
                    if byte != b'0' {
                        number.nonzero = true;
                    } else if !number.nonzero {
                        number.leading_fraction_zeros += 1;
                    }
                    Phase::Fraction
                }
                (Phase::Zero | Phase::Integer | Phase::Fraction, b'e' | b'E') => Phase::Exponent,
                (Phase::Exponent, b'+') => Phase::ExponentSign,
                (Phase::Exponent, b'-') => {
                    number.exponent_negative = true;
                    Phase::ExponentSign
                }
                (Phase::Exponent | Phase::ExponentSign | Phase::ExponentDigits, b'0'..=b'9') => {
                    let digit = u32::from(byte - b'0');
                    number.exponent = (number.exponent * 10 + digit).min(EXPONENT_CAP);
                    Phase::ExponentDigits
                }
                (phase, _) if phase.is_complete() => {
                    number.check_range()?;
                    self.end_value();
                    return Ok(index);
                }
                _ => return Err(syntax(self.offset(index))),
            };
            number.length += 1;
            if number.length > MAX_NUMBER_BYTES {
                return Err(number.too_long());
            }
            index += 1;
        }
        self.state = State::Number(number);
        Ok(index)
    }

    /// Scans the rest of `true`, `false` or `null`.
    fn scan_literal(
        &mut self,
        mut rest: &'static [u8],
        chunk: &[u8],
        mut index: usize,
    ) -> Scan<usize> {
        while let Some((&expected, tail)) = rest.split_first() {
            let Some(&byte) = chunk.get(index) else {
                self.state = State::Literal(rest);
                return Ok(index);
            };
            if byte != expected {
                return Err(syntax(self.offset(index)));
            }
            rest = tail;
            index += 1;
        }
        self.end_value();
        Ok(index)
    }
}

/// The fast path of [`JsonScanner::token_in_chunk`] for a number whose first byte is
/// `chunk[start]`: returns the index after it when the number is of the plain form
/// `-?(0|[1-9][0-9]*)(.[0-9]+)?` (no exponent) with at most 309 integer digits, and the byte
/// that ends it is in this chunk. `None` leaves the number to [`JsonScanner::scan_number`].
///
/// Why this agrees with `scan_number`: a number of that form is valid; it is in range, since
/// without an exponent its magnitude is below `10^integer_digits`, at most `10^309`; it is
/// at most [`MAX_NUMBER_BYTES`] long, since its digits are counted up to that many only and
/// a longer run is passed on (the byte after it is a digit); and it ends at the same byte,
/// one that cannot continue it (anything but a digit, `.`, `e` or `E`, which are all passed
/// on). That byte is left for the caller, as `scan_number` leaves it.
#[inline(always)]
fn number_in_chunk(chunk: &[u8], start: usize) -> Option<usize> {
    let bytes = chunk.get(start..)?;
    let digits_from = |at: usize| {
        bytes.get(at..).map_or(0, |tail| {
            tail.iter()
                .take(MAX_NUMBER_BYTES)
                .take_while(|byte| byte.is_ascii_digit())
                .count()
        })
    };
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let integer_digits = match bytes.get(at)? {
        b'0' => 1,
        b'1'..=b'9' => 1 + digits_from(at + 1),
        _ => return None,
    };
    at += integer_digits;
    if bytes.get(at) == Some(&b'.') {
        let fraction_digits = digits_from(at + 1);
        if fraction_digits == 0 {
            return None;
        }
        at += 1 + fraction_digits;
    }
    if matches!(bytes.get(at)?, b'0'..=b'9' | b'.' | b'e' | b'E') {
        return None;
    }
    let in_range = integer_digits as i64 - 1 <= MAX_DECIMAL_MAGNITUDE;
    (in_range && at <= MAX_NUMBER_BYTES).then_some(start + at)
}

/// A syntax error at `offset`.
fn syntax(offset: u64) -> Box<JsonLimitError> {
    JsonLimitError::new(JsonLimitErrorKind::Syntax, offset)
}

/// The result of a step of the scan. The error is boxed, and built out of line, so that the
/// many results passed around while scanning stay small: errors are rare, at most one per body.
type Scan<T> = Result<T, Box<JsonLimitError>>;

/// Where in the grammar the scanner is.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Between tokens, expecting a structural byte or whitespace.
    Between(Expect),
    /// Inside a string value or key.
    String(StringState),
    /// Inside a number.
    Number(NumberState),
    /// Inside `true`, `false` or `null`: the bytes still expected, never empty.
    Literal(&'static [u8]),
}

/// What may come next, between tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The top-level value; nothing but whitespace seen yet.
    Start,
    /// A value: after `:`, or after `,` in an array.
    Value,
    /// Just after `[`: a value or `]`.
    ValueOrArrayEnd,
    /// Just after `{`: a key or `}`.
    KeyOrObjectEnd,
    /// A key, after `,` in an object.
    Key,
    /// The `:` after a key.
    Colon,
    /// After a value in a container: `,` or the closing bracket.
    CommaOrEnd,
    /// The top-level value is complete; only whitespace may follow.
    Done,
}

/// What a structural byte leads to.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Nothing to scan: this comes next.
    Expect(Expect),
    /// A token to scan, begun by the byte.
    Token(Token),
}

/// A token begun by a byte between tokens.
#[derive(Debug, Clone, Copy)]
enum Token {
    /// A string value, or an object key when `key` is set.
    String {
        /// Whether it is a key.
        key: bool,
    },
    /// A number.
    Number {
        /// Its first byte: `-` or a digit.
        first: u8,
    },
    /// `true`, `false` or `null`.
    Literal(Literal),
}

/// How far [`JsonScanner::token_in_chunk`] got with a token.
#[derive(Debug, Clone, Copy)]
enum TokenEnd {
    /// The token is complete, before this index.
    Complete(usize),
    /// The token goes on from this index, byte by byte; the scanner's state says where in it.
    Partial(usize),
}

/// The three literals.
#[derive(Debug, Clone, Copy)]
enum Literal {
    /// `true`.
    True,
    /// `false`.
    False,
    /// `null`.
    Null,
}

impl Literal {
    /// The bytes after the first.
    fn rest(self) -> &'static [u8] {
        match self {
            Self::True => b"rue",
            Self::False => b"alse",
            Self::Null => b"ull",
        }
    }
}

/// An open container.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Array or object.
    container: Container,
    /// Elements or entries begun so far.
    count: usize,
}

/// The two kinds of container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// `[...]`.
    Array,
    /// `{...}`.
    Object,
}

/// Progress through a string.
#[derive(Debug, Clone, Copy)]
struct StringState {
    /// Whether this is an object key rather than a value.
    key: bool,
    /// Offset of the opening quote.
    start: u64,
    /// Bytes of content so far, as written (escapes included).
    length: usize,
    /// Progress through an escape sequence.
    escape: Escape,
    /// Progress through a multi-byte UTF-8 character.
    utf8: Utf8State,
}

impl StringState {
    /// A string whose opening quote is at `start`.
    fn new(key: bool, start: u64) -> Self {
        Self {
            key,
            start,
            length: 0,
            escape: Escape::None,
            utf8: Utf8State::BOUNDARY,
        }
    }

    /// Whether the next byte starts afresh: not inside an escape or a UTF-8 character.
    fn is_plain(&self) -> bool {
        self.escape == Escape::None && self.utf8.remaining == 0
    }

    /// Handles one content byte (already counted against the length limit) the slow way.
    /// Unescaped key bytes go to `key`, when given.
    fn step(&mut self, byte: u8, offset: u64, key: Option<&mut Vec<u8>>) -> Scan<()> {
        if self.utf8.remaining > 0 {
            if !(self.utf8.low..=self.utf8.high).contains(&byte) {
                return Err(JsonLimitError::new(
                    JsonLimitErrorKind::InvalidUtf8,
                    self.utf8.start,
                ));
            }
            self.utf8 = Utf8State {
                remaining: self.utf8.remaining - 1,
                low: 0x80,
                high: 0xBF,
                start: self.utf8.start,
            };
            push_key_bytes(key, &[byte]);
            return Ok(());
        }
        match self.escape {
            Escape::None => match byte {
                b'\\' => self.escape = Escape::Backslash,
                0x00..=0x1F => return Err(syntax(offset)),
                0x20..=0x7F => push_key_bytes(key, &[byte]),
                _ => {
                    self.utf8 = Utf8State::lead(byte, offset).ok_or_else(|| {
                        JsonLimitError::new(JsonLimitErrorKind::InvalidUtf8, offset)
                    })?;
                    push_key_bytes(key, &[byte]);
                }
            },
            Escape::Backslash => {
                let unescaped = match byte {
                    b'"' | b'\\' | b'/' => byte,
                    b'b' => 0x08,
                    b'f' => 0x0C,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.escape = Escape::Unicode {
                            digits: 0,
                            value: 0,
                            high: None,
                        };
                        return Ok(());
                    }
                    _ => return Err(syntax(offset)),
                };
                self.escape = Escape::None;
                push_key_bytes(key, &[unescaped]);
            }
            Escape::Unicode {
                digits,
                value,
                high,
            } => {
                let digit = hex_digit(byte).ok_or_else(|| syntax(offset))?;
                let value = (value << 4) | digit;
                self.escape = if digits < 3 {
                    Escape::Unicode {
                        digits: digits + 1,
                        value,
                        high,
                    }
                } else {
                    Self::end_unicode_escape(value, high, offset, key)?
                };
            }
            Escape::LowBackslash { high } if byte == b'\\' => {
                self.escape = Escape::LowU { high };
            }
            Escape::LowU { high } if byte == b'u' => {
                self.escape = Escape::Unicode {
                    digits: 0,
                    value: 0,
                    high: Some(high),
                };
            }
            // A leading surrogate not followed by `\u`.
            Escape::LowBackslash { .. } | Escape::LowU { .. } => return Err(syntax(offset)),
        }
        Ok(())
    }

    /// Handles a complete `\uXXXX` escape; returns the escape state that follows.
    fn end_unicode_escape(
        value: u32,
        high: Option<u32>,
        offset: u64,
        key: Option<&mut Vec<u8>>,
    ) -> Scan<Escape> {
        let code_point = match (high, value) {
            (None, 0xD800..=0xDBFF) => return Ok(Escape::LowBackslash { high: value }),
            (None, 0xDC00..=0xDFFF) => return Err(syntax(offset)),
            (None, _) => value,
            (Some(high), 0xDC00..=0xDFFF) => 0x1_0000 + ((high - 0xD800) << 10) + (value - 0xDC00),
            (Some(_), _) => return Err(syntax(offset)),
        };
        if let Some(key) = key {
            let character = char::from_u32(code_point).ok_or_else(|| syntax(offset))?;
            key.extend_from_slice(character.encode_utf8(&mut [0; 4]).as_bytes());
        }
        Ok(Escape::None)
    }
}

/// Appends bytes to the key being collected, if one is.
fn push_key_bytes(key: Option<&mut Vec<u8>>, bytes: &[u8]) {
    if let Some(key) = key {
        key.extend_from_slice(bytes);
    }
}

/// The value of an ASCII hex digit.
fn hex_digit(byte: u8) -> Option<u32> {
    char::from(byte).to_digit(16)
}

/// Progress through an escape sequence in a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Not in an escape.
    None,
    /// Just after `\`.
    Backslash,
    /// In `\uXXXX`: the hex digits read and their value, and the leading surrogate this
    /// escape must complete, if any.
    Unicode {
        /// Hex digits read, 0 to 3.
        digits: u8,
        /// Their value.
        value: u32,
        /// The leading surrogate before this escape.
        high: Option<u32>,
    },
    /// After a leading surrogate escape: the `\` of a trailing one must follow.
    LowBackslash {
        /// The leading surrogate.
        high: u32,
    },
    /// After the `\` that follows a leading surrogate: `u` must follow.
    LowU {
        /// The leading surrogate.
        high: u32,
    },
}

/// Progress through a multi-byte UTF-8 character (Unicode table 3-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Utf8State {
    /// Continuation bytes still expected.
    remaining: u8,
    /// The smallest byte allowed next.
    low: u8,
    /// The largest byte allowed next.
    high: u8,
    /// Offset of the character's first byte.
    start: u64,
}

impl Utf8State {
    /// Between characters.
    const BOUNDARY: Self = Self {
        remaining: 0,
        low: 0x80,
        high: 0xBF,
        start: 0,
    };

    /// The state after a lead byte at `offset`, or `None` if the byte cannot begin a
    /// character: a continuation byte, an overlong lead (`C0`, `C1`) or above `F4`.
    fn lead(byte: u8, offset: u64) -> Option<Self> {
        let (remaining, low, high) = match byte {
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            // No UTF-16 surrogates.
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            // Nothing above U+10FFFF.
            0xF4 => (3, 0x80, 0x8F),
            _ => return None,
        };
        Some(Self {
            remaining,
            low,
            high,
            start: offset,
        })
    }
}

/// Progress through a number: its place in the grammar and what decides its magnitude.
#[derive(Debug, Clone, Copy)]
struct NumberState {
    /// Offset of the first byte.
    start: u64,
    /// Bytes so far.
    length: usize,
    /// Place in the grammar.
    phase: NumberPhase,
    /// Digits in the integer part, when it is not `0`.
    integer_digits: usize,
    /// When the integer part is `0`: zeros after the point before the first non-zero digit.
    leading_fraction_zeros: usize,
    /// Whether any digit is non-zero.
    nonzero: bool,
    /// Whether the exponent is negative.
    exponent_negative: bool,
    /// The exponent's absolute value, saturating at [`EXPONENT_CAP`].
    exponent: u32,
}

impl NumberState {
    /// A number whose first byte, `-` or a digit, is at `start`.
    fn new(first: u8, start: u64) -> Self {
        let integer_digits = usize::from(first.is_ascii_digit() && first != b'0');
        Self {
            start,
            length: 1,
            phase: match first {
                b'-' => NumberPhase::Minus,
                b'0' => NumberPhase::Zero,
                _ => NumberPhase::Integer,
            },
            integer_digits,
            leading_fraction_zeros: 0,
            nonzero: integer_digits > 0,
            exponent_negative: false,
            exponent: 0,
        }
    }

    /// The error for a number longer than [`MAX_NUMBER_BYTES`].
    fn too_long(&self) -> Box<JsonLimitError> {
        JsonLimitError::over_limit(
            JsonLimitErrorKind::NumberOutOfRange,
            self.start,
            MAX_NUMBER_BYTES,
        )
    }

    /// Refuses a complete number whose magnitude is `10^309` or more (see
    /// [`JsonLimitErrorKind::NumberOutOfRange`]).
    fn check_range(&self) -> Scan<()> {
        if !self.nonzero {
            return Ok(());
        }
        // The power of ten of the first non-zero digit. Digit counts are at most
        // MAX_NUMBER_BYTES, so these conversions are exact.
        let first_digit = if self.integer_digits > 0 {
            self.integer_digits as i64 - 1
        } else {
            -(self.leading_fraction_zeros as i64) - 1
        };
        let exponent = i64::from(self.exponent);
        let exponent = if self.exponent_negative {
            -exponent
        } else {
            exponent
        };
        if first_digit + exponent > MAX_DECIMAL_MAGNITUDE {
            return Err(JsonLimitError::new(
                JsonLimitErrorKind::NumberOutOfRange,
                self.start,
            ));
        }
        Ok(())
    }
}

/// Where in the number grammar `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` a number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberPhase {
    /// After `-`.
    Minus,
    /// After an integer part `0`.
    Zero,
    /// In an integer part that starts with `1`–`9`.
    Integer,
    /// After `.`.
    Point,
    /// In the fraction digits.
    Fraction,
    /// After `e` or `E`.
    Exponent,
    /// After the exponent's sign.
    ExponentSign,
    /// In the exponent digits.
    ExponentDigits,
}

impl NumberPhase {
    /// Whether a number may end here.
    fn is_complete(self) -> bool {
        matches!(
            self,
            Self::Zero | Self::Integer | Self::Fraction | Self::ExponentDigits
        )
    }
}

/// A set of key fingerprints, hashed by passing their bits through.
type KeySet = HashSet<u128, BuildHasherDefault<FingerprintHasher>>;

/// The keys of every open object.
///
/// Objects nest, and keys are only ever added to the innermost open one, so the keys kept
/// verbatim live in one buffer used as a stack: each object's keys follow those of the object
/// around it, and closing an object truncates the buffer back to where its keys began. One
/// buffer serves the whole body, so small objects allocate nothing of their own.
#[derive(Debug)]
struct DuplicateKeys {
    /// The secret key of the fingerprints; random per scanner.
    hasher: RandomState,
    /// The unescaped bytes of a key read byte by byte; at most `max_key_bytes` long.
    key: Vec<u8>,
    /// The verbatim keys of the open objects, innermost object last: each key as its length
    /// (two bytes, little-endian) followed by its bytes.
    exact: Vec<u8>,
    /// The open objects, outermost first.
    objects: Vec<ObjectKeys>,
    /// `fingerprints[n]`: the fingerprints of the open object nested `n` objects deep, once
    /// it has outgrown the verbatim form. Sibling objects reuse the set of their depth.
    fingerprints: Vec<KeySet>,
}

/// Where one open object keeps its keys.
#[derive(Debug, Clone, Copy)]
struct ObjectKeys {
    /// Where its keys begin in [`DuplicateKeys::exact`].
    start: usize,
    /// Keys kept verbatim.
    count: usize,
    /// Their bytes, without the length prefixes.
    bytes: usize,
    /// Bit `n` set when some key kept verbatim has a length of `n` modulo 64: a key whose
    /// length has no bit set here cannot equal any of them, and needs no comparing.
    lengths: u64,
    /// Whether it has outgrown the verbatim form, its keys now being fingerprints.
    fingerprinted: bool,
}

impl DuplicateKeys {
    /// Empty bookkeeping with a fresh secret key.
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            key: Vec::new(),
            exact: Vec::new(),
            objects: Vec::new(),
            fingerprints: Vec::new(),
        }
    }

    /// Starts the keys of an object that opens inside the open ones.
    fn open_object(&mut self) {
        if self.exact.capacity() == 0 {
            // Room for one object at its largest verbatim form, in one allocation rather than
            // several as the first keys arrive.
            self.exact.reserve(EXACT_KEY_BYTES + 2 * EXACT_KEYS);
        }
        self.objects.push(ObjectKeys {
            start: self.exact.len(),
            count: 0,
            bytes: 0,
            lengths: 0,
            fingerprinted: false,
        });
    }

    /// Forgets the keys of the innermost object, which closes.
    fn close_object(&mut self) {
        if let Some(object) = self.objects.pop() {
            self.exact.truncate(object.start);
        }
    }

    /// Adds `key` to the innermost open object; `false` if it was already there.
    #[inline(always)]
    fn insert(&mut self, key: &[u8]) -> bool {
        let Some(object) = self.objects.last_mut() else {
            return true;
        };
        if object.fingerprinted {
            return self.insert_fingerprint(key);
        }
        let length_bit = 1_u64 << (key.len() % 64);
        if object.lengths & length_bit != 0 {
            let own = self.exact.get(object.start..).unwrap_or_default();
            if exact_keys(own).any(|seen| seen == key) {
                return false;
            }
        }
        if object.count < EXACT_KEYS
            && object.bytes + key.len() <= EXACT_KEY_BYTES
            && let Ok(length) = u16::try_from(key.len())
        {
            self.exact.extend_from_slice(&length.to_le_bytes());
            self.exact.extend_from_slice(key);
            object.count += 1;
            object.bytes += key.len();
            object.lengths |= length_bit;
            return true;
        }
        self.switch_to_fingerprints();
        self.insert_fingerprint(key)
    }

    /// Moves the keys of the innermost open object, which has outgrown the verbatim form, to
    /// the fingerprint set of its depth, forgetting those of the sibling that used it last.
    #[cold]
    fn switch_to_fingerprints(&mut self) {
        let depth = self.objects.len().saturating_sub(1);
        let Some(object) = self.objects.last_mut() else {
            return;
        };
        if self.fingerprints.len() <= depth {
            self.fingerprints.resize_with(depth + 1, KeySet::default);
        }
        let Some(set) = self.fingerprints.get_mut(depth) else {
            return;
        };
        if set.capacity() > KEEP_KEY_SET_CAPACITY {
            *set = KeySet::default();
        } else {
            set.clear();
        }
        let own = self.exact.get(object.start..).unwrap_or_default();
        for seen in exact_keys(own) {
            set.insert(fingerprint(&self.hasher, seen));
        }
        self.exact.truncate(object.start);
        object.fingerprinted = true;
    }

    /// Adds `key` to the fingerprints of the innermost open object; `false` if it was
    /// already there.
    fn insert_fingerprint(&mut self, key: &[u8]) -> bool {
        let depth = self.objects.len().saturating_sub(1);
        self.fingerprints
            .get_mut(depth)
            .is_none_or(|set| set.insert(fingerprint(&self.hasher, key)))
    }
}

/// The keys stored verbatim in `records`, each as its length (two bytes, little-endian)
/// followed by its bytes.
fn exact_keys(mut records: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (&[low, high], rest) = records.split_first_chunk::<2>()?;
        let length = usize::from(u16::from_le_bytes([low, high]));
        let (key, rest) = rest.split_at_checked(length)?;
        records = rest;
        Some(key)
    })
}

/// A 128-bit keyed fingerprint of `key`: SipHash of the key under the scanner's secret key,
/// twice, with a different first byte each time.
fn fingerprint(hasher: &RandomState, key: &[u8]) -> u128 {
    let half = |domain: u8| {
        let mut hasher = hasher.build_hasher();
        hasher.write_u8(domain);
        hasher.write(key);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

/// A [`Hasher`] for fingerprints, which are uniformly random already: it keeps 64 of their bits.
#[derive(Debug, Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, fingerprint: u128) {
        // Truncation intended: the low half is one whole SipHash output.
        self.0 = fingerprint as u64;
    }
}

/// A run of string bytes that need no attention one by one, as found by [`plain_run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlainRun {
    /// Its length.
    length: usize,
    /// Whether it has bytes above `0x7F`, which need UTF-8 validation.
    non_ascii: bool,
    /// Whether the byte that ends it is `"`, rather than `\`, a control character or the end
    /// of the input.
    quote: bool,
}

/// The leading run of string bytes that need no attention one by one: all but `"`, `\` and
/// control characters.
///
/// Eight bytes at a time: each 8-byte word, read little-endian so that its first byte is its
/// lowest, gets a flag (the byte's high bit) on every byte that stops the run (see
/// [`stop_flags`]). Words go two by two, which most strings (keys, short values) do not
/// outlast, and which gives the processor two independent computations per round.
#[inline(always)]
fn plain_run(bytes: &[u8]) -> PlainRun {
    let mut length = 0;
    let mut seen = 0_u64;
    let mut rest = bytes;
    while let Some((pair, tail)) = rest.split_first_chunk::<16>() {
        let pair = u128::from_le_bytes(*pair);
        // The low half holds the first eight bytes. Truncation intended.
        let (low, high) = (pair as u64, (pair >> 64) as u64);
        let (low_stops, high_stops) = (stop_flags(low), stop_flags(high));
        if low_stops.any != 0 {
            return low_stops.run(length, seen, low);
        }
        if high_stops.any != 0 {
            return high_stops.run(length + 8, seen | low, high);
        }
        seen |= low | high;
        length += 16;
        rest = tail;
    }
    if let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let word = u64::from_le_bytes(*word);
        let stops = stop_flags(word);
        if stops.any != 0 {
            return stops.run(length, seen, word);
        }
        seen |= word;
        length += 8;
        rest = tail;
    }
    let mut quote = false;
    for &byte in rest {
        if byte < 0x20 || byte == b'"' || byte == b'\\' {
            quote = byte == b'"';
            break;
        }
        seen |= u64::from(byte);
        length += 1;
    }
    PlainRun {
        length,
        non_ascii: seen & HIGH_BITS != 0,
        quote,
    }
}

/// `0x01` in every byte of a word.
const ONES: u64 = u64::from_le_bytes([0x01; 8]);

/// The high bit of every byte of a word.
const HIGH_BITS: u64 = ONES * 0x80;

/// The bytes of a word that stop a plain run, flagged by their high bit.
#[derive(Debug, Clone, Copy)]
struct StopFlags {
    /// Control characters, `"` and `\`.
    any: u64,
    /// `"` only.
    quotes: u64,
}

/// Flags the bytes of `word` (bytes in little-endian order) that stop a plain run.
///
/// The flags come from the classic "has a zero byte" trick, `(w - 0x01…01) & !w & 0x80…80`
/// (with `0x20…20` for control bytes), which can also flag a byte just above a truly flagged
/// one, through the borrow of the subtraction, but never one below it: a byte borrows only
/// if it is itself flagged or a byte below it borrowed. So the lowest flag is always right,
/// which is all [`StopFlags::run`] uses.
#[inline(always)]
const fn stop_flags(word: u64) -> StopFlags {
    /// The flag on each byte of the word that is below `limit` (exact for the lowest).
    const fn below(word: u64, limit: u8) -> u64 {
        word.wrapping_sub(ONES * limit as u64) & !word & HIGH_BITS
    }
    let quotes = below(word ^ (ONES * b'"' as u64), 1);
    let backslashes = below(word ^ (ONES * b'\\' as u64), 1);
    StopFlags {
        any: below(word, 0x20) | quotes | backslashes,
        quotes,
    }
}

impl StopFlags {
    /// The run ending at the first flagged byte of `word`, which has some, after `length`
    /// bytes whose words OR to `seen`.
    #[inline(always)]
    fn run(self, length: usize, seen: u64, word: u64) -> PlainRun {
        // The first stop's flag alone, and the bytes before it.
        let first = self.any & self.any.wrapping_neg();
        let before = (first >> 7).wrapping_sub(1);
        PlainRun {
            length: length + (first.trailing_zeros() / 8) as usize,
            non_ascii: (seen | (word & before)) & HIGH_BITS != 0,
            quote: self.quotes & first != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use proptest::sample::Index;
    use serde_json::{Number, Value};

    use JsonLimitErrorKind as Kind;

    /// Limits nothing real reaches, with duplicate keys allowed: syntax checking only.
    fn unlimited() -> JsonLimits {
        JsonLimits::new()
            .max_depth(usize::MAX)
            .max_object_entries(usize::MAX)
            .max_array_elements(usize::MAX)
            .max_string_bytes(usize::MAX)
            .max_key_bytes(usize::MAX)
            .max_values(usize::MAX)
            .reject_duplicate_keys(false)
    }

    fn check(input: impl AsRef<[u8]>) -> Result<(), JsonLimitError> {
        check_json(input.as_ref(), &JsonLimits::new())
    }

    fn kind(input: impl AsRef<[u8]>) -> Option<Kind> {
        check(input).err().map(|error| error.kind())
    }

    fn kind_with(input: impl AsRef<[u8]>, limits: &JsonLimits) -> Option<Kind> {
        check_json(input.as_ref(), limits)
            .err()
            .map(|error| error.kind())
    }

    fn error_at(input: impl AsRef<[u8]>, limits: &JsonLimits) -> (Kind, u64) {
        match check_json(input.as_ref(), limits) {
            Ok(()) => panic!("accepted {:?}", String::from_utf8_lossy(input.as_ref())),
            Err(error) => (error.kind(), error.offset()),
        }
    }

    /// Scans `input` cut at the given (sorted, in-range) points.
    fn check_split(
        input: &[u8],
        cuts: &[usize],
        limits: &JsonLimits,
    ) -> Result<(), JsonLimitError> {
        let mut scanner = JsonScanner::new(limits);
        let mut start = 0;
        for &cut in cuts.iter().chain([input.len()].iter()) {
            scanner.feed(&input[start..cut])?;
            start = cut;
        }
        scanner.finish()
    }

    /// Every 2-way split and byte-by-byte feeding give the whole-buffer result.
    fn assert_split_invariant(input: &[u8], limits: &JsonLimits) {
        let whole = check_json(input, limits);
        for cut in 0..=input.len() {
            assert_eq!(
                check_split(input, &[cut], limits),
                whole,
                "split at {cut}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let mut scanner = JsonScanner::new(limits);
        let bytewise = input
            .iter()
            .try_for_each(|byte| scanner.feed(std::slice::from_ref(byte)))
            .and_then(|()| scanner.finish());
        assert_eq!(
            bytewise,
            whole,
            "bytewise: {:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn serde_accepts(input: &[u8]) -> bool {
        serde_json::from_slice::<Value>(input).is_ok()
    }

    /// Compares with `serde_json` parsing into a `Value` (which checks UTF-8, surrogate escapes
    /// and number range, unlike `IgnoredAny`), outside the documented number-range gap and
    /// serde_json's recursion limit of 128.
    fn assert_agrees_with_serde(input: &[u8]) {
        let ours = check_json(input, &unlimited());
        if matches!(&ours, Err(error) if error.kind() == Kind::NumberOutOfRange) {
            return;
        }
        let theirs = serde_json::from_slice::<Value>(input);
        if let Err(error) = &theirs {
            let message = error.to_string();
            if message.contains("number out of range") || message.contains("recursion limit") {
                return;
            }
        }
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "ours {ours:?}, serde_json {theirs:?}, input {:?}",
            String::from_utf8_lossy(input)
        );
        // IgnoredAny checks syntax only: whatever we accept, it accepts.
        if ours.is_ok() {
            assert!(serde_json::from_slice::<serde::de::IgnoredAny>(input).is_ok());
        }
    }

    /// Valid documents covering the grammar.
    const VALID: &[&str] = &[
        "0",
        "-0",
        "1",
        "-1",
        "123456789",
        "0.5",
        "-0.0",
        "1.25e10",
        "1E+2",
        "1e-2",
        "0e0",
        "1e308",
        "1e-400",
        "0e999999999999999999",
        "true",
        "false",
        "null",
        "\"\"",
        "\"plain text\"",
        r#""\" \\ \/ \b \f \n \r \t""#,
        r#""\u0000\u001f\u00e9\uFFFF\uffff""#,
        r#""\ud83d\ude00 \uD83D\uDE00""#,
        "\"caf\u{e9} \u{20ac} \u{1f600} \u{10ffff}\"",
        "\"\u{7f}\"",
        "[]",
        "[ ]",
        "{}",
        "{ }",
        "[1,2,3]",
        "[[],[[]],{}]",
        r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
        " \t\r\n{ \"a\" : [ 1 , 2 ] } \t\r\n",
        r#"{"a":1,"A":2,"b":{"a":3},"c":[{"a":1},{"a":2}]}"#,
        r#"[-1.5e-3,2E3,0.000001]"#,
    ];

    /// Invalid documents, with the kind each is refused as under the defaults.
    const INVALID: &[(&[u8], Kind)] = &[
        (b"", Kind::Empty),
        (b" \n\t\r ", Kind::Empty),
        (b"[", Kind::Truncated),
        (b"{\"a\":", Kind::Truncated),
        (b"{\"a\"", Kind::Truncated),
        (b"{\"a", Kind::Truncated),
        (b"[1,", Kind::Truncated),
        (b"\"abc", Kind::Truncated),
        (b"\"\\u12", Kind::Truncated),
        (b"tru", Kind::Truncated),
        (b"-", Kind::Truncated),
        (b"1.", Kind::Truncated),
        (b"1e", Kind::Truncated),
        (b"1e+", Kind::Truncated),
        (b"[1", Kind::Truncated),
        (b"{} x", Kind::TrailingData),
        (b"{}{}", Kind::TrailingData),
        (b"1 2", Kind::TrailingData),
        (b"truex", Kind::TrailingData),
        (b"]", Kind::Syntax),
        (b"[1,]", Kind::Syntax),
        (b"[,1]", Kind::Syntax),
        (b"{,}", Kind::Syntax),
        (b"{\"a\":1,}", Kind::Syntax),
        (b"{\"a\" 1}", Kind::Syntax),
        (b"{\"a\":1 \"b\":2}", Kind::Syntax),
        (b"{1:2}", Kind::Syntax),
        (b"[1}", Kind::Syntax),
        (b"{\"a\":1]", Kind::Syntax),
        (b"[1 2]", Kind::Syntax),
        (b"01", Kind::Syntax),
        (b"-01", Kind::Syntax),
        (b"+1", Kind::Syntax),
        (b".5", Kind::Syntax),
        (b"[1.]", Kind::Syntax),
        (b"[1.e5]", Kind::Syntax),
        (b"[1e]", Kind::Syntax),
        (b"[-]", Kind::Syntax),
        (b"[--1]", Kind::Syntax),
        (b"[0x10]", Kind::Syntax),
        (b"[Infinity]", Kind::Syntax),
        (b"[NaN]", Kind::Syntax),
        (b"nul1", Kind::Syntax),
        (b"True", Kind::Syntax),
        (b"'a'", Kind::Syntax),
        (b"\"\\x\"", Kind::Syntax),
        (b"\"\\u12G4\"", Kind::Syntax),
        (b"\"\\U0041\"", Kind::Syntax),
        (b"\"a\x01\"", Kind::Syntax),
        (b"\"a\tb\"", Kind::Syntax),
        (b"\"a\nb\"", Kind::Syntax),
        (b"\"\\ud800\"", Kind::Syntax),
        (b"\"\\udc00\"", Kind::Syntax),
        (b"\"\\ud800x\"", Kind::Syntax),
        (b"\"\\ud800\\n\"", Kind::Syntax),
        (b"\"\\ud800\\ud800\"", Kind::Syntax),
        (b"\"\\ud800\\u0041\"", Kind::Syntax),
        (b"\xEF\xBB\xBF{}", Kind::Syntax),
        (b"\x0c{}", Kind::Syntax),
        (b"[\"a\" \xC3\xA9]", Kind::Syntax),
        (b"\"\x80\"", Kind::InvalidUtf8),
        (b"\"\xC0\x80\"", Kind::InvalidUtf8),
        (b"\"\xC1\xBF\"", Kind::InvalidUtf8),
        (b"\"\xE0\x80\x80\"", Kind::InvalidUtf8),
        (b"\"\xE0\x9F\xBF\"", Kind::InvalidUtf8),
        (b"\"\xF0\x80\x80\x80\"", Kind::InvalidUtf8),
        (b"\"\xED\xA0\x80\"", Kind::InvalidUtf8),
        (b"\"\xED\xBF\xBF\"", Kind::InvalidUtf8),
        (b"\"\xF4\x90\x80\x80\"", Kind::InvalidUtf8),
        (b"\"\xF5\x80\x80\x80\"", Kind::InvalidUtf8),
        (b"\"\xFF\"", Kind::InvalidUtf8),
        (b"\"\xE2\x82\"", Kind::InvalidUtf8),
        (b"\"\xE2\x82a\"", Kind::InvalidUtf8),
        (b"\"\xC3\"", Kind::InvalidUtf8),
        (b"{\"k\xC3\":1}", Kind::InvalidUtf8),
        (b"1e309", Kind::NumberOutOfRange),
        (b"[1e400]", Kind::NumberOutOfRange),
        (b"-1e400", Kind::NumberOutOfRange),
        (b"10e308", Kind::NumberOutOfRange),
        (b"0.1e310", Kind::NumberOutOfRange),
        (b"{\"a\":1,\"a\":2}", Kind::DuplicateKey),
    ];

    #[test]
    fn defaults_are_as_documented() {
        let limits = JsonLimits::new();
        assert_eq!(limits, JsonLimits::default());
        assert_eq!(limits.get_max_depth(), 64);
        assert_eq!(limits.get_max_object_entries(), 1_000);
        assert_eq!(limits.get_max_array_elements(), 10_000);
        assert_eq!(limits.get_max_string_bytes(), 1024 * 1024);
        assert_eq!(limits.get_max_key_bytes(), 1_024);
        assert_eq!(limits.get_max_values(), 100_000);
        assert!(limits.get_reject_duplicate_keys());
    }

    #[test]
    fn setters_set_their_own_limit() {
        let limits = JsonLimits::new()
            .max_depth(1)
            .max_object_entries(2)
            .max_array_elements(3)
            .max_string_bytes(4)
            .max_key_bytes(5)
            .max_values(6)
            .reject_duplicate_keys(false);
        assert_eq!(limits.get_max_depth(), 1);
        assert_eq!(limits.get_max_object_entries(), 2);
        assert_eq!(limits.get_max_array_elements(), 3);
        assert_eq!(limits.get_max_string_bytes(), 4);
        assert_eq!(limits.get_max_key_bytes(), 5);
        assert_eq!(limits.get_max_values(), 6);
        assert!(!limits.get_reject_duplicate_keys());
    }

    #[test]
    fn codes_are_stable_and_distinct() {
        let all = [
            (Kind::TooDeep, "json_too_deep"),
            (Kind::TooManyEntries, "json_too_many_entries"),
            (Kind::TooManyElements, "json_too_many_elements"),
            (Kind::StringTooLong, "json_string_too_long"),
            (Kind::KeyTooLong, "json_key_too_long"),
            (Kind::TooManyValues, "json_too_many_values"),
            (Kind::DuplicateKey, "json_duplicate_key"),
            (Kind::InvalidUtf8, "json_invalid_utf8"),
            (Kind::Syntax, "json_syntax"),
            (Kind::TrailingData, "json_trailing_data"),
            (Kind::NumberOutOfRange, "json_number_out_of_range"),
            (Kind::Empty, "json_empty"),
            (Kind::Truncated, "json_truncated"),
        ];
        let codes: HashSet<&str> = all.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(codes.len(), all.len());
        for (kind, code) in all {
            assert_eq!(kind.as_str(), code);
        }
    }

    #[test]
    fn messages_name_the_limit_and_the_offset() {
        let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
        let error = check(&deep).unwrap_err();
        assert_eq!(error.to_string(), "nesting deeper than 64 at byte 64");
        let error = check(b"{\"a\":1,\"a\":2}").unwrap_err();
        assert_eq!(error.to_string(), "duplicate object key at byte 7");
        let error = check(b"[1, x]").unwrap_err();
        assert_eq!(error.to_string(), "invalid JSON at byte 4");
        let long_number = format!("0.{}", "0".repeat(MAX_NUMBER_BYTES));
        let error = check(long_number).unwrap_err();
        assert_eq!(error.to_string(), "number longer than 1100 bytes at byte 0");
        let error = check(b"1e999").unwrap_err();
        assert_eq!(error.to_string(), "number out of range at byte 0");
    }

    #[test]
    fn accepts_valid_documents() {
        for document in VALID {
            assert_eq!(check(document), Ok(()), "{document:?}");
            assert!(
                serde_accepts(document.as_bytes()),
                "serde_json: {document:?}"
            );
        }
    }

    #[test]
    fn refuses_invalid_documents_with_the_right_kind() {
        for (document, expected) in INVALID {
            assert_eq!(
                kind(document),
                Some(*expected),
                "{:?}",
                String::from_utf8_lossy(document)
            );
        }
    }

    #[test]
    fn agrees_with_serde_json_on_the_corpus() {
        for document in VALID {
            assert_agrees_with_serde(document.as_bytes());
        }
        for (document, _) in INVALID {
            assert_agrees_with_serde(document);
        }
    }

    #[test]
    fn any_split_gives_the_same_result() {
        let limits = JsonLimits::new()
            .max_depth(3)
            .max_string_bytes(12)
            .max_key_bytes(4)
            .max_object_entries(3)
            .max_array_elements(4)
            .max_values(12);
        let at_limits: &[&[u8]] = &[
            b"[[[1]]]",
            b"[[[[1]]]]",
            b"\"abcdefghi\\u00e9\"",
            b"\"abcdefghij\\u00e9\"",
            b"\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"",
            b"\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\"",
            b"{\"abcd\":1}",
            b"{\"abcde\":1}",
            b"{\"a\":1,\"b\":2,\"c\":3}",
            b"{\"a\":1,\"b\":2,\"c\":3,\"d\":4}",
            b"[1,2,3,4]",
            b"[1,2,3,4,5]",
            b"[[1,2,3,4],[5,6,7,8]]",
            b"{\"a\":1,\"\\u0061\":2}",
            b"[0.000000000001e320]",
            b"[0.00000000001e320]",
            b"[12345678901234567890e290]",
            b"[12345678901234567890e289]",
        ];
        for document in VALID {
            assert_split_invariant(document.as_bytes(), &JsonLimits::new());
        }
        for (document, _) in INVALID {
            assert_split_invariant(document, &JsonLimits::new());
        }
        for document in at_limits {
            assert_split_invariant(document, &limits);
        }
        let long_number = format!("[0.{}1]", "0".repeat(MAX_NUMBER_BYTES - 3));
        assert_split_invariant(long_number.as_bytes(), &limits);
        let too_long_number = format!("[0.{}1]", "0".repeat(MAX_NUMBER_BYTES - 2));
        assert_split_invariant(too_long_number.as_bytes(), &limits);
    }

    #[test]
    fn offsets_point_at_the_offending_byte() {
        let defaults = JsonLimits::new();
        assert_eq!(error_at(b"[1,]", &defaults), (Kind::Syntax, 3));
        assert_eq!(error_at(b"{} x", &defaults), (Kind::TrailingData, 3));
        assert_eq!(error_at(b"  ", &defaults), (Kind::Empty, 2));
        assert_eq!(error_at(b"{\"a\":", &defaults), (Kind::Truncated, 5));
        assert_eq!(error_at(b"[1e999]", &defaults), (Kind::NumberOutOfRange, 1));
        assert_eq!(
            error_at(b"\"ab\xE2\x82x\"", &defaults),
            (Kind::InvalidUtf8, 3)
        );
        assert_eq!(error_at(b"\"ab\xFF\"", &defaults), (Kind::InvalidUtf8, 3));
        assert_eq!(
            error_at(b"\"\\ud800\\u0041\"", &defaults),
            (Kind::Syntax, 12)
        );
        let small = JsonLimits::new().max_string_bytes(3).max_key_bytes(2);
        assert_eq!(error_at(b"[\"abcd\"]", &small), (Kind::StringTooLong, 5));
        assert_eq!(error_at(b"{\"abc\":1}", &small), (Kind::KeyTooLong, 4));
    }

    #[test]
    fn refuses_a_leading_byte_order_mark() {
        assert_eq!(
            error_at(b"\xEF\xBB\xBF{}", &JsonLimits::new()),
            (Kind::Syntax, 0)
        );
        assert!(!serde_accepts(b"\xEF\xBB\xBF{}"));
    }

    #[test]
    fn trailing_whitespace_is_fine_and_anything_else_is_not() {
        assert_eq!(check(b"{}  \n"), Ok(()));
        assert_eq!(check(b"1 \r\n\t"), Ok(()));
        assert_eq!(kind(b"{} x"), Some(Kind::TrailingData));
        assert_eq!(kind(b"{}{}"), Some(Kind::TrailingData));
        assert_eq!(kind(b"\"a\"\"b\""), Some(Kind::TrailingData));
        assert_eq!(kind(b"{}\0"), Some(Kind::TrailingData));
    }

    #[test]
    fn trailing_data_is_refused_as_soon_as_it_arrives() {
        let mut scanner = JsonScanner::new(&JsonLimits::new());
        assert_eq!(scanner.feed(b"{} "), Ok(()));
        let error = scanner.feed(b"{").unwrap_err();
        assert_eq!((error.kind(), error.offset()), (Kind::TrailingData, 3));
    }

    #[test]
    fn empty_and_truncated_bodies() {
        assert_eq!(kind(b""), Some(Kind::Empty));
        assert_eq!(kind(b"   \n"), Some(Kind::Empty));
        let mut scanner = JsonScanner::new(&JsonLimits::new());
        assert_eq!(scanner.feed(b"{\"a\":"), Ok(()));
        assert_eq!(
            scanner.finish().map_err(|error| error.kind()),
            Err(Kind::Truncated)
        );
        // A number is complete only at the end of the body when it is the whole body.
        assert_eq!(check(b"12"), Ok(()));
        assert_eq!(kind(b"[12"), Some(Kind::Truncated));
        assert_eq!(kind(b"\"\xC3"), Some(Kind::Truncated));
    }

    #[test]
    fn errors_are_sticky() {
        let mut scanner = JsonScanner::new(&JsonLimits::new());
        let first = scanner.feed(b"[1,]").unwrap_err();
        assert_eq!(scanner.feed(b"[]"), Err(first.clone()));
        assert_eq!(scanner.finish(), Err(first));
    }

    #[test]
    fn depth_limit_is_inclusive() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(check(nested(64)), Ok(()));
        assert_eq!(
            error_at(nested(65), &JsonLimits::new()),
            (Kind::TooDeep, 64)
        );
        // Objects count as well, and mixed nesting too.
        let objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        assert_eq!(check(objects(64)), Ok(()));
        assert_eq!(kind(objects(65)), Some(Kind::TooDeep));
        let mixed = |depth: usize| {
            format!(
                "{}1{}",
                "[{\"a\":".repeat(depth / 2),
                "}]".repeat(depth / 2)
            )
        };
        assert_eq!(check(mixed(64)), Ok(()));
        assert_eq!(kind(mixed(66)), Some(Kind::TooDeep));
        // Zero depth: scalars only.
        let flat = JsonLimits::new().max_depth(0);
        assert_eq!(check_json(b"1", &flat), Ok(()));
        assert_eq!(kind_with(b"[]", &flat), Some(Kind::TooDeep));
    }

    #[test]
    fn ten_thousand_open_brackets_are_too_deep() {
        let body = "[".repeat(10_000);
        assert_eq!(error_at(&body, &JsonLimits::new()), (Kind::TooDeep, 64));
    }

    #[test]
    fn deep_nesting_under_a_huge_limit_does_not_recurse() {
        let limits = JsonLimits::new().max_depth(100_000);
        let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(check_json(arrays.as_bytes(), &limits), Ok(()));
        assert_eq!(
            kind_with("[".repeat(10_000), &limits),
            Some(Kind::Truncated)
        );
        let objects = format!("{}null{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert_eq!(check_json(objects.as_bytes(), &limits), Ok(()));
        // Far deeper than any thread's stack could recurse.
        let limits = unlimited();
        let deep = format!("{}{}", "[".repeat(500_000), "]".repeat(500_000));
        assert_eq!(check_json(deep.as_bytes(), &limits), Ok(()));
    }

    #[test]
    fn object_entries_limit_is_inclusive() {
        let object = |entries: usize| {
            let body: Vec<String> = (0..entries).map(|i| format!("\"k{i}\":{i}")).collect();
            format!("{{{}}}", body.join(","))
        };
        assert_eq!(check(object(1_000)), Ok(()));
        let over = object(1_001);
        let last_key = over.rfind("\"k1000\"").unwrap() as u64;
        assert_eq!(
            error_at(&over, &JsonLimits::new()),
            (Kind::TooManyEntries, last_key)
        );
    }

    #[test]
    fn array_elements_limit_is_inclusive() {
        let array = |elements: usize| format!("[{}]", vec!["0"; elements].join(","));
        assert_eq!(check(array(10_000)), Ok(()));
        assert_eq!(
            error_at(array(10_001), &JsonLimits::new()),
            (Kind::TooManyElements, 20_001)
        );
    }

    #[test]
    fn a_huge_array_is_refused_early() {
        let mut scanner = JsonScanner::new(&JsonLimits::new());
        assert_eq!(scanner.feed(b"["), Ok(()));
        let chunk = "1,".repeat(4096);
        let error = (0..100)
            .try_for_each(|_| scanner.feed(chunk.as_bytes()))
            .unwrap_err();
        assert_eq!(
            (error.kind(), error.offset()),
            (Kind::TooManyElements, 20_001)
        );
    }

    #[test]
    fn string_length_limit_is_inclusive_and_counts_escapes_as_written() {
        let string = |length: usize| format!("\"{}\"", "a".repeat(length));
        let mib = 1024 * 1024;
        assert_eq!(check(string(mib)), Ok(()));
        assert_eq!(
            error_at(string(mib + 1), &JsonLimits::new()),
            (Kind::StringTooLong, 1 + mib as u64)
        );
        let small = JsonLimits::new().max_string_bytes(6);
        assert_eq!(check_json(b"\"\\u00e9\"", &small), Ok(()));
        assert_eq!(
            kind_with(b"\"\\u00e9a\"", &small),
            Some(Kind::StringTooLong)
        );
        assert_eq!(check_json(b"\"\\n\\n\\n\"", &small), Ok(()));
        assert_eq!(
            kind_with(b"\"\\n\\n\\n\\n\"", &small),
            Some(Kind::StringTooLong)
        );
        assert_eq!(
            check_json("\"\u{e9}\u{e9}\u{e9}\"".as_bytes(), &small),
            Ok(())
        );
        assert_eq!(
            kind_with("\"\u{e9}\u{e9}\u{e9}a\"", &small),
            Some(Kind::StringTooLong)
        );
        // Keys are checked against their own limit only.
        let keys = JsonLimits::new().max_string_bytes(1).max_key_bytes(8);
        assert_eq!(check_json(b"{\"abcdefgh\":\"a\"}", &keys), Ok(()));
    }

    #[test]
    fn a_ten_megabyte_string_is_refused_early() {
        let mut body = vec![b'"'];
        body.resize(10 * 1024 * 1024 + 1, b'x');
        body.push(b'"');
        let mut scanner = JsonScanner::new(&JsonLimits::new());
        let error = body
            .chunks(64 * 1024)
            .try_for_each(|chunk| scanner.feed(chunk))
            .unwrap_err();
        assert_eq!(error.kind(), Kind::StringTooLong);
        assert_eq!(error.offset(), 1 + 1024 * 1024);
    }

    #[test]
    fn key_length_limit_is_inclusive() {
        let key = |length: usize| format!("{{\"{}\":1}}", "k".repeat(length));
        assert_eq!(check(key(1_024)), Ok(()));
        assert_eq!(
            error_at(key(1_025), &JsonLimits::new()),
            (Kind::KeyTooLong, 1_026)
        );
    }

    #[test]
    fn values_limit_is_inclusive() {
        // The outer array, 10 inner arrays and their elements.
        let document = |last_elements: usize| {
            let full = format!("[{}]", vec!["0"; 9_999].join(","));
            let last = format!("[{}]", vec!["0"; last_elements].join(","));
            format!("[{},{last}]", vec![full; 9].join(","))
        };
        assert_eq!(check(document(9_998)), Ok(()));
        assert_eq!(kind(document(9_999)), Some(Kind::TooManyValues));
        let five = JsonLimits::new().max_values(5);
        assert_eq!(check_json(b"{\"a\":[1,2],\"b\":null}", &five), Ok(()));
        assert_eq!(
            error_at(b"{\"a\":[1,2],\"b\":[null]}", &five),
            (Kind::TooManyValues, 16)
        );
        assert_eq!(
            kind_with(b"1", &JsonLimits::new().max_values(0)),
            Some(Kind::TooManyValues)
        );
    }

    #[test]
    fn duplicate_keys_are_compared_after_unescaping() {
        let defaults = JsonLimits::new();
        assert_eq!(
            error_at(b"{\"a\":1,\"a\":2}", &defaults),
            (Kind::DuplicateKey, 7)
        );
        let duplicates: &[&[u8]] = &[
            b"{\"a\":1,\"\\u0061\":2}",
            b"{\"/\":1,\"\\/\":2}",
            b"{\"\\n\":1,\"\\u000a\":2}",
            "{\"\u{e9}\":1,\"\\u00E9\":2}".as_bytes(),
            "{\"\u{1f600}\":1,\"\\ud83d\\ude00\":2}".as_bytes(),
            b"{\"a\":1,\"b\":{\"c\":{}},\"a\":2}",
            b"{\"\":1,\"\":2}",
        ];
        for document in duplicates {
            assert_eq!(
                kind(document),
                Some(Kind::DuplicateKey),
                "{:?}",
                String::from_utf8_lossy(document)
            );
            assert_eq!(kind_with(document, &unlimited()), None);
        }
        let distinct: &[&[u8]] = &[
            b"{\"a\":1,\"A\":2,\"a \":3,\"\\u0062\":4}",
            b"{\"a\":{\"a\":{\"a\":1}}}",
            b"[{\"a\":1},{\"a\":2},{\"a\":3}]",
            b"{\"x\":{\"a\":1},\"y\":{\"a\":1}}",
            b"{\"ab\":1,\"a\":2,\"b\":3}",
        ];
        for document in distinct {
            assert_eq!(
                check(document),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(document)
            );
        }
    }

    #[test]
    fn duplicates_are_found_before_and_after_the_switch_to_fingerprints() {
        let object = |keys: &[String]| {
            let entries: Vec<String> = keys.iter().map(|key| format!("\"{key}\":0")).collect();
            format!("{{{}}}", entries.join(","))
        };
        let numbered = |count: usize| (0..count).map(|i| format!("k{i}")).collect::<Vec<_>>();
        for count in [1, 2, 15, 16, 17, 18, 100, 1_000] {
            assert_eq!(check(object(&numbered(count))), Ok(()), "{count} keys");
        }
        for (count, repeated) in [
            (2, 0),
            (16, 0),
            (16, 15),
            (17, 3),
            (17, 16),
            (40, 39),
            (999, 500),
        ] {
            let mut keys = numbered(count);
            keys.push(keys[repeated].clone());
            assert_eq!(
                kind(object(&keys)),
                Some(Kind::DuplicateKey),
                "{count} keys, repeating {repeated}"
            );
        }
        // Long keys outgrow the verbatim form by bytes rather than by count.
        let long: Vec<String> = (0..4).map(|i| format!("{i}{}", "x".repeat(100))).collect();
        assert_eq!(check(object(&long)), Ok(()));
        for repeated in 0..4 {
            let mut keys = long.clone();
            keys.push(long[repeated].clone());
            assert_eq!(kind(object(&keys)), Some(Kind::DuplicateKey));
        }
        let huge_key = "y".repeat(1_000);
        assert_eq!(
            kind(object(&[huge_key.clone(), huge_key])),
            Some(Kind::DuplicateKey)
        );
    }

    #[test]
    fn a_big_object_does_not_leak_keys_into_its_siblings() {
        let big: Vec<String> = (0..500).map(|i| format!("\"k{i}\":{i}")).collect();
        let document = format!("[{{{}}},{{\"k1\":1}},{{\"k1\":1,\"k2\":2}}]", big.join(","));
        assert_eq!(check(document), Ok(()));
    }

    #[test]
    fn numbers_out_of_range() {
        assert_eq!(check(b"1e308"), Ok(()));
        assert_eq!(check(b"1.7976931348623157e308"), Ok(()));
        assert_eq!(check(b"0.01e310"), Ok(()));
        assert_eq!(check(b"-1e-99999"), Ok(()));
        assert_eq!(check(b"0.0000e99999"), Ok(()));
        assert_eq!(check(b"1e-1000000000000000000000"), Ok(()));
        assert_eq!(kind(b"1e309"), Some(Kind::NumberOutOfRange));
        assert_eq!(kind(b"1e400"), Some(Kind::NumberOutOfRange));
        assert_eq!(
            kind(b"1e1000000000000000000000"),
            Some(Kind::NumberOutOfRange)
        );
        assert_eq!(kind(b"0.001e312"), Some(Kind::NumberOutOfRange));
        let integer = |digits: usize| format!("1{}", "0".repeat(digits - 1));
        assert_eq!(check(integer(309)), Ok(()));
        assert_eq!(kind(integer(310)), Some(Kind::NumberOutOfRange));
        // The same inside a container, where the number ends within the chunk.
        assert_eq!(check(format!("[{}]", integer(309))), Ok(()));
        assert_eq!(check(format!("[-{}.5]", integer(309))), Ok(()));
        assert_eq!(
            error_at(format!("[{},1]", integer(310)), &JsonLimits::new()),
            (Kind::NumberOutOfRange, 1)
        );
        assert_eq!(
            kind(format!("{{\"a\":-{}.5}}", integer(310))),
            Some(Kind::NumberOutOfRange)
        );
        assert_split_invariant(
            format!("[{},1]", integer(310)).as_bytes(),
            &JsonLimits::new(),
        );
        assert_eq!(check(format!("[{}e-10]", integer(315))), Ok(()));
        // The length bound: 1,100 bytes pass, 1,101 do not, whatever the value.
        let long = |bytes: usize| format!("0.{}1", "0".repeat(bytes - 3));
        assert_eq!(check(long(MAX_NUMBER_BYTES)), Ok(()));
        assert_eq!(
            error_at(
                format!("[{}]", long(MAX_NUMBER_BYTES + 1)),
                &JsonLimits::new()
            ),
            (Kind::NumberOutOfRange, 1)
        );
        // serde_json agrees where both refuse, and accepts what we accept.
        for accepted in ["1e308", "0.01e310", "-1e-99999", &integer(309)] {
            assert!(serde_accepts(accepted.as_bytes()), "{accepted}");
        }
        for refused in ["1e309", "1e400", "0.1e310", &integer(310)] {
            assert!(!serde_accepts(refused.as_bytes()), "{refused}");
        }
    }

    #[test]
    fn utf8_split_between_chunks_is_fine() {
        let document = "[\"\u{e9}\u{20ac}\u{1f600}\", {\"\u{1f600}\": \"\u{10ffff}\"}]";
        assert_split_invariant(document.as_bytes(), &JsonLimits::new());
        let bytes = document.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(check_split(bytes, &[cut], &JsonLimits::new()), Ok(()));
        }
    }

    #[test]
    fn plain_run_matches_a_byte_at_a_time_scan() {
        let naive = |bytes: &[u8]| {
            let length = bytes
                .iter()
                .position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
                .unwrap_or(bytes.len());
            (length, bytes[..length].iter().any(|&byte| byte >= 0x80))
        };
        let mut samples: Vec<Vec<u8>> = vec![Vec::new()];
        for special in [
            0x00, 0x1F, 0x20, b'"', b'\\', 0x7F, 0x80, 0xFF, b'!', b']', b'#',
        ] {
            for position in 0..20 {
                let mut sample = vec![b'a'; 20];
                sample[position] = special;
                samples.push(sample);
            }
        }
        for sample in samples {
            let run = plain_run(&sample);
            assert_eq!((run.length, run.non_ascii), naive(&sample), "{sample:?}");
            assert_eq!(
                run.quote,
                sample.get(run.length) == Some(&b'"'),
                "{sample:?}"
            );
        }
    }

    /// Bytes that make up JSON, plus any byte now and then.
    fn json_byte() -> impl Strategy<Value = u8> {
        let alphabet: Vec<u8> = b"{}[]:,\"\\ \n0123456789-+.eEtrufalsnbDdCc8Aa".to_vec();
        prop_oneof![
            4 => proptest::sample::select(alphabet),
            1 => any::<u8>(),
        ]
    }

    /// Pieces of string content: characters, escapes (surrogates often), stray bytes.
    fn string_piece() -> impl Strategy<Value = Vec<u8>> {
        let fixed: Vec<&'static [u8]> = vec![
            b"\\n",
            b"\\\"",
            b"\\\\",
            b"\\/",
            b"\\b",
            b"\\x",
            b"\\",
            b"\\u12",
            b"\\U0041",
            b"\xC3",
            b"\xE2\x82",
            b"\xF0\x9F\x98",
            b"\xED\xA0\x80",
            b"\xC0\xAF",
            b"\t",
        ];
        prop_oneof![
            3 => any::<char>().prop_map(|character| character.to_string().into_bytes()),
            2 => (0xD7F0_u32..0xE010).prop_map(|unit| format!("\\u{unit:04x}").into_bytes()),
            1 => any::<u16>().prop_map(|unit| format!("\\u{unit:04X}").into_bytes()),
            1 => proptest::sample::select(fixed).prop_map(<[u8]>::to_vec),
            1 => any::<u8>().prop_map(|byte| vec![byte]),
        ]
    }

    /// Arbitrary JSON values, shallow enough for serde_json's recursion limit.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter_map("finite", |float| Number::from_f64(float).map(Value::Number)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// `json` with every non-ASCII character written as a `\u` escape (surrogate pairs above
    /// U+FFFF). serde_json only writes non-ASCII inside strings, so this keeps the meaning.
    fn escape_non_ascii(json: &str) -> String {
        let mut escaped = String::with_capacity(json.len());
        for character in json.chars() {
            if character.is_ascii() {
                escaped.push(character);
            } else {
                for unit in character.encode_utf16(&mut [0; 2]) {
                    escaped.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        escaped
    }

    /// Cut points for `length` bytes, from arbitrary indices.
    fn cuts(length: usize, indices: &[Index]) -> Vec<usize> {
        let mut cuts: Vec<usize> = indices
            .iter()
            .map(|index| index.index(length + 1))
            .collect();
        cuts.sort_unstable();
        cuts
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_agree_with_serde_json(
            bytes in proptest::collection::vec(json_byte(), 0..64),
            indices in proptest::collection::vec(any::<Index>(), 0..4),
        ) {
            let whole = check_json(&bytes, &unlimited());
            prop_assert_eq!(check_split(&bytes, &cuts(bytes.len(), &indices), &unlimited()), whole);
            let _ = check_json(&bytes, &JsonLimits::new());
            assert_agrees_with_serde(&bytes);
        }

        #[test]
        fn raw_bytes_never_panic_and_agree_with_serde_json(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            indices in proptest::collection::vec(any::<Index>(), 0..4),
        ) {
            let whole = check_json(&bytes, &JsonLimits::new());
            prop_assert_eq!(check_split(&bytes, &cuts(bytes.len(), &indices), &JsonLimits::new()), whole);
            assert_agrees_with_serde(&bytes);
        }

        #[test]
        fn string_contents_agree_with_serde_json(
            pieces in proptest::collection::vec(string_piece(), 0..8),
            as_key in any::<bool>(),
            indices in proptest::collection::vec(any::<Index>(), 0..4),
        ) {
            let content = pieces.concat();
            let mut document = Vec::new();
            document.extend_from_slice(if as_key { b"{\"" } else { b"[\"" });
            document.extend_from_slice(&content);
            document.extend_from_slice(if as_key { b"\":0}" } else { b"\"]" });
            assert_agrees_with_serde(&document);
            let whole = check_json(&document, &JsonLimits::new());
            let cuts = cuts(document.len(), &indices);
            prop_assert_eq!(check_split(&document, &cuts, &JsonLimits::new()), whole);
        }

        #[test]
        fn serialized_values_are_accepted(
            value in json_value(),
            indices in proptest::collection::vec(any::<Index>(), 0..4),
        ) {
            let compact = serde_json::to_string(&value).unwrap();
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let escaped = escape_non_ascii(&compact);
            for document in [&compact, &pretty, &escaped] {
                let bytes = document.as_bytes();
                prop_assert_eq!(check_json(bytes, &JsonLimits::new()), Ok(()), "{}", document);
                let cuts = cuts(bytes.len(), &indices);
                prop_assert_eq!(check_split(bytes, &cuts, &JsonLimits::new()), Ok(()));
            }
        }

        #[test]
        fn mutated_values_agree_with_serde_json(
            value in json_value(),
            escape in any::<bool>(),
            edits in proptest::collection::vec((any::<Index>(), 0..3_u8, json_byte()), 1..4),
            indices in proptest::collection::vec(any::<Index>(), 0..4),
        ) {
            let json = serde_json::to_string(&value).unwrap();
            let mut bytes = if escape { escape_non_ascii(&json) } else { json }.into_bytes();
            for (at, edit, byte) in edits {
                match edit {
                    0 if !bytes.is_empty() => {
                        let at = at.index(bytes.len());
                        bytes[at] = byte;
                    }
                    1 if !bytes.is_empty() => {
                        bytes.remove(at.index(bytes.len()));
                    }
                    _ => bytes.insert(at.index(bytes.len() + 1), byte),
                }
            }
            assert_agrees_with_serde(&bytes);
            let whole = check_json(&bytes, &JsonLimits::new());
            prop_assert_eq!(check_split(&bytes, &cuts(bytes.len(), &indices), &JsonLimits::new()), whole);
        }

        #[test]
        fn a_key_escaped_differently_is_still_a_duplicate(key in any::<String>()) {
            let plain = serde_json::to_string(&key).unwrap();
            let escaped = escape_non_ascii(&plain);
            let limits = unlimited().reject_duplicate_keys(true);
            let document = format!("{{{plain}:1,{escaped}:2}}");
            prop_assert_eq!(kind_with(&document, &limits), Some(Kind::DuplicateKey));
            let all_escaped: String = key
                .encode_utf16()
                .map(|unit| format!("\\u{unit:04X}"))
                .collect();
            let document = format!("{{{plain}:1,\"{all_escaped}\":2}}");
            prop_assert_eq!(kind_with(&document, &limits), Some(Kind::DuplicateKey));
        }

        #[test]
        fn fast_paths_agree_with_the_byte_at_a_time_scan(
            json in keyed_json(),
            edits in proptest::collection::vec((any::<Index>(), 0..3_u8, json_byte()), 0..3),
            limits in prop_oneof![Just(JsonLimits::new()), small_limits()],
        ) {
            // Fed whole, tokens go through the fast paths; fed one byte at a time, they go
            // through the state machine.
            let mut bytes = json.into_bytes();
            for (at, edit, byte) in edits {
                match edit {
                    0 if !bytes.is_empty() => {
                        let at = at.index(bytes.len());
                        bytes[at] = byte;
                    }
                    1 if !bytes.is_empty() => {
                        bytes.remove(at.index(bytes.len()));
                    }
                    _ => bytes.insert(at.index(bytes.len() + 1), byte),
                }
            }
            let whole = check_json(&bytes, &limits);
            let mut scanner = JsonScanner::new(&limits);
            let bytewise = bytes
                .iter()
                .try_for_each(|byte| scanner.feed(std::slice::from_ref(byte)))
                .and_then(|()| scanner.finish());
            prop_assert_eq!(bytewise, whole, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    /// JSON text whose objects draw their keys from a few short names, some of them escaped,
    /// so that duplicate keys, and keys of equal length, are common.
    fn keyed_json() -> impl Strategy<Value = String> {
        let key = proptest::sample::select(vec![
            r#""a""#,
            r#""\u0061""#,
            r#""b""#,
            r#""ab""#,
            r#""id""#,
            r#""note""#,
            "\"\u{e9}\"",
            r#""\u00e9""#,
            r#""""#,
        ]);
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|boolean| boolean.to_string()),
            any::<i64>().prop_map(|integer| integer.to_string()),
            any::<f64>().prop_filter_map("finite", |float| {
                Number::from_f64(float).map(|number| number.to_string())
            }),
            "[a-z \u{e9}]{0,20}".prop_map(|string| serde_json::to_string(&string).unwrap()),
            any::<String>().prop_map(|string| serde_json::to_string(&string).unwrap()),
        ];
        leaf.prop_recursive(5, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|elements| format!("[{}]", elements.join(","))),
                proptest::collection::vec((key.clone(), inner), 0..6).prop_map(|entries| {
                    let entries: Vec<String> = entries
                        .iter()
                        .map(|(key, value)| format!("{key}:{value}"))
                        .collect();
                    format!("{{{}}}", entries.join(","))
                }),
            ]
        })
    }

    /// Limits small enough for generated documents to reach each of them.
    fn small_limits() -> impl Strategy<Value = JsonLimits> {
        (
            0_usize..6,
            0_usize..6,
            0_usize..6,
            0_usize..12,
            0_usize..4,
            0_usize..30,
            any::<bool>(),
        )
            .prop_map(
                |(depth, entries, elements, string, key, values, duplicates)| {
                    JsonLimits::new()
                        .max_depth(depth)
                        .max_object_entries(entries)
                        .max_array_elements(elements)
                        .max_string_bytes(string)
                        .max_key_bytes(key)
                        .max_values(values)
                        .reject_duplicate_keys(duplicates)
                },
            )
    }
}
