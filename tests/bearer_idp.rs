//! Bearer tokens from a real OpenID provider, end to end.
//!
//! These tests do not mint their own tokens: each one starts the test identity provider in
//! `tests/idp` ([`oidc-provider`](https://github.com/panva/node-oidc-provider) 9.13.3, a
//! certified OpenID Connect implementation, run by Node.js), loads its JWKS through
//! discovery, asks it for access tokens with the client credentials grant, and sends those
//! tokens through an axum `Router` behind `BearerLayer`. They check that what a real
//! provider issues (RS256 and ES256 RFC 9068 access tokens, nested role claims) is
//! accepted, and that wrong audiences, tampering, opaque tokens, rotated keys and expired
//! tokens are refused.
//!
//! The provider needs its npm packages: run `npm ci` in `tests/idp` first (the `.ci/run`
//! script does). Every provider is killed when its test ends, passed or failed; it also
//! exits by itself when this process dies, because its stdin (a pipe from us) closes.
//!
//! Talking to the provider needs no HTTP client crate: a few blocking HTTP/1.0 requests
//! over `std::net::TcpStream` are enough (HTTP/1.0 so that Node answers with a
//! `Content-Length` and closes the connection, never with a chunked body).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::response::Json;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::Principal;
use portcullis::bearer::{BearerAuthenticator, BearerLayer, IssuerRules, KeySet};
use serde_json::Value;
use tower::ServiceExt;

/// The resource (and audience) of the provider's RS256 access tokens.
const API: &str = "https://api.example.test";
/// The resource (and audience) of the provider's ES256 access tokens.
const ES256_API: &str = "https://es256.api.example.test";
/// The resource whose access tokens are opaque strings, not JWTs.
const OPAQUE_API: &str = "urn:portcullis:opaque";
/// The scopes every token request asks for.
const SCOPES: &str = "orders:read orders:write";
/// `Authorization` for `resource-client:resource-secret`
/// (`printf 'resource-client:resource-secret' | base64`).
const RESOURCE_CLIENT_BASIC: &str = "Basic cmVzb3VyY2UtY2xpZW50OnJlc291cmNlLXNlY3JldA==";

/// How long a provider may take to print its `ISSUER=` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one HTTP exchange with the provider may take (connect, and each read/write).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// GETs `path` (relative to the issuer) and parses the JSON answer; expects 200.
    fn get_json(&self, path: &str) -> Value {
        let response = http_request("GET", &format!("{}{path}", self.issuer), None, None);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        response.json()
    }

    /// The OpenID provider metadata (discovery document).
    fn discovery(&self) -> Value {
        let discovery = self.get_json("/.well-known/openid-configuration");
        assert_eq!(discovery["issuer"], self.issuer.as_str(), "{discovery}");
        discovery
    }

    /// Loads the provider's keys the way an application would: discovery, then `jwks_uri`.
    /// Asserts that every key is usable. Returns the set and the kids it holds.
    fn key_set(&self) -> (KeySet, Vec<String>) {
        let discovery = self.discovery();
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .expect("the discovery document has a jwks_uri");
        assert!(
            jwks_uri.starts_with(&self.issuer),
            "jwks_uri {jwks_uri} is not on the issuer {}",
            self.issuer
        );
        let response = http_request("GET", jwks_uri, None, None);
        assert_eq!(response.status, 200, "GET {jwks_uri}: {}", response.text());
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/jwk-set+json")
                || content_type.starts_with("application/json"),
            "JWKS content type {content_type:?}"
        );
        let (keys, skipped) =
            KeySet::from_jwks(&response.body).expect("the provider's JWKS is a usable key set");
        assert!(skipped.is_empty(), "keys skipped: {skipped:?}");
        let kids = response.json()["keys"]
            .as_array()
            .expect("the JWKS has a keys array")
            .iter()
            .map(|key| key["kid"].as_str().expect("every key has a kid").to_owned())
            .collect();
        (keys, kids)
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
// Tokens and the gateway
// ---------------------------------------------------------------------------------------

