//! `portcullis serve` and the proxy under it, end to end: a real upstream started here (an
//! axum server that echoes what it received), the gateway with a `Proxy` behind it served on
//! the loopback, and a real HTTP client; then the binary itself.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis::config::{Format, PolicyFile};
use portcullis::proxy::Proxy;
use portcullis::{AuthFuture, AuthMethod, AuthOutcome, GatewaySecurityLayer, Principal};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

#[cfg(feature = "bearer")]
mod support;
use support::binary::Served;

/// Every wait in these tests ends by this.
const BOUND: Duration = Duration::from_secs(20);

const POLICY: &str = r#"
roles: {member: []}
routes:
  - {route: GET /public, require: public}
  - {route: "GET /files/{*rest}", require: public}
  - {route: GET /echo, require: role(member)}
  - {route: POST /stream, require: role(member)}
  - {route: GET /slow, require: public}
  - {route: POST /orders, require: authenticated}
validate:
  routes:
    - route: POST /orders
      body: {type: object, required: [item], properties: {item: {type: string}}}
"#;

/// `x-user: NAME` is a caller named NAME with role `member` and scope `orders:read`.
fn header_users(parts: &Parts) -> AuthFuture {
    let outcome = match parts.headers.get("x-user").and_then(|v| v.to_str().ok()) {
        Some(name) => AuthOutcome::Authenticated(
            Principal::builder(name, AuthMethod::Bearer)
                .roles(["member"])
                .scopes(["orders:read", "orders:write"])
                .build(),
        ),
        None => AuthOutcome::Absent,
    };
    AuthFuture::ready(outcome)
}

fn gateway() -> GatewaySecurityLayer {
    let checked = PolicyFile::parse(POLICY, Format::Yaml)
        .expect("parses")
        .check()
        .expect("checks");
    GatewaySecurityLayer::builder()
        .authenticate(header_users)
        .rules(checked.rules)
        .validate(checked.validation.expect("a validate section"))
        .build()
        .expect("builds")
}

