//! Token introspection (RFC 7662): opaque tokens from the real test provider, end to end,
//! and an introspection endpoint that misbehaves on purpose.
//!
//! The provider harness is the one of `tests/bearer_idp.rs` (unchanged, minus what these
//! tests do not use); run `npm ci` in `tests/idp` first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::Principal;
use portcullis::bearer::{BearerAuthenticator, BearerLayer, Introspection};
use portcullis::remote::{HttpClient, HttpFuture, ReqwestClient};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The resource whose access tokens are opaque strings, not JWTs.
const OPAQUE_API: &str = "urn:portcullis:opaque";
/// The scopes every token request asks for.
const SCOPES: &str = "orders:read orders:write";
/// `Authorization` for `resource-client:resource-secret`.
const RESOURCE_CLIENT_BASIC: &str = "Basic cmVzb3VyY2UtY2xpZW50OnJlc291cmNlLXNlY3JldA==";
/// How long a provider may take to print its `ISSUER=` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one HTTP exchange with the provider may take (connect, and each read/write).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound on any one gateway exchange in these tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Tells the keys files of the providers of this process apart.
static PROVIDERS_STARTED: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------

/// How to start a provider; `Default` is a fresh provider on any free port.
#[derive(Default)]
struct Settings {
    /// `IDP_PORT`: listen on this port (to keep the issuer of a stopped provider).
    port: Option<u16>,
    /// `IDP_KID_SUFFIX`: appended to the kids of the keys it generates.
    kid_suffix: Option<&'static str>,
    /// `IDP_AT_TTL`: access token lifetime in seconds (the provider's default is 300).
    access_token_ttl: Option<u32>,
}

/// A running `tests/idp/server.mjs`; dropping it kills the process and deletes its keys.
struct Idp {
    child: Child,
    issuer: String,
    keys_file: PathBuf,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Idp {
    /// Starts a provider and waits (at most [`STARTUP_TIMEOUT`]) until it accepts requests.
    fn start(settings: Settings) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("idp");
        assert!(
            dir.join("node_modules").is_dir(),
            "{} is missing: run `npm ci` in tests/idp first (the .ci/run script does)",
            dir.join("node_modules").display()
        );

        let keys_file = std::env::temp_dir().join(format!(
            "portcullis-bearer-idp-{}-{}.jwks.json",
            std::process::id(),
            PROVIDERS_STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from an earlier run with the same process id would pin old keys.
        let _ = std::fs::remove_file(&keys_file);

        let mut command = Command::new("node");
        command
            .arg("server.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("IDP_EXIT_ON_STDIN_CLOSE", "1")
            .env("IDP_KEYS_FILE", &keys_file)
            // Only what the test asks for: nothing inherited from the caller's environment.
            .env_remove("PORT")
            .env_remove("IDP_PORT")
            .env_remove("IDP_KID_SUFFIX")
            .env_remove("IDP_AT_TTL");
        if let Some(port) = settings.port {
            command.env("IDP_PORT", port.to_string());
        }
        if let Some(suffix) = settings.kid_suffix {
            command.env("IDP_KID_SUFFIX", suffix);
        }
        if let Some(ttl) = settings.access_token_ttl {
            command.env("IDP_AT_TTL", ttl.to_string());
        }
        let mut child = command
            .spawn()
            .expect("spawn `node server.mjs` in tests/idp (is Node.js 20.18+ on the PATH?)");

        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let stderr_pipe = child.stderr.take().expect("the child's stderr is piped");

        // From here on, `Drop` stops the child whatever happens.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut idp = Self {
            child,
            issuer: String::new(),
            keys_file,
            stderr: Arc::clone(&stderr),
            stderr_reader: None,
        };

        // stderr: notices, warnings, the kids in use; kept for failure messages. The
        // thread ends when the provider exits (end of file).
        idp.stderr_reader = Some(thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut text) = stderr.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        }));

