//! An axum `Router` behind `BearerLayer`, end to end.

use axum::Router;
use axum::body::Body;
use axum::response::Json;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::Principal;
use serde_json::{Value, json};
use tower::ServiceExt;

use portcullis::bearer::BearerLayer;

use crate::support::*;

async fn who(principal: Option<Principal>) -> Json<Value> {
    Json(match principal {
        None => Value::Null,
        Some(p) => json!({
            "subject": p.subject(),
            "issuer": p.issuer(),
            "method": p.auth_method().name(),
            "scopes": p.scopes().iter().collect::<Vec<_>>(),
            "roles": p.roles().iter().collect::<Vec<_>>(),
        }),
    })
}

/// Echoes the `Authorization` headers and the query the handler received.
async fn echo(request: Request<Body>) -> Json<Value> {
    let auth: Vec<String> = request
        .headers()
        .get_all("authorization")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    Json(json!({ "authorization": auth, "query": request.uri().query() }))
}

fn app() -> Router {
    Router::new()
        .route("/", get(who))
        .route("/echo", get(echo))
        .layer(BearerLayer::new(authenticator()))
}

async fn call(request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response: Response<Body> = app().oneshot(request).await.expect("infallible");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, challenge, body)
}

fn with_token(token: &str) -> Request<Body> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request")
}

