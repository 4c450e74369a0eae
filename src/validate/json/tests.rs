//! The one pass against its limits and against `serde_json`: a body is accepted exactly when
//! `serde_json` accepts it and the limits hold, and then the value is `serde_json`'s.

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Number, Value};

use super::error::{JsonLimitError, JsonLimitErrorKind as Kind};
use super::{JsonLimits, MAX_PARSER_DEPTH, parse};
use crate::error::ConfigError;

/// Limits nothing real reaches, with duplicate keys allowed: `serde_json` alone decides, up to
/// the depth cap that keeps its recursion limit ours.
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
    parse(input.as_ref(), &JsonLimits::new()).map(drop)
}

fn kind(input: impl AsRef<[u8]>) -> Option<Kind> {
    check(input).err().map(|error| error.kind())
}

fn kind_with(input: impl AsRef<[u8]>, limits: &JsonLimits) -> Option<Kind> {
    parse(input.as_ref(), limits)
        .err()
        .map(|error| error.kind())
}

/// The kind and JSON pointer of the refusal.
fn error_at(input: impl AsRef<[u8]>, limits: &JsonLimits) -> (Kind, String) {
    match parse(input.as_ref(), limits) {
        Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(input.as_ref())),
        Err(error) => (error.kind(), error.pointer().to_owned()),
    }
}

