//! End to end: request validation through an axum `Router`, alone and inside the gateway.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request as AxumRequest;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use portcullis::GatewaySecurityLayer;
use portcullis::api_key::{ApiKeyAuthenticator, KeyAdmin, MemoryKeyStore, NewKey};
use portcullis::authz::RouteRules;
use portcullis::validate::{
    JsonLimits, OpenApiSpec, RequestSchema, ValidateLayer, ValidatedJson, ValidationRules,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Answers with the exact bytes it received, so tests can compare them with what was sent.
async fn echo_bytes(request: AxumRequest) -> Vec<u8> {
    request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes().to_vec())
        .unwrap_or_default()
}

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["item", "quantity"],
        "properties": {
            "item": {"type": "string", "minLength": 1, "maxLength": 64},
            "quantity": {"type": "integer", "minimum": 1},
            "email": {"type": "string", "format": "email"},
            "id": {"type": "string", "format": "uuid"}
        },
        "additionalProperties": false
    })
}

fn app_with(rules: ValidationRules) -> Router {
    Router::new()
        .route("/orders", post(echo_bytes).get(echo_bytes))
        .route("/orders/{id}", get(echo_bytes).put(echo_bytes))
        .route("/raw", post(echo_bytes))
        .route(
            "/parsed",
            post(|Extension(json): Extension<ValidatedJson>| async move {
                Json(json.value().clone())
            }),
        )
        .route("/typed", post(|Json(value): Json<Value>| async move { Json(value) }))
        .layer(ValidateLayer::new(rules))
}

fn app() -> Router {
    let rules = ValidationRules::builder()
        .route("POST /orders", RequestSchema::new().body(order_schema()))
        .route(
            "POST /parsed",
            RequestSchema::new().body(json!({"type": "object"})),
        )
        .route(
            "POST /typed",
            RequestSchema::new().body(json!({"type": "object"})),
        )
        .route(
            "GET /orders",
            RequestSchema::new().query(json!({
                "type": "object",
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    "tag": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{1,8}$"}},
                    "express": {"type": "boolean"}
                },
                "additionalProperties": false
            })),
        )
        .route(
            "GET|PUT /orders/{id}",
            RequestSchema::new()
                .path(json!({
                    "type": "object",
                    "properties": {"id": {"type": "integer", "minimum": 1}}
                }))
                .headers(json!({
                    "type": "object",
                    "required": ["x-request-id"],
                    "properties": {"x-request-id": {"type": "string", "format": "uuid"}}
                })),
        )
        .build()
        .expect("valid rules");
    app_with(rules)
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

