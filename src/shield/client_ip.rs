//! Finding the client's IP: the connecting peer, or behind trusted proxies the first
//! untrusted address of `Forwarded` / `X-Forwarded-For`, read from the right.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{Extensions, HeaderMap};
use ipnet::IpNet;

use super::ip_rules::NetList;

/// The most forwarded hops read from the right before giving up: a header with more
/// entries than this makes the client unknown.
const MAX_HOPS: usize = 32;

/// Which header trusted proxies write the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de-facto standard). The default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// Why a request's client address is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnknownClient {
    /// The server does not give the connection's address (axum without `ConnectInfo`).
    NoPeer,
    /// A trusted proxy forwarded a hop that is not an address: bytes that are not text,
    /// garbage, `unknown`, an obfuscated name, an empty entry, or more than `MAX_HOPS` hops.
    /// The client is unknown: never the last trusted hop, which is a proxy's address.
    Unreadable,
}

/// Put in a request's extensions by a shield that could not tell the client's address and
/// let the request go on (nothing in it depends on the address, or an `insecure_` opt-out):
/// later layers must not fall back to the connection's address, which is a proxy's.
#[derive(Debug, Clone, Copy)]
// Read by the rate limits only.
#[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
pub(crate) struct ClientIpUnknown(pub(crate) UnknownClient);

/// Reads the connecting peer's address from a request's extensions.
pub(crate) type PeerAddress = Arc<dyn Fn(&Extensions) -> Option<IpAddr> + Send + Sync>;

/// The connection's peer address: axum's `ConnectInfo<SocketAddr>` (with the `axum`
/// feature), or a `SocketAddr` your server put in the extensions.
/// The client's address: the shield's [`ClientIp`](crate::ClientIp), else the connection's
/// peer (IPv4-mapped addresses as IPv4), unless a shield in front found the client unknown
/// (the peer is then a proxy, and must not be taken for the client).
pub(crate) fn client_ip_of(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(ip) = extensions.get::<crate::ClientIp>() {
        return Some(ip.0);
    }
    if extensions.get::<ClientIpUnknown>().is_some() {
        return None;
    }
    connection_peer(extensions).map(|ip| ip.to_canonical())
}

pub(crate) fn connection_peer(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    extensions.get::<SocketAddr>().map(SocketAddr::ip)
}

/// Says, once per process, that a request came without the connection's address: the
/// server is not giving it (axum: serve with `into_make_service_with_connect_info`), so
/// requests that an IP-dependent protection applies to are refused with 503.
pub(crate) fn warn_no_peer_address(target: &'static str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(
            target: "portcullis::shield",
            layer = target,
            "a request came without the connection's address: requests that IP rules, \
             brute-force blocking or a per-IP limit apply to are refused (503) unless an \
             `insecure_allow_unknown_client_ip` opt-out is set; with axum, serve with \
             `into_make_service_with_connect_info::<SocketAddr>()`"
        );
    }
}

/// How the shield finds the client IP of a request.
#[derive(Clone)]
pub(crate) struct ClientIpResolver {
    pub(crate) peer: PeerAddress,
    pub(crate) trusted: NetList,
    pub(crate) header: ForwardedHeader,
}