/// Part `index` of a JWT (0: header, 1: payload), decoded as JSON.
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("the token has no part {index}: {token}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|error| panic!("part {index} is not base64url ({error}): {part}"));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("part {index} is not JSON ({error}): {part}"))
}

/// The rules for the provider's tokens: its issuer, `keys`, the given audiences, roles from
/// `realm_access.roles` (Keycloak's layout, which the test provider mimics).
fn rules_for(issuer: &str, keys: KeySet, audiences: &[&str]) -> IssuerRules {
    let mut builder = IssuerRules::builder(issuer)
        .keys(keys)
        .roles_claim("realm_access.roles");
    for audience in audiences {
        builder = builder.audience(*audience);
    }
    builder.build().expect("valid issuer rules")
}

/// The protected service: answers with the caller, and needs one (`Principal` extractor).
async fn whoami(principal: Principal) -> Json<Principal> {
    Json(principal)
}

fn app(authenticator: BearerAuthenticator) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(BearerLayer::new(authenticator))
}

/// What the client of the gateway receives.
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response: Response<Body> = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        challenge,
        body,
    }
}

/// `GET /whoami` with `Authorization: Bearer <token>`, on a runtime of its own (the tests
/// themselves are plain blocking functions, since they talk to the provider blockingly).
fn call(app: &Router, token: &str) -> Reply {
    let request = Request::get("/whoami")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(send(app, request))
}

/// The challenge of a refused token, with `description`.
fn invalid_token(description: &str) -> String {
    format!(r#"Bearer realm="api", error="invalid_token", error_description="{description}""#)
}

/// Asserts a 401 with an `invalid_token` challenge; returns the challenge.
fn assert_refused(reply: &Reply, what: &str) -> String {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.body
    );
    let challenge = reply
        .challenge
        .clone()
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(
        challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#),
        "{what}: {challenge}"
    );
    challenge
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn tokens_from_a_real_provider_are_accepted() {
    let idp = Idp::start(Settings::default());
    let (keys, kids) = idp.key_set();
    assert_eq!(keys.keys().len(), 2, "one RSA and one P-256 key: {kids:?}");
    let app = app(BearerAuthenticator::new(rules_for(
        &idp.issuer,
        keys,
        &[API, ES256_API],
    )));

    for (resource, alg) in [(API, "RS256"), (ES256_API, "ES256")] {
        let token = idp.token(resource);
        let header = jwt_part(&token, 0);
        assert_eq!(header["alg"], alg, "{header}");
        assert_eq!(header["typ"], "at+jwt", "{header}");
        let kid = header["kid"].as_str().expect("the token names its key");
        assert!(
            kids.iter().any(|known| known == kid),
            "kid {kid} not in {kids:?}"
        );

        let reply = call(&app, &token);
        assert_eq!(reply.status, StatusCode::OK, "{alg}: {}", reply.body);
        let principal = &reply.body;
        assert_eq!(principal["subject"], "resource-client", "{principal}");
        assert_eq!(principal["issuer"], idp.issuer.as_str(), "{principal}");
        assert_eq!(principal["auth_method"], "bearer", "{principal}");
        assert_eq!(
            principal["scopes"],
            serde_json::json!(["orders:read", "orders:write"]),
            "{principal}"
        );
        // `realm_access.roles`, not the top-level `roles` claim the provider also sends.
        assert_eq!(
            principal["roles"],
            serde_json::json!(["admin"]),
            "{principal}"
        );
        assert_eq!(principal["claims"]["aud"], resource, "{principal}");
        assert_eq!(
            principal["claims"]["client_id"], "resource-client",
            "{principal}"
        );
    }
}

#[test]
fn wrong_audience_and_tampering_are_refused() {
    let idp = Idp::start(Settings::default());
    let (keys, _) = idp.key_set();
    let app = app(BearerAuthenticator::new(rules_for(
        &idp.issuer,
        keys,
        &[API],
    )));

    // The rules do accept this provider's tokens for this API: the refusals below are
    // about the tokens, not a configuration that refuses everything.
    let token = idp.token(API);
    assert_eq!(call(&app, &token).status, StatusCode::OK);

    // Signed by the same issuer and key set, for another API of that issuer.
    let other_api = idp.token(ES256_API);
    assert_eq!(jwt_part(&other_api, 1)["aud"], ES256_API);
    let challenge = assert_refused(&call(&app, &other_api), "token for another audience");
    assert_eq!(
        challenge,
        invalid_token("The token is not meant for this audience.")
    );

    // One character of the payload changed.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS has three parts");
    let mut payload: Vec<u8> = parts[1].bytes().collect();
    let middle = payload.len() / 2;
    payload[middle] = if payload[middle] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(payload).expect("base64url is ASCII"),
        parts[2]
    );
    assert_refused(&call(&app, &flipped), "payload with a character flipped");

    // A well-formed payload claiming another subject, under the original signature.
    let mut claims = jwt_part(&token, 1);
    claims["sub"] = Value::from("someone-else");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let challenge = assert_refused(&call(&app, &forged), "payload rewritten");
    assert_eq!(challenge, invalid_token("The token is not valid."));

    // Opaque tokens need introspection, which the layer does not do: not a JWT at all.
    let opaque = idp.token(OPAQUE_API);
    assert!(!opaque.contains('.'), "an opaque token: {opaque}");
    let challenge = assert_refused(&call(&app, &opaque), "opaque token");
    assert_eq!(challenge, invalid_token("The token is malformed."));
}

