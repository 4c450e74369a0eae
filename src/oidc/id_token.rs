//! ID tokens (and logout tokens): verified by the shared JWT module and the issuer rules
//! the bearer layer uses (signature, algorithm allow-list, `iss`, `aud`, `exp`, `nbf`,
//! `iat`, strict types), then the OpenID Connect checks: `nonce`, `azp`, every audience
//! trusted, `at_hash` / `c_hash`, `auth_time` with `max_age`, `acr`, `sub`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use super::Inner;
use super::session::Identity;
use crate::bearer::IssuerRules;
use crate::bearer::rules::{KeySource, Verified};
use crate::jwt::Algorithm;
use crate::jwt::claims::time;
use crate::jwt::token::{self, Failure};

/// The largest ID or logout token accepted, in bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A check failed; the code goes to the logs.
    Invalid(&'static str),
    /// No usable key set (the provider's JWKS cannot be fetched): try again later.
    Unavailable,
}

impl From<Failure> for Refused {
    fn from(failure: Failure) -> Self {
        Self::Invalid(failure.code())
    }
}

/// What the ID token must match, besides the issuer rules.
#[derive(Debug, Default)]
pub(crate) struct Expected<'a> {
    /// The nonce sent in the authorization request (at login).
    pub(crate) nonce: Option<&'a str>,
    /// The authorization code (for `c_hash`).
    pub(crate) code: Option<&'a str>,
    /// The access token issued with it (for `at_hash`).
    pub(crate) access_token: Option<&'a str>,
    /// The session's subject (after a refresh: the new ID token must name the same user).
    pub(crate) subject: Option<&'a str>,
    /// Whether `auth_time` is checked against `max_age` (at login).
    pub(crate) check_auth_time: bool,
}

/// Verifies a JWT with `rules`: keys from the cache (one refetch on an unknown `kid`,
/// rate-limited), then the rules' header and claim checks.
pub(crate) async fn verify_jwt(
    rules: &IssuerRules,
    jwt: &str,
    now: f64,
) -> Result<(Verified, Algorithm), Refused> {
    if jwt.len() > MAX_TOKEN_BYTES {
        return Err(Failure::TooLarge.into());
    }
    let KeySource::Remote(jwks) = rules.key_source() else {
        return Err(Refused::Unavailable);
    };
    let mut refetched = false;
    loop {
        let unverified = token::parse(jwt)?;
        let alg = unverified.alg;
        let keys = match jwks.snapshot_for_request() {
            Some(keys) => keys,
            None if !refetched => {
                jwks.refresh_for_unknown_kid().await;
                refetched = true;
                continue;
            }
            None => return Err(Refused::Unavailable),
        };
        match rules.verify(unverified, &keys, now) {
            Ok(verified) => return Ok((verified, alg)),
            Err(Failure::UnknownKid) if !refetched => {
                jwks.refresh_for_unknown_kid().await;
                refetched = true;
            }
            Err(failure) => return Err(failure.into()),
        }
    }
}

