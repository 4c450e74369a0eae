//! The `portcullis serve` binary: the admin listener beside the proxy, with API keys on a
//! real `redis-server` (installed by `tests/support` when missing): readiness, metrics, the
//! key API and reload, each guarded by the admin role; and the bounds on what a client may
//! hold: a slow request head and the connection cap.

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
    let client = reqwest::Client::builder()
        .timeout(support::binary::BOUND)
        .build()
        .expect("an HTTP client");
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
    for (method, path) in [
        (reqwest::Method::POST, "/reload"),
        (reqwest::Method::GET, "/keys"),
        (reqwest::Method::POST, "/keys"),
    ] {
        let (status, _, _) = call(method, at(admin_address, path), None, None).await;
        assert_eq!(status, 401, "anonymous {path}");
    }
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
    let (code, _, _) = support::binary::run(&[
        "serve",
        "policy.yaml",
        "--upstream",
        "http://127.0.0.1:9",
        "--admin-role",
        "ops",
    ]);
    assert_eq!(code, 2);
}

/// The binary serving a public route in front of an upstream, with `extra` arguments; its
/// listening address.
async fn serve_public(name: &str, extra: &[&str]) -> (Served, SocketAddr, std::path::PathBuf) {
    serve_public_with_env(name, extra, &[]).await
}

/// [`serve_public`], with `environment` added to the binary's.
async fn serve_public_with_env(
    name: &str,
    extra: &[&str],
    environment: &[(&str, &str)],
) -> (Served, SocketAddr, std::path::PathBuf) {
    let directory =
        std::env::temp_dir().join(format!("portcullis-serve-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("directory");
    let policy = directory.join("policy.yaml");
    std::fs::write(&policy, "routes: [{route: GET /public, require: public}]\n").expect("policy");
    let upstream = upstream().await;
    let upstream = format!("http://{upstream}");
    let mut arguments = vec![
        "serve",
        policy.to_str().expect("UTF-8"),
        "--upstream",
        &upstream,
        "--listen",
        "127.0.0.1:0",
    ];
    arguments.extend_from_slice(extra);
    let served = Served::start_with_env(arguments, environment);
    let address = tokio::task::block_in_place(|| served.address("listening on http://"));
    (served, address, directory)
}

/// Reads from `stream` until the server closes it; the bytes read.
fn read_to_close(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    stream
        .set_read_timeout(Some(support::binary::BOUND))
        .expect("timeout");
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .expect("closed by the server within the bound");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_to_send_its_request_head_is_disconnected() {
    use std::io::Write;
    let (served, address, directory) = serve_public("slow", &["--header-timeout", "1"]).await;
    let mut slow = std::net::TcpStream::connect(address).expect("connect");
    // Half a head, never finished: the server closes the connection (with a 408 or without
    // a word) instead of holding it.
    slow.write_all(b"GET /public HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let answer = tokio::task::block_in_place(|| read_to_close(&mut slow));
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // An idle keep-alive connection is closed the same way.
    let mut idle = std::net::TcpStream::connect(address).expect("connect");
    idle.write_all(b"GET /public HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let answer = tokio::task::block_in_place(|| read_to_close(&mut idle));
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(served);
    let _ = std::fs::remove_dir_all(directory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_one_closes() {
    use std::io::{Read, Write};
    let (served, address, directory) =
        serve_public("cap", &["--max-connections", "1", "--header-timeout", "1"]).await;
    // The first connection takes the only place, and idles.
    let mut first = std::net::TcpStream::connect(address).expect("connect");
    first
        .write_all(b"GET /public HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut head = [0_u8; 12];
    first
        .set_read_timeout(Some(support::binary::BOUND))
        .expect("timeout");
    first.read_exact(&mut head).expect("answered");
    assert_eq!(&head, b"HTTP/1.1 200");
    // The second is answered only once the first is gone (closed by the header timeout):
    // by then, reading the first finds it closed, not merely quiet.
    let mut second = std::net::TcpStream::connect(address).expect("connect");
    second
        .write_all(b"GET /public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let answer = tokio::task::block_in_place(|| read_to_close(&mut second));
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    first.set_nonblocking(true).expect("nonblocking");
    let mut rest = Vec::new();
    match first.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(error) => panic!("the first connection was still open: {error}"),
    }
    drop(served);
    let _ = std::fs::remove_dir_all(directory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_an_audit_event_in_json_lines() {
    let (served, address, directory) = serve_public_with_env(
        "audit",
        &[],
        &[
            ("PORTCULLIS_LOG", "warn,portcullis::audit=info"),
            ("PORTCULLIS_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let (status, _, _) = call(
        reqwest::Method::GET,
        format!("http://{address}/public"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let line = tokio::task::block_in_place(|| served.line_containing("\"event\":\"decision\""));
    let event: Value = serde_json::from_str(&line).expect("a JSON line");
    let fields = &event["fields"];
    assert_eq!(event["target"], "portcullis::audit", "{event}");
    assert_eq!(fields["method"], "GET", "{event}");
    assert_eq!(fields["client_ip"], "127.0.0.1", "{event}");
    assert_eq!(fields["audit_schema"], 1, "{event}");
    drop(served);
    let _ = std::fs::remove_dir_all(directory);
}

/// Keys in memory: the first admin key is printed once; keys issued with it through the key
/// API work on the proxy at once and outlive a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_memory_start_with_one_admin_key_and_outlive_a_reload() {
    let directory =
        std::env::temp_dir().join(format!("portcullis-serve-memory-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("directory");
    let policy = directory.join("policy.yaml");
    std::fs::write(
        &policy,
        POLICY.replace("redis: {url_file: redis-url.txt}", "memory: {}"),
    )
    .expect("policy");
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
    let (main, admin_address, admin) = tokio::task::block_in_place(|| {
        let main = served.address("listening on http://");
        let admin_address = served.address("admin on http://");
        let line = served.line_containing("admin key (shown once");
        let key = line.rsplit(' ').next().expect("the key").to_owned();
        (main, admin_address, key)
    });
    let at = |address: SocketAddr, path: &str| format!("http://{address}{path}");
    let (status, _, body) = call(
        reqwest::Method::POST,
        at(admin_address, "/keys"),
        Some(&admin),
        Some(json!({"owner": "vic", "roles": ["viewer"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let issued: Value = serde_json::from_str(&body).expect("JSON");
    let viewer = issued["key"].as_str().expect("the secret").to_owned();
    let orders = || {
        call(
            reqwest::Method::GET,
            at(main, "/orders"),
            Some(&viewer),
            None,
        )
    };
    assert_eq!(orders().await.0, 200);
    let (status, _, body) = call(
        reqwest::Method::POST,
        at(admin_address, "/reload"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(orders().await.0, 200, "the key outlived the reload");
    drop(served);
    let _ = std::fs::remove_dir_all(directory);
}

#[test]
fn api_keys_name_exactly_one_store() {
    use portcullis::config::{Format, PolicyFile};
    for keys in ["{}", "{memory: {}, redis: {url_env: X}}"] {
        let policy = PolicyFile::parse(
            &format!("authenticate: {{api_keys: {keys}}}\nroutes: []\n"),
            Format::Yaml,
        )
        .expect("parses");
        let errors = policy.gateway().map(|_| ()).expect_err("not one store");
        assert_eq!(
            errors.errors()[0].place,
            "authenticate.api_keys",
            "{errors}"
        );
        assert!(errors.to_string().contains("exactly one"), "{errors}");
    }
}
