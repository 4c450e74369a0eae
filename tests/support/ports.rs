//! Ports for peers that are told which port to listen on (`redis-server`, `chromedriver`).
//!
//! A port the OS hands out for `bind(…:0)` comes from its ephemeral range, as do the source
//! ports of outgoing connections: between the moment a test picks such a port and the
//! moment its peer binds it (or binds it again, after a restart), any other listener or
//! connection of the test run may take it. These ports come from below that range instead,
//! where only another pick from here could land, and each is checked free when picked.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;

/// Where the ports come from when the ephemeral range cannot be read, or starts too low to
/// leave room below it.
const FALLBACK: (u16, u16) = (20_000, 32_768);

/// A loopback port outside the OS's ephemeral range that nothing listens on now.
pub fn unassigned_port() -> u16 {
    let (low, high) = range();
    let span = u64::from(high - low);
    for _ in 0..1_000 {
        // RandomState is seeded afresh for each instance: a random pick without a crate.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u8(0);
        let offset = u16::try_from(hasher.finish() % span).expect("below the span");
        let port = low + offset;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// The ports below the ephemeral range, from 10,000 up (or [`FALLBACK`]).
fn range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok());
    match ephemeral_start {
        Some(start) if start > 15_000 => (10_000, start),
        _ => FALLBACK,
    }
}
