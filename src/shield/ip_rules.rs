//! Allow and deny lists of CIDR ranges, global and per route; deny wins.

use std::net::IpAddr;

use ipnet::IpNet;

use super::client_ip::parse_net;
use crate::error::ConfigError;

/// A list of CIDR ranges, searched in order (lists are short: a few ranges each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetList(Vec<IpNet>);

impl NetList {
    /// Parses each range, naming the first bad one.
    pub(crate) fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, ConfigError> {
        texts
            .into_iter()
            .map(|text| {
                parse_net(text).map_err(|reason| ConfigError::InvalidCidr {
                    cidr: text.to_owned(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` (already normalised) is in one of the ranges.
    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }
}

/// The allow and deny lists that apply to one request (global or one route's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IpRules {
    pub(crate) allow: NetList,
    pub(crate) deny: NetList,
}

impl IpRules {
    /// Whether a request from `address` passes: not denied, and allowed when an allow
    /// list exists. An unknown address passes only where no allow list applies.
    pub(crate) fn permits(&self, address: Option<IpAddr>) -> bool {
        match address {
            Some(address) => {
                !self.deny.contains(address)
                    && (self.allow.is_empty() || self.allow.contains(address))
            }
            None => self.allow.is_empty(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> IpRules {
        IpRules {
            allow: NetList::parse(allow.iter().copied()).expect("allow"),
            deny: NetList::parse(deny.iter().copied()).expect("deny"),
        }
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse::<IpAddr>().expect("ip").to_canonical())
    }

    #[test]
    fn deny_wins_over_allow() {
        let rules = rules(&["10.0.0.0/8"], &["10.1.0.0/16"]);
        assert!(rules.permits(ip("10.0.0.1")));
        assert!(!rules.permits(ip("10.1.2.3")));
        assert!(!rules.permits(ip("192.0.2.1")));
    }

    #[test]
    fn range_edges() {
        let rules = rules(&["192.0.2.0/24"], &[]);
        assert!(rules.permits(ip("192.0.2.0")));
        assert!(rules.permits(ip("192.0.2.255")));
        assert!(!rules.permits(ip("192.0.1.255")));
        assert!(!rules.permits(ip("192.0.3.0")));
        let single = self::rules(&["192.0.2.7"], &[]);
        assert!(single.permits(ip("192.0.2.7")));
        assert!(!single.permits(ip("192.0.2.8")));
        let everything = self::rules(&[], &["0.0.0.0/0", "::/0"]);
        assert!(!everything.permits(ip("8.8.8.8")));
        assert!(!everything.permits(ip("2001:db8::1")));
    }

    #[test]
    fn ipv6_and_ipv4_mapped() {
        let rules = rules(&["2001:db8::/32", "10.0.0.0/8"], &["2001:db8:bad::/48"]);
        assert!(rules.permits(ip("2001:db8:1::1")));
        assert!(!rules.permits(ip("2001:db8:bad::1")));
        assert!(!rules.permits(ip("2001:db9::1")));
        // A client connecting over IPv6 with a mapped IPv4 address is an IPv4 client.
        assert!(rules.permits(ip("::ffff:10.2.3.4")));
        // An IPv4 range never matches a plain IPv6 address, and the reverse.
        assert!(!rules.permits(ip("::a02:304")));
        let mapped_rule = self::rules(&[], &["::ffff:192.0.2.0/120"]);
        assert!(!mapped_rule.permits(ip("192.0.2.9")));
    }

    #[test]
    fn an_unknown_address_fails_an_allow_list() {
        assert!(!rules(&["10.0.0.0/8"], &[]).permits(None));
        assert!(rules(&[], &["10.0.0.0/8"]).permits(None));
    }
}
