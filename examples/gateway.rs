//! A small orders API behind [`GatewaySecurityLayer`]: API keys from an in-memory store,
//! role → permission mapping, per-route rules, and a JSON Schema for new orders. The policy
//! (roles, rules, the schema, and the tests it must pass before it serves) is the file
//! `examples/gateway.yaml`, or the one named on the command line:
//! `cargo run --example gateway -- my-policy.yaml`.
//!
//! ```text
//! cargo run --example gateway
//! PORTCULLIS_ADDR=127.0.0.1:0 RUST_LOG=debug cargo run --example gateway
//! ```
//!
//! It listens on `127.0.0.1:3000` (or `PORTCULLIS_ADDR`), issues two fresh demo keys at
//! every start (`admin`, owned by "ada", and `viewer`, owned by "vic"), and prints
//! ready-to-paste `curl` commands: some that succeed, one refused with 403 (a viewer
//! deleting an order), one refused with 403 `object_denied` (a viewer reading another
//! owner's order), one refused with 401 (no key), and one new order refused with 400 and
//! problem details by the schema. Ctrl-C stops it.
//!
//! Orders belong to their owners: `GET /users/{owner}/orders/{id}` needs `{owner}` to be the
//! caller (an object-level rule, written in the rules' text form), unless the caller is an
//! admin.
//!
//! Traffic protection is on, with small demo values printed at start: a per-IP limit before
//! authentication, per-key limits by role (the viewer's lower than the admin's), and
//! brute-force blocking of addresses that keep sending bad keys. Prometheus metrics are on
//! `GET /metrics` (admin key only). The banner prints a command that shows each at work.
//!
//! Keys are managed over HTTP under `/admin/keys` (issue, list, read, rotate, revoke) with
//! the admin key; the banner prints a command that issues a key and one that revokes the
//! viewer's, after which the viewer's commands answer 401.
//!
//! | route                 | who may call it              |
//! |-----------------------|------------------------------|
//! | `GET /health`         | anyone, no key looked at     |
//! | `GET /whoami`         | any valid key                |
//! | `GET /orders`         | permission `orders:read` (the caller's own orders) |
//! | `GET /users/{owner}/orders/{id}` | permission `orders:read`, and `{owner}` is the caller or the caller is an admin |
//! | `POST /orders`        | permission `orders:write`    |
//! | `DELETE /orders/{id}` | permission `orders:write`    |
//! | `GET, POST /admin/keys`, `GET, DELETE /admin/keys/{id}`, `POST /admin/keys/{id}/rotate` | role `admin` (the key API, [`KeyAdminApi`](portcullis::api_key::KeyAdminApi)) |
//! | `GET /metrics`        | role `admin`                 |
//! | anything else         | nobody (403 `route_denied`)  |
//!
//! Bearer tokens too, when an issuer is configured through the environment:
//!
//! | variable                  | meaning                                                  |
//! |---------------------------|----------------------------------------------------------|
//! | `PORTCULLIS_JWT_ISSUER`   | the expected `iss`; also where discovery looks for keys   |
//! | `PORTCULLIS_JWT_AUDIENCE` | the expected `aud` (required with an issuer or introspection) |
//! | `PORTCULLIS_JWKS_URL`     | the JWKS to use instead of discovery (optional)           |
//! | `PORTCULLIS_JWT_ROLES_CLAIM` | where roles are, e.g. `realm_access.roles` (optional)  |
//! | `PORTCULLIS_INTROSPECTION_URL` | an RFC 7662 endpoint for opaque tokens (optional)     |
//! | `PORTCULLIS_CLIENT_ID`, `PORTCULLIS_CLIENT_SECRET` | its client credentials         |
//!
//! `GET /whoami` then accepts either an API key or a valid access token for that issuer
//! and audience, with no further role or scope needed.
//!
//! Browser login too (OpenID Connect, built with `--features oidc`), when a provider is
//! configured:
//!
//! | variable                        | meaning                                            |
//! |---------------------------------|----------------------------------------------------|
//! | `PORTCULLIS_OIDC_ISSUER`        | the provider's issuer (found by discovery)          |
//! | `PORTCULLIS_OIDC_CLIENT_ID`     | the client registered there                         |
//! | `PORTCULLIS_OIDC_CLIENT_SECRET` | its secret                                          |
//!
//! The client must allow the redirect URI `http://<addr>/callback`. Then `/login` starts a
//! login, `/whoami` shows the logged-in user (a browser without a session is sent to the
//! login), `/logout` logs out (a form, then the provider's logout) and
//! `/backchannel-logout` takes the provider's logout tokens. Against the test provider:
//!
//! ```text
//! (cd tests/idp && npm ci && IDP_PORT=4000 node server.mjs) &
//! PORTCULLIS_OIDC_ISSUER=http://127.0.0.1:4000 PORTCULLIS_OIDC_CLIENT_ID=demo-client \
//!   PORTCULLIS_OIDC_CLIENT_SECRET=demo-secret cargo run --example gateway --features oidc
//! # open http://127.0.0.1:3000/whoami and sign in as alice (any password)
//! ```
//!
//! Many instances (built with `--features redis`): with `PORTCULLIS_REDIS_URL` set, every
//! piece of shared state lives on that Redis (API keys, rate-limit buckets, brute-force
//! blocks, revoked tokens, and with `oidc` the sessions, sealed with `PORTCULLIS_SESSION_KEY`,
//! 64 hex digits, which every instance must share), so two instances on two ports share it:
//! a key printed by one works on the other, and an address blocked by one is blocked by the
//! other.
//!
//! ```text
//! redis-server --port 6379 --save '' --appendonly no &
//! PORTCULLIS_REDIS_URL=redis://127.0.0.1:6379 cargo run --example gateway --features redis &
//! PORTCULLIS_REDIS_URL=redis://127.0.0.1:6379 PORTCULLIS_ADDR=127.0.0.1:3001 \
//!   cargo run --example gateway --features redis &
//! curl -s -H 'x-api-key: <a key printed by the first>' http://127.0.0.1:3001/whoami
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use portcullis::api_key::{
    ApiKeyAuthenticator, IssuedKey, KeyAdmin, KeyAdminApi, MemoryKeyStore, NewKey, StoreError,
};
use portcullis::bearer::{BearerAuthenticator, Introspection, IssuerRules};
use portcullis::config::{CheckedPolicy, PolicyFile};
use portcullis::observe::{MetricsObserver, Observe, TracingObserver};
use portcullis::rate_limit::{Limit, LimitKey, Quota, RateLimitLayer, Tier};
#[cfg(feature = "redis")]
use portcullis::redis::RedisConnection;
use portcullis::shield::{BruteForce, ShieldLayer};
use portcullis::{ConfigError, GatewaySecurityLayer, Principal};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

