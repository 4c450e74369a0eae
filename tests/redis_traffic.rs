//! Rate limits and brute-force blocks on a real Redis (and a real three-node Redis
//! Cluster), shared by three gateway instances in one process: each instance has its own
//! connection and stores, as separate processes would.
//!
//! Quotas here are per minute: every test finishes well inside one emission interval, so
//! the counts are exact (the bound across N instances is the quota itself, plus what
//! refills while the requests are in flight).

#![cfg(all(
    feature = "redis",
    feature = "rate-limit",
    feature = "api-key",
    feature = "axum"
))]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::api_key::{ApiKeyAuthenticator, IssuedKey, KeyAdmin, MemoryKeyStore, NewKey};
use portcullis::authz::{RouteRules, authenticated};
use portcullis::rate_limit::{
    BucketKey, Limit, LimitCheck, LimitKey, Quota, RateLimitLayer, RateLimitStore,
};
use portcullis::redis::{Fallback, RedisBlockStore, RedisConnection, RedisRateLimitStore};
use portcullis::shield::{BlockSource, BlockState, BlockStore, BruteForce, ShieldLayer};
use portcullis::{GatewaySecurityLayer, Reason};
use support::redis::{RedisCluster, RedisServer};
use tower::ServiceExt;

const PEER: &str = "198.51.100.7:40000";

/// Bounds far above a loopback round trip, so that no command times out on a loaded
/// machine: a timeout here would fall back to counting in the process, without an error.
fn connection(url: &str) -> RedisConnection {
    RedisConnection::builder(url)
        .command_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("connection settings")
}

/// One gateway instance: API keys (one store shared by all, as a Redis key store would
/// be), a per-key limit and brute-force blocking on the shared Redis.
fn instance(url: &str, keys: &Arc<MemoryKeyStore>) -> Router {
    let redis = connection(url);
    let limits = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-key",
            LimitKey::ApiKey,
            Quota::per_minute(10),
        ))
        .store(Arc::new(RedisRateLimitStore::new(redis.clone())))
        .build()
        .expect("limits");
    let shield = ShieldLayer::builder()
        .brute_force(
            BruteForce::new()
                .threshold(3, Duration::from_secs(60))
                .block_for(Duration::from_secs(60), Duration::from_secs(300))
                .store(Arc::new(RedisBlockStore::new(redis))),
        )
        .build()
        .expect("shield");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(keys.clone()))
        .rules(
            RouteRules::builder()
                .route("GET /orders", authenticated())
                .build()
                .expect("rules"),
        )
        .shield(shield)
        .rate_limit(limits)
        .build()
        .expect("gateway");
    Router::new()
        .route("/orders", get(|| async { "orders" }))
        .layer(gateway)
}