#[tokio::test]
async fn valid_bodies_reach_the_service_byte_for_byte() {
    let app = app();
    let sent = "{ \"item\" : \"widget\",\n  \"quantity\": 2 }";
    let (status, _, body) = send(&app, post_json("/orders", sent)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, sent.as_bytes());

    // `+json` media types and parameters on the media type are fine.
    let request = Request::post("/orders")
        .header("content-type", "application/vnd.acme+json; charset=utf-8")
        .body(Body::from(sent))
        .expect("request");
    assert_eq!(send(&app, request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn schema_violations_are_listed_with_pointers() {
    let app = app();
    let sent = json!({"item": "", "quantity": 0, "email": "nope", "extra": true});
    let (status, headers, body) = send(&app, post_json("/orders", sent.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "application/problem+json");
    let details = problem(&body);
    assert_eq!(details["code"], "schema_violation");
    let violations = details["violations"].as_array().expect("violations");
    let seen: Vec<(String, String)> = violations
        .iter()
        .map(|v| {
            assert_eq!(v["location"], "body");
            (
                v["pointer"].as_str().unwrap_or_default().to_owned(),
                v["keyword"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("/item", "minLength"),
        ("/quantity", "minimum"),
        ("/email", "format"),
        ("", "additionalProperties"),
    ] {
        assert!(
            seen.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {seen:?}"
        );
    }
}

#[tokio::test]
async fn violations_are_capped_and_do_not_echo_large_values() {
    let rules = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new().body(json!({
                "type": "array",
                "items": {"type": "integer"}
            })),
        )
        .max_violations(3)
        .unprocessable_entity()
        .build()
        .expect("valid rules");
    let app = app_with(rules);
    let long = "x".repeat(5_000);
    let sent = json!([long, long, long, long, long]);
    let (status, _, body) = send(&app, post_json("/orders", sent.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let details = problem(&body);
    assert_eq!(details["violations"].as_array().map(Vec::len), Some(3));
    assert!(body.len() < 2_000, "response of {} bytes", body.len());
}

#[tokio::test]
async fn every_draft_is_supported() {
    let drafts = [
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-07/schema#",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
    ];
    for draft in drafts {
        let schema = json!({
            "$schema": draft,
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"$ref": "#/definitions/positive"}},
            "definitions": {"positive": {"type": "integer", "minimum": 1}}
        });
        let rules = ValidationRules::builder()
            .route("POST /orders", RequestSchema::new().body(schema))
            .build()
            .unwrap_or_else(|error| panic!("{draft}: {error}"));
        let app = app_with(rules);
        let ok = send(&app, post_json("/orders", r#"{"n": 3}"#)).await.0;
        let bad = send(&app, post_json("/orders", r#"{"n": 0}"#)).await.0;
        assert_eq!(
            (ok, bad),
            (StatusCode::OK, StatusCode::BAD_REQUEST),
            "{draft}"
        );
    }
}

#[tokio::test]
async fn parameters_are_coerced_and_validated() {
    let app = app();
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    assert_eq!(
        send(&app, get("/orders?limit=10&express=true")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get("/orders?tag=a&tag=b")).await.0,
        StatusCode::OK
    );
    // A query array repeats the parameter; a comma is part of the value.
    assert_eq!(
        send(&app, get("/orders?tag=a,b")).await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, _, body) = send(&app, get("/orders?limit=1000&express=maybe")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let details = problem(&body);
    let violations = details["violations"].as_array().expect("violations");
    assert!(violations.iter().all(|v| v["location"] == "query"));
    assert_eq!(violations.len(), 2, "{violations:?}");
    assert_eq!(
        send(&app, get("/orders?other=1")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&app, get("/orders?tag=waytoolongtag")).await.0,
        StatusCode::BAD_REQUEST
    );

    let with_id = |uri: &str, id: Option<&str>| {
        let mut builder = Request::get(uri);
        if let Some(id) = id {
            builder = builder.header("x-request-id", id);
        }
        builder.body(Body::empty()).expect("request")
    };
    let uuid = "5f0c6a9e-3c1b-4b8e-9d2a-1f2e3d4c5b6a";
    assert_eq!(
        send(&app, with_id("/orders/7", Some(uuid))).await.0,
        StatusCode::OK
    );
    let (status, _, body) = send(&app, with_id("/orders/0", Some(uuid))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem(&body)["violations"][0]["location"], "path");
    let (status, _, body) = send(&app, with_id("/orders/abc", Some(uuid))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem(&body)["violations"][0]["keyword"], "type");
    let (status, _, body) = send(&app, with_id("/orders/7", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem(&body)["violations"][0]["location"], "header");
    let (status, _, _) = send(&app, with_id("/orders/7", Some("not-a-uuid"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wrong_media_types_get_415_and_missing_bodies_400() {
    let app = app();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        None,
    ] {
        let mut builder = Request::post("/orders");
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        let request = builder
            .body(Body::from(r#"{"item":"a","quantity":1}"#))
            .expect("request");
        let (status, _, body) = send(&app, request).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(problem(&body)["code"], "unsupported_media_type");
    }
    let (status, _, body) = send(&app, post_json("/orders", Body::empty())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem(&body)["code"], "missing_body");
}

/// A body delivered in the given chunks, without a length, like a chunked upload.
struct Chunked {
    chunks: VecDeque<Bytes>,
    /// After the chunks: end (false) or stall forever (true), like a trickling client.
    stall: bool,
}

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None if self.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

fn chunked(chunks: Vec<&[u8]>, stall: bool) -> Request<Body> {
    let body = Chunked {
        chunks: chunks.into_iter().map(Bytes::copy_from_slice).collect(),
        stall,
    };
    Request::post("/raw")
        .header("content-type", "application/json")
        .body(Body::new(body))
        .expect("request")
}

fn limited(limits: JsonLimits, max_body_bytes: usize) -> Router {
    let rules = ValidationRules::builder()
        .route("POST /raw", RequestSchema::new().body(json!(true)))
        .json_limits(limits)
        .max_body_bytes(max_body_bytes)
        .body_read_timeout(Duration::from_millis(200))
        .build()
        .expect("valid rules");
    app_with(rules)
}

#[tokio::test]
async fn body_size_limit_at_its_boundary() {
    let app = limited(JsonLimits::default(), 16);
    let at_limit = format!("\"{}\"", "a".repeat(14)); // 16 bytes
    let over = format!("\"{}\"", "a".repeat(15)); // 17 bytes
    let (status, _, body) = send(&app, chunked(vec![at_limit.as_bytes()], false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, at_limit.as_bytes());
    // Without a length, cut off as soon as the limit is passed.
    let (first, rest) = over.as_bytes().split_at(10);
    let (status, _, body) = send(&app, chunked(vec![first, rest], false)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem(&body)["code"], "payload_too_large");
    // With a length over the limit, refused before reading.
    let request = Request::post("/raw")
        .header("content-type", "application/json")
        .header("content-length", "17")
        .body(Body::new(Chunked {
            chunks: VecDeque::new(),
            stall: true,
        }))
        .expect("request");
    assert_eq!(send(&app, request).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_trickling_body_times_out_with_408() {
    let app = limited(JsonLimits::default(), 1024);
    let (status, _, body) = send(&app, chunked(vec![b"{\"a\":"], true)).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(problem(&body)["code"], "request_timeout");
}

/// `(limits, passing body, failing body, expected keyword)` for every structure limit.
fn limit_cases() -> Vec<(JsonLimits, String, String, &'static str)> {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let object = |entries: usize| {
        let fields: Vec<String> = (0..entries).map(|i| format!("\"k{i}\":{i}")).collect();
        format!("{{{}}}", fields.join(","))
    };
    let array = |elements: usize| format!("[{}]", vec!["0"; elements].join(","));
    vec![
        (
            JsonLimits::new().max_depth(4),
            nested(4),
            nested(5),
            "json_too_deep",
        ),
        (
            JsonLimits::new().max_object_entries(3),
            object(3),
            object(4),
            "json_too_many_entries",
        ),
        (
            JsonLimits::new().max_array_elements(5),
            array(5),
            array(6),
            "json_too_many_elements",
        ),
        (
            JsonLimits::new().max_string_bytes(8),
            format!("\"{}\"", "s".repeat(8)),
            format!("\"{}\"", "s".repeat(9)),
            "json_string_too_long",
        ),
        (
            JsonLimits::new().max_key_bytes(4),
            r#"{"abcd":1}"#.to_owned(),
            r#"{"abcde":1}"#.to_owned(),
            "json_key_too_long",
        ),
        (
            JsonLimits::new().max_values(4),
            "[1,2,3]".to_owned(),
            "[1,2,3,4]".to_owned(),
            "json_too_many_values",
        ),
    ]
}

#[tokio::test]
async fn every_json_limit_at_its_boundary() {
    for (limits, passing, failing, keyword) in limit_cases() {
        let app = limited(limits, 1 << 20);
        let (status, _, _) = send(&app, post_json("/raw", passing.clone())).await;
        assert_eq!(status, StatusCode::OK, "{keyword}: {passing} refused");
        let (status, _, body) = send(&app, post_json("/raw", failing.clone())).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{keyword}: {failing} passed"
        );
        let details = problem(&body);
        assert_eq!(details["code"], "invalid_json");
        assert_eq!(details["violations"][0]["keyword"], keyword, "{failing}");
    }
}

#[tokio::test]
async fn hostile_json_is_refused_cleanly() {
    let app = limited(JsonLimits::default(), 32 << 20);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_string = format!("\"{}\"", "a".repeat(10 << 20));
    let huge_array = format!("[{}]", vec!["1"; 200_000].join(","));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (deep.into_bytes(), "json_too_deep"),
        (huge_string.into_bytes(), "json_string_too_long"),
        (huge_array.into_bytes(), "json_too_many_elements"),
        (br#"{"a":1,"a":2}"#.to_vec(), "json_duplicate_key"),
        (br#"{"a":1} trailing"#.to_vec(), "json_trailing_data"),
        (b"{\"a\":\"\xff\xfe\"}".to_vec(), "json_invalid_utf8"),
        (b"[1e400]".to_vec(), "json_number_out_of_range"),
        (b"{\"a\":".to_vec(), "json_truncated"),
    ];
    for (body, keyword) in cases {
        let (status, _, response) = send(&app, post_json("/raw", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{keyword}");
        assert_eq!(problem(&response)["violations"][0]["keyword"], keyword);
    }
}

#[tokio::test]
async fn routes_without_body_rules_pass_bodies_untouched() {
    let app = app();
    // `PUT /orders/{id}` has parameter rules but no body rule: the body is not read.
    let request = Request::put("/orders/7")
        .header("x-request-id", "5f0c6a9e-3c1b-4b8e-9d2a-1f2e3d4c5b6a")
        .header("content-type", "text/plain")
        .body(Body::from("[[[ not json"))
        .expect("request");
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "[[[ not json".as_bytes());
}

#[tokio::test]
async fn an_optional_body_may_be_empty_even_when_chunked() {
    let rules = ValidationRules::builder()
        .route(
            "POST /raw",
            RequestSchema::new()
                .body(json!({"type": "object"}))
                .optional_body(),
        )
        .build()
        .expect("valid rules");
    let app = app_with(rules);
    assert_eq!(send(&app, chunked(vec![], false)).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, chunked(vec![b"{}"], false)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, chunked(vec![b"[]"], false)).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn openapi_scheme_grants_need_the_scheme_too() {
    use portcullis::{AuthFuture, AuthMethod, AuthOutcome, Principal};

    let spec = OpenApiSpec::parse(
        r#"{
      "openapi": "3.1.0",
      "info": {"title": "Admin", "version": "1"},
      "paths": {
        "/admin": {"get": {"security": [{"key": ["admin"]}], "responses": {"200": {"description": "ok"}}}},
        "/reports": {"get": {"security": [{"oauth": ["reports:read"]}], "responses": {"200": {"description": "ok"}}}}
      },
      "components": {"securitySchemes": {
        "key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        "oauth": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://idp.example/token", "scopes": {"reports:read": "read"}}}}
      }}
    }"#,
    )
    .expect("valid document");
    // A scheme's roles must be declared, like any role a rule names.
    assert!(
        RouteRules::builder()
            .openapi_security(&spec)
            .build()
            .is_err()
    );

    let store = Arc::new(MemoryKeyStore::new());
    let admin = store
        .issue(
            NewKey::for_owner("ada")
                .roles(["admin"])
                .scopes(["reports:read"]),
        )
        .await
        .expect("issue");
    let viewer = store
        .issue(NewKey::for_owner("vic").roles(["viewer"]))
        .await
        .expect("issue");
    let bearer = |request: &http::request::Parts| {
        AuthFuture::ready(match request.headers.get("authorization") {
            Some(value) if value == "Bearer reports" => AuthOutcome::Authenticated(
                Principal::builder("client", AuthMethod::Bearer)
                    .scopes(["reports:read"])
                    .build(),
            ),
            _ => AuthOutcome::Absent,
        })
    };
    let rules = RouteRules::builder()
        .role("admin", Vec::<String>::new())
        .role("viewer", Vec::<String>::new())
        .openapi_security(&spec)
        .build()
        .expect("rules");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store))
        .authenticate(bearer)
        .rules(rules)
        .build()
        .expect("gateway");
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route("/reports", get(|| async { "reports" }))
        .layer(gateway);
    let get_as = |path: &str, header: (&str, &str)| {
        Request::get(path)
            .header(header.0, header.1)
            .body(Body::empty())
            .expect("request")
    };
    let admin_key = ("x-api-key", admin.key.expose_secret());
    let viewer_key = ("x-api-key", viewer.key.expose_secret());
    assert_eq!(
        send(&app, get_as("/admin", admin_key)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_as("/admin", viewer_key)).await.0,
        StatusCode::FORBIDDEN
    );
    // An OAuth scope is not enough on an API key: the scheme is OAuth 2.0.
    assert_eq!(
        send(&app, get_as("/reports", admin_key)).await.0,
        StatusCode::FORBIDDEN
    );
    let token = ("authorization", "Bearer reports");
    assert_eq!(
        send(&app, get_as("/reports", token)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn catastrophic_patterns_answer_promptly() {
    let rules = ValidationRules::builder()
        .route(
            "POST /raw",
            RequestSchema::new().body(json!({"type": "string", "pattern": "^(a+)+$"})),
        )
        .build()
        .expect("valid rules");
    let app = app_with(rules);
    let evil = format!("\"{}!\"", "a".repeat(50_000));
    // The regex engine is linear-time: this finishes (no timing asserted; a backtracking
    // engine would not finish in any reasonable time).
    let (status, _, body) = send(&app, post_json("/raw", evil)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem(&body)["violations"][0]["keyword"], "pattern");
}

#[tokio::test]
async fn the_parsed_value_is_offered_and_json_still_works() {
    let app = app();
    let (status, _, body) = send(&app, post_json("/parsed", r#"{"a": [1, 2]}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).ok(),
        Some(json!({"a": [1, 2]}))
    );
    let (status, _, body) = send(&app, post_json("/typed", r#"{"b": true}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).ok(),
        Some(json!({"b": true}))
    );
}

#[test]
fn bad_schemas_fail_at_build_time_naming_the_route() {
    let error = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new().body(json!({"type": "strng"})),
        )
        .build()
        .expect_err("refused");
    assert!(error.to_string().contains("POST /orders"), "{error}");
    let error = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new().body(json!({"$ref": "https://example.com/schema.json"})),
        )
        .build()
        .expect_err("remote refs are never fetched");
    assert!(error.to_string().contains("POST /orders"), "{error}");
    assert!(
        ValidationRules::builder()
            .max_body_bytes(0)
            .build()
            .is_err()
    );
}

const ORDERS_30: &str = r##"
openapi: 3.0.3
info: {title: Orders, version: "1.0"}
security:
  - apiKey: []
paths:
  /health:
    get:
      security: []
      responses: {"200": {description: ok}}
  /orders:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 50}}
      responses: {"200": {description: ok}}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/NewOrder"}
      responses: {"201": {description: created}}
  /orders/{orderId}:
    parameters:
      - {name: orderId, in: path, required: true, schema: {type: integer, minimum: 1}}
    get:
      responses: {"200": {description: ok}}
components:
  securitySchemes:
    apiKey: {type: apiKey, in: header, name: x-api-key}
  schemas:
    NewOrder:
      type: object
      required: [item, quantity]
      properties:
        item: {type: string}
        quantity: {type: integer, minimum: 1}
        note: {type: string, nullable: true}
      additionalProperties: false
"##;

const PETS_31: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "Pets", "version": "1.0"},
  "paths": {
    "/pets": {
      "post": {
        "security": [{"oauth": ["pets:write"]}],
        "requestBody": {
          "required": true,
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}
        },
        "responses": {"201": {"description": "created"}}
      },
      "get": {
        "security": [{}, {"oauth": ["pets:read"]}],
        "parameters": [{"name": "species", "in": "query", "schema": {"enum": ["cat", "dog"]}}],
        "responses": {"200": {"description": "ok"}}
      }
    }
  },
  "components": {
    "securitySchemes": {
      "oauth": {"type": "oauth2", "flows": {"clientCredentials": {
        "tokenUrl": "https://idp.example/token",
        "scopes": {"pets:read": "read", "pets:write": "write"}}}}
    },
    "schemas": {
      "Pet": {
        "type": "object",
        "required": ["name"],
        "properties": {
          "name": {"type": "string", "minLength": 1},
          "tag": {"type": ["string", "null"]}
        }
      }
    }
  }
}"##;

#[tokio::test]
async fn an_openapi_30_document_drives_validation_and_authorization() {
    let spec = OpenApiSpec::parse(ORDERS_30).expect("valid document");
    let store = Arc::new(MemoryKeyStore::new());
    let issued = store.issue(NewKey::for_owner("ops")).await.expect("issue");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store))
        .rules(
            RouteRules::builder()
                .openapi_security(&spec)
                .build()
                .expect("rules"),
        )
        .validate(
            ValidationRules::builder()
                .openapi(&spec)
                .build()
                .expect("rules"),
        )
        .build()
        .expect("gateway");
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/orders", get(echo_bytes).post(echo_bytes))
        .route("/orders/{orderId}", get(echo_bytes))
        .layer(gateway);
    let key = issued.key.expose_secret();
    let request = |method: &str, uri: &str, key: Option<&str>, body: &str| {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        builder.body(Body::from(body.to_owned())).expect("request")
    };

    // `security: []` → public; everything else needs the API key (document-level security).
    assert_eq!(
        send(&app, request("GET", "/health", None, "")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, request("GET", "/orders", None, "")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, request("GET", "/orders?limit=5", Some(key), ""))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, request("GET", "/orders?limit=500", Some(key), ""))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&app, request("GET", "/orders/3", Some(key), ""))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, request("GET", "/orders/zero", Some(key), ""))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // Bodies: `nullable` from 3.0 works, unknown fields are refused.
    let ok = r#"{"item": "pen", "quantity": 1, "note": null}"#;
    assert_eq!(
        send(&app, request("POST", "/orders", Some(key), ok))
            .await
            .0,
        StatusCode::OK
    );
    let bad = r#"{"item": "pen", "quantity": 1, "colour": "red"}"#;
    assert_eq!(
        send(&app, request("POST", "/orders", Some(key), bad))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // Nothing parses a body for a caller who is not allowed in.
    let (status, _, body) = send(&app, request("POST", "/orders", None, "[[[[")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem(&body)["code"], "missing_credentials");
}

#[tokio::test]
async fn an_openapi_31_document_drives_validation_and_authorization() {
    use portcullis::{AuthFuture, AuthMethod, AuthOutcome, Principal};

    let spec = OpenApiSpec::parse(PETS_31).expect("valid document");
    // A stand-in bearer authenticator: `Authorization: Bearer <scope,scope>`.
    let bearer = |request: &http::request::Parts| {
        let scopes = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|scopes| scopes.split(',').map(str::to_owned).collect::<Vec<_>>());
        AuthFuture::ready(match scopes {
            None => AuthOutcome::Absent,
            Some(scopes) => AuthOutcome::Authenticated(
                Principal::builder("client", AuthMethod::Bearer)
                    .scopes(scopes)
                    .build(),
            ),
        })
    };
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(bearer)
        .rules(
            RouteRules::builder()
                .openapi_security(&spec)
                .build()
                .expect("rules"),
        )
        .validate(
            ValidationRules::builder()
                .openapi(&spec)
                .build()
                .expect("rules"),
        )
        .build()
        .expect("gateway");
    let app = Router::new()
        .route("/pets", get(echo_bytes).post(echo_bytes))
        .layer(gateway);
    let request = |method: &str, uri: &str, token: Option<&str>, body: &str| {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(Body::from(body.to_owned())).expect("request")
    };
    // `[{}, {oauth: [pets:read]}]` → optional.
    assert_eq!(
        send(&app, request("GET", "/pets?species=cat", None, ""))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, request("GET", "/pets?species=cow", None, ""))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let pet = r#"{"name": "Rex", "tag": null}"#;
    let (status, _, body) = send(&app, request("POST", "/pets", Some("pets:read"), pet)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let details = problem(&body);
    assert_eq!(details["code"], "insufficient_scope");
    assert_eq!(details["scope"], "pets:write");
    assert_eq!(
        send(&app, request("POST", "/pets", Some("pets:write"), pet))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(
            &app,
            request("POST", "/pets", Some("pets:write"), r#"{"name": ""}"#)
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

/// Random JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn valid_json_reaches_the_service_byte_identical(value in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        }.expect("serialises");
        let app = limited(JsonLimits::default(), 1 << 20);
        let (status, _, body) = runtime().block_on(send(&app, post_json("/raw", text.clone())));
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(&body[..], text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_get_an_answer(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let app = app();
        let (status, _, _) = runtime().block_on(send(&app, post_json("/orders", bytes)));
        prop_assert!(
            status == StatusCode::OK || status.is_client_error(),
            "unexpected {}", status
        );
    }
}

#[tokio::test]
async fn validation_decisions_name_their_rule() {
    use portcullis::observe::{Decision, Outcome, Stage};
    use std::sync::Mutex;
    type Seen = (Stage, Outcome, Option<String>);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = seen.clone();
    let observer = move |decision: &Decision<'_>| {
        sink.lock().expect("lock").push((
            decision.stage,
            decision.outcome,
            decision.route.map(str::to_owned),
        ));
    };
    let rules = ValidationRules::builder()
        .route("POST /orders", RequestSchema::new().body(order_schema()))
        .build()
        .expect("rules");
    let app = Router::new()
        .route("/orders", post(echo_bytes))
        .layer(ValidateLayer::new(rules).observer(Arc::new(observer)));

    let valid = send(&app, post_json("/orders", r#"{"item":"a","quantity":1}"#)).await;
    assert_eq!(valid.0, StatusCode::OK);
    let invalid = send(&app, post_json("/orders", r#"{"item":"a","quantity":0}"#)).await;
    assert_eq!(invalid.0, StatusCode::BAD_REQUEST);
    let rule = || Some("POST /orders".to_owned());
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            (Stage::Validate, Outcome::Allowed, rule()),
            (Stage::Validate, Outcome::Refused, rule()),
        ]
    );
}