/// Where the server listens unless `PORTCULLIS_ADDR` says otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// The demo's traffic limits: small, so that a short `curl` loop shows each at work.
const PER_IP: Quota = Quota::new(20, Duration::from_secs(10));
const VIEWER: Quota = Quota::per_minute(5);
const ADMIN: Quota = Quota::per_minute(60);
const FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const FIRST_BLOCK: Duration = Duration::from_secs(30);
const MAX_BLOCK: Duration = Duration::from_secs(300);

/// Where the shared state lives: in this process, or (with `PORTCULLIS_REDIS_URL` and the
/// `redis` feature) on Redis, shared by every instance.
#[derive(Clone, Default)]
struct Shared {
    #[cfg(feature = "redis")]
    redis: Option<RedisConnection>,
}

impl Shared {
    fn from_env() -> Result<Self, Box<dyn std::error::Error>> {
        let url = std::env::var("PORTCULLIS_REDIS_URL").ok();
        #[cfg(feature = "redis")]
        return Ok(Self {
            redis: url
                .map(|url| RedisConnection::builder(url).build())
                .transpose()?,
        });
        #[cfg(not(feature = "redis"))]
        match url {
            Some(_) => Err("PORTCULLIS_REDIS_URL is set: run with `--features redis`".into()),
            None => Ok(Self::default()),
        }
    }

    fn is_redis(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.redis.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// The API-key store: in memory, or on Redis behind a 1-second cache.
    fn keys(&self) -> Keys {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let store = portcullis::redis::RedisKeyStore::new(redis.clone());
            return Keys::Redis(Arc::new(portcullis::api_key::CachedKeyStore::new(store)));
        }
        Keys::Memory(Arc::new(MemoryKeyStore::new()))
    }