/// Verifies an ID token for `inner` and reads who it names.
pub(crate) async fn verify(
    inner: &Inner,
    id_token: &str,
    expected: &Expected<'_>,
) -> Result<Identity, Refused> {
    let now = inner.clock.now();
    let (verified, alg) = verify_jwt(&inner.id_token_rules, id_token, now).await?;
    let claims = &verified.claims;

    // Every audience must be one we trust, and ours must be among them (Core 3.1.3.7).
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return Err(Refused::Invalid("claim_type")),
    };
    if !audiences.contains(&inner.client_id.as_str()) {
        return Err(Refused::Invalid("aud_mismatch"));
    }
    if audiences
        .iter()
        .any(|aud| !inner.audiences.iter().any(|ok| ok == aud))
    {
        return Err(Refused::Invalid("untrusted_audience"));
    }
    match claims.get("azp") {
        None if audiences.len() > 1 => return Err(Refused::Invalid("missing_azp")),
        None => {}
        Some(Value::String(azp)) if *azp == inner.client_id => {}
        Some(Value::String(_)) => return Err(Refused::Invalid("azp_mismatch")),
        Some(_) => return Err(Refused::Invalid("claim_type")),
    }

    if let Some(nonce) = expected.nonce {
        match claims.get("nonce") {
            Some(Value::String(found)) if bool::from(found.as_bytes().ct_eq(nonce.as_bytes())) => {}
            Some(Value::String(_)) => return Err(Refused::Invalid("nonce_mismatch")),
            Some(_) => return Err(Refused::Invalid("claim_type")),
            None => return Err(Refused::Invalid("missing_nonce")),
        }
    }
    for (claim, value) in [
        ("at_hash", expected.access_token),
        ("c_hash", expected.code),
    ] {
        match (claims.get(claim), value) {
            (None, _) | (Some(_), None) => {}
            (Some(Value::String(hash)), Some(value)) => {
                let wanted = half_hash(alg, value).ok_or(Refused::Invalid("alg_not_allowed"))?;
                if !bool::from(hash.as_bytes().ct_eq(wanted.as_bytes())) {
                    return Err(Refused::Invalid(if claim == "at_hash" {
                        "at_hash_mismatch"
                    } else {
                        "c_hash_mismatch"
                    }));
                }
            }
            (Some(_), Some(_)) => return Err(Refused::Invalid("claim_type")),
        }
    }
    let auth_time = time(claims, "auth_time")?;
    if let (Some(max_age), true) = (inner.max_age, expected.check_auth_time) {
        let auth_time = auth_time.ok_or(Refused::Invalid("missing_auth_time"))?;
        if now - auth_time > max_age.as_secs_f64() + inner.id_token_rules.leeway_seconds() {
            return Err(Refused::Invalid("auth_time_too_old"));
        }
    }
    if !inner.acr_values.is_empty() && expected.check_auth_time {
        match claims.get("acr") {
            Some(Value::String(acr)) if inner.acr_values.contains(acr) => {}
            Some(Value::String(_)) | None => return Err(Refused::Invalid("acr_not_satisfied")),
            Some(_) => return Err(Refused::Invalid("claim_type")),
        }
    }
    if verified.subject.is_empty() {
        return Err(Refused::Invalid("missing_sub"));
    }
    if expected
        .subject
        .is_some_and(|subject| subject != verified.subject)
    {
        return Err(Refused::Invalid("sub_changed"));
    }
    let sid = match claims.get("sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return Err(Refused::Invalid("claim_type")),
    };
    Ok(Identity {
        subject: verified.subject,
        issuer: inner.issuer.clone(),
        sid,
        roles: verified.roles,
        claims: verified.claims,
    })
}

