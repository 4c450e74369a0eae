//! The application measured end to end, shared by `benches/gateway.rs` (in-process),
//! `examples/bench_server.rs` (over loopback with `wrk`) and `examples/gateway_requests.rs`
//! (under callgrind): the same axum routes, bare and behind a [`GatewaySecurityLayer`]
//! with API keys, bearer tokens (a static HS256 `KeySet`, token cache on), role-mapped
//! route rules and a JSON Schema for the `POST`.
//!
//! Four scenarios, each sent to both routers:
//!
//! | scenario  | request                                        | gateway rule            |
//! |-----------|------------------------------------------------|-------------------------|
//! | `public`  | `GET /health`                                  | public (no key looked at) |
//! | `api_key` | `GET /orders/42`, `x-api-key`                  | `orders:read` via a role  |
//! | `bearer`  | `GET /orders/42`, the same HS256 token each time | `orders:read` via a role |
//! | `post`    | `POST /orders`, `x-api-key`, a 1 KB JSON order | `orders:write`, schema    |
//!
//! Handlers are trivial. The bare `POST` handler parses the body with `Json<Value>`; behind
//! the gateway it reads the value the validation layer parsed ([`ValidatedJson`]), as an
//! application using the gateway would.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::Request;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis::api_key::{ApiKeyAuthenticator, KeyAdmin, MemoryKeyStore, NewKey};
use portcullis::authz::{RouteRules, permission, public};
use portcullis::bearer::{BearerAuthenticator, IssuerRules, KeySet, VerificationKey};
use portcullis::observe::Observe;
use portcullis::validate::{RequestSchema, ValidatedJson, ValidationRules};
use portcullis::{GatewaySecurity, GatewaySecurityLayer};
use serde_json::{Value, json};
use tower::Layer;

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "orders-api";
const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench-only";

/// One measured request shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    Public,
    ApiKey,
    Bearer,
    Post,
}

impl Scenario {
    pub(crate) const ALL: [Self; 4] = [Self::Public, Self::ApiKey, Self::Bearer, Self::Post];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::ApiKey => "api_key",
            Self::Bearer => "bearer",
            Self::Post => "post",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Credentials and body shared by every request of a run.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub(crate) api_key: String,
    pub(crate) token: String,
    pub(crate) body: Bytes,
}

impl Fixture {
    /// The request of `scenario`.
    pub(crate) fn request(&self, scenario: Scenario) -> Request<Body> {
        let builder = Request::builder().header("host", "127.0.0.1");
        match scenario {
            Scenario::Public => builder.uri("/health").body(Body::empty()),
            Scenario::ApiKey => builder
                .uri("/orders/42")
                .header("x-api-key", &self.api_key)
                .body(Body::empty()),
            Scenario::Bearer => builder
                .uri("/orders/42")
                .header("authorization", format!("Bearer {}", self.token))
                .body(Body::empty()),
            Scenario::Post => builder
                .method("POST")
                .uri("/orders")
                .header("x-api-key", &self.api_key)
                .header("content-type", "application/json")
                .body(Body::from(self.body.clone())),
        }
        .expect("valid request")
    }
}

/// The routes, with no security.
///
/// Both routers are returned `with_state(())`, as `axum::serve` prepares them: handlers
/// become routes (and layers are applied) once, not on every call.
pub(crate) fn bare_router() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/orders/{id}", get(|| async { "order" }))
        .route(
            "/orders",
            post(|Json(order): Json<Value>| async move { order_answer(&order) }),
        )
        .with_state(())
}

/// The same routes behind the gateway applied with `Router::layer` (to each route), and
/// the credentials it accepts.
pub(crate) async fn gated_router() -> (Router, Fixture) {
    let (gated, _, fixture) = gated_routers().await;
    (gated, fixture)
}

