//! End to end: business rules in the validation layer, through an axum `Router`.
#![cfg(all(feature = "validate", feature = "axum"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request as AxumRequest;
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use portcullis::validate::{
    RequestSchema, RuleInput, RuleRequest, ValidateLayer, ValidatedJson, ValidationRules,
};
use portcullis::{AuthMethod, ConfigError, Principal, Violation};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Answers with the exact bytes it received.
async fn echo_bytes(request: AxumRequest) -> Vec<u8> {
    request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes().to_vec())
        .unwrap_or_default()
}

fn app_with(rules: ValidationRules) -> Router {
    Router::new()
        .route("/bookings", post(echo_bytes))
        .route("/orders", post(echo_bytes))
        .route("/orders/{id}", get(echo_bytes).put(echo_bytes))
        .route(
            "/parsed",
            post(
                |Extension(json): Extension<ValidatedJson>| async move { json.value().to_string() },
            ),
        )
        .layer(ValidateLayer::new(rules))
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

fn post_json(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request")
}

fn problem(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("problem+json")
}

fn booking_schema() -> Value {
    json!({
        "type": "object",
        "required": ["start", "end"],
        "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}}
    })
}

/// "`end` after `start`", as a plain closure.
fn end_after_start(input: &RuleInput<'_>) -> Vec<Violation> {
    let Some(body) = input.body() else {
        return Vec::new();
    };
    if body["end"].as_i64() <= body["start"].as_i64() {
        vec![Violation::new(
            "body",
            "/end",
            "end_after_start",
            "`end` must be after `start`",
        )]
    } else {
        Vec::new()
    }
}

#[tokio::test]
async fn a_sync_rule_answers_422_with_its_pointer() {
    let rules = ValidationRules::builder()
        .route(
            "POST /bookings",
            RequestSchema::new()
                .body(booking_schema())
                .rule("end after start", end_after_start),
        )
        .build()
        .expect("rules");
    let app = app_with(rules);

    let (status, headers, body) =
        send(&app, post_json("/bookings", r#"{"start":5,"end":3}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers["content-type"], "application/problem+json");
    let problem = problem(&body);
    assert_eq!(problem["code"], "rule_violation");
    assert_eq!(problem["status"], 422);
    assert_eq!(
        problem["violations"],
        json!([{"location": "body", "pointer": "/end", "keyword": "end_after_start",
                "message": "`end` must be after `start`"}])
    );

    let sent = r#"{"start":3,"end":5}"#;
    let (status, _, body) = send(&app, post_json("/bookings", sent)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, sent.as_bytes());
}

fn caller(role: &str) -> Principal {
    Principal::builder("someone", AuthMethod::Bearer)
        .roles([role])
        .build()
}

fn order_of(items: usize, principal: Option<Principal>) -> Request<Body> {
    let items: Vec<Value> = (0..items).map(|i| json!({"sku": i})).collect();
    let mut request = post_json("/orders", json!({"items": items}).to_string());
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
    request
}

#[tokio::test]
async fn a_rule_can_depend_on_the_principal() {
    let rules = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new()
                .body(json!({"type": "object", "required": ["items"],
                             "properties": {"items": {"type": "array"}}}))
                .rule("viewers order at most 10 items", |input: &RuleInput<'_>| {
                    let viewer = input
                        .principal()
                        .is_none_or(|principal| principal.has_role("viewer"));
                    let items = input
                        .body()
                        .and_then(|body| body["items"].as_array())
                        .map_or(0, Vec::len);
                    if viewer && items > 10 {
                        vec![Violation::new(
                            "body",
                            "/items",
                            "max_items_for_role",
                            "a viewer may order at most 10 items",
                        )]
                    } else {
                        Vec::new()
                    }
                }),
        )
        .build()
        .expect("rules");
    let app = app_with(rules);

    let (status, _, body) = send(&app, order_of(11, Some(caller("viewer")))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(&body)["violations"][0]["pointer"], "/items");
    let (status, _, _) = send(&app, order_of(10, Some(caller("viewer")))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, order_of(11, Some(caller("admin")))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, order_of(11, None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A rule that counts its calls and refuses with `pointer`.
fn counting(
    calls: &Arc<AtomicUsize>,
    pointer: &'static str,
) -> impl Fn(&RuleInput<'_>) -> Vec<Violation> + Send + Sync + 'static {
    let calls = calls.clone();
    move |_: &RuleInput<'_>| {
        calls.fetch_add(1, Ordering::SeqCst);
        vec![Violation::new("body", pointer, "counted", "refused")]
    }
}

#[tokio::test]
async fn rules_run_only_on_schema_valid_bodies() {
    let calls = Arc::new(AtomicUsize::new(0));
    let rules = ValidationRules::builder()
        .route(
            "POST /bookings",
            RequestSchema::new()
                .body(booking_schema())
                .rule("counted", counting(&calls, "/start")),
        )
        .build()
        .expect("rules");
    let app = app_with(rules);

    let (status, _, body) = send(&app, post_json("/bookings", r#"{"start":"soon"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem(&body)["code"], "schema_violation");
    let (status, _, _) = send(&app, post_json("/bookings", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let (status, _, _) = send(&app, post_json("/bookings", r#"{"start":1,"end":2}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_first_failing_rule_answers_and_later_ones_do_not_run() {
    let passing = Arc::new(AtomicUsize::new(0));
    let first = Arc::new(AtomicUsize::new(0));
    let second = Arc::new(AtomicUsize::new(0));
    let counted = passing.clone();
    let rules = ValidationRules::builder()
        .route(
            "POST /bookings",
            RequestSchema::new()
                .body(booking_schema())
                .rule("passes", move |_: &RuleInput<'_>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Vec::new()
                })
                .rule("first", counting(&first, "/start")),
        )
        // A builder rule runs after the route's own.
        .rule("POST /bookings", "second", counting(&second, "/end"))
        .build()
        .expect("rules");
    let app = app_with(rules);

    let (status, _, body) = send(&app, post_json("/bookings", r#"{"start":1,"end":2}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let violations = &problem(&body)["violations"];
    assert_eq!(violations.as_array().map(Vec::len), Some(1));
    assert_eq!(violations[0]["pointer"], "/start");
    assert_eq!(passing.load(Ordering::SeqCst), 1);
    assert_eq!(first.load(Ordering::SeqCst), 1);
    assert_eq!(second.load(Ordering::SeqCst), 0);
}

/// An async rule that "looks up" the order id in a store of known ids.
fn known_ids_app(timeout: Option<Duration>) -> Router {
    let known: Arc<[&str]> = Arc::from(vec!["a-1", "b-2"]);
    let mut builder = ValidationRules::builder().route(
        "PUT /orders/{id}",
        RequestSchema::new()
            .body(json!({"type": "object"}))
            .async_rule("order exists", move |request: RuleRequest| {
                let known = known.clone();
                async move {
                    tokio::task::yield_now().await;
                    match request.path_param("id") {
                        Some(id) if known.contains(&id) => Vec::new(),
                        _ => vec![Violation::new("path", "/id", "exists", "no such order")],
                    }
                }
            }),
    );
    if let Some(timeout) = timeout {
        builder = builder.business_rule_timeout(timeout);
    }
    app_with(builder.build().expect("rules"))
}

fn put_json(path: &str, body: &'static str) -> Request<Body> {
    Request::put(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn an_async_rule_passes_the_exact_bytes_or_refuses() {
    let app = known_ids_app(None);
    let sent = "{ \"note\" :\n \"keep  my  spacing\" }";
    let (status, _, body) = send(&app, put_json("/orders/a-1", sent)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, sent.as_bytes());

    let (status, _, body) = send(&app, put_json("/orders/zz-9", sent)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(&body);
    assert_eq!(problem["code"], "rule_violation");
    assert_eq!(
        problem["violations"][0],
        json!({"location": "path", "pointer": "/id", "keyword": "exists",
               "message": "no such order"})
    );
}

#[tokio::test]
async fn path_parameters_are_percent_decoded() {
    let app = known_ids_app(None);
    let (status, _, _) = send(&app, put_json("/orders/a%2D1", "{}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_slow_async_rule_times_out_with_503_and_retry_after() {
    let rules = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new()
                .body(json!({"type": "object"}))
                .async_rule("slow lookup", |_: RuleRequest| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Vec::new()
                }),
        )
        .build()
        .expect("rules");
    let app = app_with(rules);
    let started = tokio::time::Instant::now();
    let (status, headers, body) = send(&app, post_json("/orders", "{}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(problem(&body)["code"], "unavailable");
    // The paused clock advanced to the default 1 s timeout, not to the rule's 30 s.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn the_timeout_is_configurable() {
    let rules = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new()
                .body(json!({"type": "object"}))
                .async_rule("2 s lookup", |_: RuleRequest| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Vec::new()
                }),
        )
        .business_rule_timeout(Duration::from_secs(5))
        .build()
        .expect("rules");
    // Past the default 1 s, within the 5 s set.
    let (status, _, _) = send(&app_with(rules), post_json("/orders", "{}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_panicking_sync_rule_answers_500_and_the_server_keeps_serving() {
    let rules = ValidationRules::builder()
        .route(
            "POST /bookings",
            RequestSchema::new().body(booking_schema()).rule(
                "panics on zero",
                |input: &RuleInput<'_>| {
                    assert_ne!(input.body().map(|body| &body["start"]), Some(&json!(0)));
                    Vec::new()
                },
            ),
        )
        .build()
        .expect("rules");
    let app = app_with(rules);
    let (status, _, body) = send(&app, post_json("/bookings", r#"{"start":0,"end":1}"#)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(problem(&body)["code"], "rule_failed");
    let (status, _, _) = send(&app, post_json("/bookings", r#"{"start":1,"end":2}"#)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_panicking_async_rule_answers_500() {
    let rules = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new()
                .body(json!({"type": "object"}))
                .async_rule("panics while polled", |_: RuleRequest| async {
                    tokio::task::yield_now().await;
                    panic!("the lookup failed");
                }),
        )
        .route(
            "POST /bookings",
            RequestSchema::new().body(booking_schema()).async_rule(
                "panics making its future",
                |_: RuleRequest| -> std::future::Ready<Vec<Violation>> {
                    panic!("no future today")
                },
            ),
        )
        .build()
        .expect("rules");
    let app = app_with(rules);
    for (path, body) in [("/orders", "{}"), ("/bookings", r#"{"start":1,"end":2}"#)] {
        let (status, _, body) = send(&app, post_json(path, body)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(problem(&body)["code"], "rule_failed");
    }
}

#[tokio::test]
async fn routes_without_a_body_schema_run_their_rules_without_a_body() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let rules = ValidationRules::builder()
        .route("GET /orders/{id}", RequestSchema::new())
        .rule(
            "GET /orders/{id}",
            "no body, decoded id",
            move |input: &RuleInput<'_>| {
                counted.fetch_add(1, Ordering::SeqCst);
                assert!(input.body().is_none());
                match (input.path_param("id"), input.query_param("view").as_deref()) {
                    (Some("a b"), Some("full")) => Vec::new(),
                    _ => vec![Violation::new("query", "/view", "view", "bad view")],
                }
            },
        )
        .build()
        .expect("rules");
    let app = app_with(rules);
    let request = Request::get("/orders/a%20b?view=full")
        .body(Body::from("streamed as it came"))
        .expect("request");
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "streamed as it came".as_bytes());
    let request = Request::get("/orders/a%20b?view=brief")
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(&body)["violations"][0]["location"], "query");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_async_rule_on_a_streaming_route_passes_the_body_untouched() {
    let rules = ValidationRules::builder()
        .route("PUT /orders/{id}", RequestSchema::new())
        .async_rule(
            "PUT /orders/{id}",
            "waits",
            |request: RuleRequest| async move {
                tokio::task::yield_now().await;
                assert!(request.body().is_none());
                Vec::new()
            },
        )
        .build()
        .expect("rules");
    let app = app_with(rules);
    let request = Request::put("/orders/1")
        .header("content-type", "text/plain")
        .body(Body::from("not json at all"))
        .expect("request");
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "not json at all".as_bytes());
}

#[tokio::test]
async fn the_parsed_body_is_still_offered_after_the_rules() {
    let rules = ValidationRules::builder()
        .route(
            "POST /parsed",
            RequestSchema::new()
                .body(json!({"type": "object"}))
                .async_rule("passes", |_: RuleRequest| async { Vec::new() }),
        )
        .build()
        .expect("rules");
    let app = app_with(rules);
    let (status, _, body) = send(&app, post_json("/parsed", r#"{"a": 1}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"a":1}"#.as_bytes());
}

const BOOKINGS_OPENAPI: &str = r#"
openapi: 3.0.3
info: {title: bookings, version: "1"}
paths:
  /bookings:
    post:
      operationId: book
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [start, end]
              properties:
                start: {type: integer}
                end: {type: integer}
      responses:
        "200": {description: booked}
"#;

#[tokio::test]
async fn routes_from_an_openapi_document_get_builder_rules() {
    let spec = portcullis::validate::OpenApiSpec::parse(BOOKINGS_OPENAPI).expect("document");
    let later = Arc::new(AtomicUsize::new(0));
    let rules = ValidationRules::builder()
        .openapi(&spec)
        .rule("POST /bookings", "end after start", end_after_start)
        .async_rule("POST /bookings", "after the first", {
            let later = later.clone();
            move |_: RuleRequest| {
                later.fetch_add(1, Ordering::SeqCst);
                async { Vec::new() }
            }
        })
        .build()
        .expect("rules");
    let app = app_with(rules);
    let (status, _, body) = send(&app, post_json("/bookings", r#"{"start":5,"end":3}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(&body)["violations"][0]["pointer"], "/end");
    assert_eq!(later.load(Ordering::SeqCst), 0);
    let (status, _, body) = send(&app, post_json("/bookings", r#"{"start":"x","end":3}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem(&body)["code"], "schema_violation");
    let (status, _, _) = send(&app, post_json("/bookings", r#"{"start":3,"end":5}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(later.load(Ordering::SeqCst), 1);
}

#[test]
fn a_builder_rule_for_an_unknown_route_is_refused_at_build() {
    let error = ValidationRules::builder()
        .route("POST /orders", RequestSchema::new())
        .rule("POST /bookings", "end after start", end_after_start)
        .build()
        .expect_err("no such route");
    assert_eq!(
        error,
        ConfigError::UnknownRuleRoute {
            route: "POST /bookings".into(),
            rule: "end after start".into(),
        }
    );
    let error = ValidationRules::builder()
        .business_rule_timeout(Duration::ZERO)
        .build()
        .expect_err("zero timeout");
    assert_eq!(
        error,
        ConfigError::InvalidLimit {
            setting: "business_rule_timeout"
        }
    );
}
