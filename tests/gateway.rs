//! End to end: an axum `Router` behind `GatewaySecurityLayer` with API keys and route rules.
//!
//! Every test drives real requests through the whole stack (`Router::layer`, the
//! authentication chain, the rules, the handler) and asserts what the client receives.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Request as AxumRequest;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::api_key::{
    ApiKeyAuthenticator, CachedKeyStore, IssuedKey, KeyAdmin, KeyFormat, KeyId, KeyStore,
    LookupFuture, MemoryKeyStore, NewKey, StoreError,
};
use portcullis::authz::{
    RouteRules, all, authenticated, optional, permission, public, require, role, scope,
};
use portcullis::{
    AuthFuture, AuthMethod, AuthOutcome, Authenticate, Challenge, Claims, ConfigError,
    GatewaySecurityLayer, Principal, Reason, Rejection,
};
use serde::Deserialize;
use tower::ServiceExt;

/// The service behind the gateway: reports who called and which credential headers it saw.
async fn echo(principal: Option<Principal>, request: AxumRequest) -> Json<serde_json::Value> {
    let seen = |name: &str| {
        request
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
    };
    Json(serde_json::json!({
        "subject": principal.as_ref().map(Principal::subject),
        "permissions": principal.as_ref().map(|p| p.permissions().iter().collect::<Vec<_>>()),
        "x-api-key": seen("x-api-key"),
        "authorization": seen("authorization"),
        "cookie": seen("cookie"),
        "uri": request.uri().to_string(),
    }))
}

#[derive(Deserialize)]
struct Team {
    team: String,
}

struct Fixture {
    store: Arc<MemoryKeyStore>,
    admin: IssuedKey,
    viewer: IssuedKey,
}

impl Fixture {
    async fn new() -> Self {
        let store = Arc::new(MemoryKeyStore::new());
        let admin = store
            .issue(
                NewKey::for_owner("ada")
                    .roles(["admin"])
                    .scopes(["orders:write"])
                    .metadata("team", "platform"),
            )
            .await
            .expect("issue admin key");
        let viewer = store
            .issue(NewKey::for_owner("vic").roles(["viewer"]))
            .await
            .expect("issue viewer key");
        Self {
            store,
            admin,
            viewer,
        }
    }

    fn rules() -> RouteRules {
        RouteRules::builder()
            .role("admin", ["orders:*"])
            .role("viewer", ["orders:read"])
            .route("GET /health", public())
            .route("GET /feed", optional())
            .route("GET /whoami", authenticated())
            .route("GET /team", authenticated())
            .route("GET /orders/{id}", permission("orders:read"))
            .route("DELETE /orders/{id}", role("admin"))
            .route("POST /orders", all([role("admin"), scope("orders:write")]))
            .build()
            .expect("valid rules")
    }

    fn router(&self, gateway: GatewaySecurityLayer) -> Router {
        Router::new()
            .route("/health", get(echo))
            .route("/feed", get(echo))
            .route("/whoami", get(echo))
            .route(
                "/team",
                get(|Claims(team): Claims<Team>| async move { team.team }),
            )
            .route("/orders/{id}", get(echo).delete(echo).options(echo))
            .route("/orders", post(echo))
            .route("/unlisted", get(echo))
            .layer(gateway)
    }

    fn gateway(&self) -> GatewaySecurityLayer {
        GatewaySecurityLayer::builder()
            .authenticate(self.authenticator())
            .rules(Self::rules())
            .build()
            .expect("valid gateway")
    }

    fn authenticator(&self) -> ApiKeyAuthenticator {
        ApiKeyAuthenticator::builder(self.store.clone())
            .cookie("api_key")
            .build()
            .expect("valid authenticator")
    }

    fn app(&self) -> Router {
        self.router(self.gateway())
    }

    /// The app behind a gateway with `authenticator` instead of the default one.
    fn app_with(&self, authenticator: ApiKeyAuthenticator) -> Router {
        let gateway = GatewaySecurityLayer::builder()
            .authenticate(authenticator)
            .rules(Self::rules())
            .build()
            .expect("valid gateway");
        self.router(gateway)
    }
}

fn key(issued: &IssuedKey) -> &str {
    issued.key.expose_secret()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response: Response<Body> = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

fn get_with(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).expect("request")
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON body")
}

