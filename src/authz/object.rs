//! Object-level rules: a [`Field`] of the request compared with a [`Caller`] value.
//!
//! A comparison is decided on the request's own data: the path parameters of the matched
//! route (percent-decoded), a query parameter, a header, or a field of the JSON body by
//! JSON pointer, against the caller's subject or a claim. Absent data never allows: a
//! comparison with a missing side is *unknown*, and a requirement left unknown is refused.

use std::borrow::Cow;
use std::fmt;

use http::HeaderMap;
use http::header::HeaderName;
use serde_json::Value;

use super::requirement::{Requirement, Term};
use crate::principal::Principal;
use crate::route::ParamAt;

/// A piece of the request an object-level rule reads: [`param`], [`query`], [`header`] or
/// [`body`]. Compare it with the caller with [`equals`](Self::equals) or
/// [`is_in`](Self::is_in).
#[derive(Clone)]
pub struct Field(pub(crate) Source);

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (function, argument) = self.0.parts();
        write!(f, "{function}({})", Quoted(argument))
    }
}

impl Source {
    /// The function and argument of its text form.
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::Param { name, .. } => ("param", name),
            Self::Query(name) => ("query", name),
            Self::Header(name) => ("header", name),
            Self::Body(pointer) => ("body", pointer),
        }
    }
}

#[derive(Clone)]
pub(crate) enum Source {
    /// A path parameter; `at` is where the route's pattern puts it, bound when the rules
    /// are built (`None` until then, or in [`require`](super::require)).
    Param {
        name: Box<str>,
        at: Option<ParamAt>,
    },
    Query(Box<str>),
    /// Lower-case, as [`HeaderName`]s are.
    Header(Box<str>),
    /// A JSON pointer into the validated body.
    Body(Box<str>),
}

impl PartialEq for Source {
    /// The binding of a parameter to its position is not part of what the rule says.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Param { name: a, .. }, Self::Param { name: b, .. })
            | (Self::Query(a), Self::Query(b))
            | (Self::Header(a), Self::Header(b))
            | (Self::Body(a), Self::Body(b)) => a == b,
            _ => false,
        }
    }
}

/// What of the caller a [`Field`] is compared with: [`subject`] or [`Caller::claim`].
#[derive(Clone, PartialEq)]
pub struct Caller(pub(crate) Held);

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subject => f.write_str("subject()"),
            Self::Claim(path) => write!(f, "claim({})", Quoted(path)),
        }
    }
}

#[derive(Clone, PartialEq)]
pub(crate) enum Held {
    Subject,
    /// A claim at a dotted path (`org.id`).
    Claim(Box<str>),
}

/// How a field relates to the caller's value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Relation {
    /// The same value, with the same JSON type.
    Equals,
    /// One of the caller's values (an array claim; a single value is a list of one).
    In,
}

/// A comparison: the term of a requirement that reads the request.
#[derive(Clone, PartialEq)]
pub(crate) struct Comparison {
    pub(crate) field: Source,
    pub(crate) relation: Relation,
    pub(crate) caller: Held,
}

/// The path parameter `name` of the matched route (`/orders/{id}` → `param("id")`),
/// percent-decoded: `/users/al%69ce` gives `alice`. Values that do not decode to UTF-8 are
/// absent. In [`RouteRules`](super::RouteRules), the name must be in the rule's pattern
/// (checked at build).
pub fn param(name: impl Into<Box<str>>) -> Field {
    Field(Source::Param {
        name: name.into(),
        at: None,
    })
}

/// The query parameter `name`, form-decoded. A parameter given more than once is ambiguous
/// (which one would the handler read?) and counts as absent.
pub fn query(name: impl Into<Box<str>>) -> Field {
    Field(Source::Query(name.into()))
}

/// The header `name` (any case), as text. A header sent more than once, or that is not
/// visible ASCII, counts as absent.
pub fn header(name: impl Into<Box<str>>) -> Field {
    Field(Source::Header(name.into().to_ascii_lowercase().into()))
}

/// The field at JSON `pointer` (RFC 6901: `/customer/id`) of the request's JSON body, read
/// from the body the validation layer has parsed and checked against the route's schema,
/// never parsed again. A rule reading the body needs a body schema for its route (a build
/// error otherwise, in the gateway) and is decided after validation.
pub fn body(pointer: impl Into<Box<str>>) -> Field {
    Field(Source::Body(pointer.into()))
}

/// The caller's subject ([`Principal::subject`]): `param("id").equals(subject())`.
#[must_use]
pub fn subject() -> Caller {
    Caller(Held::Subject)
}

impl Caller {
    /// The caller's subject; the same as [`subject`].
    #[must_use]
    pub fn subject() -> Self {
        subject()
    }

    /// The caller's claim at dotted `path` (`tenant_id`, `org.id`), as the token or key
    /// carries it: a claim `1` does not equal a parameter `"1"`.
    pub fn claim(path: impl Into<Box<str>>) -> Self {
        Self(Held::Claim(path.into()))
    }
}

