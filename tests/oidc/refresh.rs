//! Refreshes through the hand-made provider of `forged.rs`: what a refresh keeps (scopes
//! when the answer has none, the claims userinfo added at login), and the ID tokens that
//! end a session when a refresh brings them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use jsonwebtoken::EncodingKey;
use serde_json::json;

use crate::endings::{api_get, forged_login};
use crate::forged::{CLIENT, RSA_OTHER_KEY, forger, key, now, rs256, sign};
use crate::harness::{Browser, start_app_with_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_keep_the_scopes_and_the_userinfo_claims() {
    let forger = forger().await;
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        // Every request refreshes.
        b.userinfo().refresh_before(Duration::from_secs(3600))
    })
    .await;
    *forger.userinfo.lock().unwrap() =
        json!({"sub": "alice", "department": "sales", "roles": ["auditor"]});
    // The token endpoint's answers carry no `scope` (RFC 6749 5.1: as requested).
    *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt1"});
    let browser = Browser::new();
    forged_login(&forger, &app, &browser, json!({})).await;

    let before = forger.token_requests.load(Ordering::SeqCst);
    let claims = json!({
        "iss": forger.issuer, "aud": CLIENT, "sub": "alice", "exp": now() + 300, "iat": now(),
    });
    *forger.next_id_token.lock().unwrap() = Some(sign(&rs256(None), &claims, &key()));
    *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt2"});
    let me = api_get(&browser, &app, "/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        forger.token_requests.load(Ordering::SeqCst) - before,
        1,
        "refreshed with a new ID token"
    );
    let me = me.json();
    // (sorted by the `Principal`)
    assert_eq!(
        me["scopes"],
        json!(["email", "openid", "profile", "roles"]),
        "{me}"
    );
    assert_eq!(me["claims"]["department"], "sales", "{me}");
    assert_eq!(me["roles"], json!(["auditor"]), "{me}");

    // A second refresh, without an ID token this time: still the same.
    *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt3"});
    let me = api_get(&browser, &app, "/me").await.json();
    assert_eq!(
        me["scopes"],
        json!(["email", "openid", "profile", "roles"]),
        "{me}"
    );
    assert_eq!(me["claims"]["department"], "sales", "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_with_a_bad_id_token_ends_the_session() {
    let forger = forger().await;
    let app = start_app_with_client(&forger.issuer, CLIENT, "secret", |b| {
        b.refresh_before(Duration::from_secs(3600))
    })
    .await;
    let other_key = EncodingKey::from_rsa_pem(RSA_OTHER_KEY).unwrap();
    let claims = json!({
        "iss": forger.issuer, "aud": CLIENT, "sub": "alice", "exp": now() + 300, "iat": now(),
    });
    let mut other_subject = claims.clone();
    other_subject["sub"] = json!("bob");
    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 600);
    let mut other_audience = claims.clone();
    other_audience["aud"] = json!("someone-else");
    for (name, id_token) in [
        (
            "another subject",
            sign(&rs256(None), &other_subject, &key()),
        ),
        ("another key", sign(&rs256(None), &claims, &other_key)),
        ("expired", sign(&rs256(None), &expired, &key())),
        (
            "another audience",
            sign(&rs256(None), &other_audience, &key()),
        ),
    ] {
        *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt1"});
        let browser = Browser::new();
        let session = forged_login(&forger, &app, &browser, json!({})).await;
        *forger.next_id_token.lock().unwrap() = Some(id_token);
        *forger.token_extras.lock().unwrap() = json!({"refresh_token": "rt2"});
        let page = api_get(&browser, &app, "/me").await;
        assert_eq!(page.status, 401, "{name}: {}", page.body);
        assert!(
            page.set_cookies()
                .iter()
                .any(|cookie| cookie.starts_with("portcullis-session=;")),
            "{name}: {:?}",
            page.set_cookies()
        );
        let old = Browser::new();
        old.set_cookie(&app.base, "portcullis-session", &session);
        assert_eq!(api_get(&old, &app, "/me").await.status, 401, "{name}");
    }
}
