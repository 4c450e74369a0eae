//! Token introspection (RFC 7662): opaque tokens from the real test provider, end to end,
//! and an introspection endpoint that misbehaves on purpose.
//!
//! The provider harness is the one of `tests/bearer_idp.rs` (unchanged, minus what these
//! tests do not use); run `npm ci` in `tests/idp` first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::thread::{self};
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
    let introspection = idp
        .introspection(Arc::clone(&client))
        .max_cache(Duration::from_millis(500))
        .build()
        .expect("introspection settings");
    let authenticator = BearerAuthenticator::builder()
        .introspection(introspection)
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

    // Revoked, then once the cache bound has passed: refused.
    idp.revoke(&token);
    thread::sleep(Duration::from_millis(600));
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
    let active = json!({"active": true, "sub": "alice", "scope": "a b", "exp": exp});
    match endpoint.mode.load(Ordering::SeqCst) {
        ACTIVE => {
            // Long enough for concurrent requests to pile up behind the first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Json(active).into_response()
        }
        SLOW => {
            tokio::time::sleep(Duration::from_secs(3)).await;
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
    let client = Counting::new(Duration::from_millis(500));
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
    // A port that was free a moment ago and has nobody listening now.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let url = format!("http://{address}/introspect");
    let app = app(authenticator_for(
        &url,
        Counting::new(Duration::from_secs(2)),
    ));
    assert_unavailable(&rt.block_on(send(&app, "some-token")), "down");
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
