//! API-key records on a real Redis (and a real three-node Redis Cluster), shared by several
//! gateway instances in one process: each instance has its own connection, store, cache and
//! authentication layer, as separate processes would.

#![cfg(all(feature = "redis", feature = "api-key"))]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use portcullis::api_key::{
    ApiKeyAuthenticator, CachedKeyStore, IssuedKey, KeyAdmin, KeyStore, NewKey,
};
use portcullis::redis::{RedisConnection, RedisKeyStore};
use portcullis::{AuthenticationLayer, Reason};
use support::redis::{RedisCluster, RedisServer};
use tower::{Layer, Service, ServiceExt, service_fn};

/// The cache age of every instance: the bound on how long a revocation made elsewhere
/// takes to be seen. Long, so that it never runs out on the real clock while a test runs
/// (however slow the machine); the tests pass it on tokio's clock.
const CACHE_AGE: Duration = Duration::from_secs(60);

/// A connection whose commands succeed on a loaded machine: bounds far above a loopback
/// round trip. Only the stall test uses a short one, [`impatient_connection`].
fn connection(url: &str) -> RedisConnection {
    connection_within(url, Duration::from_secs(2))
}

/// A connection that gives up after 300 ms, for a test that makes Redis stall for 5 s.
fn impatient_connection(url: &str) -> RedisConnection {
    connection_within(url, Duration::from_millis(300))
}

fn connection_within(url: &str, timeout: Duration) -> RedisConnection {
    RedisConnection::builder(url)
        .command_timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .expect("valid connection settings")
}

/// One gateway instance: its own connection, store and cache on the shared Redis.
struct Instance {
    store: Arc<CachedKeyStore<RedisKeyStore>>,
}

impl Instance {
    fn new(url: &str) -> Self {
        Self::on(connection(url))
    }

    fn on(connection: RedisConnection) -> Self {
        let store = CachedKeyStore::builder(RedisKeyStore::new(connection))
            .max_age(CACHE_AGE)
            .build()
            .expect("cache settings");
        Self {
            store: Arc::new(store),
        }
    }

    /// Sends `GET /` with `key` through this instance's authentication layer.
    async fn call(&self, key: &str) -> Response<portcullis::ResponseBody<String>> {
        let layer = AuthenticationLayer::new(ApiKeyAuthenticator::new(self.store.clone()));
        let service = layer.layer(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("inside")))
        }));
        let request = Request::get("/")
            .header("x-api-key", key)
            .body(())
            .expect("request");
        service.oneshot(request).await.expect("infallible")
    }

    async fn status(&self, key: &str) -> StatusCode {
        self.call(key).await.status()
    }
}

fn secret(issued: &IssuedKey) -> &str {
    issued.key.expose_secret()
}

#[tokio::test]
async fn a_key_issued_on_one_instance_works_on_all_and_a_revocation_reaches_all_within_the_cache_age()
 {
    let redis = RedisServer::start();
    let instances: Vec<Instance> = (0..3).map(|_| Instance::new(&redis.url())).collect();
    let issued = instances[0]
        .store
        .issue(NewKey::for_owner("billing").roles(["clerk"]))
        .await
        .expect("issued on instance 0");
    for instance in &instances {
        assert_eq!(instance.status(secret(&issued)).await, StatusCode::OK);
    }

    instances[0]
        .store
        .revoke(issued.record.id())
        .await
        .expect("revoked on instance 0");
    // Through the instance that revoked it: at once.
    let refused = instances[0].call(secret(&issued)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.extensions().get::<Reason>(),
        Some(&Reason::KeyRevoked)
    );
    // Elsewhere the cached record still answers, for at most the cache age.
    assert_eq!(instances[1].status(secret(&issued)).await, StatusCode::OK);

    // The clock is paused only while no command is in flight, so that Redis's own
    // timeouts stay on real time.
    tokio::time::pause();
    tokio::time::advance(CACHE_AGE + Duration::from_millis(1)).await;
    tokio::time::resume();
    for instance in &instances[1..] {
        let refused = instance.call(secret(&issued)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.extensions().get::<Reason>(),
            Some(&Reason::KeyRevoked)
        );
    }
}

