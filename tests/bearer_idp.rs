//! Bearer tokens from a real OpenID provider, end to end.
//!
//! These tests do not mint their own tokens: each one starts the test identity provider in
//! `tests/idp` ([`oidc-provider`](https://github.com/panva/node-oidc-provider) 9.13.3, a
//! certified OpenID Connect implementation, run by Node.js), loads its JWKS through
//! discovery, asks it for access tokens with the client credentials grant, and sends those
//! tokens through an axum `Router` behind `BearerLayer`. They check that what a real
//! provider issues (RS256 and ES256 RFC 9068 access tokens, nested role claims) is
//! accepted, and that wrong audiences, tampering, opaque tokens, rotated keys and expired
//! tokens are refused.
//!
//! The provider's npm packages are installed by the test support when missing (`npm ci`).
//! Every provider is killed when its test ends, passed or failed; it also exits by itself
//! when this process dies, because its stdin (a pipe from us) closes. Key rotation happens
//! in place, through the provider's `POST /test/rotate-keys`, so the issuer keeps its port.
//!
//! Talking to the provider needs no HTTP client crate: a few blocking HTTP/1.0 requests
//! over `std::net::TcpStream` are enough (HTTP/1.0 so that Node answers with a
//! `Content-Length` and closes the connection, never with a chunked body).

use std::thread::{self};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::response::Json;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::Principal;
use portcullis::bearer::{BearerAuthenticator, BearerLayer, IssuerRules, KeySet};
use serde_json::Value;
use tower::ServiceExt;

mod support;
use support::idp::*;

// ---------------------------------------------------------------------------------------
// Tokens and the gateway
// ---------------------------------------------------------------------------------------

/// Part `index` of a JWT (0: header, 1: payload), decoded as JSON.
fn jwt_part(token: &str, index: usize) -> Value {
    let part = token
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("the token has no part {index}: {token}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|error| panic!("part {index} is not base64url ({error}): {part}"));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("part {index} is not JSON ({error}): {part}"))
}

/// The rules for the provider's tokens: its issuer, `keys`, the given audiences, roles from
/// `realm_access.roles` (Keycloak's layout, which the test provider mimics).
fn rules_for(issuer: &str, keys: KeySet, audiences: &[&str]) -> IssuerRules {
    let mut builder = IssuerRules::builder(issuer)
        .keys(keys)
        .roles_claim("realm_access.roles");
    for audience in audiences {
        builder = builder.audience(*audience);
    }
    builder.build().expect("valid issuer rules")
}

/// The protected service: answers with the caller, and needs one (`Principal` extractor).
async fn whoami(principal: Principal) -> Json<Principal> {
    Json(principal)
}

fn app(authenticator: BearerAuthenticator) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(BearerLayer::new(authenticator))
}

/// What the client of the gateway receives.
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response: Response<Body> = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        challenge,
        body,
    }
}

/// `GET /whoami` with `Authorization: Bearer <token>`, on a runtime of its own (the tests
/// themselves are plain blocking functions, since they talk to the provider blockingly).
fn call(app: &Router, token: &str) -> Reply {
    let request = Request::get("/whoami")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(send(app, request))
}

