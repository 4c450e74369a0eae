//! Sessions that must end, and stay ended: RP and back-channel logout while the session
//! store is down, and a logout while a refresh of the same session is in flight. Through
//! the hand-made provider of `forged.rs`, whose token endpoint a test can hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use portcullis::oidc::{
    MemorySessionStore, Session, SessionId, SessionStore, StoreError, StoreFuture,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::forged::{CLIENT, Forger, forger, key, now, rs256, sign};
use crate::harness::{App, Browser, Page, start_app_with_client};

const JSON: (&str, &str) = ("accept", "application/json");

/// A memory store whose backend can be switched off, and that counts the loads it has
/// answered.
#[derive(Default)]
pub struct FlakyStore {
    pub inner: MemorySessionStore,
    pub down: AtomicBool,
    /// Loads answered so far: counted as the answer is handed back, so a request counted
    /// here goes straight on (nothing more to wait for) to what it does with its session.
    pub loaded: AtomicUsize,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::new("connection refused"))
        } else {
            Ok(())
        }
    }
}

impl SessionStore for FlakyStore {
    fn load(&self, id: &SessionId, idle: Duration) -> StoreFuture<'_, Option<Arc<Session>>> {
        match self.check() {
            Ok(()) => {
                let load = self.inner.load(id, idle);
                Box::pin(async move {
                    let answer = load.await;
                    self.loaded.fetch_add(1, Ordering::SeqCst);
                    answer
                })
            }
            Err(error) => Box::pin(async { Err(error) }),
        }
    }
    fn save(&self, id: &SessionId, session: Arc<Session>, idle: Duration) -> StoreFuture<'_, ()> {
        match self.check() {
            Ok(()) => self.inner.save(id, session, idle),
            Err(error) => Box::pin(async { Err(error) }),
        }
    }
    fn save_if_present(
        &self,
        id: &SessionId,
        session: Arc<Session>,
        idle: Duration,
    ) -> StoreFuture<'_, bool> {
        match self.check() {
            Ok(()) => self.inner.save_if_present(id, session, idle),
            Err(error) => Box::pin(async { Err(error) }),
        }
    }
    fn remove(&self, id: &SessionId) -> StoreFuture<'_, ()> {
        match self.check() {
            Ok(()) => self.inner.remove(id),
            Err(error) => Box::pin(async { Err(error) }),
        }
    }
    fn remove_matching<'a>(
        &'a self,
        issuer: &'a str,
        sid: Option<&'a str>,
        subject: Option<&'a str>,
    ) -> StoreFuture<'a, usize> {
        match self.check() {
            Ok(()) => self.inner.remove_matching(issuer, sid, subject),
            Err(error) => Box::pin(async { Err(error) }),
        }
    }
}

pub async fn api_get(browser: &Browser, app: &App, path: &str) -> Page {
    browser
        .request(Method::GET, &app.url(path), &[JSON], None)
        .await
}

/// Logs `sub` in through the hand-made provider, with `extra` claims in its ID token;
/// returns the session cookie.
pub async fn forged_login(forger: &Forger, app: &App, browser: &Browser, extra: Value) -> String {
    let start = browser.get(&app.url("/auth/login?return_to=/me")).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let location = start.location().unwrap();
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let mut claims = json!({
        "iss": forger.issuer, "aud": CLIENT, "sub": "alice", "exp": now() + 300,
        "iat": now(), "nonce": param("nonce"),
    });
    if let Value::Object(extra) = extra {
        for (name, value) in extra {
            claims[name] = value;
        }
    }
    *forger.next_id_token.lock().unwrap() = Some(sign(&rs256(None), &claims, &key()));
    let page = browser
        .get(&app.url(&format!("/auth/callback?code=c&state={}", param("state"))))
        .await;
    assert_eq!(page.status, 302, "{}", page.body);
    browser
        .cookie(&app.base, "portcullis-session")
        .expect("a session cookie")
}

