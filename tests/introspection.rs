//! Token introspection (RFC 7662): opaque tokens from the real test provider, end to end,
//! and an introspection endpoint that misbehaves on purpose.
//!
//! The provider harness is the one of `tests/bearer_idp.rs` (unchanged, minus what these
//! tests do not use); run `npm ci` in `tests/idp` first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::Principal;
use portcullis::bearer::{BearerAuthenticator, BearerLayer, Introspection};
use portcullis::remote::{HttpClient, HttpFuture, ReqwestClient};
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;
use support::idp::*;

/// The audience the fake endpoints' active answers name.
const FAKE_AUDIENCE: &str = "urn:portcullis:test-api";

const CALL_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------

/// A [`ReqwestClient`] that counts the introspection requests it sends.
struct Counting {
    inner: ReqwestClient,
    posts: AtomicUsize,
}

impl Counting {
    fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: ReqwestClient::builder()
                .timeout(timeout)
                .build()
                .expect("client"),
            posts: AtomicUsize::new(0),
        })
    }

    fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}

impl HttpClient for Counting {
    fn get(&self, url: &str, accept: &[&str]) -> HttpFuture<'_> {
        self.inner.get(url, accept)
    }

    fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
        accept: &[&str],
    ) -> HttpFuture<'_> {
        self.posts.fetch_add(1, Ordering::SeqCst);
        self.inner.post_form(url, form, basic_auth, accept)
    }
}

async fn whoami(principal: Principal) -> Json<Principal> {
    Json(principal)
}

fn app(authenticator: BearerAuthenticator) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(BearerLayer::new(authenticator))
}

/// What the client of the gateway receives.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

async fn send(app: &Router, token: &str) -> Reply {
    let request = Request::get("/whoami")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let exchange = async {
        let response: Response<Body> = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let (challenge, retry_after) = {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            (header("www-authenticate"), header("retry-after"))
        };
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            challenge,
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .expect("the gateway answered in time")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn assert_inactive(reply: &Reply, what: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {reply:?}");
    let challenge = reply.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#)
            && challenge.contains("The token is not active."),
        "{what}: {challenge}"
    );
}

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {reply:?}"
    );
    assert_eq!(reply.retry_after.as_deref(), Some("5"), "{what}: {reply:?}");
}

impl Idp {
    /// Revokes `token` as its owner; the provider always answers 200.
    fn revoke(&self, token: &str) {
        let form = format!("token={}&token_type_hint=access_token", form_encode(token));
        let response = http_request(
            "POST",
            &format!("{}/token/revocation", self.issuer),
            Some(RESOURCE_CLIENT_BASIC),
            Some(&form),
        );
        assert_eq!(response.status, 200, "revocation: {}", response.text());
    }

    fn introspection(&self, client: Arc<Counting>) -> portcullis::bearer::IntrospectionBuilder {
        Introspection::builder(
            format!("{}/token/introspection", self.issuer),
            "api-introspector",
            "introspector-secret",
        )
        .issuer(self.issuer.as_str())
        .audience(OPAQUE_API)
        .roles_claim("realm_access.roles")
        .http_client(client)
    }
}

// ---------------------------------------------------------------------------------------
// The real provider
// ---------------------------------------------------------------------------------------