#[tokio::test]
async fn records_hold_digests_and_rotate_list_and_revoke_work() {
    let redis = RedisServer::start();
    let store = RedisKeyStore::new(connection(&redis.url()));
    let alice = store
        .issue(NewKey::for_owner("alice").metadata("plan", "gold"))
        .await
        .expect("issued");
    let bob = store.issue(NewKey::for_owner("bob")).await.expect("issued");

    // What Redis holds: the record with the digest, never the secret.
    let stored = redis.command(&format!(
        "HGET {{portcullis}}:key:{} record",
        alice.record.id()
    ));
    let secret_part = &secret(&alice)[secret(&alice).len() - 20..];
    assert!(!stored.contains(secret_part), "secret bytes in {stored}");

    let found = store
        .find(alice.record.id())
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.owner(), "alice");
    assert_eq!(found.metadata().get("plan"), Some(&"gold".into()));

    let listed = store.list(Some("bob")).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id(), bob.record.id());
    assert_eq!(store.list(None).await.expect("list").len(), 2);

    let successor = store
        .rotate(alice.record.id(), Duration::ZERO)
        .await
        .expect("rotated");
    let old = store
        .find(alice.record.id())
        .await
        .expect("lookup")
        .expect("still listed");
    assert!(old.expires_at().is_some(), "the old key now expires");
    assert_eq!(successor.record.owner(), "alice");
    assert_eq!(
        successor.record.metadata().get("plan"),
        Some(&"gold".into())
    );

    store.revoke(bob.record.id()).await.expect("revoked");
    let revoked = store
        .find(bob.record.id())
        .await
        .expect("lookup")
        .expect("found");
    assert!(revoked.revoked_at().is_some());
    assert!(store.rotate(bob.record.id(), Duration::ZERO).await.is_err());
}

#[tokio::test]
async fn lookups_fail_closed_while_redis_is_down_and_recover_when_it_is_back() {
    let mut redis = RedisServer::start();
    let instance = Instance::new(&redis.url());
    let issued = instance
        .store
        .issue(NewKey::for_owner("billing"))
        .await
        .expect("issued");

    redis.stop();
    // Not cached yet on this lookup path: a fresh instance asks Redis.
    let fresh = Instance::new(&redis.url());
    let refused = fresh.call(secret(&issued)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key(http::header::RETRY_AFTER));
    assert_eq!(
        refused.extensions().get::<Reason>(),
        Some(&Reason::Unavailable)
    );

    // Back, empty (nothing is persisted): the same instance works again without a restart.
    redis.restart();
    let mut recovered = None;
    // Reconnection happens on a later command: a bounded number of attempts.
    for _ in 0..20 {
        if let Ok(issued) = fresh.store.issue(NewKey::for_owner("after")).await {
            recovered = Some(issued);
            break;
        }
    }
    let issued = recovered.expect("the store reconnects once Redis is back");
    assert_eq!(fresh.status(secret(&issued)).await, StatusCode::OK);
}

#[tokio::test]
async fn a_stalled_redis_answers_503_within_the_command_timeout() {
    let redis = RedisServer::start();
    let instance = Instance::new(&redis.url());
    let issued = instance
        .store
        .issue(NewKey::for_owner("billing"))
        .await
        .expect("issued");
    let fresh = Instance::on(impatient_connection(&redis.url()));
    // Redis blocks every client for 5 s; the lookup gives up after 300 ms.
    let _sleeping = redis.command_in_background("DEBUG SLEEP 5");
    let refused = fresh.call(secret(&issued)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key(http::header::RETRY_AFTER));
}

