//! A policy file naming a bearer-token issuer, served in front of a route, against the real
//! identity provider (`tests/idp`, the certified `oidc-provider`).

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::config::{Format, PolicyFile};
use tower::ServiceExt;

mod support;
use support::idp::*;

fn policy(issuer: &str) -> String {
    format!(
        r#"
authenticate:
  bearer:
    - issuer: "{issuer}"
      audiences: ["{API}"]
      discover: true
      roles_claim: realm_access.roles
roles:
  admin: ["orders:*"]
routes:
  - {{route: GET /orders, require: 'permission("orders:read") and scope("orders:read")'}}
tests:
  - request: GET /orders
    as: {{subject: resource-client, roles: [admin], scopes: ["orders:read"]}}
    expect: {{status: 200}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_files_issuer_authenticates_the_providers_tokens() {
    let idp = Idp::start(Settings::default());
    let token = {
        let idp = &idp;
        tokio::task::block_in_place(|| idp.token(API))
    };
    let policy = PolicyFile::parse(&policy(&idp.issuer), Format::Yaml).expect("parses");
    let (builder, checked) = policy.gateway().unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(checked.tests, 1);
    let gateway = builder.build().expect("the file's authenticator is enough");
    let app = Router::new()
        .route("/orders", get(|| async { "orders" }))
        .layer(gateway.clone());
    let call = |authorization: Option<String>| {
        let mut request = Request::get("/orders");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).expect("request"))
    };
    let allowed = call(Some(format!("Bearer {token}")))
        .await
        .expect("infallible");
    assert_eq!(allowed.status(), StatusCode::OK);
    // The provider's keys are loaded: a readiness probe says so.
    assert_eq!(gateway.ready().await, Ok(()));
    let anonymous = call(None).await.expect("infallible");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .expect("text")
            .starts_with("Bearer"),
        "{:?}",
        anonymous.headers()
    );
    let forged = call(Some("Bearer not.a.token".to_owned()))
        .await
        .expect("infallible");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    // The same request, explained from the file.
    let rules = policy.rules().expect("rules");
    let caller = serde_json::from_value(serde_json::json!({
        "subject": "resource-client", "roles": ["admin"], "scopes": []
    }))
    .expect("identity");
    let explained =
        PolicyFile::explain(&rules, None, &caller, "GET /orders", &BTreeMap::new(), None)
            .expect("explains");
    assert_eq!(
        (explained.status, explained.reason),
        (403, Some("insufficient_scope"))
    );
}

#[test]
fn a_bearer_issuer_must_say_where_its_keys_are() {
    for (keys, problem) in [
        ("", "exactly one of `discover: true` and `jwks_url`"),
        (
            "      discover: true\n      jwks_url: https://idp.example/jwks\n",
            "exactly one",
        ),
    ] {
        let text = format!(
            "authenticate:\n  bearer:\n    - issuer: https://idp.example\n      audiences: [api]\n{keys}"
        );
        let errors = PolicyFile::parse(&text, Format::Yaml)
            .expect("parses")
            .gateway()
            .map(|_| ())
            .expect_err("no keys");
        assert_eq!(errors.errors()[0].place, "authenticate.bearer[0]");
        assert!(errors.to_string().contains(problem), "{errors}");
    }
}