    fn limits(
        &self,
        builder: portcullis::rate_limit::RateLimitBuilder,
    ) -> portcullis::rate_limit::RateLimitBuilder {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return builder.store(Arc::new(portcullis::redis::RedisRateLimitStore::new(
                redis.clone(),
            )));
        }
        builder
    }

    fn blocks(&self, policy: BruteForce) -> BruteForce {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return policy.store(Arc::new(portcullis::redis::RedisBlockStore::new(
                redis.clone(),
            )));
        }
        policy
    }
}

/// The API-key store, in memory or on Redis.
#[derive(Clone)]
enum Keys {
    Memory(Arc<MemoryKeyStore>),
    #[cfg(feature = "redis")]
    Redis(Arc<portcullis::api_key::CachedKeyStore<portcullis::redis::RedisKeyStore>>),
}

impl Keys {
    fn authenticator(&self) -> ApiKeyAuthenticator {
        match self {
            Self::Memory(store) => ApiKeyAuthenticator::new(store.clone()),
            #[cfg(feature = "redis")]
            Self::Redis(store) => ApiKeyAuthenticator::new(store.clone()),
        }
    }

    async fn issue(&self, spec: NewKey) -> Result<IssuedKey, StoreError> {
        match self {
            Self::Memory(store) => store.issue(spec).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.issue(spec).await,
        }
    }

    /// The key API (issue, list, read, rotate, revoke) for callers with role `admin`, to
    /// nest under `/admin/keys`.
    fn admin_api(&self) -> Result<Router<Keys>, ConfigError> {
        Ok(match self {
            Self::Memory(store) => KeyAdminApi::builder(store.clone())
                .role("admin")
                .build()?
                .router(),
            #[cfg(feature = "redis")]
            Self::Redis(store) => KeyAdminApi::builder(store.clone())
                .role("admin")
                .build()?
                .router(),
        })
    }
}

/// One demo identity and the key issued for it at start.
struct DemoKey {
    name: &'static str,
    issued: IssuedKey,
}

/// The demo's policy (roles, route rules, validation and its tests): `examples/gateway.yaml`,
/// or the file named on the command line. Checked as a whole, tests included, before the
/// demo serves it.
fn policy() -> Result<(String, CheckedPolicy), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway.yaml").to_owned()
    });
    let checked = PolicyFile::from_file(&path)?.check()?;
    Ok((path, checked))
}

/// A bearer-token authenticator from `PORTCULLIS_JWT_*` and `PORTCULLIS_INTROSPECTION_URL`,
/// when either is configured.
fn bearer_from_env() -> Result<Option<BearerAuthenticator>, Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).ok();
    let (issuer, introspection_url) = (
        var("PORTCULLIS_JWT_ISSUER"),
        var("PORTCULLIS_INTROSPECTION_URL"),
    );
    if issuer.is_none() && introspection_url.is_none() {
        return Ok(None);
    }
    let roles_claim = var("PORTCULLIS_JWT_ROLES_CLAIM");
    let mut bearer = BearerAuthenticator::builder();
    if let Some(issuer) = &issuer {
        let audience = var("PORTCULLIS_JWT_AUDIENCE")
            .ok_or("PORTCULLIS_JWT_AUDIENCE is required with PORTCULLIS_JWT_ISSUER")?;
        let mut rules = IssuerRules::builder(issuer.clone()).audience(audience);
        rules = match var("PORTCULLIS_JWKS_URL") {
            Some(url) => rules.jwks_url(url),
            None => rules.discover(),
        };
        if let Some(path) = &roles_claim {
            rules = rules.roles_claim(path.clone());
        }
        bearer = bearer.issuer(rules.build()?);
    }
    if let Some(url) = introspection_url {
        let client_id = var("PORTCULLIS_CLIENT_ID")
            .ok_or("PORTCULLIS_CLIENT_ID is required with PORTCULLIS_INTROSPECTION_URL")?;
        let client_secret = var("PORTCULLIS_CLIENT_SECRET")
            .ok_or("PORTCULLIS_CLIENT_SECRET is required with PORTCULLIS_INTROSPECTION_URL")?;
        let audience = var("PORTCULLIS_JWT_AUDIENCE")
            .ok_or("PORTCULLIS_JWT_AUDIENCE is required with PORTCULLIS_INTROSPECTION_URL")?;
        let mut introspection =
            Introspection::builder(url, client_id, client_secret).audience(audience);
        if let Some(issuer) = issuer {
            introspection = introspection.issuer(issuer);
        }
        if let Some(path) = roles_claim {
            introspection = introspection.roles_claim(path);
        }
        bearer = bearer.introspection(introspection.build()?);
    }
    Ok(Some(bearer.build()?))
}

