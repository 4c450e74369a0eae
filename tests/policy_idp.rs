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
        .layer(gateway);
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
