//! The pass itself: a [`DeserializeSeed`] that builds a `serde_json::Value` and enforces the
//! [`JsonLimits`] as it goes.
//!
//! Every count is checked before the pass reads further: a container's depth (and its place in
//! the value budget) before its first element, an array's length before the next element is
//! parsed, an object's entry count before the next key is parsed. A limit broken is recorded in
//! the [`Tally`] and surfaces as a `serde_json` custom error, which stops the parser; on the
//! way out, each container adds the index or key it was reading, so the error ends up with a
//! JSON pointer. Nothing is recorded for the path while the body is fine.

use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use super::error::{JsonLimitError, JsonLimitErrorKind as Kind};
use super::{JsonLimits, MAX_PARSER_DEPTH};

/// The longest pointer built; a [`Violation`](crate::Violation) keeps less still.
const MAX_POINTER_BYTES: usize = 512;

/// The key under which `serde_json` hands over a number as text when a crate in the build
/// enables its `arbitrary_precision` feature (features are unified across a build, so this
/// crate cannot rule it out). Its own `Value` recognises the key the same way.
const ARBITRARY_PRECISION_NUMBER: &str = "$serde_json::private::Number";

/// What the pass has counted so far, and the first limit broken.
pub(super) struct Tally<'l> {
    limits: &'l JsonLimits,
    /// `limits.max_depth`, capped at [`MAX_PARSER_DEPTH`].
    max_depth: usize,
    /// Containers open now.
    depth: usize,
    /// Values begun so far.
    values: usize,
    /// The limit broken (its kind, and its value for the message), if one was.
    broken: Option<(Kind, Option<usize>)>,
    /// While an error unwinds: where it happened, innermost first.
    path: Vec<Segment>,
}

/// One step of a JSON pointer.
enum Segment {
    Index(usize),
    Key(String),
}

impl<'l> Tally<'l> {
    pub(super) fn new(limits: &'l JsonLimits) -> Self {
        Self {
            limits,
            max_depth: limits.max_depth.min(MAX_PARSER_DEPTH),
            depth: 0,
            values: 0,
            broken: None,
            path: Vec::new(),
        }
    }

    /// Records a broken limit and returns the error that stops the parser.
    #[cold]
    fn refuse<E: de::Error>(&mut self, kind: Kind, limit: Option<usize>) -> E {
        self.broken = Some((kind, limit));
        E::custom(kind.describe())
    }

    /// Counts one more value against `max_values`.
    #[inline]
    fn value<E: de::Error>(&mut self) -> Result<(), E> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(self.refuse(Kind::TooManyValues, Some(self.limits.max_values)));
        }
        Ok(())
    }

    /// Counts a string value against `max_string_bytes`, and as a value.
    #[inline]
    fn string<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        if bytes > self.limits.max_string_bytes {
            return Err(self.refuse(Kind::StringTooLong, Some(self.limits.max_string_bytes)));
        }
        self.value()
    }

    /// Opens a container (already counted as a value): one level deeper.
    #[inline]
    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.refuse(Kind::TooDeep, Some(self.max_depth)));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Notes, while an error unwinds, which element or member it came from.
    #[cold]
    fn unwind(&mut self, segment: Segment) {
        self.path.push(segment);
    }

    /// The refusal: the limit broken if one was, else the parser's own, with its pointer.
    #[cold]
    pub(super) fn into_error(self, error: &serde_json::Error, bytes: &[u8]) -> JsonLimitError {
        let pointer = self.pointer();
        let (kind, limit) =
            self.broken
                .unwrap_or_else(|| match Kind::of_parser_error(error, bytes) {
                    // `serde_json`'s recursion limit, one level past the cap.
                    Kind::TooDeep => (Kind::TooDeep, Some(MAX_PARSER_DEPTH)),
                    kind => (kind, None),
                });
        JsonLimitError::new(kind, limit, error, bytes, pointer)
    }

    /// The path as an RFC 6901 JSON pointer, cut at about [`MAX_POINTER_BYTES`].
    fn pointer(&self) -> String {
        let mut pointer = String::new();
        for segment in self.path.iter().rev() {
            if pointer.len() >= MAX_POINTER_BYTES {
                break;
            }
            pointer.push('/');
            match segment {
                Segment::Index(index) => {
                    let _ = write!(pointer, "{index}");
                }
                Segment::Key(key) => {
                    for character in key.chars() {
                        if pointer.len() >= MAX_POINTER_BYTES {
                            break;
                        }
                        match character {
                            '~' => pointer.push_str("~0"),
                            '/' => pointer.push_str("~1"),
                            other => pointer.push(other),
                        }
                    }
                }
            }
        }
        pointer
    }
}

/// The seed (and visitor) for one value: builds it, counting as it goes.
pub(super) struct LimitedValue<'t, 'l> {
    tally: &'t mut Tally<'l>,
    /// This would be an array element one too many: refuse it before parsing it.
    over: bool,
}

