//! Object-level authorization end to end: an axum `Router` behind `GatewaySecurityLayer`,
//! with rules that compare a path parameter, query parameter, header or body field with the
//! caller.
//!
//! The callers come from a small authenticator that maps a test header to a fixed principal:
//! what is under test here is the decision on the request's data, not how an identity is
//! established (the API-key, bearer and OIDC suites do that against real peers).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis::authz::{
    Caller, Requirement, RouteRules, all, any, authenticated, body, header, not, param, query,
    require, role, scope, subject,
};
use portcullis::validate::{RequestSchema, ValidationRules};
use portcullis::{
    AuthFuture, AuthMethod, AuthOutcome, ConfigError, GatewaySecurityLayer, Principal,
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The callers, by the `x-test-user` header.
fn principal(name: &str) -> Option<Principal> {
    let claims = |value: Value| match value {
        Value::Object(claims) => claims,
        _ => unreachable!("claims are an object"),
    };
    let principal = match name {
        "alice" => Principal::builder("alice", AuthMethod::Bearer)
            .roles(["viewer"])
            .scopes(["orders:read"])
            .claims(claims(json!({
                "tenant_id": "acme",
                "tenants": ["acme", "globex"],
                "customer_no": 42,
                "org": {"id": "o-1"}
            })))
            .build(),
        "bob" => Principal::builder("bob", AuthMethod::Bearer)
            .roles(["admin"])
            .scopes(["orders:read"])
            .build(),
        // No claims at all.
        "carol" => Principal::builder("carol", AuthMethod::Bearer)
            .roles(["viewer"])
            .build(),
        _ => return None,
    };
    Some(principal)
}

fn test_users(parts: &Parts) -> AuthFuture {
    let outcome = parts
        .headers
        .get("x-test-user")
        .and_then(|value| value.to_str().ok())
        .and_then(principal)
        .map_or(AuthOutcome::Absent, AuthOutcome::Authenticated);
    AuthFuture::ready(outcome)
}

fn rules() -> RouteRules {
    RouteRules::builder()
        .role("admin", ["*"])
        .role("viewer", ["orders:read"])
        .route(
            "GET /users/{id}",
            any([param("id").equals(subject()), role("admin")]),
        )
        .route(
            "GET /tenants/{tenant}/orders",
            param("tenant").equals(Caller::claim("tenant_id")),
        )
        .route(
            "GET /orgs/{org}",
            param("org").is_in(Caller::claim("tenants")),
        )
        .route(
            "GET /org-units/{id}",
            param("id").equals(Caller::claim("org.id")),
        )
        .route(
            "GET /customers/{no}",
            param("no").equals(Caller::claim("customer_no")),
        )
        .route("GET /reports", query("owner").equals(subject()))
        .route(
            "GET /dashboard",
            header("X-Tenant").equals(Caller::claim("tenant_id")),
        )
        .route(
            "GET /not-tenant/{tenant}",
            not(param("tenant").equals(Caller::claim("tenant_id"))),
        )
        .route(
            "GET /scoped/{id}",
            all([scope("orders:read"), param("id").equals(subject())]),
        )
        .route(
            "POST /orders",
            any([body("/customer/id").equals(subject()), role("admin")]),
        )
        .route(
            "POST /invoices",
            body("/customer_no").equals(Caller::claim("customer_no")),
        )
        .route(
            "POST /transfers/{from}",
            all([
                param("from").equals(subject()),
                body("/to").is_in(Caller::claim("tenants")),
            ]),
        )
        .route("GET /things/{id}", authenticated())
        .build()
        .expect("valid rules")
}

fn validation() -> ValidationRules {
    let customer = json!({
        "type": "object",
        "required": ["customer"],
        "properties": {"customer": {"type": "object", "properties": {"id": {"type": "string"}}}}
    });
    ValidationRules::builder()
        .route("POST /orders", RequestSchema::new().body(customer))
        .route(
            "POST /invoices",
            RequestSchema::new().body(json!({"type": "object"})),
        )
        .route(
            "POST /transfers/{from}",
            RequestSchema::new().body(json!({"type": "object"})),
        )
        .build()
        .expect("valid validation rules")
}

/// The handler echoes the body it received, and counts its calls.
fn app(calls: Arc<AtomicUsize>) -> Router {
    let echo = move |body: Bytes| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { body }
    };
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(test_users)
        .rules(rules())
        .validate(validation())
        .build()
        .expect("valid gateway");
    Router::new()
        .route("/users/{id}", get(echo.clone()))
        .route("/tenants/{tenant}/orders", get(echo.clone()))
        .route("/orgs/{org}", get(echo.clone()))
        .route("/org-units/{id}", get(echo.clone()))
        .route("/customers/{no}", get(echo.clone()))
        .route("/reports", get(echo.clone()))
        .route("/dashboard", get(echo.clone()))
        .route("/not-tenant/{tenant}", get(echo.clone()))
        .route("/scoped/{id}", get(echo.clone()))
        .route("/orders", post(echo.clone()))
        .route("/invoices", post(echo.clone()))
        .route("/transfers/{from}", post(echo.clone()))
        // Checked where the route is defined, with axum's own path parameters.
        .route(
            "/things/{id}",
            get(echo).route_layer(require(any([param("id").equals(subject()), role("admin")]))),
        )
        .layer(gateway)
}