/// The challenge of a refused token, with `description`.
fn invalid_token(description: &str) -> String {
    format!(r#"Bearer realm="api", error="invalid_token", error_description="{description}""#)
}

/// Asserts a 401 with an `invalid_token` challenge; returns the challenge.
fn assert_refused(reply: &Reply, what: &str) -> String {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.body
    );
    let challenge = reply
        .challenge
        .clone()
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(
        challenge.starts_with(r#"Bearer realm="api", error="invalid_token""#),
        "{what}: {challenge}"
    );
    challenge
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn tokens_from_a_real_provider_are_accepted() {
    let idp = Idp::start(Settings::default());
    let (keys, kids) = idp.key_set();
    assert_eq!(keys.keys().len(), 2, "one RSA and one P-256 key: {kids:?}");
    let app = app(BearerAuthenticator::new(rules_for(
        &idp.issuer,
        keys,
        &[API, ES256_API],
    )));

    for (resource, alg) in [(API, "RS256"), (ES256_API, "ES256")] {
        let token = idp.token(resource);
        let header = jwt_part(&token, 0);
        assert_eq!(header["alg"], alg, "{header}");
        assert_eq!(header["typ"], "at+jwt", "{header}");
        let kid = header["kid"].as_str().expect("the token names its key");
        assert!(
            kids.iter().any(|known| known == kid),
            "kid {kid} not in {kids:?}"
        );

        let reply = call(&app, &token);
        assert_eq!(reply.status, StatusCode::OK, "{alg}: {}", reply.body);
        let principal = &reply.body;
        assert_eq!(principal["subject"], "resource-client", "{principal}");
        assert_eq!(principal["issuer"], idp.issuer.as_str(), "{principal}");
        assert_eq!(principal["auth_method"], "bearer", "{principal}");
        assert_eq!(
            principal["scopes"],
            serde_json::json!(["orders:read", "orders:write"]),
            "{principal}"
        );
        // `realm_access.roles`, not the top-level `roles` claim the provider also sends.
        assert_eq!(
            principal["roles"],
            serde_json::json!(["admin"]),
            "{principal}"
        );
        assert_eq!(principal["claims"]["aud"], resource, "{principal}");
        assert_eq!(
            principal["claims"]["client_id"], "resource-client",
            "{principal}"
        );
    }
}

#[test]
fn wrong_audience_and_tampering_are_refused() {
    let idp = Idp::start(Settings::default());
    let (keys, _) = idp.key_set();
    let app = app(BearerAuthenticator::new(rules_for(
        &idp.issuer,
        keys,
        &[API],
    )));

    // The rules do accept this provider's tokens for this API: the refusals below are
    // about the tokens, not a configuration that refuses everything.
    let token = idp.token(API);
    assert_eq!(call(&app, &token).status, StatusCode::OK);

    // Signed by the same issuer and key set, for another API of that issuer.
    let other_api = idp.token(ES256_API);
    assert_eq!(jwt_part(&other_api, 1)["aud"], ES256_API);
    let challenge = assert_refused(&call(&app, &other_api), "token for another audience");
    assert_eq!(
        challenge,
        invalid_token("The token is not meant for this audience.")
    );

    // The same token, at a gateway that trusts the same keys for another issuer only.
    let (same_keys, _) = idp.key_set();
    let other_issuer = crate::app(BearerAuthenticator::new(rules_for(
        "https://other-issuer.example",
        same_keys,
        &[API],
    )));
    assert_refused(
        &call(&other_issuer, &token),
        "token from an untrusted issuer",
    );

    // One character of the payload changed.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS has three parts");
    let mut payload: Vec<u8> = parts[1].bytes().collect();
    let middle = payload.len() / 2;
    payload[middle] = if payload[middle] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        String::from_utf8(payload).expect("base64url is ASCII"),
        parts[2]
    );
    assert_refused(&call(&app, &flipped), "payload with a character flipped");

    // A well-formed payload claiming another subject, under the original signature.
    let mut claims = jwt_part(&token, 1);
    claims["sub"] = Value::from("someone-else");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let challenge = assert_refused(&call(&app, &forged), "payload rewritten");
    assert_eq!(challenge, invalid_token("The token is not valid."));

    // Opaque tokens need introspection, which the layer does not do: not a JWT at all.
    let opaque = idp.token(OPAQUE_API);
    assert!(!opaque.contains('.'), "an opaque token: {opaque}");
    let challenge = assert_refused(&call(&app, &opaque), "opaque token");
    assert_eq!(challenge, invalid_token("The token is malformed."));
}

/// Until the layer fetches a remote JWKS itself, the application must reload the keys
/// when the provider rotates them: tokens signed with the new key are refused until then.
#[test]
fn a_rotated_provider_key_is_refused_until_keys_are_reloaded() {
    let idp = Idp::start(Settings::default());
    let issuer = idp.issuer.clone();
    let (old_keys, old_kids) = idp.key_set();
    let old_app = app(BearerAuthenticator::new(rules_for(
        &issuer,
        old_keys,
        &[API],
    )));
    let old_token = idp.token(API);
    assert_eq!(call(&old_app, &old_token).status, StatusCode::OK);

    // The provider rotates its keys: new keys, new kids, the same issuer.
    idp.rotate_keys("-rotated");

    let new_token = idp.token(API);
    let kid = jwt_part(&new_token, 0)["kid"]
        .as_str()
        .expect("the token names its key")
        .to_owned();
    assert!(kid.ends_with("-rotated"), "kid {kid}");
    assert!(
        !old_kids.contains(&kid),
        "kid {kid} was already in {old_kids:?}"
    );

    let challenge = assert_refused(&call(&old_app, &new_token), "new key, old key set");
    assert_eq!(challenge, invalid_token("The token is not valid."));

    // Reloaded keys: the new token passes, and the old key is gone with its tokens.
    let (new_keys, new_kids) = idp.key_set();
    assert!(new_kids.contains(&kid), "kid {kid} not in {new_kids:?}");
    let new_app = app(BearerAuthenticator::new(rules_for(
        &issuer,
        new_keys,
        &[API],
    )));
    let reply = call(&new_app, &new_token);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["subject"], "resource-client");
    assert_refused(&call(&new_app, &old_token), "old key, reloaded key set");
}

