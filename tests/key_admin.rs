//! End to end: key management over HTTP (`KeyAdminApi`) nested in an axum `Router` behind
//! the real API-key authentication (alone, and in `GatewaySecurityLayer`) over a
//! `MemoryKeyStore`.
//!
//! Time: the memory store and the authenticator read the system clock. The overlap test
//! uses a store wrapper whose clock runs ahead by a controlled amount (it shifts expiry
//! times back by that amount before the authenticator sees them), so no test sleeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::Principal;
use portcullis::api_key::{
    ApiKeyAuthenticator, ApiKeyLayer, IssuedKey, KeyAction, KeyAdmin, KeyAdminApi, KeyAdminAudit,
    KeyAdminEvent, KeyAdminOutcome, KeyFormat, KeyId, KeyRecord, KeyStore, Lookup, LookupFuture,
    MemoryKeyStore, NewKey, StoreError,
};
#[cfg(feature = "authz")]
use portcullis::{
    GatewaySecurityLayer,
    authz::{RouteRules, authenticated, role},
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// One reported event, copied out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    action: KeyAction,
    outcome: KeyAdminOutcome,
    status: u16,
    reason: Option<&'static str>,
    subject: Option<String>,
    key_id: Option<String>,
    new_key_id: Option<String>,
    owner: Option<String>,
}

/// A test audit: keeps every event, and everything it was told as text (to look for
/// secrets).
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Seen, String)>>>);

impl KeyAdminAudit for Recorder {
    fn key_admin(&self, e: &KeyAdminEvent<'_>) {
        let seen = Seen {
            action: e.action,
            outcome: e.outcome,
            status: e.status.as_u16(),
            reason: e.reason,
            subject: e.principal.map(|p| p.subject().to_owned()),
            key_id: e.key_id.map(|id| id.as_str().to_owned()),
            new_key_id: e.new_key_id.map(|id| id.as_str().to_owned()),
            owner: e.owner.map(str::to_owned),
        };
        let text = format!("{e:?}");
        self.0.lock().expect("lock").push((seen, text));
    }
}