struct Answer {
    status: StatusCode,
    reason: Option<String>,
    body: Bytes,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let reason = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|problem| problem["code"].as_str().map(str::to_owned));
    Answer {
        status,
        reason,
        body,
    }
}

fn get_as(user: &str, uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("x-test-user", user)
        .body(Body::empty())
        .expect("request")
}

fn post_as(user: &str, uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("x-test-user", user)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

/// Sends the request and asserts the status and, for refusals, the reason code.
async fn expect(app: &Router, request: Request<Body>, status: StatusCode, reason: Option<&str>) {
    let what = format!("{} {}", request.method(), request.uri());
    let answer = send(app, request).await;
    assert_eq!(answer.status, status, "{what}: {:?}", answer.body);
    assert_eq!(answer.reason.as_deref(), reason, "{what}");
}

const OK: StatusCode = StatusCode::OK;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
const DENIED: Option<&str> = Some("object_denied");

#[tokio::test]
async fn a_path_parameter_must_be_the_callers_subject() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(calls.clone());
    expect(&app, get_as("alice", "/users/alice"), OK, None).await;
    // Another's record: refused, and the refusal does not name the other party.
    let answer = send(&app, get_as("alice", "/users/bob")).await;
    assert_eq!(answer.status, FORBIDDEN);
    assert_eq!(answer.reason.as_deref(), DENIED);
    let text = String::from_utf8_lossy(&answer.body);
    assert!(!text.contains("bob"), "{text}");
    // An admin may read anyone's.
    expect(&app, get_as("bob", "/users/alice"), OK, None).await;
    // Anonymous: 401, not a comparison.
    let anonymous = Request::get("/users/alice")
        .body(Body::empty())
        .expect("request");
    expect(
        &app,
        anonymous,
        StatusCode::UNAUTHORIZED,
        Some("missing_credentials"),
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn path_values_are_compared_after_percent_decoding() {
    let app = app(Arc::default());
    expect(&app, get_as("alice", "/users/al%69ce"), OK, None).await;
    expect(&app, get_as("alice", "/users/alice%20"), FORBIDDEN, DENIED).await;
    // Bytes that do not decode to UTF-8 are no value at all: refused.
    expect(&app, get_as("alice", "/users/%ff"), FORBIDDEN, DENIED).await;
}

#[tokio::test]
async fn claims_by_name_by_dotted_path_and_by_membership() {
    let app = app(Arc::default());
    expect(&app, get_as("alice", "/tenants/acme/orders"), OK, None).await;
    expect(
        &app,
        get_as("alice", "/tenants/globex/orders"),
        FORBIDDEN,
        DENIED,
    )
    .await;
    expect(&app, get_as("alice", "/org-units/o-1"), OK, None).await;
    expect(&app, get_as("alice", "/org-units/o-2"), FORBIDDEN, DENIED).await;
    // One of an array claim's values.
    expect(&app, get_as("alice", "/orgs/acme"), OK, None).await;
    expect(&app, get_as("alice", "/orgs/globex"), OK, None).await;
    expect(&app, get_as("alice", "/orgs/initech"), FORBIDDEN, DENIED).await;
}

#[tokio::test]
async fn a_missing_claim_never_allows_not_even_under_not() {
    let app = app(Arc::default());
    // Carol has no `tenant_id`: no tenant is hers...
    expect(
        &app,
        get_as("carol", "/tenants/acme/orders"),
        FORBIDDEN,
        DENIED,
    )
    .await;
    expect(&app, get_as("carol", "/orgs/acme"), FORBIDDEN, DENIED).await;
    // ...and no tenant is "not hers" either: absence is unknown, and unknown is refused.
    expect(&app, get_as("carol", "/not-tenant/acme"), FORBIDDEN, DENIED).await;
    // With the claim, the negation works as written.
    expect(&app, get_as("alice", "/not-tenant/globex"), OK, None).await;
    expect(&app, get_as("alice", "/not-tenant/acme"), FORBIDDEN, DENIED).await;
}

#[tokio::test]
async fn numbers_and_strings_are_never_loosely_equal() {
    let app = app(Arc::default());
    // The claim is the number 42; a path parameter is always a string.
    expect(&app, get_as("alice", "/customers/42"), FORBIDDEN, DENIED).await;
    // In the body, a number equals the number, by value, and a string does not.
    expect(
        &app,
        post_as("alice", "/invoices", r#"{"customer_no": 42}"#),
        OK,
        None,
    )
    .await;
    expect(
        &app,
        post_as("alice", "/invoices", r#"{"customer_no": 42.0}"#),
        OK,
        None,
    )
    .await;
    expect(
        &app,
        post_as("alice", "/invoices", r#"{"customer_no": "42"}"#),
        FORBIDDEN,
        DENIED,
    )
    .await;
    expect(
        &app,
        post_as("alice", "/invoices", r#"{"customer_no": 43}"#),
        FORBIDDEN,
        DENIED,
    )
    .await;
}

#[tokio::test]
async fn query_parameters_and_headers() {
    let app = app(Arc::default());
    expect(&app, get_as("alice", "/reports?owner=alice"), OK, None).await;
    expect(
        &app,
        get_as("alice", "/reports?owner=al%69ce&x=1"),
        OK,
        None,
    )
    .await;
    expect(
        &app,
        get_as("alice", "/reports?owner=bob"),
        FORBIDDEN,
        DENIED,
    )
    .await;
    expect(&app, get_as("alice", "/reports"), FORBIDDEN, DENIED).await;
    // Given twice, the handler might read either: refused.
    expect(
        &app,
        get_as("alice", "/reports?owner=alice&owner=bob"),
        FORBIDDEN,
        DENIED,
    )
    .await;

    let with_tenant = |tenants: &[&str]| {
        let mut request = get_as("alice", "/dashboard");
        for tenant in tenants {
            request
                .headers_mut()
                .append("x-tenant", tenant.parse().expect("header value"));
        }
        request
    };
    expect(&app, with_tenant(&["acme"]), OK, None).await;
    expect(&app, with_tenant(&["globex"]), FORBIDDEN, DENIED).await;
    expect(&app, with_tenant(&[]), FORBIDDEN, DENIED).await;
    expect(&app, with_tenant(&["acme", "acme"]), FORBIDDEN, DENIED).await;
}

#[tokio::test]
async fn the_callers_grants_are_judged_before_the_object() {
    let app = app(Arc::default());
    // Alice holds the scope; the id decides.
    expect(&app, get_as("alice", "/scoped/alice"), OK, None).await;
    expect(&app, get_as("alice", "/scoped/bob"), FORBIDDEN, DENIED).await;
    // Carol lacks the scope: that is the reason, whoever's object it is.
    expect(
        &app,
        get_as("carol", "/scoped/carol"),
        FORBIDDEN,
        Some("insufficient_scope"),
    )
    .await;
}

#[tokio::test]
async fn body_fields_are_read_from_the_validated_body() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(calls.clone());
    let mine = "{\"customer\": {\"id\": \"alice\"},\n \"item\": \"tea\"}";
    let answer = send(&app, post_as("alice", "/orders", mine)).await;
    assert_eq!(answer.status, OK);
    // The service receives exactly the bytes sent.
    assert_eq!(answer.body, mine.as_bytes());

    let theirs = r#"{"customer": {"id": "bob"}}"#;
    expect(&app, post_as("alice", "/orders", theirs), FORBIDDEN, DENIED).await;
    // The admin alternative still applies.
    expect(
        &app,
        post_as("bob", "/orders", r#"{"customer": {"id": "alice"}}"#),
        OK,
        None,
    )
    .await;
    // The schema is checked first: an invalid body is a 400, not a decision on its data.
    expect(
        &app,
        post_as("alice", "/orders", r#"{"customer": {"id": 7}}"#),
        StatusCode::BAD_REQUEST,
        Some("schema_violation"),
    )
    .await;
    // A body without the field: refused, never allowed by absence.
    expect(
        &app,
        post_as("alice", "/orders", r#"{"customer": {}}"#),
        FORBIDDEN,
        DENIED,
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn path_and_body_rules_combine() {
    let app = app(Arc::default());
    let ok = post_as("alice", "/transfers/alice", r#"{"to": "globex"}"#);
    expect(&app, ok, OK, None).await;
    // The path alone refuses before the body is read.
    let theirs = post_as("alice", "/transfers/bob", r#"{"to": "globex"}"#);
    expect(&app, theirs, FORBIDDEN, DENIED).await;
    let elsewhere = post_as("alice", "/transfers/alice", r#"{"to": "initech"}"#);
    expect(&app, elsewhere, FORBIDDEN, DENIED).await;
    // An array in the body is not one of the caller's values.
    let array = post_as("alice", "/transfers/alice", r#"{"to": ["globex"]}"#);
    expect(&app, array, FORBIDDEN, DENIED).await;
}

#[tokio::test]
async fn require_on_an_axum_route_reads_the_routers_parameters() {
    let app = app(Arc::default());
    expect(&app, get_as("alice", "/things/alice"), OK, None).await;
    expect(&app, get_as("alice", "/things/al%69ce"), OK, None).await;
    expect(&app, get_as("alice", "/things/bob"), FORBIDDEN, DENIED).await;
    expect(&app, get_as("bob", "/things/alice"), OK, None).await;
}

#[tokio::test]
async fn rules_written_as_text_decide_the_same() {
    let text = r#"param("id") == subject() or role(admin)"#;
    let requirement: Requirement = text.parse().expect("parses");
    assert_eq!(
        requirement.to_string(),
        r#"param("id") == subject() or role("admin")"#
    );
    let rules = RouteRules::builder()
        .role("admin", ["*"])
        .route("GET /users/{id}", requirement)
        .build()
        .expect("valid rules");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(test_users)
        .rules(rules)
        .build()
        .expect("valid gateway");
    let app = Router::new()
        .route("/users/{id}", get(|| async { "ok" }))
        .layer(gateway);
    expect(&app, get_as("alice", "/users/alice"), OK, None).await;
    expect(&app, get_as("alice", "/users/bob"), FORBIDDEN, DENIED).await;
    expect(&app, get_as("bob", "/users/alice"), OK, None).await;
}

#[test]
fn rules_that_cannot_read_what_they_name_do_not_build() {
    // A body rule on a route whose body no schema validates.
    let rules = RouteRules::builder()
        .route("POST /orders", body("/customer/id").equals(subject()))
        .build()
        .expect("valid rules");
    let error = GatewaySecurityLayer::builder()
        .authenticate(test_users)
        .rules(rules.clone())
        .validate(
            ValidationRules::builder()
                .route("PUT /orders", RequestSchema::new().body(json!({})))
                .build()
                .expect("valid validation"),
        )
        .build()
        .expect_err("no body schema for POST /orders");
    assert!(
        matches!(&error, ConfigError::BodyRuleWithoutSchema { rule } if rule == "POST /orders"),
        "{error}"
    );
    let error = GatewaySecurityLayer::builder()
        .authenticate(test_users)
        .rules(rules)
        .build()
        .expect_err("no validation at all");
    assert!(
        matches!(error, ConfigError::BodyRuleWithoutSchema { .. }),
        "{error}"
    );

    // A parameter the pattern does not have.
    let error = RouteRules::builder()
        .route("GET /users/{id}", param("user").equals(subject()))
        .build()
        .expect_err("no such parameter");
    assert!(
        matches!(&error, ConfigError::UnsatisfiableRule { reason, .. } if reason.contains("`user`")),
        "{error}"
    );
    // Unmatched routes have no parameters.
    let error = RouteRules::builder()
        .unmatched(param("id").equals(subject()))
        .build()
        .expect_err("unmatched reads a parameter");
    assert!(
        matches!(error, ConfigError::UnsatisfiableRule { .. }),
        "{error}"
    );
    // A malformed JSON pointer, and a header name that is not one.
    for requirement in [
        body("customer").equals(subject()),
        header("a b").equals(subject()),
    ] {
        let error = RouteRules::builder()
            .route("POST /x", requirement)
            .build()
            .expect_err("defective comparison");
        assert!(
            matches!(error, ConfigError::UnsatisfiableRule { .. }),
            "{error}"
        );
    }
}

#[tokio::test]
async fn alone_an_authorization_layer_refuses_body_rules_it_cannot_decide() {
    // No validation stage follows, so the body is never parsed: refused, not let through.
    let rules = RouteRules::builder()
        .route("POST /orders", body("/customer/id").equals(subject()))
        .build()
        .expect("valid rules");
    let app = Router::new()
        .route("/orders", post(|| async { "created" }))
        .layer(portcullis::authz::AuthorizeLayer::new(rules))
        .layer(portcullis::AuthenticationLayer::new(test_users));
    let mine = post_as("alice", "/orders", r#"{"customer": {"id": "alice"}}"#);
    expect(&app, mine, FORBIDDEN, DENIED).await;
}

const OWNED_ORDERS: &str = r#"
openapi: 3.1.0
info: {title: Orders, version: "1"}
security: [{oauth: []}]
paths:
  /users/{id}/orders:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      x-portcullis-owner: {param: id, claim: sub, unless_role: admin}
      responses: {"200": {description: ok}}
  /tenants/{tenant}:
    get:
      parameters: [{name: tenant, in: path, required: true, schema: {type: string}}]
      x-portcullis-owner: {param: tenant, claim: tenants, member: true}
      responses: {"200": {description: ok}}
  /orders:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [customer]
              properties: {customer: {type: string}}
      x-portcullis-owner: {body: /customer, claim: sub}
      responses: {"201": {description: created}}
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: "https://idp.example/token", scopes: {}}}
"#;

#[tokio::test]
async fn an_openapi_owner_extension_becomes_an_object_rule() {
    let spec = portcullis::openapi::OpenApiSpec::parse(OWNED_ORDERS).expect("valid document");
    let rules = RouteRules::builder()
        .role("admin", ["*"])
        .openapi_security(&spec)
        .build()
        .expect("valid rules");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(test_users)
        .rules(rules)
        .validate(
            ValidationRules::builder()
                .openapi(&spec)
                .build()
                .expect("valid"),
        )
        .build()
        .expect("valid gateway");
    let app = Router::new()
        .route("/users/{id}/orders", get(|| async { "orders" }))
        .route("/tenants/{tenant}", get(|| async { "tenant" }))
        .route("/orders", post(|| async { "created" }))
        .layer(gateway);
    expect(&app, get_as("alice", "/users/alice/orders"), OK, None).await;
    expect(
        &app,
        get_as("alice", "/users/bob/orders"),
        FORBIDDEN,
        DENIED,
    )
    .await;
    expect(&app, get_as("bob", "/users/alice/orders"), OK, None).await;
    expect(&app, get_as("alice", "/tenants/globex"), OK, None).await;
    expect(&app, get_as("alice", "/tenants/initech"), FORBIDDEN, DENIED).await;
    expect(
        &app,
        post_as("alice", "/orders", r#"{"customer": "alice"}"#),
        OK,
        None,
    )
    .await;
    expect(
        &app,
        post_as("alice", "/orders", r#"{"customer": "bob"}"#),
        FORBIDDEN,
        DENIED,
    )
    .await;
    // The document's security still applies: a caller is needed.
    let anonymous = Request::get("/users/alice/orders")
        .body(Body::empty())
        .expect("request");
    expect(
        &app,
        anonymous,
        StatusCode::UNAUTHORIZED,
        Some("missing_credentials"),
    )
    .await;
}

#[test]
fn a_malformed_owner_extension_is_refused_with_its_place() {
    let broken = [
        ("{param: nope, claim: sub}", "no `{nope}`"),
        ("{param: id, query: id, claim: sub}", "exactly one"),
        ("{param: id}", "needs a `claim`"),
        ("{param: id, claim: sub, owner: x}", "unknown key"),
        ("{body: customer, claim: sub}", "JSON pointer"),
    ];
    for (extension, reason) in broken {
        let document =
            OWNED_ORDERS.replacen("{param: id, claim: sub, unless_role: admin}", extension, 1);
        let error = portcullis::openapi::OpenApiSpec::parse(&document)
            .expect_err("a malformed extension")
            .to_string();
        assert!(error.contains(reason), "{extension}: {error}");
        assert!(error.contains("x-portcullis-owner"), "{extension}: {error}");
    }
}

#[tokio::test]
async fn object_rules_answer_before_business_rules() {
    // The caller's ownership is judged (403) before the order's business rules (422), on a
    // route with a body and on one without.
    let rules = RouteRules::builder()
        .route("POST /orders", body("/customer/id").equals(subject()))
        .route("GET /users/{id}", param("id").equals(subject()))
        .build()
        .expect("valid rules");
    let never = |_: &portcullis::validate::RuleInput<'_>| {
        vec![portcullis::Violation::new(
            "body",
            "",
            "business",
            "never acceptable",
        )]
    };
    let validation = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new()
                .body(json!({"type": "object"}))
                .optional_body()
                .rule("never", never),
        )
        .route("GET /users/{id}", RequestSchema::new().rule("never", never))
        .build()
        .expect("valid validation");
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(test_users)
        .rules(rules)
        .validate(validation)
        .build()
        .expect("valid gateway");
    let app = Router::new()
        .route("/orders", post(|| async { "created" }))
        .route("/users/{id}", get(|| async { "user" }))
        .layer(gateway);
    let theirs = post_as("alice", "/orders", r#"{"customer": {"id": "bob"}}"#);
    expect(&app, theirs, FORBIDDEN, DENIED).await;
    let mine = post_as("alice", "/orders", r#"{"customer": {"id": "alice"}}"#);
    expect(
        &app,
        mine,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("rule_violation"),
    )
    .await;
    // No body at all (it is optional): the rule has nothing to read, and absence never
    // allows, so the business rules are not reached either.
    let empty = Request::post("/orders")
        .header("x-test-user", "alice")
        .body(Body::empty())
        .expect("request");
    expect(&app, empty, FORBIDDEN, DENIED).await;
    expect(&app, get_as("alice", "/users/bob"), FORBIDDEN, DENIED).await;
    let own = get_as("alice", "/users/alice");
    expect(
        &app,
        own,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("rule_violation"),
    )
    .await;
}

#[test]
fn a_json_type_without_a_schema_cannot_feed_a_body_rule() {
    let rules = RouteRules::builder()
        .route("POST /orders", body("/customer/id").equals(subject()))
        .build()
        .expect("valid rules");
    // JSON accepted, but never checked against a schema.
    let unchecked = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new().media_types(["application/json"]),
        )
        .build()
        .expect("valid validation");
    let error = GatewaySecurityLayer::builder()
        .authenticate(test_users)
        .rules(rules)
        .validate(unchecked)
        .build()
        .expect_err("an unchecked JSON body");
    assert!(
        matches!(error, ConfigError::BodyRuleWithoutSchema { .. }),
        "{error}"
    );
}
