//! End to end: traffic protection in the gateway (shield, rate limits before and after
//! authentication, brute-force blocking) in front of an axum `Router` with API keys.
//!
//! Time is tokio's paused clock: limits and blocks are driven by `tokio::time::advance`,
//! never by sleeping or by measuring.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::api_key::{
    ApiKeyAuthenticator, IssuedKey, KeyAdmin, KeyFormat, KeyId, KeyStore, LookupFuture,
    MemoryKeyStore, NewKey,
};
use portcullis::authz::{RouteRules, authenticated, public, role};
use portcullis::observe::{BlockAction, BlockEvent, Decision, Observe, Outcome, Stage};
use portcullis::rate_limit::{Limit, LimitKey, Quota, RateLimitLayer, Tier};
use portcullis::shield::{BruteForce, ForwardedHeader, ShieldLayer};
use portcullis::{ClientIp, ConfigError, GatewaySecurityBuilder, GatewaySecurityLayer, Reason};
use tower::ServiceExt;

/// A key store that counts its lookups.
#[derive(Default)]
struct CountingStore {
    store: MemoryKeyStore,
    lookups: AtomicUsize,
}

impl KeyStore for CountingStore {
    fn format(&self) -> &KeyFormat {
        self.store.format()
    }
    fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.store.find(id)
    }
}

/// One decision: stage, outcome, reason and limit.
type Observed = (Stage, Outcome, Option<Reason>, Option<String>);
/// One block event: action, source, failures, offences and duration.
type Block = (BlockAction, String, u32, u32, Duration);

/// What the observer saw: decisions and block events.
#[derive(Default)]
struct Seen {
    decisions: Mutex<Vec<Observed>>,
    /// The stage and route of each decision.
    routes: Mutex<Vec<(Stage, Option<String>)>>,
    blocks: Mutex<Vec<Block>>,
}

impl Observe for Seen {
    fn decision(&self, d: &Decision<'_>) {
        self.decisions.lock().expect("lock").push((
            d.stage,
            d.outcome,
            d.reason,
            d.limit.map(str::to_owned),
        ));
        self.routes
            .lock()
            .expect("lock")
            .push((d.stage, d.route.map(str::to_owned)));
    }
    fn block(&self, e: &BlockEvent<'_>) {
        self.blocks.lock().expect("lock").push((
            e.action,
            e.source.to_owned(),
            e.failures,
            e.offences,
            e.duration,
        ));
    }
}

impl Seen {
    fn count(&self, stage: Stage, outcome: Outcome) -> usize {
        self.decisions
            .lock()
            .expect("lock")
            .iter()
            .filter(|(s, o, ..)| *s == stage && *o == outcome)
            .count()
    }
}

struct Fixture {
    store: Arc<CountingStore>,
    admin: IssuedKey,
    viewer: IssuedKey,
    /// Another viewer: the same tier and quota as `viewer`.
    viewer2: IssuedKey,
    gold: IssuedKey,
    /// A well-formed key this store never issued: every use is a store lookup and a 401.
    stranger: IssuedKey,
    seen: Arc<Seen>,
}

impl Fixture {
    async fn new() -> Self {
        let store = Arc::new(CountingStore::default());
        let issue = |spec| {
            let store = store.clone();
            async move { store.store.issue(spec).await.expect("issue") }
        };
        let admin = issue(NewKey::for_owner("ada").roles(["admin"])).await;
        let viewer = issue(NewKey::for_owner("vic").roles(["viewer"])).await;
        let viewer2 = issue(NewKey::for_owner("val").roles(["viewer"])).await;
        let gold = issue(
            NewKey::for_owner("gil")
                .roles(["viewer"])
                .metadata("plan", "gold"),
        )
        .await;
        let stranger = MemoryKeyStore::new()
            .issue(NewKey::for_owner("nobody"))
            .await
            .expect("issue elsewhere");
        Self {
            store,
            admin,
            viewer,
            viewer2,
            gold,
            stranger,
            seen: Arc::new(Seen::default()),
        }
    }

    fn gateway(&self) -> GatewaySecurityBuilder {
        GatewaySecurityLayer::builder()
            .authenticate(ApiKeyAuthenticator::new(self.store.clone()))
            .rules(
                RouteRules::builder()
                    .role("admin", ["*"])
                    .role("viewer", ["orders:read"])
                    .route("GET /health", public())
                    .route("GET /orders", authenticated())
                    .route("POST /orders", role("admin"))
                    .build()
                    .expect("rules"),
            )
            .observer(self.seen.clone())
    }

    fn lookups(&self) -> usize {
        self.store.lookups.load(Ordering::SeqCst)
    }
}

fn app(gateway: GatewaySecurityLayer) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/orders",
            get(|ip: Option<axum::Extension<ClientIp>>| async move {
                ip.map(|ip| ip.0.to_string()).unwrap_or_default()
            })
            .post(|| async { "created" }),
        )
        .layer(gateway)
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

