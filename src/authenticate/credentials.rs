//! Reading credentials out of a request, shared by every authenticator, so that a
//! credential is recognised by what it means and not by how it is spelled:
//!
//! - `Authorization` values are read per RFC 9110 section 11.4 for every scheme alike: the
//!   scheme is case-insensitive and separated from its credentials by one or more spaces;
//!   a value that names a scheme but does not follow that grammar is malformed, never
//!   "someone else's";
//! - query parameter names and values are compared after `application/x-www-form-urlencoded`
//!   decoding (RFC 3986 section 2.3), exactly as axum's `Query` and every other form
//!   decoder will read them, so `?api%5Fkey=…` is the `api_key` parameter.

use std::borrow::Cow;

#[cfg(any(feature = "api-key", feature = "oidc"))]
use http::header::COOKIE;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};

use crate::rejection::is_tchar;

/// What one `Authorization` value holds for one authentication scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemeValue<'a> {
    /// The value names another scheme (or is not a credentials value at all).
    Other,
    /// The value names this scheme but does not follow `scheme 1*SP token68`: no
    /// credentials, a tab or other separator, or characters token68 does not allow.
    Malformed,
    /// `scheme 1*SP token68`: the token68.
    Credentials(&'a str),
}

/// Reads `value` as credentials of `scheme` (compared case-insensitively).
pub(crate) fn scheme_value<'a>(value: &'a [u8], scheme: &str) -> SchemeValue<'a> {
    let value = value.trim_ascii();
    let scheme_len = value.iter().take_while(|&&b| is_tchar(b)).count();
    let (name, rest) = value.split_at(scheme_len);
    if name.is_empty() || !name.eq_ignore_ascii_case(scheme.as_bytes()) {
        return SchemeValue::Other;
    }
    let Some(credentials) = rest.strip_prefix(b" ") else {
        // `Bearer`, `Bearer\tabc`, `Bearer,abc`: ours, and wrong.
        return SchemeValue::Malformed;
    };
    let credentials = credentials.trim_ascii_start();
    if !is_token68(credentials) {
        return SchemeValue::Malformed;
    }
    // token68 is ASCII, so this cannot fail.
    std::str::from_utf8(credentials).map_or(SchemeValue::Malformed, SchemeValue::Credentials)
}

/// Whether `value` names `scheme`, well formed or not: such values are the scheme's to
/// check and to strip.
pub(crate) fn names_scheme(value: &[u8], scheme: &str) -> bool {
    // What `scheme_value` answers `Other` to, without checking the credentials (a token can
    // be kilobytes long, and it is checked once already, when it is read).
    let value = value.trim_ascii();
    let scheme_len = value.iter().take_while(|&&b| is_tchar(b)).count();
    scheme_len > 0 && value[..scheme_len].eq_ignore_ascii_case(scheme.as_bytes())
}

/// RFC 9110 section 11.2: `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_token68(bytes: &[u8]) -> bool {
    let body = bytes.len() - bytes.iter().rev().take_while(|&&b| b == b'=').count();
    // Range comparisons folded without branching, so that the compiler checks many bytes
    // per instruction: tokens are long (a JWT is hundreds of bytes) and every one is read
    // on every request.
    body > 0
        && bytes[..body]
            .iter()
            .fold(true, |all, &b| all & is_token68_byte(b))
}

/// A byte `token68` allows before its trailing `=`.
#[inline(always)]
fn is_token68_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    // `+` `-` `.` `/` are 0x2B, 0x2D, 0x2E, 0x2F; then `_` and `~`.
    let sign = b.wrapping_sub(b'+') < 5 && b != b',';
    letter | digit | sign | (b == b'_') | (b == b'~')
}

/// Whether `name` is an RFC 9110 token (usable as a cookie or query parameter name).
#[cfg(feature = "api-key")]
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_tchar)
}

/// Removes from header `name` every value that `drop` selects, keeping the others in
/// order. Costs nothing when no value is selected.
pub(crate) fn remove_header_values(
    request: &mut Parts,
    name: &HeaderName,
    drop: impl Fn(&HeaderValue) -> bool,
) {
    let values = request.headers.get_all(name);
    let mut dropped = 0;
    let mut count = 0;
    for value in &values {
        count += 1;
        dropped += usize::from(drop(value));
    }
    if dropped == 0 {
        return;
    }
    if dropped == count {
        // The usual case, one value and it is ours: no copy of the others to make.
        request.headers.remove(name);
        return;
    }
    let kept: Vec<HeaderValue> = values.iter().filter(|v| !drop(v)).cloned().collect();
    request.headers.remove(name);
    for value in kept {
        request.headers.append(name, value);
    }
}