/// Until the layer fetches a remote JWKS itself, the application must reload the keys
/// when the provider rotates them: tokens signed with the new key are refused until then.
#[test]
fn a_rotated_provider_key_is_refused_until_keys_are_reloaded() {
    let first = Idp::start(Settings::default());
    let issuer = first.issuer.clone();
    let port = first.port();
    let (old_keys, old_kids) = first.key_set();
    let old_app = app(BearerAuthenticator::new(rules_for(
        &issuer,
        old_keys,
        &[API],
    )));
    let old_token = first.token(API);
    assert_eq!(call(&old_app, &old_token).status, StatusCode::OK);

    // Stop it; its keys file goes with it, so the restart generates new keys (rotation).
    drop(first);
    let second = Idp::start(Settings {
        port: Some(port),
        kid_suffix: Some("-rotated"),
        ..Settings::default()
    });
    assert_eq!(second.issuer, issuer, "same port, same issuer");

    let new_token = second.token(API);
    let kid = jwt_part(&new_token, 0)["kid"]
        .as_str()
        .expect("the token names its key")
        .to_owned();
    assert!(kid.ends_with("-rotated"), "kid {kid}");
    assert!(
        !old_kids.contains(&kid),
        "kid {kid} was already in {old_kids:?}"
    );

    let challenge = assert_refused(&call(&old_app, &new_token), "new key, old key set");
    assert_eq!(challenge, invalid_token("The token is not valid."));

    // Reloaded keys: the new token passes, and the old key is gone with its tokens.
    let (new_keys, new_kids) = second.key_set();
    assert!(new_kids.contains(&kid), "kid {kid} not in {new_kids:?}");
    let new_app = app(BearerAuthenticator::new(rules_for(
        &issuer,
        new_keys,
        &[API],
    )));
    let reply = call(&new_app, &new_token);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["subject"], "resource-client");
    assert_refused(&call(&new_app, &old_token), "old key, reloaded key set");
}

#[test]
fn expired_provider_tokens_are_refused() {
    let idp = Idp::start(Settings {
        access_token_ttl: Some(1),
        ..Settings::default()
    });
    let (keys, _) = idp.key_set();
    let rules = IssuerRules::builder(&idp.issuer)
        .audience(API)
        .keys(keys)
        .leeway(Duration::ZERO)
        .build()
        .expect("zero leeway is allowed");
    let app = app(BearerAuthenticator::new(rules));

    let token = idp.token(API);
    let claims = jwt_part(&token, 1);
    let iat = claims["iat"].as_u64().expect("an integer iat");
    let exp = claims["exp"].as_u64().expect("an integer exp");
    assert_eq!(exp - iat, 1, "IDP_AT_TTL=1: {claims}");

    // Wait until a second past `exp` (no leeway): a bounded wait, same clock as the provider.
    let expired_at = UNIX_EPOCH + Duration::from_secs(exp + 1);
    let wait = expired_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait <= Duration::from_secs(5),
        "exp {exp} is too far ahead of this clock"
    );
    thread::sleep(wait + Duration::from_millis(100));

    let challenge = assert_refused(&call(&app, &token), "expired token");
    assert_eq!(challenge, invalid_token("The token has expired."));
}

