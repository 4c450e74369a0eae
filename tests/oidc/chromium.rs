//! One login in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by the test support when missing and running as root),
//! driven over WebDriver by a tiny client on reqwest. Open a protected page, get sent to
//! the provider's login form, fill it in, land back logged in, log out.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{shared_idp, start_app};
use crate::support::peers::require_program;
use crate::support::ports::unassigned_port;

/// How often, and how many times, the test polls the browser for a page to arrive.
const POLL: Duration = Duration::from_millis(100);
const POLLS: usize = 150;
/// The key WebDriver names element references by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver, with its browser's profile dir. Dropped (also when a test
/// panics), it first ends the WebDriver session, which closes the browser chromedriver
/// started, then stops chromedriver by PID.
struct Driver {
    child: Child,
    port: u16,
    base: String,
    session: Option<String>,
    profile: std::path::PathBuf,
}

impl Driver {
    /// Polls chromedriver's `/status` until it answers: `true` then, `false` when it has
    /// exited first; panics when it neither answers nor exits in time.
    async fn wait_ready(&mut self, http: &reqwest::Client) -> bool {
        for _ in 0..POLLS {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(response) = http.get(format!("{}/status", self.base)).send().await
                && response.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("chromedriver did not start on port {}", self.port);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            delete_session(self.port, session);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/{id}` over a blocking socket (usable in `Drop`), bounded by timeouts.
fn delete_session(port: u16, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    }
}

/// One WebDriver session.
struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("WebDriver request");
        let status = response.status();
        let answer: Value = serde_json::from_str(&response.text().await.unwrap()).expect("JSON");
        assert!(status.is_success(), "WebDriver {path}: {answer}");
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits (bounded) until the page's source contains `text`; returns the source.
    async fn wait_for(&self, text: &str) -> String {
        let mut source = String::new();
        for _ in 0..POLLS {
            source = self.source().await;
            if source.contains(text) {
                return source;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "`{text}` never appeared at {}; the page was:\n{source}",
            self.current_url().await
        );
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("element {css}: {found}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }
}

async fn start_driver() -> (Driver, Session) {
    let chromium =
        require_program("chromium", "chromium").unwrap_or_else(|error| panic!("{error}"));
    let chromedriver = require_program("chromedriver", "chromium-driver")
        .unwrap_or_else(|error| panic!("{error}"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // The port is picked free (below the ephemeral range) a moment before chromedriver binds
    // it: should another pick take it meanwhile, chromedriver exits, and starts again on
    // another.
    let mut driver = None;
    for _ in 0..3 {
        let port = unassigned_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let profile =
            std::env::temp_dir().join(format!("portcullis-chromium-{}-{port}", std::process::id()));
        let mut started = Driver {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            profile,
        };
        if started.wait_ready(&http).await {
            driver = Some(started);
            break;
        }
    }
    let mut driver = driver.expect("chromedriver started (it exited three times: ports taken?)");
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage",
                // Every page comes from 127.0.0.1; anything else (the provider's pages
                // import web fonts) fails at once instead of waiting on the network.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                format!("--user-data-dir={}", driver.profile.display()),
            ],
        },
    }}});
    let response = http
        .post(format!("{}/session", driver.base))
        .header("content-type", "application/json")
        .body(capabilities.to_string())
        .send()
        .await
        .expect("new WebDriver session");
    let answer: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let id = answer["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
        .to_owned();
    driver.session = Some(id.clone());
    let session = Session {
        http,
        url: format!("{}/session/{id}", driver.base),
    };
    (driver, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_logs_in_and_out() {
    let idp = shared_idp();
    let app = start_app(&idp.issuer, |b| b).await;
    let (driver, browser) = start_driver().await;

    // A protected page sends the browser to the provider's login form.
    browser.goto(&app.url("/me")).await;
    browser.wait_for("name=\"login\"").await;
    assert!(browser.current_url().await.starts_with(&idp.issuer));
    browser.type_into("input[name=login]", "alice").await;
    browser.type_into("input[name=password]", "secret").await;
    browser.click("button[type=submit]").await;

    // Back on the page, logged in.
    let source = browser.wait_for("alice@example.test").await;
    assert!(source.contains("\"method\":\"oidc\""), "{source}");
    assert_eq!(browser.current_url().await, app.url("/me"));

    // Log out: our confirmation form, then the provider's.
    browser.goto(&app.url("/auth/logout")).await;
    browser.wait_for("Log out?").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("name=\"logout\"").await;
    browser.click("button[name=logout]").await;
    browser.wait_for("home").await;
    assert!(browser.current_url().await.starts_with(&app.url("/")));

    // Logged out here and at the provider: the protected page asks for a login again.
    browser.goto(&app.url("/me")).await;
    browser.wait_for("name=\"login\"").await;

    // Dropping the driver ends the session (closing the browser) and stops chromedriver;
    // off the async runtime, as its socket calls block.
    tokio::task::spawn_blocking(move || drop(driver))
        .await
        .unwrap();
}
