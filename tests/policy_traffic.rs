//! The policy file's `traffic` section, end to end: the gateway `PolicyFile::gateway_with`
//! builds from it (shield, rate limits before and after authentication, brute-force
//! blocking) in front of an axum `Router` with API keys; its errors; the same file in TOML;
//! a reload that keeps the counters; the LIMITS column of `portcullis check`.
//!
//! Time is tokio's paused clock: limits and blocks are driven by `tokio::time::advance`,
//! never by sleeping or by measuring.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use portcullis::api_key::{ApiKeyAuthenticator, IssuedKey, KeyAdmin, MemoryKeyStore, NewKey};
use portcullis::config::{Format, PolicyFile, SharedState};
use portcullis::{ClientIp, GatewaySecurityLayer, ReloadableLayer};
use tower::ServiceExt;

mod support;
use support::binary::run;

const POLICY: &str = r#"
roles: {admin: ["*"], viewer: ["orders:read"]}
routes:
  - {route: GET /health, require: public}
  - {route: GET /orders, require: authenticated}
  - {route: "POST /admin/{*rest}", require: role(admin)}
traffic:
  client_ip:
    trusted_proxies: [10.0.0.0/8]
    forwarded_header: x-forwarded-for
  ip_rules:
    deny: [192.0.2.0/24]
    routes:
      - {route: "POST /admin/{*rest}", allow: [10.0.0.0/8, 203.0.113.0/24]}
  brute_force: {failures: 3, window: 1m, block_for: 1m, max_block: 1h}
  rate_limits:
    before_auth:
      - {name: per-ip, key: client_ip, quota: 5/min, routes: [GET /health]}
    after_auth:
      - name: per-key
        key: api_key
        quota: 2/min
        tiers:
          - {role: admin, quota: 100/min}
          - {claim: {plan: gold}, quota: 5/min}
        routes: [GET /orders]
"#;

const POLICY_TOML: &str = r#"
routes = [
  { route = "GET /health", require = "public" },
  { route = "GET /orders", require = "authenticated" },
  { route = "POST /admin/{*rest}", require = "role(admin)" },
]

[roles]
admin = ["*"]
viewer = ["orders:read"]

[traffic.client_ip]
trusted_proxies = ["10.0.0.0/8"]
forwarded_header = "x-forwarded-for"

[traffic.ip_rules]
deny = ["192.0.2.0/24"]
routes = [{ route = "POST /admin/{*rest}", allow = ["10.0.0.0/8", "203.0.113.0/24"] }]

[traffic.brute_force]
failures = 3
window = "1m"
block_for = "1m"
max_block = "1h"

[[traffic.rate_limits.before_auth]]
name = "per-ip"
key = "client_ip"
quota = "5/min"
routes = ["GET /health"]

[[traffic.rate_limits.after_auth]]
name = "per-key"
key = "api_key"
quota = "2/min"
tiers = [{ role = "admin", quota = "100/min" }, { claim = { plan = "gold" }, quota = "5/min" }]
routes = ["GET /orders"]
"#;

/// The callers: keys in a memory store the gateway authenticates against.
struct Keys {
    store: Arc<MemoryKeyStore>,
    admin: IssuedKey,
    viewer: IssuedKey,
    gold: IssuedKey,
    /// Well-formed, never issued by `store`: every use is a 401 `invalid_credentials`.
    stranger: IssuedKey,
}

impl Keys {
    async fn new() -> Self {
        let store = Arc::new(MemoryKeyStore::new());
        let admin = store
            .issue(NewKey::for_owner("ada").roles(["admin"]))
            .await
            .expect("issue");
        let viewer = store
            .issue(NewKey::for_owner("vic").roles(["viewer"]))
            .await
            .expect("issue");
        let gold = store
            .issue(
                NewKey::for_owner("gil")
                    .roles(["viewer"])
                    .metadata("plan", "gold"),
            )
            .await
            .expect("issue");
        let stranger = MemoryKeyStore::new()
            .issue(NewKey::for_owner("nobody"))
            .await
            .expect("issue elsewhere");
        Self {
            store,
            admin,
            viewer,
            gold,
            stranger,
        }
    }