#[test]
fn opaque_tokens_from_a_real_provider_are_introspected() {
    let idp = Idp::start(Settings::default());
    let client = Counting::new(Duration::from_secs(5));
    // Long enough that the second request below is answered from the cache however slow
    // the machine: the cache is cleared by hand before the revocation check.
    let introspection = idp
        .introspection(Arc::clone(&client))
        .max_cache(Duration::from_secs(60))
        .build()
        .expect("introspection settings");
    let authenticator = BearerAuthenticator::builder()
        .introspection(introspection.clone())
        .build()
        .expect("authenticator settings");
    let app = app(authenticator);
    let rt = runtime();

    let token = idp.token(OPAQUE_API);
    assert!(!token.contains('.'), "opaque: {token}");

    let reply = rt.block_on(send(&app, &token));
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let principal = &reply.body;
    assert_eq!(principal["subject"], "resource-client", "{principal}");
    assert_eq!(principal["issuer"], idp.issuer.as_str(), "{principal}");
    assert_eq!(principal["roles"], json!(["admin"]), "{principal}");
    assert_eq!(
        principal["scopes"],
        json!(["orders:read", "orders:write"]),
        "{principal}"
    );
    assert_eq!(client.posts(), 1);

    // The second time comes from the cache.
    let reply = rt.block_on(send(&app, &token));
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(client.posts(), 1, "no second introspection request");

    // Revoked at the provider; once the cached answer is gone (its age bound is tested on
    // tokio's paused clock in the unit tests), the provider's answer refuses it.
    idp.revoke(&token);
    introspection.clear_cache();
    assert_inactive(&rt.block_on(send(&app, &token)), "revoked");
    assert_eq!(client.posts(), 2);

    assert_inactive(
        &rt.block_on(send(&app, "made-up-opaque-token-0123456789abcdefghijk")),
        "made up",
    );

    // client_secret_post: the same credentials in the form body.
    let post_client = Counting::new(Duration::from_secs(5));
    let authenticator = BearerAuthenticator::builder()
        .introspection(
            idp.introspection(Arc::clone(&post_client))
                .client_secret_post()
                .build()
                .expect("introspection settings"),
        )
        .build()
        .expect("authenticator settings");
    let app = self::app(authenticator);
    let token = idp.token(OPAQUE_API);
    let reply = rt.block_on(send(&app, &token));
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "client_secret_post: {reply:?}"
    );
    assert_eq!(reply.body["subject"], "resource-client");
    assert_eq!(post_client.posts(), 1);

    // Wrong credentials are the endpoint's problem, not the token's: 503.
    let wrong = Counting::new(Duration::from_secs(5));
    let authenticator = BearerAuthenticator::builder()
        .introspection(
            Introspection::builder(
                format!("{}/token/introspection", idp.issuer),
                "api-introspector",
                "wrong-secret",
            )
            .audience(OPAQUE_API)
            .http_client(wrong)
            .build()
            .expect("introspection settings"),
        )
        .build()
        .expect("authenticator settings");
    assert_unavailable(
        &rt.block_on(send(&self::app(authenticator), &token)),
        "wrong client secret",
    );
}

// ---------------------------------------------------------------------------------------
// A misbehaving endpoint
// ---------------------------------------------------------------------------------------

const ACTIVE: u8 = 0;
const SLOW: u8 = 1;
const GARBAGE: u8 = 2;
const STRING_ACTIVE: u8 = 3;
const HTML: u8 = 4;
const ERROR_STATUS: u8 = 5;

#[derive(Default)]
struct Endpoint {
    mode: AtomicU8,
    hits: AtomicUsize,
}

async fn introspect(State(endpoint): State<Arc<Endpoint>>) -> axum::response::Response {
    endpoint.hits.fetch_add(1, Ordering::SeqCst);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
        + 300;
    let active =
        json!({"active": true, "sub": "alice", "aud": FAKE_AUDIENCE, "scope": "a b", "exp": exp});
    match endpoint.mode.load(Ordering::SeqCst) {
        ACTIVE => {
            // Long enough for concurrent requests to pile up behind the first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Json(active).into_response()
        }
        SLOW => {
            // Past the client's 3 s timeout in `a_misbehaving_endpoint_…`.
            tokio::time::sleep(Duration::from_secs(10)).await;
            Json(active).into_response()
        }
        GARBAGE => ([("content-type", "application/json")], "{\"active\": tru").into_response(),
        STRING_ACTIVE => Json(json!({"active": "true", "sub": "alice"})).into_response(),
        HTML => (
            [("content-type", "text/html")],
            "<html>{\"active\":true}</html>",
        )
            .into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"active": true})),
        )
            .into_response(),
    }
}

/// Starts the endpoint on the runtime; returns its URL.
async fn serve(endpoint: Arc<Endpoint>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = Router::new()
        .route("/introspect", post(introspect))
        .with_state(endpoint);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}/introspect")
}

fn authenticator_for(url: &str, client: Arc<Counting>) -> BearerAuthenticator {
    BearerAuthenticator::builder()
        .introspection(
            Introspection::builder(url, "gateway", "gateway-secret")
                .audience(FAKE_AUDIENCE)
                .http_client(client)
                .negative_cache(Duration::ZERO)
                .build()
                .expect("introspection settings"),
        )
        .build()
        .expect("authenticator settings")
}

