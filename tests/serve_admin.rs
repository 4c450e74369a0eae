//! `portcullis serve --admin`: the admin listener beside the proxy, with API keys on a real
//! `redis-server` (installed by `tests/support` when missing): readiness, metrics, the key
//! API and reload, each guarded by the admin role.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use portcullis::api_key::{KeyAdmin, NewKey};
use portcullis::redis::{RedisConnection, RedisKeyStore};
use serde_json::{Value, json};

mod support;
use support::binary::Served;
use support::redis::RedisServer;

const POLICY: &str = r#"
authenticate:
  api_keys:
    redis: {url_file: redis-url.txt}
roles:
  admin: ["*"]
  viewer: ["orders:read"]
routes:
  - {route: GET /orders, require: 'permission("orders:read")'}
"#;

/// An upstream that answers every request with `upstream`.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = Router::new().fallback(get(|| async { "upstream" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// A request to `url`, with an API key, and its status, headers and body text.
async fn call(
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, url);
    if let Some(key) = key {
        request = request.header("authorization", format!("ApiKey {key}"));
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .timeout(support::binary::BOUND)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("text"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_answers_probes_metrics_keys_and_reload_for_the_admin_only() {
    let mut redis = RedisServer::start();
    let directory =
        std::env::temp_dir().join(format!("portcullis-serve-admin-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("directory");
    std::fs::write(directory.join("redis-url.txt"), redis.url()).expect("url");
    let policy = directory.join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("policy");
    let store = RedisKeyStore::new(RedisConnection::builder(redis.url()).build().expect("url"));
    let admin = store
        .issue(NewKey::for_owner("ada").roles(["admin"]))
        .await
        .expect("issue");
    let admin = admin.key.expose_secret().to_owned();
    let viewer = store
        .issue(NewKey::for_owner("vic").roles(["viewer"]))
        .await
        .expect("issue");
    let viewer = viewer.key.expose_secret().to_owned();

    let upstream = upstream().await;
    let served = Served::start([
        "serve".as_ref(),
        policy.as_os_str(),
        "--upstream".as_ref(),
        format!("http://{upstream}").as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--admin".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);
    let (main, admin_address) = tokio::task::block_in_place(|| {
        (
            served.address("listening on http://"),
            served.address("admin on http://"),
        )
    });
    let at = |address: SocketAddr, path: &str| format!("http://{address}{path}");

    // Readiness: anyone may ask; Redis answers.
    let (status, _, body) = call(
        reqwest::Method::GET,
        at(admin_address, "/ready"),
        None,
        None,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    // The proxy serves the viewer, and the decision is counted.
    let (status, _, body) = call(
        reqwest::Method::GET,
        at(main, "/orders"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "upstream"));

    // Metrics: the admin role only.
    let metrics = || {
        call(
            reqwest::Method::GET,
            at(admin_address, "/metrics"),
            None,
            None,
        )
    };
    let (status, headers, _) = metrics().await;
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"), "{headers:?}");
    let (status, _, _) = call(
        reqwest::Method::GET,
        at(admin_address, "/metrics"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, headers, body) = call(
        reqwest::Method::GET,
        at(admin_address, "/metrics"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .expect("text")
            .starts_with("text/plain"),
        "{headers:?}"
    );
    assert!(
        body.lines()
            .any(|line| line.starts_with("portcullis_decisions")
                && line.contains("outcome=\"allowed\"")),
        "{body}"
    );

    // The key API: the viewer may not issue; the admin issues a key that works at once.
    let new_key = json!({"owner": "olga", "roles": ["viewer"]});
    let (status, _, _) = call(
        reqwest::Method::POST,
        at(admin_address, "/keys"),
        Some(&viewer),
        Some(new_key.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, body) = call(
        reqwest::Method::POST,
        at(admin_address, "/keys"),
        Some(&admin),
        Some(new_key.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let issued: Value = serde_json::from_str(&body).expect("JSON");
    let olga = issued["key"].as_str().expect("the secret, once");
    let (status, _, _) = call(reqwest::Method::GET, at(main, "/orders"), Some(olga), None).await;
    assert_eq!(status, 200);
    // Another, revoked before its first use: refused by the proxy from then on.
    let (_, _, body) = call(
        reqwest::Method::POST,
        at(admin_address, "/keys"),
        Some(&admin),
        Some(new_key),
    )
    .await;
    let revoked: Value = serde_json::from_str(&body).expect("JSON");
    let id = revoked["record"]["id"].as_str().expect("an id");
    let (status, _, _) = call(
        reqwest::Method::DELETE,
        at(admin_address, &format!("/keys/{id}")),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let secret = revoked["key"].as_str().expect("secret");
    let (status, _, _) = call(
        reqwest::Method::GET,
        at(main, "/orders"),
        Some(secret),
        None,
    )
    .await;
    assert_eq!(status, 401);

    // Reload through the API: a file failing its own test is refused and the old policy
    // keeps serving; a good one replaces it.
    std::fs::write(
        &policy,
        format!(
            "{POLICY}tests:\n  - {{request: GET /orders, as: anonymous, expect: {{status: 200}}}}\n"
        ),
    )
    .expect("write");
    let reload = || {
        call(
            reqwest::Method::POST,
            at(admin_address, "/reload"),
            Some(&admin),
            None,
        )
    };
    let (status, _, body) = reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("tests[0]"), "{body}");
    let (status, _, _) = call(
        reqwest::Method::GET,
        at(main, "/orders"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    std::fs::write(
        &policy,
        POLICY.replace("orders:read\"]\nroutes", "\"]\nroutes"),
    )
    .expect("write");
    let (status, _, body) = reload().await;
    assert_eq!((status, body.as_str()), (200, "reloaded (generation 1)\n"));
    let (status, _, _) = call(
        reqwest::Method::GET,
        at(main, "/orders"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 403, "the viewer lost orders:read with the new file");
    let (status, _, _) = call(
        reqwest::Method::POST,
        at(admin_address, "/reload"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // Redis gone: not ready, and says when to ask again.
    redis.stop();
    let (status, headers, body) = call(
        reqwest::Method::GET,
        at(admin_address, "/ready"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["retry-after"], "5");
    assert!(body.contains("Redis"), "{body}");
    drop(served);
    let _ = std::fs::remove_dir_all(directory);
}

#[test]
fn a_role_without_an_admin_listener_is_a_usage_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "serve",
            "policy.yaml",
            "--upstream",
            "http://127.0.0.1:9",
            "--admin-role",
            "ops",
        ])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
}
