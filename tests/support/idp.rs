//! The real identity provider in `tests/idp/`, started and stopped by the tests that need
//! it (its Node packages installed first by [`super::peers`]), and a tiny HTTP client to
//! talk to it. Used by every test that talks to a real provider (bearer tokens,
//! introspection, the OpenID Connect login, the binary).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use portcullis::bearer::KeySet;
use serde_json::Value;

/// The resource (and audience) of the provider's RS256 access tokens.
pub const API: &str = "https://api.example.test";
/// The resource (and audience) of the provider's ES256 access tokens.
pub const ES256_API: &str = "https://es256.api.example.test";
/// The resource whose access tokens are opaque strings, not JWTs.
pub const OPAQUE_API: &str = "urn:portcullis:opaque";
/// The scopes every token request asks for.
pub const SCOPES: &str = "orders:read orders:write";
/// `Authorization` for `resource-client:resource-secret`
/// (`printf 'resource-client:resource-secret' | base64`).
pub const RESOURCE_CLIENT_BASIC: &str = "Basic cmVzb3VyY2UtY2xpZW50OnJlc291cmNlLXNlY3JldA==";

/// How long a provider may take to print its `ISSUER=` line: a bound on a peer that
/// never starts, not a measure (it starts in well under a second alone, but a test binary
/// starts several at once, right after `npm ci` on a fresh clone, on a 2-core machine: one
/// such start once took over 20 s in CI).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one HTTP exchange with the provider may take (connect, and each read/write).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Tells the keys files of the providers of this process apart.
pub static PROVIDERS_STARTED: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------

/// How to start a provider; `Default` is a fresh provider on any free port.
#[derive(Default)]
pub struct Settings {
    /// `IDP_AT_TTL`: access token lifetime in seconds (the provider's default is 300).
    pub access_token_ttl: Option<u32>,
}

/// A running `tests/idp/server.mjs`; dropping it kills the process and deletes its keys.
pub struct Idp {
    pub child: Child,
    pub issuer: String,
    pub keys_file: PathBuf,
    pub stderr: Arc<Mutex<String>>,
    pub stderr_reader: Option<JoinHandle<()>>,
}

impl Idp {
    /// Starts a provider and waits (at most [`STARTUP_TIMEOUT`]) until it accepts requests.
    pub fn start(settings: Settings) -> Self {
        let dir = super::peers::ensure_idp();

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
        idp
    }

    /// The port the provider listens on.
    pub fn port(&self) -> u16 {
        self.issuer
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("the issuer ends with a port")
    }

    /// A bounded wait for a child that is already on its way out; describes how it ended.
    pub fn wait_for_exit(&mut self, limit: Duration) -> String {
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
    pub fn stderr_text(&self) -> String {
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

    /// Rotates the provider's signing keys in place (`POST /test/rotate-keys`): fresh keys
    /// whose kids end in `kid_suffix` replace the old ones in its JWKS and in the tokens it
    /// issues from now on; the issuer stays.
    pub fn rotate_keys(&self, kid_suffix: &str) {
        let response = http_request(
            "POST",
            &format!("{}/test/rotate-keys", self.issuer),
            None,
            Some(&format!("kid_suffix={}", form_encode(kid_suffix))),
        );
        assert_eq!(response.status, 204, "rotate keys: {}", response.text());
    }

    /// GETs `path` (relative to the issuer) and parses the JSON answer; expects 200.
    pub fn get_json(&self, path: &str) -> Value {
        let response = http_request("GET", &format!("{}{path}", self.issuer), None, None);
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        response.json()
    }

    /// The OpenID provider metadata (discovery document).
    pub fn discovery(&self) -> Value {
        let discovery = self.get_json("/.well-known/openid-configuration");
        assert_eq!(discovery["issuer"], self.issuer.as_str(), "{discovery}");
        discovery
    }

    /// Loads the provider's keys the way an application would: discovery, then `jwks_uri`.
    /// Asserts that every key is usable. Returns the set and the kids it holds.
    pub fn key_set(&self) -> (KeySet, Vec<String>) {
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
    pub fn token(&self, resource: &str) -> String {
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

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }
}

/// One request to `url` (`http://host:port/path`), with an optional `Authorization` value
/// and an optional form body. HTTP/1.0: the server answers with the whole body and closes
/// the connection, so reading to the end is the whole response (no chunked encoding).
pub fn http_request(
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
pub fn form_encode(value: &str) -> String {
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
