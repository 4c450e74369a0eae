//! Remote JWKS against a hand-written fault-injection server: outages, slowness, garbage,
//! floods, rotation, redirects, size caps and discovery.

#[allow(dead_code, unreachable_pub)] // Shared with tests/bearer; this binary uses part of it.
#[path = "bearer/support.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use jsonwebtoken::jwk::Jwk;
use portcullis::ConfigError;
use portcullis::bearer::{BearerAuthenticator, BearerLayer, IssuerRules};
use portcullis::remote::{HttpClient, RemoteError, ReqwestClient};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt, service_fn};

use support::*;

/// How the server answers `/jwks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Good,
    Down,
    Slow,
    Garbage,
    Empty,
    Truncated,
    Html,
    Huge,
    HugeChunked,
    RedirectOther,
    RedirectSame,
}

struct Fault {
    mode: Mutex<Mode>,
    keys: Mutex<Vec<Value>>,
    max_age: Mutex<Option<u64>>,
    hits: AtomicUsize,
    base: Mutex<String>,
    /// The discovery document's `issuer`, and whether `openid-configuration` is missing.
    discovery_issuer: Mutex<Option<String>>,
    oidc_missing: Mutex<bool>,
    slow: Mutex<Duration>,
}

struct Server {
    state: Arc<Fault>,
    base: String,
    /// Serve through this client instead of over TCP (tests that run on tokio's paused
    /// clock, where a real socket would let timers fire while it waits).
    in_process: Option<Arc<dyn HttpClient>>,
}

impl Server {
    fn state(mode: Mode, keys: Vec<Value>) -> Arc<Fault> {
        Arc::new(Fault {
            mode: Mutex::new(mode),
            keys: Mutex::new(keys),
            max_age: Mutex::new(None),
            hits: AtomicUsize::new(0),
            base: Mutex::new(String::new()),
            discovery_issuer: Mutex::new(None),
            oidc_missing: Mutex::new(false),
            slow: Mutex::new(Duration::from_secs(5)),
        })
    }

    /// The same faults answered in the process, through an [`HttpClient`] of their own.
    fn in_process(mode: Mode, keys: Vec<Value>) -> Self {
        let state = Self::state(mode, keys);
        let base = "http://127.0.0.1:9".to_owned();
        *state.base.lock().unwrap() = base.clone();
        let client: Arc<dyn HttpClient> = Arc::new(InProcess(state.clone()));
        Self {
            state,
            base,
            in_process: Some(client),
        }
    }

    async fn start(mode: Mode, keys: Vec<Value>) -> Self {
        let state = Self::state(mode, keys);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        *state.base.lock().unwrap() = base.clone();
        let app = Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            state,
            base,
            in_process: None,
        }
    }

    /// The client to fetch with: over TCP with a `timeout_ms` bound, or in the process.
    fn client(&self, timeout_ms: u64) -> Arc<dyn HttpClient> {
        match &self.in_process {
            Some(client) => client.clone(),
            None => client(timeout_ms),
        }
    }

    fn url(&self) -> String {
        format!("{}/jwks", self.base)
    }
    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }
    fn set_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().unwrap() = keys;
    }
    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

fn reply(status: u16, content_type: &str, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .expect("response")
}

