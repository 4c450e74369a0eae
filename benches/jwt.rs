//! Bearer-token verification against the raw-library floor: `jsonwebtoken::decode` into a
//! JSON map, with a pre-parsed `DecodingKey` and an equivalent `Validation` (alg, `aud`,
//! `iss`, required `exp`/`iss`/`aud`, 60 s leeway), in the same run.
//!
//! `ours/uncached` is the full path minus HTTP: size check, strict parse, issuer and key
//! selection, signature, claims, and the `Principal`. `ours/cache_hit` is a repeated token.
//!
//! `introspection/cache_hit` is a repeated opaque token whose introspection result is
//! cached (the endpoint is a stand-in that answers at once; it is called once, before the
//! measurement).

#![allow(missing_docs, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use portcullis::Authenticate;
use portcullis::bearer::{
    BearerAuthenticator, Introspection, IssuerRules, KeySet, VerificationKey,
};
use portcullis::remote::{HttpClient, HttpFuture, HttpResponse};
use serde_json::{Map, Value, json};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "orders-api";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench-only";

struct Case {
    name: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    key: VerificationKey,
}

fn cases() -> Vec<Case> {
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    };
    let (rsa_key, rsa_pub) = (fixture("rsa2048.key"), fixture("rsa2048.pub"));
    let (ec_key, ec_pub) = (fixture("p256.key"), fixture("p256.pub"));
    let (ed_key, ed_pub) = (fixture("ed25519.key"), fixture("ed25519.pub"));
    vec![
        Case {
            name: "RS256",
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(&rsa_key).expect("rsa"),
            decoding: DecodingKey::from_rsa_pem(&rsa_pub).expect("rsa"),
            key: VerificationKey::from_rsa_pem(&rsa_pub).expect("rsa"),
        },
        Case {
            name: "ES256",
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(&ec_key).expect("ec"),
            decoding: DecodingKey::from_ec_pem(&ec_pub).expect("ec"),
            key: VerificationKey::from_ec_pem(&ec_pub).expect("ec"),
        },
        Case {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(&ed_key).expect("ed"),
            decoding: DecodingKey::from_ed_pem(&ed_pub).expect("ed"),
            key: VerificationKey::from_ed_pem(&ed_pub).expect("ed"),
        },
        Case {
            name: "HS256",
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(SECRET),
            decoding: DecodingKey::from_secret(SECRET),
            key: VerificationKey::from_hmac_secret(SECRET).expect("hmac"),
        },
    ]
}

/// A realistic access token: RFC 9068 claims, scopes and Keycloak-style roles.
fn token(case: &Case) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": "f3a1c0de-5b7e-4f55-9a3c-2d1e0b9c8a77",
        "client_id": "orders-web",
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "jti": "0c9f6a2e-9d84-4b0e-8f6a-3e2d1c0b9a88",
        "scope": "openid profile orders:read orders:write",
        "realm_access": { "roles": ["offline_access", "clerk", "viewer"] },
    });
    let mut header = Header::new(case.alg);
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, &claims, &case.encoding).expect("encode")
}

fn authenticator(case: &Case, cached: bool) -> BearerAuthenticator {
    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(KeySet::new([case.key.clone()]).expect("set"))
        .roles_claim("realm_access.roles")
        .build()
        .expect("rules");
    let builder = BearerAuthenticator::builder().issuer(rules);
    let builder = if cached { builder } else { builder.no_cache() };
    builder.build().expect("authenticator")
}

fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = 60;
    validation
}

/// The floor of an uncached verification: the signature checked with the public key
/// parsed once (aws-lc-rs `ParsedPublicKey`), and the claims parsed into a map. `None` for
/// HMAC.
fn parsed_key_floor(case: &Case) -> Option<impl Fn(&str) -> bool + use<>> {
    use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let algorithm: &'static dyn VerificationAlgorithm = match case.alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        _ => return None,
    };
    let public = case.decoding.try_get_as_bytes().ok()?;
    let key = ParsedPublicKey::new(algorithm, public).ok()?;
    Some(move |token: &str| {
        let Some((signing_input, signature)) = token.rsplit_once('.') else {
            return false;
        };
        let Some((_, payload)) = signing_input.split_once('.') else {
            return false;
        };
        let (Ok(signature), Ok(payload)) = (
            URL_SAFE_NO_PAD.decode(signature),
            URL_SAFE_NO_PAD.decode(payload),
        ) else {
            return false;
        };
        key.verify_sig(signing_input.as_bytes(), &signature).is_ok()
            && serde_json::from_slice::<Map<String, Value>>(&payload).is_ok()
    })
}

fn verify(c: &mut Criterion) {
    for case in cases() {
        let token = token(&case);
        let uncached = authenticator(&case, false);
        let cached = authenticator(&case, true);
        let validation = validation(case.alg);
        assert!(uncached.verify(&token).is_ok(), "{}", case.name);
        assert!(
            jsonwebtoken::decode::<Map<String, Value>>(&token, &case.decoding, &validation).is_ok()
        );

        let mut group = c.benchmark_group(case.name);
        if let Some(floor) = parsed_key_floor(&case) {
            assert!(floor(&token), "{}", case.name);
            group.bench_function("floor_parsed_key", |b| {
                b.iter(|| floor(black_box(&token)));
            });
        }
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Map<String, Value>>(
                    black_box(&token),
                    &case.decoding,
                    &validation,
                )
            });
        });
        group.bench_function("ours_uncached", |b| {
            b.iter(|| uncached.verify(black_box(&token)));
        });
        if case.alg == Algorithm::ES256 {
            let _ = cached.verify(&token);
            group.bench_function("ours_cache_hit", |b| {
                b.iter(|| cached.verify(black_box(&token)));
            });
        }
        group.finish();
    }
}

/// An introspection endpoint that answers every request with the same active token.
struct ActiveEndpoint;

impl ActiveEndpoint {
    fn answer(&self) -> HttpFuture<'_> {
        Box::pin(async {
            Ok(HttpResponse::new(
                200,
                Some("application/json"),
                Bytes::from_static(
                    br#"{"active":true,"sub":"svc","aud":"api","scope":"orders:read orders:write","exp":4102444800}"#,
                ),
            ))
        })
    }
}

impl HttpClient for ActiveEndpoint {
    fn get(&self, _: &str, _: &[&str]) -> HttpFuture<'_> {
        self.answer()
    }

    fn post_form(
        &self,
        _: &str,
        _: &[(&str, &str)],
        _: Option<(&str, &str)>,
        _: &[&str],
    ) -> HttpFuture<'_> {
        self.answer()
    }
}

fn introspection(c: &mut Criterion) {
    let introspection = Introspection::builder("https://idp.example/introspect", "api", "secret")
        .audience("api")
        .http_client(std::sync::Arc::new(ActiveEndpoint))
        .build()
        .expect("introspection");
    let authenticator = BearerAuthenticator::builder()
        .introspection(introspection)
        .build()
        .expect("authenticator");
    let token = "opaque-token-0123456789abcdef";
    // The first request introspects (the stand-in endpoint answers at once) and caches.
    let (parts, ()) = http::Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request")
        .into_parts();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(authenticator.authenticate(&parts));
    assert!(
        authenticator.verify(token).is_ok(),
        "cached after one introspection"
    );

    let mut group = c.benchmark_group("introspection");
    group.bench_function("cache_hit", |b| {
        b.iter(|| authenticator.verify(black_box(token)));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = verify, introspection
}
criterion_main!(benches);
