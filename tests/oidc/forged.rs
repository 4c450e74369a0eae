//! Forged ID and logout tokens, through a hand-made provider: discovery, a JWKS with the
//! fixture RSA key, and a token endpoint that answers with whatever ID token the test
//! signed. Only for tokens the real provider would never issue; interop is `flow.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{Browser, start_app_with_client};

pub const RSA_KEY: &[u8] = include_bytes!("../fixtures/rsa2048.key");
pub const RSA_OTHER_KEY: &[u8] = include_bytes!("../fixtures/rsa2048_other.key");
pub const ACCESS_TOKEN: &str = "forged-access-token";
pub const CLIENT: &str = "forged-client";

/// The hand-made provider: its issuer, and the ID token its token endpoint returns next.
pub struct Forger {
    pub issuer: String,
    pub next_id_token: Arc<Mutex<Option<String>>>,
    pub userinfo: Arc<Mutex<Value>>,
    /// Extra members of the token endpoint's next answers (`refresh_token`, `scope`, …).
    pub token_extras: Arc<Mutex<Value>>,
    /// Held by a test, the token endpoint waits for it before answering.
    pub token_gate: Arc<tokio::sync::Mutex<()>>,
    /// How many token requests arrived (counted before the gate).
    pub token_requests: Arc<std::sync::atomic::AtomicUsize>,
    /// The JWKS endpoint's status (200 unless a test says otherwise).
    pub jwks_status: Arc<std::sync::atomic::AtomicU16>,
    /// The token endpoint's status (200 unless a test says otherwise).
    pub token_status: Arc<std::sync::atomic::AtomicU16>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Forger {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_KEY).expect("RSA fixture")
}

pub async fn forger() -> Forger {
    portcullis::bearer::select_crypto_backend();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let mut jwk = Jwk::from_encoding_key(&key(), Algorithm::RS256).expect("JWK");
    jwk.common.key_id = Some("k1".into());
    let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap();
    let discovery = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
    })
    .to_string();
    let jwks_status = Arc::new(std::sync::atomic::AtomicU16::new(200));
    let jwks_code = Arc::clone(&jwks_status);
    let userinfo: Arc<Mutex<Value>> = Arc::new(Mutex::new(json!({})));
    let answer = Arc::clone(&userinfo);
    let next_id_token: Arc<Mutex<Option<String>>> = Arc::default();
    let next = Arc::clone(&next_id_token);
    let token_extras: Arc<Mutex<Value>> = Arc::new(Mutex::new(json!({})));
    let extras = Arc::clone(&token_extras);
    let token_gate: Arc<tokio::sync::Mutex<()>> = Arc::default();
    let gate = Arc::clone(&token_gate);
    let token_requests: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
    let requests = Arc::clone(&token_requests);
    let token_status = Arc::new(std::sync::atomic::AtomicU16::new(200));
    let status = Arc::clone(&token_status);
    let json = |body: String| ([("content-type", "application/json")], body);
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { json(discovery) }),
        )
        .route(
            "/jwks",
            get(move || async move {
                let code = jwks_code.load(std::sync::atomic::Ordering::SeqCst);
                (
                    axum::http::StatusCode::from_u16(code).unwrap(),
                    [("content-type", "application/json")],
                    jwks,
                )
            }),
        )
        .route(
            "/userinfo",
            get(move |headers: axum::http::HeaderMap| async move {
                // Only with the access token issued at the token endpoint.
                let bearer = format!("Bearer {ACCESS_TOKEN}");
                assert_eq!(headers["authorization"], bearer.as_str());
                json(answer.lock().unwrap().to_string())
            }),
        )
        .route(
            "/token",
            post(move || async move {
                requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(gate.lock().await);
                let code = status.load(std::sync::atomic::Ordering::SeqCst);
                if code != 200 {
                    return (
                        axum::http::StatusCode::from_u16(code).unwrap(),
                        [("content-type", "application/json")],
                        json!({"error": "temporarily_unavailable"}).to_string(),
                    );
                }
                let id_token = next.lock().unwrap().take();
                let mut answer = json!({
                    "access_token": ACCESS_TOKEN,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": id_token,
                });
                if let Value::Object(extras) = &*extras.lock().unwrap() {
                    for (name, value) in extras {
                        answer[name] = value.clone();
                    }
                }
                (
                    axum::http::StatusCode::OK,
                    [("content-type", "application/json")],
                    answer.to_string(),
                )
            }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Forger {
        issuer,
        next_id_token,
        userinfo,
        token_extras,
        token_gate,
        token_requests,
        token_status,
        jwks_status,
        server,
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn half_hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(value.as_bytes())[..16])
}

pub fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("sign")
}