/// `at_hash` / `c_hash`: the left half of the hash of `value` with the hash function of
/// the token's algorithm, base64url (Core 3.1.3.6, 3.3.2.11).
fn half_hash(alg: Algorithm, value: &str) -> Option<String> {
    let digest: Vec<u8> = match alg {
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::HS256 => {
            Sha256::digest(value.as_bytes()).to_vec()
        }
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 | Algorithm::HS384 => {
            Sha384::digest(value.as_bytes()).to_vec()
        }
        // Ed25519 hashes with SHA-512 (OpenID Connect errata for EdDSA).
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::HS512 | Algorithm::EdDSA => {
            Sha512::digest(value.as_bytes()).to_vec()
        }
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::oidc::Oidc;
    use crate::remote::{HttpClient, HttpFuture, HttpResponse, RemoteError};

    const ISSUER: &str = "https://idp.example";

    /// The provider's discovery document and JWKS, in the process (tokio's paused clock
    /// and real sockets do not mix).
    struct Provider {
        jwks: Mutex<String>,
        jwks_fetches: AtomicUsize,
    }

    impl HttpClient for Provider {
        fn get(&self, url: &str, _accept: &[&str]) -> HttpFuture<'_> {
            let answer = if url == format!("{ISSUER}/.well-known/openid-configuration") {
                serde_json::json!({
                    "issuer": ISSUER,
                    "jwks_uri": format!("{ISSUER}/jwks"),
                    "authorization_endpoint": format!("{ISSUER}/authorize"),
                    "token_endpoint": format!("{ISSUER}/token"),
                })
                .to_string()
            } else if url == format!("{ISSUER}/jwks") {
                self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                self.jwks.lock().unwrap().clone()
            } else {
                return Box::pin(async { Ok(HttpResponse::new(404, None, "")) });
            };
            Box::pin(async move { Ok(HttpResponse::new(200, Some("application/json"), answer)) })
        }

        fn post_form(
            &self,
            _: &str,
            _: &[(&str, &str)],
            _: Option<(&str, &str)>,
            _: &[&str],
        ) -> HttpFuture<'_> {
            Box::pin(async { Err(RemoteError::Timeout) })
        }
    }

    fn key(pem: &[u8]) -> EncodingKey {
        EncodingKey::from_rsa_pem(pem).unwrap()
    }

    fn jwks(keys: &[(&EncodingKey, &str)]) -> String {
        let keys = keys
            .iter()
            .map(|(key, kid)| {
                let mut jwk = Jwk::from_encoding_key(key, jsonwebtoken::Algorithm::RS256).unwrap();
                jwk.common.key_id = Some((*kid).to_owned());
                jwk
            })
            .collect();
        serde_json::to_string(&JwkSet { keys }).unwrap()
    }

    fn id_token(oidc: &Oidc, key: &EncodingKey, kid: &str) -> String {
        let now = oidc.inner().clock.now_secs();
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": "app", "sub": "alice", "iat": now, "exp": now + 300,
        });
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_kid_refetches_the_keys_once_per_cooldown() {
        crate::bearer::select_crypto_backend();
        let first = key(include_bytes!("../../tests/fixtures/rsa2048.key"));
        let rotated = key(include_bytes!("../../tests/fixtures/rsa2048_other.key"));
        let provider = Arc::new(Provider {
            jwks: Mutex::new(jwks(&[(&first, "k1")])),
            jwks_fetches: AtomicUsize::new(0),
        });
        let oidc = Oidc::builder(ISSUER)
            .client_id("app")
            .redirect_uri("https://app.example/auth/callback")
            .http_client(provider.clone())
            .build()
            .unwrap();
        let inner = oidc.inner();
        let expected = Expected::default();
        assert!(
            verify(inner, &id_token(&oidc, &first, "k1"), &expected)
                .await
                .is_ok()
        );
        let fetches = provider.jwks_fetches.load(Ordering::SeqCst);
        assert!(fetches >= 1);

        // The provider rotates to a key the cache has not seen.
        *provider.jwks.lock().unwrap() = jwks(&[(&first, "k1"), (&rotated, "k2")]);
        tokio::time::advance(Duration::from_secs(31)).await;
        let identity = verify(inner, &id_token(&oidc, &rotated, "k2"), &expected).await;
        assert_eq!(
            identity.map(|identity| identity.subject).ok().as_deref(),
            Some("alice")
        );
        assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), fetches + 1);

        // Another unknown kid within the cooldown: refused, without a fetch.
        let refused = verify(inner, &id_token(&oidc, &rotated, "k3"), &expected).await;
        assert_eq!(refused.err(), Some(Refused::Invalid("unknown_kid")));
        assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), fetches + 1);
    }

    #[test]
    fn half_hashes_follow_the_algorithm() {
        // Python: base64url(sha256(b"access-token").digest()[:16]), unpadded.
        assert_eq!(
            half_hash(Algorithm::RS256, "access-token").as_deref(),
            Some("Pxa-1wifRlPl7yG_0oJNfw")
        );
        assert_eq!(half_hash(Algorithm::ES384, "x").map(|h| h.len()), Some(32));
        assert_eq!(half_hash(Algorithm::EdDSA, "x").map(|h| h.len()), Some(43));
    }
}