impl Field {
    /// The field equals the caller's value: same JSON type and value (a path parameter is
    /// a string, so it never equals a number claim).
    #[must_use]
    pub fn equals(self, caller: Caller) -> Requirement {
        self.relate(Relation::Equals, caller)
    }

    /// The field is one of the caller's values: an element of an array claim, or equal to
    /// a single value.
    #[must_use]
    pub fn is_in(self, caller: Caller) -> Requirement {
        self.relate(Relation::In, caller)
    }

    fn relate(self, relation: Relation, caller: Caller) -> Requirement {
        Requirement::from_term(Term::Compare(Box::new(Comparison {
            field: self.0,
            relation,
            caller: caller.0,
        })))
    }
}

/// Three-valued truth: a comparison with a side missing is neither met nor failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Truth {
    No,
    Yes,
    Unknown,
}

impl From<bool> for Truth {
    fn from(value: bool) -> Self {
        if value { Self::Yes } else { Self::No }
    }
}

/// The request data a requirement may read.
#[derive(Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub(crate) path: &'a str,
    pub(crate) params: Params<'a>,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: Option<&'a HeaderMap>,
    pub(crate) body: BodyFacts<'a>,
}

/// Where path parameters come from.
#[derive(Clone, Copy)]
pub(crate) enum Params<'a> {
    /// The path a rule table matched: each parameter is where the rule's pattern puts it.
    Path,
    /// Already decoded, by name: the router's own (axum's, under [`require`](super::require)).
    Decoded(&'a [(String, String)]),
    None,
}

/// The body, as far as it is known.
#[derive(Clone, Copy)]
pub(crate) enum BodyFacts<'a> {
    /// Not parsed yet: authorization runs before validation. A rule reading it is decided
    /// later, when the gateway lets it be.
    NotYet,
    /// Parsed and valid.
    #[cfg_attr(not(any(feature = "validate", feature = "config")), allow(dead_code))]
    Parsed(&'a Value),
    /// There is no JSON body.
    Absent,
}

impl Facts<'static> {
    /// No request at all: every comparison is unknown.
    pub(crate) const NONE: Self = Facts {
        path: "",
        params: Params::None,
        query: None,
        headers: None,
        body: BodyFacts::Absent,
    };
}

/// A field's value: text from the URL or headers, or JSON from the body.
enum Found<'a> {
    Text(Cow<'a, str>),
    Json(&'a Value),
}

impl Comparison {
    /// Compares, noting in `pending` when the body was needed but is not parsed yet.
    pub(crate) fn eval(
        &self,
        principal: &Principal,
        facts: &Facts<'_>,
        pending: &mut bool,
    ) -> Truth {
        let Some(found) = self.find(facts, pending) else {
            return Truth::Unknown;
        };
        let held = match &self.caller {
            Held::Subject => Found::Text(Cow::Borrowed(principal.subject())),
            Held::Claim(path) => match principal.claim(path) {
                Some(value) => Found::Json(value),
                None => return Truth::Unknown,
            },
        };
        Truth::from(match (self.relation, &held) {
            (Relation::In, Found::Json(Value::Array(values))) => {
                values.iter().any(|value| same(&found, &Found::Json(value)))
            }
            _ => same(&found, &held),
        })
    }

    fn find<'a>(&self, facts: &Facts<'a>, pending: &mut bool) -> Option<Found<'a>> {
        match &self.field {
            Source::Param { name, at } => match facts.params {
                Params::Path => {
                    let raw = (*at)?.value(facts.path)?;
                    if !raw.bytes().any(|byte| byte == b'%') {
                        // Nothing to decode: the common case, without the decoder's passes.
                        return Some(Found::Text(Cow::Borrowed(raw)));
                    }
                    percent_encoding::percent_decode_str(raw)
                        .decode_utf8()
                        .ok()
                        .map(Found::Text)
                }
                Params::Decoded(params) => params
                    .iter()
                    .find(|(held, _)| **held == **name)
                    .map(|(_, value)| Found::Text(Cow::Borrowed(value.as_str()))),
                Params::None => None,
            },
            Source::Query(name) => crate::query::single_value(facts.query?, name).map(Found::Text),
            Source::Header(name) => {
                let mut values = facts.headers?.get_all(name.as_ref()).iter();
                let value = values.next()?;
                if values.next().is_some() {
                    return None;
                }
                value
                    .to_str()
                    .ok()
                    .map(|text| Found::Text(Cow::Borrowed(text)))
            }
            Source::Body(pointer) => match facts.body {
                BodyFacts::NotYet => {
                    *pending = true;
                    None
                }
                BodyFacts::Parsed(value) => value.pointer(pointer).map(Found::Json),
                BodyFacts::Absent => None,
            },
        }
    }

    /// Why the comparison can never hold, if it cannot.
    pub(crate) fn defect(&self) -> Option<&'static str> {
        match &self.field {
            Source::Header(name) if HeaderName::from_bytes(name.as_bytes()).is_err() => {
                Some("a `header` name is not a valid HTTP header name")
            }
            Source::Body(pointer) if !pointer.is_empty() && !pointer.starts_with('/') => {
                Some("a `body` JSON pointer must be empty or start with `/`")
            }
            Source::Param { name, .. } | Source::Query(name) if name.is_empty() => {
                Some("a parameter name is empty")
            }
            _ => match &self.caller {
                Held::Claim(path) if path.is_empty() => Some("a claim path is empty"),
                _ => None,
            },
        }
    }
}