/// The `(name, value)` pairs of one `Cookie` header (`a=1; b=2`), in order, trimmed.
#[cfg(any(feature = "api-key", feature = "oidc"))]
pub(crate) fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let (key, value) = split_once(pair.trim_ascii(), b'=')?;
        Some((key.trim_ascii(), value.trim_ascii()))
    })
}

/// The values of cookie `name` in one `Cookie` header, in order; names compared exactly.
#[cfg(any(feature = "api-key", feature = "oidc"))]
pub(crate) fn cookie_values<'h>(header: &'h [u8], name: &[u8]) -> impl Iterator<Item = &'h [u8]> {
    cookie_pairs(header).filter_map(move |(key, value)| (key == name).then_some(value))
}

/// Removes from the `Cookie` headers every cookie whose name `drop` selects, keeping the
/// others in order. Costs nothing when none is selected.
#[cfg(any(feature = "api-key", feature = "oidc"))]
pub(crate) fn remove_cookies(request: &mut Parts, drop: impl Fn(&[u8]) -> bool) {
    let selected =
        |pair: &[u8]| split_once(pair, b'=').is_some_and(|(key, _)| drop(key.trim_ascii()));
    let mut rewritten = Vec::new();
    let mut changed = false;
    for value in &request.headers.get_all(COOKIE) {
        let pairs: Vec<&[u8]> = value
            .as_bytes()
            .split(|&b| b == b';')
            .map(<[u8]>::trim_ascii)
            .filter(|pair| !pair.is_empty())
            .collect();
        let kept: Vec<&[u8]> = pairs
            .iter()
            .copied()
            .filter(|pair| !selected(pair))
            .collect();
        changed |= kept.len() != pairs.len();
        if !kept.is_empty() {
            let joined = kept.join(&b"; "[..]);
            if let Ok(mut value) = HeaderValue::from_bytes(&joined) {
                value.set_sensitive(true);
                rewritten.push(value);
            }
        }
    }
    if changed {
        request.headers.remove(COOKIE);
        for value in rewritten {
            request.headers.append(COOKIE, value);
        }
    }
}

#[cfg(any(feature = "api-key", feature = "oidc"))]
fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// Removes every `Authorization` value that names `scheme`.
pub(crate) fn remove_scheme(request: &mut Parts, scheme: &str) {
    remove_header_values(request, &AUTHORIZATION, |value| {
        names_scheme(value.as_bytes(), scheme)
    });
}