#[tokio::test]
async fn no_key_gets_401_with_an_api_key_challenge() {
    let fixture = Fixture::new().await;
    let (status, headers, body) = send(&fixture.app(), get_with("/whoami", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], r#"ApiKey realm="api""#);
    assert_eq!(headers["content-type"], "application/problem+json");
    let body = json(&body);
    assert_eq!(body["code"], "missing_credentials");
    assert_eq!(body["status"], 401);
}

#[tokio::test]
async fn every_bad_key_gets_the_same_401() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let good = key(&fixture.viewer).to_owned();

    // Malformed: wrong prefix and wrong length.
    let malformed = "pcl_not-a-key".to_owned();
    // Bad checksum: one character of the secret changed.
    let mut bad_checksum = good.clone().into_bytes();
    let position = 4 + 12 + 3;
    bad_checksum[position] = if bad_checksum[position] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let bad_checksum = String::from_utf8(bad_checksum).expect("ASCII");
    // Unknown: a well-formed key from another store.
    let unknown = MemoryKeyStore::new()
        .issue(NewKey::for_owner("eve"))
        .await
        .expect("issue");
    // Revoked.
    let revoked = fixture
        .store
        .issue(NewKey::for_owner("rex").roles(["viewer"]))
        .await
        .expect("issue");
    fixture
        .store
        .revoke(revoked.record.id())
        .await
        .expect("revoke");
    // Expired a second ago.
    let expired = fixture
        .store
        .issue(
            NewKey::for_owner("old")
                .roles(["viewer"])
                .expires_at(SystemTime::now() - Duration::from_secs(1)),
        )
        .await
        .expect("issue");

    let mut responses = Vec::new();
    for bad in [
        malformed.as_str(),
        bad_checksum.as_str(),
        key(&unknown),
        key(&revoked),
        key(&expired),
    ] {
        responses.push(send(&app, get_with("/whoami", &[("x-api-key", bad)])).await);
    }
    let (status, headers, body) = &responses[0];
    assert_eq!(*status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        r#"ApiKey realm="api", error="invalid_key""#
    );
    assert_eq!(json(body)["code"], "invalid_credentials");
    for response in &responses[1..] {
        assert_eq!(response, &responses[0], "responses differ");
    }

    // The good key still works.
    let (status, _, _) = send(&app, get_with("/whoami", &[("x-api-key", &good)])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn roles_and_permissions_decide_per_route() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let viewer = key(&fixture.viewer);
    let admin = key(&fixture.admin);

    // The viewer may read an order (permission via the viewer role)...
    let (status, _, body) = send(&app, get_with("/orders/7", &[("x-api-key", viewer)])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["subject"], "vic");
    assert_eq!(
        json(&body)["permissions"],
        serde_json::json!(["orders:read"])
    );

    // ...but not delete one: wrong role.
    let request = Request::delete("/orders/7")
        .header("x-api-key", viewer)
        .body(Body::empty())
        .expect("request");
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json(&body)["code"], "forbidden");
    assert!(!headers.contains_key("www-authenticate"));

    // The admin may.
    let request = Request::delete("/orders/7")
        .header("authorization", format!("ApiKey {admin}"))
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);

    // A scope requirement names the missing scope.
    let request = Request::post("/orders")
        .header("x-api-key", viewer)
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let scoped_admin = fixture
        .store
        .issue(NewKey::for_owner("ann").roles(["admin"]))
        .await
        .expect("issue");
    let request = Request::post("/orders")
        .header("x-api-key", key(&scoped_admin))
        .body(Body::empty())
        .expect("request");
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        headers["www-authenticate"],
        r#"ApiKey realm="api", error="insufficient_scope", scope="orders:write""#
    );
    assert_eq!(json(&body)["code"], "insufficient_scope");
    let request = Request::post("/orders")
        .header("x-api-key", admin)
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, request).await.0, StatusCode::OK);

    // HEAD follows the GET rule.
    let request = Request::head("/orders/7")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, request).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unmatched_routes_are_denied_by_default() {
    let fixture = Fixture::new().await;
    let admin = key(&fixture.admin);
    let (status, _, body) = send(
        &fixture.app(),
        get_with("/unlisted", &[("x-api-key", admin)]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json(&body)["code"], "route_denied");

    let relaxed = RouteRules::builder()
        .route("GET /health", public())
        .unmatched(authenticated())
        .build()
        .expect("valid rules");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(fixture.authenticator())
        .rules(relaxed)
        .build()
        .expect("valid gateway");
    let app = fixture.router(gateway);
    let (status, _, _) = send(&app, get_with("/unlisted", &[("x-api-key", admin)])).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, get_with("/unlisted", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn two_different_keys_are_refused() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let (viewer, admin) = (key(&fixture.viewer), key(&fixture.admin));
    let authorization = format!("ApiKey {admin}");
    let cookie = format!("api_key={admin}");

    for headers in [
        vec![
            ("x-api-key", viewer),
            ("authorization", authorization.as_str()),
        ],
        vec![("x-api-key", viewer), ("x-api-key", admin)],
        vec![("x-api-key", viewer), ("cookie", cookie.as_str())],
    ] {
        let (status, _, body) = send(&app, get_with("/whoami", &headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(json(&body)["code"], "ambiguous_credentials");
    }

    // The same key twice is not ambiguous.
    let same = format!("ApiKey {viewer}");
    let headers = [("x-api-key", viewer), ("authorization", same.as_str())];
    assert_eq!(
        send(&app, get_with("/whoami", &headers)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn keys_in_the_query_string_are_refused_unless_allowed() {
    let fixture = Fixture::new().await;
    let viewer = key(&fixture.viewer);
    let path = format!("/whoami?api_key={viewer}");
    let (status, _, body) = send(&fixture.app(), get_with(&path, &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&body)["code"], "credentials_in_query");

    let authenticator = ApiKeyAuthenticator::builder(fixture.store.clone())
        .insecure_allow_query_key("api_key")
        .build()
        .expect("valid authenticator");
    let app = fixture.app_with(authenticator);
    let path = format!("/whoami?x=1&api_key={viewer}&y=2");
    let (status, _, body) = send(&app, get_with(&path, &[])).await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["subject"], "vic");
    // The key is removed from the URI the handler sees; other parameters stay.
    assert_eq!(body["uri"], "/whoami?x=1&y=2");
}

#[tokio::test]
async fn credentials_never_reach_the_handler() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let viewer = key(&fixture.viewer);

    let (status, _, body) = send(&app, get_with("/whoami", &[("x-api-key", viewer)])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["x-api-key"], serde_json::json!([]));

    let authorization = format!("ApiKey {viewer}");
    let (status, _, body) = send(
        &app,
        get_with("/whoami", &[("authorization", &authorization)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["authorization"], serde_json::json!([]));

    let cookie = format!("theme=dark; api_key={viewer}; lang=en");
    let (status, _, body) = send(&app, get_with("/whoami", &[("cookie", &cookie)])).await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["subject"], "vic");
    assert_eq!(body["cookie"], serde_json::json!(["theme=dark; lang=en"]));

    // Public routes skip authentication but still strip credentials, query keys included.
    let (status, _, body) = send(&app, get_with("/health", &[("x-api-key", viewer)])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["x-api-key"], serde_json::json!([]));
    let path = format!("/health?api_key={viewer}&x=1");
    let (status, _, body) = send(&app, get_with(&path, &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["uri"], "/health?x=1");
}

#[tokio::test]
async fn credentials_are_recognised_however_they_are_spelled() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let (viewer, admin) = (key(&fixture.viewer), key(&fixture.admin));

    // Query parameter names are percent-decoded before they are compared (RFC 3986 2.3).
    for spelling in ["api%5Fkey", "api%5fkey", "%61pi_key", "api_%6Bey"] {
        let path = format!("/whoami?{spelling}={viewer}");
        let (status, _, body) = send(&app, get_with(&path, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spelling}");
        assert_eq!(json(&body)["code"], "credentials_in_query", "{spelling}");
        // On a public route the key is not looked at, but it is still removed.
        let path = format!("/health?x=1&{spelling}={viewer}&y=2");
        let (status, _, body) = send(&app, get_with(&path, &[])).await;
        assert_eq!(status, StatusCode::OK, "{spelling}");
        assert_eq!(json(&body)["uri"], "/health?x=1&y=2", "{spelling}");
    }

    // `Authorization` follows RFC 9110 section 11.4 for every scheme: case-insensitive
    // scheme, one or more spaces, then the credentials.
    for value in [format!("apikey {viewer}"), format!("APIKEY    {viewer}")] {
        let (status, _, body) = send(&app, get_with("/whoami", &[("authorization", &value)])).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        let body = json(&body);
        assert_eq!(body["subject"], "vic");
        assert_eq!(body["authorization"], serde_json::json!([]));
    }
    // Anything else that names the scheme is refused, never passed on: here an admin key
    // behind a tab, beside a viewer key that would otherwise authenticate the request.
    for value in [
        format!("ApiKey\t{admin}"),
        format!("apikey\t {admin}"),
        format!("ApiKey,{admin}"),
        format!("ApiKey {admin} x"),
        "ApiKey".to_owned(),
        "ApiKey ".to_owned(),
    ] {
        let headers = [("authorization", value.as_str()), ("x-api-key", viewer)];
        let (status, _, body) = send(&app, get_with("/whoami", &headers)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value:?}");
        assert_eq!(json(&body)["code"], "invalid_request", "{value:?}");
        // On a public route such a header is removed too.
        let (status, _, body) = send(&app, get_with("/health", &[("authorization", &value)])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            json(&body)["authorization"],
            serde_json::json!([]),
            "{value:?}"
        );
    }

    // Where query keys are allowed, an encoded name or value is the same key, and removed.
    let authenticator = ApiKeyAuthenticator::builder(fixture.store.clone())
        .insecure_allow_query_key("api_key")
        .build()
        .expect("valid authenticator");
    let app = fixture.app_with(authenticator);
    let encoded = viewer.replace('_', "%5F");
    let path = format!("/whoami?x=1&api%5Fkey={encoded}");
    let (status, _, body) = send(&app, get_with(&path, &[])).await;
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["subject"], "vic");
    assert_eq!(body["uri"], "/whoami?x=1");
    // Two spellings of one parameter carrying two keys are two keys.
    let path = format!("/whoami?api_key={viewer}&api%5Fkey={admin}");
    let (status, _, body) = send(&app, get_with(&path, &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&body)["code"], "ambiguous_credentials");
}

#[tokio::test]
async fn credentials_can_be_kept_and_marked_sensitive() {
    let fixture = Fixture::new().await;
    let authenticator = ApiKeyAuthenticator::builder(fixture.store.clone())
        .strip_credentials(false)
        .build()
        .expect("valid authenticator");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(authenticator)
        .rules(Fixture::rules())
        .build()
        .expect("valid gateway");
    let app = Router::new()
        .route(
            "/whoami",
            get(|request: AxumRequest| async move {
                let value = &request.headers()["x-api-key"];
                format!("{}", value.is_sensitive())
            }),
        )
        .layer(gateway);
    let (status, _, body) = send(
        &app,
        get_with("/whoami", &[("x-api-key", key(&fixture.viewer))]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"true");
}

#[tokio::test]
async fn a_cors_preflight_is_a_request_like_any_other() {
    let fixture = Fixture::new().await;
    let preflight = Request::options("/orders/7")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "DELETE")
        .body(Body::empty())
        .expect("request");
    // No rule for OPTIONS: denied (tests/cors.rs covers the gateway's `cors`).
    let (status, _, body) = send(&fixture.app(), preflight).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json(&body)["code"], "route_denied");
}

#[tokio::test]
async fn public_and_optional_routes() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let viewer = key(&fixture.viewer);

    // Public: no identity needed, and credentials are not even checked.
    assert_eq!(send(&app, get_with("/health", &[])).await.0, StatusCode::OK);
    let (status, _, body) = send(&app, get_with("/health", &[("x-api-key", "pcl_garbage")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["subject"], serde_json::Value::Null);

    // Optional: anonymous is fine, a good key attaches the caller, a bad key is refused.
    let (status, _, body) = send(&app, get_with("/feed", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["subject"], serde_json::Value::Null);
    let (status, _, body) = send(&app, get_with("/feed", &[("x-api-key", viewer)])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["subject"], "vic");
    let (status, _, _) = send(&app, get_with("/feed", &[("x-api-key", "pcl_garbage")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn typed_claims_come_from_key_metadata() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let (status, _, body) = send(
        &app,
        get_with("/team", &[("x-api-key", key(&fixture.admin))]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"platform");
    // The viewer's key has no `team` metadata: the claims do not fit.
    let (status, _, body) = send(
        &app,
        get_with("/team", &[("x-api-key", key(&fixture.viewer))]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json(&body)["code"], "invalid_claims");
}

/// Everything every test logs, captured by one global subscriber. (Thread-local subscribers
/// race with tracing's global callsite cache when tests run in parallel.) Tests look for
/// lines only they can produce.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        captured
    })
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    /// The captured lines containing every one of `needles`.
    fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn shadow_mode_reports_but_lets_through() {
    let logs = captured();
    let store = Arc::new(MemoryKeyStore::new());
    let shadow = store
        .issue(NewKey::for_owner("shadow-viewer").roles(["viewer"]))
        .await
        .expect("issue");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store))
        .rules(Fixture::rules())
        .dangerous_report_only()
        .build()
        .expect("valid gateway");
    let app = Fixture::new().await.router(gateway);

    let request = Request::delete("/orders/7")
        .header("x-api-key", key(&shadow))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["subject"], "shadow-viewer");
    let lines = logs.lines_with(&[
        "portcullis::authorize",
        "outcome=\"would_refuse\"",
        "reason=\"forbidden\"",
        "subject=\"shadow-viewer\"",
        r#"rule="DELETE /orders/{id}""#,
    ]);
    assert_eq!(lines.len(), 1, "{}", logs.text());

    // Authentication still refuses bad credentials in shadow mode.
    let (status, _, _) = send(&app, get_with("/whoami", &[("x-api-key", "pcl_x")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn decisions_are_traced_without_secrets() {
    let logs = captured();
    let store = Arc::new(MemoryKeyStore::new());
    let traced = store
        .issue(NewKey::for_owner("traced-viewer").roles(["viewer"]))
        .await
        .expect("issue");
    let revoked = store
        .issue(NewKey::for_owner("traced-revoked"))
        .await
        .expect("issue");
    store.revoke(revoked.record.id()).await.expect("revoke");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store))
        .rules(Fixture::rules())
        .build()
        .expect("valid gateway");
    let app = Fixture::new().await.router(gateway);

    send(&app, get_with("/orders/1", &[("x-api-key", key(&traced))])).await;
    send(
        &app,
        get_with("/orders/traced-revoked", &[("x-api-key", key(&revoked))]),
    )
    .await;
    let request = Request::delete("/orders/7")
        .header("x-api-key", key(&traced))
        .body(Body::empty())
        .expect("request");
    send(&app, request).await;

    let allowed = logs.lines_with(&[
        "portcullis::authorize",
        "outcome=\"allowed\"",
        "subject=\"traced-viewer\"",
    ]);
    assert_eq!(allowed.len(), 1, "{}", logs.text());
    // One event per decision: authentication let the caller in twice.
    let authenticated = logs.lines_with(&[
        "portcullis::authenticate",
        "outcome=\"allowed\"",
        "subject=\"traced-viewer\"",
        "auth_method=\"api_key\"",
    ]);
    assert_eq!(authenticated.len(), 2, "{}", logs.text());
    let denied = logs.lines_with(&[
        "portcullis::authorize",
        "outcome=\"refused\"",
        "subject=\"traced-viewer\"",
        "reason=\"forbidden\"",
    ]);
    assert_eq!(denied.len(), 1, "{}", logs.text());
    // The precise reason for a bad key is in the log, not in the response.
    let revoked_lines = logs.lines_with(&["reason=\"key_revoked\"", "/orders/traced-revoked"]);
    assert_eq!(revoked_lines.len(), 1, "{}", logs.text());
    let text = logs.text();
    for secret in [key(&traced), key(&revoked)] {
        assert!(!text.contains(&secret[4 + 12..]), "secret in logs: {text}");
    }
}

#[tokio::test]
async fn every_decision_reaches_the_observer_and_the_reason_the_response() {
    use portcullis::observe::{Decision, Outcome, Stage};
    type Seen = (
        Stage,
        Outcome,
        Option<Reason>,
        Option<String>,
        Option<String>,
    );
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = seen.clone();
    let observer = move |decision: &Decision<'_>| {
        sink.lock().expect("lock").push((
            decision.stage,
            decision.outcome,
            decision.reason,
            decision.route.map(str::to_owned),
            decision.principal.map(|p| p.subject().to_owned()),
        ));
    };
    let fixture = Fixture::new().await;
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(fixture.authenticator())
        .rules(Fixture::rules())
        .observer(Arc::new(observer))
        .build()
        .expect("valid gateway");
    let app = fixture.router(gateway);

    let response = app
        .clone()
        .oneshot(get_with(
            "/orders/1",
            &[("x-api-key", key(&fixture.viewer))],
        ))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.extensions().get::<Reason>(), None);
    let request = Request::delete("/orders/7")
        .header("x-api-key", key(&fixture.viewer))
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.extensions().get::<Reason>(),
        Some(&Reason::Forbidden)
    );
    let response = app
        .oneshot(get_with("/whoami", &[("x-api-key", "pcl_bad")]))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The precise reason for outer layers; the client sees `invalid_credentials`.
    assert_eq!(
        response.extensions().get::<Reason>(),
        Some(&Reason::MalformedKey)
    );

    let vic = || Some("vic".to_owned());
    let rule = |text: &str| Some(text.to_owned());
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            // In the gateway, authentication's decisions name the route too: it is
            // matched once, before them.
            (
                Stage::Authenticate,
                Outcome::Allowed,
                None,
                rule("GET /orders/{id}"),
                vic()
            ),
            (
                Stage::Authorize,
                Outcome::Allowed,
                None,
                rule("GET /orders/{id}"),
                vic()
            ),
            (
                Stage::Authenticate,
                Outcome::Allowed,
                None,
                rule("DELETE /orders/{id}"),
                vic()
            ),
            (
                Stage::Authorize,
                Outcome::Refused,
                Some(Reason::Forbidden),
                rule("DELETE /orders/{id}"),
                vic()
            ),
            (
                Stage::Authenticate,
                Outcome::Refused,
                Some(Reason::MalformedKey),
                rule("GET /whoami"),
                None
            ),
        ]
    );
}

/// A store that cannot be reached.
#[derive(Debug, Default)]
struct DownStore {
    format: KeyFormat,
}

/// A lookup-only store: the gateway needs nothing else.
impl KeyStore for DownStore {
    fn format(&self) -> &KeyFormat {
        &self.format
    }
    fn find<'a>(&'a self, _: &'a KeyId) -> LookupFuture<'a> {
        Box::pin(async { Err(StoreError::Unavailable("connection refused".into())) })
    }
}

/// A store across the network, answering only asynchronously, counting its lookups.
#[derive(Default)]
struct CountingStore {
    store: MemoryKeyStore,
    lookups: std::sync::atomic::AtomicUsize,
}

impl KeyStore for CountingStore {
    fn format(&self) -> &KeyFormat {
        self.store.format()
    }
    fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.find(id)
    }
}

#[tokio::test]
async fn a_store_chosen_at_run_time_behind_a_cache() {
    let remote = Arc::new(CountingStore::default());
    let issued = remote
        .store
        .issue(NewKey::for_owner("cache-user").roles(["viewer"]))
        .await
        .expect("issue");
    // The kind of store is decided at run time (say, by a config file).
    let store: Arc<dyn KeyStore> = Arc::new(
        CachedKeyStore::builder(remote.clone())
            .max_age(Duration::from_secs(60))
            .build()
            .expect("valid cache"),
    );
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store))
        .rules(Fixture::rules())
        .build()
        .expect("valid gateway");
    let app = Fixture::new().await.router(gateway);
    for _ in 0..3 {
        let (status, _, body) =
            send(&app, get_with("/orders/1", &[("x-api-key", key(&issued))])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["subject"], "cache-user");
    }
    assert_eq!(remote.lookups.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_store_outage_is_a_503_not_a_401() {
    let fixture = Fixture::new().await;
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(Arc::new(DownStore::default())))
        .rules(Fixture::rules())
        .build()
        .expect("valid gateway");
    let app = fixture.router(gateway);
    // A well-formed key, so the lookup happens.
    let (status, headers, body) = send(
        &app,
        get_with("/whoami", &[("x-api-key", key(&fixture.viewer))]),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(json(&body)["code"], "unavailable");
}

#[tokio::test]
async fn keys_rotate_with_an_overlap() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let old = key(&fixture.viewer).to_owned();
    let new = fixture
        .store
        .rotate(fixture.viewer.record.id(), Duration::from_secs(3600))
        .await
        .expect("rotate");
    for current in [old.as_str(), key(&new)] {
        let (status, _, body) = send(&app, get_with("/whoami", &[("x-api-key", current)])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["subject"], "vic");
    }
    // Rotating with no overlap ends the old key at once.
    let newest = fixture
        .store
        .rotate(new.record.id(), Duration::ZERO)
        .await
        .expect("rotate");
    assert_eq!(
        send(&app, get_with("/whoami", &[("x-api-key", key(&new))]))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, get_with("/whoami", &[("x-api-key", key(&newest))]))
            .await
            .0,
        StatusCode::OK
    );
}

/// A custom scheme: a pre-shared service token in `x-service-token`.
struct ServiceToken;

impl Authenticate for ServiceToken {
    fn authenticate(&self, request: &http::request::Parts) -> AuthFuture {
        let token = request.headers.get("x-service-token").cloned();
        // Deliberately asynchronous, as a real lookup would be.
        AuthFuture::new(async move {
            tokio::task::yield_now().await;
            match token {
                None => AuthOutcome::Absent,
                Some(token) if token == "s3rvice" => AuthOutcome::Authenticated(
                    Principal::builder("batch-job", AuthMethod::Custom("ServiceToken".into()))
                        .roles(["admin"])
                        .build(),
                ),
                Some(_) => AuthOutcome::Rejected(
                    Rejection::new(Reason::InvalidCredentials)
                        .with_challenge(Challenge::new("ServiceToken", "internal")),
                ),
            }
        })
    }

    fn challenge(&self) -> Option<Challenge> {
        Some(Challenge::new("ServiceToken", "internal"))
    }

    fn strip_credentials(&self, request: &mut http::request::Parts) {
        request.headers.remove("x-service-token");
    }
}

#[tokio::test]
async fn a_custom_authenticator_works_beside_api_keys() {
    let fixture = Fixture::new().await;
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(fixture.authenticator())
        .authenticate(ServiceToken)
        .rules(Fixture::rules())
        .build()
        .expect("valid gateway");
    let app = fixture.router(gateway);

    // Both challenges are offered when no credentials are sent.
    let (status, headers, _) = send(&app, get_with("/whoami", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenges: Vec<_> = headers.get_all("www-authenticate").iter().collect();
    assert_eq!(
        challenges,
        [r#"ApiKey realm="api""#, r#"ServiceToken realm="internal""#]
    );

    let (status, _, body) =
        send(&app, get_with("/whoami", &[("x-service-token", "s3rvice")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["subject"], "batch-job");

    let (status, headers, _) =
        send(&app, get_with("/whoami", &[("x-service-token", "wrong")])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        r#"ServiceToken realm="internal""#
    );

    // The API key still works, and both credentials together are refused.
    let viewer = key(&fixture.viewer);
    let (status, _, _) = send(&app, get_with("/whoami", &[("x-api-key", viewer)])).await;
    assert_eq!(status, StatusCode::OK);
    let headers = [("x-api-key", viewer), ("x-service-token", "s3rvice")];
    let (status, _, body) = send(&app, get_with("/whoami", &headers)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&body)["code"], "ambiguous_credentials");
}

#[tokio::test]
async fn require_guards_a_single_axum_route() {
    let fixture = Fixture::new().await;
    let rules = RouteRules::builder()
        .role("admin", ["orders:*"])
        .role("viewer", ["orders:read"])
        .unmatched(optional())
        .build()
        .expect("valid rules");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(fixture.authenticator())
        .rules(rules)
        .build()
        .expect("valid gateway");
    let app = Router::new()
        .route(
            "/orders/{id}",
            delete(echo).route_layer(require(all([role("admin"), permission("orders:write")]))),
        )
        .route("/open", get(echo))
        .layer(gateway);
    let delete_as = |key: &str| {
        Request::delete("/orders/1")
            .header("x-api-key", key)
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(
        send(&app, delete_as(key(&fixture.viewer))).await.0,
        StatusCode::FORBIDDEN
    );
    // `orders:write` comes from the admin role's mapping, resolved by the gateway.
    assert_eq!(
        send(&app, delete_as(key(&fixture.admin))).await.0,
        StatusCode::OK
    );
    let anonymous = Request::delete("/orders/1")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, get_with("/open", &[])).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_policies_fail_at_build_time() {
    let fixture = Fixture::new().await;
    let missing_rules = GatewaySecurityLayer::builder()
        .authenticate(fixture.authenticator())
        .build();
    assert!(matches!(missing_rules, Err(ConfigError::MissingRules)));
    let no_authenticator = GatewaySecurityLayer::builder()
        .rules(Fixture::rules())
        .build();
    assert!(matches!(
        no_authenticator,
        Err(ConfigError::NoAuthenticator)
    ));

    let mut errors = BTreeMap::new();
    let cases = [
        (
            "conflict",
            RouteRules::builder()
                .route("GET /orders/{id}", public())
                .route("GET /orders/{order}", public())
                .build()
                .err(),
        ),
        (
            "unknown role",
            RouteRules::builder()
                .route("GET /admin", role("admn"))
                .build()
                .err(),
        ),
        (
            "duplicate",
            RouteRules::builder()
                .route("GET|POST /a", public())
                .route("POST /a", authenticated())
                .build()
                .err(),
        ),
    ];
    for (name, error) in cases {
        let error = error.unwrap_or_else(|| panic!("{name}: built"));
        errors.insert(name, error.to_string());
    }
    assert!(errors["unknown role"].contains("admn"), "{errors:?}");
    assert!(errors["duplicate"].contains("POST /a"), "{errors:?}");

    assert!(matches!(
        ApiKeyAuthenticator::builder(fixture.store.clone())
            .header("bad header")
            .build(),
        Err(ConfigError::InvalidHeaderName { .. })
    ));
    assert!(matches!(
        ApiKeyAuthenticator::builder(fixture.store.clone())
            .no_header()
            .authorization_scheme(false)
            .build(),
        Err(ConfigError::NoKeySource)
    ));
    assert!(matches!(
        ApiKeyAuthenticator::builder(fixture.store.clone())
            .realm("a\"b")
            .build(),
        Err(ConfigError::InvalidRealm { .. })
    ));
}

/// A custom envelope: `{"error": "<public reason>"}` with the rejection's status.
fn error_envelope(rejection: &Rejection) -> Response<bytes::Bytes> {
    let body = format!(r#"{{"error":"{}"}}"#, rejection.reason().public());
    let mut response = Response::new(bytes::Bytes::from(body));
    *response.status_mut() = rejection.status();
    response
}

#[tokio::test]
async fn a_custom_rejection_renderer_keeps_the_challenge() {
    let fixture = Fixture::new().await;
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(fixture.authenticator())
        .rules(Fixture::rules())
        .rejection_response(error_envelope)
        .build()
        .expect("valid gateway");
    let app = fixture.router(gateway);
    let (status, headers, body) = send(&app, get_with("/whoami", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], r#"ApiKey realm="api""#);
    assert_eq!(body, br#"{"error":"missing_credentials"}"#);
}

#[tokio::test]
async fn extractors_render_refusals_as_the_gateway_does() {
    let fixture = Fixture::new().await;
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(fixture.authenticator())
        .rules(Fixture::rules())
        .rejection_response(error_envelope)
        .build()
        .expect("valid gateway");
    // `/feed` is `optional()`: the gateway lets anonymous callers in, and this handler's
    // `Principal` extractor refuses them.
    let app = Router::new()
        .route(
            "/feed",
            get(|who: Principal| async move { who.subject().to_owned() }),
        )
        .route(
            "/team",
            get(|Claims(team): Claims<Team>| async move { team.team }),
        )
        .layer(gateway);
    let (status, headers, body) = send(&app, get_with("/feed", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], r#"ApiKey realm="api""#);
    assert_eq!(body, br#"{"error":"missing_credentials"}"#);

    let (status, _, body) = send(
        &app,
        get_with("/team", &[("x-api-key", key(&fixture.viewer))]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, br#"{"error":"invalid_claims"}"#);
}
