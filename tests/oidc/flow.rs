//! Against the real provider (oidc-provider 9.13.3 in `tests/idp`), driven by an HTTP
//! client with a cookie jar: login, protected pages, refresh, logout, back-channel
//! logout, and every way a callback or a session cookie can be wrong.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use portcullis::oidc::{MemorySessionStore, Session, SessionId, SessionStore, StoreFuture};
use reqwest::Method;
use serde_json::Value;

use crate::harness::{
    App, Browser, CountingClient, Page, hidden_input, login, shared_idp, start_app,
    start_app_with_client, submit_login_form,
};
use crate::support::idp::{API, Idp, Settings};

const JSON: (&str, &str) = ("accept", "application/json");

async fn api_get(browser: &Browser, app: &App, path: &str) -> Page {
    browser
        .request(Method::GET, &app.url(path), &[JSON], None)
        .await
}

/// Follows the login until the provider redirects back to the app's callback, without
/// following that last redirect: the callback URL, for tests that replay or tamper.
async fn callback_url(browser: &Browser, app: &App, user: &str) -> String {
    let mut page = browser.get(&app.url("/auth/login?return_to=/me")).await;
    for _ in 0..15 {
        if page.status == 200 {
            // The provider's login form (unless this browser is logged in there already).
            let action = crate::harness::form_action(&page.body).expect("login form");
            let action = page.url.join(&action).unwrap();
            page = browser
                .request(
                    Method::POST,
                    action.as_str(),
                    &[("accept", "text/html")],
                    Some(&[("prompt", "login"), ("login", user), ("password", "x")]),
                )
                .await;
            continue;
        }
        let next = page
            .location()
            .unwrap_or_else(|| panic!("{} {}", page.status, page.body));
        if next.as_str().starts_with(&app.url("/auth/callback")) {
            return next.to_string();
        }
        page = browser.get(next.as_str()).await;
    }
    panic!("the provider never sent the browser back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_protected_page_refresh_and_logout() {
    let idp = shared_idp();
    let (client, refreshes) = CountingClient::new();
    // Every request is within the refresh margin: each one that finds no refresh in
    // flight refreshes, with rotation at the provider.
    let app = start_app(&idp.issuer, |b| {
        b.http_client(client)
            .refresh_before(Duration::from_secs(24 * 60 * 60))
    })
    .await;
    let browser = Browser::new();

    // An API client is told 401; a browser is sent to the login.
    let page = api_get(&browser, &app, "/me").await;
    assert_eq!(page.status, 401);
    assert!(page.headers.contains_key("www-authenticate"));
    let page = browser.get(&app.url("/me?tab=1")).await;
    assert_eq!(page.status, 302);
    assert_eq!(
        page.location_header(),
        "/auth/login?return_to=%2Fme%3Ftab%3D1"
    );

    let page = login(&browser, &app, "alice", "/me").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url.as_str(), app.url("/me"));
    let me = page.json();
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["method"], "oidc");
    assert_eq!(me["email"], "alice@example.test");
    assert!(
        me["roles"]
            .as_array()
            .unwrap()
            .contains(&Value::from("orders-admin")),
        "{me}"
    );
    assert!(me["sid"].is_string(), "{me}");

    // The session survives refreshes with a rotating refresh token.
    for _ in 0..3 {
        let page = api_get(&browser, &app, "/me").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["sub"], "alice");
    }
    assert!(
        refreshes.load(Ordering::SeqCst) >= 3,
        "refreshes: {refreshes:?}"
    );
    let page = api_get(&browser, &app, "/token").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.parse::<usize>().unwrap() > 10);

    // Logout: a POST from our own origin; the provider's end_session_endpoint next.
    let page = browser
        .request(
            Method::POST,
            &app.url("/auth/logout"),
            &[("origin", &app.base)],
            None,
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let end_session = page.location().unwrap();
    assert!(
        end_session
            .as_str()
            .starts_with(&format!("{}/session/end", idp.issuer)),
        "{end_session}"
    );
    let query: Vec<(String, String)> = end_session.query_pairs().into_owned().collect();
    let has = |name: &str| {
        query
            .iter()
            .any(|(key, value)| key == name && !value.is_empty())
    };
    assert!(
        has("id_token_hint") && has("state") && has("client_id"),
        "{query:?}"
    );
    assert!(
        query.contains(&("post_logout_redirect_uri".into(), app.url("/"))),
        "{query:?}"
    );
    assert!(
        page.set_cookies()
            .iter()
            .any(|c| c.starts_with("portcullis-session=;"))
    );
    assert_eq!(api_get(&browser, &app, "/me").await.status, 401);

    // The provider's own confirmation, then back to us.
    let confirm = browser.navigate(end_session.as_str()).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let action = confirm
        .url
        .join(&crate::harness::form_action(&confirm.body).unwrap())
        .unwrap();
    let xsrf = hidden_input(&confirm.body, "xsrf").expect("xsrf");
    let mut page = browser
        .request(
            Method::POST,
            action.as_str(),
            &[("accept", "text/html")],
            Some(&[("xsrf", xsrf.as_str()), ("logout", "yes")]),
        )
        .await;
    for _ in 0..5 {
        if !page.is_redirect() {
            break;
        }
        page = browser.get(page.location().unwrap().as_str()).await;
    }
    assert_eq!(page.url.path(), "/");
    assert!(page.url.as_str().starts_with(&app.base), "{}", page.url);
    assert_eq!(page.body, "home");
    // Logged out at the provider too: the next login shows the form again.
    let page = browser.navigate(&app.url("/me")).await;
    assert!(page.body.contains("name=\"login\""), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_ends_a_live_session() {
    let idp = shared_idp();
    let app = start_app(&idp.issuer, |b| b).await;
    let alice = Browser::new();
    let bob = Browser::new();
    assert_eq!(login(&alice, &app, "alice", "/me").await.status, 200);
    let me = login(&bob, &app, "bob", "/me").await.json();
    assert_eq!(me["sub"], "bob");
    let sid = api_get(&alice, &app, "/me").await.json()["sid"]
        .as_str()
        .expect("sid")
        .to_owned();

    // The provider sends a real logout token to our back-channel endpoint.
    let response = crate::harness::http_client()
        .post(format!("{}/test/backchannel-logout", idp.issuer))
        .form(&[
            ("client_id", app.client_id.as_str()),
            ("sub", "alice"),
            ("sid", sid.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());

    assert_eq!(api_get(&alice, &app, "/me").await.status, 401);
    assert_eq!(api_get(&bob, &app, "/me").await.status, 200);

    // Garbage is refused with 400, as the spec says.
    for body in [
        "",
        "logout_token=abc",
        "logout_token=a.b.c&logout_token=a.b.c",
    ] {
        let response = crate::harness::http_client()
            .post(app.url("/auth/backchannel-logout"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callbacks_get_clear_4xx_pages() {
    let idp = shared_idp();
    let app = start_app(&idp.issuer, |b| b).await;
    let browser = Browser::new();

    // No state, an unknown state.
    for query in [
        "code=abc",
        "code=abc&state=0123456789012345678901234567890123456789012",
    ] {
        let page = browser
            .get(&app.url(&format!("/auth/callback?{query}")))
            .await;
        assert_eq!(page.status, 400, "{query}");
        assert!(page.body.contains("Sign-in failed"), "{}", page.body);
    }

    // A real callback works once; replayed (even with its login cookie) it is refused.
    let callback = callback_url(&browser, &app, "alice").await;
    let state = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let cookie_name = format!("portcullis-session-login-{}", &state[..16]);
    let login_cookie = browser
        .cookie(&app.base, &cookie_name)
        .expect("login cookie");
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(page.location_header(), "/me");
    assert!(
        browser.cookie(&app.base, &cookie_name).is_none(),
        "login cookie cleared"
    );
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 400);
    browser.set_cookie(&app.base, &cookie_name, &login_cookie);
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("already used"), "{}", page.body);

    // A code from another login (another PKCE verifier) does not exchange.
    let other = Browser::new();
    let stolen = callback_url(&other, &app, "alice").await;
    let code = reqwest::Url::parse(&stolen)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let mine = callback_url(&browser, &app, "alice").await;
    let mut mine = reqwest::Url::parse(&mine).unwrap();
    let pairs: Vec<(String, String)> = mine.query_pairs().into_owned().collect();
    mine.query_pairs_mut().clear();
    for (key, value) in pairs {
        let value = if key == "code" { code.clone() } else { value };
        mine.query_pairs_mut().append_pair(&key, &value);
    }
    let page = browser.get(mine.as_str()).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("code was refused"), "{}", page.body);

    // The provider's error answer.
    let start = browser.get(&app.url("/auth/login")).await;
    let state = start
        .location()
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let page = browser
        .get(&app.url(&format!("/auth/callback?error=access_denied&state={state}")))
        .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("access_denied"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_addresses_never_leave_our_origin() {
    let idp = shared_idp();
    let app = start_app(&idp.issuer, |b| b).await;
    for evil in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "%2F%2Fevil.example",
    ] {
        let browser = Browser::new();
        let form = browser
            .navigate(&app.url(&format!("/auth/login?return_to={evil}")))
            .await;
        let page = submit_login_form(&browser, &form, "alice").await;
        assert_eq!(page.url.as_str(), app.url("/"), "{evil}");
        assert_eq!(page.body, "home");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookies_csrf_and_other_credentials() {
    let idp = shared_idp();
    let app = start_app(&idp.issuer, |b| b).await;
    let browser = Browser::new();
    let page = login(&browser, &app, "alice", "/me").await;
    assert_eq!(page.status, 200);
    let session = browser
        .cookie(&app.base, "portcullis-session")
        .expect("session cookie");

    // Writes with the session cookie need our origin.
    let post = |headers: Vec<(&'static str, String)>| {
        let browser = &browser;
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser
                .request(Method::POST, &app.url("/orders"), &headers, None)
                .await
        }
    };
    assert_eq!(post(vec![]).await.status, 403);
    assert_eq!(
        post(vec![("origin", "http://evil.example".into())])
            .await
            .status,
        403
    );
    assert_eq!(
        post(vec![("sec-fetch-site", "cross-site".into())])
            .await
            .status,
        403
    );
    assert_eq!(post(vec![("origin", app.base.clone())]).await.status, 200);
    assert_eq!(
        post(vec![("sec-fetch-site", "same-origin".into())])
            .await
            .status,
        200
    );

    // Bearer tokens keep working beside sessions, without an origin check; both at once
    // are refused.
    let token = tokio::task::spawn_blocking(|| shared_idp().token(API))
        .await
        .unwrap();
    let bearer = format!("Bearer {token}");
    let anonymous = Browser::new();
    let page = anonymous
        .request(
            Method::POST,
            &app.url("/orders"),
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = browser
        .request(
            Method::GET,
            &app.url("/me"),
            &[JSON, ("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("ambiguous_credentials"), "{}", page.body);

    // A tampered cookie is no session: 401 for an API client, and the cookie is cleared.
    let mut tampered = session.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    for value in [
        String::from_utf8(tampered).unwrap(),
        "x".to_owned(),
        format!("{session}x"),
    ] {
        let thief = Browser::new();
        thief.set_cookie(&app.base, "portcullis-session", &value);
        let page = api_get(&thief, &app, "/me").await;
        assert_eq!(page.status, 401, "{value}");
        assert!(
            page.set_cookies()
                .iter()
                .any(|c| c.starts_with("portcullis-session=;"))
        );
        // A browser with a bad cookie is sent to the login instead.
        let page = thief.get(&app.url("/me")).await;
        assert_eq!(page.status, 302);
    }
    // A browser with a bad bearer token keeps its 401: it brought credentials.
    let page = Browser::new()
        .request(
            Method::GET,
            &app.url("/me"),
            &[
                ("accept", "text/html"),
                ("authorization", "Bearer not-a-token"),
            ],
            None,
        )
        .await;
    assert_eq!(page.status, 401);
    // The untouched cookie still works, and a new login rotates the id.
    assert_eq!(api_get(&browser, &app, "/me").await.status, 200);
    let page = login(&browser, &app, "alice", "/auth/login?return_to=/me").await;
    assert_eq!(page.status, 200);
    let rotated = browser.cookie(&app.base, "portcullis-session").unwrap();
    assert_ne!(rotated, session);
    let old = Browser::new();
    old.set_cookie(&app.base, "portcullis-session", &session);
    assert_eq!(
        api_get(&old, &app, "/me").await.status,
        401,
        "the old id is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_requests_at_expiry_keep_the_session() {
    // Access tokens live five seconds (a refreshed one at least four more by our clock,
    // which rounds down: far longer than a wave takes, even on a loaded machine); the
    // waits below are on the provider's real clock.
    let idp = Idp::start(Settings {
        access_token_ttl: Some(5),
    });
    let (client, refreshes) = CountingClient::new();
    let app = start_app(&idp.issuer, |b| {
        b.http_client(client).refresh_before(Duration::ZERO)
    })
    .await;
    let browser = Arc::new(Browser::new());
    assert_eq!(login(&browser, &app, "alice", "/me").await.status, 200);
    let app = Arc::new(app);
    for wave in 1..=2 {
        let before = refreshes.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5100)).await;
        let requests: Vec<_> = (0..20)
            .map(|_| {
                let browser = Arc::clone(&browser);
                let app = Arc::clone(&app);
                tokio::spawn(async move { api_get(&browser, &app, "/me").await.status })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap(), 200, "wave {wave}");
        }
        assert_eq!(
            refreshes.load(Ordering::SeqCst) - before,
            1,
            "one refresh in wave {wave}"
        );
    }
    assert_eq!(api_get(&browser, &app, "/me").await.status, 200);
}

/// A memory store that also keeps the last session saved, so that a test can read the
/// refresh token the provider issued.
struct RecordingStore {
    inner: MemorySessionStore,
    last: std::sync::Mutex<Option<Arc<Session>>>,
}

impl SessionStore for RecordingStore {
    fn load(&self, id: &SessionId, idle: Duration) -> StoreFuture<'_, Option<Arc<Session>>> {
        self.inner.load(id, idle)
    }
    fn save(&self, id: &SessionId, session: Arc<Session>, idle: Duration) -> StoreFuture<'_, ()> {
        *self.last.lock().unwrap() = Some(Arc::clone(&session));
        self.inner.save(id, session, idle)
    }
    fn save_if_present(
        &self,
        id: &SessionId,
        session: Arc<Session>,
        idle: Duration,
    ) -> StoreFuture<'_, bool> {
        *self.last.lock().unwrap() = Some(Arc::clone(&session));
        self.inner.save_if_present(id, session, idle)
    }
    fn remove(&self, id: &SessionId) -> StoreFuture<'_, ()> {
        self.inner.remove(id)
    }
    fn remove_matching<'a>(
        &'a self,
        issuer: &'a str,
        sid: Option<&'a str>,
        subject: Option<&'a str>,
    ) -> StoreFuture<'a, usize> {
        self.inner.remove_matching(issuer, sid, subject)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_means_logging_in_again() {
    let idp = shared_idp();
    let store = Arc::new(RecordingStore {
        inner: MemorySessionStore::new(),
        last: std::sync::Mutex::new(None),
    });
    let app = start_app(&idp.issuer, |b| {
        b.session_store(store.clone())
            .refresh_before(Duration::from_secs(24 * 60 * 60))
    })
    .await;
    let browser = Browser::new();
    assert_eq!(login(&browser, &app, "alice", "/me").await.status, 200);
    assert_eq!(api_get(&browser, &app, "/me").await.status, 200);
    let session = store
        .last
        .lock()
        .unwrap()
        .clone()
        .expect("a session was saved");
    let refresh_token = serde_json::to_value(&*session).unwrap()["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    let response = crate::harness::http_client()
        .post(format!("{}/token/revocation", idp.issuer))
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .form(&[
            ("token", refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}\n{}", idp.stderr_text());

    let page = api_get(&browser, &app, "/me").await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(
        page.set_cookies()
            .iter()
            .any(|c| c.starts_with("portcullis-session=;"))
    );
    // The browser goes to the login form and back in.
    let page = login(&browser, &app, "alice", "/me").await;
    assert_eq!(page.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_at_the_callback_gives_a_503_page() {
    let idp = Idp::start(Settings::default());
    let app = start_app(&idp.issuer, |b| b).await;
    let browser = Browser::new();
    let callback = callback_url(&browser, &app, "alice").await;
    drop(idp);
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("cannot be reached"), "{}", page.body);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_the_gateway_with_route_rules() {
    use axum::Router;
    use axum::routing::get;
    use portcullis::authz::{RouteRules, authenticated, public, role};
    use portcullis::{GatewaySecurityLayer, Principal};

    let idp = shared_idp();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (client_id, client_secret) = crate::harness::register(&idp.issuer, &base).await;
    let oidc = portcullis::oidc::Oidc::builder(&idp.issuer)
        .client_id(client_id)
        .client_secret(client_secret)
        .redirect_uri(format!("{base}/auth/callback"))
        .scopes(["openid", "email", "roles"])
        .roles_claim("roles")
        .insecure_http_cookies_on_loopback()
        .build()
        .unwrap();
    let rules = RouteRules::builder()
        .role("orders-admin", ["orders:*"])
        .route("GET /", public())
        .route("GET /me", authenticated())
        .route("GET /admin", role("orders-admin"))
        .build()
        .unwrap();
    let security = GatewaySecurityLayer::builder()
        .authenticate(oidc.clone())
        .rules(rules)
        .build()
        .unwrap();
    let who = |who: Principal| async move { who.subject().to_owned() };
    let app = Router::new()
        .route("/", get(|| async { "home" }))
        .route("/me", get(who))
        .route("/admin", get(who))
        .layer(security)
        .layer(oidc.layer());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let browser = Browser::new();
    assert_eq!(browser.get(&format!("{base}/")).await.status, 200);
    let page = browser.get(&format!("{base}/me")).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(page.location_header(), "/auth/login?return_to=%2Fme");
    let form = browser.navigate(&format!("{base}/me")).await;
    let page = submit_login_form(&browser, &form, "bob").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body, "bob");
    // Bob has no `orders-admin` role: 403, not a login loop.
    let page = browser.get(&format!("{base}/admin")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    let alice = Browser::new();
    let form = alice.navigate(&format!("{base}/admin")).await;
    let page = submit_login_form(&alice, &form, "alice").await;
    assert_eq!(page.body, "alice");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_and_client_secret_post_clients_log_in_and_refresh() {
    let idp = shared_idp();
    for (method, configure) in [
        (
            "none",
            (|b| b) as fn(portcullis::oidc::OidcBuilder) -> portcullis::oidc::OidcBuilder,
        ),
        ("client_secret_post", |b: portcullis::oidc::OidcBuilder| {
            b.client_secret_post()
        }),
    ] {
        let app = crate::harness::start_app_registered_with(&idp.issuer, method, |b| {
            configure(b).refresh_before(Duration::from_secs(24 * 60 * 60))
        })
        .await;
        let browser = Browser::new();
        let page = login(&browser, &app, "bob", "/me").await;
        assert_eq!(page.status, 200, "{method}: {}", page.body);
        assert_eq!(page.json()["sub"], "bob");
        // Refreshed (every request is within the margin) with the same client authentication.
        for _ in 0..2 {
            assert_eq!(api_get(&browser, &app, "/me").await.status, 200, "{method}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_from_the_real_provider() {
    let idp = shared_idp();
    let app = start_app(&idp.issuer, |b| b.userinfo()).await;
    let browser = Browser::new();
    let page = login(&browser, &app, "alice", "/me").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let me = page.json();
    assert_eq!(me["claims"]["name"], "Alice Admin", "{me}");
    assert!(
        me["roles"]
            .as_array()
            .unwrap()
            .contains(&Value::from("viewer")),
        "{me}"
    );
}

/// Two instances of the app on one Redis (issue 11): a session made through one works on
/// the other, and a back-channel logout received by one ends it on both.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_redis_are_shared_by_every_instance() {
    use portcullis::SessionKey;
    use portcullis::redis::{RedisConnection, RedisSessionStore};

    let idp = shared_idp();
    let redis = crate::support::redis::RedisServer::start();
    let key = SessionKey::generate();
    let store = || -> Arc<dyn SessionStore> {
        let connection = RedisConnection::builder(redis.url())
            .command_timeout(Duration::from_secs(2))
            .build()
            .expect("connection settings");
        Arc::new(RedisSessionStore::new(connection, key.clone()))
    };
    let one = start_app(&idp.issuer, |b| {
        b.session_store(store()).session_key(key.clone())
    })
    .await;
    let other = start_app_with_client(&idp.issuer, &one.client_id, &one.client_secret, |b| {
        b.session_store(store()).session_key(key.clone())
    })
    .await;

    let browser = Browser::new();
    assert_eq!(login(&browser, &one, "alice", "/me").await.status, 200);
    let session = browser
        .cookie(&one.base, "portcullis-session")
        .expect("session cookie");
    // Redis holds the session sealed: neither the subject nor a token in clear.
    let keys = redis.command_values("KEYS portcullis:session:*");
    assert_eq!(keys.len(), 1, "one session stored");
    let key = String::from_utf8(keys[0].clone()).unwrap();
    assert!(
        !key.contains(&session),
        "keyed by a digest, not the cookie: {key}"
    );
    let stored = redis.command_values(&format!("GET {key}"));
    assert_eq!(stored.len(), 1, "{key} holds a value");
    let stored = &stored[0];
    assert!(stored.len() > 100, "{} bytes", stored.len());
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    for clear in [
        &b"alice"[..],
        b"refresh_token",
        b"id_token",
        b"eyJ",
        b"subject",
    ] {
        assert!(
            !contains(clear),
            "{:?} in clear in Redis",
            String::from_utf8_lossy(clear)
        );
    }

    // The same cookie, sent to the other instance.
    browser.set_cookie(&other.base, "portcullis-session", &session);
    let me = api_get(&browser, &other, "/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["sub"], "alice");
    let sid = me.json()["sid"].as_str().expect("sid").to_owned();

    // The provider's logout token reaches the first instance only.
    let response = crate::harness::http_client()
        .post(format!("{}/test/backchannel-logout", idp.issuer))
        .form(&[
            ("client_id", one.client_id.as_str()),
            ("sub", "alice"),
            ("sid", sid.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    assert_eq!(api_get(&browser, &other, "/me").await.status, 401);
    assert_eq!(api_get(&browser, &one, "/me").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_save_if_present_never_brings_a_removed_session_back() {
    use portcullis::SessionKey;
    use portcullis::redis::{RedisConnection, RedisSessionStore};

    let redis = crate::support::redis::RedisServer::start();
    let connection = RedisConnection::builder(redis.url())
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("connection settings");
    let store = RedisSessionStore::new(connection, SessionKey::generate());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let session_with = |subject: &str, sid: Option<&str>| -> Arc<Session> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "subject": subject, "issuer": "https://idp", "sid": sid, "claims": {},
                "roles": [], "scopes": [], "id_token": "id", "access_token": null,
                "refresh_token": null, "access_token_expires_at": null,
                "created_at": now, "expires_at": now + 3600,
            }))
            .expect("a session"),
        )
    };
    let session = |subject: &str| session_with(subject, None);
    let id = SessionId::of_cookie("a");
    let idle = Duration::from_secs(600);
    assert!(
        !store
            .save_if_present(&id, session("a"), idle)
            .await
            .unwrap()
    );
    assert!(store.load(&id, idle).await.unwrap().is_none());
    store.save(&id, session("b"), idle).await.unwrap();
    assert!(
        store
            .save_if_present(&id, session("c"), idle)
            .await
            .unwrap()
    );
    assert_eq!(store.load(&id, idle).await.unwrap().unwrap().subject(), "c");
    store.remove(&id).await.unwrap();
    assert!(
        !store
            .save_if_present(&id, session("d"), idle)
            .await
            .unwrap()
    );
    assert!(store.load(&id, idle).await.unwrap().is_none());

    // Back-channel logout naming both sid and sub: that subject's sessions with that sid
    // or with none.
    for (cookie, subject, sid) in [
        ("b1", "bob", None),
        ("b2", "bob", Some("s2")),
        ("b3", "bob", Some("s3")),
        ("c1", "carol", None),
    ] {
        store
            .save(
                &SessionId::of_cookie(cookie),
                session_with(subject, sid),
                idle,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .remove_matching("https://idp", Some("s2"), Some("bob"))
            .await
            .unwrap(),
        2
    );
    for (cookie, kept) in [("b1", false), ("b2", false), ("b3", true), ("c1", true)] {
        assert_eq!(
            store
                .load(&SessionId::of_cookie(cookie), idle)
                .await
                .unwrap()
                .is_some(),
            kept,
            "{cookie}"
        );
    }
}

/// The login from a policy file (`authenticate.oidc`, its secrets in files) against the real
/// provider: the gateway and the login routes it builds log a user in, the route rules
/// apply to the session, and a reload keeps the session while a changed login is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_files_login_logs_in_and_outlives_a_reload() {
    use axum::Router;
    use axum::routing::get;
    use portcullis::config::{PolicyFile, SharedState};
    use portcullis::{Principal, ReloadableLayer};

    let idp = shared_idp();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (client_id, client_secret) = crate::harness::register(&idp.issuer, &base).await;
    let directory =
        std::env::temp_dir().join(format!("portcullis-policy-login-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    std::fs::write(directory.join("client-secret"), &client_secret).unwrap();
    std::fs::write(directory.join("session-key"), "ab".repeat(32)).unwrap();
    let policy = |idle: &str, traffic: &str| {
        format!(
            r#"
authenticate:
  oidc:
    issuer: "{issuer}"
    client_id: "{client_id}"
    client_secret_file: client-secret
    redirect_uri: "{base}/auth/callback"
    scopes: [openid, email, roles]
    roles_claim: roles
    session_key_file: session-key
    idle_timeout: {idle}
    insecure_http_cookies_on_loopback: true
roles:
  orders-admin: ["orders:*"]
routes:
  - {{route: GET /, require: public}}
  - {{route: GET /me, require: authenticated}}
  - {{route: GET /admin, require: role(orders-admin)}}
{traffic}"#,
            issuer = idp.issuer
        )
    };
    let path = directory.join("policy.yaml");
    std::fs::write(&path, policy("30m", "")).unwrap();
    let state = SharedState::new();
    let build = || -> Result<_, String> {
        let policy = PolicyFile::from_file(&path).map_err(|errors| errors.to_string())?;
        let (builder, _) = policy
            .gateway_with(&state)
            .map_err(|errors| errors.to_string())?;
        builder.build().map_err(|error| error.to_string())
    };
    let reloadable = ReloadableLayer::new(build().unwrap());
    let handle = reloadable.handle();
    let who = |who: Principal| async move { who.subject().to_owned() };
    let app = Router::new()
        .route("/", get(|| async { "home" }))
        .route("/me", get(who))
        .route("/admin", get(who))
        .layer(reloadable);
    let server = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });

    let browser = Browser::new();
    assert_eq!(browser.get(&format!("{base}/")).await.status, 200);
    let page = browser.get(&format!("{base}/me")).await;
    assert_eq!(page.status, 302, "{}", page.body);
    let form = browser.navigate(&format!("{base}/me")).await;
    let page = submit_login_form(&browser, &form, "bob").await;
    assert_eq!((page.status, page.body.as_str()), (200, "bob"));
    let page = browser.get(&format!("{base}/admin")).await;
    assert_eq!(page.status, 403, "{}", page.body);

    // The same file again: the session lives on.
    handle.reload(build).unwrap();
    let page = browser.get(&format!("{base}/me")).await;
    assert_eq!((page.status, page.body.as_str()), (200, "bob"));
    // A changed login cannot be swapped in while serving: refused, the old one serves.
    std::fs::write(&path, policy("10m", "")).unwrap();
    let refused = handle.reload(build).expect_err("the login changed");
    assert!(refused.contains("authenticate.oidc: differs"), "{refused}");
    let page = browser.get(&format!("{base}/me")).await;
    assert_eq!((page.status, page.body.as_str()), (200, "bob"));
    // A changed secret is no reason to refuse a policy: the running login keeps its own
    // (they apply at the next start), and its sessions live on.
    std::fs::write(&path, policy("30m", "")).unwrap();
    std::fs::write(directory.join("client-secret"), "another secret").unwrap();
    handle.reload(build).unwrap();
    let page = browser.get(&format!("{base}/me")).await;
    assert_eq!((page.status, page.body.as_str()), (200, "bob"));
    std::fs::write(directory.join("client-secret"), &client_secret).unwrap();

    // The login routes are inside the gateway, behind its shield: an address the file
    // denies the login route to is refused there, before the login starts.
    let shielded =
        "traffic:\n  ip_rules:\n    routes: [{route: GET /auth/login, deny: [127.0.0.0/8]}]\n";
    std::fs::write(&path, policy("30m", shielded)).unwrap();
    handle.reload(build).unwrap();
    let page = Browser::new().get(&format!("{base}/auth/login")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("ip_denied"), "{}", page.body);
    let page = browser.get(&format!("{base}/me")).await;
    assert_eq!((page.status, page.body.as_str()), (200, "bob"));
    server.abort();
    let _ = std::fs::remove_dir_all(directory);
}

#[test]
fn a_policy_files_login_reports_every_problem_with_its_place() {
    use portcullis::config::{Format, PolicyFile};
    let policy = PolicyFile::parse(
        r#"
authenticate:
  oidc:
    issuer: https://idp.example
    client_id: web
    client_secret_env: PORTCULLIS_TEST_SURELY_UNSET_SECRET
    redirect_uri: https://app.example/auth/callback
    idle_timeout: forever
    session_store: {redis: {url_env: PORTCULLIS_TEST_SURELY_UNSET_URL}}
"#,
        Format::Yaml,
    )
    .unwrap();
    let errors = policy.gateway().map(|_| ()).expect_err("problems");
    let places: Vec<&str> = errors
        .errors()
        .iter()
        .map(|error| error.place.as_str())
        .collect();
    assert_eq!(
        places,
        [
            "authenticate.oidc.client_secret_env",
            "authenticate.oidc.idle_timeout",
            "authenticate.oidc.session_store.redis",
        ],
        "{errors}"
    );
    // With `redis`, the store needs a session key; without it, Redis itself is refused.
    #[cfg(feature = "redis")]
    assert!(errors.to_string().contains("session_key_env"), "{errors}");
}
