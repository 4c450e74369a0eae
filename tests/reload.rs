//! Replacing the gateway's policy while it serves: `ReloadableLayer` around a real axum
//! `Router`, with policies from policy files.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::request::Parts;
use http::{Request, StatusCode};
use portcullis::config::{Format, PolicyFile};
use portcullis::{
    AuthFuture, AuthMethod, AuthOutcome, GatewaySecurityLayer, Principal, ReloadableLayer,
};
use tokio::sync::{Notify, mpsc};
use tower::ServiceExt;

/// `x-user: NAME` is a caller named NAME with role `member`.
fn header_users(parts: &Parts) -> AuthFuture {
    let outcome = match parts.headers.get("x-user").and_then(|v| v.to_str().ok()) {
        Some(name) => AuthOutcome::Authenticated(
            Principal::builder(name, AuthMethod::Bearer)
                .roles(["member"])
                .build(),
        ),
        None => AuthOutcome::Absent,
    };
    AuthFuture::ready(outcome)
}

/// A gateway from policy file `text`, checked (rules and tests) first.
fn gateway(text: &str) -> Result<GatewaySecurityLayer, Box<dyn std::error::Error>> {
    let checked = PolicyFile::parse(text, Format::Yaml)?.check()?;
    Ok(GatewaySecurityLayer::builder()
        .authenticate(header_users)
        .rules(checked.rules)
        .build()?)
}

const OPEN: &str = r#"
routes:
  - {route: GET /report, require: public}
  - {route: GET /slow, require: public}
"#;

const MEMBERS: &str = r#"
roles: {member: []}
routes:
  - {route: GET /report, require: role(member)}
  - {route: GET /slow, require: role(member)}
tests:
  - {request: GET /report, as: anonymous, expect: {status: 401}}
  - {request: GET /report, as: {subject: m, roles: [member]}, expect: {status: 200}}
"#;

/// A policy whose own test fails: it would open the report to everyone.
const BROKEN: &str = r#"
routes:
  - {route: GET /report, require: public}
tests:
  - {request: GET /report, as: anonymous, expect: {status: 401}}
"#;

fn request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn a_new_policy_applies_to_new_requests_and_a_bad_one_to_none() {
    let reloadable = ReloadableLayer::new(gateway(OPEN).expect("valid"));
    let handle = reloadable.handle();
    let app = Router::new()
        .route("/report", get_handler())
        .layer(reloadable);
    let status = |app: &Router| {
        let app = app.clone();
        async move {
            app.oneshot(request("/report"))
                .await
                .expect("infallible")
                .status()
        }
    };
    assert_eq!(status(&app).await, StatusCode::OK);

    handle.reload(|| gateway(MEMBERS)).expect("reloads");
    assert_eq!(handle.generation(), 1);
    assert_eq!(status(&app).await, StatusCode::UNAUTHORIZED);

    // A policy that fails its own tests is refused; the current one keeps serving.
    let refused = handle.reload(|| gateway(BROKEN));
    let error = refused.expect_err("its test fails").to_string();
    assert!(error.contains("tests[0]"), "{error}");
    assert_eq!(handle.generation(), 1);
    assert_eq!(status(&app).await, StatusCode::UNAUTHORIZED);
}

fn get_handler() -> axum::routing::MethodRouter {
    get(|| async { "report" })
}

#[tokio::test]
async fn in_flight_requests_finish_under_the_policy_they_started_with() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let reloadable = ReloadableLayer::new(gateway(OPEN).expect("valid"));
    let handle = reloadable.handle();
    let app = {
        let (entered, release) = (entered.clone(), release.clone());
        Router::new()
            .route(
                "/slow",
                get(move || {
                    let (entered, release) = (entered.clone(), release.clone());
                    async move {
                        entered.notify_one();
                        release.notified().await;
                        "done"
                    }
                }),
            )
            .layer(reloadable)
    };
    // An anonymous request starts under the open policy and waits in the handler...
    let in_flight = tokio::spawn(app.clone().oneshot(request("/slow")));
    entered.notified().await;
    // ...the policy closes...
    handle.reload(|| gateway(MEMBERS)).expect("reloads");
    let after = app
        .clone()
        .oneshot(request("/slow"))
        .await
        .expect("infallible");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    // ...and the request that started before still completes.
    release.notify_one();
    let response = in_flight.await.expect("joins").expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_lost_while_the_policy_changes_under_load() {
    const REQUESTS: usize = 400;
    const RELOADS: usize = 40;
    let reloadable = ReloadableLayer::new(gateway(OPEN).expect("valid"));
    let handle = reloadable.handle();
    let app = Router::new()
        .route("/report", get_handler())
        .layer(reloadable);
    let (done, mut results) = mpsc::channel(REQUESTS);
    for _ in 0..REQUESTS {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            // A member: allowed under both policies.
            let request = Request::get("/report")
                .header("x-user", "m")
                .body(Body::empty())
                .expect("request");
            let status = app.oneshot(request).await.expect("infallible").status();
            done.send(status).await.expect("collector alive");
        });
    }
    drop(done);
    for round in 0..RELOADS {
        let text = if round % 2 == 0 { MEMBERS } else { OPEN };
        handle.reload(|| gateway(text)).expect("reloads");
        tokio::task::yield_now().await;
    }
    let mut answered = 0;
    while let Some(status) = results.recv().await {
        assert_eq!(status, StatusCode::OK);
        answered += 1;
    }
    assert_eq!(answered, REQUESTS);
    assert_eq!(handle.generation(), RELOADS as u64);
}