/// The rules for the provider's tokens: its issuer, keys through discovery, the given audiences, roles from
/// `realm_access.roles` (Keycloak's layout, which the test provider mimics).
fn discovered_rules_for(issuer: &str, audiences: &[&str]) -> IssuerRules {
    let mut builder = IssuerRules::builder(issuer)
        .discover()
        .jwks_cooldown(Duration::from_millis(200))
        .roles_claim("realm_access.roles");
    for audience in audiences {
        builder = builder.audience(*audience);
    }
    builder.build().expect("valid issuer rules")
}

#[test]
fn tokens_from_a_real_provider_are_accepted_with_discovered_keys() {
    let idp = Idp::start(Settings::default());
    let (_, kids) = idp.key_set();
    let authenticator =
        BearerAuthenticator::new(discovered_rules_for(&idp.issuer, &[API, ES256_API]));
    assert!(
        !authenticator.is_ready(),
        "no runtime yet: loads on the first request"
    );
    let app = app(authenticator.clone());

    for (resource, alg) in [(API, "RS256"), (ES256_API, "ES256")] {
        let token = idp.token(resource);
        let header = jwt_part(&token, 0);
        assert_eq!(header["alg"], alg, "{header}");
        let kid = header["kid"].as_str().expect("the token names its key");
        assert!(
            kids.iter().any(|known| known == kid),
            "{kid} not in {kids:?}"
        );

        let reply = call(&app, &token);
        assert_eq!(reply.status, StatusCode::OK, "{alg}: {}", reply.body);
        let principal = &reply.body;
        assert_eq!(principal["subject"], "resource-client", "{principal}");
        assert_eq!(principal["issuer"], idp.issuer.as_str(), "{principal}");
        assert_eq!(
            principal["roles"],
            serde_json::json!(["admin"]),
            "{principal}"
        );
    }
    assert!(authenticator.is_ready());

    // Change the first signature character (the last one may carry only padding bits).
    let token = idp.token(API);
    let at = token.rfind('.').expect("three parts") + 1;
    let swapped = if token[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    assert_refused(&call(&app, &tampered), "tampered");
}

/// With discovery, a rotated provider key is picked up by one refetch: no reload needed.
#[test]
fn a_rotated_provider_key_is_picked_up_by_a_refetch() {
    let first = Idp::start(Settings::default());
    let issuer = first.issuer.clone();
    let port = first.port();
    let rules = discovered_rules_for(&issuer, &[API]);
    let app = app(BearerAuthenticator::new(rules.clone()));
    let old_token = first.token(API);
    assert_eq!(call(&app, &old_token).status, StatusCode::OK);
    let fetches = rules.jwks().expect("remote").fetch_count();

    drop(first);
    let second = Idp::start(Settings {
        port: Some(port),
        kid_suffix: Some("-rotated"),
        ..Settings::default()
    });
    assert_eq!(second.issuer, issuer, "same port, same issuer");
    let new_token = second.token(API);
    let kid = jwt_part(&new_token, 0)["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert!(kid.ends_with("-rotated"), "kid {kid}");

    thread::sleep(Duration::from_millis(250));
    let reply = call(&app, &new_token);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let refetches = rules.jwks().expect("remote").fetch_count() - fetches;
    assert!((1..=2).contains(&refetches), "{refetches} refetches");
    // The old key is gone, and the cached verification of the old token with it.
    assert_refused(&call(&app, &old_token), "old key after rotation");
}
