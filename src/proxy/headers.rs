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
    /// Whether they are set (forged ones are removed either way).
    pub(super) send: bool,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            subject: HeaderName::from_static("x-auth-subject"),
            method: HeaderName::from_static("x-auth-method"),
            roles: HeaderName::from_static("x-auth-roles"),
            scopes: HeaderName::from_static("x-auth-scopes"),
            send: true,
        }
    }
}

/// Headers the proxy or HTTP owns: an identity there would change what the request means.
const OWNED_HEADERS: [&str; 15] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Why `name` cannot carry the caller's identity (or the identity token), if it cannot.
pub(super) fn unusable_for_identity(name: &str) -> Option<&'static str> {
    if name.contains('_') {
        // A client's `x-user` would reach a CGI, WSGI or Rack upstream as the same
        // variable, and not be removed as ours.
        Some("`_` in a name: CGI, WSGI and Rack servers read it as `-`; use `-`")
    } else if OWNED_HEADERS.contains(&name)
        || name.starts_with("proxy-")
        || name.starts_with("x-forwarded-")
        || REROUTING.contains(&name)
    {
        Some("a header the proxy or HTTP owns")
    } else {
        None
    }
}

/// Headers that make common upstreams route to another path or run another method than
/// the one the gateway authorised (IIS/Symfony's `X-Original-URL`, method-override
/// middleware): never passed on.
const REROUTING: [&str; 5] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

impl IdentityHeaders {
    /// Removes every header a client could pass off as identity: these names, any
    /// `x-auth-…` header, and any header that reads as one of those once `_` is `-` (CGI and
    /// WSGI servers map `X_Auth_Subject` and `X-Auth-Subject` to the same variable). Then
    /// sets them from `principal`, if there is one and they are sent: all four or none.
    ///
    /// # Errors
    ///
    /// When a value cannot be handed on unambiguously: a subject or method outside visible
    /// ASCII, or a role or scope that is empty, outside visible ASCII or contains a comma (it
    /// would read as two). The request must then not be passed on.
    pub(super) fn replace(
        &self,
        headers: &mut HeaderMap,
        principal: Option<&Principal>,
    ) -> Result<(), &'static str> {
        let ours = [&self.subject, &self.method, &self.roles, &self.scopes];
        let forged: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                let normalised = name.as_str().replace('_', "-");
                normalised.starts_with("x-auth-")
                    || ours.iter().any(|ours| ours.as_str() == normalised)
                    || REROUTING.contains(&normalised.as_str())
            })
            .cloned()
            .collect();
        for name in forged {
            headers.remove(name);
        }
        let Some(principal) = principal.filter(|_| self.send) else {
            return Ok(());
        };
        let visible = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
        let list = |names: &crate::Names| -> Result<String, &'static str> {
            let mut items = Vec::new();
            for name in names.iter() {
                if !visible(name) || name.contains(',') {
                    return Err("a role or scope cannot be handed on as a list item");
                }
                items.push(name);
            }
            Ok(items.join(","))
        };
        let subject = principal.subject();
        if !visible(subject) {
            return Err("the subject is not visible ASCII");
        }
        let method = principal.auth_method().name();
        if !visible(method) {
            return Err("the authentication method is not visible ASCII");
        }
        let values = [
            (&self.subject, subject.to_owned()),
            (&self.method, method.to_owned()),
            (&self.roles, list(principal.roles())?),
            (&self.scopes, list(principal.scopes())?),
        ];
        for (name, value) in values {
            let value = HeaderValue::from_str(&value)
                .map_err(|_| "an identity value is not a header value")?;
            headers.insert(name.clone(), value);
        }
        Ok(())
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