#[tokio::test]
async fn the_key_store_works_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let connect = || {
        RedisConnection::cluster_builder(cluster.urls())
            .command_timeout(Duration::from_secs(2))
            .build()
            .expect("cluster settings")
    };
    let one = Arc::new(RedisKeyStore::new(connect()));
    let other = Arc::new(RedisKeyStore::new(connect()));
    let mut issued = Vec::new();
    for owner in ["a", "b", "c", "d", "e"] {
        issued.push(one.issue(NewKey::for_owner(owner)).await.expect("issued"));
    }
    for key in &issued {
        let found = other
            .find(key.record.id())
            .await
            .expect("lookup on the other connection")
            .expect("found");
        assert_eq!(found.owner(), key.record.owner());
    }
    assert_eq!(other.list(None).await.expect("list").len(), 5);
    other.revoke(issued[0].record.id()).await.expect("revoked");
    let mut layer_service = AuthenticationLayer::new(ApiKeyAuthenticator::new(one.clone())).layer(
        service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) }),
    );
    for (key, expected) in [
        (&issued[0], StatusCode::UNAUTHORIZED),
        (&issued[1], StatusCode::OK),
    ] {
        let request = Request::get("/")
            .header("x-api-key", secret(key))
            .body(())
            .expect("request");
        let response = layer_service
            .ready()
            .await
            .expect("ready")
            .call(request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), expected);
    }
}

#[cfg(feature = "bearer")]
#[tokio::test]
async fn a_token_revoked_on_one_instance_is_refused_on_all_within_the_answer_age() {
    use portcullis::bearer::{Revocation, TokenRevocations};
    use portcullis::redis::RedisRevocations;
    use std::time::SystemTime;

    let redis = RedisServer::start();
    let one = RedisRevocations::new(connection(&redis.url()));
    // An answer age that cannot run out on the real clock while the test runs; it is
    // passed on tokio's clock.
    let answer_age = Duration::from_secs(60);
    let other = RedisRevocations::with_max_age(connection(&redis.url()), answer_age)
        .expect("a valid answer age");
    let issuer = "https://issuer.example";
    assert_eq!(other.check(issuer, "token-1").await, Revocation::Valid);

    one.revoke(
        issuer,
        "token-1",
        SystemTime::now() + Duration::from_secs(30),
    )
    .await
    .expect("revoked");
    assert_eq!(one.check(issuer, "token-1").await, Revocation::Revoked);
    // The other instance believes its answer for the answer age, then asks again.
    assert_eq!(other.check(issuer, "token-1").await, Revocation::Valid);
    tokio::time::pause();
    tokio::time::advance(answer_age + Duration::from_millis(1)).await;
    tokio::time::resume();
    assert_eq!(other.check(issuer, "token-1").await, Revocation::Revoked);

    // The entry lives as long as the token: Redis drops it at the token's expiry.
    let keys = redis.command_values("KEYS portcullis:revoked:*");
    assert_eq!(keys.len(), 1, "one key: {keys:?}");
    let key = String::from_utf8(keys[0].clone()).expect("an ASCII key");
    let ttl: i64 = redis
        .command(&format!("PTTL {key}"))
        .trim_start_matches(':')
        .parse()
        .expect("a TTL");
    assert!(ttl > 0 && ttl <= 30_000, "expires with the token: {ttl} ms");

    // Redis down: an answer not cached is unknown (the bearer layer answers 503).
    drop(redis);
    assert_eq!(other.check(issuer, "token-2").await, Revocation::Unknown);
}

#[cfg(feature = "oidc")]
#[tokio::test]
async fn session_loads_fail_while_redis_is_down_and_work_again_after() {
    use portcullis::SessionKey;
    use portcullis::oidc::{SessionId, SessionStore};
    use portcullis::redis::RedisSessionStore;

    let mut redis = RedisServer::start();
    let store = RedisSessionStore::new(connection(&redis.url()), SessionKey::generate());
    let id = SessionId::of_cookie("a-cookie-value");
    let idle = Duration::from_secs(60);
    assert!(matches!(store.load(&id, idle).await, Ok(None)));

    // An error, which the relying party answers with 503: never "no session" (a login
    // loop) and never a pass.
    redis.stop();
    assert!(store.load(&id, idle).await.is_err());

    redis.restart();
    let mut recovered = false;
    // The connection reopens on a later command: a bounded number of attempts.
    for _ in 0..20 {
        if matches!(store.load(&id, idle).await, Ok(None)) {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the store works again once Redis is back");
}