fn get_as(key: &IssuedKey, peer: &str) -> Request<Body> {
    request(
        "GET",
        "/orders",
        peer,
        &[("x-api-key", key.key.expose_secret())],
    )
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response: Response<Body> = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn code(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect("problem+json");
    value["code"].as_str().unwrap_or_default().to_owned()
}

const PEER: &str = "198.51.100.7:40000";

// ---------------------------------------------------------------------------------------
// Rate limits

fn per_key(quota: Quota) -> RateLimitLayer {
    RateLimitLayer::builder()
        .limit(
            Limit::new("per-key", LimitKey::ApiKey, quota)
                .tier(Tier::role("admin"), Quota::per_minute(100))
                .tier(Tier::claim("plan", "gold"), Quota::per_minute(5)),
        )
        .build()
        .expect("limits")
}

#[tokio::test(start_paused = true)]
async fn per_key_limits_are_independent_and_tiered() {
    let fixture = Fixture::new().await;
    let app = app(fixture
        .gateway()
        .rate_limit(per_key(Quota::per_minute(2)))
        .build()
        .expect("gateway"));
    for _ in 0..2 {
        assert_eq!(
            send(&app, get_as(&fixture.viewer, PEER)).await.0,
            StatusCode::OK
        );
    }
    let (status, headers, body) = send(&app, get_as(&fixture.viewer, PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&body), "rate_limited");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["retry-after"], "30");
    // Another key of the same tier and quota, from the same address, has its own bucket.
    for _ in 0..2 {
        assert_eq!(
            send(&app, get_as(&fixture.viewer2, PEER)).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, get_as(&fixture.viewer2, PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Tiers: the gold plan (key metadata) allows 5, the admin role 100.
    for _ in 0..5 {
        assert_eq!(
            send(&app, get_as(&fixture.gold, PEER)).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, get_as(&fixture.gold, PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..20 {
        assert_eq!(
            send(&app, get_as(&fixture.admin, PEER)).await.0,
            StatusCode::OK
        );
    }
    // Time refills the bucket: one request every 30 s.
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let refused = fixture
        .seen
        .decisions
        .lock()
        .expect("lock")
        .iter()
        .any(|d| {
            d.0 == Stage::RateLimit
                && d.1 == Outcome::Refused
                && d.2 == Some(Reason::RateLimited)
                && d.3.as_deref() == Some("per-key")
        });
    assert!(refused, "the refusal was reported with its limit");
}

#[tokio::test(start_paused = true)]
async fn ratelimit_fields_on_allowed_and_refused_responses() {
    let fixture = Fixture::new().await;
    let app = app(fixture
        .gateway()
        .rate_limit(per_key(Quota::per_minute(2)))
        .build()
        .expect("gateway"));
    let (_, first, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
    assert_eq!(first["ratelimit-policy"], "\"per-key\";q=2;w=60");
    assert_eq!(first["ratelimit"], "\"per-key\";r=1;t=30");
    tokio::time::advance(Duration::from_secs(10)).await;
    let (_, second, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
    assert_eq!(second["ratelimit"], "\"per-key\";r=0;t=50");
    let (status, refused, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused["retry-after"], "20");
    assert_eq!(refused["ratelimit-policy"], "\"per-key\";q=2;w=60");
    assert_eq!(refused["ratelimit"], "\"per-key\";r=0;t=50");
    // The fields can be kept off allowed responses; refusals still carry them.
    let quiet = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-key",
            LimitKey::ApiKey,
            Quota::per_minute(1),
        ))
        .response_headers(false)
        .build()
        .expect("limits");
    let app = self::app(
        fixture
            .gateway()
            .rate_limit(quiet)
            .build()
            .expect("gateway"),
    );
    let (_, allowed, _) = send(&app, get_as(&fixture.admin, PEER)).await;
    assert!(!allowed.contains_key("ratelimit"));
    let (_, refused, _) = send(&app, get_as(&fixture.admin, PEER)).await;
    assert_eq!(refused["ratelimit"], "\"per-key\";r=0;t=60");
}

#[tokio::test(start_paused = true)]
async fn several_limits_all_apply_and_anonymous_callers_skip_identity_limits() {
    let fixture = Fixture::new().await;
    let limits = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-key",
            LimitKey::ApiKey,
            Quota::per_minute(10),
        ))
        .limit(
            Limit::new("orders-total", LimitKey::Shared, Quota::per_minute(3))
                .routes(["GET /orders"]),
        )
        .build()
        .expect("limits");
    let app = app(fixture
        .gateway()
        .rate_limit(limits)
        .build()
        .expect("gateway"));
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_as(&fixture.gold, PEER)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_as(&fixture.admin, PEER)).await.0,
        StatusCode::OK
    );
    // The route's shared bucket is empty, whoever asks.
    let (status, headers, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["ratelimit-policy"], "\"orders-total\";q=3;w=60");
    // Other routes are not covered by it; the public health check has no key to limit.
    for _ in 0..20 {
        let health = request("GET", "/health", PEER, &[]);
        assert_eq!(send(&app, health).await.0, StatusCode::OK);
    }
}

/// A key over its own limit is refused before the route's shared bucket is asked, whatever
/// order the limits were added in: it cannot drain the bucket everyone shares.
#[tokio::test(start_paused = true)]
async fn a_refused_request_does_not_use_up_a_shared_bucket() {
    let fixture = Fixture::new().await;
    let limits = RateLimitLayer::builder()
        .limit(
            Limit::new("orders-total", LimitKey::Shared, Quota::per_minute(3))
                .routes(["GET /orders"]),
        )
        .limit(Limit::new(
            "per-key",
            LimitKey::ApiKey,
            Quota::per_minute(1),
        ))
        .build()
        .expect("limits");
    let app = app(fixture
        .gateway()
        .rate_limit(limits)
        .build()
        .expect("gateway"));
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::OK
    );
    for _ in 0..5 {
        let (status, headers, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["ratelimit-policy"], "\"per-key\";q=1;w=60");
    }
    // The shared bucket still has the two requests the viewer did not get.
    assert_eq!(
        send(&app, get_as(&fixture.gold, PEER)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_as(&fixture.admin, PEER)).await.0,
        StatusCode::OK
    );
}

/// `q` is the burst and `w` the time to refill it, so `r` never exceeds `q`; a quota whose
/// window is not whole seconds cannot be advertised and is a build error while the fields
/// are on.
#[tokio::test(start_paused = true)]
async fn ratelimit_policy_advertises_the_burst_and_its_refill_time() {
    let fixture = Fixture::new().await;
    let bursty = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-key",
            LimitKey::ApiKey,
            Quota::per_minute(6).burst(3),
        ))
        .build()
        .expect("limits");
    let app = app(fixture
        .gateway()
        .rate_limit(bursty)
        .build()
        .expect("gateway"));
    let (_, headers, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
    assert_eq!(headers["ratelimit-policy"], "\"per-key\";q=3;w=30");
    assert_eq!(headers["ratelimit"], "\"per-key\";r=2;t=10");

    let half_second = || {
        RateLimitLayer::builder().limit(Limit::new(
            "fast",
            LimitKey::ApiKey,
            Quota::new(10, Duration::from_millis(500)),
        ))
    };
    assert!(matches!(
        half_second().build(),
        Err(ConfigError::InvalidRateLimit { .. })
    ));
    // Without the fields, the quota is fine, and its refusals carry none.
    let quiet = half_second()
        .response_headers(false)
        .build()
        .expect("limits");
    let app = self::app(
        fixture
            .gateway()
            .rate_limit(quiet)
            .build()
            .expect("gateway"),
    );
    for _ in 0..10 {
        send(&app, get_as(&fixture.gold, PEER)).await;
    }
    let (status, headers, _) = send(&app, get_as(&fixture.gold, PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    assert!(!headers.contains_key("ratelimit-policy"));
    assert!(!headers.contains_key("ratelimit"));
}

/// A store that cannot answer (an outage, failing open) gives no `RateLimit` field rather
/// than `r=0;t=0` on every response.
#[tokio::test(start_paused = true)]
async fn no_ratelimit_fields_while_the_store_cannot_answer() {
    use portcullis::rate_limit::{LimitCheck, LimitState, RateLimitStore, StoreFuture};

    struct Down;
    impl RateLimitStore for Down {
        fn check(&self, _: &LimitCheck<'_>) -> StoreFuture<LimitState> {
            StoreFuture::ready(LimitState::unknown())
        }
    }
    let fixture = Fixture::new().await;
    let limits = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-key",
            LimitKey::ApiKey,
            Quota::per_minute(1),
        ))
        .store(Arc::new(Down))
        .build()
        .expect("limits");
    let app = app(fixture
        .gateway()
        .rate_limit(limits)
        .build()
        .expect("gateway"));
    for _ in 0..3 {
        let (status, headers, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!headers.contains_key("ratelimit"), "{headers:?}");
        assert!(!headers.contains_key("ratelimit-policy"));
    }
}

