//! A table of forged and malformed tokens, each assembled here by hand. Apart from the one
//! defect a row names, every token is well-formed and signed by a trusted key, so a row can
//! only pass because the defect is caught.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::Jwk;
use portcullis::bearer::Algorithm;
use serde_json::{Value, json};

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Accepted,
    /// Refused, with this reason logged.
    Refused(&'static str),
}
use Expect::{Accepted, Refused};

/// Signs the standard header, changed by `edit`, over `claims`.
fn with_header(signer: &Signer, edit: impl FnOnce(&mut Value)) -> String {
    let mut h = header(signer);
    edit(&mut h);
    sign(&h, &claims(), signer)
}

/// Signs the standard header over the standard claims, changed by `edit`.
fn with_claims(signer: &Signer, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims();
    edit(&mut c);
    mint(signer, &c)
}

fn remove(value: &mut Value, member: &str) {
    if let Some(object) = value.as_object_mut() {
        object.remove(member);
    }
}

fn unsigned(header: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string()),
        b64(claims().to_string())
    )
}

fn rows() -> Vec<(String, String, Expect)> {
    let now = now();
    let mut rows: Vec<(String, String, Expect)> = Vec::new();
    let mut row = |name: &str, token: String, expect: Expect| {
        rows.push((name.to_owned(), token, expect));
    };

    // Sanity: the unmodified token of every kind is accepted.
    for signer in [rsa(), es256(), es384(), eddsa(), hs256()] {
        row(
            &format!("valid {:?}", signer.alg),
            mint(&signer, &claims()),
            Accepted,
        );
    }

    // alg none, in several spellings, with and without a signature.
    let real_signature = mint(&rsa(), &claims())
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({ "alg": alg, "typ": "at+jwt", "kid": "rsa-1" });
        row(
            &format!("alg {alg}, empty signature"),
            unsigned(&h, ""),
            Refused("alg_not_allowed"),
        );
        row(
            &format!("alg {alg}, some signature"),
            unsigned(&h, "c2ln"),
            Refused("alg_not_allowed"),
        );
        row(
            &format!("alg {alg}, real signature"),
            unsigned(&h, &real_signature),
            Refused("alg_not_allowed"),
        );
        let h = json!({ "alg": alg, "typ": "at+jwt" });
        row(
            &format!("alg {alg}, no kid"),
            unsigned(&h, ""),
            Refused("alg_not_allowed"),
        );
    }
    row(
        "alg as a number",
        with_header(&rsa(), |h| h["alg"] = json!(256)),
        Refused("claim_type"),
    );
    row(
        "alg missing",
        with_header(&rsa(), |h| remove(h, "alg")),
        Refused("malformed"),
    );
    row(
        "alg unknown (ES512)",
        with_header(&rsa(), |h| h["alg"] = json!("ES512")),
        Refused("alg_not_allowed"),
    );
    row(
        "alg lowercase rs256",
        with_header(&rsa(), |h| h["alg"] = json!("rs256")),
        Refused("alg_not_allowed"),
    );

    // Key confusion: HS256 with the RSA public key's PEM bytes as the HMAC secret.
    let confused = Signer {
        alg: Algorithm::HS256,
        kid: Some("rsa-1"),
        key: EncodingKey::from_secret(RSA_PUB),
    };
    row(
        "HS256 with RSA PEM as secret, kid of the RSA key",
        mint(&confused, &claims()),
        Refused("alg_not_allowed"),
    );
    let no_kid = Signer {
        kid: None,
        ..confused.clone()
    };
    row(
        "HS256 with RSA PEM as secret, no kid",
        mint(&no_kid, &claims()),
        Refused("bad_signature"),
    );
    let mut for_b = claims();
    for_b["iss"] = json!(ISSUER_B);
    row(
        "HS256 with RSA PEM as secret, RSA-only issuer",
        mint(&no_kid, &for_b),
        Refused("alg_not_allowed"),
    );
    row(
        "HS256 with a good secret, RSA-only issuer",
        mint(&hs256(), &for_b),
        Refused("alg_not_allowed"),
    );
    // Algorithm/key-type mismatch with a real signature of the other type.
    let es_as_rsa = Signer {
        kid: Some("rsa-1"),
        ..es256()
    };
    row(
        "ES256 token naming the RSA key",
        mint(&es_as_rsa, &claims()),
        Refused("alg_not_allowed"),
    );
    let rsa_as_ec = Signer {
        kid: Some("ec-1"),
        ..rsa()
    };
    row(
        "RS256 token naming the EC key",
        mint(&rsa_as_ec, &claims()),
        Refused("alg_not_allowed"),
    );
    let p384_as_p256 = Signer {
        kid: Some("ec-1"),
        ..es384()
    };
    row(
        "ES384 token naming the P-256 key",
        mint(&p384_as_p256, &claims()),
        Refused("alg_not_allowed"),
    );

    // Keys and key URLs in the header: refused even with a good signature.
    let attacker = rsa_other();
    let attacker_jwk =
        serde_json::to_value(Jwk::from_encoding_key(&attacker.key, Algorithm::RS256).expect("jwk"))
            .expect("jwk json");
    let self_signed = Signer {
        kid: None,
        ..attacker.clone()
    };
    row(
        "embedded jwk, signed by the attacker",
        with_header(&self_signed, |h| h["jwk"] = attacker_jwk.clone()),
        Refused("header_key_refused"),
    );
    row(
        "embedded jwk, signed by the trusted key",
        with_header(&rsa(), |h| h["jwk"] = attacker_jwk.clone()),
        Refused("header_key_refused"),
    );
    for (member, value) in [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
    ] {
        row(
            &format!("{member} in the header"),
            with_header(&rsa(), |h| h[member] = value.clone()),
            Refused("header_key_refused"),
        );
        row(
            &format!("{member} in the header, no kid"),
            with_header(&self_signed, |h| h[member] = value.clone()),
            Refused("header_key_refused"),
        );
    }

    // kid is only a lookup string.
    row(
        "kid path traversal",
        with_header(&rsa(), |h| h["kid"] = json!("../../etc/passwd")),
        Refused("unknown_kid"),
    );
    row(
        "kid unknown",
        with_header(&rsa(), |h| h["kid"] = json!("rsa-2")),
        Refused("unknown_kid"),
    );
    row(
        "kid as a number",
        with_header(&rsa(), |h| h["kid"] = json!(1)),
        Refused("claim_type"),
    );
    row(
        "kid null",
        with_header(&rsa(), |h| h["kid"] = Value::Null),
        Refused("claim_type"),
    );

    // crit.
    row(
        "crit [exp]",
        with_header(&rsa(), |h| h["crit"] = json!(["exp"])),
        Refused("crit_unsupported"),
    );
    row(
        "crit [b64] with b64 false",
        with_header(&rsa(), |h| {
            h["crit"] = json!(["b64"]);
            h["b64"] = json!(false);
        }),
        Refused("crit_unsupported"),
    );
    row(
        "crit empty",
        with_header(&rsa(), |h| h["crit"] = json!([])),
        Refused("crit_unsupported"),
    );

    // Nested JWTs: a token inside a token is never verified.
    for cty in ["JWT", "jwt", "Jwt", "application/jwt", "Application/JWT"] {
        row(
            &format!("cty {cty}"),
            with_header(&rsa(), |h| h["cty"] = json!(cty)),
            Refused("nested_jwt"),
        );
    }
    let inner = mint(&rsa(), &claims());
    row(
        "cty JWT with a signed token as the payload",
        sign_raw(
            &json!({ "alg": "RS256", "typ": "at+jwt", "kid": "rsa-1", "cty": "JWT" }).to_string(),
            &inner,
            &rsa(),
        ),
        Refused("nested_jwt"),
    );
    row(
        "cty as a number",
        with_header(&rsa(), |h| h["cty"] = json!(1)),
        Refused("claim_type"),
    );

    // typ.
    row(
        "typ missing",
        with_header(&rsa(), |h| remove(h, "typ")),
        Refused("typ_mismatch"),
    );
    row(
        "typ JWT",
        with_header(&rsa(), |h| h["typ"] = json!("JWT")),
        Refused("typ_mismatch"),
    );
    row(
        "typ as a number",
        with_header(&rsa(), |h| h["typ"] = json!(1)),
        Refused("claim_type"),
    );
    row(
        "typ at+jwt",
        with_header(&rsa(), |h| h["typ"] = json!("at+jwt")),
        Accepted,
    );
    row(
        "typ application/AT+JWT",
        with_header(&rsa(), |h| h["typ"] = json!("application/AT+JWT")),
        Accepted,
    );
    row(
        "typ at+jwt+x",
        with_header(&rsa(), |h| h["typ"] = json!("at+jwtx")),
        Refused("typ_mismatch"),
    );

    // aud with the wrong type or value.
    for (name, aud, code) in [
        ("number", json!(1), "claim_type"),
        ("null", Value::Null, "claim_type"),
        ("object", json!({ "aud": AUDIENCE }), "claim_type"),
        ("true", json!(true), "claim_type"),
        ("array without ours", json!(["other-api"]), "aud_mismatch"),
        (
            "array with a non-string",
            json!([AUDIENCE, 1]),
            "claim_type",
        ),
        ("array of numbers", json!([1, 2]), "claim_type"),
        ("empty array", json!([]), "aud_mismatch"),
        ("nested array", json!([[AUDIENCE]]), "claim_type"),
        ("different case", json!("Orders-API"), "aud_mismatch"),
    ] {
        row(
            &format!("aud {name}"),
            with_claims(&rsa(), |c| c["aud"] = aud.clone()),
            Refused(code),
        );
    }
    row(
        "aud missing",
        with_claims(&rsa(), |c| remove(c, "aud")),
        Refused("missing_claim"),
    );
    row(
        "aud array with ours",
        with_claims(&rsa(), |c| c["aud"] = json!(["other", AUDIENCE])),
        Accepted,
    );
    row(
        "aud second accepted audience",
        with_claims(&rsa(), |c| c["aud"] = json!("billing-api")),
        Accepted,
    );

    // iss with the wrong type or value.
    for (name, iss, code) in [
        ("number", json!(1), "claim_type"),
        ("null", Value::Null, "claim_type"),
        ("object", json!({ "iss": ISSUER }), "claim_type"),
        ("array", json!([ISSUER]), "claim_type"),
        (
            "trailing slash",
            json!(format!("{ISSUER}/")),
            "iss_mismatch",
        ),
    ] {
        row(
            &format!("iss {name}"),
            with_claims(&rsa(), |c| c["iss"] = iss.clone()),
            Refused(code),
        );
    }
    row(
        "iss missing",
        with_claims(&rsa(), |c| remove(c, "iss")),
        Refused("missing_claim"),
    );

    // Time claims.
    row(
        "nbf in the future",
        with_claims(&rsa(), |c| c["nbf"] = json!(now + 3600)),
        Refused("nbf_future"),
    );
    row(
        "nbf within leeway",
        with_claims(&rsa(), |c| c["nbf"] = json!(now + 30)),
        Accepted,
    );
    row(
        "nbf as a string",
        with_claims(&rsa(), |c| c["nbf"] = json!("0")),
        Refused("claim_type"),
    );
    row(
        "iat in the future",
        with_claims(&rsa(), |c| c["iat"] = json!(now + 3600)),
        Refused("iat_future"),
    );
    row(
        "iat as a string",
        with_claims(&rsa(), |c| c["iat"] = json!("0")),
        Refused("claim_type"),
    );
    row(
        "exp missing",
        with_claims(&rsa(), |c| remove(c, "exp")),
        Refused("missing_claim"),
    );
    row(
        "exp as a string",
        with_claims(&rsa(), |c| c["exp"] = json!((now + 300).to_string())),
        Refused("claim_type"),
    );
    row(
        "exp true",
        with_claims(&rsa(), |c| c["exp"] = json!(true)),
        Refused("claim_type"),
    );
    row(
        "exp null",
        with_claims(&rsa(), |c| c["exp"] = Value::Null),
        Refused("claim_type"),
    );
    row(
        "exp past",
        with_claims(&rsa(), |c| c["exp"] = json!(now - 120)),
        Refused("token_expired"),
    );
    row(
        "exp within leeway",
        with_claims(&rsa(), |c| c["exp"] = json!(now - 30)),
        Accepted,
    );
    row(
        "exp as a float",
        with_claims(&rsa(), |c| c["exp"] = json!((now + 300) as f64 + 0.5)),
        Accepted,
    );

    // Time claims out of any sane range.
    for (name, exp) in [
        ("negative", json!(-1)),
        ("very negative", json!(i64::MIN)),
        ("after year 9999", json!(253_402_300_800_i64)),
        ("u64 max", json!(u64::MAX)),
        ("1e300", json!(1e300)),
    ] {
        row(
            &format!("exp {name}"),
            with_claims(&rsa(), |c| c["exp"] = exp.clone()),
            Refused("time_out_of_range"),
        );
    }
    row(
        "iat negative",
        with_claims(&rsa(), |c| c["iat"] = json!(-5)),
        Refused("time_out_of_range"),
    );
    row(
        "nbf after year 9999",
        with_claims(&rsa(), |c| c["nbf"] = json!(1e13)),
        Refused("time_out_of_range"),
    );

    // Lifetime: `exp` − `iat`, or `exp` − now without `iat`; at most 24 hours by default.
    const DAY: i64 = 24 * 60 * 60;
    row(
        "lifetime of exactly 24 hours",
        with_claims(&rsa(), |c| {
            c["iat"] = json!(now - 5);
            c["exp"] = json!(now - 5 + DAY);
        }),
        Accepted,
    );
    row(
        "lifetime of 24 hours and a second",
        with_claims(&rsa(), |c| {
            c["iat"] = json!(now - 5);
            c["exp"] = json!(now - 4 + DAY);
        }),
        Refused("lifetime_too_long"),
    );
    row(
        "lifetime of ten years",
        with_claims(&rsa(), |c| c["exp"] = json!(now + 10 * 365 * DAY)),
        Refused("lifetime_too_long"),
    );
    row(
        "iat long ago, exp soon",
        with_claims(&rsa(), |c| c["iat"] = json!(now - 2 * DAY)),
        Refused("lifetime_too_long"),
    );
    row(
        "no iat, exp in 23 hours",
        with_claims(&rsa(), |c| {
            remove(c, "iat");
            c["exp"] = json!(now + 23 * 3600);
        }),
        Accepted,
    );
    row(
        "no iat, exp in 25 hours",
        with_claims(&rsa(), |c| {
            remove(c, "iat");
            c["exp"] = json!(now + 25 * 3600);
        }),
        Refused("lifetime_too_long"),
    );

    // Other claim types.
    row(
        "sub as a number",
        with_claims(&rsa(), |c| c["sub"] = json!(42)),
        Refused("claim_type"),
    );
    // RFC 9068 section 2.2: `sub` is required, and `client_id` does not stand in for it.
    row(
        "no sub and no client_id",
        with_claims(&rsa(), |c| remove(c, "sub")),
        Refused("missing_sub"),
    );
    row(
        "client_id instead of sub",
        with_claims(&rsa(), |c| {
            remove(c, "sub");
            c["client_id"] = json!("batch-job");
        }),
        Refused("missing_sub"),
    );
    row(
        "sub null",
        with_claims(&rsa(), |c| c["sub"] = Value::Null),
        Refused("claim_type"),
    );
    row(
        "sub and client_id",
        with_claims(&rsa(), |c| c["client_id"] = json!("batch-job")),
        Accepted,
    );
    row(
        "scope as an array",
        with_claims(&rsa(), |c| c["scope"] = json!(["a"])),
        Refused("claim_type"),
    );
    row(
        "roles with a non-string",
        with_claims(&rsa(), |c| c["realm_access"] = json!({ "roles": ["a", 1] })),
        Refused("claim_type"),
    );

    // Duplicate members: a parser-differential attack.
    row(
        "duplicate alg in the header",
        sign_raw(
            r#"{"alg":"RS256","typ":"at+jwt","kid":"rsa-1","alg":"none"}"#,
            &claims().to_string(),
            &rsa(),
        ),
        Refused("malformed"),
    );
    let payload = claims().to_string();
    let doubled = payload.replacen('{', &format!(r#"{{"exp":{},"#, now - 3600), 1);
    row(
        "duplicate exp in the payload",
        sign_raw(&header(&rsa()).to_string(), &doubled, &rsa()),
        Refused("malformed"),
    );

    // Signatures.
    let es_token = mint(&es256(), &claims());
    let signing_input = es_token
        .rsplit_once('.')
        .map(|(a, _)| a)
        .unwrap_or_default();
    row(
        "ES256 zero signature (64 zero bytes)",
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
        Refused("bad_signature"),
    );
    let mut half_zero = URL_SAFE_NO_PAD
        .decode(es_token.rsplit('.').next().unwrap_or_default())
        .expect("sig");
    half_zero[32..].fill(0);
    row(
        "ES256 signature with s = 0",
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&half_zero)),
        Refused("bad_signature"),
    );
    row(
        "ES256 signature of 63 bytes",
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([1u8; 63])),
        Refused("bad_signature"),
    );
    row(
        "ES256 signature with padding",
        format!(
            "{signing_input}.{}=",
            es_token.rsplit('.').next().unwrap_or_default()
        ),
        Refused("bad_signature"),
    );
    row(
        "signature missing",
        format!("{signing_input}."),
        Refused("malformed"),
    );

    // Shape and size.
    let rsa_token = mint(&rsa(), &claims());
    row(
        "four parts",
        format!("{rsa_token}.e30"),
        Refused("malformed"),
    );
    row("two parts", signing_input.to_owned(), Refused("malformed"));
    row(
        "header not JSON",
        format!("{}.{}.c2ln", b64("not json"), b64(claims().to_string())),
        Refused("malformed"),
    );
    row(
        "header a JSON array",
        sign_raw(r#"["RS256"]"#, &claims().to_string(), &rsa()),
        Refused("malformed"),
    );
    row(
        "payload a JSON string",
        sign_raw(&header(&rsa()).to_string(), r#""claims""#, &rsa()),
        Refused("malformed"),
    );
    row(
        "payload with trailing data",
        sign_raw(
            &header(&rsa()).to_string(),
            &format!("{payload} {{}}"),
            &rsa(),
        ),
        Refused("malformed"),
    );
    row(
        "too large",
        with_claims(&rsa(), |c| c["pad"] = json!("x".repeat(9 * 1024))),
        Refused("too_large"),
    );
    row(
        "standard base64 instead of base64url",
        rsa_token.replace('-', "+").replace('_', "/"),
        if rsa_token.contains(['-', '_']) {
            Refused("bad_signature")
        } else {
            Accepted
        },
    );
    rows
}

#[test]
fn forged_tokens_are_refused() {
    let authenticator = authenticator();
    let mut failures = Vec::new();
    let rows = rows();
    for (name, token, expect) in &rows {
        let outcome = authenticator.verify(token);
        let got = match &outcome {
            Ok(_) => Accepted,
            Err(rejection) => Refused(rejection.cause().expect("every refusal has a cause")),
        };
        if let Err(rejection) = &outcome {
            assert_eq!(rejection.status(), 401, "{name}");
            assert_eq!(rejection.challenges().len(), 1, "{name}");
        }
        if got != *expect {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert!(rows.len() > 100, "{} rows", rows.len());
}

/// A token with the standard claims plus `jti` and `client_id`, changed by `edit`.
fn strict_token(edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims();
    c["jti"] = json!("7d1b6f0e-2c4a-4e8b-9f3d-5a6c7b8d9e0f");
    c["client_id"] = json!("orders-web");
    edit(&mut c);
    mint(&rsa(), &c)
}

#[test]
fn rfc9068_strict_profile_requires_iat_jti_and_client_id() {
    use portcullis::bearer::{BearerAuthenticator, IssuerRules};

    let strict = BearerAuthenticator::builder()
        .issuer(
            IssuerRules::builder(ISSUER)
                .audience(AUDIENCE)
                .keys(keys())
                .rfc9068_strict()
                .build()
                .expect("rules"),
        )
        .no_cache()
        .build()
        .expect("authenticator");
    let lenient = authenticator();
    let table = [
        ("complete", strict_token(|_| {}), Accepted),
        (
            "no iat",
            strict_token(|c| remove(c, "iat")),
            Refused("missing_iat"),
        ),
        (
            "no jti",
            strict_token(|c| remove(c, "jti")),
            Refused("missing_jti"),
        ),
        (
            "jti a number",
            strict_token(|c| c["jti"] = json!(7)),
            Refused("claim_type"),
        ),
        (
            "no client_id",
            strict_token(|c| remove(c, "client_id")),
            Refused("missing_client_id"),
        ),
        (
            "client_id an array",
            strict_token(|c| c["client_id"] = json!(["orders-web"])),
            Refused("claim_type"),
        ),
        (
            "no sub",
            strict_token(|c| remove(c, "sub")),
            Refused("missing_sub"),
        ),
    ];
    for (name, token, expect) in &table {
        let got = match strict.verify(token) {
            Ok(_) => Accepted,
            Err(rejection) => {
                assert_eq!(rejection.status(), 401, "{name}");
                Refused(rejection.cause().expect("every refusal has a cause"))
            }
        };
        assert_eq!(got, *expect, "strict: {name}");
        // Without the strict profile, only `sub` is required of the three.
        let lenient_ok = lenient.verify(token).is_ok();
        assert_eq!(lenient_ok, *name != "no sub", "lenient: {name}");
    }
}

#[test]
fn max_token_lifetime_is_configurable_and_bounded() {
    use portcullis::ConfigError;
    use portcullis::bearer::{BearerAuthenticator, IssuerRules};
    use std::time::Duration;

    let rules = |lifetime| {
        IssuerRules::builder(ISSUER)
            .audience(AUDIENCE)
            .keys(keys())
            .max_token_lifetime(lifetime)
            .build()
    };
    let hour = BearerAuthenticator::builder()
        .issuer(rules(Duration::from_secs(3600)).expect("rules"))
        .no_cache()
        .build()
        .expect("authenticator");
    let now = now();
    let lifetime = |seconds: i64| {
        let mut c = claims();
        c["iat"] = json!(now - 5);
        c["exp"] = json!(now - 5 + seconds);
        mint(&rsa(), &c)
    };
    assert!(hour.verify(&lifetime(3600)).is_ok());
    let refused = hour.verify(&lifetime(3601)).expect_err("too long");
    assert_eq!(refused.cause(), Some("lifetime_too_long"));
    // Ten days is within the largest setting.
    let ten_days = BearerAuthenticator::builder()
        .issuer(rules(Duration::from_secs(10 * 24 * 3600)).expect("rules"))
        .build()
        .expect("authenticator");
    assert!(ten_days.verify(&lifetime(9 * 24 * 3600)).is_ok());

    assert!(matches!(
        rules(Duration::ZERO).err(),
        Some(ConfigError::InvalidLimit {
            setting: "max_token_lifetime"
        })
    ));
    assert!(matches!(
        rules(Duration::from_secs(367 * 24 * 3600)).err(),
        Some(ConfigError::LimitTooLarge {
            setting: "max_token_lifetime",
            ..
        })
    ));
}

#[test]
fn max_token_age_and_missing_typ_options() {
    use portcullis::bearer::{BearerAuthenticator, IssuerRules};
    use std::time::Duration;

    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(keys())
        .max_token_age(Duration::from_secs(600))
        .insecure_allow_missing_typ()
        .build()
        .expect("rules");
    let authenticator = BearerAuthenticator::builder()
        .issuer(rules)
        .no_cache()
        .build()
        .expect("authenticator");
    let now = now();

    let mut h = header(&rsa());
    remove(&mut h, "typ");
    assert!(authenticator.verify(&sign(&h, &claims(), &rsa())).is_ok());
    h["typ"] = json!("JWT");
    assert!(authenticator.verify(&sign(&h, &claims(), &rsa())).is_err());

    let mut old = claims();
    old["iat"] = json!(now - 3600);
    assert!(authenticator.verify(&mint(&rsa(), &old)).is_err());
    let mut no_iat = claims();
    remove(&mut no_iat, "iat");
    assert!(authenticator.verify(&mint(&rsa(), &no_iat)).is_err());
}

#[test]
fn configuration_errors() {
    use portcullis::ConfigError;
    use portcullis::bearer::{BearerAuthenticator, IssuerRules};
    use std::time::Duration;

    let err = IssuerRules::builder(ISSUER).keys(keys()).build().err();
    assert!(matches!(err, Some(ConfigError::MissingAudience { .. })));
    let err = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .build()
        .err();
    assert!(matches!(err, Some(ConfigError::MissingKeys { .. })));
    let err = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(keys())
        .leeway(Duration::from_secs(301))
        .build()
        .err();
    assert!(matches!(err, Some(ConfigError::LeewayTooLarge { .. })));
    // HS256 asked for, but only an RSA key: a configuration error, not a silent downgrade.
    let rsa_only =
        portcullis::bearer::KeySet::new([portcullis::bearer::VerificationKey::from_rsa_pem(
            RSA_PUB,
        )
        .expect("rsa")])
        .expect("set");
    let err = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(rsa_only.clone())
        .algorithms([Algorithm::RS256, Algorithm::HS256])
        .build()
        .err();
    assert!(matches!(err, Some(ConfigError::AlgorithmWithoutKey { .. })));
    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(rsa_only)
        .build()
        .expect("rules");
    assert!(!rules.algorithms().contains(&Algorithm::HS256));
    let err = BearerAuthenticator::builder()
        .issuer(rules.clone())
        .issuer(rules.clone())
        .build()
        .err();
    assert!(matches!(err, Some(ConfigError::DuplicateIssuer { .. })));
    let err = BearerAuthenticator::builder()
        .issuer(rules)
        .realm("a\"b")
        .build()
        .err();
    assert!(matches!(err, Some(ConfigError::InvalidRealm { .. })));
    assert!(matches!(
        BearerAuthenticator::builder().build().err(),
        Some(ConfigError::NoIssuer)
    ));
    // Keys from code.
    assert!(portcullis::bearer::VerificationKey::from_rsa_pem(RSA1024_PUB).is_err());
    assert!(portcullis::bearer::VerificationKey::from_rsa_pem(RSA_KEY).is_err());
    assert!(portcullis::bearer::VerificationKey::from_ec_pem(RSA_PUB).is_err());
    assert!(portcullis::bearer::VerificationKey::from_hmac_secret(b"short").is_err());
}
