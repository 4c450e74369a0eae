//! API keys on Redis, beside their baselines, in one criterion run against a real
//! `redis-server` on loopback (started by the tests' support module, installed when
//! missing).
//!
//! - `hit/memory_store` and `hit/cached_redis_store`: the API-key authenticator's decision
//!   for a valid key, from the in-memory store and from `CachedKeyStore<RedisKeyStore>`
//!   with the record cached (no round trip). Target: the cached Redis store at most 0.2 µs
//!   over the memory store.
//! - `miss/raw_get` and `miss/redis_store`: one raw `GET` of a small value with the redis
//!   crate's `ConnectionManager`, and `RedisKeyStore::find` of a record (one `HMGET`):
//!   a lookup that misses the cache costs about one round trip.
//!
//! - `rate_limit/raw_evalsha_empty` and `rate_limit/redis_store`: `EVALSHA` of an empty
//!   script, and one `RedisRateLimitStore` check (the GCRA script): a distributed check
//!   costs about one round trip.
//!
//! Run with `cargo bench --features redis --bench redis`.

#[path = "support/poll.rs"]
mod poll;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use poll::complete;
use portcullis::api_key::{
    ApiKeyAuthenticator, CachedKeyStore, KeyAdmin, KeyStore, MemoryKeyStore, NewKey,
};
use portcullis::rate_limit::{BucketKey, LimitCheck, Quota, RateLimitStore};
use portcullis::redis::{RedisConnection, RedisKeyStore, RedisRateLimitStore};
use portcullis::{AuthOutcome, Authenticate};

fn head(key: &str) -> http::request::Parts {
    Request::get("/orders/1")
        .header("x-api-key", key)
        .body(())
        .expect("request")
        .into_parts()
        .0
}

fn authenticated(authenticator: &ApiKeyAuthenticator, parts: &http::request::Parts) -> bool {
    matches!(
        complete(authenticator.authenticate(parts)),
        AuthOutcome::Authenticated(_)
    )
}

fn benches(c: &mut Criterion) {
    let server = support::redis::RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let connection = RedisConnection::builder(server.url())
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("connection");

    let memory = Arc::new(MemoryKeyStore::new());
    let memory_key = runtime
        .block_on(memory.issue(NewKey::for_owner("bench").roles(["clerk"])))
        .expect("issued");
    let redis_store = RedisKeyStore::new(connection);
    // The longest cache age, so the record stays cached for the whole measurement.
    let cached = Arc::new(
        CachedKeyStore::builder(redis_store.clone())
            .max_age(Duration::from_secs(300))
            .build()
            .expect("cache settings"),
    );
    let redis_key = runtime
        .block_on(cached.issue(NewKey::for_owner("bench").roles(["clerk"])))
        .expect("issued");

    let from_memory = ApiKeyAuthenticator::new(memory);
    let from_redis = ApiKeyAuthenticator::new(cached.clone());
    let memory_head = head(memory_key.key.expose_secret());
    let redis_head = head(redis_key.key.expose_secret());
    assert!(authenticated(&from_memory, &memory_head));
    // The first lookup goes to Redis and fills the cache; the rest are hits.
    let first = runtime.block_on(from_redis.authenticate(&redis_head));
    assert!(matches!(first, AuthOutcome::Authenticated(_)));
    assert!(authenticated(&from_redis, &redis_head));

    let mut group = c.benchmark_group("redis_keys");
    group.bench_function("hit/memory_store", |b| {
        b.iter(|| black_box(authenticated(&from_memory, black_box(&memory_head))));
    });
    group.bench_function("hit/cached_redis_store", |b| {
        b.iter(|| black_box(authenticated(&from_redis, black_box(&redis_head))));
    });

    let client = redis::Client::open(server.url()).expect("client");
    let mut raw = runtime
        .block_on(redis::aio::ConnectionManager::new(client))
        .expect("raw connection");
    runtime
        .block_on(
            redis::cmd("SET")
                .arg("bench:raw")
                .arg("x".repeat(300))
                .exec_async(&mut raw),
        )
        .expect("set");
    let id = *redis_key.record.id();
    group.bench_function("miss/raw_get", |b| {
        b.iter(|| {
            let value: Option<String> = runtime
                .block_on(redis::cmd("GET").arg("bench:raw").query_async(&mut raw))
                .expect("get");
            black_box(value)
        });
    });
    group.bench_function("miss/redis_store", |b| {
        b.iter(|| black_box(runtime.block_on(redis_store.find(&id)).expect("lookup")));
    });
    group.finish();

    let mut group = c.benchmark_group("redis_rate_limit");
    let empty = redis::Script::new("return 0");
    let _: i64 = runtime
        .block_on(empty.prepare_invoke().invoke_async(&mut raw))
        .expect("load the empty script");
    group.bench_function("raw_evalsha_empty", |b| {
        b.iter(|| {
            let value: i64 = runtime
                .block_on(empty.prepare_invoke().invoke_async(&mut raw))
                .expect("evalsha");
            black_box(value)
        });
    });
    let limits = RedisRateLimitStore::new(
        RedisConnection::builder(server.url())
            .command_timeout(Duration::from_secs(2))
            .build()
            .expect("connection"),
    );
    let bucket = BucketKey::Text("bench".into());
    // A quota no run exhausts, so every check is a full allowed step.
    let check = LimitCheck::new("bench", &bucket, Quota::per_second(1_000_000_000));
    group.bench_function("redis_store", |b| {
        b.iter(|| black_box(runtime.block_on(limits.check(&check)).allowed));
    });
    group.finish();
}

criterion_group!(redis_keys, benches);
criterion_main!(redis_keys);
