//! Finding the client's IP: the connecting peer, or behind trusted proxies the first
//! untrusted address of `Forwarded` / `X-Forwarded-For`, read from the right.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{Extensions, HeaderMap};
use ipnet::IpNet;

use super::ip_rules::NetList;

/// The most forwarded hops read from the right before giving up: a header with more
/// entries than this is answered with the last trusted hop reached.
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

/// Reads the connecting peer's address from a request's extensions.
pub(crate) type PeerAddress = Arc<dyn Fn(&Extensions) -> Option<IpAddr> + Send + Sync>;

/// The connection's peer address: axum's `ConnectInfo<SocketAddr>` (with the `axum`
/// feature), or a `SocketAddr` your server put in the extensions.
pub(crate) fn connection_peer(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    extensions.get::<SocketAddr>().map(SocketAddr::ip)
}

/// Says, once per process, that a request came without the connection's address: the
/// server is not giving it (axum: serve with `into_make_service_with_connect_info`), so
/// per-IP limits and brute-force counts do not apply and IP allow lists refuse.
pub(crate) fn warn_no_peer_address(target: &'static str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(
            target: "portcullis::shield",
            layer = target,
            "a request came without the connection's address: per-IP limits and brute-force \
             counts do not apply to it and IP allow lists refuse it; with axum, serve with \
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
    /// The client's address, IPv4-mapped addresses normalised; `None` when the peer's
    /// address is unknown.
    pub(crate) fn resolve(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = (self.peer)(extensions)?.to_canonical();
        if self.trusted.is_empty() || !self.trusted.contains(peer) {
            return Some(peer);
        }
        Some(match self.header {
            ForwardedHeader::XForwardedFor => walk(peer, &self.trusted, x_forwarded_for(headers)),
            ForwardedHeader::Forwarded => walk(peer, &self.trusted, forwarded_for(headers)),
        })
    }
}

/// Walks the hops from the right (nearest first): the first address that is not a trusted
/// proxy is the client. An unreadable hop (garbage, `unknown`, an obfuscated name) ends the
/// walk at the last trusted hop, which is the best known; so does the end of the list.
fn walk<'a>(peer: IpAddr, trusted: &NetList, hops: impl Iterator<Item = &'a str>) -> IpAddr {
    let mut client = peer;
    for hop in hops.take(MAX_HOPS) {
        let Some(address) = parse_hop(hop) else {
            return client;
        };
        client = address.to_canonical();
        if !trusted.contains(client) {
            return client;
        }
    }
    client
}

/// Every `X-Forwarded-For` entry, from the right, over all the header's lines (the last
/// line is the nearest proxy's).
fn x_forwarded_for(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| value.to_str().unwrap_or("\u{0}"))
        .collect();
    lines
        .into_iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .map(str::trim)
}

/// Every `for=` of `Forwarded` (RFC 7239), from the right; an element without `for` gives
/// an empty hop (unreadable).
fn forwarded_for(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let lines: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .map(|value| value.to_str().unwrap_or("\u{0}"))
        .collect();
    lines
        .into_iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .map_or("", |(_, value)| value.trim().trim_matches('"'))
        })
}

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
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let resolver = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let parts = parts("203.0.113.9:5000", &[("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(
            resolver.resolve(&parts.headers, &parts.extensions),
            Some(ip("203.0.113.9"))
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
            Some(ip("198.51.100.7"))
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
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn garbage_or_all_trusted_ends_at_the_last_trusted_hop() {
        let resolver = resolver(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let garbage = parts("10.0.0.2:443", &[("x-forwarded-for", "evil, 10.0.0.5")]);
        assert_eq!(
            resolver.resolve(&garbage.headers, &garbage.extensions),
            Some(ip("10.0.0.5"))
        );
        let none = parts("10.0.0.2:443", &[]);
        assert_eq!(
            resolver.resolve(&none.headers, &none.extensions),
            Some(ip("10.0.0.2"))
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
            Some(ip("2001:db8:cafe::17"))
        );
        let unknown = parts(
            "10.0.0.2:443",
            &[("forwarded", "for=unknown, for=10.0.0.9")],
        );
        assert_eq!(
            resolver.resolve(&unknown.headers, &unknown.extensions),
            Some(ip("10.0.0.9"))
        );
        // X-Forwarded-For is not read when Forwarded is configured.
        let other = parts("10.0.0.2:443", &[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            resolver.resolve(&other.headers, &other.extensions),
            Some(ip("10.0.0.2"))
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
            Some(ip("198.51.100.7"))
        );
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