impl fmt::Debug for ClientIpResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIpResolver")
            .field("trusted", &self.trusted)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl ClientIpResolver {
    /// The client's address, IPv4-mapped addresses normalised, or why it is unknown.
    pub(crate) fn resolve(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<IpAddr, UnknownClient> {
        let peer = (self.peer)(extensions)
            .ok_or(UnknownClient::NoPeer)?
            .to_canonical();
        if self.trusted.is_empty() || !self.trusted.contains(peer) {
            return Ok(peer);
        }
        match self.header {
            ForwardedHeader::XForwardedFor => walk(peer, &self.trusted, x_forwarded_for(headers)),
            ForwardedHeader::Forwarded => walk(peer, &self.trusted, forwarded_for(headers)),
        }
    }
}

/// Walks the hops from the right (nearest first): the first address that is not a trusted
/// proxy is the client. An unreadable hop (not text, garbage, `unknown`, an obfuscated
/// name) makes the client unknown: what lies left of it cannot be trusted, and the last
/// trusted hop is a proxy, not the client. When every hop is a trusted proxy (a request
/// from inside), the leftmost is the client.
pub(crate) fn walk<'a>(
    peer: IpAddr,
    trusted: &NetList,
    hops: impl Iterator<Item = &'a [u8]>,
) -> Result<IpAddr, UnknownClient> {
    let mut client = peer;
    for (count, hop) in hops.enumerate() {
        if count >= MAX_HOPS {
            return Err(UnknownClient::Unreadable);
        }
        let address = std::str::from_utf8(hop.trim_ascii())
            .ok()
            .and_then(parse_hop)
            .ok_or(UnknownClient::Unreadable)?;
        client = address.to_canonical();
        if !trusted.contains(client) {
            return Ok(client);
        }
    }
    Ok(client)
}

/// Every `X-Forwarded-For` entry as raw bytes, from the right, over all the header's lines
/// (the last line is the nearest proxy's). Split on `,` before any decoding: one bad
/// entry does not hide the others.
pub(crate) fn x_forwarded_for(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|&b| b == b','))
}

/// Every `for=` of `Forwarded` (RFC 7239) as raw bytes, from the right; an element without
/// `for` gives an empty hop (unreadable).
pub(crate) fn forwarded_for(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(http::header::FORWARDED)
        .iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|&b| b == b','))
        .map(|element| {
            element
                .split(|&b| b == b';')
                .filter_map(|pair| {
                    let at = pair.iter().position(|&b| b == b'=')?;
                    Some((&pair[..at], &pair[at + 1..]))
                })
                .find(|(name, _)| name.trim_ascii().eq_ignore_ascii_case(b"for"))
                .map_or(&[][..], |(_, value)| unquote(value.trim_ascii()))
        })
}

/// A quoted-string's content (`"[2001:db8::1]:4711"`), or the token itself.
fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        // A lone quote: unreadable.
        [b'"', ..] | [.., b'"'] => &[],
        token => token,
    }
}

/// The address that keys a client's counts (rate-limit buckets, brute-force sources):
/// IPv4 (and IPv4-mapped IPv6) as is, IPv6 as its network of `v6_prefix` bits (host bits
/// zeroed), since one subscriber commonly holds a whole /64 and can rotate through it.
pub(crate) fn counting_key(address: IpAddr, v6_prefix: u8) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

/// Checks an IPv6 prefix length for counting: 1 to 128.
pub(crate) fn check_v6_prefix(
    prefix: u8,
    setting: &'static str,
) -> Result<(), crate::error::ConfigError> {
    if (1..=128).contains(&prefix) {
        Ok(())
    } else {
        Err(crate::error::ConfigError::InvalidLimit { setting })
    }
}

/// The default IPv6 prefix clients are counted by: a /64, one subscriber's usual share.
pub(crate) const DEFAULT_V6_PREFIX: u8 = 64;

/// One hop's address: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(address) = hop.parse::<SocketAddr>() {
        return Some(address.ip());
    }
    // `[2001:db8::1]` without a port.
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
}

/// Parses a list of CIDR ranges or single addresses (as /32 or /128), refusing host bits
/// (`10.0.0.1/8`); IPv4-mapped IPv6 ranges become IPv4 ranges.
pub(crate) fn parse_net(text: &str) -> Result<IpNet, &'static str> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => {
            if net.trunc() != net {
                return Err("host bits are set after the prefix length");
            }
            net
        }
        Err(_) => match text.parse::<IpAddr>() {
            Ok(address) => IpNet::from(address),
            Err(_) => return Err("not an IP address or CIDR range"),
        },
    };
    Ok(canonical_net(net))
}

