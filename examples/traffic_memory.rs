//! Measures the memory the in-process traffic stores hold for 100,000 keys, with a
//! counting global allocator (`stats_alloc`): the bytes allocated and not freed while the
//! keys go in. Then floods each with 1,000,000 distinct keys to show the bound holds.
//!
//! ```text
//! cargo run --release --example traffic_memory
//! ```
//!
//! The numbers are recorded in `docs/benchmarks.md`.

#![allow(missing_docs, clippy::print_stdout, clippy::expect_used)]

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use portcullis::rate_limit::{BucketKey, LimitCheck, MemoryRateLimitStore, Quota, RateLimitStore};
use portcullis::shield::{BlockSource, BlockStore, BruteForce, MemoryBlockStore};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEYS: u32 = 100_000;
const FLOOD: u32 = 1_000_000;

/// Distinct IPv4 addresses from 10.0.0.0 on.
fn ipv4(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

/// Distinct IPv6 addresses in 2001:db8::/32.
fn ipv6(i: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0x0db8,
        0,
        0,
        0,
        0,
        (i >> 16) as u16,
        i as u16,
    ))
}

/// Bytes held (allocated minus freed) while `f` runs.
fn held(f: impl FnOnce()) -> i64 {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.bytes_allocated as i64 - change.bytes_deallocated as i64
        + change.bytes_reallocated as i64
}

fn check(store: &MemoryRateLimitStore, key: &BucketKey) {
    let future = store.check(&LimitCheck::new("per-ip", key, Quota::per_minute(10)));
    futures_util::FutureExt::now_or_never(future).expect("the memory store answers at once");
}

fn report(what: &str, bytes: i64, entries: usize) {
    println!(
        "{what}: {bytes} bytes for {entries} entries = {:.0} bytes/entry ({:.1} MiB)",
        bytes as f64 / entries.max(1) as f64,
        bytes as f64 / (1024.0 * 1024.0)
    );
}

fn main() {
    // A paused-free clock: the stores read tokio's `Instant`, which falls back to the
    // system clock outside a runtime.
    for (name, key_of) in [
        (
            "rate limit, IPv4 keys",
            &(|i| BucketKey::Ip(ipv4(i))) as &dyn Fn(u32) -> BucketKey,
        ),
        ("rate limit, IPv6 keys", &|i| BucketKey::Ip(ipv6(i))),
        ("rate limit, API-key ids (24 bytes)", &|i| {
            BucketKey::Text(Arc::from(format!("k_{i:022}")))
        }),
    ] {
        let store = MemoryRateLimitStore::new(KEYS as usize);
        // The limiter itself, before any key.
        check(&store, &key_of(u32::MAX));
        let keys: Vec<BucketKey> = (0..KEYS - 1).map(key_of).collect();
        let bytes = held(|| {
            for key in &keys {
                check(&store, key);
            }
        });
        // Text keys share their `Arc<str>` with the caller here; count the text too.
        let text: i64 = keys
            .iter()
            .map(|key| match key {
                BucketKey::Text(text) => 16 + text.len() as i64,
                _ => 0,
            })
            .sum();
        report(name, bytes + text, store.len());
        drop(keys);
        // Made before counting: the flood's own keys are the caller's memory, not the store's.
        let flood_keys: Vec<BucketKey> = (KEYS..KEYS + FLOOD).map(key_of).collect();
        let flood = held(|| {
            for key in &flood_keys {
                check(&store, key);
            }
        });
        println!(
            "  then a flood of {FLOOD} more distinct keys: {} buckets held, {flood} more bytes",
            store.len()
        );
    }

    let policy = BruteForce::new()
        .threshold(1_000, Duration::from_secs(600))
        .max_sources(KEYS as usize);
    let blocks = MemoryBlockStore::new(KEYS as usize);
    let bytes = held(|| {
        for i in 0..KEYS {
            let future = blocks.record_failure(&BlockSource::Ip(ipv4(i)), &policy);
            futures_util::FutureExt::now_or_never(future).expect("ready");
        }
    });
    report("brute force, IPv4 sources", bytes, blocks.len());
    let flood = held(|| {
        for i in KEYS..KEYS + FLOOD {
            let future = blocks.record_failure(&BlockSource::Ip(ipv4(i)), &policy);
            futures_util::FutureExt::now_or_never(future).expect("ready");
        }
    });
    println!(
        "  then a flood of {FLOOD} more distinct sources: {} sources held, {flood} more bytes",
        blocks.len()
    );
}