/// The shield: brute-force blocking of addresses that keep sending bad credentials.
fn shield(observer: Arc<dyn Observe>, shared: &Shared) -> Result<ShieldLayer, ConfigError> {
    ShieldLayer::builder()
        .brute_force(
            shared.blocks(
                BruteForce::new()
                    .threshold(FAILURES, FAILURE_WINDOW)
                    .block_for(FIRST_BLOCK, MAX_BLOCK),
            ),
        )
        .observer(observer)
        .build()
}

/// Per-IP limits, before any key is looked at.
fn per_ip_limit(
    observer: Arc<dyn Observe>,
    shared: &Shared,
) -> Result<RateLimitLayer, ConfigError> {
    shared
        .limits(RateLimitLayer::builder())
        .limit(Limit::new("per-ip", LimitKey::ClientIp, PER_IP))
        .observer(observer)
        .build()
}

/// Per-key limits, by role: the viewer's lower than the admin's.
fn per_key_limit(shared: &Shared) -> Result<RateLimitLayer, ConfigError> {
    shared
        .limits(RateLimitLayer::builder())
        .limit(Limit::new("per-key", LimitKey::ApiKey, VIEWER).tier(Tier::role("admin"), ADMIN))
        .build()
}

/// The OpenID Connect relying party from `PORTCULLIS_OIDC_*`, when configured: login at
/// `/login`, callback at `/callback`, logout at `/logout`.
#[cfg(feature = "oidc")]
fn oidc_from_env(
    addr: SocketAddr,
    shared: &Shared,
) -> Result<Option<portcullis::oidc::Oidc>, Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).ok();
    let Some(issuer) = var("PORTCULLIS_OIDC_ISSUER") else {
        return Ok(None);
    };
    let client_id =
        var("PORTCULLIS_OIDC_CLIENT_ID").ok_or("PORTCULLIS_OIDC_CLIENT_ID is required")?;
    let mut oidc = portcullis::oidc::Oidc::builder(issuer)
        .client_id(client_id)
        .redirect_uri(format!("http://{addr}/callback"))
        .post_logout_redirect_uri(format!("http://{addr}/"))
        .scopes(["openid", "profile", "email", "roles"])
        .roles_claim("roles")
        .login_path("/login")
        .logout_path("/logout")
        .backchannel_logout_path("/backchannel-logout");
    if let Some(secret) = var("PORTCULLIS_OIDC_CLIENT_SECRET") {
        oidc = oidc.client_secret(secret);
    }
    if addr.ip().is_loopback() {
        // A demo over plain http on this machine: cookies without `Secure`.
        oidc = oidc.insecure_http_cookies_on_loopback();
    }
    if var("PORTCULLIS_SESSION_KEY").is_some() {
        oidc = oidc.session_key(oidc_session_key()?);
    }
    #[cfg(feature = "redis")]
    if let Some(redis) = &shared.redis {
        // Sessions sealed with the key every instance shares: give the same
        // PORTCULLIS_SESSION_KEY to each, or sessions stay with the instance that made them.
        let key = match var("PORTCULLIS_SESSION_KEY") {
            Some(_) => oidc_session_key()?,
            None => portcullis::SessionKey::generate(),
        };
        oidc = oidc.session_key(key.clone()).session_store(Arc::new(
            portcullis::redis::RedisSessionStore::new(redis.clone(), key),
        ));
    }
    #[cfg(not(feature = "redis"))]
    let _ = shared;
    Ok(Some(oidc.build()?))
}