/// The same routes behind one gateway applied two ways: with `Router::layer` (to each
/// route, after axum's routing) and wrapped around the whole router (before axum's
/// routing, once per request); and the credentials it accepts.
pub(crate) async fn gated_routers() -> (Router, GatewaySecurity<Router>, Fixture) {
    let (security, fixture) = gateway().await;
    let layered = gated_routes().layer(security.clone()).with_state(());
    let wrapped = security.layer(gated_routes().with_state(()));
    (layered, wrapped, fixture)
}

/// The same routes behind the gateway in a `ReloadableLayer`, replaced once already (the
/// steady state after any reload: each request's copy of the service takes the shared new
/// stack), and the credentials it accepts.
pub(crate) async fn reloaded_router() -> (Router, Fixture) {
    let (security, fixture) = gateway().await;
    let reloadable = portcullis::ReloadableLayer::new(security.clone());
    let handle = reloadable.handle();
    let router = gated_routes().layer(reloadable).with_state(());
    handle.replace(security);
    (router, fixture)
}

fn gated_routes() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/orders/{id}", get(|| async { "order" }))
        .route(
            "/orders",
            post(|Extension(order): Extension<ValidatedJson>| async move {
                order_answer(order.value())
            }),
        )
}

fn order_answer(order: &Value) -> &'static str {
    if order.get("id").is_some() {
        "created"
    } else {
        "no id"
    }
}

/// The same routes behind the gateway applied with `Router::layer`, reporting its decisions
/// to `observer` instead of the default tracing observer.
pub(crate) async fn observed_router(observer: Arc<dyn Observe>) -> (Router, Fixture) {
    let (security, fixture) = gateway_with(Some(observer)).await;
    (gated_routes().layer(security).with_state(()), fixture)
}

async fn gateway() -> (GatewaySecurityLayer, Fixture) {
    gateway_with(None).await
}

async fn gateway_with(observer: Option<Arc<dyn Observe>>) -> (GatewaySecurityLayer, Fixture) {
    let store = Arc::new(MemoryKeyStore::new());
    let issued = store
        .issue(NewKey::for_owner("clerk-service").roles(["clerk"]))
        .await
        .expect("issue key");
    let key = VerificationKey::from_hmac_secret(HMAC_SECRET)
        .expect("hmac key")
        .with_algorithm(jsonwebtoken::Algorithm::HS256)
        .expect("HS256");
    let issuer = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(KeySet::new([key]).expect("key set"))
        .roles_claim("realm_access.roles")
        .build()
        .expect("issuer rules");
    let bearer = BearerAuthenticator::builder()
        .issuer(issuer)
        .build()
        .expect("bearer");
    let rules = RouteRules::builder()
        .role("clerk", ["orders:read", "orders:write"])
        .role("viewer", ["orders:read"])
        .route("GET /health", public())
        .route("GET /orders/{id}", permission("orders:read"))
        .route("POST /orders", permission("orders:write"))
        .build()
        .expect("rules");
    let validation = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new().body(crate::orders::order_schema()),
        )
        .build()
        .expect("validation rules");
    let mut builder = GatewaySecurityLayer::builder();
    if let Some(observer) = observer {
        builder = builder.observer(observer);
    }
    let security = builder
        .authenticate(ApiKeyAuthenticator::new(store))
        .authenticate(bearer)
        .rules(rules)
        .validate(validation)
        .build()
        .expect("gateway");
    let fixture = Fixture {
        api_key: issued.key.expose_secret().to_owned(),
        token: token(),
        body: crate::orders::order(true),
    };
    (security, fixture)
}

/// An RFC 9068 access token valid for a day, granting role `viewer`.
fn token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "f3a1c0de-5b7e-4f55-9a3c-2d1e0b9c8a77",
        "client_id": "orders-web",
        "exp": now + 86_400,
        "iat": now,
        "jti": "0c9f6a2e-9d84-4b0e-8f6a-3e2d1c0b9a88",
        "scope": "orders:read",
        "realm_access": { "roles": ["viewer"] },
    });
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(HMAC_SECRET))
        .expect("encode token")
}