    /// The gateway the policy `text` describes, its counters in `state`, with these keys.
    fn gateway(
        &self,
        text: &str,
        format: Format,
        state: &SharedState,
    ) -> Result<GatewaySecurityLayer, String> {
        let policy = PolicyFile::parse(text, format).map_err(|errors| errors.to_string())?;
        let (builder, _) = policy
            .gateway_with(state)
            .map_err(|errors| errors.to_string())?;
        builder
            .authenticate(ApiKeyAuthenticator::new(self.store.clone()))
            .build()
            .map_err(|error| error.to_string())
    }
}

/// The routes behind the gateway; `GET /orders` answers with the client IP the shield found.
fn routes() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/orders",
            get(|ip: Option<axum::Extension<ClientIp>>| async move {
                ip.map(|ip| ip.0.to_string()).unwrap_or_default()
            }),
        )
        .route("/admin/{*rest}", post(|| async { "done" }))
}

/// A request from `peer`, as axum's `into_make_service_with_connect_info` delivers it.
fn request(method: &str, path: &str, peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::empty()).expect("request");
    let peer: SocketAddr = peer.parse().expect("peer address");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fn orders_as(key: &IssuedKey, peer: &str) -> Request<Body> {
    request(
        "GET",
        "/orders",
        peer,
        &[("x-api-key", key.key.expose_secret())],
    )
}

/// Status, headers, and the problem's `code` (or the body, for a success).
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let shown = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|problem| problem["code"].as_str().map(str::to_owned))
        .unwrap_or(text);
    (parts.status, parts.headers, shown)
}

const PEER: &str = "198.51.100.7:40000";

async fn served(keys: &Keys, state: &SharedState) -> Router {
    let gateway = keys
        .gateway(POLICY, Format::Yaml, state)
        .unwrap_or_else(|errors| panic!("{errors}"));
    routes().layer(gateway)
}