pub fn logout_token(forger: &Forger, jti: &str, sid: &str) -> String {
    let claims = json!({
        "iss": forger.issuer, "aud": CLIENT, "iat": now(), "exp": now() + 120, "jti": jti,
        "sid": sid,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    sign(&rs256(Some("logout+jwt")), &claims, &key())
}

async fn post_logout_token(app: &App, token: &str) -> (u16, String) {
    let response = crate::harness::http_client()
        .post(app.url("/auth/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_logout_retried_after_a_store_outage_ends_the_session() {
    let forger = forger().await;
    let store = Arc::new(FlakyStore::default());
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        b.session_store(store.clone())
    })
    .await;
    let browser = Browser::new();
    forged_login(&forger, &app, &browser, json!({"sid": "s1"})).await;
    assert_eq!(api_get(&browser, &app, "/me").await.status, 200);

    let token = logout_token(&forger, "j1", "s1");
    store.down.store(true, Ordering::SeqCst);
    let (status, body) = post_logout_token(&app, &token).await;
    assert_eq!(status, 503, "{body}");
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(
        api_get(&browser, &app, "/me").await.status,
        200,
        "not ended yet"
    );
    // The provider retries the same token: accepted this time, and the session ends.
    let (status, body) = post_logout_token(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api_get(&browser, &app, "/me").await.status, 401);
    // Now it has been used.
    let (status, body) = post_logout_token(&app, &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("already used"), "{body}");
}

/// Waits (on the provider's side, not on our timers) until `count` token requests arrived.
async fn token_requests_reach(forger: &Forger, count: usize) {
    for _ in 0..500 {
        if forger.token_requests.load(Ordering::SeqCst) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the token endpoint never got request {count}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_refresh_stays_a_logout() {
    let forger = forger().await;
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        // Every request refreshes.
        b.refresh_before(Duration::from_secs(3600))
    })
    .await;
    let app = Arc::new(app);
    for ending in ["rp-logout", "back-channel"] {
        *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt1"});
        let browser = Arc::new(Browser::new());
        let session = forged_login(&forger, &app, &browser, json!({"sid": ending})).await;
        let before = forger.token_requests.load(Ordering::SeqCst);

        // A request refreshes; the provider holds its answer.
        *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt2"});
        let held = forger.token_gate.lock().await;
        let refreshing = {
            let (browser, app) = (Arc::clone(&browser), Arc::clone(&app));
            tokio::spawn(async move { api_get(&browser, &app, "/me").await.status })
        };
        token_requests_reach(&forger, before + 1).await;

        // Meanwhile the session ends.
        if ending == "rp-logout" {
            let page = browser
                .request(
                    Method::POST,
                    &app.url("/auth/logout"),
                    &[("origin", &app.base)],
                    None,
                )
                .await;
            assert_eq!(page.status, 303, "{}", page.body);
        } else {
            let (status, body) =
                post_logout_token(&app, &logout_token(&forger, "j-refresh", ending)).await;
            assert_eq!(status, 200, "{body}");
        }
        drop(held);
        assert_eq!(refreshing.await.unwrap(), 401, "{ending}");

        // The refresh did not bring the session back.
        let old = Browser::new();
        old.set_cookie(&app.base, "portcullis-session", &session);
        assert_eq!(api_get(&old, &app, "/me").await.status, 401, "{ending}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_store_outage_is_a_503_that_keeps_the_cookie() {
    let forger = forger().await;
    let store = Arc::new(FlakyStore::default());
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        b.session_store(store.clone())
    })
    .await;
    let browser = Browser::new();
    let session = forged_login(&forger, &app, &browser, json!({})).await;
    let url = app.url("/auth/logout");
    let headers = [("origin", app.base.as_str())];
    let logout = || browser.request(Method::POST, &url, &headers, None);
    store.down.store(true, Ordering::SeqCst);
    let page = logout().await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(
        browser.cookie(&app.base, "portcullis-session").as_deref(),
        Some(session.as_str())
    );
    assert_eq!(
        api_get(&browser, &app, "/me").await.status,
        200,
        "still logged in"
    );
    // Once the store is back, the same logout ends the session (local only: the
    // hand-made provider has no end_session_endpoint).
    let page = logout().await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location_header(), "/");
    let old = Browser::new();
    old.set_cookie(&app.base, "portcullis-session", &session);
    assert_eq!(api_get(&old, &app, "/me").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_waiting_for_a_refresh_share_its_outcome() {
    let forger = forger().await;
    let store = Arc::new(FlakyStore::default());
    let app = Arc::new(
        start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
            b.session_store(store.clone())
        })
        .await,
    );
    // An access token that has expired already: every request needs the refresh.
    *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt1", "expires_in": 0});
    let browser = Arc::new(Browser::new());
    forged_login(&forger, &app, &browser, json!({})).await;

    // The provider is down, and slow to say so: requests pile up behind one refresh.
    let before = forger.token_requests.load(Ordering::SeqCst);
    let loaded_before = store.loaded.load(Ordering::SeqCst);
    forger.token_status.store(503, Ordering::SeqCst);
    let held = forger.token_gate.lock().await;
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let (browser, app) = (Arc::clone(&browser), Arc::clone(&app));
            tokio::spawn(async move { api_get(&browser, &app, "/me").await.status })
        })
        .collect();
    token_requests_reach(&forger, before + 1).await;
    // Every request has loaded its session, and the refresh its own (eleven loads), however
    // slow the machine. From its load on, a request goes to the refresh without waiting on
    // anything but the CPU; a moment more lets the last one get there.
    for _ in 0..2_000 {
        if store.loaded.load(Ordering::SeqCst) >= loaded_before + 11 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        store.loaded.load(Ordering::SeqCst) - loaded_before,
        11,
        "ten requests and the refresh loaded the session within 20 s"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    for request in requests {
        assert_eq!(request.await.unwrap(), 503);
    }
    assert_eq!(
        forger.token_requests.load(Ordering::SeqCst) - before,
        1,
        "one call to the provider, not one per waiting request"
    );

    // Back up: the next request refreshes and goes on.
    forger.token_status.store(200, Ordering::SeqCst);
    *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt2", "expires_in": 300});
    assert_eq!(api_get(&browser, &app, "/me").await.status, 200);
}