pub fn rs256(typ: Option<&str>) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    header.typ = typ.map(str::to_owned);
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_id_tokens_are_refused_at_the_callback() {
    let forger = forger().await;
    let causes: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&causes);
    let observer = move |decision: &portcullis::observe::Decision<'_>| {
        if decision.outcome.name() == "refused" {
            record
                .lock()
                .unwrap()
                .push(decision.cause.unwrap_or("").to_owned());
        }
    };
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        b.max_age(Duration::from_secs(600))
            .audience("partner-app")
            .observer(Arc::new(observer))
    })
    .await;
    let other_key = EncodingKey::from_rsa_pem(RSA_OTHER_KEY).unwrap();

    type Forge = Box<dyn Fn(&mut Value, &mut Header, &mut EncodingKey)>;
    let cases: Vec<(&str, u16, &str, Forge)> = vec![
        ("genuine", 302, "", Box::new(|_, _, _| {})),
        (
            "signed by another key",
            400,
            "bad_signature",
            Box::new(move |_, _, key| *key = other_key.clone()),
        ),
        (
            "expired",
            400,
            "token_expired",
            // Past `exp` and the leeway, with an `iat` that passes on its own.
            Box::new(|c, _, _| {
                c["exp"] = json!(now() - 120);
                c["iat"] = json!(now() - 400);
            }),
        ),
        (
            "other issuer",
            400,
            "iss_mismatch",
            Box::new(|c, _, _| c["iss"] = json!("https://evil.example")),
        ),
        (
            "nonce mismatch",
            400,
            "nonce_mismatch",
            Box::new(|c, _, _| c["nonce"] = json!("not-the-nonce")),
        ),
        (
            "no nonce",
            400,
            "missing_nonce",
            Box::new(|c, _, _| {
                c.as_object_mut().unwrap().remove("nonce");
            }),
        ),
        (
            "azp mismatch",
            400,
            "azp_mismatch",
            Box::new(|c, _, _| {
                c["aud"] = json!([CLIENT, "partner-app"]);
                c["azp"] = json!("partner-app");
            }),
        ),
        (
            "several audiences, no azp",
            400,
            "missing_azp",
            Box::new(|c, _, _| c["aud"] = json!([CLIENT, "partner-app"])),
        ),
        (
            "untrusted extra audience",
            400,
            "untrusted_audience",
            Box::new(|c, _, _| {
                c["aud"] = json!([CLIENT, "stranger"]);
                c["azp"] = json!(CLIENT);
            }),
        ),
        (
            "not for us",
            400,
            "aud_mismatch",
            Box::new(|c, _, _| c["aud"] = json!("partner-app")),
        ),
        (
            "at_hash mismatch",
            400,
            "at_hash_mismatch",
            Box::new(|c, _, _| c["at_hash"] = json!(half_hash("other"))),
        ),
        (
            "iat in the future",
            400,
            "iat_future",
            Box::new(|c, _, _| c["iat"] = json!(now() + 3600)),
        ),
        (
            "iat too old",
            400,
            "too_old",
            Box::new(|c, _, _| c["iat"] = json!(now() - 3 * 3600)),
        ),
        (
            "no sub",
            400,
            "missing_sub",
            Box::new(|c, _, _| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        (
            "auth_time too old for max_age",
            400,
            "auth_time_too_old",
            Box::new(|c, _, _| c["auth_time"] = json!(now() - 3600)),
        ),
        (
            "no auth_time with max_age",
            400,
            "missing_auth_time",
            Box::new(|c, _, _| {
                c.as_object_mut().unwrap().remove("auth_time");
            }),
        ),
        (
            "an access token",
            400,
            "typ_mismatch",
            Box::new(|_, h, _| h.typ = Some("at+jwt".into())),
        ),
        (
            "a logout token",
            400,
            "typ_mismatch",
            Box::new(|_, h, _| h.typ = Some("logout+jwt".into())),
        ),
    ];
    for (name, status, cause, forge) in cases {
        let browser = Browser::new();
        let start = browser.get(&app.url("/auth/login?return_to=/me")).await;
        assert_eq!(start.status, 302, "{name}: {}", start.body);
        let location = start.location().unwrap();
        assert!(
            location
                .as_str()
                .starts_with(&format!("{}/authorize?", forger.issuer))
        );
        let param = |key: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        assert_eq!(param("code_challenge_method"), "S256");
        assert_eq!(param("max_age"), "600");
        let mut claims = json!({
            "iss": forger.issuer,
            "aud": CLIENT,
            "sub": "mallory",
            "exp": now() + 300,
            "iat": now(),
            "auth_time": now() - 10,
            "nonce": param("nonce"),
            "at_hash": half_hash(ACCESS_TOKEN),
            "c_hash": half_hash("the-code"),
        });
        let mut header = rs256(None);
        let mut key = key();
        forge(&mut claims, &mut header, &mut key);
        *forger.next_id_token.lock().unwrap() = Some(sign(&header, &claims, &key));
        let callback = app.url(&format!(
            "/auth/callback?code=the-code&state={}",
            param("state")
        ));
        causes.lock().unwrap().clear();
        let page = browser.get(&callback).await;
        assert_eq!(page.status, status, "{name}: {}", page.body);
        let refused = causes.lock().unwrap().clone();
        if cause.is_empty() {
            assert!(refused.is_empty(), "{name}: {refused:?}");
        } else {
            assert_eq!(refused, [cause], "{name}: refused for that reason only");
        }
        if status == 302 {
            assert_eq!(page.location_header(), "/me");
        } else {
            assert!(
                page.body.contains("could not be verified"),
                "{name}: {}",
                page.body
            );
            assert!(
                browser.cookie(&app.base, "portcullis-session").is_none(),
                "{name}"
            );
        }
    }

    // A `c_hash` for another code.
    let browser = Browser::new();
    let start = browser.get(&app.url("/auth/login")).await;
    let location = start.location().unwrap();
    let param = |key: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == key)
            .unwrap()
            .1
            .into_owned()
    };
    let claims = json!({
        "iss": forger.issuer, "aud": CLIENT, "sub": "mallory", "exp": now() + 300,
        "iat": now(), "auth_time": now(), "nonce": param("nonce"), "c_hash": half_hash("another-code"),
    });
    *forger.next_id_token.lock().unwrap() = Some(sign(&rs256(Some("JWT")), &claims, &key()));
    let page = browser
        .get(&app.url(&format!(
            "/auth/callback?code=the-code&state={}",
            param("state")
        )))
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_logout_tokens_are_refused_and_replays_too() {
    let forger = forger().await;
    let causes: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&causes);
    let observer = move |decision: &portcullis::observe::Decision<'_>| {
        if decision.outcome.name() == "refused" {
            record
                .lock()
                .unwrap()
                .push(decision.cause.unwrap_or("").to_owned());
        }
    };
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        b.observer(Arc::new(observer))
    })
    .await;
    let post = |token: String| {
        let url = app.url("/auth/backchannel-logout");
        async move {
            crate::harness::http_client()
                .post(url)
                .form(&[("logout_token", token)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let logout = |jti: &str| {
        json!({
            "iss": forger.issuer, "aud": CLIENT, "iat": now(), "exp": now() + 120, "jti": jti,
            "sid": "some-session",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        })
    };
    let typ = Some("logout+jwt");
    assert_eq!(post(sign(&rs256(typ), &logout("j1"), &key())).await, 200);
    assert_eq!(
        post(sign(&rs256(typ), &logout("j1"), &key())).await,
        400,
        "replayed jti"
    );
    assert_eq!(
        post(sign(&rs256(None), &logout("j2"), &key())).await,
        200,
        "no typ"
    );

    let mut with_nonce = logout("j3");
    with_nonce["nonce"] = json!("n");
    let mut no_event = logout("j4");
    no_event["events"] = json!({"other": {}});
    let mut no_sid_or_sub = logout("j5");
    no_sid_or_sub.as_object_mut().unwrap().remove("sid");
    let mut no_jti = logout("j6");
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut other_aud = logout("j7");
    other_aud["aud"] = json!("someone-else");
    let mut expired = logout("j8");
    // Past `exp` and the leeway, with an `iat` that passes on its own.
    expired["exp"] = json!(now() - 120);
    expired["iat"] = json!(now() - 400);
    let other_key = EncodingKey::from_rsa_pem(RSA_OTHER_KEY).unwrap();
    for (name, cause, token) in [
        (
            "nonce",
            "nonce_present",
            sign(&rs256(typ), &with_nonce, &key()),
        ),
        (
            "no event",
            "missing_event",
            sign(&rs256(typ), &no_event, &key()),
        ),
        (
            "no sid or sub",
            "no_sid_or_sub",
            sign(&rs256(typ), &no_sid_or_sub, &key()),
        ),
        ("no jti", "missing_jti", sign(&rs256(typ), &no_jti, &key())),
        (
            "other audience",
            "aud_mismatch",
            sign(&rs256(typ), &other_aud, &key()),
        ),
        (
            "expired",
            "token_expired",
            sign(&rs256(typ), &expired, &key()),
        ),
        (
            "ID-token typ",
            "typ_mismatch",
            sign(&rs256(Some("JWT")), &logout("j9"), &key()),
        ),
        (
            "another key",
            "bad_signature",
            sign(&rs256(typ), &logout("j10"), &other_key),
        ),
    ] {
        causes.lock().unwrap().clear();
        assert_eq!(post(token).await, 400, "{name}");
        assert_eq!(
            *causes.lock().unwrap(),
            [cause],
            "{name}: for that reason only"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_host_cookies_by_default() {
    let forger = forger().await;
    let oidc = portcullis::oidc::Oidc::builder(&forger.issuer)
        .client_id(CLIENT)
        .redirect_uri("https://orders.example/auth/callback")
        .build()
        .unwrap();
    assert_eq!(oidc.session_cookie_name(), "__Host-portcullis-session");
    let app = Router::new()
        .route("/", get(|| async { "home" }))
        .layer(oidc.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let page = Browser::new().get(&format!("{base}/auth/login")).await;
    assert_eq!(page.status, 302, "{}", page.body);
    let cookies = page.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    assert!(
        cookie.starts_with("__Host-portcullis-session-login-"),
        "{cookie}"
    );
    for attribute in [
        "; Path=/",
        "; Max-Age=600",
        "; HttpOnly",
        "; Secure",
        "; SameSite=Lax",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(page.headers["cache-control"], "no-store");
    let location = page.location().unwrap();
    let redirect_uri = location
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(redirect_uri, "https://orders.example/auth/callback");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_fills_in_claims_and_must_name_the_same_user() {
    let forger = forger().await;
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| b.userinfo()).await;
    for (userinfo, status) in [
        (
            json!({"sub": "mallory", "department": "sales", "roles": ["auditor"], "iss": "x"}),
            302,
        ),
        (json!({"sub": "someone-else", "department": "sales"}), 400),
        (json!({"department": "sales"}), 400),
    ] {
        *forger.userinfo.lock().unwrap() = userinfo.clone();
        let browser = Browser::new();
        let start = browser.get(&app.url("/auth/login?return_to=/me")).await;
        let location = start.location().unwrap();
        let param = |key: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == key)
                .unwrap()
                .1
                .into_owned()
        };
        let claims = json!({
            "iss": forger.issuer, "aud": CLIENT, "sub": "mallory", "exp": now() + 300,
            "iat": now(), "nonce": param("nonce"), "email": "m@example.test",
        });
        *forger.next_id_token.lock().unwrap() = Some(sign(&rs256(None), &claims, &key()));
        let page = browser
            .get(&app.url(&format!("/auth/callback?code=c&state={}", param("state"))))
            .await;
        assert_eq!(page.status, status, "{userinfo}: {}", page.body);
        if status == 302 {
            let me = browser
                .request(
                    reqwest::Method::GET,
                    &app.url("/me"),
                    &[("accept", "application/json")],
                    None,
                )
                .await
                .json();
            assert_eq!(me["claims"]["department"], "sales", "{me}");
            // The ID token's claims win.
            assert_eq!(me["claims"]["iss"], forger.issuer.as_str(), "{me}");
            assert_eq!(me["roles"], json!(["auditor"]), "{me}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_decisions_reach_the_observer() {
    use portcullis::observe::Decision;

    type Seen = Vec<(String, Option<&'static str>, Option<String>, u16)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = Arc::clone(&seen);
    let observer = move |decision: &Decision<'_>| {
        record.lock().unwrap().push((
            decision.outcome.name().to_owned(),
            decision.cause,
            decision.principal.map(|p| p.subject().to_owned()),
            decision.status.map_or(0, |s| s.as_u16()),
        ));
    };
    let forger = forger().await;
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        b.observer(Arc::new(observer))
    })
    .await;
    for nonce_ok in [true, false] {
        let browser = Browser::new();
        let start = browser.get(&app.url("/auth/login")).await;
        let location = start.location().unwrap();
        let param = |key: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == key)
                .unwrap()
                .1
                .into_owned()
        };
        let nonce = if nonce_ok {
            param("nonce")
        } else {
            "other".into()
        };
        let claims = json!({
            "iss": forger.issuer, "aud": CLIENT, "sub": "mallory", "exp": now() + 300,
            "iat": now(), "nonce": nonce,
        });
        *forger.next_id_token.lock().unwrap() = Some(sign(&rs256(None), &claims, &key()));
        browser
            .get(&app.url(&format!("/auth/callback?code=c&state={}", param("state"))))
            .await;
    }
    let seen = seen.lock().unwrap().clone();
    let expected: Seen = vec![
        ("answered".into(), Some("login_started"), None, 302),
        (
            "answered".into(),
            Some("login_completed"),
            Some("mallory".into()),
            302,
        ),
        ("answered".into(), Some("login_started"), None, 302),
        ("refused".into(), Some("nonce_mismatch"), None, 400),
    ];
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_stays_out_of_the_service() {
    let forger = forger().await;
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| b).await;
    let browser = Browser::new();
    let session = crate::endings::forged_login(&forger, &app, &browser, json!({})).await;
    browser.set_cookie(&app.base, "theme", "dark");
    // A login started and not finished leaves a login cookie in the browser too.
    let started = browser.get(&app.url("/auth/login")).await;
    assert_eq!(started.status, 302);
    let page = browser.get(&app.url("/cookies")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains(&session), "{}", page.body);
    assert!(!page.body.contains("portcullis-session"), "{}", page.body);
    assert!(page.body.contains("theme=dark"), "{}", page.body);
    // The access token is still there for the handler that asks for it.
    let page = browser.get(&app.url("/token")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body, ACCESS_TOKEN.len().to_string());
}

/// Starts a login at `app` and comes back to its callback with an ID token of `claims`
/// (merged over genuine ones, `nonce` included); the callback's answer.
async fn callback_with(
    forger: &Forger,
    app: &crate::harness::App,
    browser: &Browser,
    claims: Value,
) -> crate::harness::Page {
    let start = browser.get(&app.url("/auth/login")).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let location = start.location().unwrap();
    let param = |key: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let mut genuine = json!({
        "iss": forger.issuer, "aud": CLIENT, "sub": "mallory", "exp": now() + 300,
        "iat": now(), "nonce": param("nonce"),
    });
    if let Value::Object(claims) = claims {
        for (name, value) in claims {
            genuine[name] = value;
        }
    }
    *forger.next_id_token.lock().unwrap() = Some(sign(&rs256(None), &genuine, &key()));
    browser
        .get(&app.url(&format!("/auth/callback?code=c&state={}", param("state"))))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acr_values_require_one_of_them_in_the_id_token() {
    let forger = forger().await;
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        b.acr_values(["gold", "silver"])
    })
    .await;
    let start = Browser::new().get(&app.url("/auth/login")).await;
    let location = start.location().unwrap();
    assert!(
        location
            .query_pairs()
            .any(|(k, v)| k == "acr_values" && v == "gold silver"),
        "{location}"
    );
    for (acr, status) in [
        (json!("silver"), 302),
        (json!("bronze"), 400),
        (Value::Null, 400),
        (json!(["gold"]), 400),
    ] {
        let claims = if acr.is_null() {
            json!({})
        } else {
            json!({ "acr": acr })
        };
        let page = callback_with(&forger, &app, &Browser::new(), claims).await;
        assert_eq!(page.status, status, "acr {acr}: {}", page.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_usable_keys_at_the_callback_is_a_503_page() {
    let forger = forger().await;
    forger
        .jwks_status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| b).await;
    let page = callback_with(&forger, &app, &Browser::new(), json!({})).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("try again"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_logins_leave_at_most_four_login_cookies() {
    let forger = forger().await;
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| b).await;
    let browser = Browser::new();
    let login_cookies = || {
        browser
            .cookie_names(&app.base)
            .into_iter()
            .filter(|name| name.starts_with("portcullis-session-login-"))
            .count()
    };
    for started in 1..=8 {
        assert_eq!(browser.get(&app.url("/auth/login")).await.status, 302);
        assert_eq!(login_cookies(), started.min(4), "after {started} logins");
    }
    // The newest login still completes.
    let page = callback_with(&forger, &app, &browser, json!({})).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(browser.cookie(&app.base, "portcullis-session").is_some());
}

/// Forged ID tokens at the callback are failed logins: the shield in front counts them
/// against the source and blocks it, as it does for bad API keys.
#[cfg(feature = "shield")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_logins_get_the_source_blocked() {
    use portcullis::shield::{BruteForce, ShieldLayer};

    let forger = forger().await;
    let shield = ShieldLayer::builder()
        .brute_force(
            BruteForce::new()
                .threshold(3, Duration::from_secs(600))
                .block_for(Duration::from_secs(600), Duration::from_secs(600)),
        )
        .build()
        .expect("shield");
    let app =
        crate::harness::start_app_behind_shield(&forger.issuer, CLIENT, "secret", shield).await;
    let browser = Browser::new();
    // A genuine login is no failure.
    let genuine = callback_with(&forger, &app, &browser, json!({})).await;
    assert_eq!(genuine.status, 302, "{}", genuine.body);
    for _ in 0..3 {
        let forged = callback_with(
            &forger,
            &app,
            &browser,
            json!({"iss": "https://evil.example"}),
        )
        .await;
        assert_eq!(forged.status, 400, "{}", forged.body);
    }
    // The source is blocked now: even the home page is refused, with when to come back.
    let blocked = browser.get(&app.url("/")).await;
    assert_eq!(blocked.status, 429, "{}", blocked.body);
    assert_eq!(blocked.json()["code"], "blocked");
}