/// `::ffff:10.0.0.0/104` is `10.0.0.0/8`: client addresses are normalised the same way.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped);
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(trusted: &[&str], header: ForwardedHeader) -> ClientIpResolver {
        ClientIpResolver {
            peer: Arc::new(connection_peer),
            trusted: NetList::parse(trusted.iter().copied()).expect("nets"),
            header,
        }
    }

    fn parts(peer: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::get("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (mut parts, ()) = builder.body(()).expect("request").into_parts();
        parts
            .extensions
            .insert(peer.parse::<SocketAddr>().expect("peer"));
        parts
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let resolver = resolver(&[], ForwardedHeader::XForwardedFor);
        let parts = parts("203.0.113.9:5000", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            resolver.resolve(&parts.headers, &parts.extensions),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let resolver = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let parts = parts("203.0.113.9:5000", &[("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(
            resolver.resolve(&parts.headers, &parts.extensions),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn a_forged_leftmost_address_never_counts() {
        let resolver = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        // The client sent `X-Forwarded-For: 1.1.1.1`; the proxy appended the real address.
        let parts = parts(
            "10.0.0.2:443",
            &[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.3")],
        );
        assert_eq!(
            resolver.resolve(&parts.headers, &parts.extensions),
            Ok(ip("198.51.100.7"))
        );
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let resolver = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let parts = parts(
            "10.0.0.2:443",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
        );
        assert_eq!(
            resolver.resolve(&parts.headers, &parts.extensions),
            Ok(ip("198.51.100.7"))
        );
    }

    #[test]
    fn garbage_makes_the_client_unknown_never_a_proxy() {
        let resolver = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let garbage = parts("10.0.0.2:443", &[("x-forwarded-for", "evil, 10.0.0.5")]);
        assert_eq!(
            resolver.resolve(&garbage.headers, &garbage.extensions),
            Err(UnknownClient::Unreadable)
        );
        let empty = parts("10.0.0.2:443", &[("x-forwarded-for", "1.1.1.1,,10.0.0.5")]);
        assert_eq!(
            resolver.resolve(&empty.headers, &empty.extensions),
            Err(UnknownClient::Unreadable)
        );
        // Garbage left of the first untrusted hop is never read.
        let left = parts("10.0.0.2:443", &[("x-forwarded-for", "evil, 198.51.100.7")]);
        assert_eq!(
            resolver.resolve(&left.headers, &left.extensions),
            Ok(ip("198.51.100.7"))
        );
        let too_many = vec!["10.0.0.1"; MAX_HOPS + 1].join(", ");
        let long = parts("10.0.0.2:443", &[("x-forwarded-for", &too_many)]);
        assert_eq!(
            resolver.resolve(&long.headers, &long.extensions),
            Err(UnknownClient::Unreadable)
        );
        let none = parts("10.0.0.2:443", &[]);
        assert_eq!(
            resolver.resolve(&none.headers, &none.extensions),
            Ok(ip("10.0.0.2"))
        );
    }

    #[test]
    fn forwarded_rfc7239_with_ports_quotes_and_ipv6() {
        let resolver = resolver(
            &["10.0.0.0/8", "2001:db8:ffff::/48"],
            ForwardedHeader::Forwarded,
        );
        let parts1 = parts(
            "10.0.0.2:443",
            &[(
                "forwarded",
                "for=1.1.1.1, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.9",
            )],
        );
        assert_eq!(
            resolver.resolve(&parts1.headers, &parts1.extensions),
            Ok(ip("2001:db8:cafe::17"))
        );
        for header in [
            "for=unknown, for=10.0.0.9",
            "for=_hidden, for=10.0.0.9",
            "proto=https, for=10.0.0.9",
            "for=\"1.1.1.1, for=10.0.0.9",
        ] {
            let unknown = parts("10.0.0.2:443", &[("forwarded", header)]);
            assert_eq!(
                resolver.resolve(&unknown.headers, &unknown.extensions),
                Err(UnknownClient::Unreadable),
                "{header}"
            );
        }
        // X-Forwarded-For is not read when Forwarded is configured.
        let other = parts("10.0.0.2:443", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            resolver.resolve(&other.headers, &other.extensions),
            Ok(ip("10.0.0.2"))
        );
    }

    /// A client sends bytes that are not text; the proxy appends the real address on the
    /// same line (nginx, ALB): that address is still read, and nothing unreadable ever
    /// resolves to the proxy.
    #[test]
    fn bytes_that_are_not_text_do_not_hide_the_client_or_name_the_proxy() {
        fn with_raw(peer: &str, name: &str, lines: &[&[u8]]) -> http::request::Parts {
            let mut parts = parts(peer, &[]);
            for line in lines {
                parts.headers.append(
                    http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    http::HeaderValue::from_bytes(line).expect("value"),
                );
            }
            parts
        }
        let xff = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let appended = with_raw(
            "10.0.0.2:443",
            "x-forwarded-for",
            &[b"\xff, 198.51.100.7, 10.0.0.3"],
        );
        assert_eq!(
            xff.resolve(&appended.headers, &appended.extensions),
            Ok(ip("198.51.100.7"))
        );
        // The unreadable hop is reached: unknown, not the proxy 10.0.0.3.
        let reached = with_raw("10.0.0.2:443", "x-forwarded-for", &[b"\xff, 10.0.0.3"]);
        assert_eq!(
            xff.resolve(&reached.headers, &reached.extensions),
            Err(UnknownClient::Unreadable)
        );
        let alone = with_raw("10.0.0.2:443", "x-forwarded-for", &[b"\xff"]);
        assert_eq!(
            xff.resolve(&alone.headers, &alone.extensions),
            Err(UnknownClient::Unreadable)
        );
        let forwarded = resolver(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let line = with_raw(
            "10.0.0.2:443",
            "forwarded",
            &[b"for=\xff, for=198.51.100.7"],
        );
        assert_eq!(
            forwarded.resolve(&line.headers, &line.extensions),
            Ok(ip("198.51.100.7"))
        );
        let reached = with_raw("10.0.0.2:443", "forwarded", &[b"for=\xff, for=10.0.0.3"]);
        assert_eq!(
            forwarded.resolve(&reached.headers, &reached.extensions),
            Err(UnknownClient::Unreadable)
        );
    }

    #[test]
    fn no_peer_address_is_unknown() {
        let resolver = resolver(&[], ForwardedHeader::XForwardedFor);
        let parts = http::Request::get("/")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        assert_eq!(
            resolver.resolve(&parts.headers, &parts.extensions),
            Err(UnknownClient::NoPeer)
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_normalised() {
        let resolver = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let parts1 = parts(
            "[::ffff:10.0.0.2]:443",
            &[("x-forwarded-for", "::ffff:198.51.100.7")],
        );
        assert_eq!(
            resolver.resolve(&parts1.headers, &parts1.extensions),
            Ok(ip("198.51.100.7"))
        );
    }

    #[test]
    fn ipv6_is_counted_by_its_prefix_and_ipv4_as_is() {
        assert_eq!(
            counting_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            counting_key(ip("2001:db8:1:2:ffff::9"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            counting_key(ip("2001:db8:1:3::1"), 64),
            ip("2001:db8:1:3::")
        );
        assert_eq!(counting_key(ip("2001:db8:1:3::1"), 48), ip("2001:db8:1::"));
        assert_eq!(counting_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(counting_key(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(counting_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert!(check_v6_prefix(0, "x").is_err());
        assert!(check_v6_prefix(129, "x").is_err());
        assert!(check_v6_prefix(64, "x").is_ok());
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_net("10.0.0.0/8"),
            Ok("10.0.0.0/8".parse().expect("net"))
        );
        assert_eq!(
            parse_net("192.0.2.1"),
            Ok("192.0.2.1/32".parse().expect("net"))
        );
        assert_eq!(
            parse_net("2001:db8::1"),
            Ok("2001:db8::1/128".parse().expect("net"))
        );
        assert_eq!(
            parse_net("::ffff:10.0.0.0/104"),
            Ok("10.0.0.0/8".parse().expect("net"))
        );
        assert_eq!(
            parse_net("0.0.0.0/0"),
            Ok("0.0.0.0/0".parse().expect("net"))
        );
        assert!(parse_net("10.0.0.1/8").is_err());
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("example.com").is_err());
        assert!(parse_net("").is_err());
    }
}