#[test]
fn a_misbehaving_endpoint_gives_503_and_cached_tokens_keep_working() {
    let rt = runtime();
    let endpoint = Arc::new(Endpoint::default());
    let url = rt.block_on(serve(Arc::clone(&endpoint)));
    // Far above the endpoint's 200 ms for a good answer, far below its slow mode's 10 s.
    let client = Counting::new(Duration::from_secs(3));
    let app = app(authenticator_for(&url, Arc::clone(&client)));

    let reply = rt.block_on(send(&app, "cached-token"));
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["subject"], "alice");

    endpoint.mode.store(SLOW, Ordering::SeqCst);
    assert_unavailable(&rt.block_on(send(&app, "slow-token")), "slow");
    let reply = rt.block_on(send(&app, "cached-token"));
    assert_eq!(reply.status, StatusCode::OK, "cached while slow: {reply:?}");

    endpoint.mode.store(GARBAGE, Ordering::SeqCst);
    assert_unavailable(&rt.block_on(send(&app, "garbage-token")), "garbage");
    endpoint.mode.store(HTML, Ordering::SeqCst);
    assert_unavailable(&rt.block_on(send(&app, "html-token")), "html");
    endpoint.mode.store(ERROR_STATUS, Ordering::SeqCst);
    assert_unavailable(&rt.block_on(send(&app, "error-token")), "500");
    endpoint.mode.store(STRING_ACTIVE, Ordering::SeqCst);
    assert_inactive(&rt.block_on(send(&app, "string-token")), "active: \"true\"");

    let reply = rt.block_on(send(&app, "cached-token"));
    assert_eq!(reply.status, StatusCode::OK, "cached at the end: {reply:?}");
}

#[test]
fn a_down_endpoint_gives_503() {
    let rt = runtime();
    // A port bound for the whole test and never listened on: connections are refused, and
    // no other test's server can take the port meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("a free loopback port");
    let address = socket.local_addr().expect("its address");
    let url = format!("http://{address}/introspect");
    let app = app(authenticator_for(
        &url,
        Counting::new(Duration::from_secs(2)),
    ));
    assert_unavailable(&rt.block_on(send(&app, "some-token")), "down");
    drop(socket);
}

#[test]
fn concurrent_requests_with_one_new_token_share_one_introspection() {
    let rt = runtime();
    let endpoint = Arc::new(Endpoint::default());
    let url = rt.block_on(serve(Arc::clone(&endpoint)));
    let app = app(authenticator_for(
        &url,
        Counting::new(Duration::from_secs(5)),
    ));

    let replies = rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, "shared-token").await })
            })
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.expect("task"));
        }
        replies
    });
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Bounds on the calls anonymous callers can cause
// ---------------------------------------------------------------------------------------

/// The one token this endpoint says is active; every other token is inactive.
const GENUINE: &str = "genuine-opaque-token-4f0c2a9e";

/// An introspection endpoint that counts its calls and the peak number in flight, and
/// that can hold every answer until the test opens its gate.
struct Flood {
    hits: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    hold: std::sync::atomic::AtomicBool,
    gate: tokio::sync::Semaphore,
    /// The number of calls in flight, for a test to wait on.
    entered: tokio::sync::watch::Sender<usize>,
}

impl Default for Flood {
    fn default() -> Self {
        Self {
            hits: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            hold: std::sync::atomic::AtomicBool::new(false),
            gate: tokio::sync::Semaphore::new(0),
            entered: tokio::sync::watch::Sender::new(0),
        }
    }
}

async fn flood_introspect(State(endpoint): State<Arc<Flood>>, body: String) -> Json<Value> {
    endpoint.hits.fetch_add(1, Ordering::SeqCst);
    let now = endpoint.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    endpoint.peak.fetch_max(now, Ordering::SeqCst);
    endpoint.entered.send_replace(now);
    if endpoint.hold.load(Ordering::SeqCst)
        && let Ok(permit) = endpoint.gate.acquire().await
    {
        permit.forget();
    }
    endpoint.in_flight.fetch_sub(1, Ordering::SeqCst);
    let genuine = body
        .split('&')
        .any(|pair| pair == format!("token={GENUINE}"));
    if genuine {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
            + 300;
        Json(json!({"active": true, "sub": "alice", "aud": FAKE_AUDIENCE, "exp": exp}))
    } else {
        Json(json!({"active": false}))
    }
}

