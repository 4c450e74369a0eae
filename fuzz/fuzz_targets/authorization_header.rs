//! The `Authorization` header reader (`scheme_value`, `names_scheme`, `remove_scheme`) and
//! query-parameter stripping (`remove_query_parameter`) on arbitrary bytes.
//!
//! Properties: credentials are token68 and round-trip; the scheme compares
//! case-insensitively; stripping removes exactly the values that name the scheme, keeping
//! the others in order; stripping a query parameter leaves no value of it in any spelling
//! and keeps every other pair byte for byte.

#![no_main]

use http::header::{AUTHORIZATION, HeaderValue};
use http::{Request, Uri};
use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{
    is_token68, names_scheme, query_values, remove_query_parameter, remove_scheme, scheme_value,
};

const SCHEMES: [&str; 3] = ["ApiKey", "Bearer", "Basic"];
const QUERY_NAMES: [&str; 2] = ["api_key", "access_token"];

fn check_value(value: &[u8]) {
    for scheme in SCHEMES {
        let read = scheme_value(value, scheme);
        assert_eq!(names_scheme(value, scheme), read.is_some());
        assert_eq!(read, scheme_value(value, &scheme.to_ascii_uppercase()));
        assert_eq!(read, scheme_value(value, &scheme.to_ascii_lowercase()));
        if let Some(Ok(credentials)) = read {
            assert!(is_token68(credentials.as_bytes()), "{credentials:?}");
            let trimmed = value.trim_ascii();
            assert!(trimmed[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes()));
            assert!(trimmed.ends_with(credentials.as_bytes()));
            let canonical = format!("{scheme} {credentials}");
            assert_eq!(
                scheme_value(canonical.as_bytes(), scheme),
                Some(Ok(credentials))
            );
        }
    }
}

fn check_headers(data: &[u8]) {
    let values: Vec<HeaderValue> = data
        .split(|&b| b == b'\n')
        .take(8)
        .filter_map(|line| HeaderValue::from_bytes(line).ok())
        .collect();
    if values.is_empty() {
        return;
    }
    let mut request = Request::get("/").header("x-other", "kept");
    for value in &values {
        request = request.header(AUTHORIZATION, value.clone());
    }
    let (mut parts, ()) = request.body(()).expect("request").into_parts();
    for scheme in SCHEMES {
        let before: Vec<HeaderValue> = parts
            .headers
            .get_all(AUTHORIZATION)
            .iter()
            .cloned()
            .collect();
        remove_scheme(&mut parts, scheme);
        let after: Vec<&HeaderValue> = parts.headers.get_all(AUTHORIZATION).iter().collect();
        let expected: Vec<&HeaderValue> = before
            .iter()
            .filter(|value| !names_scheme(value.as_bytes(), scheme))
            .collect();
        assert_eq!(after, expected, "stripping {scheme}");
        assert_eq!(parts.headers["x-other"], "kept");
    }
}

fn check_query(data: &[u8]) {
    let uri = Uri::try_from(data).or_else(|_| {
        let mut target = b"/p?".to_vec();
        target.extend_from_slice(data);
        Uri::try_from(target)
    });
    let Ok(uri) = uri else {
        return;
    };
    for name in QUERY_NAMES {
        let (mut parts, ()) = Request::get(uri.clone())
            .body(())
            .expect("request")
            .into_parts();
        remove_query_parameter(&mut parts, name);
        assert_eq!(parts.uri.path(), uri.path());
        assert_eq!(parts.uri.authority(), uri.authority());
        let Some(query) = uri.query() else {
            assert_eq!(parts.uri, uri);
            continue;
        };
        let named = |pair: &str| !query_values(pair, name).is_empty();
        if query_values(query, name).is_empty() {
            assert_eq!(parts.uri, uri, "nothing to strip, yet the URI changed");
            continue;
        }
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty() && !named(pair))
            .collect();
        let left = parts.uri.query().unwrap_or("");
        assert!(
            query_values(left, name).is_empty(),
            "{name} left in {left:?}"
        );
        assert_eq!(left, kept.join("&"), "other pairs changed");
    }
}

fuzz_target!(|data: &[u8]| {
    check_value(data);
    check_headers(data);
    check_query(data);
});