/// Sets `Forwarded` and `X-Forwarded-For` to this hop alone (the client's own values are
/// dropped: `portcullis serve` is the edge, and a client must not choose the address an
/// upstream trusts as the last hop), `X-Forwarded-Proto` and `X-Forwarded-Host` (replacing
/// what the client sent), and removes `Host`, so that the client sets the upstream's.
/// Without a known peer, `for=unknown` and no `X-Forwarded-For`.
pub(super) fn set_forwarded(headers: &mut HeaderMap, peer: Option<IpAddr>, proto: &str) {
    let host = headers.remove(HOST);
    headers.remove(FORWARDED);
    headers.remove(X_FORWARDED_FOR);
    let mut element = Vec::new();
    match peer {
        Some(IpAddr::V4(v4)) => element.push(format!("for={v4}")),
        Some(IpAddr::V6(v6)) => element.push(format!("for=\"[{v6}]\"")),
        None => element.push("for=unknown".to_owned()),
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
        Some(host) if host.as_bytes().iter().all(u8::is_ascii_graphic) => {
            headers.insert(X_FORWARDED_HOST, host);
        }
        _ => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

/// Why a path must not be passed on: it could mean another path to the upstream than the
/// one the gateway matched (dot segments, plain or encoded; `;` parameters; empty segments;
/// encoded slashes, backslashes and NUL), as Tomcat, Spring or a path-normalising server
/// would read it.
pub(super) fn ambiguous_path(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return Some("encoded dots or slashes");
    }
    if lower.contains("%00") || path.contains('\\') || path.contains(';') {
        return Some("a backslash, `;` or NUL");
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        if *segment == "." || *segment == ".." {
            return Some("a dot segment");
        }
        if segment.is_empty() && index != last {
            return Some("an empty segment");
        }
    }
    None
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
    fn forwarded_is_this_hop_alone_and_host_moves() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("api.example.com"));
        // A client's own values, even malformed ones, never reach the upstream.
        headers.insert(FORWARDED, HeaderValue::from_static("for=192.0.2.1;by=\""));
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        set_forwarded(&mut headers, Some("2001:db8::1".parse().unwrap()), "http");
        assert_eq!(
            headers[FORWARDED],
            "for=\"[2001:db8::1]\";host=\"api.example.com\";proto=http"
        );
        assert_eq!(headers[X_FORWARDED_FOR], "2001:db8::1");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_FORWARDED_HOST], "api.example.com");
        assert!(!headers.contains_key(HOST));
        // No peer: `for=unknown`, and no client-chosen `X-Forwarded-For`.
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        set_forwarded(&mut headers, None, "http");
        assert_eq!(headers[FORWARDED], "for=unknown;proto=http");
        assert!(!headers.contains_key(X_FORWARDED_FOR));
    }

    #[test]
    fn forged_identity_and_rerouting_headers_never_pass() {
        let names = IdentityHeaders::default();
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-auth-subject", "forged"),
            ("x_auth_subject", "forged"),
            ("X_Auth_Roles", "admin"),
            ("x-auth-tenant", "other"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("x-kept", "yes"),
        ] {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        names.replace(&mut headers, None).expect("anonymous");
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "yes");

        // Custom names: the defaults are still removed.
        let custom = IdentityHeaders {
            subject: HeaderName::from_static("x-user-id"),
            ..IdentityHeaders::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-subject", HeaderValue::from_static("forged"));
        headers.insert("x-user-id", HeaderValue::from_static("forged"));
        custom.replace(&mut headers, None).expect("anonymous");
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn identity_headers_turned_off_are_still_removed_and_never_set() {
        let off = IdentityHeaders {
            send: false,
            ..IdentityHeaders::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-subject", HeaderValue::from_static("forged"));
        headers.insert("x_auth_roles", HeaderValue::from_static("admin"));
        // A subject the headers could not carry is no reason to refuse when none is sent.
        let principal = Principal::builder("zoë", AuthMethod::Bearer)
            .roles(["a,b"])
            .build();
        off.replace(&mut headers, Some(&principal))
            .expect("nothing to send");
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn identity_is_handed_on_whole_or_not_at_all() {
        let names = IdentityHeaders::default();
        let mut headers = HeaderMap::new();
        let principal = Principal::builder("alice", AuthMethod::Bearer)
            .roles(["b", "a"])
            .scopes(["orders:read"])
            .build();
        names
            .replace(&mut headers, Some(&principal))
            .expect("valid");
        assert_eq!(headers["x-auth-subject"], "alice");
        assert_eq!(headers["x-auth-method"], "bearer");
        assert_eq!(headers["x-auth-roles"], "a,b");
        assert_eq!(headers["x-auth-scopes"], "orders:read");

        // A role with a comma would read as two: refused, nothing set.
        for principal in [
            Principal::builder("alice", AuthMethod::Bearer)
                .roles(["viewer,admin"])
                .build(),
            Principal::builder("line\nbreak", AuthMethod::Bearer).build(),
            Principal::builder(" alice", AuthMethod::Bearer).build(),
            Principal::builder("alice", AuthMethod::Bearer)
                .scopes(["a b"])
                .build(),
        ] {
            let mut headers = HeaderMap::new();
            assert!(names.replace(&mut headers, Some(&principal)).is_err());
            assert!(headers.is_empty(), "{headers:?}");
        }
    }

    #[test]
    fn ambiguous_paths_are_found() {
        for path in [
            "/public/../admin",
            "/public/..;/admin",
            "/public/%2e%2e/admin",
            "/public/%2E/admin",
            "/a//b",
            "/a/%2fb",
            "/a\\b",
            "/a/%00",
            "/admin;jsessionid=1",
            "/./a",
        ] {
            assert!(ambiguous_path(path).is_some(), "{path}");
        }
        for path in ["/", "/orders/", "/orders/1", "/files/a.b/c..d", "/%20x"] {
            assert_eq!(ambiguous_path(path), None, "{path}");
        }
    }
}
