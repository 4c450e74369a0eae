//! JWT access tokens: strict parsing of arbitrary token text, and the claim checks.
//!
//! The first byte picks the mode. Even: the rest is token text, checked by the parser and
//! the issuer rules at a fixed time and by the public `BearerAuthenticator::verify`; a token
//! the parser refuses must be refused by the authenticator too. Odd: the rest is the claims
//! JSON, signed with HS256/384/512 under one of a few fixed headers, so the checks past the
//! signature run on arbitrary claims; the outcome must equal a reference model of the rules
//! (RFC 9068 claims with `sub` required, time claims in range, the maximum lifetime,
//! strict JSON types, leeway, maximum age, roles claim).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::bearer::Algorithm;
use portcullis::fuzzing::{
    JWT_AUDIENCE, JWT_ISSUER, JWT_LEEWAY, JWT_MAX_AGE, JWT_NOW, jwt_authenticate, jwt_check,
    jwt_sign,
};
use portcullis::validate::JsonLimits;
use serde_json::{Map, Value};

/// Headers to sign under: the text, its algorithm, and whether the plain and the strict
/// rules accept it.
const HEADERS: [(&str, Algorithm, bool, bool); 8] = [
    (
        r#"{"alg":"HS256","typ":"at+jwt"}"#,
        Algorithm::HS256,
        true,
        true,
    ),
    (
        r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#,
        Algorithm::HS256,
        true,
        true,
    ),
    (
        r#"{"alg":"HS384","typ":"application/at+jwt"}"#,
        Algorithm::HS384,
        true,
        true,
    ),
    (
        r#"{"alg":"HS256","typ":"JWT"}"#,
        Algorithm::HS256,
        false,
        true,
    ),
    (r#"{"alg":"HS256"}"#, Algorithm::HS256, false, false),
    (
        r#"{"alg":"HS256","typ":"at+jwt","kid":"k2"}"#,
        Algorithm::HS256,
        false,
        false,
    ),
    (
        r#"{"alg":"HS256","typ":"at+jwt","crit":["exp"]}"#,
        Algorithm::HS256,
        false,
        false,
    ),
    (
        r#"{"alg":"HS512","typ":"AT+JWT"}"#,
        Algorithm::HS512,
        true,
        true,
    ),
];

/// The longest token lifetime the rules accept by default (24 hours).
const MAX_LIFETIME: f64 = 86_400.0;
/// The latest time a time claim may name: 9999-12-31T23:59:59Z.
const LATEST_TIME: f64 = 253_402_300_799.0;

/// A time claim: a JSON number from 0 to the end of year 9999.
fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, ()> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let seconds = n.as_f64().ok_or(())?;
            (seconds.is_finite() && (0.0..=LATEST_TIME).contains(&seconds))
                .then_some(Some(seconds))
                .ok_or(())
        }
        Some(_) => Err(()),
    }
}

fn strings(items: &[Value]) -> Result<Vec<String>, ()> {
    items
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or(()))
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What the rules must answer for these claims: `(subject, scopes, roles)` or refusal.
fn expected(
    claims: &Map<String, Value>,
    strict: bool,
) -> Result<(String, Vec<String>, Vec<String>), ()> {
    let exp = number(claims, "exp")?.ok_or(())?;
    if JWT_NOW > exp + JWT_LEEWAY {
        return Err(());
    }
    if let Some(nbf) = number(claims, "nbf")? {
        if JWT_NOW + JWT_LEEWAY < nbf {
            return Err(());
        }
    }
    let iat = number(claims, "iat")?;
    // RFC 9068 access tokens are short-lived: `exp - iat` (or what is left without `iat`).
    let lifetime = match iat {
        Some(iat) => exp - iat,
        None => exp - JWT_NOW - JWT_LEEWAY,
    };
    if lifetime > MAX_LIFETIME {
        return Err(());
    }
    match iat {
        Some(iat) if iat > JWT_NOW + JWT_LEEWAY => return Err(()),
        Some(iat) if strict && JWT_NOW - iat > JWT_MAX_AGE + JWT_LEEWAY => return Err(()),
        None if strict => return Err(()),
        _ => {}
    }
    if claims.get("iss") != Some(&Value::String(JWT_ISSUER.to_owned())) {
        return Err(());
    }
    let accepted = |aud: &str| aud == JWT_AUDIENCE || (strict && aud == "other-api");
    match claims.get("aud") {
        Some(Value::String(aud)) if accepted(aud) => {}
        Some(Value::Array(items)) if strings(items)?.iter().any(|aud| accepted(aud)) => {}
        _ => return Err(()),
    }
    // `sub` is required (RFC 9068 section 2.2); `client_id` never stands in for it.
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) => sub.clone(),
        _ => return Err(()),
    };
    let mut scopes = Vec::new();
    match claims.get("scope") {
        None => {}
        Some(Value::String(scope)) => scopes.extend(words(scope)),
        Some(_) => return Err(()),
    }
    match claims.get("scp") {
        None => {}
        Some(Value::String(scp)) => scopes.extend(words(scp)),
        Some(Value::Array(items)) => scopes.extend(strings(items)?),
        Some(_) => return Err(()),
    }
    let mut roles = Vec::new();
    if strict {
        let at_path = claims
            .get("realm_access")
            .and_then(Value::as_object)
            .and_then(|realm| realm.get("roles"));
        match at_path {
            None => {}
            Some(Value::String(role)) => roles.push(role.clone()),
            Some(Value::Array(items)) => roles.extend(strings(items)?),
            Some(_) => return Err(()),
        }
    }
    Ok((subject, scopes, roles))
}

fn check_signed(selector: u8, claims_text: &[u8]) {
    let (header, alg, plain_ok, strict_ok) = HEADERS[usize::from(selector >> 1) % HEADERS.len()];
    let strict = selector & 0x80 != 0;
    let token = jwt_sign(header.as_bytes(), claims_text, alg);
    let outcome = jwt_check(&token, strict);
    let _ = jwt_authenticate(&token);

    let header_ok = if strict { strict_ok } else { plain_ok };
    let claims: Option<Map<String, Value>> = serde_json::from_slice(claims_text).ok();
    if let Ok(verified) = &outcome {
        assert!(header_ok, "accepted under {header}");
        let claims = claims.as_ref().expect("accepted claims are a JSON object");
        let (subject, scopes, roles) =
            expected(claims, strict).expect("accepted claims pass the model");
        assert_eq!(verified.subject, subject);
        assert_eq!(verified.scopes, scopes);
        assert_eq!(verified.roles, roles);
    }
    // The converse, when the claims have no duplicate member (which the parser refuses and
    // serde_json silently merges).
    let distinct = JsonLimits::new().check(claims_text).is_ok();
    if let (Some(claims), true, true) = (&claims, distinct, header_ok) {
        assert_eq!(
            outcome.is_ok(),
            expected(claims, strict).is_ok(),
            "claims {claims:?}, strict {strict}: {outcome:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 1 {
        check_signed(selector, rest);
        return;
    }
    let Ok(token) = std::str::from_utf8(rest) else {
        return;
    };
    let plain = jwt_check(token, false);
    let _ = jwt_check(token, true);
    if jwt_authenticate(token) {
        // The authenticator reads the real clock and the check above a fixed one: only the
        // time checks may tell them apart.
        assert!(
            matches!(
                plain,
                Ok(_)
                    | Err("token_expired" | "nbf_future" | "iat_future" | "lifetime_too_long")
            ),
            "authenticated a token the rules refuse: {plain:?}"
        );
    }
});
