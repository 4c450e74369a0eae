//! [`ClientIp`]: the address of the client, as the shield found it.

use std::fmt;
use std::net::IpAddr;

/// The client's IP address, put in the request's extensions by the shield (feature
/// `shield`): the connecting peer's address, or, behind trusted proxies, the first address
/// in `Forwarded` / `X-Forwarded-For` that is not a trusted proxy. IPv4-mapped IPv6
/// addresses (`::ffff:192.0.2.1`) are normalised to IPv4.
///
/// Read by the rate limits (per-IP limits), by the decision observer (the audit log's
/// `client_ip`) and by handlers (with axum: `Extension<ClientIp>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The address, with IPv4-mapped IPv6 addresses normalised to IPv4.
    #[must_use]
    pub fn new(address: IpAddr) -> Self {
        Self(address.to_canonical())
    }

    /// The address.
    #[must_use]
    pub fn address(self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
