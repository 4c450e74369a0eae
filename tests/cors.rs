//! CORS preflights never carry an anonymous request into the service: without CORS they
//! are requests like any other (refused unless a rule makes the route public); with the
//! gateway's `cors`, tower-http's `CorsLayer` answers them in front of everything.
//!
//! Every handler and service below counts the requests that reach it; each test asserts
//! the count, not only the status.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::{any, get};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::api_key::{ApiKeyAuthenticator, KeyAdmin, MemoryKeyStore, NewKey};
use portcullis::authz::{RouteRules, public, role};
use portcullis::{ConfigError, GatewaySecurityLayer};
use tower::{ServiceExt, service_fn};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// How many requests reached anything behind the gateway.
#[derive(Clone, Default)]
struct Reached(Arc<AtomicUsize>);

impl Reached {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct Fixture {
    reached: Reached,
    admin_key: String,
    store: Arc<MemoryKeyStore>,
}

impl Fixture {
    async fn new() -> Self {
        let store = Arc::new(MemoryKeyStore::new());
        let admin = store
            .issue(NewKey::for_owner("ada").roles(["admin"]))
            .await
            .expect("issue key");
        Self {
            reached: Reached::default(),
            admin_key: admin.key.expose_secret().to_owned(),
            store,
        }
    }

    fn rules() -> RouteRules {
        RouteRules::builder()
            .role("admin", ["*"])
            .route("GET /health", public())
            .route("* /admin", role("admin"))
            .route("* /proxy/{*rest}", role("admin"))
            .build()
            .expect("valid rules")
    }

    /// An `any()` handler, a `route_service` service (a proxy, say), a `nest_service`, and
    /// the fallback, each counting.
    fn app(&self, cors: Option<CorsLayer>) -> Router {
        let builder = GatewaySecurityLayer::builder()
            .authenticate(ApiKeyAuthenticator::new(self.store.clone()))
            .rules(Self::rules());
        let builder = match cors {
            Some(cors) => builder.cors(cors),
            None => builder,
        };
        let gateway = builder.build().expect("valid gateway");
        let counting = |reached: Reached| {
            service_fn(move |_request: Request<Body>| {
                let reached = reached.clone();
                async move {
                    reached.0.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(Body::from("reached")))
                }
            })
        };
        let (a, b, c) = (
            self.reached.clone(),
            self.reached.clone(),
            self.reached.clone(),
        );
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/admin",
                any(move || async move {
                    a.0.fetch_add(1, Ordering::SeqCst);
                    "admin"
                }),
            )
            .route_service("/proxy/{*rest}", counting(self.reached.clone()))
            .nest_service("/nested", counting(b))
            .fallback(move || async move {
                c.0.fetch_add(1, Ordering::SeqCst);
                "fallback"
            })
            .layer(gateway)
    }
}

fn preflight(path: &str) -> http::request::Builder {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "DELETE")
}

async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.expect("infallible")
}

const PATHS: [&str; 5] = [
    "/admin",
    "/proxy/internal/reset",
    "/nested/anything",
    "/not-covered-by-any-rule",
    "/health",
];

#[tokio::test]
async fn without_cors_a_preflight_is_refused_like_any_anonymous_request() {
    let fixture = Fixture::new().await;
    let app = fixture.app(None);
    for path in PATHS {
        let requests = [
            preflight(path).body(Body::empty()),
            // A body on the preflight.
            preflight(path).body(Body::from("{\"drop\": \"tables\"}")),
            // No `Origin`.
            Request::options(path)
                .header("access-control-request-method", "GET")
                .body(Body::empty()),
            // A plain `OPTIONS`.
            Request::options(path).body(Body::empty()),
        ];
        for request in requests {
            let response = send(&app, request.expect("request")).await;
            assert!(
                matches!(
                    response.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ),
                "OPTIONS {path}: {}",
                response.status()
            );
        }
    }
    assert_eq!(
        fixture.reached.count(),
        0,
        "a preflight reached the service"
    );

    // The same routes are reachable with a key, so the counters can fail.
    let request = Request::delete("/admin")
        .header("x-api-key", &fixture.admin_key)
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, request).await.status(), StatusCode::OK);
    let request = Request::post("/proxy/internal/reset")
        .header("x-api-key", &fixture.admin_key)
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, request).await.status(), StatusCode::OK);
    assert_eq!(fixture.reached.count(), 2);
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::exact(HeaderValue::from_static(
            "https://app.example",
        )))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([http::header::CONTENT_TYPE, http::header::AUTHORIZATION])
}