/// The keys by subject (with its issuer), OAuth client and tenant, and by route, each with
/// one quota of 1 per minute: whose requests share a bucket and whose do not.
#[tokio::test(start_paused = true)]
async fn subject_client_tenant_and_route_keys() {
    use portcullis::{AuthMethod, Principal};
    use tower::{Service, service_fn};

    async fn status(
        key: LimitKey,
        routes: &[&str],
        requests: &[(&str, Option<Principal>)],
    ) -> Vec<u16> {
        let mut limit = Limit::new("only", key, Quota::per_minute(1));
        if !routes.is_empty() {
            limit = limit.routes(routes.iter().copied());
        }
        let layer = RateLimitLayer::builder()
            .limit(limit)
            .build()
            .expect("limits");
        let mut service = tower::ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|_: Request<String>| async {
                Ok::<_, std::convert::Infallible>(Response::new(String::new()))
            }));
        let mut out = Vec::new();
        for (target, principal) in requests {
            let (method, path) = target.split_once(' ').expect("METHOD /path");
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .body(String::new())
                .expect("request");
            if let Some(principal) = principal {
                request.extensions_mut().insert(principal.clone());
            }
            let response = service
                .ready()
                .await
                .expect("ready")
                .call(request)
                .await
                .expect("infallible");
            out.push(response.status().as_u16());
        }
        out
    }
    let person = |subject: &str, issuer: &str| {
        Principal::builder(subject, AuthMethod::Bearer)
            .issuer(issuer)
            .build()
    };
    let a = "https://a.example";
    let b = "https://b.example";
    let get = "GET /orders";
    // Subject: the same subject from another issuer is another caller.
    assert_eq!(
        status(
            LimitKey::Subject,
            &[],
            &[
                (get, Some(person("sam", a))),
                (get, Some(person("sam", a))),
                (get, Some(person("sam", b))),
                (get, Some(person("sid", a))),
                (get, None),
            ]
        )
        .await,
        [200, 429, 200, 200, 200]
    );
    // Client: the `client_id` claim, else `azp`; a caller without either is not limited.
    let client = |claim: &str, id: &str| {
        let mut claims = serde_json::Map::new();
        claims.insert(claim.to_owned(), serde_json::Value::from(id));
        Some(
            Principal::builder("someone", AuthMethod::Bearer)
                .claims(claims)
                .build(),
        )
    };
    assert_eq!(
        status(
            LimitKey::ClientId,
            &[],
            &[
                (get, client("client_id", "app-1")),
                (get, client("azp", "app-1")),
                (get, client("client_id", "app-2")),
                (get, Some(person("sam", a))),
                (get, Some(person("sam", a))),
            ]
        )
        .await,
        [200, 429, 200, 200, 200]
    );
    // Tenant: two subjects of one tenant share a bucket.
    let member = |subject: &str, tenant: &str| {
        Some(
            Principal::builder(subject, AuthMethod::Bearer)
                .tenant(tenant)
                .build(),
        )
    };
    assert_eq!(
        status(
            LimitKey::Tenant,
            &[],
            &[
                (get, member("sam", "acme")),
                (get, member("sid", "acme")),
                (get, member("sam", "globex")),
            ]
        )
        .await,
        [200, 429, 200]
    );
    // Route: one bucket per pattern, whoever calls; paths matching one pattern share it.
    assert_eq!(
        status(
            LimitKey::Route,
            &["GET /orders/{id}", "GET /users/{id}"],
            &[
                ("GET /orders/1", None),
                ("GET /orders/2", Some(person("sam", a))),
                ("GET /users/1", None),
                ("GET /health", None),
                ("GET /health", None),
            ]
        )
        .await,
        [200, 429, 200, 200, 200]
    );
}

#[tokio::test(start_paused = true)]
async fn the_pre_auth_ip_limit_stops_a_flood_before_the_key_store() {
    let fixture = Fixture::new().await;
    let per_ip = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-ip",
            LimitKey::ClientIp,
            Quota::per_minute(3),
        ))
        .build()
        .expect("limits");
    let app = app(fixture
        .gateway()
        .rate_limit_before_auth(per_ip)
        .build()
        .expect("gateway"));
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(send(&app, get_as(&fixture.stranger, PEER)).await.0);
    }
    assert_eq!(&statuses[..3], [StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(&statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 7]);
    assert_eq!(
        fixture.lookups(),
        3,
        "refused requests never reached the store"
    );
    // Another address has its own bucket.
    let other = get_as(&fixture.viewer, "203.0.113.50:1234");
    assert_eq!(send(&app, other).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_identity_limit_before_authentication_is_a_config_error() {
    let fixture = Fixture::new().await;
    let error = fixture
        .gateway()
        .rate_limit_before_auth(per_key(Quota::per_minute(1)))
        .build()
        .expect_err("identity is unknown before authentication");
    assert!(matches!(error, ConfigError::InvalidRateLimit { ref limit, .. } if limit == "per-key"));
    let bad = |limit: Limit| RateLimitLayer::builder().limit(limit).build().err();
    assert!(bad(Limit::new("zero", LimitKey::ApiKey, Quota::per_minute(0))).is_some());
    assert!(
        bad(Limit::new(
            "has space",
            LimitKey::ApiKey,
            Quota::per_minute(1)
        ))
        .is_some()
    );
    assert!(bad(Limit::new("r", LimitKey::Route, Quota::per_minute(1))).is_some());
    assert!(
        bad(Limit::new(
            "burst",
            LimitKey::ApiKey,
            Quota::per_minute(1).burst(0)
        ))
        .is_some()
    );
    let huge = Quota::new(1, Duration::MAX);
    assert!(bad(Limit::new("forever", LimitKey::ApiKey, huge)).is_some());
    let deep = Quota::per_second(1).burst(u32::MAX);
    assert!(bad(Limit::new("deep", LimitKey::ApiKey, deep)).is_some());
    // A day's quota is fine.
    let daily = Quota::new(10_000, Duration::from_secs(86_400));
    assert!(bad(Limit::new("daily", LimitKey::ApiKey, daily)).is_none());
}

#[tokio::test(start_paused = true)]
async fn report_only_limits_let_everything_through_and_still_report() {
    let fixture = Fixture::new().await;
    // Two limits that both would refuse: still one decision per request.
    let shadow = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-key",
            LimitKey::ApiKey,
            Quota::per_minute(1),
        ))
        .limit(Limit::new(
            "everyone",
            LimitKey::Shared,
            Quota::per_minute(1),
        ))
        .dangerous_report_only()
        .build()
        .expect("limits");
    let app = app(fixture
        .gateway()
        .rate_limit(shadow)
        .build()
        .expect("gateway"));
    for _ in 0..5 {
        let (status, headers, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!headers.contains_key("ratelimit"));
    }
    assert_eq!(
        fixture.seen.count(Stage::RateLimit, Outcome::WouldRefuse),
        4
    );
    assert_eq!(fixture.seen.count(Stage::RateLimit, Outcome::Allowed), 1);
}

// ---------------------------------------------------------------------------------------
// Brute force

fn brute_force() -> BruteForce {
    BruteForce::new()
        .threshold(3, Duration::from_secs(60))
        .block_for(Duration::from_secs(60), Duration::from_secs(300))
}

