//! API keys named in a policy file, looked up in a real `redis-server` (installed by
//! `tests/support` when missing).

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::api_key::{KeyAdmin, NewKey};
use portcullis::config::PolicyFile;
use portcullis::redis::{RedisConnection, RedisKeyStore};
use tower::ServiceExt;

mod support;
use support::redis::RedisServer;

const POLICY: &str = r#"
authenticate:
  api_keys:
    redis: {url_file: redis-url.txt}
roles:
  viewer: ["orders:read"]
routes:
  - {route: GET /orders, require: 'permission("orders:read")'}
"#;

/// A directory with the policy and its URL file; removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str, policy: &str, url: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("policy.yaml"), policy).expect("write");
        std::fs::write(dir.join("redis-url.txt"), format!("{url}\n")).expect("write");
        Self(dir)
    }

    fn policy(&self) -> PolicyFile {
        PolicyFile::from_file(self.0.join("policy.yaml")).expect("reads")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn keys_issued_on_redis_authenticate_through_the_files_gateway() {
    let redis = RedisServer::start();
    let dir = Dir::new("policy-redis", POLICY, &redis.url());
    // Another process issues keys on the same Redis.
    let admin = RedisKeyStore::new(RedisConnection::builder(redis.url()).build().expect("url"));
    let viewer = admin
        .issue(NewKey::for_owner("vic").roles(["viewer"]))
        .await
        .expect("issue");

    let (builder, _) = dir
        .policy()
        .gateway()
        .unwrap_or_else(|errors| panic!("{errors}"));
    let app = Router::new()
        .route("/orders", get(|| async { "orders" }))
        .layer(builder.build().expect("the file's authenticator is enough"));
    let call = |key: Option<&str>| {
        let mut request = Request::get("/orders");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).expect("request"))
    };
    let allowed = call(Some(viewer.key.expose_secret()))
        .await
        .expect("infallible");
    assert_eq!(allowed.status(), StatusCode::OK);
    let anonymous = call(None).await.expect("infallible");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .expect("text")
            .starts_with("ApiKey"),
        "{:?}",
        anonymous.headers()
    );
}

#[test]
fn the_redis_url_is_a_secret_read_from_the_environment_or_a_file() {
    // Neither, or both: refused.
    for store in ["{}", "{url_env: A, url_file: b.txt}"] {
        let text = format!("authenticate:\n  api_keys:\n    redis: {store}\n");
        let errors = PolicyFile::parse(&text, portcullis::config::Format::Yaml)
            .expect("parses")
            .gateway()
            .map(|_| ())
            .expect_err("no URL source");
        assert_eq!(errors.errors()[0].place, "authenticate.api_keys.redis");
    }
    let missing =
        "authenticate:\n  api_keys:\n    redis: {url_env: PORTCULLIS_TEST_NO_SUCH_VARIABLE}\n";
    let errors = PolicyFile::parse(missing, portcullis::config::Format::Yaml)
        .expect("parses")
        .gateway()
        .map(|_| ())
        .expect_err("unset");
    assert!(
        errors
            .to_string()
            .contains("PORTCULLIS_TEST_NO_SUCH_VARIABLE` is not set")
    );
    // A URL that cannot be used is refused without repeating it (it may hold a password).
    let dir = Dir::new(
        "policy-redis-bad",
        POLICY,
        "redis://user:hunter2@192.0.2.1:6379",
    );
    let errors = dir
        .policy()
        .gateway()
        .map(|_| ())
        .expect_err("plain text off loopback");
    let text = errors.to_string();
    assert!(text.contains("not usable"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