#[tokio::test]
async fn with_cors_every_options_request_is_answered_in_front() {
    let fixture = Fixture::new().await;
    let app = fixture.app(Some(cors()));
    for path in PATHS {
        let response = send(&app, preflight(path).body(Body::empty()).expect("request")).await;
        assert_eq!(response.status(), StatusCode::OK, "OPTIONS {path}");
        let headers = response.headers();
        assert_eq!(
            headers["access-control-allow-origin"], "https://app.example",
            "{path}"
        );
        assert_eq!(
            headers["access-control-allow-methods"], "GET,POST,DELETE",
            "{path}"
        );
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert!(body.is_empty(), "{path}: {body:?}");

        // With a body, without `Origin`, or not a preflight at all: still answered here.
        let others = [
            preflight(path).body(Body::from("payload")),
            Request::options(path)
                .header("access-control-request-method", "GET")
                .body(Body::empty()),
            Request::options(path).body(Body::empty()),
            Request::options(path)
                .header("x-api-key", &fixture.admin_key)
                .body(Body::empty()),
        ];
        for request in others {
            let response = send(&app, request.expect("request")).await;
            assert_eq!(response.status(), StatusCode::OK, "OPTIONS {path}");
        }
    }
    assert_eq!(
        fixture.reached.count(),
        0,
        "an OPTIONS request reached the service"
    );
}

#[tokio::test]
async fn with_cors_other_requests_are_still_checked_and_get_cors_headers() {
    let fixture = Fixture::new().await;
    let app = fixture.app(Some(cors()));

    // Anonymous: refused, and the refusal carries the CORS headers so the browser can
    // read it.
    let request = Request::delete("/admin")
        .header("origin", "https://app.example")
        .body(Body::empty())
        .expect("request");
    let response = send(&app, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(fixture.reached.count(), 0);

    let request = Request::delete("/admin")
        .header("origin", "https://app.example")
        .header("x-api-key", &fixture.admin_key)
        .body(Body::empty())
        .expect("request");
    let response = send(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(fixture.reached.count(), 1);
}

#[tokio::test]
async fn an_unusable_cors_configuration_fails_at_build() {
    let fixture = Fixture::new().await;
    let error = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(fixture.store.clone()))
        .rules(Fixture::rules())
        .cors(CorsLayer::new().allow_credentials(true).allow_origin(Any))
        .build()
        .expect_err("credentials with a wildcard origin");
    match error {
        ConfigError::InvalidCors { reason } => {
            assert!(reason.contains("Access-Control-Allow-Origin"), "{reason}");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

/// The same CORS, and a rejection format, from a policy file: the file's gateway answers
/// preflights in front and writes refusals with the file's problem `type`.
#[tokio::test]
async fn a_policy_files_cors_and_rejection_format_are_the_gateways() {
    let fixture = Fixture::new().await;
    let policy = portcullis::config::PolicyFile::parse(
        r#"
roles: {admin: ["*"]}
routes:
  - {route: GET /health, require: public}
  - {route: "* /admin", require: role(admin)}
cors:
  allow_origins: [https://app.example]
  allow_methods: [GET, POST, DELETE]
  allow_headers: [content-type, authorization]
  max_age: 600
rejection:
  type_base: https://errors.example.com/
"#,
        portcullis::config::Format::Yaml,
    )
    .expect("parses");
    let (builder, _) = policy.gateway().unwrap_or_else(|errors| panic!("{errors}"));
    let gateway = builder
        .authenticate(ApiKeyAuthenticator::new(fixture.store.clone()))
        .build()
        .expect("gateway");
    let reached = fixture.reached.clone();
    let app = Router::new()
        .route(
            "/admin",
            any(move || async move {
                reached.0.fetch_add(1, Ordering::SeqCst);
                "admin"
            }),
        )
        .layer(gateway);

    let response = send(
        &app,
        preflight("/admin").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(headers["access-control-allow-methods"], "GET,POST,DELETE");
    assert_eq!(headers["access-control-max-age"], "600");
    assert_eq!(
        fixture.reached.count(),
        0,
        "the preflight reached the service"
    );

    // Another origin's preflight gets no CORS headers: the browser refuses the call.
    let foreign = Request::options("/admin")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "DELETE")
        .body(Body::empty())
        .expect("request");
    let response = send(&app, foreign).await;
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        response.headers()
    );

    let anonymous = Request::delete("/admin")
        .header("origin", "https://app.example")
        .body(Body::empty())
        .expect("request");
    let response = send(&app, anonymous).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem+json");
    assert_eq!(
        problem["type"],
        "https://errors.example.com/missing_credentials"
    );
    assert_eq!(fixture.reached.count(), 0);
}

#[test]
fn a_policy_file_cannot_write_a_cors_browsers_refuse() {
    let policy = portcullis::config::PolicyFile::parse(
        "cors: {allow_origins: ['*'], allow_credentials: true, allow_headers: [authorization]}",
        portcullis::config::Format::Yaml,
    )
    .expect("parses");
    let errors = policy
        .gateway()
        .map(|_| ())
        .expect_err("credentials with *");
    assert_eq!(errors.errors()[0].place, "cors.allow_origins");
    assert!(errors.to_string().contains("allow_credentials"), "{errors}");
}
