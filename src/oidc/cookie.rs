//! Cookies: reading one by name from the request, writing `Set-Cookie` with the attributes
//! the relying party always uses, and sealing a value (AES-256-GCM under the
//! [`SessionKey`]) so the browser can carry it without reading or changing it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{COOKIE, HeaderMap, HeaderValue};

use crate::authenticate::credentials::cookie_values;
use crate::secret::SessionKey;

/// The largest sealed cookie value accepted, in characters (browsers keep 4 KiB per cookie).
const MAX_SEALED_LEN: usize = 4096;

/// How the cookies of one relying party are named and marked.
#[derive(Debug, Clone)]
pub(crate) struct CookieSettings {
    /// Whether cookies carry `Secure`.
    pub(crate) secure: bool,
    /// The session cookie's name (with the prefix).
    pub(crate) session_name: String,
    /// The start of every login cookie's name (with the prefix); the state's first
    /// characters follow, so that two logins in two tabs do not overwrite each other.
    pub(crate) login_prefix: String,
}

impl CookieSettings {
    pub(crate) fn new(secure: bool, base_name: &str) -> Self {
        let prefix = if secure { "__Host-" } else { "" };
        Self {
            secure,
            session_name: format!("{prefix}{base_name}"),
            login_prefix: format!("{prefix}{base_name}-login-"),
        }
    }

    /// `Set-Cookie` for `name=value`, `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` unless
    /// development over plain http, living `max_age` seconds (`0` deletes it).
    pub(crate) fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text =
            format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly{secure}; SameSite=Lax");
        // Names and values are ours: base64url and fixed ASCII names.
        let mut value =
            HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// `Set-Cookie` deleting `name`.
    pub(crate) fn clear_cookie(&self, name: &str) -> HeaderValue {
        self.set_cookie(name, "", 0)
    }
}

/// The value of the first cookie called `name` in the request's `Cookie` headers.
pub(crate) fn find<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|value| cookie_values(value.as_bytes(), name.as_bytes()))
        .find_map(|value| std::str::from_utf8(value).ok())
        .map(|value| value.trim_matches('"'))
}

/// Seals `plaintext` for cookie `name` ([`SessionKey::seal`] with the name as context),
/// base64url.
pub(crate) fn seal(key: &SessionKey, name: &str, plaintext: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key.seal(name.as_bytes(), plaintext))
}

/// Opens a value sealed by [`seal`] for cookie `name`; `None` for anything else.
pub(crate) fn open(key: &SessionKey, name: &str, sealed: &str) -> Option<Vec<u8>> {
    if sealed.len() > MAX_SEALED_LEN {
        return None;
    }
    key.open(name.as_bytes(), URL_SAFE_NO_PAD.decode(sealed).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_name() {
        let key = SessionKey::generate();
        let sealed = seal(&key, "a", b"hello");
        assert_eq!(open(&key, "a", &sealed).as_deref(), Some(&b"hello"[..]));
        assert_eq!(open(&key, "b", &sealed), None);
        assert_eq!(open(&SessionKey::generate(), "a", &sealed), None);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            open(&key, "a", std::str::from_utf8(&tampered).unwrap()),
            None
        );
        assert_eq!(open(&key, "a", "not base64!"), None);
        assert_eq!(open(&key, "a", ""), None);
    }

    proptest::proptest! {
        #[test]
        fn opening_anything_never_panics(text in "\\PC{0,200}") {
            let key = SessionKey::from_bytes(&[7; 32]).unwrap();
            proptest::prop_assert_eq!(open(&key, "a", &text), None);
        }
    }

    #[test]
    fn finds_cookies_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; session=xyz"));
        headers.append(COOKIE, HeaderValue::from_static("other=2"));
        assert_eq!(find(&headers, "session"), Some("xyz"));
        assert_eq!(find(&headers, "other"), Some("2"));
        assert_eq!(find(&headers, "sess"), None);
    }
}