/// The upstream: echoes method, path, query, headers and body as JSON; `/stream` sends the
/// request body back as it comes, with a hop-by-hop header of its own; `/slow` never
/// answers. Counts every request it gets.
struct Upstream {
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let never = Arc::new(Notify::new());
        let counted = hits.clone();
        let app = Router::new().fallback(move |request: Request<Body>| {
            let (hits, never) = (counted.clone(), never.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                match request.uri().path() {
                    "/slow" => {
                        // Nobody ever notifies: the proxy's timeout answers.
                        never.notified().await;
                        Response::new(Body::empty())
                    }
                    "/stream" => Response::builder()
                        .header("connection", "x-response-hop")
                        .header("x-response-hop", "1")
                        .header("keep-alive", "timeout=5")
                        .body(request.into_body())
                        .expect("response"),
                    _ => echo(request).await,
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(axum::serve(listener, app).into_future());
        Self { address, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn echo(request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| Value::from(String::from_utf8_lossy(value.as_bytes())))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    let echoed = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    Response::new(Body::from(echoed.to_string()))
}

/// The gateway, with a proxy to `upstream` behind it, on the loopback.
async fn start_proxy(upstream: SocketAddr, timeout: Duration) -> SocketAddr {
    let proxy = Proxy::builder(format!("http://{upstream}"))
        .timeout(timeout)
        .build()
        .expect("proxy");
    let app = Router::new().fallback_service(proxy).layer(gateway());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );
    address
}

type ClientBody = UnsyncBoxBody<Bytes, Infallible>;

fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn full(body: impl Into<Bytes>) -> ClientBody {
    Full::new(body.into()).boxed_unsync()
}

/// Sends `request`, reads the whole answer.
async fn send(request: Request<ClientBody>) -> (StatusCode, HeaderMap, Bytes) {
    tokio::time::timeout(BOUND, async {
        let response = client().request(request).await.expect("an answer");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, body)
    })
    .await
    .expect("answered in time")
}

fn get(address: SocketAddr, path: &str) -> http::request::Builder {
    Request::get(format!("http://{address}{path}"))
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON")
}

#[tokio::test]
async fn identity_headers_arrive_and_forged_ones_never_do() {
    let upstream = Upstream::start().await;
    let proxy = start_proxy(upstream.address, Duration::from_secs(5)).await;

    let request = get(proxy, "/echo?page=2&sort=asc")
        .header("x-user", "ada")
        .header("x-auth-subject", "admin")
        .header("x-auth-roles", "admin")
        .header("X-Auth-Scopes", "*")
        .body(full(""))
        .expect("request");
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    let echoed = json_of(&body);
    assert_eq!(echoed["method"], "GET");
    assert_eq!(echoed["path"], "/echo");
    assert_eq!(echoed["query"], "page=2&sort=asc");
    let headers = &echoed["headers"];
    assert_eq!(headers["x-auth-subject"], json!(["ada"]));
    assert_eq!(headers["x-auth-method"], json!(["bearer"]));
    assert_eq!(headers["x-auth-roles"], json!(["member"]));
    assert_eq!(
        headers["x-auth-scopes"],
        json!(["orders:read,orders:write"])
    );

    // On a public route, as an anonymous caller: every forged identity header is removed.
    let request = get(proxy, "/public")
        .header("x-auth-subject", "admin")
        .header("x-auth-method", "api_key")
        .header("x-auth-roles", "admin")
        .header("x-auth-scopes", "*")
        .body(full(""))
        .expect("request");
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    let headers = json_of(&body)["headers"].clone();
    for name in [
        "x-auth-subject",
        "x-auth-method",
        "x-auth-roles",
        "x-auth-scopes",
    ] {
        assert!(headers.get(name).is_none(), "{name} forged: {headers}");
    }

    // Spelled with underscores (one variable to CGI and WSGI servers), named through
    // `Connection`, or rerouting the upstream: none of it arrives.
    let request = get(proxy, "/public")
        .header("x_auth_subject", "admin")
        .header("X_Auth_Roles", "admin")
        .header("connection", "x-auth-subject")
        .header("x-original-url", "/admin")
        .header("x-http-method-override", "DELETE")
        .body(full(""))
        .expect("request");
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    let headers = json_of(&body)["headers"].clone();
    for name in [
        "x_auth_subject",
        "x_auth_roles",
        "x-auth-subject",
        "x-original-url",
        "x-http-method-override",
    ] {
        assert!(headers.get(name).is_none(), "{name} passed: {headers}");
    }
}

#[tokio::test]
async fn a_path_the_upstream_could_read_otherwise_is_refused() {
    let upstream = Upstream::start().await;
    let proxy = start_proxy(upstream.address, Duration::from_secs(5)).await;
    // A public catch-all: the gateway lets these through, so the proxy is what refuses.
    for path in [
        "/files/..;/echo",
        "/files/%2e%2e/echo",
        "/files/../echo",
        "/files/a;b",
        "/files//echo",
        "/files/a%2fb",
    ] {
        let request = get(proxy, path).body(full("")).expect("request");
        let (status, _, _) = send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert_eq!(upstream.hits(), 0);
    let plain = get(proxy, "/files/a/b.txt")
        .body(full(""))
        .expect("request");
    assert_eq!(send(plain).await.0, StatusCode::OK);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_ones_removed() {
    let upstream = Upstream::start().await;
    let proxy = start_proxy(upstream.address, Duration::from_secs(5)).await;

    let request = get(proxy, "/public")
        .header("connection", "x-secret-hop")
        .header("x-secret-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic cHJveHk6cHJveHk=")
        .header("te", "trailers")
        .header("upgrade", "websocket")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-kept", "yes")
        .body(full(""))
        .expect("request");
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    let headers = json_of(&body)["headers"].clone();
    for name in [
        "x-secret-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(headers.get(name).is_none(), "{name} passed: {headers}");
    }
    assert_eq!(headers["x-kept"], json!(["yes"]));
    // The client's list is dropped: the proxy is the edge, and the upstream trusts the
    // last hop.
    assert_eq!(headers["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(headers["x-forwarded-proto"], json!(["http"]));
    assert_eq!(headers["x-forwarded-host"], json!([proxy.to_string()]));
    assert_eq!(
        headers["forwarded"],
        json!([format!("for=127.0.0.1;host=\"{proxy}\";proto=http")])
    );
    // The upstream is asked for by its own name.
    assert_eq!(headers["host"], json!([upstream.address.to_string()]));

    // The upstream's hop-by-hop headers stay on its side too.
    let request = Request::post(format!("http://{proxy}/stream"))
        .header("x-user", "ada")
        .body(full("ping"))
        .expect("request");
    let (status, headers, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ping");
    assert!(!headers.contains_key("x-response-hop"), "{headers:?}");
    assert!(!headers.contains_key("keep-alive"), "{headers:?}");
}

#[tokio::test]
async fn a_large_body_arrives_byte_for_byte_streamed() {
    let upstream = Upstream::start().await;
    let proxy = start_proxy(upstream.address, Duration::from_secs(5)).await;

    // 8 MiB (eight times the validation's default limit, which applies to validated routes
    // only), sent in 64 KiB chunks with no length given, so it goes chunked all the way.
    let sent: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<Result<http_body::Frame<Bytes>, Infallible>> = sent
        .chunks(64 * 1024)
        .map(|chunk| Ok(http_body::Frame::data(Bytes::copy_from_slice(chunk))))
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync();
    let request = Request::post(format!("http://{proxy}/stream"))
        .header("x-user", "ada")
        .body(body)
        .expect("request");
    let (status, _, received) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "the body changed on the way");
}

#[tokio::test]
async fn bodies_stream_both_ways_without_waiting_for_the_end() {
    let upstream = Upstream::start().await;
    let proxy = start_proxy(upstream.address, Duration::from_secs(5)).await;

    // Each chunk is sent only after the previous one came back through the proxy, twice: a
    // proxy that buffered either body whole would never answer.
    let (chunks, receiver) = mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok(http_body::Frame::data(chunk)), receiver))
    });
    let request = Request::post(format!("http://{proxy}/stream"))
        .header("x-user", "ada")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("request");
    tokio::time::timeout(BOUND, async {
        chunks.send(Bytes::from_static(b"one")).await.expect("send");
        let response = client().request(request).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "one");
        chunks.send(Bytes::from_static(b"two")).await.expect("send");
        let second = body.frame().await.expect("a frame").expect("data");
        assert_eq!(second.into_data().expect("data"), "two");
        drop(chunks);
        assert!(body.frame().await.is_none());
    })
    .await
    .expect("streamed both ways");
}

#[tokio::test]
async fn a_refused_request_never_reaches_the_upstream() {
    let upstream = Upstream::start().await;
    let proxy = start_proxy(upstream.address, Duration::from_secs(5)).await;

    let anonymous = get(proxy, "/echo").body(full("")).expect("request");
    assert_eq!(send(anonymous).await.0, StatusCode::UNAUTHORIZED);
    let unmatched = get(proxy, "/admin")
        .header("x-user", "ada")
        .body(full(""))
        .expect("request");
    assert_eq!(send(unmatched).await.0, StatusCode::FORBIDDEN);
    let invalid = Request::post(format!("http://{proxy}/orders"))
        .header("x-user", "ada")
        .header("content-type", "application/json")
        .body(full(r#"{"quantity": 1}"#))
        .expect("request");
    let (status, headers, _) = send(invalid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(upstream.hits(), 0);

    let valid = Request::post(format!("http://{proxy}/orders"))
        .header("x-user", "ada")
        .header("content-type", "application/json")
        .body(full(r#"{"item": "tea"}"#))
        .expect("request");
    let (status, _, body) = send(valid).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["body"], r#"{"item": "tea"}"#);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502() {
    // A port that was just free: nothing listens there.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let down = listener.local_addr().expect("address");
    drop(listener);
    let proxy = start_proxy(down, Duration::from_secs(5)).await;

    let (status, headers, body) = send(get(proxy, "/public").body(full("")).expect("r")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "application/problem+json");
    let problem = json_of(&body);
    assert_eq!(problem["status"], 502);
    assert_eq!(problem["code"], "unavailable");
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_is_a_504() {
    let upstream = Upstream::start().await;
    let proxy = start_proxy(upstream.address, Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    let (status, headers, body) = send(get(proxy, "/slow").body(full("")).expect("r")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(headers["content-type"], "application/problem+json");
    let problem = json_of(&body);
    assert_eq!(problem["status"], 504);
    assert_eq!(problem["code"], "unavailable");
    assert_eq!(upstream.hits(), 1);
}

#[test]
fn an_upstream_url_that_cannot_work_is_refused_at_build() {
    for url in [
        "https://example.com",
        "ftp://example.com",
        "example.com",
        "http://user:pw@example.com",
        "http://example.com/?a=b",
        "not a url",
    ] {
        assert!(Proxy::builder(url).build().is_err(), "{url} accepted");
    }
    assert!(
        Proxy::builder("http://example.com")
            .timeout(Duration::ZERO)
            .build()
            .is_err()
    );
    let proxy = Proxy::builder("http://127.0.0.1:3000/api/")
        .build()
        .expect("ok");
    assert_eq!(proxy.upstream(), "http://127.0.0.1:3000/api");
}

/// An identity header a client could forge or that would change the request is refused:
/// `x_user` (a CGI-style upstream reads a client's `X-User` as the same variable), headers
/// HTTP or the proxy owns, the client's credentials, and one name for two headers.
#[test]
fn identity_header_names_that_cannot_be_trusted_are_refused_at_build() {
    use http::HeaderName;
    let build = |name: &'static str| {
        Proxy::builder("http://127.0.0.1:3000")
            .subject_header(HeaderName::from_static(name))
            .build()
    };
    for name in [
        "x_user",
        "x-forwarded-for",
        "content-length",
        "host",
        "cookie",
        "authorization",
        "x-http-method-override",
        "proxy-user",
    ] {
        let refused = build(name).expect_err(name);
        assert!(refused.to_string().contains(name), "{refused}");
    }
    let twice = Proxy::builder("http://127.0.0.1:3000")
        .subject_header(HeaderName::from_static("x-user"))
        .roles_header(HeaderName::from_static("x-user"))
        .build()
        .expect_err("one name for two headers");
    assert!(
        twice.to_string().contains("another identity header"),
        "{twice}"
    );
    assert!(build("x-user").is_ok());
}

fn policy_file(name: &str, text: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("portcullis-serve-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let path = directory.join(name);
    std::fs::write(&path, text).expect("write policy");
    path
}

/// `portcullis serve POLICY ARGUMENTS… --listen 127.0.0.1:0` with `environment` added; its
/// address, from its first line.
fn start_binary(
    policy: &std::path::Path,
    arguments: &[&str],
    environment: &[(&str, &str)],
) -> (Served, SocketAddr) {
    let mut all: Vec<&std::ffi::OsStr> = vec!["serve".as_ref(), policy.as_os_str()];
    all.extend(arguments.iter().map(std::ffi::OsStr::new));
    all.extend([
        std::ffi::OsStr::new("--listen"),
        std::ffi::OsStr::new("127.0.0.1:0"),
    ]);
    let served = Served::start_with_env(all, environment);
    let first = served.next_line();
    let address: SocketAddr = first
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .parse()
        .expect("an address");
    (served, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_reloads_and_stops() {
    let upstream = Upstream::start().await;
    let policy = policy_file(
        "policy.yaml",
        "routes:\n  - {route: GET /public, require: public}\n",
    );
    let upstream_url = format!("http://{}", upstream.address);
    let (served, address) =
        tokio::task::block_in_place(|| start_binary(&policy, &["--upstream", &upstream_url], &[]));

    let (status, _, body) = send(get(address, "/public").body(full("")).expect("r")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["path"], "/public");
    // No authenticator yet: a route that needs a caller is refused.
    let (status, _, _) = send(get(address, "/other").body(full("")).expect("r")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(upstream.hits(), 1);

    #[cfg(unix)]
    {
        // A file that fails its own test is refused; the old policy keeps serving.
        std::fs::write(
            &policy,
            "routes:\n  - {route: GET /public, require: public}\ntests:\n  \
             - {request: GET /public, as: anonymous, expect: {status: 401}}\n",
        )
        .expect("write");
        served.signal("-HUP");
        tokio::task::block_in_place(|| served.line_containing("reload refused"));
        let (status, _, _) = send(get(address, "/public").body(full("")).expect("r")).await;
        assert_eq!(status, StatusCode::OK);

        // A good one replaces it; its new `upstream` section is said to wait for a restart.
        std::fs::write(
            &policy,
            "routes:\n  - {route: GET /public, require: authenticated}\nupstream: {timeout: 5s}\n",
        )
        .expect("write");
        served.signal("-HUP");
        tokio::task::block_in_place(|| {
            served.lines_containing_all(&[
                "the `upstream` section changed; it applies at the next start",
                "reloaded",
            ]);
        });
        let (status, _, _) = send(get(address, "/public").body(full("")).expect("r")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            upstream.hits(),
            2,
            "the refused request reached the upstream"
        );

        // SIGTERM: it stops on its own, in time.
        served.signal("-TERM");
        let mut served = served;
        let status = tokio::task::block_in_place(|| {
            for _ in 0..200 {
                if let Some(status) = served.child.try_wait().expect("wait") {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            None
        });
        assert!(status.expect("stopped within 10 s").success());
    }
}

/// A reload rebuilds the gateway from the file, but not its counters: a spent bucket stays
/// spent (an hour to refill: no clock in this test decides anything).
#[cfg(all(unix, feature = "rate-limit"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_spent_rate_limit_buckets() {
    let upstream = Upstream::start().await;
    let limited = |note: &str| {
        format!(
            "# {note}\nroutes:\n  - {{route: GET /public, require: public}}\ntraffic:\n  \
             rate_limits:\n    before_auth: [{{name: per-ip, key: client_ip, quota: 1/h}}]\n"
        )
    };
    let policy = policy_file("limited.yaml", &limited("first"));
    let upstream_url = format!("http://{}", upstream.address);
    let (served, address) =
        tokio::task::block_in_place(|| start_binary(&policy, &["--upstream", &upstream_url], &[]));
    let public = || get(address, "/public").body(full("")).expect("r");
    assert_eq!(send(public()).await.0, StatusCode::OK);
    let (status, headers, _) = send(public()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["ratelimit-policy"], "\"per-ip\";q=1;w=3600");

    std::fs::write(&policy, limited("second")).expect("write");
    served.signal("-HUP");
    tokio::task::block_in_place(|| served.line_containing("reloaded"));
    assert_eq!(send(public()).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(upstream.hits(), 1);
}

/// Checks a token with the Node `jose` package (the one `oidc-provider` uses, in
/// `tests/idp/node_modules`) against the JWKS at `jwks_url`, as an upstream would: the
/// signature, `iss`, `aud`, `typ`, `exp`; and that a wrong audience or issuer, a time after
/// `exp` and a changed payload are refused. Prints what it found as JSON.
#[cfg(feature = "bearer")]
const VERIFY_WITH_JOSE: &str = r#"
import * as jose from 'jose';
const { JWKS_URL, TOKEN, ISSUER, AUDIENCE } = process.env;
const jwks = jose.createRemoteJWKSet(new URL(JWKS_URL));
const expected = { issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'] };
const { payload, protectedHeader } = await jose.jwtVerify(TOKEN, jwks, {
  ...expected, typ: 'at+jwt', requiredClaims: ['sub', 'iat', 'exp', 'jti'],
});
const refusal = async (token, options) => {
  try { await jose.jwtVerify(token, jwks, { ...expected, ...options }); return 'accepted'; }
  catch (error) { return error.code ?? String(error); }
};
const [header, , signature] = TOKEN.split('.');
const forged = jose.base64url.encode(JSON.stringify({ ...payload, sub: 'admin' }));
console.log(JSON.stringify({
  payload,
  header: protectedHeader,
  wrongAudience: await refusal(TOKEN, { audience: 'another-service' }),
  wrongIssuer: await refusal(TOKEN, { issuer: 'https://elsewhere.test' }),
  afterExpiry: await refusal(TOKEN, { currentDate: new Date((payload.exp + 1) * 1000) }),
  changedPayload: await refusal(`${header}.${forged}.${signature}`, {}),
}));
"#;

#[cfg(feature = "bearer")]
fn verify_with_jose(jwks_url: &str, token: &str, issuer: &str, audience: &str) -> Value {
    let output = support::process::output_within(
        Command::new("node")
            .args(["--input-type=module", "-e", VERIFY_WITH_JOSE])
            .current_dir(support::peers::idp_dir())
            .env("JWKS_URL", jwks_url)
            .env("TOKEN", token)
            .env("ISSUER", issuer)
            .env("AUDIENCE", audience),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        output.status.success(),
        "jose refused the token: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[cfg(feature = "bearer")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_hands_on_an_identity_token_that_verifies_against_its_jwks() {
    use portcullis::bearer::{BearerAuthenticator, IssuerRules};
    use portcullis::jwt::KeySet;
    use portcullis::proxy::IdentityToken;
    use portcullis::{AuthOutcome, Authenticate};
    use support::idp::{API, Idp, Settings};

    const ISSUER: &str = "https://gateway.test";
    const AUDIENCE: &str = "orders-upstream";
    let upstream = Upstream::start().await;
    let idp = tokio::task::block_in_place(|| Idp::start(Settings::default()));
    let access_token = tokio::task::block_in_place(|| idp.token(API));
    // The URL from the file (no `--upstream`), the key from the environment; the JWKS path
    // is in no rule, and unmatched routes are denied.
    let policy = policy_file(
        "identity-token.yaml",
        &format!(
            r#"
authenticate:
  bearer:
    - {{issuer: "{issuer}", audiences: ["{API}"], discover: true, roles_claim: realm_access.roles}}
routes:
  - {{route: GET /public, require: public}}
  - {{route: GET /echo, require: authenticated}}
upstream:
  url: http://{upstream}
  identity_token:
    key_env: PORTCULLIS_TEST_IDENTITY_KEY
    issuer: {ISSUER}
    audience: {AUDIENCE}
    lifetime: 2m
"#,
            issuer = idp.issuer,
            upstream = upstream.address,
        ),
    );
    let key = IdentityToken::example_key_pem();
    let (served, address) = tokio::task::block_in_place(|| {
        start_binary(&policy, &[], &[("PORTCULLIS_TEST_IDENTITY_KEY", &key)])
    });
    let announced = tokio::task::block_in_place(|| served.line_containing("identity token"));
    assert!(
        announced.contains("x-auth-token") && announced.contains("/.well-known/jwks.json"),
        "{announced}"
    );

    // An authenticated caller, sending forged tokens of its own: the upstream gets one
    // token, the gateway's.
    let request = get(address, "/echo")
        .header("authorization", format!("Bearer {access_token}"))
        .header("x-auth-token", "forged.by.client")
        .header("x_auth_token", "forged.by.client")
        .body(full(""))
        .expect("request");
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let headers = json_of(&body)["headers"].clone();
    let tokens = headers["x-auth-token"].as_array().expect("a token").clone();
    assert_eq!(tokens.len(), 1, "{headers}");
    let token = tokens[0].as_str().expect("text").to_owned();
    assert_ne!(token, "forged.by.client");
    assert!(headers.get("x_auth_token").is_none(), "{headers}");
    // The bearer token the gateway checked is not passed on (the authenticator strips it):
    // the gateway's token is the caller's identity upstream.
    assert!(headers.get("authorization").is_none(), "{headers}");
    let subject = headers["x-auth-subject"][0]
        .as_str()
        .expect("a subject")
        .to_owned();

    // The key set, answered by portcullis without the policy listing it and without the
    // upstream.
    let hits = upstream.hits();
    let (status, response_headers, jwks) = send(
        get(address, "/.well-known/jwks.json")
            .body(full(""))
            .expect("r"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response_headers["content-type"], "application/jwk-set+json");
    assert_eq!(upstream.hits(), hits);

    // Verified by jose, fetching the key set from portcullis.
    let jwks_url = format!("http://{address}/.well-known/jwks.json");
    let verified =
        tokio::task::block_in_place(|| verify_with_jose(&jwks_url, &token, ISSUER, AUDIENCE));
    let payload = &verified["payload"];
    assert_eq!(payload["iss"], ISSUER);
    assert_eq!(payload["aud"], AUDIENCE);
    assert_eq!(payload["sub"], subject.as_str());
    assert_eq!(payload["sub"], "resource-client");
    assert_eq!(payload["auth_method"], "bearer");
    assert_eq!(payload["scope"], "orders:read orders:write");
    let lifetime = payload["exp"].as_u64().expect("exp") - payload["iat"].as_u64().expect("iat");
    assert_eq!(lifetime, 120);
    assert_eq!(verified["header"]["alg"], "ES256");
    assert_eq!(verified["header"]["typ"], "at+jwt");
    for (case, code) in [
        ("wrongAudience", "ERR_JWT_CLAIM_VALIDATION_FAILED"),
        ("wrongIssuer", "ERR_JWT_CLAIM_VALIDATION_FAILED"),
        ("afterExpiry", "ERR_JWT_EXPIRED"),
        ("changedPayload", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"),
    ] {
        assert_eq!(verified[case], code, "{case}: {verified}");
    }

    // Verified by this crate's own bearer layer, as a Rust upstream would.
    let (keys, skipped) = KeySet::from_jwks(&jwks).expect("a key set");
    assert!(skipped.is_empty(), "{skipped:?}");
    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(keys)
        .roles_claim("roles")
        .build()
        .expect("rules");
    let (parts, ()) = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request")
        .into_parts();
    match BearerAuthenticator::new(rules).authenticate(&parts).await {
        AuthOutcome::Authenticated(principal) => {
            assert_eq!(principal.subject(), "resource-client");
            assert!(principal.has_scope("orders:write"));
        }
        _ => panic!("the crate's bearer layer refused the gateway's token"),
    }

    // Anonymous, on a public route, with a forged token: none arrives.
    let request = get(address, "/public")
        .header("x-auth-token", "forged.by.client")
        .body(full(""))
        .expect("request");
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    let headers = json_of(&body)["headers"].clone();
    assert!(headers.get("x-auth-token").is_none(), "{headers}");

    // Only the JWKS path itself skips the gateway, and it never goes upstream.
    let hits = upstream.hits();
    let post = Request::post(format!("http://{address}/.well-known/jwks.json"))
        .body(full("{}"))
        .expect("request");
    let (status, headers, _) = send(post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");
    for path in [
        "/.well-known/jwks.json/",
        "/.well-known/jwks.jsonx",
        "/.well-known/JWKS.json",
        "/.well-known/jwks%2Ejson",
        "/.well-known/",
    ] {
        let (status, _, _) = send(get(address, path).body(full("")).expect("r")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(upstream.hits(), hits);
    drop(served);
}

#[tokio::test]
async fn the_proxy_signs_for_callers_only_and_answers_its_jwks_itself() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use portcullis::proxy::IdentityToken;
    use tower::Layer as _;

    let upstream = Upstream::start().await;
    let token = IdentityToken::builder(
        IdentityToken::example_key_pem(),
        "https://gateway.test",
        "orders",
    )
    .header(http::HeaderName::from_static("x-gateway-token"))
    .jwks_path("/keys/gateway.json")
    .build()
    .expect("token");
    let proxy = Proxy::builder(format!("http://{}", upstream.address))
        .identity_token(token.clone())
        .build()
        .expect("proxy");
    let app = Router::new()
        .route_service(token.jwks_path(), proxy.clone())
        .fallback_service(gateway().layer(proxy));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(axum::serve(listener, app).into_future());

    // A caller, with forged tokens (the name, and its `_` spelling): one token arrives, the
    // proxy's, for this caller.
    let request = get(address, "/echo")
        .header("x-user", "ada")
        .header("x-gateway-token", "forged")
        .header("x_gateway_token", "forged")
        .body(full(""))
        .expect("request");
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    let headers = json_of(&body)["headers"].clone();
    assert!(headers.get("x_gateway_token").is_none(), "{headers}");
    let tokens = headers["x-gateway-token"]
        .as_array()
        .expect("a token")
        .clone();
    assert_eq!(tokens.len(), 1, "{headers}");
    let jwt = tokens[0].as_str().expect("text");
    let claims = jwt.split('.').nth(1).expect("three parts");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("base64url")).expect("JSON");
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["roles"], json!(["member"]));
    assert_eq!(claims["scope"], "orders:read orders:write");
    // The identity headers still arrive beside it.
    assert_eq!(headers["x-auth-subject"], json!(["ada"]));

    // Anonymous, on a public route: no token, forged or not.
    let request = get(address, "/public")
        .header("x-gateway-token", "forged")
        .body(full(""))
        .expect("request");
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    let headers = json_of(&body)["headers"].clone();
    assert!(headers.get("x-gateway-token").is_none(), "{headers}");

    // The key set, by GET and HEAD, from the proxy itself, the policy not listing it.
    let hits = upstream.hits();
    let (status, headers, body) = send(
        get(address, "/keys/gateway.json")
            .body(full(""))
            .expect("r"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/jwk-set+json");
    assert_eq!(&body, token.jwks());
    let head = Request::head(format!("http://{address}/keys/gateway.json"))
        .body(full(""))
        .expect("request");
    let (status, headers, body) = send(head).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/jwk-set+json");
    assert_eq!(headers["content-length"], token.jwks().len().to_string());
    assert!(body.is_empty());
    // The default path is nothing special here: the gateway refuses it.
    let (status, _, _) = send(
        get(address, "/.well-known/jwks.json")
            .body(full(""))
            .expect("r"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(upstream.hits(), hits);
}

#[test]
fn the_binary_needs_an_upstream_and_a_usable_upstream_section() {
    // Bounded: a binary that accepted the policy would listen until killed.
    let run = |policy: &std::path::Path| {
        support::process::output_within(
            Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .arg("serve")
                .arg(policy)
                .args(["--listen", "127.0.0.1:0"])
                .env_remove("PORTCULLIS_SURELY_UNSET_KEY"),
            BOUND,
        )
        .unwrap_or_else(|error| panic!("{error}"))
    };
    // No `--upstream`, no `upstream.url`: a usage error.
    let output = run(&policy_file("no-upstream.yaml", "routes: []\n"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no upstream"), "{stderr}");

    // An identity token whose key is nowhere: refused with its place, before listening.
    let output = run(&policy_file(
        "no-key.yaml",
        "upstream:\n  url: http://127.0.0.1:1\n  identity_token:\n    \
         key_env: PORTCULLIS_SURELY_UNSET_KEY\n    issuer: i\n    audience: a\n",
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("upstream.identity_token.key_env: the environment variable"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "it listened");
}