/// `PORTCULLIS_SESSION_KEY` (64 hex digits) as a session key.
#[cfg(feature = "oidc")]
fn oidc_session_key() -> Result<portcullis::SessionKey, Box<dyn std::error::Error>> {
    let hex = std::env::var("PORTCULLIS_SESSION_KEY")?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(hex.get(at..at + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| "PORTCULLIS_SESSION_KEY must be 64 hex digits")?;
    Ok(portcullis::SessionKey::from_bytes(&bytes)?)
}

/// Stands in for the relying party when the example is built without `oidc`.
#[cfg(not(feature = "oidc"))]
fn oidc_from_env(
    _addr: SocketAddr,
    _shared: &Shared,
) -> Result<Option<NoOidc>, Box<dyn std::error::Error>> {
    if std::env::var("PORTCULLIS_OIDC_ISSUER").is_ok() {
        return Err("PORTCULLIS_OIDC_ISSUER is set: run with `--features oidc`".into());
    }
    Ok(None)
}

#[cfg(not(feature = "oidc"))]
type NoOidc = std::convert::Infallible;

/// The relying party, or nothing when the example is built without `oidc`.
#[cfg(feature = "oidc")]
type RelyingParty = portcullis::oidc::Oidc;
#[cfg(not(feature = "oidc"))]
type RelyingParty = NoOidc;

/// The API, wrapped in the gateway (authentication, authorization, per-key limits,
/// validation), the login routes around it, and the shield and per-IP limit around
/// everything: so that the login and callback routes are shielded and limited too.
fn app(
    keys: Keys,
    shared: &Shared,
    bearer: Option<BearerAuthenticator>,
    oidc: Option<RelyingParty>,
    metrics: PrometheusHandle,
    policy: CheckedPolicy,
) -> Result<Router, ConfigError> {
    let mut security = GatewaySecurityLayer::builder().authenticate(keys.authenticator());
    if let Some(bearer) = bearer {
        security = security.authenticate(bearer);
    }
    #[cfg(feature = "oidc")]
    if let Some(oidc) = &oidc {
        security = security.authenticate(oidc.clone());
    }
    let observer: Arc<dyn Observe> = Arc::new((TracingObserver, MetricsObserver::new()));
    // Without OpenID Connect, `.shield(..)` and `.rate_limit_before_auth(..)` on the gateway
    // do the same; with it, they belong outside `OidcLayer` (below).
    if let Some(validation) = policy.validation {
        security = security.validate(validation);
    }
    let security = security
        .rules(policy.rules)
        .rate_limit(per_key_limit(shared)?)
        .observer(observer.clone())
        .build()?;
    let router = Router::new()
        .route("/", get(home))
        .route("/health", get(health))
        .route("/whoami", get(whoami))
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{id}", delete(delete_order))
        .route("/users/{owner}/orders/{id}", get(get_order))
        .nest("/admin/keys", keys.admin_api()?)
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .with_state(keys)
        .layer(security);
    // The login routes sit outside the gateway: they must answer whatever the rules say.
    #[cfg(feature = "oidc")]
    let router = match oidc {
        Some(oidc) => router.layer(oidc.layer()),
        None => router,
    };
    #[cfg(not(feature = "oidc"))]
    let _ = oidc;
    // Outermost: the shield, then the per-IP limit, in front of the login routes as well.
    Ok(router
        .layer(per_ip_limit(observer.clone(), shared)?)
        .layer(shield(observer, shared)?))
}

async fn home() -> axum::response::Html<&'static str> {
    axum::response::Html(
        "<!doctype html><title>portcullis</title><h1>portcullis gateway example</h1>\
         <p><a href=\"/whoami\">Who am I?</a> · <a href=\"/login\">Log in</a> · \
         <a href=\"/logout\">Log out</a></p>",
    )
}