#[tokio::test(start_paused = true)]
async fn a_per_ip_limit_before_auth_refuses_the_request_past_its_quota() {
    let keys = Keys::new().await;
    let app = served(&keys, &SharedState::new()).await;
    let health = |peer: &str| request("GET", "/health", peer, &[]);
    for left in (0..5).rev() {
        let (status, headers, _) = send(&app, health(PEER)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["ratelimit-policy"], "\"per-ip\";q=5;w=60");
        assert!(
            headers["ratelimit"]
                .to_str()
                .expect("text")
                .starts_with(&format!("\"per-ip\";r={left};")),
            "{headers:?}"
        );
    }
    let (status, headers, code) = send(&app, health(PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code, "rate_limited");
    // 5 a minute: one more every 12 s.
    assert_eq!(headers["retry-after"], "12");
    assert_eq!(headers["ratelimit-policy"], "\"per-ip\";q=5;w=60");
    assert_eq!(headers["ratelimit"], "\"per-ip\";r=0;t=60");
    // Another address has its own bucket; the limit covers only its route.
    assert_eq!(send(&app, health("198.51.100.8:1")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, orders_as(&keys.admin, PEER)).await.0,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(12)).await;
    assert_eq!(send(&app, health(PEER)).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, health(PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn per_key_limits_after_auth_follow_the_callers_tier() {
    let keys = Keys::new().await;
    let app = served(&keys, &SharedState::new()).await;
    for _ in 0..2 {
        assert_eq!(
            send(&app, orders_as(&keys.viewer, PEER)).await.0,
            StatusCode::OK
        );
    }
    let (status, headers, code) = send(&app, orders_as(&keys.viewer, PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code, "rate_limited");
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(headers["ratelimit-policy"], "\"per-key\";q=2;w=60");
    // The claim tier (the key's metadata): 5 a minute.
    for _ in 0..5 {
        assert_eq!(
            send(&app, orders_as(&keys.gold, PEER)).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, orders_as(&keys.gold, PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The role tier: 100 a minute.
    for _ in 0..50 {
        assert_eq!(
            send(&app, orders_as(&keys.admin, PEER)).await.0,
            StatusCode::OK
        );
    }
    let (_, headers, _) = send(&app, orders_as(&keys.admin, PEER)).await;
    assert_eq!(headers["ratelimit-policy"], "\"per-key\";q=100;w=60");
}

#[tokio::test(start_paused = true)]
async fn ip_rules_deny_everywhere_and_allow_per_route() {
    let keys = Keys::new().await;
    let app = served(&keys, &SharedState::new()).await;
    // The deny list, even on a public route.
    let (status, _, code) = send(&app, request("GET", "/health", "192.0.2.7:1", &[])).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "ip_denied")
    );
    // The route's allow list: an admin key from elsewhere is refused before it is looked at.
    let admin = [("x-api-key", keys.admin.key.expose_secret())];
    let (status, _, code) = send(&app, request("POST", "/admin/users", PEER, &admin)).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "ip_denied")
    );
    let (status, _, body) = send(
        &app,
        request("POST", "/admin/users", "203.0.113.5:1", &admin),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    // Other routes have no allow list.
    assert_eq!(
        send(&app, orders_as(&keys.admin, PEER)).await.0,
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let keys = Keys::new().await;
    let app = served(&keys, &SharedState::new()).await;
    let admin = keys.admin.key.expose_secret();
    let proxy = "10.1.2.3:5000";
    // Through the trusted proxy: the client is the forwarded address...
    let (status, _, body) = send(
        &app,
        request(
            "GET",
            "/orders",
            proxy,
            &[("x-api-key", admin), ("x-forwarded-for", "203.0.113.5")],
        ),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "203.0.113.5"));
    // ...denied when it is in the deny list...
    let (status, _, code) = send(
        &app,
        request(
            "GET",
            "/health",
            proxy,
            &[("x-forwarded-for", "192.0.2.9, 10.9.9.9")],
        ),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "ip_denied")
    );
    // ...and allowed on the admin route when its range is.
    let (status, _, _) = send(
        &app,
        request(
            "POST",
            "/admin/users",
            proxy,
            &[("x-api-key", admin), ("x-forwarded-for", "203.0.113.5")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A client that is not a trusted proxy cannot claim an address.
    let (status, _, body) = send(
        &app,
        request(
            "GET",
            "/orders",
            PEER,
            &[("x-api-key", admin), ("x-forwarded-for", "203.0.113.5")],
        ),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "198.51.100.7"));
    let (status, _, code) = send(
        &app,
        request(
            "POST",
            "/admin/users",
            PEER,
            &[("x-api-key", admin), ("x-forwarded-for", "203.0.113.5")],
        ),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "ip_denied")
    );
}

/// Sends `failures` bad keys from `peer`, each a 401.
async fn fail(app: &Router, keys: &Keys, peer: &str, failures: usize) {
    for _ in 0..failures {
        let (status, _, code) = send(app, orders_as(&keys.stranger, peer)).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn bad_credentials_block_the_source_until_the_block_ends() {
    let keys = Keys::new().await;
    let app = served(&keys, &SharedState::new()).await;
    fail(&app, &keys, PEER, 3).await;
    // Blocked: even a good key from that address, for the first block's minute.
    let (status, headers, code) = send(&app, orders_as(&keys.admin, PEER)).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "blocked")
    );
    assert_eq!(headers["retry-after"], "60");
    assert_eq!(
        send(&app, orders_as(&keys.admin, "198.51.100.8:1")).await.0,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(
        send(&app, orders_as(&keys.admin, PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        send(&app, orders_as(&keys.admin, PEER)).await.0,
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn the_same_file_in_toml_reads_and_serves_the_same() {
    let yaml = PolicyFile::parse(POLICY, Format::Yaml).expect("yaml");
    let toml = PolicyFile::parse(POLICY_TOML, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    assert!(yaml.traffic.is_some());
    assert_eq!(format!("{:?}", yaml.traffic), format!("{:?}", toml.traffic));
    let keys = Keys::new().await;
    let gateway = keys
        .gateway(POLICY_TOML, Format::Toml, &SharedState::new())
        .unwrap_or_else(|errors| panic!("{errors}"));
    let app = routes().layer(gateway);
    fail(&app, &keys, PEER, 3).await;
    assert_eq!(
        send(&app, orders_as(&keys.admin, PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn every_traffic_problem_is_reported_at_once_with_its_place() {
    let broken = r#"
roles: {admin: []}
routes:
  - {route: GET /a, require: role(admn)}
traffic:
  client_ip:
    trusted_proxies: [10.0.0.1/8]
    forwarded_header: x-forwarded-fro
    ipv6_prefix: 129
  ip_rules:
    allow: [not-an-address]
    routes: [{route: "post /admin", deny: [192.0.2.0/24]}]
  brute_force: {failures: 0, window: 10x, block_for: 1h, max_block: 1m}
  rate_limits:
    before_auth:
      - {name: per-ip, key: client_ip, quota: 10/s}
      - {name: per-user, key: subject, quota: 10/s, tiers: [{role: admin, quota: 1/s}]}
    after_auth:
      - {name: per-ip, key: apikey, quota: 10}
      - name: "bad name"
        key: api_key
        quota: 0/s
        tiers:
          - {role: admin, scope: x, quota: 1/s}
          - {claim: {plan: gold}, quota: 7/s, burst: 0}
          - {scope: write, quota: 3/1500ms}
        routes: [GET /a, GET /a]
      - {name: orders, key: route, quota: 10/s}
"#;
    let errors = PolicyFile::parse(broken, Format::Yaml)
        .expect("parses")
        .check()
        .expect_err("broken");
    let shown: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
    let places: Vec<&str> = errors.errors().iter().map(|e| e.place.as_str()).collect();
    assert_eq!(
        places,
        [
            "routes[0].require",
            "traffic.client_ip.trusted_proxies[0]",
            "traffic.client_ip.forwarded_header",
            "traffic.client_ip.ipv6_prefix",
            "traffic.ip_rules.allow[0]",
            "traffic.ip_rules.routes[0].route",
            "traffic.brute_force.window",
            "traffic.brute_force.failures",
            "traffic.rate_limits.before_auth[1].key",
            "traffic.rate_limits.before_auth[1].tiers",
            "traffic.rate_limits.after_auth[0].name",
            "traffic.rate_limits.after_auth[0].key",
            "traffic.rate_limits.after_auth[0].quota",
            "traffic.rate_limits.after_auth[1].name",
            "traffic.rate_limits.after_auth[1].quota",
            "traffic.rate_limits.after_auth[1].tiers[0]",
            "traffic.rate_limits.after_auth[1].tiers[1].quota",
            "traffic.rate_limits.after_auth[1].tiers[2].quota",
            "traffic.rate_limits.after_auth[1].routes[1]",
            "traffic.rate_limits.after_auth[2].routes",
        ],
        "{errors}"
    );
    let find = |place: &str| {
        shown
            .iter()
            .find(|line| line.starts_with(&format!("{place}: ")))
            .unwrap_or_else(|| panic!("{place} in {errors}"))
    };
    assert_eq!(
        find("traffic.rate_limits.after_auth[0].key"),
        "traffic.rate_limits.after_auth[0].key: unknown key `apikey` (did you mean `api_key`?): \
         one of api_key, subject, client_id, tenant, client_ip, route, shared"
    );
    assert!(
        find("traffic.rate_limits.after_auth[0].name").contains("before_auth[0]"),
        "a name used twice names the first"
    );
    assert_eq!(
        find("traffic.brute_force.window"),
        "traffic.brute_force.window: unknown unit `x`: use ms, s, m (or min), h or d"
    );
    assert!(find("traffic.client_ip.forwarded_header").contains("did you mean `x-forwarded-for`"));
    assert!(find("traffic.client_ip.trusted_proxies[0]").contains("10.0.0.1/8"));
    // 3 requests per 7 s: a refill time the RateLimit fields cannot say in whole seconds.
    assert!(
        find("traffic.rate_limits.after_auth[1].tiers[2].quota")
            .contains("whole number of seconds"),
        "{errors}"
    );
    // The settings that read, but contradict each other, once each reads.
    let fixed = broken
        .replace("failures: 0, window: 10x", "failures: 3, window: 1m")
        .replace("role(admn)", "role(admin)");
    let errors = PolicyFile::parse(&fixed, Format::Yaml)
        .expect("parses")
        .check()
        .expect_err("still broken");
    let places: Vec<&str> = errors.errors().iter().map(|e| e.place.as_str()).collect();
    assert!(
        places.contains(&"traffic.brute_force.max_block")
            && !places.contains(&"traffic.brute_force.window"),
        "{errors}"
    );
}

/// What the blocked address and the viewer who spent their bucket get now: status and code.
async fn check(
    app: &Router,
    keys: &Keys,
    blocked_peer: &str,
) -> ((StatusCode, String), (StatusCode, String)) {
    let blocked = send(app, orders_as(&keys.admin, blocked_peer)).await;
    let spent = send(app, orders_as(&keys.viewer, PEER)).await;
    ((blocked.0, blocked.2), (spent.0, spent.2))
}

#[tokio::test(start_paused = true)]
async fn a_reload_with_the_shared_state_keeps_blocks_and_spent_buckets() {
    let keys = Keys::new().await;
    let state = SharedState::new();
    let build = || keys.gateway(POLICY, Format::Yaml, &state);
    let reloadable = ReloadableLayer::new(build().expect("builds"));
    let handle = reloadable.handle();
    let app = routes().layer(reloadable);
    let blocked_peer = "198.51.100.66:1";
    fail(&app, &keys, blocked_peer, 3).await;
    for _ in 0..2 {
        assert_eq!(
            send(&app, orders_as(&keys.viewer, PEER)).await.0,
            StatusCode::OK
        );
    }
    let refused = (
        (StatusCode::TOO_MANY_REQUESTS, "blocked".to_owned()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".to_owned()),
    );
    assert_eq!(check(&app, &keys, blocked_peer).await, refused);

    // The same file again, with the same state: still blocked, still spent.
    handle.reload(build).expect("reloads");
    assert_eq!(check(&app, &keys, blocked_peer).await, refused);

    // A changed file (another quota for admins), the same state: the unchanged limits and
    // the blocks carry over.
    let changed = POLICY.replace("quota: 100/min", "quota: 50/min");
    handle
        .reload(|| keys.gateway(&changed, Format::Yaml, &state))
        .expect("reloads");
    assert_eq!(check(&app, &keys, blocked_peer).await, refused);

    // A new quota for the viewer's own limit: a bucket of its own, full (the in-process
    // store keys buckets by limit name and quota), while the block carries over.
    let loosened = changed.replace("quota: 2/min", "quota: 3/min");
    assert_ne!(loosened, changed);
    handle
        .reload(|| keys.gateway(&loosened, Format::Yaml, &state))
        .expect("reloads");
    let (blocked, fresh) = check(&app, &keys, blocked_peer).await;
    assert_eq!(blocked, refused.0);
    assert_eq!(fresh.0, StatusCode::OK, "the new quota starts full");

    // What the state is for: a reload with new counters forgets them.
    handle
        .reload(|| keys.gateway(POLICY, Format::Yaml, &SharedState::new()))
        .expect("reloads");
    let (blocked, spent) = check(&app, &keys, blocked_peer).await;
    assert_eq!(blocked.0, StatusCode::OK);
    assert_eq!(spent.0, StatusCode::OK);
}

#[test]
fn check_lists_the_limits_of_each_route() {
    let dir = std::env::temp_dir().join(format!("portcullis-traffic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("policy.yaml");
    let text = POLICY.replace(
        "        routes: [GET /orders]\n",
        "        routes: [GET /orders]\n      - {name: global, key: shared, quota: 1000/s}\n      - {name: admin-writes, key: shared, quota: 10/s, routes: [POST /admin/users]}\n",
    );
    assert_ne!(text, POLICY);
    std::fs::write(&file, text).expect("write");
    let (code, out, err) = run(&["check", file.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{err}");
    let table = [
        "METHOD  PATH            VALIDATED  LIMITS                WHO MAY CALL",
        "GET     /health         -          per-ip, global        public",
        "GET     /orders         -          per-key, global       authenticated",
        "POST    /admin/{*rest}  -          global, admin-writes  role(\"admin\")",
        "*       (unmatched)     -          global                deny",
    ];
    assert!(out.starts_with(&(table.join("\n") + "\n")), "{out}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}