/// The decoded values of query parameter `name` (names compared after decoding).
pub(crate) fn query_values<'q>(query: &'q str, name: &str) -> impl Iterator<Item = Cow<'q, str>> {
    form_urlencoded::parse(query.as_bytes())
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Rewrites the URI without query parameter `name` (names compared after decoding; every
/// other pair is kept byte for byte). Costs nothing when the parameter is not there.
pub(crate) fn remove_query_parameter(request: &mut Parts, name: &str) {
    let Some(query) = request.uri.query() else {
        return;
    };
    let is_named = |pair: &&str| {
        form_urlencoded::parse(pair.as_bytes())
            .next()
            .is_some_and(|(key, _)| key == name)
    };
    if query_values(query, name).next().is_none() {
        return;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !is_named(pair))
        .collect();
    let path = request.uri.path();
    let path_and_query = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = request.uri.clone().into_parts();
    if let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            request.uri = uri;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_case_insensitive_and_separated_by_spaces() {
        for value in ["ApiKey abc", "apikey  abc ", "APIKEY abc", " ApiKey abc"] {
            assert_eq!(
                scheme_value(value.as_bytes(), "ApiKey"),
                SchemeValue::Credentials("abc"),
                "{value:?}"
            );
        }
        assert_eq!(
            scheme_value(b"Bearer a.b-c_d~e+f/g==", "Bearer"),
            SchemeValue::Credentials("a.b-c_d~e+f/g==")
        );
    }

    #[test]
    fn a_value_naming_the_scheme_wrongly_is_malformed() {
        for value in [
            "ApiKey",
            "ApiKey ",
            "ApiKey\tabc",
            "ApiKey\t abc",
            "ApiKey,abc",
            "ApiKey a b",
            "ApiKey a,b",
            "ApiKey =abc",
            "ApiKey a=b",
            "ApiKey \u{7f}",
            "ApiKey ab\"c",
        ] {
            assert_eq!(
                scheme_value(value.as_bytes(), "ApiKey"),
                SchemeValue::Malformed,
                "{value:?}"
            );
        }
        assert_eq!(
            scheme_value(b"ApiKey \xff", "ApiKey"),
            SchemeValue::Malformed
        );
    }

    #[test]
    fn other_schemes_are_not_ours() {
        for value in [
            "Bearer abc",
            "ApiKeyabc",
            "Api",
            "",
            " ",
            "\tX",
            "ApiKeys abc",
        ] {
            assert_eq!(
                scheme_value(value.as_bytes(), "ApiKey"),
                SchemeValue::Other,
                "{value:?}"
            );
        }
    }

    #[test]
    fn names_scheme_agrees_with_scheme_value() {
        let values: [&[u8]; 12] = [
            b"Bearer abc",
            b"bearer  abc.def",
            b"Bearer",
            b"Bearer\tabc",
            b"Bearer,abc",
            b"Bearer a b",
            b"  BEARER x=",
            b"Bearerx abc",
            b"Basic abc",
            b"",
            b" ",
            b"\xffBearer abc",
        ];
        for value in values {
            for scheme in ["Bearer", "ApiKey"] {
                assert_eq!(
                    names_scheme(value, scheme),
                    !matches!(scheme_value(value, scheme), SchemeValue::Other),
                    "{:?} {scheme}",
                    String::from_utf8_lossy(value)
                );
            }
        }
    }

    #[test]
    fn token68_allows_exactly_the_grammar() {
        for b in 0..=u8::MAX {
            let allowed =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_token68(&[b]), allowed, "{b}");
            assert_eq!(is_token68(&[b'a', b, b'=']), allowed || b == b'=', "{b}");
        }
    }

    #[test]
    fn token68_allows_trailing_padding_only() {
        assert!(is_token68(b"abc=="));
        assert!(!is_token68(b"=="));
        assert!(!is_token68(b""));
        assert!(!is_token68(b"a=b"));
    }

    fn parts(uri: &str) -> Parts {
        http::Request::get(uri)
            .body(())
            .expect("request")
            .into_parts()
            .0
    }

    #[test]
    fn query_names_and_values_are_decoded() {
        let values: Vec<_> =
            query_values("x=1&api%5Fkey=a%5Fb&api_key=c&api+key=d", "api_key").collect();
        assert_eq!(values, ["a_b", "c"]);
        assert_eq!(query_values("api_keyx=1&xapi_key=2", "api_key").count(), 0);
    }

    #[test]
    fn query_parameter_is_removed_in_every_spelling_and_others_kept() {
        let mut request = parts("/a?x=1&api_key=k&y=%20&api%5fkey=k2&api%5Fkey&z");
        remove_query_parameter(&mut request, "api_key");
        assert_eq!(request.uri, "/a?x=1&y=%20&z");

        let mut request = parts("/a?api%5Fkey=k");
        remove_query_parameter(&mut request, "api_key");
        assert_eq!(request.uri, "/a");

        let mut request = parts("/a?x=1");
        remove_query_parameter(&mut request, "api_key");
        assert_eq!(request.uri, "/a?x=1");
    }

    #[test]
    fn header_values_are_removed_selectively() {
        let (mut request, ()) = http::Request::get("/")
            .header(AUTHORIZATION, "Basic dTpw")
            .header(AUTHORIZATION, "apikey\tpcl_x")
            .header(AUTHORIZATION, "Bearer t")
            .body(())
            .expect("request")
            .into_parts();
        remove_scheme(&mut request, "ApiKey");
        let left: Vec<_> = request.headers.get_all(AUTHORIZATION).iter().collect();
        assert_eq!(left, ["Basic dTpw", "Bearer t"]);
    }
}