async fn handle(State(state): State<Arc<Fault>>, uri: Uri) -> Response<Body> {
    let base = state.base.lock().unwrap().clone();
    match uri.path() {
        "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server" => {
            let oidc = uri.path().ends_with("openid-configuration");
            if oidc && *state.oidc_missing.lock().unwrap() {
                return reply(404, "text/plain", "not found");
            }
            let issuer = state.discovery_issuer.lock().unwrap().clone();
            let issuer = issuer.unwrap_or_else(|| base.clone());
            let doc = json!({ "issuer": issuer, "jwks_uri": format!("{base}/jwks") });
            return reply(200, "application/json; charset=utf-8", doc.to_string());
        }
        "/jwks" | "/jwks2" => {}
        _ => return reply(404, "text/plain", "not found"),
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    let keys = state.keys.lock().unwrap().clone();
    let good = json!({ "keys": keys }).to_string();
    match mode {
        Mode::Good => {
            let mut response = reply(200, "application/jwk-set+json", good);
            if let Some(age) = *state.max_age.lock().unwrap() {
                response.headers_mut().insert(
                    "cache-control",
                    format!("public, max-age={age}").parse().unwrap(),
                );
            }
            response
        }
        Mode::Down => reply(503, "text/plain", "down"),
        Mode::Slow => {
            let delay = *state.slow.lock().unwrap();
            tokio::time::sleep(delay).await;
            reply(200, "application/json", good)
        }
        Mode::Garbage => reply(200, "application/json", "\u{0}\u{1}not json at all"),
        Mode::Empty => reply(200, "application/json", r#"{"keys":[]}"#),
        Mode::Truncated => reply(200, "application/json", good[..good.len() / 2].to_owned()),
        Mode::Html => reply(200, "text/html", "<html>login</html>"),
        Mode::Huge => reply(200, "application/json", " ".repeat(2 * 1024 * 1024) + &good),
        Mode::HugeChunked => {
            let chunks =
                (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 64 * 1024])));
            reply(
                200,
                "application/json",
                Body::from_stream(futures_util::stream::iter(chunks)),
            )
        }
        Mode::RedirectOther => {
            let port = base.rsplit(':').next().unwrap_or_default().to_owned();
            Response::builder()
                .status(302)
                .header("location", format!("http://localhost:{port}/jwks2"))
                .body(Body::empty())
                .unwrap()
        }
        Mode::RedirectSame => {
            if uri.path() == "/jwks2" {
                reply(200, "application/json", good)
            } else {
                Response::builder()
                    .status(302)
                    .header("location", "/jwks2")
                    .body(Body::empty())
                    .unwrap()
            }
        }
    }
}

/// Answers like the TCP server, for the modes that need no HTTP machinery. A slow answer
/// waits out the client timeout an HTTP client would have (1.5 s, on tokio's clock) and
/// fails as a timeout.
struct InProcess(Arc<Fault>);

impl HttpClient for InProcess {
    fn get(&self, url: &str, _accept: &[&str]) -> portcullis::remote::HttpFuture<'_> {
        let path = url
            .strip_prefix("http://127.0.0.1:9")
            .unwrap_or(url)
            .to_owned();
        Box::pin(async move {
            let state = &self.0;
            if path == "/jwks" {
                state.hits.fetch_add(1, Ordering::SeqCst);
            }
            let mode = *state.mode.lock().unwrap();
            let keys = state.keys.lock().unwrap().clone();
            let max_age = *state.max_age.lock().unwrap();
            let good = json!({ "keys": keys }).to_string();
            let (status, content_type, body) = match (path.as_str(), mode) {
                ("/jwks", Mode::Good) => (200, "application/jwk-set+json", good),
                ("/jwks", Mode::Down) => (503, "text/plain", "down".to_owned()),
                ("/jwks", Mode::Slow) => {
                    let slow = *state.slow.lock().unwrap();
                    tokio::time::sleep(slow.min(Duration::from_millis(1500))).await;
                    return Err(RemoteError::Timeout);
                }
                ("/jwks", Mode::Garbage) => (200, "application/json", "not json".to_owned()),
                ("/jwks", Mode::Empty) => (200, "application/json", r#"{"keys":[]}"#.to_owned()),
                ("/jwks", Mode::Html) => (200, "text/html", "<html>login</html>".to_owned()),
                ("/jwks", other) => panic!("{other:?} needs the TCP server"),
                ("/.well-known/openid-configuration", _) => (
                    200,
                    "application/json",
                    json!({"issuer": "http://127.0.0.1:9", "jwks_uri": "http://127.0.0.1:9/jwks"})
                        .to_string(),
                ),
                _ => (404, "text/plain", "not found".to_owned()),
            };
            Ok(
                portcullis::remote::HttpResponse::new(status, Some(content_type), body)
                    .with_max_age(max_age.map(Duration::from_secs)),
            )
        })
    }