#[tokio::test(start_paused = true)]
async fn repeated_failures_block_the_source_which_grows_and_expires() {
    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .brute_force(brute_force())
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(shield).build().expect("gateway"));
    for _ in 0..3 {
        assert_eq!(
            send(&app, get_as(&fixture.stranger, PEER)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(fixture.lookups(), 3);
    // Blocked: even a good key from this address is refused, without a store lookup.
    let (status, headers, body) = send(&app, get_as(&fixture.viewer, PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&body), "blocked");
    assert_eq!(headers["retry-after"], "60");
    assert_eq!(fixture.lookups(), 3);
    // Other addresses are not blocked.
    let other = get_as(&fixture.viewer, "203.0.113.50:1234");
    assert_eq!(send(&app, other).await.0, StatusCode::OK);
    // The block expires...
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::OK
    );
    // ... and a repeat offence blocks for twice as long.
    for _ in 0..3 {
        send(&app, get_as(&fixture.stranger, PEER)).await;
    }
    let (status, headers, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "120");
    tokio::time::advance(Duration::from_secs(119)).await;
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::OK
    );

    let blocks = fixture.seen.blocks.lock().expect("lock").clone();
    let source = "198.51.100.7".to_owned();
    assert_eq!(
        blocks,
        [
            (
                BlockAction::Blocked,
                source.clone(),
                3,
                1,
                Duration::from_secs(60)
            ),
            (BlockAction::Unblocked, source.clone(), 0, 1, Duration::ZERO),
            (
                BlockAction::Blocked,
                source.clone(),
                3,
                2,
                Duration::from_secs(120)
            ),
            (BlockAction::Unblocked, source, 0, 2, Duration::ZERO),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn successes_do_not_wipe_the_count_and_missing_keys_are_not_failures() {
    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .brute_force(brute_force())
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(shield).build().expect("gateway"));
    for _ in 0..10 {
        // No credentials at all: 401, but nothing was guessed.
        let anonymous = request("GET", "/orders", PEER, &[]);
        assert_eq!(send(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);
    }
    send(&app, get_as(&fixture.stranger, PEER)).await;
    send(&app, get_as(&fixture.stranger, PEER)).await;
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::OK
    );
    send(&app, get_as(&fixture.stranger, PEER)).await;
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn report_only_brute_force_blocks_nothing_and_reports() {
    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .brute_force(brute_force().dangerous_report_only())
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(shield).build().expect("gateway"));
    for _ in 0..5 {
        send(&app, get_as(&fixture.stranger, PEER)).await;
    }
    assert_eq!(fixture.lookups(), 5, "nothing was refused before the store");
    assert_eq!(
        send(&app, get_as(&fixture.viewer, PEER)).await.0,
        StatusCode::OK
    );
    assert_eq!(fixture.seen.blocks.lock().expect("lock").len(), 1);
    // The two failures after the block and the good key: one report each.
    assert_eq!(fixture.seen.count(Stage::Shield, Outcome::WouldRefuse), 3);
}

// ---------------------------------------------------------------------------------------
// IP rules and the client IP

#[tokio::test]
async fn deny_lists_and_per_route_allow_lists() {
    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .deny(["192.0.2.0/24", "2001:db8:bad::/48"])
        .route_allow("POST /orders", ["10.0.0.0/8", "2001:db8::/32"])
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(shield).build().expect("gateway"));
    let post = |peer: &str| {
        request(
            "POST",
            "/orders",
            peer,
            &[("x-api-key", fixture.admin.key.expose_secret())],
        )
    };
    let (status, _, body) = send(&app, get_as(&fixture.admin, "192.0.2.9:1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "ip_denied");
    assert_eq!(fixture.lookups(), 0, "a denied address costs no key lookup");
    // IPv4-mapped IPv6 is the IPv4 address.
    let mapped = get_as(&fixture.admin, "[::ffff:192.0.2.9]:1");
    assert_eq!(send(&app, mapped).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send(&app, post("10.1.2.3:1")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, post("[2001:db8:1::5]:1")).await.0,
        StatusCode::OK
    );
    // Deny wins over an allow list that also covers the address.
    assert_eq!(
        send(&app, post("[2001:db8:bad::5]:1")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, post("198.51.100.7:1")).await.0,
        StatusCode::FORBIDDEN
    );
    // The shield's decision names the per-route rule that refused it.
    let last_shield = fixture
        .seen
        .routes
        .lock()
        .expect("lock")
        .iter()
        .rev()
        .find(|(stage, _)| *stage == Stage::Shield)
        .cloned();
    assert_eq!(
        last_shield,
        Some((Stage::Shield, Some("POST /orders".to_owned())))
    );
    // The allow list is the route's only.
    assert_eq!(
        send(&app, get_as(&fixture.admin, PEER)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_for_counts_only_behind_trusted_proxies() {
    let fixture = Fixture::new().await;
    let direct = ShieldLayer::builder()
        .deny(["203.0.113.9"])
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(direct).build().expect("gateway"));
    // Without trusted proxies, the header is ignored: the denied peer stays denied, and
    // cannot pose as another address.
    let spoofed = request(
        "GET",
        "/orders",
        "203.0.113.9:1",
        &[
            ("x-api-key", fixture.viewer.key.expose_secret()),
            ("x-forwarded-for", "10.9.9.9"),
        ],
    );
    assert_eq!(send(&app, spoofed).await.0, StatusCode::FORBIDDEN);
    let framed = request(
        "GET",
        "/orders",
        PEER,
        &[
            ("x-api-key", fixture.viewer.key.expose_secret()),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    );
    let (status, _, body) = send(&app, framed).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "198.51.100.7");

    let proxied = ShieldLayer::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .deny(["203.0.113.9"])
        .build()
        .expect("shield");
    let app = self::app(fixture.gateway().shield(proxied).build().expect("gateway"));
    let through_proxy = |xff: &str| {
        request(
            "GET",
            "/orders",
            "10.0.0.2:443",
            &[
                ("x-api-key", fixture.viewer.key.expose_secret()),
                ("x-forwarded-for", xff),
            ],
        )
    };
    // The proxy appended the denied client's address: denied.
    assert_eq!(
        send(&app, through_proxy("203.0.113.9")).await.0,
        StatusCode::FORBIDDEN
    );
    // The client forged a leftmost address; the proxy appended the real one.
    let (status, _, body) = send(&app, through_proxy("203.0.113.9, 198.51.100.1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "198.51.100.1");
    let (_, _, body) = send(&app, through_proxy("198.51.100.1, 10.0.0.7")).await;
    assert_eq!(body, "198.51.100.1");

    let rfc7239 = ShieldLayer::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .forwarded_header(ForwardedHeader::Forwarded)
        .build()
        .expect("shield");
    let app = self::app(fixture.gateway().shield(rfc7239).build().expect("gateway"));
    let forwarded = request(
        "GET",
        "/orders",
        "10.0.0.2:443",
        &[
            ("x-api-key", fixture.viewer.key.expose_secret()),
            ("forwarded", "for=1.1.1.1, for=\"[2001:db8:cafe::17]:4711\""),
        ],
    );
    let (_, _, body) = send(&app, forwarded).await;
    assert_eq!(body, "2001:db8:cafe::17");
}

/// A client behind a trusted proxy sends `X-Forwarded-For` bytes that are not text; the
/// proxy appends the real address on the same line. The real address still counts, and an
/// unreadable hop never resolves to the proxy (which would escape per-IP limits, get the
/// proxy blocked, and pass allow lists holding the proxies' range).
#[tokio::test(start_paused = true)]
async fn an_unreadable_forwarded_hop_never_makes_the_proxy_the_client() {
    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .deny(["203.0.113.9"])
        .route_allow("POST /orders", ["10.0.0.0/8"])
        .brute_force(brute_force())
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(shield).build().expect("gateway"));
    let through_proxy = |method: &str, xff: &[u8]| {
        let mut request = request(
            method,
            "/orders",
            "10.0.0.2:443",
            &[("x-api-key", fixture.admin.key.expose_secret())],
        );
        request.headers_mut().insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(xff).expect("obs-text is a valid value"),
        );
        request
    };
    // The denied client's address, appended after the garbage: still denied.
    let (status, _, body) = send(&app, through_proxy("GET", b"\xff, 203.0.113.9")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "ip_denied");
    let (status, _, body) = send(&app, through_proxy("GET", b"\xff, 198.51.100.1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "198.51.100.1");
    // Only garbage (or garbage behind trusted hops): the client is unknown, refused; the
    // allow list of the proxies' range is not passed.
    for xff in [&b"\xff"[..], b"\xff, 10.0.0.3", b"nonsense"] {
        let (status, _, body) = send(&app, through_proxy("POST", xff)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{xff:?}");
        assert_eq!(code(&body), "invalid_request");
    }
    // Nor can such requests get the proxy blocked: failures with garbage are refused
    // before they count, and a well-formed request through the proxy still passes.
    for _ in 0..5 {
        let mut bad = through_proxy("GET", b"\xff");
        bad.headers_mut().insert(
            "x-api-key",
            fixture.stranger.key.expose_secret().parse().expect("key"),
        );
        send(&app, bad).await;
    }
    assert!(fixture.seen.blocks.lock().expect("lock").is_empty());
    assert_eq!(fixture.lookups(), 1);
    let (status, _, body) = send(&app, through_proxy("GET", b"198.51.100.2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "198.51.100.2");
}

/// A request from a trusted proxy with an unreadable `X-Forwarded-For`, and a per-IP limit
/// behind a shield that has no IP rules: the limit must not count the proxy instead.
#[tokio::test(start_paused = true)]
async fn a_per_ip_limit_does_not_fall_back_to_the_proxy_address() {
    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .build()
        .expect("shield");
    let per_ip = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-ip",
            LimitKey::ClientIp,
            Quota::per_minute(100),
        ))
        .build()
        .expect("limits");
    let app = app(fixture
        .gateway()
        .shield(shield)
        .rate_limit_before_auth(per_ip)
        .build()
        .expect("gateway"));
    let mut garbage = get_as(&fixture.viewer, "10.0.0.2:443");
    garbage.headers_mut().insert(
        "x-forwarded-for",
        http::HeaderValue::from_bytes(b"\xff").expect("value"),
    );
    let (status, _, body) = send(&app, garbage).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "invalid_request");
    assert_eq!(fixture.lookups(), 0);
}

/// Served without `ConnectInfo`, the peer's address is unknown: where IP rules, brute
/// force or a per-IP limit apply, the request is refused with 503 (a deny list does not
/// admit everyone), unless the `insecure_` opt-out says otherwise.
#[tokio::test(start_paused = true)]
async fn an_unknown_peer_address_is_refused_where_ip_protection_applies() {
    let fixture = Fixture::new().await;
    let without_peer = || {
        Request::get("/orders")
            .header("x-api-key", fixture.viewer.key.expose_secret())
            .body(Body::empty())
            .expect("request")
    };
    let shielded = |builder: portcullis::shield::ShieldBuilder| {
        app(fixture
            .gateway()
            .shield(builder.build().expect("shield"))
            .build()
            .expect("gateway"))
    };
    for shield in [
        ShieldLayer::builder().deny(["192.0.2.0/24"]),
        ShieldLayer::builder().route_allow("GET /orders", ["10.0.0.0/8"]),
        ShieldLayer::builder().brute_force(brute_force()),
    ] {
        let (status, _, body) = send(&shielded(shield), without_peer()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(code(&body), "unavailable");
    }
    assert_eq!(fixture.lookups(), 0);
    // Nothing in the shield depends on the address (only trusted proxies): it goes on.
    let plain = shielded(ShieldLayer::builder().trusted_proxies(["10.0.0.0/8"]));
    assert_eq!(send(&plain, without_peer()).await.0, StatusCode::OK);
    // Opted out: the deny list is passed, the request goes on.
    let insecure = shielded(
        ShieldLayer::builder()
            .deny(["192.0.2.0/24"])
            .insecure_allow_unknown_client_ip(),
    );
    assert_eq!(send(&insecure, without_peer()).await.0, StatusCode::OK);

    // A per-IP limit alone, without a shield.
    let per_ip = |insecure: bool| {
        let builder = RateLimitLayer::builder().limit(Limit::new(
            "per-ip",
            LimitKey::ClientIp,
            Quota::per_minute(1),
        ));
        let builder = if insecure {
            builder.insecure_allow_unknown_client_ip()
        } else {
            builder
        };
        app(fixture
            .gateway()
            .rate_limit_before_auth(builder.build().expect("limits"))
            .build()
            .expect("gateway"))
    };
    let (status, _, body) = send(&per_ip(false), without_peer()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&body), "unavailable");
    let open = per_ip(true);
    for _ in 0..3 {
        assert_eq!(send(&open, without_peer()).await.0, StatusCode::OK);
    }
}

/// IPv6 clients are counted by their /64: rotating through a subscriber's addresses
/// escapes neither the per-IP limit nor a brute-force block; another /64 is another client.
#[tokio::test(start_paused = true)]
async fn ipv6_clients_are_counted_by_their_64() {
    let fixture = Fixture::new().await;
    let per_ip = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-ip",
            LimitKey::ClientIp,
            Quota::per_minute(3),
        ))
        .build()
        .expect("limits");
    let app = app(fixture
        .gateway()
        .rate_limit_before_auth(per_ip)
        .build()
        .expect("gateway"));
    for host in 1..=3 {
        let peer = format!("[2001:db8:1:2::{host}]:1");
        assert_eq!(
            send(&app, get_as(&fixture.viewer, &peer)).await.0,
            StatusCode::OK
        );
    }
    let (status, headers, _) =
        send(&app, get_as(&fixture.viewer, "[2001:db8:1:2:ffff::9]:1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["ratelimit-policy"], "\"per-ip\";q=3;w=60");
    assert_eq!(
        send(&app, get_as(&fixture.viewer, "[2001:db8:1:3::1]:1"))
            .await
            .0,
        StatusCode::OK
    );
    // IPv4 addresses have a bucket each, mapped ones included.
    assert_eq!(
        send(&app, get_as(&fixture.viewer, "[::ffff:192.0.2.1]:1"))
            .await
            .0,
        StatusCode::OK
    );
    // A finer prefix is configurable.
    let per_host = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-ip",
            LimitKey::ClientIp,
            Quota::per_minute(1),
        ))
        .ipv6_prefix(128)
        .build()
        .expect("limits");
    let app = self::app(
        fixture
            .gateway()
            .rate_limit_before_auth(per_host)
            .build()
            .expect("gateway"),
    );
    for host in 1..=3 {
        let peer = format!("[2001:db8:9::{host}]:1");
        assert_eq!(
            send(&app, get_as(&fixture.viewer, &peer)).await.0,
            StatusCode::OK
        );
    }
    assert!(RateLimitLayer::builder().ipv6_prefix(0).build().is_err());
    assert!(RateLimitLayer::builder().ipv6_prefix(129).build().is_err());

    let shield = ShieldLayer::builder()
        .brute_force(brute_force())
        .build()
        .expect("shield");
    let app = self::app(fixture.gateway().shield(shield).build().expect("gateway"));
    for host in 1..=3 {
        let peer = format!("[2001:db8:7:7::{host}]:1");
        send(&app, get_as(&fixture.stranger, &peer)).await;
    }
    let (status, _, body) = send(&app, get_as(&fixture.viewer, "[2001:db8:7:7::99]:1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&body), "blocked");
    assert_eq!(
        send(&app, get_as(&fixture.viewer, "[2001:db8:7:8::1]:1"))
            .await
            .0,
        StatusCode::OK
    );
    let blocks = fixture.seen.blocks.lock().expect("lock").clone();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].1, "2001:db8:7:7::");
    let bad = ShieldLayer::builder()
        .brute_force(brute_force().ipv6_prefix(0))
        .build();
    assert!(matches!(bad, Err(ConfigError::InvalidLimit { .. })));
}

/// A response future polled again after it answered says 500, never a default 200 that
/// would pass for the service's answer.
#[tokio::test]
async fn a_future_polled_after_it_answered_is_a_server_error() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    use tower::{Layer, Service, service_fn};

    fn twice<F, B>(future: F) -> (StatusCode, StatusCode)
    where
        F: Future<Output = Result<Response<B>, std::convert::Infallible>>,
    {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        let mut status = || match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => response.status(),
            Poll::Pending => panic!("an answered request does not wait"),
        };
        (status(), status())
    }
    let bare = || {
        service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        })
    };
    let mut shield = ShieldLayer::builder()
        .deny(["192.0.2.0/24"])
        .build()
        .expect("shield")
        .layer(bare());
    let denied = shield.call(get_as(&Fixture::new().await.viewer, "192.0.2.1:1"));
    assert_eq!(
        twice(denied),
        (StatusCode::FORBIDDEN, StatusCode::INTERNAL_SERVER_ERROR)
    );
    let mut limited = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-ip",
            LimitKey::ClientIp,
            Quota::per_minute(1),
        ))
        .build()
        .expect("limits")
        .layer(bare());
    limited
        .call(request("GET", "/", PEER, &[]))
        .await
        .expect("first");
    let refused = limited.call(request("GET", "/", PEER, &[]));
    assert_eq!(
        twice(refused),
        (
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR
        )
    );
}