/// Strict equality: the same JSON type and value. Text from the URL or a header equals only
/// a JSON string; numbers compare by value (`1` equals `1.0`).
fn same(found: &Found<'_>, held: &Found<'_>) -> bool {
    match (found, held) {
        (Found::Text(a), Found::Text(b)) => a == b,
        (Found::Text(text), Found::Json(value)) | (Found::Json(value), Found::Text(text)) => {
            value.as_str() == Some(text.as_ref())
        }
        (Found::Json(a), Found::Json(b)) => same_json(a, b),
    }
}

pub(crate) fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => same_number(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, value)| b.get(key).is_some_and(|other| same_json(value, other)))
        }
        _ => a == b,
    }
}

/// Numbers by value, exactly: two integers as integers, two floats as floats, and an
/// integer and a float only when the float is whole and is that integer (so `1` equals `1.0`,
/// but `9007199254740993` does not equal `9007199254740992.0`, which `f64` cannot tell
/// apart).
pub(crate) fn same_number(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    let integer = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (integer(a), integer(b)) {
        (Some(a), Some(b)) => a == b,
        (None, None) => a.as_f64() == b.as_f64(),
        (Some(int), None) => b.as_f64().is_some_and(|float| float_is(float, int)),
        (None, Some(int)) => a.as_f64().is_some_and(|float| float_is(float, int)),
    }
}

/// Whether `float` is exactly the integer `int`.
fn float_is(float: f64, int: i128) -> bool {
    // Whole, within ±2^64 (beyond any JSON integer serde_json keeps), then exact both ways.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    if float.fract() != 0.0 || !(-LIMIT..=LIMIT).contains(&float) {
        return false;
    }
    // In range and whole: the cast is exact, and so is the way back.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let exact = float as i128 == int && int as f64 == float;
    exact
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (function, argument) = self.field.parts();
        let relation = match self.relation {
            Relation::Equals => "==",
            Relation::In => "in",
        };
        write!(
            f,
            "{function}({}) {relation} {}",
            Quoted(argument),
            self.caller
        )
    }
}

/// A string as a JSON string literal, the form the requirement parser reads back.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Serialising a `str` cannot fail.
        let quoted = serde_json::to_string(self.0).map_err(|_| fmt::Error)?;
        f.write_str(&quoted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthMethod;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_and_never_with_text() {
        assert!(same_json(&json!(1), &json!(1.0)));
        assert!(same_json(&json!([1, {"a": 2}]), &json!([1.0, {"a": 2}])));
        assert!(!same_json(&json!(1), &json!("1")));
        assert!(!same_json(&json!(-1), &json!(u64::MAX)));
        // f64 cannot tell these apart; an integer and a float are equal only exactly.
        assert!(!same_json(
            &json!(9_007_199_254_740_993_u64),
            &json!(9_007_199_254_740_992.0)
        ));
        assert!(same_json(
            &json!(9_007_199_254_740_992_u64),
            &json!(9_007_199_254_740_992.0)
        ));
        assert!(!same_json(&json!(1), &json!(1.5)));
        assert!(same_json(&json!(-3), &json!(-3.0)));
        assert!(!same(&Found::Text("1".into()), &Found::Json(&json!(1))));
        assert!(same(&Found::Text("1".into()), &Found::Json(&json!("1"))));
    }

    #[test]
    fn absent_data_is_unknown_not_false() {
        let principal = Principal::builder("alice", AuthMethod::Bearer).build();
        let Requirement(Term::Compare(comparison)) = query("owner").equals(subject()) else {
            unreachable!()
        };
        let mut pending = false;
        assert_eq!(
            comparison.eval(&principal, &Facts::NONE, &mut pending),
            Truth::Unknown
        );
        let facts = Facts {
            query: Some("owner=alice&owner=bob"),
            ..Facts::NONE
        };
        assert_eq!(
            comparison.eval(&principal, &facts, &mut pending),
            Truth::Unknown
        );
        let facts = Facts {
            query: Some("owner=al%69ce"),
            ..Facts::NONE
        };
        assert_eq!(
            comparison.eval(&principal, &facts, &mut pending),
            Truth::Yes
        );
        assert!(!pending);
    }
}
