//! JWKS loading: each bad key is skipped, with its reason, and the good keys still load.

use jsonwebtoken::jwk::Jwk;
use portcullis::bearer::{
    Algorithm, BearerAuthenticator, IssuerRules, KeyError, KeySet, KeySetError,
};
use serde_json::{Value, json};

use crate::support::*;

fn jwk(signer: &Signer, kid: &str) -> Value {
    let mut value =
        serde_json::to_value(Jwk::from_encoding_key(&signer.key, signer.alg).expect("jwk"))
            .expect("json");
    value["kid"] = json!(kid);
    value
}

fn good_keys() -> Vec<Value> {
    vec![
        jwk(&rsa(), "rsa-1"),
        jwk(&es256(), "ec-1"),
        jwk(&eddsa(), "ed-1"),
    ]
}

fn authenticator_for(set: KeySet) -> BearerAuthenticator {
    let rules = IssuerRules::builder(ISSUER)
        .audience(AUDIENCE)
        .keys(set)
        .build()
        .expect("rules");
    BearerAuthenticator::new(rules)
}

/// Loads the good keys plus `bad`; checks `bad` was skipped for `reason`, the good keys
/// loaded and verify, and a token naming the bad key (signed by `bad_signer`) is refused.
fn check_skipped(
    name: &str,
    bad: Value,
    reason: impl Fn(&KeyError) -> bool,
    bad_signer: Option<Signer>,
) {
    let mut keys = good_keys();
    keys.insert(1, bad.clone());
    let document = json!({ "keys": keys }).to_string();
    let (set, skipped) = KeySet::from_jwks(document.as_bytes()).expect(name);
    assert_eq!(set.keys().len(), 3, "{name}: good keys load");
    assert_eq!(skipped.len(), 1, "{name}: {skipped:?}");
    assert_eq!(skipped[0].index, 1, "{name}");
    assert!(reason(&skipped[0].reason), "{name}: {}", skipped[0]);

    let authenticator = authenticator_for(set);
    for signer in [rsa(), es256(), eddsa()] {
        assert!(
            authenticator.verify(&mint(&signer, &claims())).is_ok(),
            "{name}: {:?} still verifies",
            signer.alg
        );
    }
    if let Some(signer) = bad_signer {
        assert!(
            authenticator.verify(&mint(&signer, &claims())).is_err(),
            "{name}"
        );
    }
}

#[test]
fn bad_keys_are_skipped_and_good_keys_stay() {
    let other = rsa_other();

    let mut enc = jwk(&other, "enc");
    enc["use"] = json!("enc");
    check_skipped(
        "use enc",
        enc,
        |r| matches!(r, KeyError::NotForSignatures { .. }),
        Some(Signer {
            kid: Some("enc"),
            ..other.clone()
        }),
    );

    let weak: Value = serde_json::from_str(RSA1024_JWK).expect("fixture");
    check_skipped(
        "RSA 1024",
        weak,
        |r| matches!(r, KeyError::RsaModulusSize { bits: 1024 }),
        None,
    );

    let oct = json!({ "kty": "oct", "kid": "hs-1", "k": b64(HMAC_SECRET), "alg": "HS256" });
    check_skipped(
        "oct",
        oct,
        |r| matches!(r, KeyError::SymmetricKeyInJwks),
        Some(hs256()),
    );

    let mut contradicting = jwk(&other, "contra");
    contradicting["alg"] = json!("ES256");
    check_skipped(
        "RSA key with alg ES256",
        contradicting,
        |r| matches!(r, KeyError::AlgorithmMismatch { .. }),
        Some(Signer {
            kid: Some("contra"),
            ..other.clone()
        }),
    );

    let mut encrypt = jwk(&other, "ops");
    encrypt["key_ops"] = json!(["encrypt"]);
    check_skipped(
        "key_ops encrypt",
        encrypt,
        |r| matches!(r, KeyError::NoVerifyOperation),
        Some(Signer {
            kid: Some("ops"),
            ..other.clone()
        }),
    );

    check_skipped(
        "unknown kty",
        json!({ "kty": "PQC", "kid": "future", "pub": "AAAA" }),
        |r| matches!(r, KeyError::UnsupportedKeyType { .. }),
        None,
    );
    check_skipped(
        "unknown curve",
        json!({ "kty": "EC", "crv": "secp256k1", "kid": "k1", "x": "AAAA", "y": "AAAA" }),
        |r| matches!(r, KeyError::UnsupportedCurve { .. }),
        None,
    );
    check_skipped(
        "Ed448",
        json!({ "kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "AAAA" }),
        |r| matches!(r, KeyError::UnsupportedCurve { .. }),
        None,
    );
    check_skipped(
        "duplicate kid",
        jwk(&other, "rsa-1"),
        |r| matches!(r, KeyError::DuplicateKid { .. }),
        None,
    );
    check_skipped(
        "not an object",
        json!("rsa"),
        |r| matches!(r, KeyError::NotAnObject),
        None,
    );
    check_skipped(
        "EC point of the wrong size",
        json!({ "kty": "EC", "crv": "P-256", "kid": "short", "x": b64([1u8; 31]), "y": b64([1u8; 32]) }),
        |r| matches!(r, KeyError::InvalidMember { member: "x" }),
        None,
    );
}

#[test]
fn jwk_alg_narrows_the_key() {
    let mut narrowed = jwk(&rsa(), "rsa-1");
    narrowed["alg"] = json!("PS256");
    narrowed["use"] = json!("sig");
    narrowed["key_ops"] = json!(["verify"]);
    let document = json!({ "keys": [narrowed] }).to_string();
    let (set, skipped) = KeySet::from_jwks(document.as_bytes()).expect("set");
    assert!(skipped.is_empty());
    assert_eq!(set.keys()[0].algorithms(), [Algorithm::PS256]);
    let authenticator = authenticator_for(set);
    assert!(
        authenticator.verify(&mint(&rsa(), &claims())).is_err(),
        "RS256 refused"
    );
    let ps = Signer {
        alg: Algorithm::PS256,
        ..rsa()
    };
    assert!(authenticator.verify(&mint(&ps, &claims())).is_ok());
}

#[test]
fn unusable_documents_are_errors() {
    for document in [&b"not json"[..], b"{}", b"[]", br#"{"keys":{}}"#] {
        assert_eq!(
            KeySet::from_jwks(document).err(),
            Some(KeySetError::NotAKeySet)
        );
    }
    let only_bad = json!({ "keys": [{ "kty": "oct", "k": "AAAA" }] }).to_string();
    assert!(matches!(
        KeySet::from_jwks(only_bad.as_bytes()),
        Err(KeySetError::NoUsableKeys { skipped }) if skipped.len() == 1
    ));
    assert!(matches!(
        KeySet::from_jwks(br#"{"keys":[]}"#),
        Err(KeySetError::NoUsableKeys { .. })
    ));
}
