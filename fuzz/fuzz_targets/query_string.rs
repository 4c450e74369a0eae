//! Query strings: `credentials::query_values` against a reference
//! `application/x-www-form-urlencoded` decoder, and the validation layer's query parsing
//! and coercion through the public `ValidateLayer`.
//!
//! Input: `{id}?{query}` (the first `?` splits), sent as `GET /items/{id}?{query}` to a route
//! whose query schema requires an integer `limit` and allows no unknown parameter. The
//! layer must answer 200 or 400, never anything else; and 400 whenever `limit` is missing
//! or a parameter it does not know is present.

#![no_main]

use http::Uri;
use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{query_values, validate_query};

const NAMES: [&str; 6] = ["api_key", "access_token", "limit", "tags", "", "a b"];
const KNOWN: [&str; 6] = ["limit", "ratio", "tags", "ids", "dry_run", "name"];

fn hex(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decodes one name or value: `+` is a space, `%XX` a byte, anything else itself; then
/// UTF-8 with replacement characters.
fn decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                text.get(i + 1).copied().and_then(hex),
                text.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .as_bytes()
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(at) => (decode(&pair[..at]), decode(&pair[at + 1..])),
            None => (decode(pair), String::new()),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = pairs(text);
    for name in NAMES {
        let expected: Vec<&String> = reference
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value)
            .collect();
        let values = query_values(text, name);
        assert_eq!(
            values.iter().collect::<Vec<_>>(),
            expected,
            "values of {name:?}"
        );
    }

    let (id, query) = text.split_once('?').unwrap_or((text, ""));
    let Some(status) = validate_query(id, query) else {
        return;
    };
    assert!(status == 200 || status == 400, "status {status}");
    // Only when the request target is read as written: a plain id, the query intact.
    let plain_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let Ok(uri) = Uri::try_from(format!("/items/{id}?{query}")) else {
        return;
    };
    if plain_id && uri.query() == Some(query) {
        let given = pairs(query);
        let unknown = given
            .iter()
            .any(|(name, _)| !KNOWN.contains(&name.as_str()));
        let no_limit = !given.iter().any(|(name, _)| name == "limit");
        if unknown || no_limit {
            assert_eq!(status, 400, "{query:?} passed");
        }
    }
});