        // stdout: exactly one `ISSUER=` line. The thread keeps draining until end of file
        // (the provider's exit); the channel disconnects if that comes first.
        let (issuer_tx, issuer_rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("ISSUER=") {
                    let _ = issuer_tx.send(issuer.trim().to_owned());
                }
            }
        });

        match issuer_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(issuer) => idp.issuer = issuer,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "the test provider printed no ISSUER= line within {STARTUP_TIMEOUT:?}; \
                 its stderr so far:\n{}",
                idp.stderr_text()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = idp.wait_for_exit(Duration::from_secs(5));
                panic!(
                    "the test provider exited before printing ISSUER= ({status}); its stderr:\n{}",
                    idp.stderr_text()
                )
            }
        }
        assert!(
            idp.issuer.starts_with("http://127.0.0.1:"),
            "unexpected issuer {:?}",
            idp.issuer
        );
        if let Some(port) = settings.port {
            assert_eq!(
                idp.port(),
                port,
                "the provider did not keep the port asked for"
            );
        }
        idp
    }

    /// The port the provider listens on.
    fn port(&self) -> u16 {
        self.issuer
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("the issuer ends with a port")
    }

    /// A bounded wait for a child that is already on its way out; describes how it ended.
    fn wait_for_exit(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) => thread::sleep(Duration::from_millis(50)),
                Err(error) => return format!("status unknown: {error}"),
            }
        }
        "still running".to_owned()
    }

    /// What the provider wrote to stderr (waiting briefly for the reader to finish when the
    /// provider has exited, so that its last words are included).
    fn stderr_text(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self
            .stderr_reader
            .as_ref()
            .is_some_and(|reader| !reader.is_finished())
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// An access token for `resource-client` (client credentials grant) for `resource`,
    /// with the scopes [`SCOPES`].
    fn token(&self, resource: &str) -> String {
        let form = format!(
            "grant_type=client_credentials&resource={}&scope={}",
            form_encode(resource),
            form_encode(SCOPES)
        );
        let response = http_request(
            "POST",
            &format!("{}/token", self.issuer),
            Some(RESOURCE_CLIENT_BASIC),
            Some(&form),
        );
        assert_eq!(
            response.status,
            200,
            "token request for {resource}: {}",
            response.text()
        );
        let answer = response.json();
        assert_eq!(answer["token_type"], "Bearer", "{answer}");
        assert_eq!(answer["scope"], SCOPES, "{answer}");
        answer["access_token"]
            .as_str()
            .expect("the token response has an access_token")
            .to_owned()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        // SIGKILL by PID, then reap it: nothing of the provider outlives its test.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.keys_file);
    }
}

// ---------------------------------------------------------------------------------------
// A tiny blocking HTTP/1.0 client
// ---------------------------------------------------------------------------------------

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }
}

/// One request to `url` (`http://host:port/path`), with an optional `Authorization` value
/// and an optional form body. HTTP/1.0: the server answers with the whole body and closes
/// the connection, so reading to the end is the whole response (no chunked encoding).
fn http_request(
    method: &str,
    url: &str,
    authorization: Option<&str>,
    form: Option<&str>,
) -> HttpResponse {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let address: SocketAddr = authority
        .parse()
        .unwrap_or_else(|error| panic!("{authority} is not an IP address and port: {error}"));

    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    if let Some(form) = form {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(form.unwrap_or_default());

    let mut stream = TcpStream::connect_timeout(&address, HTTP_TIMEOUT)
        .unwrap_or_else(|error| panic!("connect to {address}: {error}"));
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .expect("set a read timeout");
    stream
        .set_write_timeout(Some(HTTP_TIMEOUT))
        .expect("set a write timeout");
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|error| panic!("send {method} {url}: {error}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|error| panic!("read the answer to {method} {url}: {error}"));

    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {url}: no end of headers in the answer"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {url}: bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body,
    };
    assert!(
        response.header("transfer-encoding").is_none(),
        "{method} {url}: unexpected Transfer-Encoding in an HTTP/1.0 answer"
    );
    if let Some(length) = response.header("content-length") {
        assert_eq!(
            length.parse::<usize>().ok(),
            Some(response.body.len()),
            "{method} {url}: body shorter or longer than its Content-Length"
        );
    }
    response
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The gateway
// ---------------------------------------------------------------------------------------

/// A [`ReqwestClient`] that counts the introspection requests it sends.
struct Counting {
    inner: ReqwestClient,
    posts: AtomicUsize,
}

impl Counting {
    fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: ReqwestClient::builder()
                .timeout(timeout)
                .build()
                .expect("client"),
            posts: AtomicUsize::new(0),
        })
    }

    fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
}

impl HttpClient for Counting {
    fn get(&self, url: &str, accept: &[&str]) -> HttpFuture<'_> {
        self.inner.get(url, accept)
    }

    fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
        accept: &[&str],
    ) -> HttpFuture<'_> {
        self.posts.fetch_add(1, Ordering::SeqCst);
        self.inner.post_form(url, form, basic_auth, accept)
    }
}

async fn whoami(principal: Principal) -> Json<Principal> {
    Json(principal)
}