/// Both refuse, or both accept with the same value.
fn assert_agrees_with_serde(input: &[u8]) {
    let ours = parse(input, &unlimited());
    let theirs = serde_json::from_slice::<Value>(input);
    match (&ours, &theirs) {
        (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "ours {ours:?}, serde_json {theirs:?}, input {:?}",
            String::from_utf8_lossy(input)
        ),
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
    assert_eq!(limits.max_depth, 64);
    assert_eq!(limits.max_object_entries, 1_000);
    assert_eq!(limits.max_array_elements, 10_000);
    assert_eq!(limits.max_string_bytes, 1024 * 1024);
    assert_eq!(limits.max_key_bytes, 1_024);
    assert_eq!(limits.max_values, 100_000);
    assert!(limits.reject_duplicate_keys);
    assert_eq!(limits.validate(), Ok(()));
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
    assert_eq!(limits.max_depth, 1);
    assert_eq!(limits.max_object_entries, 2);
    assert_eq!(limits.max_array_elements, 3);
    assert_eq!(limits.max_string_bytes, 4);
    assert_eq!(limits.max_key_bytes, 5);
    assert_eq!(limits.max_values, 6);
    assert!(!limits.reject_duplicate_keys);
}

#[test]
fn a_zero_limit_is_refused_by_name() {
    let cases: [(JsonLimits, &str); 6] = [
        (JsonLimits::new().max_depth(0), "json_limits.max_depth"),
        (
            JsonLimits::new().max_object_entries(0),
            "json_limits.max_object_entries",
        ),
        (
            JsonLimits::new().max_array_elements(0),
            "json_limits.max_array_elements",
        ),
        (
            JsonLimits::new().max_string_bytes(0),
            "json_limits.max_string_bytes",
        ),
        (
            JsonLimits::new().max_key_bytes(0),
            "json_limits.max_key_bytes",
        ),
        (JsonLimits::new().max_values(0), "json_limits.max_values"),
    ];
    for (limits, setting) in cases {
        assert_eq!(
            limits.validate(),
            Err(ConfigError::InvalidLimit { setting }),
            "{setting}"
        );
    }
    assert_eq!(JsonLimits::new().max_depth(1).validate(), Ok(()));
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
    assert_eq!(error.to_string(), "nesting deeper than 64 at byte 65");
    let error = check(b"{\"a\":1,\"a\":2}").unwrap_err();
    assert_eq!(error.to_string(), "duplicate object key at byte 13");
    let error = check(b"[1, x]").unwrap_err();
    assert_eq!(error.to_string(), "invalid JSON at byte 5");
    let error = check(b"1e999").unwrap_err();
    assert_eq!(error.to_string(), "number out of range at byte 5");
    // Offsets count across lines.
    let error = check(b"{\n  \"a\": [1,\n  2,,3]\n}").unwrap_err();
    assert_eq!(error.to_string(), "invalid JSON at byte 18");
    let violation = error.to_violation();
    assert_eq!(violation.pointer(), "/a/2");
    assert_eq!(violation.keyword(), "json_syntax");
}

#[test]
fn accepts_valid_documents() {
    for document in VALID {
        assert!(check(document).is_ok(), "{document:?}");
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
fn pointers_name_the_offending_value() {
    let defaults = JsonLimits::new();
    assert_eq!(
        error_at(b"[1,]", &defaults),
        (Kind::Syntax, "/1".to_owned())
    );
    assert_eq!(
        error_at(b"{} x", &defaults),
        (Kind::TrailingData, String::new())
    );
    assert_eq!(error_at(b"  ", &defaults), (Kind::Empty, String::new()));
    assert_eq!(
        error_at(b"{\"a\":", &defaults),
        (Kind::Truncated, "/a".to_owned())
    );
    assert_eq!(
        error_at(b"[0, {\"x\": [1e999]}]", &defaults),
        (Kind::NumberOutOfRange, "/1/x/0".to_owned())
    );
    assert_eq!(
        error_at(b"{\"a/b~c\": \"\xFF\"}", &defaults),
        (Kind::InvalidUtf8, "/a~1b~0c".to_owned())
    );
    assert_eq!(
        error_at(b"{\"a\":{\"b\":1,\"b\":2}}", &defaults),
        (Kind::DuplicateKey, "/a/b".to_owned())
    );
    let small = JsonLimits::new().max_string_bytes(3).max_key_bytes(2);
    assert_eq!(
        error_at(b"[\"abc\", \"abcd\"]", &small),
        (Kind::StringTooLong, "/1".to_owned())
    );
    // A key too long, or one entry too many, is the object's fault.
    assert_eq!(
        error_at(b"{\"x\":{\"abc\":1}}", &small),
        (Kind::KeyTooLong, "/x".to_owned())
    );
    // A pointer never grows past a bound, however deep or long the keys.
    let limits = unlimited().max_key_bytes(4096);
    let key = "k".repeat(4000);
    let document = format!("{{\"{key}\":{{\"{key}\":[1,]}}}}");
    let (kind, pointer) = error_at(&document, &limits);
    assert_eq!(kind, Kind::Syntax);
    assert!(pointer.len() < 600, "{}", pointer.len());
}

#[test]
fn refuses_a_leading_byte_order_mark() {
    assert_eq!(
        error_at(b"\xEF\xBB\xBF{}", &JsonLimits::new()),
        (Kind::Syntax, String::new())
    );
}

#[test]
fn trailing_whitespace_is_fine_and_anything_else_is_not() {
    assert!(check(b"{}  \n").is_ok());
    assert!(check(b"1 \r\n\t").is_ok());
    assert_eq!(kind(b"{} x"), Some(Kind::TrailingData));
    assert_eq!(kind(b"{}{}"), Some(Kind::TrailingData));
    assert_eq!(kind(b"\"a\"\"b\""), Some(Kind::TrailingData));
    assert_eq!(kind(b"{}\0"), Some(Kind::TrailingData));
}

#[test]
fn empty_and_truncated_bodies() {
    assert_eq!(kind(b""), Some(Kind::Empty));
    assert_eq!(kind(b"   \n"), Some(Kind::Empty));
    assert_eq!(kind(b"{\"a\":"), Some(Kind::Truncated));
    assert!(check(b"12").is_ok());
    assert_eq!(kind(b"[12"), Some(Kind::Truncated));
    assert_eq!(kind(b"\"\xC3"), Some(Kind::Truncated));
}

#[test]
fn depth_limit_is_inclusive() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(check(nested(64)).is_ok());
    assert_eq!(
        error_at(nested(65), &JsonLimits::new()),
        (Kind::TooDeep, "/0".repeat(64))
    );
    // Objects count as well, and mixed nesting too.
    let objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    assert!(check(objects(64)).is_ok());
    assert_eq!(kind(objects(65)), Some(Kind::TooDeep));
    let mixed = |depth: usize| {
        format!(
            "{}1{}",
            "[{\"a\":".repeat(depth / 2),
            "}]".repeat(depth / 2)
        )
    };
    assert!(check(mixed(64)).is_ok());
    assert_eq!(kind(mixed(66)), Some(Kind::TooDeep));
    // Depth one: scalars and flat containers only.
    let flat = JsonLimits::new().max_depth(1);
    assert!(parse(b"1", &flat).is_ok());
    assert!(parse(b"[1,{}]", &flat).is_err());
    assert!(parse(b"[1]", &flat).is_ok());
    assert_eq!(kind_with(b"[[]]", &flat), Some(Kind::TooDeep));
}

#[test]
fn ten_thousand_open_brackets_are_too_deep() {
    let body = "[".repeat(10_000);
    assert_eq!(
        error_at(&body, &JsonLimits::new()),
        (Kind::TooDeep, "/0".repeat(64))
    );
    let objects = "{\"a\":".repeat(10_000);
    assert_eq!(kind(objects), Some(Kind::TooDeep));
}

#[test]
fn depth_is_capped_below_serde_json_recursion_limit() {
    let limits = unlimited();
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(parse(nested(MAX_PARSER_DEPTH).as_bytes(), &limits).is_ok());
    let error = parse(nested(MAX_PARSER_DEPTH + 1).as_bytes(), &limits).unwrap_err();
    assert_eq!(error.kind(), Kind::TooDeep);
    assert!(error.to_string().starts_with("nesting deeper than 127"));
    // Far deeper than any thread's stack could recurse: refused at the cap, cheaply.
    let deep = format!("{}{}", "[".repeat(500_000), "]".repeat(500_000));
    assert_eq!(kind_with(deep, &limits), Some(Kind::TooDeep));
    let objects = format!("{}null{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert_eq!(kind_with(objects, &limits), Some(Kind::TooDeep));
}

#[test]
fn nesting_at_the_cap_fits_a_small_stack() {
    // The pass recurses once per level; at the cap it must fit well inside the 2 MiB a
    // spawned thread (and a tokio worker) gets by default, even in a debug build.
    let document = format!(
        "{}1{}",
        "[{\"a\":".repeat(MAX_PARSER_DEPTH / 2),
        "}]".repeat(MAX_PARSER_DEPTH / 2)
    );
    let worker = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || parse(document.as_bytes(), &unlimited()).is_ok())
        .expect("thread");
    assert!(worker.join().expect("no stack overflow"));
}

#[test]
fn object_entries_limit_is_inclusive() {
    let object = |entries: usize| {
        let body: Vec<String> = (0..entries).map(|i| format!("\"k{i}\":{i}")).collect();
        format!("{{{}}}", body.join(","))
    };
    assert!(check(object(1_000)).is_ok());
    let over = format!("[{}]", object(1_001));
    assert_eq!(
        error_at(&over, &JsonLimits::new()),
        (Kind::TooManyEntries, "/0".to_owned())
    );
    // Duplicates count as entries when they are allowed.
    let limits = JsonLimits::new()
        .max_object_entries(2)
        .reject_duplicate_keys(false);
    assert_eq!(
        kind_with(b"{\"a\":1,\"a\":2,\"a\":3}", &limits),
        Some(Kind::TooManyEntries)
    );
}

#[test]
fn array_elements_limit_is_inclusive() {
    let array = |elements: usize| format!("[{}]", vec!["0"; elements].join(","));
    assert!(check(array(10_000)).is_ok());
    assert_eq!(
        error_at(array(10_001), &JsonLimits::new()),
        (Kind::TooManyElements, "/10000".to_owned())
    );
}

#[test]
fn string_length_limit_is_inclusive_and_counts_bytes_after_unescaping() {
    let string = |length: usize| format!("\"{}\"", "a".repeat(length));
    let mib = 1024 * 1024;
    assert!(check(string(mib)).is_ok());
    assert_eq!(kind(string(mib + 1)), Some(Kind::StringTooLong));
    let small = JsonLimits::new().max_string_bytes(3);
    // `\u00e9` is é: two bytes of UTF-8; `\n` is one byte.
    assert!(parse(b"\"\\u00e9a\"", &small).is_ok());
    assert_eq!(
        kind_with(b"\"\\u00e9\\u00e9\"", &small),
        Some(Kind::StringTooLong)
    );
    assert!(parse(b"\"\\n\\n\\n\"", &small).is_ok());
    assert_eq!(
        kind_with(b"\"\\n\\n\\n\\n\"", &small),
        Some(Kind::StringTooLong)
    );
    assert!(parse("\"\u{e9}a\"".as_bytes(), &small).is_ok());
    assert_eq!(
        kind_with("\"\u{e9}\u{e9}\"", &small),
        Some(Kind::StringTooLong)
    );
    // Keys are checked against their own limit only.
    let keys = JsonLimits::new().max_string_bytes(1).max_key_bytes(8);
    assert!(parse(b"{\"abcdefgh\":\"a\"}", &keys).is_ok());
}

#[test]
fn key_length_limit_is_inclusive() {
    let key = |length: usize| format!("{{\"{}\":1}}", "k".repeat(length));
    assert!(check(key(1_024)).is_ok());
    assert_eq!(
        error_at(key(1_025), &JsonLimits::new()),
        (Kind::KeyTooLong, String::new())
    );
    let small = JsonLimits::new().max_key_bytes(2);
    assert!(parse(b"{\"\\u00e9\":1}", &small).is_ok());
    assert_eq!(
        kind_with(b"{\"\\u00e9a\":1}", &small),
        Some(Kind::KeyTooLong)
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
    assert!(check(document(9_998)).is_ok());
    assert_eq!(kind(document(9_999)), Some(Kind::TooManyValues));
    let five = JsonLimits::new().max_values(5);
    assert!(parse(b"{\"a\":[1,2],\"b\":null}", &five).is_ok());
    assert_eq!(
        error_at(b"{\"a\":[1,2],\"b\":[null]}", &five),
        (Kind::TooManyValues, "/b/0".to_owned())
    );
}

#[test]
fn duplicate_keys_are_compared_after_unescaping() {
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
        assert!(
            check(document).is_ok(),
            "{:?}",
            String::from_utf8_lossy(document)
        );
    }
    // Allowed, the last one wins, as in `serde_json`'s own `Value`.
    let value = parse(b"{\"a\":1,\"a\":2}", &unlimited()).unwrap();
    assert_eq!(value, serde_json::json!({"a": 2}));
}

#[test]
fn duplicates_are_found_in_objects_of_any_size() {
    let object = |keys: &[String]| {
        let entries: Vec<String> = keys.iter().map(|key| format!("\"{key}\":0")).collect();
        format!("{{{}}}", entries.join(","))
    };
    let numbered = |count: usize| (0..count).map(|i| format!("k{i}")).collect::<Vec<_>>();
    for count in [1, 2, 15, 16, 17, 100, 1_000] {
        assert!(check(object(&numbered(count))).is_ok(), "{count} keys");
    }
    for (count, repeated) in [(2, 0), (16, 15), (17, 3), (40, 39), (999, 500)] {
        let mut keys = numbered(count);
        keys.push(keys[repeated].clone());
        assert_eq!(
            kind(object(&keys)),
            Some(Kind::DuplicateKey),
            "{count} keys, repeating {repeated}"
        );
    }
    let huge_key = "y".repeat(1_000);
    assert_eq!(
        kind(object(&[huge_key.clone(), huge_key])),
        Some(Kind::DuplicateKey)
    );
}

#[test]
fn numbers_out_of_range() {
    assert!(check(b"1e308").is_ok());
    assert!(check(b"1.7976931348623157e308").is_ok());
    assert!(check(b"0.01e310").is_ok());
    assert!(check(b"-1e-99999").is_ok());
    assert!(check(b"0.0000e99999").is_ok());
    assert!(check(b"1e-1000000000000000000000").is_ok());
    // Between `f64::MAX` and `1e309`: out of range now, where the old scan let the parser
    // refuse it as a syntax error.
    assert_eq!(kind(b"1.8e308"), Some(Kind::NumberOutOfRange));
    assert_eq!(kind(b"1e309"), Some(Kind::NumberOutOfRange));
    assert_eq!(
        kind(b"1e1000000000000000000000"),
        Some(Kind::NumberOutOfRange)
    );
    assert_eq!(kind(b"0.001e312"), Some(Kind::NumberOutOfRange));
    let integer = |digits: usize| format!("1{}", "0".repeat(digits - 1));
    assert!(check(integer(309)).is_ok());
    assert_eq!(kind(integer(310)), Some(Kind::NumberOutOfRange));
    assert_eq!(
        error_at(format!("[{},1]", integer(310)), &JsonLimits::new()),
        (Kind::NumberOutOfRange, "/0".to_owned())
    );
    assert!(check(format!("[{}e-10]", integer(315))).is_ok());
}

/// Depth, largest object and array, longest string and key, and values, of a value.
#[derive(Debug, Default)]
struct Shape {
    depth: usize,
    entries: usize,
    elements: usize,
    string: usize,
    key: usize,
    values: usize,
}

fn shape(value: &Value, depth: usize, into: &mut Shape) {
    into.values += 1;
    match value {
        Value::Array(elements) => {
            into.depth = into.depth.max(depth + 1);
            into.elements = into.elements.max(elements.len());
            for element in elements {
                shape(element, depth + 1, into);
            }
        }
        Value::Object(map) => {
            into.depth = into.depth.max(depth + 1);
            into.entries = into.entries.max(map.len());
            for (key, value) in map {
                into.key = into.key.max(key.len());
                shape(value, depth + 1, into);
            }
        }
        Value::String(string) => into.string = into.string.max(string.len()),
        _ => {}
    }
}

fn within(shape: &Shape, limits: &JsonLimits) -> bool {
    shape.depth <= limits.max_depth
        && shape.entries <= limits.max_object_entries
        && shape.elements <= limits.max_array_elements
        && shape.string <= limits.max_string_bytes
        && shape.key <= limits.max_key_bytes
        && shape.values <= limits.max_values
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

/// Arbitrary JSON values, within the depth cap.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |float| Number::from_f64(float).map(Value::Number)),
        any::<String>().prop_map(Value::String),
        "[a-c]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-e]{0,3}|.{0,4}", inner), 0..6)
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

/// Limits small enough for generated documents to reach each of them.
fn small_limits() -> impl Strategy<Value = JsonLimits> {
    (
        1_usize..6,
        1_usize..6,
        1_usize..6,
        1_usize..12,
        1_usize..4,
        1_usize..30,
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

fn mutate(mut bytes: Vec<u8>, edits: Vec<(Index, u8, u8)>) -> Vec<u8> {
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
    bytes
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_agree_with_serde_json(
        bytes in proptest::collection::vec(json_byte(), 0..64),
    ) {
        let _ = parse(&bytes, &JsonLimits::new());
        assert_agrees_with_serde(&bytes);
    }

    #[test]
    fn raw_bytes_never_panic_and_agree_with_serde_json(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = parse(&bytes, &JsonLimits::new());
        assert_agrees_with_serde(&bytes);
    }

    #[test]
    fn string_contents_agree_with_serde_json(
        pieces in proptest::collection::vec(string_piece(), 0..8),
        as_key in any::<bool>(),
    ) {
        let content = pieces.concat();
        let mut document = Vec::new();
        document.extend_from_slice(if as_key { b"{\"" } else { b"[\"" });
        document.extend_from_slice(&content);
        document.extend_from_slice(if as_key { b"\":0}" } else { b"\"]" });
        assert_agrees_with_serde(&document);
    }

    #[test]
    fn serialized_values_are_accepted_as_serde_json_reads_them(value in json_value()) {
        let compact = serde_json::to_string(&value).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let escaped = escape_non_ascii(&compact);
        for document in [&compact, &pretty, &escaped] {
            // Compared with serde_json's reading, not with `value`: without its
            // `float_roundtrip` feature, serde_json may read a float one ulp away.
            let parsed = parse(document.as_bytes(), &JsonLimits::new());
            let theirs = serde_json::from_str::<Value>(document).ok();
            prop_assert!(theirs.is_some());
            prop_assert_eq!(parsed.ok(), theirs, "{}", document);
        }
    }

    #[test]
    fn accepted_exactly_when_the_limits_hold(
        value in json_value(),
        limits in small_limits(),
        escape in any::<bool>(),
    ) {
        // Serialized from a `Value`, so no duplicate keys: the limits alone decide.
        let json = serde_json::to_string(&value).unwrap();
        let json = if escape { escape_non_ascii(&json) } else { json };
        let mut measured = Shape::default();
        shape(&value, 0, &mut measured);
        let ours = parse(json.as_bytes(), &limits);
        prop_assert_eq!(ours.is_ok(), within(&measured, &limits), "{} {:?} {:?}", json, measured, ours);
        if let Ok(parsed) = ours {
            prop_assert_eq!(Some(parsed), serde_json::from_str::<Value>(&json).ok());
        }
    }

    #[test]
    fn mutated_values_agree_with_serde_json(
        value in json_value(),
        escape in any::<bool>(),
        edits in proptest::collection::vec((any::<Index>(), 0..3_u8, json_byte()), 1..4),
        limits in small_limits(),
    ) {
        let json = serde_json::to_string(&value).unwrap();
        let bytes = mutate(if escape { escape_non_ascii(&json) } else { json }.into_bytes(), edits);
        assert_agrees_with_serde(&bytes);
        // Under any limits: accepted only what serde_json accepts, and then its value.
        if let Ok(parsed) = parse(&bytes, &limits) {
            prop_assert_eq!(Some(parsed), serde_json::from_slice::<Value>(&bytes).ok());
        }
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
}