fn get_with_key(key: &str) -> Request<Body> {
    let mut request = Request::get("/orders")
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("request");
    let peer: SocketAddr = PEER.parse().expect("peer");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn send(app: &Router, key: &str) -> (StatusCode, Option<Reason>) {
    let response = app
        .clone()
        .oneshot(get_with_key(key))
        .await
        .expect("infallible");
    (
        response.status(),
        response.extensions().get::<Reason>().copied(),
    )
}

async fn issue(keys: &MemoryKeyStore, owner: &str) -> IssuedKey {
    keys.issue(NewKey::for_owner(owner)).await.expect("issued")
}

#[tokio::test]
async fn a_per_key_limit_holds_across_three_instances() {
    let redis = RedisServer::start();
    let keys = Arc::new(MemoryKeyStore::new());
    let instances: Vec<Router> = (0..3).map(|_| instance(&redis.url(), &keys)).collect();
    let alice = issue(&keys, "alice").await;
    let bob = issue(&keys, "bob").await;

    let mut allowed = 0;
    for round in 0..30 {
        let (status, reason) = send(&instances[round % 3], alice.key.expose_secret()).await;
        match status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(reason, Some(Reason::RateLimited)),
            other => panic!("unexpected {other}"),
        }
    }
    // 10 per minute for the key, whichever instance answers: not 3 × 10.
    assert_eq!(allowed, 10);
    // Another key has its own bucket.
    assert_eq!(
        send(&instances[1], bob.key.expose_secret()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bucket_answers_carry_what_the_ratelimit_fields_need() {
    let redis = RedisServer::start();
    let store = RedisRateLimitStore::new(connection(&redis.url()));
    let key = BucketKey::Text("key-1".into());
    let check = LimitCheck::new("per-key", &key, Quota::per_minute(3));
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let state = store.check(&check).await;
        assert!(state.allowed);
        // One request costs one emission interval (20 s here) of the bucket.
        assert!(state.reset_after > Duration::ZERO && state.reset_after <= Duration::from_secs(60));
        remaining.push(state.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let refused = store.check(&check).await;
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // The next request fits once one interval has passed since the first.
    assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(20));
}

/// Each quota of a limit counts in its own buckets, as in the in-process store: a key that
/// spent a small quota (a lower tier, or the quota before a reload) is not refused under a
/// larger one because of it, and the small quota's count is still there to go back to.
#[tokio::test]
async fn each_quota_of_a_limit_has_its_own_buckets() {
    let redis = RedisServer::start();
    let store = RedisRateLimitStore::new(connection(&redis.url()));
    let key = BucketKey::Text("key-1".into());
    let small = LimitCheck::new("per-key", &key, Quota::per_minute(1));
    assert!(store.check(&small).await.allowed);
    assert!(!store.check(&small).await.allowed);
    let large = LimitCheck::new("per-key", &key, Quota::per_minute(100));
    let state = store.check(&large).await;
    assert!(state.allowed);
    assert_eq!(state.remaining, 99);
    assert!(!store.check(&small).await.allowed);
}

#[tokio::test]
async fn a_source_blocked_through_one_instance_is_blocked_on_all() {
    let redis = RedisServer::start();
    let keys = Arc::new(MemoryKeyStore::new());
    let instances: Vec<Router> = (0..3).map(|_| instance(&redis.url(), &keys)).collect();
    let good = issue(&keys, "alice").await;
    let stranger = MemoryKeyStore::new()
        .issue(NewKey::for_owner("nobody"))
        .await
        .expect("issued elsewhere");

    // Three bad keys from one address, each to another instance: the third failure blocks.
    for instance in &instances {
        let (status, reason) = send(instance, stranger.key.expose_secret()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(reason, Some(Reason::UnknownKey));
    }
    // Every instance now refuses the address before looking at any credential, even a good
    // one.
    for instance in &instances {
        let (status, reason) = send(instance, good.key.expose_secret()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reason, Some(Reason::Blocked));
    }
}

#[tokio::test]
async fn counting_falls_back_as_configured_while_redis_is_down_and_recovers() {
    let mut redis = RedisServer::start();
    let key = BucketKey::Text("key-1".into());
    let quota = Quota::per_minute(2);
    let check = LimitCheck::new("per-key", &key, quota);
    let local = RedisRateLimitStore::new(connection(&redis.url()));
    let open = RedisRateLimitStore::with_fallback(connection(&redis.url()), Fallback::Open);
    let closed = RedisRateLimitStore::with_fallback(connection(&redis.url()), Fallback::Closed);
    redis.stop();

    // Local: the same quota, counted in this process.
    let answers: Vec<bool> = [
        local.check(&check).await.allowed,
        local.check(&check).await.allowed,
        local.check(&check).await.allowed,
    ]
    .into();
    assert_eq!(answers, [true, true, false]);
    for _ in 0..3 {
        assert!(open.check(&check).await.allowed, "fail-open lets through");
        assert!(!closed.check(&check).await.allowed, "fail-closed refuses");
    }
    let blocks = RedisBlockStore::new(connection(&redis.url()));
    let source = BlockSource::Ip("192.0.2.9".parse().expect("ip"));
    let policy = BruteForce::new().threshold(2, Duration::from_secs(60));
    blocks.record_failure(&source, &policy).await;
    let second = blocks.record_failure(&source, &policy).await;
    assert!(
        second.blocked.is_some(),
        "blocked locally while Redis is down"
    );
    assert!(matches!(
        blocks.state(&source).await,
        BlockState::Blocked { .. }
    ));

    // Back: counted on Redis again (a fresh, empty server), without rebuilding anything.
    redis.restart();
    let mut recovered = false;
    // The connection reopens on a later command: a bounded number of attempts.
    for _ in 0..20 {
        let state = closed.check(&check).await;
        if state.allowed {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the fail-closed store counts on Redis again");
}

#[tokio::test]
async fn rate_limits_and_blocks_work_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let connect = || {
        RedisConnection::cluster_builder(cluster.urls())
            .command_timeout(Duration::from_secs(2))
            .build()
            .expect("cluster settings")
    };
    let stores: Vec<RedisRateLimitStore> = (0..3)
        .map(|_| RedisRateLimitStore::with_fallback(connect(), Fallback::Open))
        .collect();
    // Many buckets, so they land on every node's slots.
    for bucket in 0..20 {
        let key = BucketKey::Text(format!("key-{bucket}").into());
        let check = LimitCheck::new("per-key", &key, Quota::per_minute(4));
        let mut allowed = 0;
        for round in 0..9 {
            if stores[round % 3].check(&check).await.allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 4, "bucket {bucket}");
    }
    let blocks = RedisBlockStore::with_fallback(connect(), Fallback::Open);
    let other = RedisBlockStore::with_fallback(connect(), Fallback::Open);
    let policy = BruteForce::new().threshold(2, Duration::from_secs(60));
    let source = BlockSource::Ip("192.0.2.10".parse().expect("ip"));
    blocks.record_failure(&source, &policy).await;
    assert!(
        blocks
            .record_failure(&source, &policy)
            .await
            .blocked
            .is_some()
    );
    assert!(matches!(
        other.state(&source).await,
        BlockState::Blocked { .. }
    ));
}

/// IPv6 clients are keyed by their /64 on Redis as in process: addresses of one /64 share a
/// per-IP bucket and a block across instances; another /64 does not.
#[tokio::test]
async fn ipv6_clients_share_a_64_across_instances() {
    let redis = RedisServer::start();
    let keys = Arc::new(MemoryKeyStore::new());
    let stranger = MemoryKeyStore::new()
        .issue(NewKey::for_owner("nobody"))
        .await
        .expect("issued elsewhere");
    let instance = || {
        let connection = connection(&redis.url());
        let per_ip = RateLimitLayer::builder()
            .limit(Limit::new(
                "per-ip",
                LimitKey::ClientIp,
                Quota::per_minute(4),
            ))
            .store(Arc::new(RedisRateLimitStore::new(connection.clone())))
            .build()
            .expect("limits");
        let shield = ShieldLayer::builder()
            .brute_force(
                BruteForce::new()
                    .threshold(2, Duration::from_secs(60))
                    .store(Arc::new(RedisBlockStore::new(connection))),
            )
            .build()
            .expect("shield");
        let gateway = GatewaySecurityLayer::builder()
            .authenticate(ApiKeyAuthenticator::new(keys.clone()))
            .rules(
                RouteRules::builder()
                    .route("GET /orders", authenticated())
                    .build()
                    .expect("rules"),
            )
            .shield(shield)
            .rate_limit_before_auth(per_ip)
            .build()
            .expect("gateway");
        Router::new()
            .route("/orders", get(|| async { "orders" }))
            .layer(gateway)
    };
    let instances = [instance(), instance()];
    let from = |peer: &str| {
        let mut request = get_with_key(stranger.key.expose_secret());
        let peer: SocketAddr = peer.parse().expect("peer");
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    };
    let status = |app: &Router, peer: &str| {
        let request = from(peer);
        let app = app.clone();
        async move { app.oneshot(request).await.expect("infallible").status() }
    };
    // Two failures from two hosts of one /64, through two instances: the /64 is blocked.
    assert_eq!(
        status(&instances[0], "[2001:db8:5:6::1]:1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&instances[1], "[2001:db8:5:6::2]:1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&instances[0], "[2001:db8:5:6:ffff::3]:1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another /64 is not blocked.
    assert_eq!(
        status(&instances[1], "[2001:db8:5:7::1]:1").await,
        StatusCode::UNAUTHORIZED
    );
    // A good key from the hosts of a third /64, through both instances: one per-IP bucket
    // of 4.
    let good = issue(&keys, "alice").await;
    let mut allowed = 0;
    for host in 1..=6 {
        let mut request = get_with_key(good.key.expose_secret());
        let peer: SocketAddr = format!("[2001:db8:5:8::{host}]:1").parse().expect("peer");
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = instances[host % 2]
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        match response.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(
                response.extensions().get::<Reason>().copied(),
                Some(Reason::RateLimited)
            ),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(allowed, 4);
}