    fn post_form(
        &self,
        _: &str,
        _: &[(&str, &str)],
        _: Option<(&str, &str)>,
        _: &[&str],
    ) -> portcullis::remote::HttpFuture<'_> {
        Box::pin(async { Err(RemoteError::Timeout) })
    }
}

fn jwk(signer: &Signer, kid: &str) -> Value {
    portcullis::bearer::select_crypto_backend();
    let mut value =
        serde_json::to_value(Jwk::from_encoding_key(&signer.key, signer.alg).expect("jwk"))
            .expect("json");
    value["kid"] = json!(kid);
    value
}

fn good_keys() -> Vec<Value> {
    vec![jwk(&rsa(), "rsa-1"), jwk(&es256(), "ec-1")]
}

/// The fetch timeout of the tests' clients over TCP: a bound on a hung exchange, far above
/// what a loaded 2-core machine takes to answer on loopback (no test here waits it out: the
/// slow server is in-process, on the paused clock).
const FETCH_TIMEOUT_MS: u64 = 10_000;

fn client(timeout_ms: u64) -> Arc<dyn HttpClient> {
    Arc::new(
        ReqwestClient::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .build()
            .expect("client"),
    )
}

fn rules_for(server: &Server, timeout_ms: u64) -> IssuerRules {
    IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .jwks_url(server.url())
        .http_client(server.client(timeout_ms))
        .jwks_cooldown(Duration::from_millis(200))
        .build()
        .expect("rules")
}

fn authenticator(rules: &IssuerRules) -> BearerAuthenticator {
    BearerAuthenticator::builder()
        .issuer(rules.clone())
        .no_cache()
        .build()
        .expect("authenticator")
}

/// A token from `signer` with kid `kid` and subject `sub`.
fn token(signer: &Signer, kid: &'static str, sub: &str) -> String {
    let signer = Signer {
        kid: Some(kid),
        ..signer.clone()
    };
    let mut claims = claims();
    claims["sub"] = json!(sub);
    mint(&signer, &claims)
}

/// Sends `token` through a `BearerLayer`: the status and the `Retry-After` header.
async fn send(auth: &BearerAuthenticator, token: &str) -> (StatusCode, Option<String>) {
    let service = ServiceBuilder::new()
        .layer(BearerLayer::new(auth.clone()))
        .service(service_fn(|_: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }));
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), service.oneshot(request))
        .await
        .expect("answered within 10 s")
        .expect("infallible");
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status(), retry)
}

/// Waits (at most 10 s, on tokio's clock: virtual in paused-clock tests) for `condition`.
async fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

async fn ready_authenticator(server: &Server) -> (IssuerRules, BearerAuthenticator) {
    let rules = rules_for(server, FETCH_TIMEOUT_MS);
    let auth = authenticator(&rules);
    assert!(
        wait_for(|| auth.is_ready()).await,
        "keys load in the background"
    );
    (rules, auth)
}

#[tokio::test(start_paused = true)]
async fn down_at_start_gives_503_then_recovers() {
    let server = Server::in_process(Mode::Down, good_keys());
    let rules = rules_for(&server, FETCH_TIMEOUT_MS);
    let auth = authenticator(&rules);
    assert!(wait_for(|| server.hits() >= 1).await);
    let (status, retry) = send(&auth, &token(&rsa(), "rsa-1", "alice")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("5"));
    assert!(!auth.is_ready());

    server.set_mode(Mode::Good);
    let mut recovered = false;
    for _ in 0..100 {
        if send(&auth, &token(&rsa(), "rsa-1", "alice")).await.0 == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recovered,
        "a refetch after the server comes up loads the keys"
    );
    assert!(auth.is_ready());
}

