//! The headers a proxy removes, sets and hands on.

use std::net::{IpAddr, SocketAddr};

use http::header::{CONNECTION, FORWARDED, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};

use crate::Principal;

/// `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The names the caller's identity is handed on under.
#[derive(Debug, Clone)]
pub(super) struct IdentityHeaders {
    pub(super) subject: HeaderName,
    pub(super) method: HeaderName,
    pub(super) roles: HeaderName,
    pub(super) scopes: HeaderName,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            subject: HeaderName::from_static("x-auth-subject"),
            method: HeaderName::from_static("x-auth-method"),
            roles: HeaderName::from_static("x-auth-roles"),
            scopes: HeaderName::from_static("x-auth-scopes"),
        }
    }
}

impl IdentityHeaders {
    /// Removes every header with one of these names, whoever sent it, then sets them from
    /// `principal`, if there is one. A value that is not a valid header value is left out.
    pub(super) fn replace(&self, headers: &mut HeaderMap, principal: Option<&Principal>) {
        for name in [&self.subject, &self.method, &self.roles, &self.scopes] {
            headers.remove(name);
        }
        let Some(principal) = principal else {
            return;
        };
        let join = |names: &crate::Names| names.iter().collect::<Vec<_>>().join(",");
        let values = [
            (&self.subject, principal.subject().to_owned()),
            (&self.method, principal.auth_method().name().to_owned()),
            (&self.roles, join(principal.roles())),
            (&self.scopes, join(principal.scopes())),
        ];
        for (name, value) in values {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name.clone(), value);
            } else {
                tracing::debug!(
                    target: "portcullis::proxy",
                    header = %name,
                    "identity value is not a valid header value; left out"
                );
            }
        }
    }
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and every header it
/// names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`.
pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        KEEP_ALIVE,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// The connecting peer: axum's `ConnectInfo<SocketAddr>` (with the `axum` feature), or a
/// `SocketAddr` the server put in the extensions.
pub(super) fn peer(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip().to_canonical());
    }
    extensions
        .get::<SocketAddr>()
        .map(|address| address.ip().to_canonical())
}

/// Sets `Forwarded` (appending this hop), `X-Forwarded-For` (appending the peer),
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (replacing what the client sent), and removes
/// `Host`, so that the client sets the upstream's.
pub(super) fn set_forwarded(headers: &mut HeaderMap, peer: Option<IpAddr>, proto: &str) {
    let host = headers.remove(HOST);
    let mut element = Vec::new();
    if let Some(peer) = peer {
        match peer {
            IpAddr::V4(v4) => element.push(format!("for={v4}")),
            IpAddr::V6(v6) => element.push(format!("for=\"[{v6}]\"")),
        }
    }
    if let Some(host) = host.as_ref().and_then(|host| host.to_str().ok())
        && host
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && byte != b'"' && byte != b'\\')
    {
        element.push(format!("host=\"{host}\""));
    }
    element.push(format!("proto={proto}"));
    append_list(headers, FORWARDED, &element.join(";"));
    if let Some(peer) = peer {
        append_list(headers, X_FORWARDED_FOR, &peer.to_string());
    }
    if let Ok(proto) = HeaderValue::from_str(proto) {
        headers.insert(X_FORWARDED_PROTO, proto);
    }
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

/// Appends `item` to the comma-separated list in header `name`, as one header line. Lines
/// that are not valid text are dropped rather than passed on.
fn append_list(headers: &mut HeaderMap, name: HeaderName, item: &str) {
    let mut items: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter(|value| !value.trim().is_empty())
        .collect();
    items.push(item);
    match HeaderValue::from_str(&items.join(", ")) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthMethod;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "close"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "yes");
    }

    #[test]
    fn forwarded_is_appended_and_host_moves() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("api.example.com"));
        headers.insert(FORWARDED, HeaderValue::from_static("for=192.0.2.1"));
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        set_forwarded(&mut headers, Some("2001:db8::1".parse().unwrap()), "http");
        assert_eq!(
            headers[FORWARDED],
            "for=192.0.2.1, for=\"[2001:db8::1]\";host=\"api.example.com\";proto=http"
        );
        assert_eq!(headers[X_FORWARDED_FOR], "192.0.2.1, 2001:db8::1");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_FORWARDED_HOST], "api.example.com");
        assert!(!headers.contains_key(HOST));
    }

    #[test]
    fn identity_headers_are_replaced_and_bad_values_dropped() {
        let names = IdentityHeaders::default();
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-subject", HeaderValue::from_static("forged"));
        headers.insert("x-auth-roles", HeaderValue::from_static("admin"));
        names.replace(&mut headers, None);
        assert!(headers.is_empty());

        let principal = Principal::builder("line\nbreak", AuthMethod::Bearer)
            .roles(["b", "a"])
            .scopes(["orders:read"])
            .build();
        names.replace(&mut headers, Some(&principal));
        assert!(!headers.contains_key("x-auth-subject"));
        assert_eq!(headers["x-auth-method"], "bearer");
        assert_eq!(headers["x-auth-roles"], "a,b");
        assert_eq!(headers["x-auth-scopes"], "orders:read");
    }
}