async fn serve_flood(endpoint: Arc<Flood>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = Router::new()
        .route("/introspect", post(flood_introspect))
        .with_state(endpoint);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}/introspect")
}

/// A token no one issued: distinct for each `n`, and of a plausible length.
fn made_up_token(n: u64) -> String {
    // splitmix64, so the tokens look unrelated to each other.
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("flood{n:05}{x:016x}{:016x}", x.rotate_left(17))
}

fn assert_overloaded(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {reply:?}"
    );
    let retry_after = reply
        .retry_after
        .as_deref()
        .and_then(|s| s.parse::<u32>().ok());
    assert!(
        retry_after.is_some_and(|seconds| (1..=60).contains(&seconds)),
        "{what}: {reply:?}"
    );
}

#[test]
fn a_flood_of_made_up_tokens_stays_within_the_call_budget() {
    const BURST: u64 = 20;
    const PER_SECOND: f64 = 20.0;
    const FLOOD: u64 = 300;
    let rt = runtime();
    let endpoint = Arc::new(Flood::default());
    let url = rt.block_on(serve_flood(Arc::clone(&endpoint)));
    let introspection = Introspection::builder(url, "gateway", "gateway-secret")
        .audience(FAKE_AUDIENCE)
        .http_client(Counting::new(Duration::from_secs(5)))
        .call_budget(BURST as u32, Duration::from_secs(1))
        .build()
        .expect("introspection settings");
    let app = app(BearerAuthenticator::builder()
        .introspection(introspection.clone())
        .build()
        .expect("authenticator settings"));

    let start = std::time::Instant::now();
    let reply = rt.block_on(send(&app, GENUINE));
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    // The flood, with the genuine caller's requests among it.
    let (floods, genuines) = rt.block_on(async {
        let floods: Vec<_> = (0..FLOOD)
            .map(|n| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, &made_up_token(n)).await })
            })
            .collect();
        let genuines: Vec<_> = (0..20)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, GENUINE).await })
            })
            .collect();
        let mut flood_replies = Vec::new();
        for task in floods {
            flood_replies.push(task.await.expect("task"));
        }
        let mut genuine_replies = Vec::new();
        for task in genuines {
            genuine_replies.push(task.await.expect("task"));
        }
        (flood_replies, genuine_replies)
    });
    let elapsed = start.elapsed().as_secs_f64();

    let calls = endpoint.hits.load(Ordering::SeqCst) as u64;
    let allowed = BURST + (elapsed * PER_SECOND).ceil() as u64;
    assert!(
        calls <= allowed,
        "{calls} calls in {elapsed:.3} s; the budget allows {allowed}"
    );
    let mut refused = 0;
    for reply in &floods {
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_overloaded(reply, "flood");
            refused += 1;
        } else {
            assert_inactive(reply, "flood");
        }
    }
    for reply in &genuines {
        assert_eq!(reply.status, StatusCode::OK, "genuine: {reply:?}");
    }
    // Every made-up token was either sent once or refused without a call.
    assert_eq!(calls, 1 + FLOOD - refused);
    let stats = introspection.stats();
    assert_eq!(stats.calls, calls);
    assert_eq!(stats.refused_busy + stats.refused_over_budget, refused);
    assert_eq!(stats.cache_hits, 20);
}