#[tokio::test]
async fn bad_ranges_are_config_errors() {
    for bad in [
        "10.0.0.1/8",
        "300.0.0.0/8",
        "10.0.0.0/33",
        "fe80::/129",
        "localhost",
    ] {
        let error = ShieldLayer::builder().deny([bad]).build().expect_err(bad);
        assert!(matches!(error, ConfigError::InvalidCidr { ref cidr, .. } if cidr == bad));
        let error = ShieldLayer::builder()
            .trusted_proxies([bad])
            .build()
            .expect_err(bad);
        assert!(matches!(error, ConfigError::InvalidCidr { .. }));
    }
    let zero = ShieldLayer::builder()
        .brute_force(BruteForce::new().threshold(0, Duration::from_secs(1)))
        .build();
    assert!(matches!(zero, Err(ConfigError::InvalidLimit { .. })));
    // Periods too long to count with are refused, not a panic at request time.
    let forever = ShieldLayer::builder()
        .brute_force(BruteForce::new().threshold(3, Duration::MAX))
        .build();
    assert!(matches!(forever, Err(ConfigError::DurationTooLong { .. })));
    let forever = ShieldLayer::builder()
        .brute_force(BruteForce::new().block_for(Duration::from_secs(1), Duration::MAX))
        .build();
    assert!(matches!(forever, Err(ConfigError::DurationTooLong { .. })));
}