#[tokio::test(start_paused = true)]
async fn down_after_a_good_fetch_keeps_the_stale_keys() {
    let server = Server::in_process(Mode::Good, good_keys());
    let (rules, auth) = ready_authenticator(&server).await;
    assert_eq!(
        send(&auth, &token(&rsa(), "rsa-1", "a")).await.0,
        StatusCode::OK
    );

    server.set_mode(Mode::Down);
    let jwks = rules.jwks().expect("remote");
    assert!(matches!(
        jwks.refresh_now().await,
        Err(RemoteError::Status { status: 503 })
    ));
    // An unknown kid also triggers a (failing) refetch; the good keys stay.
    tokio::time::advance(Duration::from_millis(250)).await;
    let before = server.hits();
    assert_eq!(
        send(&auth, &token(&rsa(), "nope", "a")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.hits(), before + 1);
    assert!(auth.is_ready());
    for sub in ["b", "c"] {
        assert_eq!(
            send(&auth, &token(&rsa(), "rsa-1", sub)).await.0,
            StatusCode::OK
        );
        assert_eq!(
            send(&auth, &token(&es256(), "ec-1", sub)).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test(start_paused = true)]
async fn max_stale_bounds_the_stale_keys() {
    let server = Server::in_process(Mode::Good, good_keys());
    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .jwks_url(server.url())
        .http_client(server.client(FETCH_TIMEOUT_MS))
        .jwks_cooldown(Duration::from_millis(200))
        .max_stale(Duration::from_millis(400))
        .build()
        .expect("rules");
    let auth = authenticator(&rules);
    assert!(wait_for(|| auth.is_ready()).await);
    server.set_mode(Mode::Down);
    assert!(wait_for(|| !auth.is_ready()).await, "too stale: unusable");
    let (status, retry) = send(&auth, &token(&rsa(), "rsa-1", "a")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("5"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_server_does_not_hold_up_requests_with_cached_keys() {
    let server = Server::in_process(Mode::Good, good_keys());
    *server.state.slow.lock().unwrap() = Duration::from_secs(4);
    let rules = rules_for(&server, 1500);
    let auth = authenticator(&rules);
    assert!(wait_for(|| auth.is_ready()).await);
    server.set_mode(Mode::Slow);
    tokio::time::advance(Duration::from_millis(250)).await;

    // This one waits for a refetch that times out.
    let waiting = {
        let auth = auth.clone();
        tokio::spawn(async move { send(&auth, &token(&rsa(), "new-kid", "x")).await.0 })
    };
    assert!(
        wait_for(|| server.hits() >= 2).await,
        "the refetch is in flight"
    );
    for sub in 0..20 {
        let answer = tokio::time::timeout(
            Duration::from_millis(1000),
            send(&auth, &token(&rsa(), "rsa-1", &sub.to_string())),
        )
        .await
        .expect("requests with known keys do not wait for the fetch");
        assert_eq!(answer.0, StatusCode::OK);
    }
    assert_eq!(waiting.await.expect("task"), StatusCode::UNAUTHORIZED);
    assert!(auth.is_ready());
}

#[tokio::test]
async fn bad_answers_are_failed_fetches() {
    for mode in [
        Mode::Garbage,
        Mode::Empty,
        Mode::Truncated,
        Mode::Html,
        Mode::Down,
    ] {
        // With a good set loaded: the set is kept.
        let server = Server::start(Mode::Good, good_keys()).await;
        let (rules, auth) = ready_authenticator(&server).await;
        server.set_mode(mode);
        let error = rules.jwks().expect("remote").refresh_now().await;
        assert!(error.is_err(), "{mode:?}");
        assert!(auth.is_ready(), "{mode:?}");
        assert_eq!(
            send(&auth, &token(&rsa(), "rsa-1", "a")).await.0,
            StatusCode::OK,
            "{mode:?}"
        );

        // With nothing loaded: 503.
        let server = Server::start(mode, good_keys()).await;
        let rules = rules_for(&server, FETCH_TIMEOUT_MS);
        let auth = authenticator(&rules);
        assert!(wait_for(|| server.hits() >= 1).await, "{mode:?}");
        let (status, retry) = send(&auth, &token(&rsa(), "rsa-1", "a")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{mode:?}");
        assert_eq!(retry.as_deref(), Some("5"), "{mode:?}");
        assert!(!auth.is_ready(), "{mode:?}");
    }
}

#[tokio::test]
async fn specific_failure_kinds() {
    let server = Server::start(Mode::Html, good_keys()).await;
    let rules = rules_for(&server, FETCH_TIMEOUT_MS);
    let jwks = rules.jwks().expect("remote").clone();
    assert!(matches!(
        jwks.refresh_now().await,
        Err(RemoteError::ContentType { .. })
    ));
    server.set_mode(Mode::Empty);
    assert!(matches!(
        jwks.refresh_now().await,
        Err(RemoteError::KeySet(_))
    ));
    server.set_mode(Mode::Garbage);
    assert!(matches!(
        jwks.refresh_now().await,
        Err(RemoteError::KeySet(_))
    ));
    assert!(!jwks.is_ready());
}

#[tokio::test]
async fn a_set_with_some_bad_keys_uses_the_good_ones() {
    let mut enc = jwk(&rsa_other(), "enc");
    enc["use"] = json!("enc");
    let weak: Value = serde_json::from_str(RSA1024_JWK).expect("fixture");
    let keys = vec![
        json!({"kty": "nonsense"}),
        enc,
        weak,
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hs"}),
        jwk(&rsa(), "rsa-1"),
        json!(42),
    ];
    let server = Server::start(Mode::Good, keys).await;
    let (_rules, auth) = ready_authenticator(&server).await;
    assert_eq!(
        send(&auth, &token(&rsa(), "rsa-1", "a")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&auth, &token(&rsa_other(), "enc", "a")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_unknown_kids_fetches_at_most_twice() {
    let server = Server::in_process(Mode::Good, good_keys());
    let (_rules, auth) = ready_authenticator(&server).await;
    tokio::time::advance(Duration::from_millis(250)).await;
    let before = server.hits();
    let kids = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let auth = auth.clone();
            let token = token(&rsa(), kids[i % kids.len()], "flood");
            tokio::spawn(async move { send(&auth, &token).await.0 })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), StatusCode::UNAUTHORIZED);
    }
    let fetched = server.hits() - before;
    assert!((1..=2).contains(&fetched), "{fetched} fetches");
}

#[tokio::test(start_paused = true)]
async fn many_requests_at_expiry_fetch_once() {
    let server = Server::in_process(Mode::Good, good_keys());
    *server.state.max_age.lock().unwrap() = Some(0);
    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .jwks_url(server.url())
        .http_client(server.client(FETCH_TIMEOUT_MS))
        .jwks_cooldown(Duration::from_millis(200))
        .jwks_min_refresh(Duration::from_secs(2))
        .build()
        .expect("rules");
    let auth = authenticator(&rules);
    assert!(wait_for(|| auth.is_ready()).await);
    assert_eq!(server.hits(), 1);
    // Just past expiry (max-age 0, clamped up to the 2 s minimum).
    tokio::time::advance(Duration::from_millis(2100)).await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let auth = auth.clone();
            let token = token(&rsa(), "rsa-1", &i.to_string());
            tokio::spawn(async move { send(&auth, &token).await.0 })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), StatusCode::OK);
    }
    tokio::time::advance(Duration::from_millis(300)).await;
    assert_eq!(server.hits(), 2, "one refresh at expiry");
}

#[tokio::test(start_paused = true)]
async fn key_rotation_is_picked_up_by_one_refetch() {
    let server = Server::in_process(Mode::Good, vec![jwk(&rsa(), "rsa-1")]);
    let rules = rules_for(&server, FETCH_TIMEOUT_MS);
    // With the token cache on: entries verified with a removed key must go.
    let auth = BearerAuthenticator::new(rules.clone());
    assert!(wait_for(|| auth.is_ready()).await);
    let old = token(&rsa(), "rsa-1", "old");
    assert_eq!(send(&auth, &old).await.0, StatusCode::OK);
    assert_eq!(send(&auth, &old).await.0, StatusCode::OK);

    server.set_keys(vec![jwk(&rsa(), "rsa-1"), jwk(&rsa_other(), "rsa-2")]);
    tokio::time::advance(Duration::from_millis(250)).await;
    let before = server.hits();
    let new = token(&rsa_other(), "rsa-2", "new");
    assert_eq!(send(&auth, &new).await.0, StatusCode::OK);
    assert_eq!(server.hits(), before + 1, "one refetch");
    assert_eq!(send(&auth, &new).await.0, StatusCode::OK);
    assert_eq!(server.hits(), before + 1, "no more fetches");

    // The old key is withdrawn: the cached verification goes with it.
    server.set_keys(vec![jwk(&rsa_other(), "rsa-2")]);
    rules
        .jwks()
        .expect("remote")
        .refresh_now()
        .await
        .expect("refresh");
    assert_eq!(send(&auth, &old).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&auth, &new).await.0, StatusCode::OK);
}

#[tokio::test]
async fn redirects_to_another_origin_are_refused() {
    let server = Server::start(Mode::RedirectOther, good_keys()).await;
    let rules = rules_for(&server, FETCH_TIMEOUT_MS);
    let jwks = rules.jwks().expect("remote").clone();
    assert!(matches!(
        jwks.refresh_now().await,
        Err(RemoteError::Redirect)
    ));
    assert_eq!(server.hits(), 1, "the other origin was never asked");
    let auth = authenticator(&rules);
    assert_eq!(
        send(&auth, &token(&rsa(), "rsa-1", "a")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    server.set_mode(Mode::RedirectSame);
    jwks.refresh_now().await.expect("same-origin redirect");
    assert_eq!(
        send(&auth, &token(&rsa(), "rsa-1", "a")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn responses_over_the_cap_are_refused() {
    for mode in [Mode::Huge, Mode::HugeChunked] {
        let server = Server::start(mode, good_keys()).await;
        let rules = rules_for(&server, FETCH_TIMEOUT_MS);
        let jwks = rules.jwks().expect("remote").clone();
        assert!(
            matches!(jwks.refresh_now().await, Err(RemoteError::TooLarge { .. })),
            "{mode:?}"
        );
        assert!(!jwks.is_ready());
    }
}

#[test]
fn url_rule_and_key_sources_are_checked_at_build_time() {
    let build = |builder: portcullis::bearer::IssuerRulesBuilder| builder.build().err();
    let base = || IssuerRules::builder(ISSUER).audience(AUDIENCE);
    assert!(matches!(
        build(base().jwks_url("http://idp.example/jwks")),
        Some(ConfigError::InvalidUrl { .. })
    ));
    assert!(matches!(
        build(base().jwks_url("ftp://idp.example/jwks")),
        Some(ConfigError::InvalidUrl { .. })
    ));
    assert!(matches!(
        build(
            IssuerRules::builder("http://idp.example")
                .audience(AUDIENCE)
                .discover()
        ),
        Some(ConfigError::InvalidUrl { .. })
    ));
    assert!(
        build(
            base()
                .jwks_url("http://idp.example/jwks")
                .insecure_allow_http()
        )
        .is_none()
    );
    assert!(build(base().jwks_url("http://127.0.0.1:1/jwks")).is_none());
    assert!(build(base().jwks_url("http://[::1]:1/jwks")).is_none());
    assert!(build(base().jwks_url("https://idp.example/jwks")).is_none());
    assert!(matches!(
        build(base().jwks_url("https://idp.example/jwks").discover()),
        Some(ConfigError::ConflictingKeySources { .. })
    ));
    assert!(matches!(
        build(base().keys(keys()).discover()),
        Some(ConfigError::ConflictingKeySources { .. })
    ));
    assert!(matches!(
        build(base()),
        Some(ConfigError::MissingKeys { .. })
    ));
    assert!(matches!(
        build(
            base()
                .jwks_url("https://idp.example/jwks")
                .algorithms([portcullis::bearer::Algorithm::HS256])
        ),
        Some(ConfigError::AlgorithmWithoutKey { .. })
    ));
    assert!(matches!(
        build(
            base()
                .jwks_url("https://idp.example/jwks")
                .jwks_cooldown(Duration::ZERO)
        ),
        Some(ConfigError::InvalidLimit { .. })
    ));
    // A withdrawn key must not stay trusted without bound while refreshes fail.
    assert!(matches!(
        build(
            base()
                .jwks_url("https://idp.example/jwks")
                .max_stale(Duration::from_secs(8 * 24 * 3600))
        ),
        Some(ConfigError::LimitTooLarge {
            setting: "max_stale",
            ..
        })
    ));
    assert!(
        build(
            base()
                .jwks_url("https://idp.example/jwks")
                .max_stale(Duration::from_secs(7 * 24 * 3600))
        )
        .is_none()
    );
}

#[test]
fn no_runtime_no_panic() {
    // Built outside any runtime: nothing starts, a request-less check says not ready,
    // and verifying is a 503, not a panic.
    let rules = rules_for(&Server::in_process(Mode::Good, good_keys()), 300);
    let auth = authenticator(&rules);
    assert!(!auth.is_ready());
    let rejection = auth
        .verify(&token(&rsa(), "rsa-1", "a"))
        .expect_err("no keys");
    assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejection.retry_after(), Some(5));
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let server = Server::start(Mode::Good, good_keys()).await;
    let issuer = server.base.clone();
    let rules = IssuerRules::builder(issuer.clone())
        .audience(AUDIENCE)
        .discover()
        .http_client(client(FETCH_TIMEOUT_MS))
        .jwks_cooldown(Duration::from_millis(200))
        .build()
        .expect("rules");
    let auth = authenticator(&rules);
    assert!(wait_for(|| auth.is_ready()).await);
    let mut claims = claims();
    claims["iss"] = json!(issuer);
    assert_eq!(send(&auth, &mint(&rsa(), &claims)).await.0, StatusCode::OK);

    // The OAuth metadata document is the fallback.
    *server.state.oidc_missing.lock().unwrap() = true;
    let rules_b = IssuerRules::builder(issuer.clone())
        .audience(AUDIENCE)
        .discover()
        .http_client(client(FETCH_TIMEOUT_MS))
        .build()
        .expect("rules");
    rules_b
        .jwks()
        .expect("remote")
        .refresh_now()
        .await
        .expect("fallback");

    // A document naming another issuer is refused.
    *server.state.discovery_issuer.lock().unwrap() = Some(format!("{issuer}/evil"));
    let rules_c = IssuerRules::builder(issuer)
        .audience(AUDIENCE)
        .discover()
        .http_client(client(FETCH_TIMEOUT_MS))
        .build()
        .expect("rules");
    assert!(matches!(
        rules_c.jwks().expect("remote").refresh_now().await,
        Err(RemoteError::Discovery { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn cached_verifications_do_not_outlive_max_stale() {
    let server = Server::in_process(Mode::Good, good_keys());
    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .jwks_url(server.url())
        .http_client(server.client(FETCH_TIMEOUT_MS))
        .jwks_cooldown(Duration::from_millis(200))
        .max_stale(Duration::from_millis(400))
        .build()
        .expect("rules");
    // The token cache is on: a cached verification must not outlive the usable key set.
    let auth = BearerAuthenticator::new(rules);
    assert!(wait_for(|| auth.is_ready()).await);
    let cached = token(&rsa(), "rsa-1", "cached");
    assert_eq!(send(&auth, &cached).await.0, StatusCode::OK);
    server.set_mode(Mode::Down);
    assert!(wait_for(|| !auth.is_ready()).await);
    assert_eq!(
        send(&auth, &cached).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.set_mode(Mode::Good);
    let mut recovered = false;
    for _ in 0..100 {
        if send(&auth, &cached).await.0 == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered);
}

/// A custom client that lets anything through: the cache still checks status and type.
struct Lenient {
    content_type: &'static str,
    status: u16,
    calls: AtomicUsize,
}

impl HttpClient for Lenient {
    fn get(&self, _url: &str, _accept: &[&str]) -> portcullis::remote::HttpFuture<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body = json!({ "keys": good_keys() }).to_string();
        Box::pin(async move {
            Ok(portcullis::remote::HttpResponse::new(
                self.status,
                Some(self.content_type),
                body,
            ))
        })
    }

    fn post_form(
        &self,
        url: &str,
        _form: &[(&str, &str)],
        _basic_auth: Option<(&str, &str)>,
        accept: &[&str],
    ) -> portcullis::remote::HttpFuture<'_> {
        self.get(url, accept)
    }
}

#[tokio::test]
async fn a_custom_client_cannot_skip_the_checks() {
    for (content_type, status, ok) in [
        ("application/jwk-set+json; charset=utf-8", 200, true),
        ("text/html", 200, false),
        ("application/json", 404, false),
    ] {
        let lenient = Arc::new(Lenient {
            content_type,
            status,
            calls: AtomicUsize::new(0),
        });
        let rules = IssuerRules::builder(ISSUER)
            .audience(AUDIENCE)
            .jwks_url("https://idp.example/jwks")
            .http_client(lenient.clone())
            .build()
            .expect("rules");
        let result = rules.jwks().expect("remote").refresh_now().await;
        assert_eq!(result.is_ok(), ok, "{content_type} {status}: {result:?}");
        assert_eq!(lenient.calls.load(Ordering::SeqCst), 1);
        assert_eq!(rules.is_ready(), ok);
    }
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_discovered_metadata() {
    let server = Server::start(Mode::Good, good_keys()).await;
    let rules = IssuerRules::builder(server.base.clone())
        .audience(AUDIENCE)
        .discover()
        .http_client(client(FETCH_TIMEOUT_MS))
        .build()
        .expect("rules");
    let jwks = rules.jwks().expect("remote");
    jwks.refresh_now().await.expect("first fetch");
    let first = jwks.provider_metadata().expect("discovered");
    assert_eq!(first.jwks_uri, server.url());

    // The JWKS fails: the keys and the metadata stay usable.
    server.set_mode(Mode::Down);
    assert!(jwks.refresh_now().await.is_err());
    assert!(jwks.is_ready());
    let kept = jwks.provider_metadata().expect("kept after a failed fetch");
    assert!(Arc::ptr_eq(&first, &kept));

    // The next fetch discovers again.
    server.set_mode(Mode::Good);
    jwks.refresh_now().await.expect("recovered");
    let rediscovered = jwks.provider_metadata().expect("discovered");
    assert!(!Arc::ptr_eq(&first, &rediscovered));
}

#[tokio::test(start_paused = true)]
async fn max_stale_bounds_the_discovered_metadata() {
    let server = Server::in_process(Mode::Good, good_keys());
    let rules = IssuerRules::builder(server.base.clone())
        .audience(AUDIENCE)
        .discover()
        .http_client(server.client(FETCH_TIMEOUT_MS))
        .jwks_cooldown(Duration::from_millis(200))
        .max_stale(Duration::from_millis(400))
        .build()
        .expect("rules");
    let jwks = rules.jwks().expect("remote");
    jwks.refresh_now().await.expect("fetch");
    assert!(jwks.provider_metadata().is_some());
    server.set_mode(Mode::Down);
    tokio::time::advance(Duration::from_millis(300)).await;
    assert!(jwks.refresh_now().await.is_err());
    assert!(jwks.provider_metadata().is_some(), "stale but usable");
    tokio::time::advance(Duration::from_millis(200)).await;
    assert!(jwks.provider_metadata().is_none(), "too stale");
    assert!(!jwks.is_ready());
}