/// Issues a fresh key for each demo identity. Keys are random at every start.
async fn seed(store: &Keys) -> Result<Vec<DemoKey>, StoreError> {
    let admin = store
        .issue(
            NewKey::for_owner("ada")
                .roles(["admin"])
                .scopes(["orders:read", "orders:write"])
                .metadata("team", "platform"),
        )
        .await?;
    let viewer = store
        .issue(
            NewKey::for_owner("vic")
                .roles(["viewer"])
                .scopes(["orders:read"])
                .metadata("team", "support"),
        )
        .await?;
    Ok(vec![
        DemoKey {
            name: "admin",
            issued: admin,
        },
        DemoKey {
            name: "viewer",
            issued: viewer,
        },
    ])
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn whoami(principal: Principal) -> Json<Principal> {
    Json(principal)
}

/// Order `id` of `owner`: every owner has orders 1 to 3 in this demo.
fn order(owner: &str, id: u64) -> Value {
    json!({"id": id, "owner": owner, "item": format!("widget-{id}"), "quantity": id % 5 + 1})
}

/// The caller's own orders.
async fn list_orders(principal: Principal) -> Json<Value> {
    let owner = principal.subject();
    Json(json!([order(owner, 1), order(owner, 2), order(owner, 3)]))
}

/// One order; the rules have checked that the caller owns it or is an admin.
async fn get_order(Path((owner, id)): Path<(String, u64)>) -> Json<Value> {
    Json(order(&owner, id))
}

async fn create_order(Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(json!({"created": body})))
}

