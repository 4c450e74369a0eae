//! What the OpenID Connect tests share: a browser-like HTTP client with a cookie jar, the
//! test application (an axum router behind `OidcLayer` and the authentication layer, on a
//! loopback port), client registration at the real provider, and the dev-login driver.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use portcullis::bearer::{BearerAuthenticator, IssuerRules};
use portcullis::oidc::{AccessToken, Oidc, OidcBuilder};
use portcullis::remote::{HttpClient, HttpFuture, ReqwestClient};
use portcullis::{AuthenticationLayer, Principal};
use reqwest::Url;
use serde_json::{Value, json};

use crate::support::idp::{API, Idp, Settings};

/// How many redirects a navigation follows at most.
const MAX_HOPS: usize = 15;

/// A plain HTTP client whose every exchange ends within 30 s: a stuck peer fails the test
/// that asked it, instead of hanging it.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// The provider most tests share (started once per test binary; it exits with the
/// binary, when its stdin closes).
pub fn shared_idp() -> &'static Idp {
    static IDP: OnceLock<Idp> = OnceLock::new();
    IDP.get_or_init(|| Idp::start(Settings::default()))
}

// ---------------------------------------------------------------------------------------
// A browser without a renderer: cookies and redirects
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Cookie {
    authority: String,
    name: String,
    value: String,
    path: String,
}

/// An HTTP client that keeps cookies per host and port, sends them back by path, and
/// follows redirects only when asked.
pub struct Browser {
    client: reqwest::Client,
    jar: Mutex<Vec<Cookie>>,
}

/// One answer.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub url: Url,
}

impl Page {
    /// The `Location`, resolved against the page's URL.
    pub fn location(&self) -> Option<Url> {
        let location = self.headers.get("location")?.to_str().ok()?;
        self.url.join(location).ok()
    }