#[test]
fn expired_provider_tokens_are_refused() {
    let idp = Idp::start(Settings {
        access_token_ttl: Some(1),
    });
    let (keys, _) = idp.key_set();
    let rules = IssuerRules::builder(&idp.issuer)
        .audience(API)
        .keys(keys)
        .leeway(Duration::ZERO)
        .build()
        .expect("zero leeway is allowed");
    let app = app(BearerAuthenticator::new(rules));

    let token = idp.token(API);
    let claims = jwt_part(&token, 1);
    let iat = claims["iat"].as_u64().expect("an integer iat");
    let exp = claims["exp"].as_u64().expect("an integer exp");
    assert_eq!(exp - iat, 1, "IDP_AT_TTL=1: {claims}");

    // Wait until a second past `exp` (no leeway): a bounded wait, same clock as the provider.
    let expired_at = UNIX_EPOCH + Duration::from_secs(exp + 1);
    let wait = expired_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait <= Duration::from_secs(5),
        "exp {exp} is too far ahead of this clock"
    );
    thread::sleep(wait + Duration::from_millis(100));

    let challenge = assert_refused(&call(&app, &token), "expired token");
    assert_eq!(challenge, invalid_token("The token has expired."));
}

/// The rules for the provider's tokens: its issuer, keys through discovery, the given audiences, roles from
/// `realm_access.roles` (Keycloak's layout, which the test provider mimics).
fn discovered_rules_for(issuer: &str, audiences: &[&str]) -> IssuerRules {
    let mut builder = IssuerRules::builder(issuer)
        .discover()
        // Short enough that a rotation test never waits for it: rotating the provider's
        // keys and asking for a token take far longer.
        .jwks_cooldown(Duration::from_millis(1))
        .roles_claim("realm_access.roles");
    for audience in audiences {
        builder = builder.audience(*audience);
    }
    builder.build().expect("valid issuer rules")
}

#[test]
fn tokens_from_a_real_provider_are_accepted_with_discovered_keys() {
    let idp = Idp::start(Settings::default());
    let (_, kids) = idp.key_set();
    let rules = discovered_rules_for(&idp.issuer, &[API, ES256_API]);
    let authenticator = BearerAuthenticator::new(rules.clone());
    assert!(
        !authenticator.is_ready(),
        "no runtime yet: loads on the first request"
    );
    let app = app(authenticator.clone());

    for (resource, alg) in [(API, "RS256"), (ES256_API, "ES256")] {
        let token = idp.token(resource);
        let header = jwt_part(&token, 0);
        assert_eq!(header["alg"], alg, "{header}");
        let kid = header["kid"].as_str().expect("the token names its key");
        assert!(
            kids.iter().any(|known| known == kid),
            "{kid} not in {kids:?}"
        );

        let reply = call(&app, &token);
        assert_eq!(reply.status, StatusCode::OK, "{alg}: {}", reply.body);
        let principal = &reply.body;
        assert_eq!(principal["subject"], "resource-client", "{principal}");
        assert_eq!(principal["issuer"], idp.issuer.as_str(), "{principal}");
        assert_eq!(
            principal["roles"],
            serde_json::json!(["admin"]),
            "{principal}"
        );
    }
    assert!(authenticator.is_ready());

    // Discovery kept the provider's whole metadata, not only its `jwks_uri`.
    let metadata = rules
        .jwks()
        .and_then(|jwks| jwks.provider_metadata())
        .expect("discovered");
    assert_eq!(metadata.issuer, idp.issuer);
    for endpoint in [
        Some(&metadata.jwks_uri),
        metadata.token_endpoint.as_ref(),
        metadata.authorization_endpoint.as_ref(),
        metadata.introspection_endpoint.as_ref(),
    ] {
        let endpoint = endpoint.expect("the provider advertises it");
        assert!(endpoint.starts_with(&idp.issuer), "{endpoint}");
    }
    assert!(
        metadata
            .code_challenge_methods_supported
            .iter()
            .any(|method| method == "S256"),
        "{metadata:?}"
    );

    // Change the first signature character (the last one may carry only padding bits).
    let token = idp.token(API);
    let at = token.rfind('.').expect("three parts") + 1;
    let swapped = if token[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    assert_refused(&call(&app, &tampered), "tampered");
}

/// With discovery, a rotated provider key is picked up by one refetch: no reload needed.
#[test]
fn a_rotated_provider_key_is_picked_up_by_a_refetch() {
    let idp = Idp::start(Settings::default());
    let issuer = idp.issuer.clone();
    let rules = discovered_rules_for(&issuer, &[API]);
    let app = app(BearerAuthenticator::new(rules.clone()));
    let old_token = idp.token(API);
    assert_eq!(call(&app, &old_token).status, StatusCode::OK);
    let fetches = rules.jwks().expect("remote").fetch_count();

    idp.rotate_keys("-rotated");
    let new_token = idp.token(API);
    let kid = jwt_part(&new_token, 0)["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert!(kid.ends_with("-rotated"), "kid {kid}");

    let reply = call(&app, &new_token);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let refetches = rules.jwks().expect("remote").fetch_count() - fetches;
    assert!((1..=2).contains(&refetches), "{refetches} refetches");
    // The old key is gone, and the cached verification of the old token with it.
    assert_refused(&call(&app, &old_token), "old key after rotation");
}