fn invalid_token(description: &str) -> String {
    format!(r#"Bearer realm="api", error="invalid_token", error_description="{description}""#)
}

#[tokio::test]
async fn accepts_every_key_type() {
    for signer in [rsa(), es256(), es384(), eddsa(), hs256()] {
        let (status, _, body) = call(with_token(&mint(&signer, &claims()))).await;
        assert_eq!(status, StatusCode::OK, "{:?}", signer.alg);
        assert_eq!(body["subject"], "alice");
        assert_eq!(body["issuer"], ISSUER);
        assert_eq!(body["method"], "bearer");
    }
}

#[tokio::test]
async fn accepts_rs256_and_ps256_without_kid_when_one_key_fits() {
    let mut signer = rsa();
    signer.kid = None;
    let (status, _, _) = call(with_token(&mint(&signer, &claims()))).await;
    assert_eq!(status, StatusCode::OK);
    signer.alg = portcullis::bearer::Algorithm::PS256;
    let (status, _, _) = call(with_token(&mint(&signer, &claims()))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn no_token_reaches_the_handler_without_principal() {
    let request = Request::get("/").body(Body::empty()).expect("request");
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::Null);

    // Another scheme is not ours either.
    let request = Request::get("/")
        .header("authorization", "ApiKey pcl_whatever")
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn refuses_bad_tokens_with_a_bearer_challenge() {
    let now = now();
    let mut expired = claims();
    expired["exp"] = json!(now - 3600);
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.example");

    let good = mint(&rsa(), &claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut tampered_claims = claims();
    tampered_claims["sub"] = json!("admin");
    let forged_payload = b64(tampered_claims.to_string());
    parts[1] = &forged_payload;
    let tampered_payload = parts.join(".");
    let mut signature = good.rsplit('.').next().expect("signature").to_owned();
    let flipped = if signature[10..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    signature.replace_range(10..11, flipped);
    let tampered_signature = format!(
        "{}.{}.{}",
        parts[0],
        good.split('.').nth(1).expect("p"),
        signature
    );

    let cases = [
        (mint(&rsa(), &expired), "The token has expired."),
        (
            mint(&es256(), &wrong_aud),
            "The token is not meant for this audience.",
        ),
        (
            mint(&eddsa(), &wrong_iss),
            "The token's issuer is not trusted.",
        ),
        (tampered_payload, "The token is not valid."),
        (tampered_signature, "The token is not valid."),
        (mint(&rsa_other(), &claims()), "The token is not valid."),
    ];
    for (token, description) in cases {
        let (status, challenge, body) = call(with_token(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{description}");
        assert_eq!(challenge.as_deref(), Some(&*invalid_token(description)));
        assert_eq!(body["code"], "invalid_credentials");
    }
}

#[tokio::test]
async fn maps_scopes_and_roles() {
    // `scope` string + `realm_access.roles` for the main issuer.
    let mut c = claims();
    c["realm_access"] = json!({ "roles": ["admin", "viewer"] });
    let (status, _, body) = call(with_token(&mint(&rsa(), &c))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(body["roles"], json!(["admin", "viewer"]));

    // `scp` array, and roles from `resource_access.client.roles` for the second issuer.
    let mut c = claims();
    c["iss"] = json!(ISSUER_B);
    c.as_object_mut().expect("object").remove("scope");
    c["scp"] = json!(["profile", "orders:read"]);
    c["resource_access"] = json!({ "client": { "roles": ["clerk"] }, "other": { "roles": ["x"] } });
    c["realm_access"] = json!({ "roles": ["ignored"] });
    let (status, _, body) = call(with_token(&mint(&rsa(), &c))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["issuer"], ISSUER_B);
    assert_eq!(body["scopes"], json!(["orders:read", "profile"]));
    assert_eq!(body["roles"], json!(["clerk"]));

    // The second issuer has only an RSA key: an ES256 token claiming it is refused.
    let (status, _, _) = call(with_token(&mint(&es256(), &c))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let token = mint(&rsa(), &claims());
    let requests = [
        Request::get("/").header("authorization", "Bearer"),
        Request::get("/").header("authorization", "Bearer "),
        Request::get("/").header("authorization", "Bearer abc def"),
        // RFC 9110 section 11.4: one or more spaces after the scheme, nothing else.
        Request::get("/").header("authorization", format!("Bearer\t{token}")),
        Request::get("/").header("authorization", format!("bearer\t {token}")),
        Request::get("/").header("authorization", format!("Bearer,{token}")),
        // Query names are compared after percent-decoding, as axum's `Query` reads them.
        Request::get(format!("/?access%5Ftoken={token}")),
        Request::get(format!("/?x=1&access%5ftoken={token}")),
        Request::get(format!("/?access%5Ftoken={token}"))
            .header("authorization", format!("Bearer {token}")),
        Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {token}")),
        Request::get(format!("/?access_token={token}"))
            .header("authorization", format!("Bearer {token}")),
        Request::get(format!("/?access_token={token}")),
    ];
    for request in requests {
        let (status, challenge, body) = call(request.body(Body::empty()).expect("req")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(challenge.is_none());
    }
}

#[tokio::test]
async fn the_token_is_removed_before_the_handler() {
    let token = mint(&rsa(), &claims());
    let request = Request::get("/echo?page=2")
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["authorization"], json!(["Basic dXNlcjpwYXNz"]));
    assert_eq!(body["query"], "page=2");

    // The scheme is case-insensitive and may be followed by several spaces.
    let request = Request::get("/echo")
        .header("authorization", format!("bEaReR   {token}"))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["authorization"], json!([]));
}

#[tokio::test]
async fn query_tokens_only_when_opted_in() {
    use portcullis::bearer::{BearerAuthenticator, IssuerRules};
    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(keys())
        .build()
        .expect("rules");
    let authenticator = BearerAuthenticator::builder()
        .issuer(rules)
        .insecure_allow_query_token()
        .build()
        .expect("authenticator");
    let app = Router::new()
        .route("/", get(echo))
        .layer(BearerLayer::new(authenticator));
    let token = mint(&es256(), &claims());
    // However the parameter's name is spelled, it is the same parameter: the token is read
    // and removed from the query the handler sees.
    for spelling in [
        "access_token",
        "access%5Ftoken",
        "access%5ftoken",
        "%61ccess_token",
    ] {
        let request = Request::get(format!("/?a=1&{spelling}={token}&b=2"))
            .body(Body::empty())
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{spelling}");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["query"], "a=1&b=2", "{spelling}");
    }
}

#[tokio::test]
async fn cached_tokens_are_accepted_again_and_failures_are_not_cached() {
    let authenticator = authenticator();
    let token = mint(&eddsa(), &claims());
    let first = authenticator.verify(&token).expect("valid");
    let second = authenticator.verify(&token).expect("cached");
    assert_eq!(first, second);

    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    let token = mint(&eddsa(), &expired);
    assert!(authenticator.verify(&token).is_err());
    assert!(authenticator.verify(&token).is_err());
}

/// Every `portcullis::*` event emitted on this thread while it is installed: target and
/// `cause` field.
#[derive(Clone, Default)]
struct Events(std::sync::Arc<std::sync::Mutex<Vec<Seen>>>);

/// One event: its target and its `cause`.
type Seen = (String, Option<String>);

impl tracing::Subscriber for Events {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("portcullis::")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Cause<'a>(&'a mut Option<String>);
        impl tracing::field::Visit for Cause<'_> {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "cause" {
                    *self.0 = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut cause = None;
        event.record(&mut Cause(&mut cause));
        if let Ok(mut seen) = self.0.lock() {
            seen.push((event.metadata().target().to_owned(), cause));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_token_makes_one_event_with_its_cause() {
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 7200);
    let token = mint(&rsa(), &expired);
    let events = Events::default();
    let guard = tracing::subscriber::set_default(events.clone());
    let (status, _, _) = call(with_token(&token)).await;
    drop(guard);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let seen = events.0.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [(
            "portcullis::authenticate".to_owned(),
            Some("token_expired".to_owned())
        )]
    );
}

/// Token-cache lookups are counted through the `metrics` facade (a debugging recorder here).
#[cfg(feature = "metrics")]
#[test]
fn token_cache_hits_and_misses_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let authenticator = authenticator();
        let token = mint(&eddsa(), &claims());
        authenticator.verify(&token).expect("valid");
        authenticator.verify(&token).expect("cached");
        authenticator.verify(&token).expect("cached");
    });
    let mut lookups = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != "portcullis.token_cache.lookups" {
            continue;
        }
        let result = key
            .key()
            .labels()
            .find(|label| label.key() == "result")
            .map(|label| label.value().to_owned())
            .unwrap_or_default();
        if let DebugValue::Counter(count) = value {
            lookups.insert(result, count);
        }
    }
    assert_eq!(lookups.get("miss"), Some(&1));
    assert_eq!(lookups.get("hit"), Some(&2));
}