fn app(authenticator: BearerAuthenticator) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(BearerLayer::new(authenticator))
}

/// What the client of the gateway receives.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

async fn send(app: &Router, token: &str) -> Reply {
    let request = Request::get("/whoami")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let exchange = async {
        let response: Response<Body> = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let (challenge, retry_after) = {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            (header("www-authenticate"), header("retry-after"))
        };
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            challenge,
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .expect("the gateway answered in time")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn assert_inactive(reply: &Reply, what: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}: {reply:?}");
    let challenge = reply.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#)
            && challenge.contains("The token is not active."),
        "{what}: {challenge}"
    );
}

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {reply:?}"
    );
    assert_eq!(reply.retry_after.as_deref(), Some("5"), "{what}: {reply:?}");
}

impl Idp {
    /// Revokes `token` as its owner; the provider always answers 200.
    fn revoke(&self, token: &str) {
        let form = format!("token={}&token_type_hint=access_token", form_encode(token));
        let response = http_request(
            "POST",
            &format!("{}/token/revocation", self.issuer),
            Some(RESOURCE_CLIENT_BASIC),
            Some(&form),
        );
        assert_eq!(response.status, 200, "revocation: {}", response.text());
    }

    fn introspection(&self, client: Arc<Counting>) -> portcullis::bearer::IntrospectionBuilder {
        Introspection::builder(
            format!("{}/token/introspection", self.issuer),
            "api-introspector",
            "introspector-secret",
        )
        .issuer(self.issuer.as_str())
        .audience(OPAQUE_API)
        .roles_claim("realm_access.roles")
        .http_client(client)
    }
}

// ---------------------------------------------------------------------------------------
// The real provider
// ---------------------------------------------------------------------------------------

#[test]
fn opaque_tokens_from_a_real_provider_are_introspected() {
    let idp = Idp::start(Settings::default());
    let client = Counting::new(Duration::from_secs(5));
    let introspection = idp
        .introspection(Arc::clone(&client))
        .max_cache(Duration::from_millis(500))
        .build()
        .expect("introspection settings");
    let authenticator = BearerAuthenticator::builder()
        .introspection(introspection)
        .build()
        .expect("authenticator settings");
    let app = app(authenticator);
    let rt = runtime();

    let token = idp.token(OPAQUE_API);
    assert!(!token.contains('.'), "opaque: {token}");

    let reply = rt.block_on(send(&app, &token));
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let principal = &reply.body;
    assert_eq!(principal["subject"], "resource-client", "{principal}");
    assert_eq!(principal["issuer"], idp.issuer.as_str(), "{principal}");
    assert_eq!(principal["roles"], json!(["admin"]), "{principal}");
    assert_eq!(
        principal["scopes"],
        json!(["orders:read", "orders:write"]),
        "{principal}"
    );
    assert_eq!(client.posts(), 1);

    // The second time comes from the cache.
    let reply = rt.block_on(send(&app, &token));
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(client.posts(), 1, "no second introspection request");

    // Revoked, then once the cache bound has passed: refused.
    idp.revoke(&token);
    thread::sleep(Duration::from_millis(600));
    assert_inactive(&rt.block_on(send(&app, &token)), "revoked");
    assert_eq!(client.posts(), 2);

    assert_inactive(
        &rt.block_on(send(&app, "made-up-opaque-token-0123456789abcdefghijk")),
        "made up",
    );

    // client_secret_post: the same credentials in the form body.
    let post_client = Counting::new(Duration::from_secs(5));
    let authenticator = BearerAuthenticator::builder()
        .introspection(
            idp.introspection(Arc::clone(&post_client))
                .client_secret_post()
                .build()
                .expect("introspection settings"),
        )
        .build()
        .expect("authenticator settings");
    let app = self::app(authenticator);
    let token = idp.token(OPAQUE_API);
    let reply = rt.block_on(send(&app, &token));
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "client_secret_post: {reply:?}"
    );
    assert_eq!(reply.body["subject"], "resource-client");
    assert_eq!(post_client.posts(), 1);

    // Wrong credentials are the endpoint's problem, not the token's: 503.
    let wrong = Counting::new(Duration::from_secs(5));
    let authenticator = BearerAuthenticator::builder()
        .introspection(
            Introspection::builder(
                format!("{}/token/introspection", idp.issuer),
                "api-introspector",
                "wrong-secret",
            )
            .http_client(wrong)
            .build()
            .expect("introspection settings"),
        )
        .build()
        .expect("authenticator settings");
    assert_unavailable(
        &rt.block_on(send(&self::app(authenticator), &token)),
        "wrong client secret",
    );
}