#[test]
fn concurrent_new_tokens_beyond_the_bound_get_503_at_once() {
    const MAX_CONCURRENT: usize = 8;
    const REQUESTS: u64 = 200;
    let rt = runtime();
    let endpoint = Arc::new(Flood::default());
    let url = rt.block_on(serve_flood(Arc::clone(&endpoint)));
    let introspection = Introspection::builder(url, "gateway", "gateway-secret")
        .audience(FAKE_AUDIENCE)
        .http_client(Counting::new(Duration::from_secs(10)))
        .max_concurrent(MAX_CONCURRENT)
        // Generous, so that only the concurrency bound refuses.
        .call_budget(10_000, Duration::from_secs(1))
        .build()
        .expect("introspection settings");
    let app = app(BearerAuthenticator::builder()
        .introspection(introspection.clone())
        .build()
        .expect("authenticator settings"));
    let reply = rt.block_on(send(&app, GENUINE));
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    // From now on the endpoint holds every answer until the gate opens.
    endpoint.hold.store(true, Ordering::SeqCst);
    let (sender, mut replies) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let app = app.clone();
            let sender = sender.clone();
            rt.spawn(async move {
                let _ = sender.send(send(&app, &made_up_token(n)).await);
            })
        })
        .collect();

    // All but MAX_CONCURRENT are refused at once, while the calls are still held: if the
    // refused requests waited for a permit, they would never arrive here.
    let refused = rt.block_on(async {
        let mut refused = Vec::new();
        while refused.len() < REQUESTS as usize - MAX_CONCURRENT {
            let reply = tokio::time::timeout(CALL_TIMEOUT, replies.recv())
                .await
                .expect("refusals arrive while the calls are held")
                .expect("a reply");
            refused.push(reply);
        }
        refused
    });
    for reply in &refused {
        assert_overloaded(reply, "beyond max_concurrent");
        assert_eq!(reply.retry_after.as_deref(), Some("1"), "{reply:?}");
    }
    // The calls that hold a permit reach the endpoint (connections take a moment).
    let mut entered = endpoint.entered.subscribe();
    rt.block_on(async {
        tokio::time::timeout(CALL_TIMEOUT, entered.wait_for(|&n| n == MAX_CONCURRENT))
            .await
            .expect("the permitted calls reach the endpoint")
            .map(|_| ())
            .expect("the endpoint is alive");
    });

    // The genuine, cached token keeps working while every permit is taken.
    let reply = rt.block_on(send(&app, GENUINE));
    assert_eq!(reply.status, StatusCode::OK, "cached while busy: {reply:?}");

    endpoint.gate.add_permits(REQUESTS as usize);
    rt.block_on(async {
        for task in tasks {
            task.await.expect("task");
        }
    });
    drop(sender);
    let mut answered = 0;
    while let Ok(reply) = replies.try_recv() {
        assert_inactive(&reply, "held, then answered");
        answered += 1;
    }
    assert_eq!(answered, MAX_CONCURRENT);
    assert_eq!(endpoint.peak.load(Ordering::SeqCst), MAX_CONCURRENT);
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1 + MAX_CONCURRENT);
    let stats = introspection.stats();
    assert_eq!(stats.refused_busy, REQUESTS - MAX_CONCURRENT as u64);
    assert_eq!(stats.calls, 1 + MAX_CONCURRENT as u64);
}

#[test]
fn malformed_and_short_tokens_are_refused_without_a_call() {
    let rt = runtime();
    let endpoint = Arc::new(Flood::default());
    let url = rt.block_on(serve_flood(Arc::clone(&endpoint)));
    let app = app(authenticator_for(
        &url,
        Counting::new(Duration::from_secs(5)),
    ));
    for token in ["a", "abc", "1234567"] {
        let reply = rt.block_on(send(&app, token));
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}: {reply:?}");
        let challenge = reply.challenge.as_deref().unwrap_or_default();
        assert!(
            challenge.contains(r#"error="invalid_token""#)
                && challenge.contains("The token is malformed."),
            "{token}: {challenge}"
        );
    }
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 0);
}

/// Introspection-cache lookups are counted through the `metrics` facade (a debugging
/// recorder, current on the one thread that runs every task here).
#[cfg(feature = "metrics")]
#[test]
fn introspection_cache_hits_and_misses_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let endpoint = Arc::new(Endpoint::default());
            let url = serve(endpoint.clone()).await;
            let app = app(authenticator_for(
                &url,
                Counting::new(Duration::from_secs(5)),
            ));
            for _ in 0..3 {
                let reply = send(&app, "cached-token").await;
                assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            }
            assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1);
        });
    });
    let mut lookups = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != "portcullis.introspection.cache" {
            continue;
        }
        let result = key
            .key()
            .labels()
            .find(|label| label.key() == "result")
            .map(|label| label.value().to_owned())
            .unwrap_or_default();
        if let DebugValue::Counter(count) = value {
            lookups.insert(result, count);
        }
    }
    assert_eq!(lookups.get("hit"), Some(&2), "{lookups:?}");
    assert_eq!(lookups.get("miss"), Some(&1), "{lookups:?}");
}
