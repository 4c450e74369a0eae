//! Forwarded headers: `X-Forwarded-For` and RFC 7239 `Forwarded` lines, as raw bytes (not
//! necessarily text), from a trusted proxy, walked from the right for the client's address.
//!
//! Input: one byte choosing the header (even: `X-Forwarded-For`, odd: `Forwarded`) and the
//! peer (bit 1: `10.0.0.2` or `2001:db8:ffff::2`, both trusted), then `\n`-separated lines.
//! Properties: the client is never a trusted proxy unless every hop is a readable, trusted
//! address (at most 32 of them); an untrusted client is exactly the first untrusted hop
//! from the right, with every hop before it readable and trusted; a hop that cannot be read
//! before that makes the client unknown.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{forwarded_client, forwarded_is_trusted};

/// A reference reading of one hop: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]`, `[v6]:port`.
fn reference_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop.trim_ascii()).ok()?;
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            text.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })
        .map(|address| address.to_canonical())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let rfc7239 = selector & 1 == 1;
    let peer: IpAddr = if selector & 2 == 0 {
        "10.0.0.2".parse().expect("peer")
    } else {
        "2001:db8:ffff::2".parse().expect("peer")
    };
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let (client, hops) = forwarded_client(peer, rfc7239, &lines);

    // The reference walk over the hops as split.
    let mut expected = Some(peer);
    for (count, hop) in hops.iter().enumerate() {
        if count >= 32 {
            expected = None;
            break;
        }
        match reference_hop(hop) {
            None => {
                expected = None;
                break;
            }
            Some(address) => {
                expected = Some(address);
                if !forwarded_is_trusted(address) {
                    break;
                }
            }
        }
    }
    assert_eq!(client, expected, "hops {hops:?}");
    if let Some(client) = client
        && forwarded_is_trusted(client)
    {
        assert!(hops.len() <= 32);
        assert!(
            hops.iter()
                .all(|hop| reference_hop(hop).is_some_and(forwarded_is_trusted)),
            "a trusted client {client} with an unreadable or untrusted hop: {hops:?}"
        );
    }
});
