//! Network address helpers shared by the modules that connect out.

use std::net::IpAddr;

/// Whether `host` (a name or an IP literal, IPv6 with or without brackets) is loopback:
/// `localhost`, 127.0.0.0/8 or `::1`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "localhost.evil.example",
            "128.0.0.1",
            "::2",
            "example.com",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