impl Recorder {
    fn events(&self) -> Vec<Seen> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .map(|(seen, _)| seen.clone())
            .collect()
    }

    fn text(&self) -> String {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A memory store whose clock is `ahead` seconds in the future: it hands the authenticator
/// records whose expiry is moved back by that much, which is the same as the authenticator
/// reading a clock that far ahead.
#[derive(Default)]
struct Clocked {
    inner: MemoryKeyStore,
    ahead: AtomicU64,
}

impl Clocked {
    fn advance(&self, by: Duration) {
        self.ahead.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    fn as_seen(&self, lookup: Lookup) -> Lookup {
        let ahead = Duration::from_secs(self.ahead.load(Ordering::SeqCst));
        Ok(lookup?.map(|record| match record.expires_at() {
            Some(at) if !ahead.is_zero() => {
                let mut shifted = KeyRecord::clone(&record);
                shifted.expire_by(at.checked_sub(ahead).unwrap_or(std::time::UNIX_EPOCH));
                Arc::new(shifted)
            }
            _ => record,
        }))
    }
}

impl KeyStore for Clocked {
    fn format(&self) -> &KeyFormat {
        self.inner.format()
    }

    fn find_now(&self, id: &KeyId) -> Option<Lookup> {
        self.inner.find_now(id).map(|lookup| self.as_seen(lookup))
    }

    fn find<'a>(&'a self, id: &'a KeyId) -> LookupFuture<'a> {
        Box::pin(async move { self.as_seen(self.inner.find(id).await) })
    }
}

impl KeyAdmin for Clocked {
    async fn issue(&self, spec: NewKey) -> Result<IssuedKey, StoreError> {
        self.inner.issue(spec).await
    }

    async fn list(&self, owner: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.list(owner).await
    }

    async fn rotate(&self, id: &KeyId, overlap: Duration) -> Result<IssuedKey, StoreError> {
        self.inner.rotate(id, overlap).await
    }

    async fn revoke(&self, id: &KeyId) -> Result<(), StoreError> {
        self.inner.revoke(id).await
    }
}

/// A store that cannot be reached.
struct Down(MemoryKeyStore);

impl KeyStore for Down {
    fn format(&self) -> &KeyFormat {
        self.0.format()
    }

    fn find<'a>(&'a self, _id: &'a KeyId) -> LookupFuture<'a> {
        Box::pin(async { Err(unavailable()) })
    }
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("connection refused".into())
}

impl KeyAdmin for Down {
    async fn issue(&self, _spec: NewKey) -> Result<IssuedKey, StoreError> {
        Err(unavailable())
    }

    async fn list(&self, _owner: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        Err(unavailable())
    }

    async fn rotate(&self, _id: &KeyId, _overlap: Duration) -> Result<IssuedKey, StoreError> {
        Err(unavailable())
    }

    async fn revoke(&self, _id: &KeyId) -> Result<(), StoreError> {
        Err(unavailable())
    }
}

struct Fixture {
    store: Arc<Clocked>,
    audit: Recorder,
    admin: IssuedKey,
    viewer: IssuedKey,
    app: Router,
}

const ADMIN_ROLE: &str = "key-admin";

impl Fixture {
    async fn new() -> Self {
        let store = Arc::new(Clocked::default());
        let admin = store
            .issue(NewKey::for_owner("ada").roles([ADMIN_ROLE]))
            .await
            .expect("admin key");
        let viewer = store
            .issue(NewKey::for_owner("vic").roles(["viewer"]))
            .await
            .expect("viewer key");
        let audit = Recorder::default();
        let api = KeyAdminApi::builder(store.clone())
            .role(ADMIN_ROLE)
            .audit(audit.clone())
            .build()
            .expect("valid API");
        let app = Router::new()
            .route(
                "/whoami",
                routing::get(|principal: Principal| async move { principal.subject().to_owned() }),
            )
            .nest("/admin/keys", api.router())
            .layer(ApiKeyLayer::new(ApiKeyAuthenticator::new(store.clone())));
        Self {
            store,
            audit,
            admin,
            viewer,
            app,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        send(&self.app, request).await
    }

    fn admin_key(&self) -> &str {
        self.admin.key.expose_secret()
    }

    async fn whoami(&self, key: &str) -> StatusCode {
        self.send(get("/whoami", Some(key))).await.0
    }

    async fn count(&self) -> usize {
        self.store.list(None).await.expect("list").len()
    }
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response: Response<Body> = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

fn get(path: &str, key: Option<&str>) -> Request<Body> {
    request("GET", path, key, None)
}

fn request(method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON body")
}

/// Issues a key through the API; the secret and the id.
async fn issue(fixture: &Fixture, body: &str) -> (String, String) {
    let (status, headers, bytes) = fixture
        .send(request(
            "POST",
            "/admin/keys",
            Some(fixture.admin_key()),
            Some(body),
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(headers["cache-control"], "no-store");
    let body = json_of(&bytes);
    let key = body["key"].as_str().expect("the secret").to_owned();
    let id = body["record"]["id"].as_str().expect("the id").to_owned();
    (key, id)
}

#[tokio::test]
async fn an_issued_key_works_at_once_and_is_audited() {
    let fixture = Fixture::new().await;
    let before = fixture.count().await;
    let body = r#"{"owner": "bea", "roles": ["viewer"], "scopes": ["orders:read"],
                   "tenant": "acme", "metadata": {"team": "billing"}, "expires_in": 3600}"#;
    let (status, _, bytes) = fixture
        .send(request(
            "POST",
            "/admin/keys",
            Some(fixture.admin_key()),
            Some(body),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json_of(&bytes);
    let record = &body["record"];
    assert_eq!(record["owner"], "bea");
    assert_eq!(record["roles"], json!(["viewer"]));
    assert_eq!(record["scopes"], json!(["orders:read"]));
    assert_eq!(record["tenant"], "acme");
    assert_eq!(record["metadata"], json!({"team": "billing"}));
    assert_eq!(
        record["expires_at"].as_u64().expect("expiry") - record["created_at"].as_u64().expect("t"),
        3600
    );
    assert!(record.get("digest").is_none(), "{record}");
    let key = body["key"].as_str().expect("secret");
    let id = record["id"].as_str().expect("id");
    assert!(key.contains(id));
    assert_eq!(fixture.count().await, before + 1);

    let (status, _, who) = fixture.send(get("/whoami", Some(key))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who, b"bea");

    let events = fixture.audit.events();
    assert_eq!(
        events,
        vec![Seen {
            action: KeyAction::Issue,
            outcome: KeyAdminOutcome::Done,
            status: 201,
            reason: None,
            subject: Some("ada".to_owned()),
            key_id: Some(id.to_owned()),
            new_key_id: None,
            owner: Some("bea".to_owned()),
        }]
    );
    assert!(
        !fixture.audit.text().contains(key),
        "the secret in the audit"
    );
}

#[tokio::test]
async fn listing_and_reading_show_no_secret_and_no_digest() {
    let fixture = Fixture::new().await;
    let (key, id) = issue(&fixture, r#"{"owner": "bea"}"#).await;
    let (status, headers, bytes) = fixture
        .send(get("/admin/keys", Some(fixture.admin_key())))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let list = json_of(&bytes);
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 3);
    let secrets = [
        key.as_str(),
        fixture.admin_key(),
        fixture.viewer.key.expose_secret(),
    ];
    for secret in secrets {
        // Nothing of the secret part (after the id) appears.
        let tail = &secret[secret.len() - 20..];
        assert!(!text.contains(tail), "a secret in {text}");
    }
    for record in list {
        assert!(record.get("digest").is_none(), "{record}");
        assert!(record.get("key").is_none(), "{record}");
    }
    // Nor does any record's digest, in the form the store keeps it.
    for record in [&fixture.admin.record, &fixture.viewer.record] {
        let stored = serde_json::to_value(record).expect("serialises");
        let digest = stored["digest"].as_str().expect("the digest as hex");
        assert!(digest.len() >= 32);
        assert!(!text.contains(digest), "a digest in {text}");
    }

    let (status, _, bytes) = fixture
        .send(get("/admin/keys?owner=bea", Some(fixture.admin_key())))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&bytes).as_array().map(Vec::len), Some(1));

    let (status, _, bytes) = fixture
        .send(get(&format!("/admin/keys/{id}"), Some(fixture.admin_key())))
        .await;
    assert_eq!(status, StatusCode::OK);
    let record = json_of(&bytes);
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["owner"], "bea");
    assert!(record.get("digest").is_none());

    // Reads are not changes: only the issue was reported.
    assert_eq!(fixture.audit.events().len(), 1);
}

#[tokio::test]
async fn rotation_overlaps_then_the_old_key_stops() {
    let fixture = Fixture::new().await;
    let (old, id) = issue(&fixture, r#"{"owner": "bea", "roles": ["viewer"]}"#).await;
    let (status, headers, bytes) = fixture
        .send(request(
            "POST",
            &format!("/admin/keys/{id}/rotate"),
            Some(fixture.admin_key()),
            Some(r#"{"overlap_secs": 60}"#),
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(headers["cache-control"], "no-store");
    let body = json_of(&bytes);
    let new = body["key"].as_str().expect("new secret").to_owned();
    let new_id = body["record"]["id"].as_str().expect("new id").to_owned();
    assert_ne!(new_id, id);
    assert_eq!(body["record"]["owner"], "bea");
    assert_eq!(body["record"]["roles"], json!(["viewer"]));
    // The old key's record, with its expiry moved to the end of the overlap.
    let previous = &body["previous"];
    assert_eq!(previous["id"], id.as_str());
    assert!(previous.get("digest").is_none());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let ends = previous["expires_at"].as_u64().expect("an expiry");
    assert!((now + 58..=now + 61).contains(&ends), "{ends} vs {now}");

    // During the overlap, both work.
    assert_eq!(fixture.whoami(&old).await, StatusCode::OK);
    assert_eq!(fixture.whoami(&new).await, StatusCode::OK);
    fixture.store.advance(Duration::from_secs(50));
    assert_eq!(fixture.whoami(&old).await, StatusCode::OK);
    // After it, only the new one.
    fixture.store.advance(Duration::from_secs(15));
    assert_eq!(fixture.whoami(&old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(fixture.whoami(&new).await, StatusCode::OK);

    let rotate = fixture.audit.events().pop().expect("an event");
    assert_eq!(rotate.action, KeyAction::Rotate);
    assert_eq!(rotate.outcome, KeyAdminOutcome::Done);
    assert_eq!(rotate.key_id.as_deref(), Some(id.as_str()));
    assert_eq!(rotate.new_key_id.as_deref(), Some(new_id.as_str()));
    assert_eq!(rotate.subject.as_deref(), Some("ada"));
    assert!(!fixture.audit.text().contains(&new));
}

#[tokio::test]
async fn rotation_defaults_to_an_hour_and_zero_ends_the_old_key_at_once() {
    let fixture = Fixture::new().await;
    let (old, id) = issue(&fixture, r#"{"owner": "bea"}"#).await;
    // No body: the default overlap, one hour.
    let (status, _, _) = fixture
        .send(request(
            "POST",
            &format!("/admin/keys/{id}/rotate"),
            Some(fixture.admin_key()),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    fixture.store.advance(Duration::from_secs(3590));
    assert_eq!(fixture.whoami(&old).await, StatusCode::OK);
    fixture.store.advance(Duration::from_secs(20));
    assert_eq!(fixture.whoami(&old).await, StatusCode::UNAUTHORIZED);

    let (old, id) = issue(&fixture, r#"{"owner": "cal"}"#).await;
    let (status, _, bytes) = fixture
        .send(request(
            "POST",
            &format!("/admin/keys/{id}/rotate"),
            Some(fixture.admin_key()),
            Some(r#"{"overlap_secs": 0}"#),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let new = json_of(&bytes)["key"].as_str().expect("secret").to_owned();
    assert_eq!(fixture.whoami(&old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(fixture.whoami(&new).await, StatusCode::OK);
    // The old key has expired: rotating it again is refused (its successor would inherit
    // a lifetime already over); rotate the successor instead.
    let (status, _, bytes) = fixture
        .send(request(
            "POST",
            &format!("/admin/keys/{id}/rotate"),
            Some(fixture.admin_key()),
            Some(r#"{"overlap_secs": 0}"#),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json_of(&bytes)["code"], "key_expired");

    // Out of bounds, unknown fields: 400, nothing rotated.
    let count = fixture.count().await;
    for body in [
        r#"{"overlap_secs": 604801}"#,
        r#"{"overlap": 5}"#,
        r#"{"overlap_secs": -1}"#,
    ] {
        let (status, _, bytes) = fixture
            .send(request(
                "POST",
                &format!("/admin/keys/{id}/rotate"),
                Some(fixture.admin_key()),
                Some(body),
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            json_of(&bytes)["code"],
            if body.contains("604801") {
                "schema_violation"
            } else {
                "invalid_json"
            }
        );
    }
    assert_eq!(fixture.count().await, count);
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once() {
    let fixture = Fixture::new().await;
    let viewer = fixture.viewer.key.expose_secret();
    let id = fixture.viewer.record.id().as_str();
    assert_eq!(fixture.whoami(viewer).await, StatusCode::OK);
    let (status, headers, bytes) = fixture
        .send(request(
            "DELETE",
            &format!("/admin/keys/{id}"),
            Some(fixture.admin_key()),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(bytes.is_empty());
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(fixture.whoami(viewer).await, StatusCode::UNAUTHORIZED);

    let (_, _, bytes) = fixture
        .send(get(&format!("/admin/keys/{id}"), Some(fixture.admin_key())))
        .await;
    assert!(json_of(&bytes)["revoked_at"].is_u64());

    // A revoked key cannot be rotated.
    let (status, _, bytes) = fixture
        .send(request(
            "POST",
            &format!("/admin/keys/{id}/rotate"),
            Some(fixture.admin_key()),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json_of(&bytes)["code"], "key_revoked");

    let events = fixture.audit.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0],
        Seen {
            action: KeyAction::Revoke,
            outcome: KeyAdminOutcome::Done,
            status: 204,
            reason: None,
            subject: Some("ada".to_owned()),
            key_id: Some(id.to_owned()),
            new_key_id: None,
            owner: Some("vic".to_owned()),
        }
    );
    assert_eq!(events[1].action, KeyAction::Rotate);
    assert_eq!(events[1].outcome, KeyAdminOutcome::Refused);
    assert_eq!(events[1].reason, Some("key_revoked"));
}

#[tokio::test]
async fn the_key_in_use_cannot_revoke_itself() {
    let fixture = Fixture::new().await;
    let id = fixture.admin.record.id().as_str();
    let (status, _, bytes) = fixture
        .send(request(
            "DELETE",
            &format!("/admin/keys/{id}"),
            Some(fixture.admin_key()),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json_of(&bytes)["code"], "self_revocation");
    assert_eq!(fixture.whoami(fixture.admin_key()).await, StatusCode::OK);
    let event = fixture.audit.events().pop().expect("reported");
    assert_eq!(event.outcome, KeyAdminOutcome::Refused);
    assert_eq!(event.reason, Some("self_revocation"));
}

#[tokio::test]
async fn without_the_role_nothing_is_reachable_or_changed() {
    let fixture = Fixture::new().await;
    let viewer = fixture.viewer.key.expose_secret();
    let admin_id = fixture.admin.record.id().as_str();
    let count = fixture.count().await;
    let calls = [
        ("GET", "/admin/keys".to_owned(), None),
        (
            "POST",
            "/admin/keys".to_owned(),
            Some(r#"{"owner": "mallory", "roles": ["key-admin"]}"#),
        ),
        ("GET", format!("/admin/keys/{admin_id}"), None),
        ("POST", format!("/admin/keys/{admin_id}/rotate"), None),
        ("DELETE", format!("/admin/keys/{admin_id}"), None),
        ("GET", "/admin/keys/no/such/path".to_owned(), None),
        ("PUT", "/admin/keys".to_owned(), None),
    ];
    for (method, path, body) in &calls {
        let (status, _, bytes) = fixture
            .send(request(method, path, Some(viewer), *body))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(json_of(&bytes)["code"], "forbidden");
        let (status, headers, _) = fixture.send(request(method, path, None, *body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(headers["www-authenticate"], r#"ApiKey realm="api""#);
    }
    assert_eq!(fixture.count().await, count);
    assert_eq!(fixture.whoami(fixture.admin_key()).await, StatusCode::OK);
    let events = fixture.audit.events();
    assert_eq!(events.len(), calls.len() * 2);
    assert!(events.iter().all(|e| e.outcome == KeyAdminOutcome::Refused));
    let actions: Vec<KeyAction> = events.iter().step_by(2).map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            KeyAction::List,
            KeyAction::Issue,
            KeyAction::Read,
            KeyAction::Rotate,
            KeyAction::Revoke,
            KeyAction::Unknown,
            KeyAction::Unknown
        ]
    );
    assert_eq!(events[0].subject.as_deref(), Some("vic"));
    assert_eq!(events[0].status, 403);
    assert_eq!(events[1].subject, None);
    assert_eq!(events[1].reason, Some("missing_credentials"));
}

#[tokio::test]
async fn malformed_requests_are_refused_and_change_nothing() {
    let fixture = Fixture::new().await;
    let admin = fixture.admin_key();
    let count = fixture.count().await;
    let long = "x".repeat(129);
    let many: Vec<String> = (0..33).map(|i| format!("r{i}")).collect();
    let bad_bodies = [
        ("{", "invalid_json"),
        ("[]", "invalid_json"),
        (r#"{"roles": ["viewer"]}"#, "invalid_json"),
        (r#"{"owner": "bea", "admin": true}"#, "invalid_json"),
        (r#"{"owner": 7}"#, "invalid_json"),
        (r#"{"owner": ""}"#, "schema_violation"),
        (&format!(r#"{{"owner": "{long}"}}"#), "schema_violation"),
        (r#"{"owner": "bea\u0000"}"#, "schema_violation"),
        (r#"{"owner": "bea", "roles": ["a b"]}"#, "schema_violation"),
        (
            &json!({"owner": "bea", "roles": many}).to_string(),
            "schema_violation",
        ),
        (r#"{"owner": "bea", "expires_in": 0}"#, "schema_violation"),
        (
            r#"{"owner": "bea", "expires_in": 315360001}"#,
            "schema_violation",
        ),
        (
            &json!({"owner": "bea", "metadata": {"blob": "y".repeat(5000)}}).to_string(),
            "schema_violation",
        ),
    ];
    for (body, code) in &bad_bodies {
        let (status, headers, bytes) = fixture
            .send(request("POST", "/admin/keys", Some(admin), Some(body)))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(json_of(&bytes)["code"], *code, "{body}");
    }
    // Not JSON: 415. Too large: 413. Empty: 400.
    let plain = Request::post("/admin/keys")
        .header("x-api-key", admin)
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"owner": "bea"}"#))
        .expect("request");
    assert_eq!(
        fixture.send(plain).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let huge = format!(r#"{{"owner": "bea", "x": "{}"}}"#, "z".repeat(20_000));
    let (status, _, _) = fixture
        .send(request("POST", "/admin/keys", Some(admin), Some(&huge)))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, bytes) = fixture
        .send(request("POST", "/admin/keys", Some(admin), Some("")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&bytes)["code"], "missing_body");

    // Ids that are not key ids: 400; unknown ids: 404.
    for path in [
        "/admin/keys/short",
        "/admin/keys/0123456789ab!",
        "/admin/keys/%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC",
        // Not UTF-8 once decoded: axum's own extractor fails; the answer is still ours.
        "/admin/keys/%FF",
    ] {
        for method in ["GET", "DELETE"] {
            let (status, _, bytes) = fixture.send(request(method, path, Some(admin), None)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}");
            assert_eq!(json_of(&bytes)["code"], "invalid_request");
        }
        let rotate = format!("{path}/rotate");
        let (status, _, bytes) = fixture
            .send(request("POST", &rotate, Some(admin), None))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rotate}");
        assert_eq!(json_of(&bytes)["code"], "invalid_request", "{rotate}");
    }
    let unknown = "000000000000";
    for (method, path) in [
        ("GET", format!("/admin/keys/{unknown}")),
        ("DELETE", format!("/admin/keys/{unknown}")),
        ("POST", format!("/admin/keys/{unknown}/rotate")),
        ("GET", "/admin/keys/a/b/c".to_owned()),
    ] {
        let (status, headers, bytes) = fixture
            .send(request(method, &path, Some(admin), None))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(json_of(&bytes)["code"].is_string());
    }
    // A method the path does not have: 405.
    let (status, headers, _) = fixture
        .send(request("PUT", "/admin/keys", Some(admin), None))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(headers.contains_key("allow"));
    assert_eq!(fixture.count().await, count);
    // Every refused change attempt was reported; reads were not.
    let events = fixture.audit.events();
    assert!(events.iter().all(|e| e.outcome == KeyAdminOutcome::Refused));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == KeyAction::Issue)
            .count(),
        bad_bodies.len() + 3
    );
}

#[tokio::test]
async fn a_failing_store_answers_503_with_retry_after() {
    let store = Arc::new(Down(MemoryKeyStore::new()));
    let audit = Recorder::default();
    let api = KeyAdminApi::builder(store)
        .role(ADMIN_ROLE)
        .audit(audit.clone())
        .build()
        .expect("valid API");
    // A principal put there by an outer layer (here: by hand).
    let app = Router::new()
        .nest("/admin/keys", api.router())
        .layer(axum::middleware::from_fn(
            |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
                let principal =
                    Principal::builder("ops", portcullis::AuthMethod::Custom("test".into()))
                        .roles([ADMIN_ROLE])
                        .build();
                request.extensions_mut().insert(principal);
                next.run(request).await
            },
        ));
    for (method, path, body) in [
        ("GET", "/admin/keys", None),
        ("POST", "/admin/keys", Some(r#"{"owner": "bea"}"#)),
        ("GET", "/admin/keys/000000000000", None),
        ("DELETE", "/admin/keys/000000000000", None),
        ("POST", "/admin/keys/000000000000/rotate", None),
    ] {
        let (status, headers, bytes) = send(&app, request(method, path, None, body)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {path}");
        assert_eq!(headers["retry-after"], "5");
        assert_eq!(json_of(&bytes)["code"], "unavailable");
    }
    let events = audit.events();
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e.outcome == KeyAdminOutcome::Failed && e.status == 503)
    );
}

/// Needs `authz` (the rules); the rest of this file needs only `api-key` and `axum`.
#[cfg(feature = "authz")]
#[tokio::test]
async fn behind_the_gateway_with_route_rules() {
    let store = Arc::new(MemoryKeyStore::new());
    let admin = store
        .issue(NewKey::for_owner("ada").roles(["admin"]))
        .await
        .expect("admin");
    let viewer = store
        .issue(NewKey::for_owner("vic").roles(["viewer"]))
        .await
        .expect("viewer");
    let rules = RouteRules::builder()
        .role("admin", ["keys:*"])
        .role("viewer", ["orders:read"])
        .route("GET /whoami", authenticated())
        .route("* /admin/keys", role("admin"))
        .route("* /admin/keys/{*rest}", role("admin"))
        .build()
        .expect("rules");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store.clone()))
        .rules(rules)
        .build()
        .expect("gateway");
    let audit = Recorder::default();
    let api = KeyAdminApi::builder(store.clone())
        .role("admin")
        .audit(audit.clone())
        .build()
        .expect("api");
    let app = Router::new()
        .route(
            "/whoami",
            routing::get(|principal: Principal| async move { principal.subject().to_owned() }),
        )
        .nest("/admin/keys", api.router())
        .layer(gateway);
    let admin_key = admin.key.expose_secret();
    let viewer_key = viewer.key.expose_secret();

    let (status, _, bytes) = send(
        &app,
        request(
            "POST",
            "/admin/keys",
            Some(admin_key),
            Some(r#"{"owner": "bea"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let issued = json_of(&bytes)["key"].as_str().expect("secret").to_owned();
    assert_eq!(
        send(&app, get("/whoami", Some(&issued))).await.0,
        StatusCode::OK
    );

    // The gateway's rules refuse the viewer first; the API never hears of it.
    let path = format!("/admin/keys/{}", viewer.record.id());
    let (status, _, _) = send(&app, request("DELETE", &path, Some(viewer_key), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send(&app, request("DELETE", &path, None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, get("/whoami", Some(viewer_key))).await.0,
        StatusCode::OK
    );

    let (status, _, _) = send(&app, request("DELETE", &path, Some(admin_key), None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&app, get("/whoami", Some(viewer_key))).await.0,
        StatusCode::UNAUTHORIZED
    );
    let actions: Vec<_> = audit
        .events()
        .iter()
        .map(|e| (e.action, e.outcome))
        .collect();
    assert_eq!(
        actions,
        [
            (KeyAction::Issue, KeyAdminOutcome::Done),
            (KeyAction::Revoke, KeyAdminOutcome::Done)
        ]
    );
}

#[test]
fn the_builder_needs_a_role() {
    let store = Arc::new(MemoryKeyStore::new());
    assert!(KeyAdminApi::builder(store.clone()).build().is_err());
    assert!(
        KeyAdminApi::builder(store.clone())
            .role("")
            .build()
            .is_err()
    );
    assert!(
        KeyAdminApi::builder(store.clone())
            .role("key admin")
            .build()
            .is_err()
    );
    let api = KeyAdminApi::builder(store)
        .role("key-admin")
        .build()
        .expect("valid");
    assert_eq!(api.role(), "key-admin");
}

/// What the default audit log writes, captured by a global subscriber (the only test here
/// that installs one, and the only one using the default audit).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_default_audit_is_a_tracing_event_on_the_audit_target() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber");

    let store = Arc::new(MemoryKeyStore::new());
    let admin = store
        .issue(NewKey::for_owner("ada").roles([ADMIN_ROLE]))
        .await
        .expect("admin key");
    let api = KeyAdminApi::builder(store.clone())
        .role(ADMIN_ROLE)
        .build()
        .expect("valid API");
    let app = Router::new()
        .nest("/admin/keys", api.router())
        .layer(ApiKeyLayer::new(ApiKeyAuthenticator::new(store)));
    let (status, _, bytes) = send(
        &app,
        request(
            "POST",
            "/admin/keys",
            Some(admin.key.expose_secret()),
            Some(r#"{"owner": "audited-owner"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json_of(&bytes);
    let secret = body["key"].as_str().expect("secret");
    let id = body["record"]["id"].as_str().expect("id");
    let (status, _, _) = send(&app, get("/admin/keys", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let text = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("portcullis::audit") && line.contains("key_admin"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for needle in [
        r#"action="issue""#,
        r#"outcome="done""#,
        "status=201",
        r#"subject="ada""#,
        &format!(r#"key_id="{id}""#),
        &format!(r#"actor_key_id="{}""#, admin.record.id()),
        r#"owner="audited-owner""#,
    ] {
        assert!(lines[0].contains(needle), "{needle} not in {}", lines[0]);
    }
    for needle in [
        r#"action="list""#,
        r#"outcome="refused""#,
        "status=401",
        r#"reason="missing_credentials""#,
    ] {
        assert!(lines[1].contains(needle), "{needle} not in {}", lines[1]);
    }
    assert!(
        !text.contains(&secret[secret.len() - 20..]),
        "a secret in the log"
    );
    assert!(
        !text.contains(&admin.key.expose_secret()[20..]),
        "a secret in the log"
    );
}