impl<'t, 'l> LimitedValue<'t, 'l> {
    pub(super) fn new(tally: &'t mut Tally<'l>) -> Self {
        Self { tally, over: false }
    }
}

impl<'de> DeserializeSeed<'de> for LimitedValue<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.over {
            let limit = self.tally.limits.max_array_elements;
            return Err(self.tally.refuse(Kind::TooManyElements, Some(limit)));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LimitedValue<'_, '_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.tally.value()?;
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        self.tally.value()?;
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        self.tally.value()?;
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        self.tally.value()?;
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        self.tally.value()?;
        // `serde_json` refuses what no `f64` holds before it gets here; this is for form.
        match Number::from_f64(value) {
            Some(number) => Ok(Value::Number(number)),
            None => Err(self.tally.refuse(Kind::NumberOutOfRange, None)),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        self.tally.string(value.len())?;
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        self.tally.string(value.len())?;
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.tally.value()?;
        self.tally.enter()?;
        let max = self.tally.limits.max_array_elements;
        let mut elements = Vec::new();
        loop {
            let element = LimitedValue {
                tally: &mut *self.tally,
                over: elements.len() >= max,
            };
            match seq.next_element_seed(element) {
                Ok(Some(element)) => elements.push(element),
                Ok(None) => break,
                Err(error) => {
                    self.tally.unwind(Segment::Index(elements.len()));
                    return Err(error);
                }
            }
        }
        self.tally.leave();
        Ok(Value::Array(elements))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        // The first key is read before the object counts as a level: it may say that this is
        // no object but a number (see `ARBITRARY_PRECISION_NUMBER`). Reading one key (bounded
        // by `max_key_bytes`) descends into nothing, so the depth check still comes before
        // any nesting.
        self.tally.value()?;
        let max = self.tally.limits.max_object_entries;
        let mut key = access.next_key_seed(LimitedKey {
            tally: &mut *self.tally,
            over: max == 0,
        })?;
        if key.as_deref() == Some(ARBITRARY_PRECISION_NUMBER) {
            return self.arbitrary_precision_number(access);
        }
        self.tally.enter()?;
        let reject_duplicates = self.tally.limits.reject_duplicate_keys;
        let mut map = Map::new();
        let mut entries = 0_usize;
        while let Some(name) = key {
            let value = match access.next_value_seed(LimitedValue::new(&mut *self.tally)) {
                Ok(value) => value,
                Err(error) => {
                    self.tally.unwind(Segment::Key(name));
                    return Err(error);
                }
            };
            entries += 1;
            match map.entry(name) {
                Entry::Vacant(vacant) => {
                    vacant.insert(value);
                }
                Entry::Occupied(mut occupied) => {
                    if reject_duplicates {
                        self.tally.unwind(Segment::Key(occupied.key().clone()));
                        return Err(self.tally.refuse(Kind::DuplicateKey, None));
                    }
                    // Allowed: the last one wins, as with `serde_json`'s own `Value`.
                    occupied.insert(value);
                }
            }
            key = access.next_key_seed(LimitedKey {
                tally: &mut *self.tally,
                over: entries >= max,
            })?;
        }
        self.tally.leave();
        Ok(Value::Object(map))
    }
}

impl LimitedValue<'_, '_> {
    /// A number handed over as text (see [`ARBITRARY_PRECISION_NUMBER`]); it was counted as
    /// one value when its "object" began.
    #[cold]
    fn arbitrary_precision_number<'de, A: MapAccess<'de>>(
        self,
        mut access: A,
    ) -> Result<Value, A::Error> {
        let text: String = access.next_value()?;
        match text.parse::<Number>() {
            Ok(number) => Ok(Value::Number(number)),
            Err(_) => Err(self.tally.refuse(Kind::NumberOutOfRange, None)),
        }
    }
}

/// The seed (and visitor) for one object key: checks its length, or refuses it as an entry
/// one too many before parsing it.
struct LimitedKey<'t, 'l> {
    tally: &'t mut Tally<'l>,
    over: bool,
}

impl<'de> DeserializeSeed<'de> for LimitedKey<'_, '_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        if self.over {
            let limit = self.tally.limits.max_object_entries;
            return Err(self.tally.refuse(Kind::TooManyEntries, Some(limit)));
        }
        deserializer.deserialize_str(self)
    }
}

impl LimitedKey<'_, '_> {
    fn check<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        let limit = self.tally.limits.max_key_bytes;
        if bytes > limit {
            return Err(self.tally.refuse(Kind::KeyTooLong, Some(limit)));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for LimitedKey<'_, '_> {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: de::Error>(mut self, key: &str) -> Result<String, E> {
        self.check(key.len())?;
        Ok(key.to_owned())
    }

    fn visit_string<E: de::Error>(mut self, key: String) -> Result<String, E> {
        self.check(key.len())?;
        Ok(key)
    }
}