    /// The raw `Location` header.
    pub fn location_header(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The `Set-Cookie` headers.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            jar: Mutex::new(Vec::new()),
        }
    }

    /// The value of cookie `name` for `url`'s host and port.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).ok()?;
        let authority = authority(&url);
        self.jar
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.authority == authority && c.name == name)
            .map(|c| c.value.clone())
    }

    /// The names of the cookies kept for `url`'s host and port.
    pub fn cookie_names(&self, url: &str) -> Vec<String> {
        let Ok(url) = Url::parse(url) else {
            return Vec::new();
        };
        let authority = authority(&url);
        self.jar
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.authority == authority)
            .map(|c| c.name.clone())
            .collect()
    }

    /// Sets (or replaces) cookie `name` for `url`'s host and port, path `/`.
    pub fn set_cookie(&self, url: &str, name: &str, value: &str) {
        let url = Url::parse(url).expect("URL");
        let mut jar = self.jar.lock().unwrap();
        let authority = authority(&url);
        jar.retain(|c| !(c.authority == authority && c.name == name));
        jar.push(Cookie {
            authority,
            name: name.to_owned(),
            value: value.to_owned(),
            path: "/".to_owned(),
        });
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Page {
        let parsed = Url::parse(url).unwrap_or_else(|_| panic!("URL {url}"));
        let mut request = self.client.request(method, parsed.clone());
        let cookies = self.cookie_header(&parsed);
        if !cookies.is_empty() {
            request = request.header("cookie", cookies);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{url}: {error}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for value in headers.get_all("set-cookie") {
            if let Ok(text) = value.to_str() {
                self.store(&parsed, text);
            }
        }
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
            url: parsed,
        }
    }

    /// `GET` as a browser navigates (accepting HTML).
    pub async fn get(&self, url: &str) -> Page {
        self.request(reqwest::Method::GET, url, &[("accept", "text/html")], None)
            .await
    }

    /// `GET`, following redirects (at most 15).
    pub async fn navigate(&self, url: &str) -> Page {
        let mut page = self.get(url).await;
        for _ in 0..MAX_HOPS {
            if !page.is_redirect() {
                return page;
            }
            let next = page.location().expect("a redirect has a Location");
            page = self.get(next.as_str()).await;
        }
        panic!("more than {MAX_HOPS} redirects from {url}");
    }

    fn cookie_header(&self, url: &Url) -> String {
        let authority = authority(url);
        self.jar
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.authority == authority && url.path().starts_with(&c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store(&self, url: &Url, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.trim().split_once('=')) else {
            return;
        };
        let mut path = "/".to_owned();
        let mut delete = false;
        for attribute in parts {
            let attribute = attribute.trim();
            let lower = attribute.to_ascii_lowercase();
            if let Some(p) = attribute
                .strip_prefix("path=")
                .or_else(|| attribute.strip_prefix("Path="))
            {
                path = p.to_owned();
            } else if lower == "max-age=0"
                || (lower.starts_with("expires=") && lower.contains("1970"))
            {
                delete = true;
            }
        }
        let authority = authority(url);
        let mut jar = self.jar.lock().unwrap();
        jar.retain(|c| !(c.authority == authority && c.name == name && c.path == path));
        if !delete {
            jar.push(Cookie {
                authority,
                name: name.to_owned(),
                value: value.to_owned(),
                path,
            });
        }
    }
}

fn authority(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

// ---------------------------------------------------------------------------------------
// The application under test
// ---------------------------------------------------------------------------------------

/// The test application: `/` public, `/me` (the `Principal` as JSON), `POST /orders`,
/// `/token` (the `AccessToken` extractor); sessions and bearer tokens of the provider's
/// API side by side.
pub struct App {
    pub base: String,
    pub client_id: String,
    pub client_secret: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A client registered at the provider (dynamic registration) for an app at `base`.
pub async fn register(issuer: &str, base: &str) -> (String, String) {
    register_with(issuer, base, "client_secret_basic").await
}

/// A client registered with the token-endpoint authentication `auth_method`
/// (`client_secret_basic`, `client_secret_post`, or `none` for a public client).
pub async fn register_with(issuer: &str, base: &str, auth_method: &str) -> (String, String) {
    let body = json!({
        "redirect_uris": [format!("{base}/auth/callback")],
        "post_logout_redirect_uris": [format!("{base}/")],
        "backchannel_logout_uri": format!("{base}/auth/backchannel-logout"),
        "backchannel_logout_session_required": true,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method,
    });
    let response = http_client()
        .post(format!("{issuer}/reg"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("registration request");
    let status = response.status();
    let answer: Value = serde_json::from_str(&response.text().await.unwrap()).expect("JSON");
    assert_eq!(status, 201, "registration: {answer}");
    (
        answer["client_id"].as_str().expect("client_id").to_owned(),
        answer["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Starts the test application against `issuer`, with `configure` applied to the
/// relying party's builder.
pub async fn start_app(issuer: &str, configure: impl FnOnce(OidcBuilder) -> OidcBuilder) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (client_id, client_secret) = register(issuer, &base).await;
    serve_app(listener, issuer, client_id, client_secret, configure)
}

/// Starts the test application with a client registered with `auth_method`.
pub async fn start_app_registered_with(
    issuer: &str,
    auth_method: &str,
    configure: impl FnOnce(OidcBuilder) -> OidcBuilder,
) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (client_id, client_secret) = register_with(issuer, &base, auth_method).await;
    serve_app(listener, issuer, client_id, client_secret, configure)
}

/// Starts the test application with a client the provider knows already.
pub async fn start_app_with_client(
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    configure: impl FnOnce(OidcBuilder) -> OidcBuilder,
) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    serve_app(
        listener,
        issuer,
        client_id.to_owned(),
        client_secret.to_owned(),
        configure,
    )
}

/// Starts the test application behind `shield` (served with the connection's address, as
/// the shield needs), with a client the provider knows already.
#[cfg(feature = "shield")]
pub async fn start_app_behind_shield(
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    shield: portcullis::shield::ShieldLayer,
) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    serve_app_with(
        listener,
        issuer,
        client_id.to_owned(),
        client_secret.to_owned(),
        |builder| builder,
        Some(shield),
    )
}

fn serve_app(
    listener: tokio::net::TcpListener,
    issuer: &str,
    client_id: String,
    client_secret: String,
    configure: impl FnOnce(OidcBuilder) -> OidcBuilder,
) -> App {
    #[cfg(feature = "shield")]
    return serve_app_with(listener, issuer, client_id, client_secret, configure, None);
    #[cfg(not(feature = "shield"))]
    serve_app_with(listener, issuer, client_id, client_secret, configure)
}

fn serve_app_with(
    listener: tokio::net::TcpListener,
    issuer: &str,
    client_id: String,
    client_secret: String,
    configure: impl FnOnce(OidcBuilder) -> OidcBuilder,
    #[cfg(feature = "shield")] shield: Option<portcullis::shield::ShieldLayer>,
) -> App {
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut builder = Oidc::builder(issuer).client_id(client_id.clone());
    if !client_secret.is_empty() {
        builder = builder.client_secret(client_secret.clone());
    }
    let builder = builder
        .redirect_uri(format!("{base}/auth/callback"))
        .post_logout_redirect_uri(format!("{base}/"))
        .scopes(["openid", "profile", "email", "roles"])
        .roles_claim("roles")
        .insecure_http_cookies_on_loopback();
    let oidc = configure(builder).build().expect("relying party");
    let bearer = BearerAuthenticator::new(
        IssuerRules::builder(issuer)
            .audience(API)
            .discover()
            .build()
            .expect("bearer rules"),
    );
    let app = Router::new()
        .route("/", get(|| async { "home" }))
        .route("/me", get(me))
        .route(
            "/orders",
            post(|who: Principal| async move { format!("order by {}", who.subject()) }),
        )
        .route(
            "/cookies",
            get(|headers: axum::http::HeaderMap| async move {
                headers
                    .get_all("cookie")
                    .iter()
                    .map(|value| value.to_str().unwrap_or("?").to_owned())
                    .collect::<Vec<_>>()
                    .join(" | ")
            }),
        )
        .route(
            "/token",
            get(|token: AccessToken| async move { format!("{}", token.secret().len()) }),
        )
        .layer(AuthenticationLayer::new(oidc.clone()).and(bearer))
        .layer(oidc.layer());
    #[cfg(feature = "shield")]
    let server = match shield {
        Some(shield) => {
            let app = app
                .layer(shield)
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            })
        }
        None => tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    };
    #[cfg(not(feature = "shield"))]
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    App {
        base,
        client_id,
        client_secret,
        server,
    }
}

async fn me(who: Principal) -> axum::Json<Value> {
    axum::Json(json!({
        "sub": who.subject(),
        "method": who.auth_method().name(),
        "roles": who.roles().iter().collect::<Vec<_>>(),
        "scopes": who.scopes().iter().collect::<Vec<_>>(),
        "email": who.claim("email"),
        "sid": who.claim("sid"),
        "claims": who.claims(),
    }))
}

/// Logs `user` in through the provider's dev login form, starting from `path` on the
/// app. Returns the page the browser lands on.
pub async fn login(browser: &Browser, app: &App, user: &str, path: &str) -> Page {
    let page = browser.navigate(&app.url(path)).await;
    assert_eq!(page.status, 200, "the provider's login form: {}", page.body);
    if page.url.as_str().starts_with(&app.base) {
        // Logged in at the provider already: straight back.
        return page;
    }
    submit_login_form(browser, &page, user).await
}

/// Fills in and submits the dev login form on `page`, then follows the redirects back.
pub async fn submit_login_form(browser: &Browser, page: &Page, user: &str) -> Page {
    let action =
        form_action(&page.body).unwrap_or_else(|| panic!("no form on {}: {}", page.url, page.body));
    let action = page.url.join(&action).expect("form action");
    let mut page = browser
        .request(
            reqwest::Method::POST,
            action.as_str(),
            &[("accept", "text/html")],
            Some(&[("prompt", "login"), ("login", user), ("password", "any")]),
        )
        .await;
    for _ in 0..MAX_HOPS {
        if !page.is_redirect() {
            return page;
        }
        let next = page.location().expect("Location");
        page = browser.get(next.as_str()).await;
    }
    panic!("too many redirects after the login form");
}

/// The `action` of the first form in `html`.
pub fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    let start = form.find("action=\"")? + 8;
    let end = form[start..].find('"')?;
    Some(form[start..start + end].replace("&amp;", "&"))
}

/// The value of `name` among the hidden inputs of `html`.
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let start = tag.find("value=\"")? + 7;
    let end = tag[start..].find('"')?;
    Some(tag[start..start + end].to_owned())
}

// ---------------------------------------------------------------------------------------
// An HTTP client that counts the relying party's refresh requests
// ---------------------------------------------------------------------------------------

/// The default client, counting `grant_type=refresh_token` token requests.
pub struct CountingClient {
    inner: ReqwestClient,
    pub refreshes: Arc<AtomicUsize>,
}

impl CountingClient {
    pub fn new() -> (Arc<Self>, Arc<AtomicUsize>) {
        let refreshes = Arc::new(AtomicUsize::new(0));
        (
            Arc::new(Self {
                inner: ReqwestClient::new().expect("client"),
                refreshes: Arc::clone(&refreshes),
            }),
            refreshes,
        )
    }
}

impl HttpClient for CountingClient {
    fn get(&self, url: &str, accept: &[&str]) -> HttpFuture<'_> {
        self.inner.get(url, accept)
    }

    fn get_with_bearer(&self, url: &str, token: &str, accept: &[&str]) -> HttpFuture<'_> {
        self.inner.get_with_bearer(url, token, accept)
    }

    fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
        accept: &[&str],
    ) -> HttpFuture<'_> {
        if form.contains(&("grant_type", "refresh_token")) {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.post_form(url, form, basic_auth, accept)
    }
}