/// The peer address as a real server gives it (`into_make_service_with_connect_info`),
/// over a socket on 127.0.0.1.
#[tokio::test]
async fn the_peer_address_comes_from_a_real_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .route_allow("POST /orders", ["192.0.2.0/24"])
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(shield).build().expect("gateway"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let exchange = |head: String| async move {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    };
    let key = fixture.admin.key.expose_secret().to_owned();
    let get = exchange(format!(
        "GET /orders HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\nconnection: close\r\n\r\n"
    ))
    .await;
    assert!(get.starts_with("HTTP/1.1 200"), "{get}");
    assert!(get.ends_with("127.0.0.1"), "{get}");
    let post = exchange(format!(
        "POST /orders HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ncontent-length: 0\r\n\
         connection: close\r\n\r\n"
    ))
    .await;
    assert!(post.starts_with("HTTP/1.1 403"), "{post}");
    server.abort();
}

// ---------------------------------------------------------------------------------------
// Metrics

mod metrics_recorded {
    use metrics_util::CompositeKey;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use portcullis::observe::{AuditLog, MetricsObserver, TracingObserver};
    use portcullis::{AuthFuture, AuthOutcome, Authenticate};

    use super::*;

    /// A login flow in miniature: answers requests carrying `x-login` with a redirect.
    struct Login;

    impl Authenticate for Login {
        fn authenticate(&self, request: &http::request::Parts) -> AuthFuture {
            if !request.headers.contains_key("x-login") {
                return AuthFuture::ready(AuthOutcome::Absent);
            }
            let mut redirect = Response::new(bytes::Bytes::new());
            *redirect.status_mut() = StatusCode::FOUND;
            redirect.headers_mut().insert(
                "location",
                "https://idp.example/authorize".parse().expect("uri"),
            );
            AuthFuture::ready(AuthOutcome::Respond(redirect))
        }
    }

    /// What the recorder holds, taken once (a snapshot drains it).
    type Metrics = Vec<(CompositeKey, DebugValue)>;

    /// The value of counter `name` whose labels include every one of `labels`.
    fn counter(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
        metrics
            .iter()
            .filter(|(key, _)| key.key().name() == name)
            .filter(|(key, _)| {
                labels.iter().all(|(label, value)| {
                    key.key()
                        .labels()
                        .any(|l| l.key() == *label && l.value() == *value)
                })
            })
            .map(|(_, value)| match value {
                DebugValue::Counter(count) => *count,
                _ => 0,
            })
            .sum()
    }

