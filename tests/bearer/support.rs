//! Keys, token minting and authenticators shared by the bearer tests.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use portcullis::bearer::{Algorithm, BearerAuthenticator, IssuerRules, KeySet, VerificationKey};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://issuer.example";
pub const ISSUER_B: &str = "https://other-issuer.example";
pub const AUDIENCE: &str = "orders-api";
pub const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";

pub const RSA_KEY: &[u8] = include_bytes!("../fixtures/rsa2048.key");
pub const RSA_PUB: &[u8] = include_bytes!("../fixtures/rsa2048.pub");
pub const RSA_OTHER_KEY: &[u8] = include_bytes!("../fixtures/rsa2048_other.key");
pub const RSA1024_PUB: &[u8] = include_bytes!("../fixtures/rsa1024.pub");
pub const RSA1024_JWK: &str = include_str!("../fixtures/rsa1024.jwk.json");
pub const P256_KEY: &[u8] = include_bytes!("../fixtures/p256.key");
pub const P256_PUB: &[u8] = include_bytes!("../fixtures/p256.pub");
pub const P384_KEY: &[u8] = include_bytes!("../fixtures/p384.key");
pub const P384_PUB: &[u8] = include_bytes!("../fixtures/p384.pub");
pub const ED_KEY: &[u8] = include_bytes!("../fixtures/ed25519.key");
pub const ED_PUB: &[u8] = include_bytes!("../fixtures/ed25519.pub");

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and the algorithm and kid it signs with.
#[derive(Clone)]
pub struct Signer {
    pub alg: Algorithm,
    pub kid: Option<&'static str>,
    pub key: EncodingKey,
}

pub fn rsa() -> Signer {
    Signer {
        alg: Algorithm::RS256,
        kid: Some("rsa-1"),
        key: EncodingKey::from_rsa_pem(RSA_KEY).expect("RSA fixture"),
    }
}

pub fn rsa_other() -> Signer {
    Signer {
        alg: Algorithm::RS256,
        kid: Some("rsa-1"),
        key: EncodingKey::from_rsa_pem(RSA_OTHER_KEY).expect("RSA fixture"),
    }
}

pub fn es256() -> Signer {
    Signer {
        alg: Algorithm::ES256,
        kid: Some("ec-1"),
        key: EncodingKey::from_ec_pem(P256_KEY).expect("P-256 fixture"),
    }
}

pub fn es384() -> Signer {
    Signer {
        alg: Algorithm::ES384,
        kid: Some("ec-384"),
        key: EncodingKey::from_ec_pem(P384_KEY).expect("P-384 fixture"),
    }
}

pub fn eddsa() -> Signer {
    Signer {
        alg: Algorithm::EdDSA,
        kid: Some("ed-1"),
        key: EncodingKey::from_ed_pem(ED_KEY).expect("Ed25519 fixture"),
    }
}

pub fn hs256() -> Signer {
    Signer {
        alg: Algorithm::HS256,
        kid: Some("hs-1"),
        key: EncodingKey::from_secret(HMAC_SECRET),
    }
}

/// The standard, valid claims for `ISSUER` and `AUDIENCE`.
pub fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": now + 300,
        "iat": now - 5,
        "nbf": now - 5,
        "scope": "orders:read orders:write",
    })
}

/// The standard header for `signer`: its alg and kid, `typ: at+jwt`.
pub fn header(signer: &Signer) -> Value {
    let mut header = json!({ "alg": alg_name(signer.alg), "typ": "at+jwt" });
    if let Some(kid) = signer.kid {
        header["kid"] = json!(kid);
    }
    header
}

pub fn alg_name(alg: Algorithm) -> String {
    serde_json::to_value(alg)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Assembles `header.payload` from raw JSON text and signs it with `signer`.
pub fn sign_raw(header: &str, payload: &str, signer: &Signer) -> String {
    portcullis::bearer::select_crypto_backend();
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &signer.key, signer.alg).expect("sign");
    format!("{input}.{signature}")
}

/// Signs `header` and `claims` (JSON values) with `signer`.
pub fn sign(header: &Value, claims: &Value, signer: &Signer) -> String {
    sign_raw(&header.to_string(), &claims.to_string(), signer)
}

/// A valid token from `signer` with the standard header and `claims`.
pub fn mint(signer: &Signer, claims: &Value) -> String {
    sign(&header(signer), claims, signer)
}

pub fn keys() -> KeySet {
    KeySet::new([
        VerificationKey::from_rsa_pem(RSA_PUB)
            .and_then(|k| k.with_kid("rsa-1"))
            .expect("rsa"),
        VerificationKey::from_ec_pem(P256_PUB)
            .and_then(|k| k.with_kid("ec-1"))
            .expect("p256"),
        VerificationKey::from_ec_pem(P384_PUB)
            .and_then(|k| k.with_kid("ec-384"))
            .expect("p384"),
        VerificationKey::from_ed_pem(ED_PUB)
            .and_then(|k| k.with_kid("ed-1"))
            .expect("ed"),
        VerificationKey::from_hmac_secret(HMAC_SECRET)
            .and_then(|k| k.with_kid("hs-1"))
            .expect("hmac"),
    ])
    .expect("key set")
}

/// Two issuers: `ISSUER` (every key type, roles from `realm_access.roles`) and `ISSUER_B`
/// (RSA only, roles from `resource_access.client.roles`).
pub fn authenticator() -> BearerAuthenticator {
    let main = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .audience("billing-api")
        .keys(keys())
        .roles_claim("realm_access.roles")
        .build()
        .expect("rules");
    let rsa_only = KeySet::new([VerificationKey::from_rsa_pem(RSA_PUB)
        .and_then(|k| k.with_kid("rsa-1"))
        .expect("rsa")])
    .expect("set");
    let other = IssuerRules::builder(ISSUER_B)
        .audience(AUDIENCE)
        .keys(rsa_only)
        .roles_claim("resource_access.client.roles")
        .build()
        .expect("rules");
    BearerAuthenticator::builder()
        .issuer(main)
        .issuer(other)
        .build()
        .expect("authenticator")
}