async fn delete_order(Path(_id): Path<u64>) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Prints the address and `curl` commands to try, with the keys issued at this start.
fn print_banner(addr: SocketAddr, keys: &[DemoKey], bearer_issuer: Option<&str>) {
    let base = format!("http://{addr}");
    println!("portcullis gateway example listening on {base}");
    println!();
    println!("Traffic protection (demo values):");
    println!(
        "  per-IP limit before authentication: {} requests per {} s",
        PER_IP.requests(),
        PER_IP.period().as_secs()
    );
    println!(
        "  per-key limit: viewer {} per minute, admin {} per minute",
        VIEWER.requests(),
        ADMIN.requests()
    );
    println!(
        "  brute force: {FAILURES} bad keys within {} s block the address for {} s, doubling up to {} s",
        FAILURE_WINDOW.as_secs(),
        FIRST_BLOCK.as_secs(),
        MAX_BLOCK.as_secs()
    );
    println!();
    println!("# public, no key needed:");
    println!("curl -s {base}/health");
    for key in keys {
        let secret = key.issued.key.expose_secret();
        println!();
        println!("# as {} ({}):", key.name, key.issued.record.owner());
        println!("curl -s -H 'x-api-key: {secret}' {base}/whoami");
        println!("curl -s -H 'x-api-key: {secret}' {base}/orders");
        if key.issued.record.roles().contains("admin") {
            println!(
                "curl -s -H 'x-api-key: {secret}' -H 'content-type: application/json' \
                 -d '{{\"item\":\"widget\",\"quantity\":2}}' {base}/orders"
            );
            println!("curl -s -H 'x-api-key: {secret}' {base}/admin/keys");
        }
    }
    if let Some(admin) = keys.iter().find(|key| key.name == "admin") {
        let secret = admin.issued.key.expose_secret();
        println!();
        println!("# 400: a new order that breaks the schema (problem details list why):");
        println!(
            "curl -si -H 'x-api-key: {secret}' -H 'content-type: application/json' \
             -d '{{\"item\":\"\",\"quantity\":0,\"colour\":\"red\"}}' {base}/orders"
        );
    }
    if let Some(viewer) = keys.iter().find(|key| key.name == "viewer") {
        let secret = viewer.issued.key.expose_secret();
        let owner = viewer.issued.record.owner();
        println!();
        println!("# 403: a viewer may not delete orders:");
        println!("curl -si -X DELETE -H 'x-api-key: {secret}' {base}/orders/1");
        if let Some(admin) = keys.iter().find(|key| key.name == "admin") {
            let other = admin.issued.record.owner();
            println!();
            println!("# orders belong to their owners: the viewer reads their own order...");
            println!("curl -s -H 'x-api-key: {secret}' {base}/users/{owner}/orders/1");
            println!("# ...but not {other}'s (403 object_denied):");
            println!("curl -si -H 'x-api-key: {secret}' {base}/users/{other}/orders/1");
            println!("# ...while an admin reads anyone's:");
            let admin_secret = admin.issued.key.expose_secret();
            println!("curl -s -H 'x-api-key: {admin_secret}' {base}/users/{owner}/orders/1");
        }
    }
    if let Some(issuer) = bearer_issuer {
        println!();
        println!("# with an access token from {issuer}:");
        println!("curl -s -H \"authorization: Bearer $TOKEN\" {base}/whoami");
    }
    println!();
    println!("# 401: no key:");
    println!("curl -si {base}/whoami");
    let show = "-s -o /dev/null -w '%{http_code} '";
    println!();
    println!(
        "# The three commands below share this address's per-IP bucket and block: run them in \
         this order, waiting as each says."
    );
    println!(
        "# the per-IP limit at work: 25 quick requests, the last ones 429 (then wait {} s \
         before the next command):",
        PER_IP.period().as_secs()
    );
    println!("for i in $(seq 25); do curl {show} {base}/health; done; echo");
    if let Some(viewer) = keys.iter().find(|key| key.name == "viewer") {
        let secret = viewer.issued.key.expose_secret();
        println!();
        println!(
            "# the viewer's per-key limit: {} allowed, then 429 with Retry-After and RateLimit fields:",
            VIEWER.requests()
        );
        println!(
            "for i in $(seq {}); do curl {show} -H 'x-api-key: {secret}' {base}/orders; done; \
             curl -si -H 'x-api-key: {secret}' {base}/orders | grep -i -E '^(HTTP|retry-after|ratelimit)'",
            VIEWER.requests()
        );
    }
    println!();
    println!(
        "# brute force, last: bad keys from one address end in 429 with Retry-After (blocks \
         this address for {} s, every command above included):",
        FIRST_BLOCK.as_secs()
    );
    println!(
        "for i in $(seq {}); do curl {show} -H 'x-api-key: pk_not_a_real_key' {base}/whoami; done; \
         curl -si {base}/health | grep -i -E '^(HTTP|retry-after)'",
        FAILURES
    );
    if let Some(admin) = keys.iter().find(|key| key.name == "admin") {
        let secret = admin.issued.key.expose_secret();
        println!();
        println!("# Prometheus metrics (admin key only):");
        println!("curl -s -H 'x-api-key: {secret}' {base}/metrics | grep ^portcullis_");
    }
    if let (Some(admin), Some(viewer)) = (
        keys.iter().find(|key| key.name == "admin"),
        keys.iter().find(|key| key.name == "viewer"),
    ) {
        let secret = admin.issued.key.expose_secret();
        let viewer_id = viewer.issued.record.id();
        println!();
        println!("# key management (admin key): issue a key, shown once (201):");
        println!(
            "curl -s -H 'x-api-key: {secret}' -H 'content-type: application/json' \
             -d '{{\"owner\":\"val\",\"roles\":[\"viewer\"],\"scopes\":[\"orders:read\"],\"expires_in\":86400}}' \
             {base}/admin/keys"
        );
        println!(
            "# last: revoke the viewer's key (204); the viewer's commands above then get 401:"
        );
        println!("curl -si -X DELETE -H 'x-api-key: {secret}' {base}/admin/keys/{viewer_id}");
    }
    println!();
    println!("Press Ctrl-C to stop.");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,portcullis=debug"));
    // Logs go to stderr, so stdout carries only the banner below.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let shared = Shared::from_env()?;
    let store = shared.keys();
    let keys = seed(&store).await?;
    let bearer = bearer_from_env()?;
    let bearer_issuer = std::env::var("PORTCULLIS_JWT_ISSUER")
        .or_else(|_| std::env::var("PORTCULLIS_INTROSPECTION_URL"))
        .ok()
        .filter(|_| bearer.is_some());
    // The application picks the metrics exporter; portcullis only records.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let addr = std::env::var("PORTCULLIS_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let oidc = oidc_from_env(listener.local_addr()?, &shared)?;
    let login = oidc.is_some();
    let (policy_path, policy) = policy()?;
    let tests = policy.tests;
    let app = app(store, &shared, bearer, oidc, metrics, policy)?;
    println!("policy: {policy_path} ({tests} tests passed)");
    print_banner(listener.local_addr()?, &keys, bearer_issuer.as_deref());
    if login {
        println!(
            "Browser login: open http://{}/whoami",
            listener.local_addr()?
        );
    }
    if shared.is_redis() {
        println!(
            "Shared state on Redis (PORTCULLIS_REDIS_URL): keys, limits and blocks are seen \
             by every instance on that Redis."
        );
    }

    // The client's address, for the shield and the per-IP limit.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        tokio::signal::ctrl_c().await.ok();
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}