    fn histogram_samples(metrics: &Metrics, name: &str) -> usize {
        metrics
            .iter()
            .filter(|(key, _)| key.key().name() == name)
            .map(|(_, value)| match value {
                DebugValue::Histogram(samples) => samples.len(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn every_outcome_is_counted_with_bounded_labels() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        // The recorder is this thread's; a current-thread runtime polls on it.
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let fixture = Fixture::new().await;
                let shield = ShieldLayer::builder()
                    .deny(["192.0.2.0/24"])
                    .brute_force(brute_force())
                    .build()
                    .expect("shield");
                let limits = RateLimitLayer::builder()
                    .limit(Limit::new(
                        "per-key",
                        LimitKey::ApiKey,
                        Quota::per_minute(1),
                    ))
                    .build()
                    .expect("limits");
                // A shadow per-IP limit: its refusals are only reported.
                let shadow = RateLimitLayer::builder()
                    .limit(Limit::new(
                        "per-ip-shadow",
                        LimitKey::ClientIp,
                        Quota::per_minute(1),
                    ))
                    .dangerous_report_only()
                    .build()
                    .expect("limits");
                let observer = Arc::new((TracingObserver, MetricsObserver::new(), AuditLog));
                let app = app(fixture
                    .gateway()
                    .authenticate(Login)
                    .observer(observer)
                    .shield(shield)
                    .rate_limit_before_auth(shadow)
                    .rate_limit(limits)
                    .build()
                    .expect("gateway"));
                assert_eq!(
                    send(&app, get_as(&fixture.viewer, PEER)).await.0,
                    StatusCode::OK
                );
                let limited = send(&app, get_as(&fixture.viewer, PEER)).await.0;
                assert_eq!(limited, StatusCode::TOO_MANY_REQUESTS);
                let denied = send(&app, get_as(&fixture.viewer, "192.0.2.1:1")).await.0;
                assert_eq!(denied, StatusCode::FORBIDDEN);
                for _ in 0..3 {
                    send(&app, get_as(&fixture.stranger, "203.0.113.5:1")).await;
                }
                let blocked = send(&app, get_as(&fixture.viewer, "203.0.113.5:1")).await.0;
                assert_eq!(blocked, StatusCode::TOO_MANY_REQUESTS);
                tokio::time::advance(Duration::from_secs(60)).await;
                send(&app, get_as(&fixture.admin, "203.0.113.5:1")).await;
                let login = request("GET", "/orders", "203.0.113.77:1", &[("x-login", "1")]);
                assert_eq!(send(&app, login).await.0, StatusCode::FOUND);
            });
        });
        let metrics: Metrics = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (key, value))
            .collect();
        let decisions = |labels: &[(&str, &str)]| counter(&metrics, "portcullis.decisions", labels);
        assert_eq!(
            decisions(&[
                ("stage", "shield"),
                ("outcome", "refused"),
                ("reason", "ip_denied")
            ]),
            1
        );
        assert_eq!(
            decisions(&[
                ("stage", "shield"),
                ("outcome", "refused"),
                ("reason", "blocked")
            ]),
            1
        );
        assert_eq!(
            decisions(&[
                ("stage", "rate_limit"),
                ("outcome", "refused"),
                ("reason", "rate_limited"),
                ("http.route", "/orders")
            ]),
            1
        );
        assert_eq!(
            decisions(&[
                ("stage", "authenticate"),
                ("outcome", "refused"),
                ("reason", "unknown_key")
            ]),
            3
        );
        assert_eq!(
            decisions(&[
                ("stage", "authorize"),
                ("outcome", "allowed"),
                ("http.route", "/orders"),
                ("http.request.method", "GET")
            ]),
            // The first request, the rate-limited one (limits come after the rules) and
            // the one after the block.
            3
        );
        assert_eq!(
            counter(
                &metrics,
                "portcullis.rate_limit.refusals",
                &[("limit", "per-key")]
            ),
            1
        );
        // The shadow limit: PEER's second request, and the second and third of 203.0.113.5
        // (the blocked one never reaches it; the one after the block has a full bucket).
        assert_eq!(
            decisions(&[("stage", "rate_limit"), ("outcome", "would_refuse")]),
            3
        );
        assert_eq!(
            counter(
                &metrics,
                "portcullis.rate_limit.refusals",
                &[("limit", "per-ip-shadow"), ("outcome", "would_refuse")]
            ),
            3
        );
        assert_eq!(
            decisions(&[("stage", "authenticate"), ("outcome", "answered")]),
            1
        );
        assert_eq!(
            counter(&metrics, "portcullis.shield.blocks", &[("kind", "ip")]),
            1
        );
        assert_eq!(
            counter(&metrics, "portcullis.shield.unblocks", &[("kind", "ip")]),
            1
        );
        assert!(histogram_samples(&metrics, "portcullis.decision.duration") > 0);
        // No label carries a subject, a key id, an address or a raw path.
        for (key, _) in &metrics {
            for label in key.key().labels() {
                for forbidden in ["vic", "ada", "192.0.2.1", "203.0.113.5", "198.51.100.7"] {
                    assert!(!label.value().contains(forbidden), "{label:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stores that wait (as a store on a server does)

mod waiting_stores {
    use portcullis::rate_limit::{
        LimitCheck, LimitState, MemoryRateLimitStore, RateLimitStore, StoreFuture,
    };
    use portcullis::shield::{BlockSource, BlockState, BlockStore, FailureCount, MemoryBlockStore};

    use super::*;

    /// Answers as the in-memory store does, after waiting once: the layers' slow path.
    struct Remote<T>(T);

    fn later<T: Send + 'static>(value: T) -> StoreFuture<T> {
        StoreFuture::new(async move {
            tokio::task::yield_now().await;
            value
        })
    }

    fn now<T>(future: StoreFuture<T>) -> T
    where
        T: Default,
    {
        futures_util::FutureExt::now_or_never(future).expect("the memory store answers at once")
    }

    impl RateLimitStore for Remote<MemoryRateLimitStore> {
        fn check(&self, check: &LimitCheck<'_>) -> StoreFuture<LimitState> {
            later(now(self.0.check(check)))
        }
    }

    impl BlockStore for Remote<MemoryBlockStore> {
        fn state(&self, source: &BlockSource) -> StoreFuture<BlockState> {
            later(now(self.0.state(source)))
        }
        fn record_failure(
            &self,
            source: &BlockSource,
            policy: &BruteForce,
        ) -> StoreFuture<FailureCount> {
            later(now(self.0.record_failure(source, policy)))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limits_and_blocks_work_the_same_with_a_store_that_waits() {
        let fixture = Fixture::new().await;
        let limits = RateLimitLayer::builder()
            .limit(Limit::new(
                "per-key",
                LimitKey::ApiKey,
                Quota::per_minute(2),
            ))
            .limit(Limit::new(
                "per-ip",
                LimitKey::ClientIp,
                Quota::per_minute(100),
            ))
            .store(Arc::new(Remote(MemoryRateLimitStore::new(100))))
            .build()
            .expect("limits");
        let shield = ShieldLayer::builder()
            .brute_force(
                brute_force()
                    .per_identity()
                    .store(Arc::new(Remote(MemoryBlockStore::new(100)))),
            )
            .build()
            .expect("shield");
        let app = app(fixture
            .gateway()
            .shield(shield)
            .rate_limit(limits)
            .build()
            .expect("gateway"));
        let (status, headers, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["ratelimit"], "\"per-key\";r=1;t=30");
        assert_eq!(
            send(&app, get_as(&fixture.viewer, PEER)).await.0,
            StatusCode::OK
        );
        let (status, headers, _) = send(&app, get_as(&fixture.viewer, PEER)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "30");
        for _ in 0..3 {
            let (status, ..) = send(&app, get_as(&fixture.stranger, PEER)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let (status, headers, body) = send(&app, get_as(&fixture.admin, PEER)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(code(&body), "blocked");
        assert_eq!(headers["retry-after"], "60");
        // Both the address and the key id reached the threshold, each counted in turn.
        let blocked: Vec<String> = fixture
            .seen
            .blocks
            .lock()
            .expect("lock")
            .iter()
            .map(|block| block.1.clone())
            .collect();
        let id = fixture.stranger.record.id().to_string();
        assert_eq!(
            blocked,
            ["198.51.100.7".to_owned(), format!("api_key:{id}")]
        );
        // The key id is blocked from another address too, checked after the address.
        let elsewhere = get_as(&fixture.stranger, "203.0.113.77:1");
        assert_eq!(send(&app, elsewhere).await.0, StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test(start_paused = true)]
async fn failures_per_identity_block_a_key_id_from_every_address() {
    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .brute_force(brute_force().per_identity())
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(shield).build().expect("gateway"));
    // Three addresses, one failure each: no address reaches the threshold, the key id does.
    for peer in ["203.0.113.1:1", "203.0.113.2:1", "203.0.113.3:1"] {
        let (status, ..) = send(&app, get_as(&fixture.stranger, peer)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(fixture.lookups(), 3);
    let (status, headers, body) = send(&app, get_as(&fixture.stranger, "203.0.113.4:1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&body), "blocked");
    assert_eq!(headers["retry-after"], "60");
    assert_eq!(
        fixture.lookups(),
        3,
        "a blocked identity costs no store lookup"
    );
    // Other keys from the same addresses are not blocked.
    let other = get_as(&fixture.viewer, "203.0.113.1:1");
    assert_eq!(send(&app, other).await.0, StatusCode::OK);
    let blocks = fixture.seen.blocks.lock().expect("lock").clone();
    let id = fixture.stranger.record.id().to_string();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].1, format!("api_key:{id}"));
    // The block ends like an address's.
    tokio::time::advance(Duration::from_secs(60)).await;
    let (status, ..) = send(&app, get_as(&fixture.stranger, "203.0.113.4:1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(start_paused = true)]
async fn identities_are_not_counted_unless_asked() {
    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .brute_force(brute_force())
        .build()
        .expect("shield");
    let app = app(fixture.gateway().shield(shield).build().expect("gateway"));
    for peer in [
        "203.0.113.1:1",
        "203.0.113.2:1",
        "203.0.113.3:1",
        "203.0.113.4:1",
    ] {
        let (status, ..) = send(&app, get_as(&fixture.stranger, peer)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(fixture.lookups(), 4);
}

// ---------------------------------------------------------------------------------------
// The audit log, as JSON lines

mod audit_log {
    use std::io::Write;

    use portcullis::observe::AuditLog;

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_json_line_per_decision_with_the_documented_fields() {
        let lines = Lines::default();
        let writer = lines.clone();
        let viewer_key_id = Arc::new(Mutex::new(String::new()));
        let key_id = viewer_key_id.clone();
        // As docs/monitoring.md shows it.
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("portcullis::audit=info"))
            .with_writer(move || writer.clone())
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                let fixture = Fixture::new().await;
                let shield = ShieldLayer::builder().build().expect("shield");
                let limits = RateLimitLayer::builder()
                    .limit(Limit::new(
                        "per-key",
                        LimitKey::ApiKey,
                        Quota::per_minute(1),
                    ))
                    .build()
                    .expect("limits");
                let app = app(fixture
                    .gateway()
                    .observer(Arc::new(AuditLog::new()))
                    .shield(shield)
                    .rate_limit(limits)
                    .build()
                    .expect("gateway"));
                send(&app, get_as(&fixture.viewer, PEER)).await;
                send(&app, get_as(&fixture.viewer, PEER)).await;
                *key_id.lock().expect("lock") = fixture.viewer.record.id().to_string();
            });
        });
        let viewer_key_id = viewer_key_id.lock().expect("lock").clone();
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("UTF-8");
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect();
        // Request 1: authenticate, authorize, rate limit (a shield without rules or blocking
        // only finds the client IP: no decision); request 2 the same, refused by the limit.
        let stages: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["stage"].as_str().unwrap_or_default(),
                    e["decision"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            stages,
            [
                ("authenticate", "allowed"),
                ("authorize", "allowed"),
                ("rate_limit", "allowed"),
                ("authenticate", "allowed"),
                ("authorize", "allowed"),
                ("rate_limit", "refused"),
            ]
        );
        let fields = [
            "audit_schema",
            "event",
            "time",
            "stage",
            "decision",
            "reason",
            "status",
            "rule",
            "route",
            "method",
            "client_ip",
            "subject",
            "auth_method",
            "key_id",
            "limit",
            "latency_us",
        ];
        for event in &events {
            for field in fields {
                assert!(event.get(field).is_some(), "{field} missing in {event}");
            }
            assert_eq!(event["audit_schema"], 1);
            assert_eq!(event["target"], "portcullis::audit");
        }
        let refused = &events[5];
        assert_eq!(refused["reason"], "rate_limited");
        assert_eq!(refused["status"], 429);
        assert_eq!(refused["limit"], "per-key");
        assert_eq!(refused["client_ip"], "198.51.100.7");
        assert_eq!(refused["subject"], "vic");
        assert_eq!(refused["auth_method"], "api_key");
        assert!(!viewer_key_id.is_empty());
        for event in &events {
            assert_eq!(event["key_id"], viewer_key_id.as_str(), "{event}");
        }
        // The limits after authentication name the rule the gateway matched.
        assert_eq!(refused["rule"], "GET /orders");
        assert_eq!(refused["route"], "/orders");
        let authorized = &events[1];
        assert_eq!(authorized["rule"], "GET /orders");
        assert_eq!(authorized["route"], "/orders");
        assert_eq!(authorized["method"], "GET");
        let time = refused["time"].as_str().unwrap_or_default();
        assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
    }
}

/// The gateway asks its service whether it is ready and calls the instance that said so,
/// in each of its shapes: every stage; entered at authentication (nothing configured before
/// it); authentication, authorization and validation alone (nothing else configured).
#[tokio::test]
async fn the_gateway_calls_the_service_it_readied_in_each_shape() {
    use std::task::{Context, Poll};
    use tower::{Layer, Service};

    /// Answers 200 when called after it said it was ready, 500 otherwise; a clone has not
    /// said so yet.
    #[derive(Default)]
    struct ReadyOnce {
        ready: bool,
    }
    impl Clone for ReadyOnce {
        fn clone(&self) -> Self {
            Self::default()
        }
    }
    impl<B> Service<Request<B>> for ReadyOnce {
        type Response = Response<Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<B>) -> Self::Future {
            let mut response = Response::new(Body::empty());
            if !std::mem::take(&mut self.ready) {
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            std::future::ready(Ok(response))
        }
    }

    let fixture = Fixture::new().await;
    let shield = ShieldLayer::builder()
        .deny(["192.0.2.0/24"])
        .build()
        .expect("shield");
    let gateways = [
        ("lean", fixture.gateway().build()),
        (
            "from authentication",
            fixture
                .gateway()
                .rate_limit(per_key(Quota::per_minute(100)))
                .build(),
        ),
        (
            "through the shield",
            fixture.gateway().shield(shield).build(),
        ),
    ];
    for (path, gateway) in gateways {
        let mut service = gateway.expect("gateway").layer(ReadyOnce::default());
        for _ in 0..3 {
            let ready = ServiceExt::<Request<Body>>::ready(&mut service)
                .await
                .expect("ready");
            let response = ready
                .call(get_as(&fixture.viewer, PEER))
                .await
                .expect("infallible");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
        // Called without asking: the service was not readied, and says so.
        let response = service
            .call(get_as(&fixture.viewer, PEER))
            .await
            .expect("infallible");
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
    }
}

/// The gateway answers alike in each of its shapes (lean, entered at authentication, whole;
/// see `the_gateway_calls_the_service_it_readied_in_each_shape`): leaving a pass-through
/// stage out of a request's path changes nothing a client can see, for the service's
/// answers and for refusals.
#[tokio::test]
async fn every_shape_of_the_gateway_answers_alike() {
    let fixture = Fixture::new().await;
    let quiet_limit = RateLimitLayer::builder()
        .limit(Limit::new(
            "per-key",
            LimitKey::ApiKey,
            Quota::per_minute(1_000),
        ))
        .response_headers(false)
        .build()
        .expect("limits");
    let shield = ShieldLayer::builder()
        .deny(["192.0.2.0/24"])
        .build()
        .expect("shield");
    let gateways = [
        fixture.gateway().build(),
        fixture.gateway().rate_limit(quiet_limit).build(),
        fixture.gateway().shield(shield).build(),
    ];
    let apps = gateways.map(|gateway| {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/orders",
                get(|| async { "orders" }).post(|| async { "created" }),
            )
            .layer(gateway.expect("gateway"))
    });
    let viewer = fixture.viewer.key.expose_secret();
    let stranger = fixture.stranger.key.expose_secret();
    let cases = [
        ("GET", "/health", None, StatusCode::OK),
        ("GET", "/orders", None, StatusCode::UNAUTHORIZED),
        ("GET", "/orders", Some("garbage"), StatusCode::UNAUTHORIZED),
        ("GET", "/orders", Some(stranger), StatusCode::UNAUTHORIZED),
        ("POST", "/orders", Some(viewer), StatusCode::FORBIDDEN),
        ("GET", "/orders", Some(viewer), StatusCode::OK),
    ];
    for (method, path, key, expected) in cases {
        let headers: Vec<(&str, &str)> = key.map(|key| ("x-api-key", key)).into_iter().collect();
        let mut answers = Vec::new();
        for app in &apps {
            let (status, headers, body) = send(app, request(method, path, PEER, &headers)).await;
            let header = |name| headers.get(name).map(|value| value.as_bytes().to_vec());
            answers.push((
                status,
                header(http::header::WWW_AUTHENTICATE),
                header(http::header::CONTENT_TYPE),
                headers.len(),
                body,
            ));
        }
        assert_eq!(answers[0].0, expected, "{method} {path} {key:?}");
        assert_eq!(answers[0], answers[1], "{method} {path} {key:?}");
        assert_eq!(answers[0], answers[2], "{method} {path} {key:?}");
    }
}
