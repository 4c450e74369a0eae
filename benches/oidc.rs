//! OpenID Connect beside its floors, in the same run:
//!
//! - `session/bare` is a service answering 200; `session/cookie` is the same service behind
//!   an `AuthenticationLayer` running `Oidc` with the memory store: cookie parse, id digest,
//!   store lookup (idle timeout restarted), absolute-timeout check, the `Principal`.
//!   Target: at most 2 µs more than `bare`.
//! - `id_token/floor` is `jsonwebtoken::decode` (RS256, `aud`, `iss`, `exp`) into a JSON map
//!   with a pre-parsed key; `id_token/ours` is `Oidc::verify_id_token`: strict parse, the
//!   issuer rules (algorithm, key, signature, `exp`/`iat`/`iss`/`aud` with strict types),
//!   then `azp`, `nonce`, the audiences and the `Principal` (keys from the warm JWKS cache).

#![allow(missing_docs, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use portcullis::AuthenticationLayer;
use portcullis::oidc::{Oidc, Session, SessionId};
use portcullis::remote::{HttpClient, HttpFuture, HttpResponse};
use serde_json::{Map, Value, json};
use tower::{Layer, ServiceExt, service_fn};

const ISSUER: &str = "https://idp.example";
const CLIENT: &str = "orders-web";
const COOKIE: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde";

/// Discovery and JWKS from memory.
struct Provider {
    jwks: String,
}

impl HttpClient for Provider {
    fn get(&self, url: &str, _accept: &[&str]) -> HttpFuture<'_> {
        let body = if url.ends_with("/.well-known/openid-configuration") {
            json!({
                "issuer": ISSUER,
                "jwks_uri": format!("{ISSUER}/jwks"),
                "authorization_endpoint": format!("{ISSUER}/auth"),
                "token_endpoint": format!("{ISSUER}/token"),
            })
            .to_string()
        } else {
            self.jwks.clone()
        };
        Box::pin(async move { Ok(HttpResponse::new(200, Some("application/json"), body)) })
    }

    fn post_form(
        &self,
        _url: &str,
        _form: &[(&str, &str)],
        _basic: Option<(&str, &str)>,
        _accept: &[&str],
    ) -> HttpFuture<'_> {
        Box::pin(async { Ok(HttpResponse::new(404, None, "")) })
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn bench(c: &mut Criterion) {
    portcullis::bearer::select_crypto_backend();
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    };
    let encoding = EncodingKey::from_rsa_pem(&fixture("rsa2048.key")).expect("rsa");
    let decoding = DecodingKey::from_rsa_pem(&fixture("rsa2048.pub")).expect("rsa");
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some("k1".into());
    let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("jwks");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let oidc = runtime.block_on(async {
        let oidc = Oidc::builder(ISSUER)
            .client_id(CLIENT)
            .redirect_uri("https://orders.example/auth/callback")
            .http_client(Arc::new(Provider { jwks }))
            .build()
            .expect("oidc");
        oidc.jwks().refresh_now().await.expect("keys");
        oidc
    });

    // A request authenticated by a session cookie, beside the bare service.
    let session: Session = serde_json::from_value(json!({
        "subject": "alice", "issuer": ISSUER, "sid": "s1",
        "claims": {"sub": "alice", "email": "alice@example.test"},
        "roles": ["viewer"], "scopes": ["openid"],
        "id_token": "x", "access_token": "a", "refresh_token": null,
        "access_token_expires_at": null,
        "created_at": now(), "expires_at": now() + 3600,
    }))
    .expect("session");
    runtime
        .block_on(oidc.session_store().save(
            &SessionId::of_cookie(COOKIE),
            Arc::new(session),
            Duration::from_secs(3600),
        ))
        .expect("save");
    let bare = service_fn(|_request: Request<String>| async {
        Ok::<_, std::convert::Infallible>(Response::new(String::new()))
    });
    let guarded = AuthenticationLayer::new(oidc.clone()).layer(bare);
    let request = || {
        Request::get("/orders")
            .header("cookie", format!("__Host-portcullis-session={COOKIE}"))
            .body(String::new())
            .expect("request")
    };
    assert_eq!(
        runtime
            .block_on(guarded.clone().oneshot(request()))
            .expect("response")
            .status(),
        200
    );
    let mut group = c.benchmark_group("session");
    group.bench_function("bare", |b| {
        b.iter(|| runtime.block_on(bare.oneshot(black_box(request()))))
    });
    group.bench_function("cookie", |b| {
        b.iter(|| runtime.block_on(guarded.clone().oneshot(black_box(request()))))
    });
    group.finish();

    // ID-token verification beside the JWT floor.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let claims = json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "alice", "exp": now() + 3600, "iat": now(),
        "nonce": "n-0S6_WzA2Mj", "email": "alice@example.test",
    });
    let token = jsonwebtoken::encode(&header, &claims, &encoding).expect("sign");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[CLIENT]);
    validation.set_issuer(&[ISSUER]);
    validation.leeway = 60;
    assert!(
        runtime
            .block_on(oidc.verify_id_token(&token, Some("n-0S6_WzA2Mj")))
            .is_ok()
    );
    let mut group = c.benchmark_group("id_token");
    group.bench_function("floor", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Map<String, Value>>(black_box(&token), &decoding, &validation)
                .expect("valid")
        })
    });
    group.bench_function("ours", |b| {
        b.iter(|| {
            runtime
                .block_on(oidc.verify_id_token(black_box(&token), Some("n-0S6_WzA2Mj")))
                .expect("valid")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