/// A file naming an issuer and an introspection endpoint: one authenticator checks the
/// provider's JWTs locally and asks the provider about its opaque tokens, with the client
/// secret read from a file beside the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_files_introspection_reads_its_secret_and_asks_the_provider() {
    let idp = Idp::start(Settings::default());
    let (jwt, opaque) = {
        let idp = &idp;
        tokio::task::block_in_place(|| (idp.token(API), idp.token(OPAQUE_API)))
    };
    assert!(!opaque.contains('.'), "opaque: {opaque}");
    let issuer = &idp.issuer;
    let directory =
        std::env::temp_dir().join(format!("portcullis-introspection-{}", std::process::id()));
    std::fs::create_dir_all(directory.join("secrets")).expect("directory");
    std::fs::write(
        directory.join("secrets/introspection"),
        "introspector-secret\n",
    )
    .expect("secret");
    let text = format!(
        r#"
authenticate:
  bearer:
    - {{issuer: "{issuer}", audiences: ["{API}"], discover: true, roles_claim: realm_access.roles}}
  introspection:
    url: "{issuer}/token/introspection"
    client_id: api-introspector
    client_secret_file: secrets/introspection
    issuer: "{issuer}"
    audiences: ["{OPAQUE_API}"]
    roles_claim: realm_access.roles
roles:
  admin: ["orders:*"]
routes:
  - {{route: GET /orders, require: 'permission("orders:read")'}}
"#
    );
    std::fs::write(directory.join("policy.yaml"), text).expect("policy");
    let policy = PolicyFile::from_file(directory.join("policy.yaml")).expect("parses");
    let (builder, _) = policy.gateway().unwrap_or_else(|errors| panic!("{errors}"));
    let app = Router::new()
        .route("/orders", get(|| async { "orders" }))
        .layer(builder.build().expect("gateway"));
    let call = |token: &str| {
        app.clone().oneshot(
            Request::get("/orders")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
    };
    for token in [&jwt, &opaque] {
        let response = call(token).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{token}");
    }
    let unknown = call("an-opaque-token-the-provider-never-issued-0123456789")
        .await
        .expect("infallible");
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    // A wrong secret: the provider refuses the gateway, and so the token is not accepted.
    std::fs::write(directory.join("secrets/introspection"), "wrong-secret").expect("secret");
    let policy = PolicyFile::from_file(directory.join("policy.yaml")).expect("parses");
    let (builder, _) = policy.gateway().unwrap_or_else(|errors| panic!("{errors}"));
    let app = Router::new()
        .route("/orders", get(|| async { "orders" }))
        .layer(builder.build().expect("gateway"));
    let refused = app
        .oneshot(
            Request::get("/orders")
                .header("authorization", format!("Bearer {opaque}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    // The provider refuses the gateway's credentials: the gateway cannot tell whether the
    // token is good, and says so (503), never letting it through or calling it bad.
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let _ = std::fs::remove_dir_all(directory);
}

#[test]
fn an_introspection_secret_is_never_written_in_the_policy() {
    let errors = PolicyFile::parse(
        "authenticate:\n  introspection:\n    url: https://idp.example/introspect\n    \
         client_id: gateway\n    audiences: [api]\n",
        Format::Yaml,
    )
    .expect("parses")
    .gateway()
    .map(|_| ())
    .expect_err("no secret");
    assert_eq!(errors.errors()[0].place, "authenticate.introspection");
    assert!(
        errors.to_string().contains("`client_secret_env`"),
        "{errors}"
    );
    // Written inline, it is not even a key of the format.
    let inline = PolicyFile::parse(
        "authenticate:\n  introspection:\n    url: https://idp.example/introspect\n    \
         client_id: gateway\n    client_secret: hunter2\n",
        Format::Yaml,
    )
    .expect_err("unknown key");
    assert!(inline.to_string().contains("client_secret"), "{inline}");
    assert!(!inline.to_string().contains("hunter2"), "{inline}");
}

/// An issuer whose keys cannot be fetched: the gateway is not ready, and says whose keys
/// are missing.
#[tokio::test]
async fn a_gateway_without_its_issuers_keys_is_not_ready() {
    // Nothing listens on port 9 of the loopback.
    let policy = PolicyFile::parse(
        "authenticate:\n  bearer:\n    - {issuer: 'https://idp.example', audiences: [api], \
         jwks_url: 'http://127.0.0.1:9/jwks'}\nroutes: [{route: GET /a, require: authenticated}]\n",
        Format::Yaml,
    )
    .expect("parses");
    let (builder, _) = policy.gateway().unwrap_or_else(|errors| panic!("{errors}"));
    let gateway = builder.build().expect("gateway");
    let not_ready = gateway.ready().await.expect_err("no keys");
    assert_eq!(
        not_ready.reason(),
        "the keys of https://idp.example are not loaded"
    );
}