// ---------------------------------------------------------------------------------------
// A misbehaving endpoint
// ---------------------------------------------------------------------------------------

const ACTIVE: u8 = 0;
const SLOW: u8 = 1;
const GARBAGE: u8 = 2;
const STRING_ACTIVE: u8 = 3;
const HTML: u8 = 4;
const ERROR_STATUS: u8 = 5;

#[derive(Default)]
struct Endpoint {
    mode: AtomicU8,
    hits: AtomicUsize,
}

async fn introspect(State(endpoint): State<Arc<Endpoint>>) -> axum::response::Response {
    endpoint.hits.fetch_add(1, Ordering::SeqCst);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
        + 300;
    let active = json!({"active": true, "sub": "alice", "scope": "a b", "exp": exp});
    match endpoint.mode.load(Ordering::SeqCst) {
        ACTIVE => {
            // Long enough for concurrent requests to pile up behind the first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Json(active).into_response()
        }
        SLOW => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(active).into_response()
        }
        GARBAGE => ([("content-type", "application/json")], "{\"active\": tru").into_response(),
        STRING_ACTIVE => Json(json!({"active": "true", "sub": "alice"})).into_response(),
        HTML => (
            [("content-type", "text/html")],
            "<html>{\"active\":true}</html>",
        )
            .into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"active": true})),
        )
            .into_response(),
    }
}

/// Starts the endpoint on the runtime; returns its URL.
async fn serve(endpoint: Arc<Endpoint>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let router = Router::new()
        .route("/introspect", post(introspect))
        .with_state(endpoint);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}/introspect")
}

fn authenticator_for(url: &str, client: Arc<Counting>) -> BearerAuthenticator {
    BearerAuthenticator::builder()
        .introspection(
            Introspection::builder(url, "gateway", "gateway-secret")
                .http_client(client)
                .negative_cache(Duration::ZERO)
                .build()
                .expect("introspection settings"),
        )
        .build()
        .expect("authenticator settings")
}

#[test]
fn a_misbehaving_endpoint_gives_503_and_cached_tokens_keep_working() {
    let rt = runtime();
    let endpoint = Arc::new(Endpoint::default());
    let url = rt.block_on(serve(Arc::clone(&endpoint)));
    let client = Counting::new(Duration::from_millis(500));
    let app = app(authenticator_for(&url, Arc::clone(&client)));

    let reply = rt.block_on(send(&app, "cached-token"));
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["subject"], "alice");

    endpoint.mode.store(SLOW, Ordering::SeqCst);
    assert_unavailable(&rt.block_on(send(&app, "slow-token")), "slow");
    let reply = rt.block_on(send(&app, "cached-token"));
    assert_eq!(reply.status, StatusCode::OK, "cached while slow: {reply:?}");

    endpoint.mode.store(GARBAGE, Ordering::SeqCst);
    assert_unavailable(&rt.block_on(send(&app, "garbage-token")), "garbage");
    endpoint.mode.store(HTML, Ordering::SeqCst);
    assert_unavailable(&rt.block_on(send(&app, "html-token")), "html");
    endpoint.mode.store(ERROR_STATUS, Ordering::SeqCst);
    assert_unavailable(&rt.block_on(send(&app, "error-token")), "500");
    endpoint.mode.store(STRING_ACTIVE, Ordering::SeqCst);
    assert_inactive(&rt.block_on(send(&app, "string-token")), "active: \"true\"");

    let reply = rt.block_on(send(&app, "cached-token"));
    assert_eq!(reply.status, StatusCode::OK, "cached at the end: {reply:?}");
}

#[test]
fn a_down_endpoint_gives_503() {
    let rt = runtime();
    // A port that was free a moment ago and has nobody listening now.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let url = format!("http://{address}/introspect");
    let app = app(authenticator_for(
        &url,
        Counting::new(Duration::from_secs(2)),
    ));
    assert_unavailable(&rt.block_on(send(&app, "some-token")), "down");
}

#[test]
fn concurrent_requests_with_one_new_token_share_one_introspection() {
    let rt = runtime();
    let endpoint = Arc::new(Endpoint::default());
    let url = rt.block_on(serve(Arc::clone(&endpoint)));
    let app = app(authenticator_for(
        &url,
        Counting::new(Duration::from_secs(5)),
    ));

    let replies = rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, "shared-token").await })
            })
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.expect("task"));
        }
        replies
    });
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1);
}
