//! Parsing a compact JWS (`header.payload.signature`) strictly, and checking its signature.
//!
//! Nothing here trusts the token: sizes are bounded before decoding, base64url must be
//! canonical and unpadded, JSON objects must not repeat a member, the header may not name
//! keys (`jwk`, `jku`, `x5u`, `x5c`) or critical extensions, and `alg` is only a lookup into
//! an allow-list that the key's type has already narrowed.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::keys::VerificationKey;

/// Why a token was refused: the machine-readable reason that goes to the logs, and the
/// short text the client reads in `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// The signature does not verify with the chosen key.
    BadSignature,
    /// No key has the token's `kid` (or no `kid` and the key is ambiguous).
    UnknownKid,
    /// `alg` is `none`, unknown, not allowed for the issuer, or not for the chosen key.
    AlgNotAllowed,
    /// `typ` is missing or not `at+jwt`.
    TypMismatch,
    /// The header has a `crit` member.
    CritUnsupported,
    /// The header carries a key or a key URL (`jwk`, `jku`, `x5u`, `x5c`).
    HeaderKeyRefused,
    /// `aud` names none of the accepted audiences.
    AudMismatch,
    /// `iss` is not a configured issuer.
    IssMismatch,
    /// A claim or header member has the wrong JSON type.
    ClaimType,
    /// A required claim is missing.
    MissingClaim,
    /// `nbf` is in the future (beyond the leeway).
    NbfFuture,
    /// `iat` is in the future (beyond the leeway).
    IatFuture,
    /// `iat` is older than the maximum token age.
    TooOld,
    /// The token is longer than the size limit.
    TooLarge,
    /// The token is not a well-formed compact JWS.
    Malformed,
    /// The token has no `sub` (RFC 9068 section 2.2 requires one in access tokens).
    MissingSub,
    /// The header's `cty` says the payload is itself a JWT: we never verify a token
    /// inside a token.
    NestedJwt,
    /// A time claim (`exp`, `nbf`, `iat`) is negative, not finite, or after year 9999.
    TimeOutOfRange,
    /// The token lives longer than the issuer's maximum token lifetime.
    LifetimeTooLong,
    /// The strict RFC 9068 profile is on and `iat` is missing.
    MissingIat,
    /// The strict RFC 9068 profile is on and `jti` is missing.
    MissingJti,
    /// The strict RFC 9068 profile is on and `client_id` is missing.
    MissingClientId,
    /// An opaque token is shorter than the introspection minimum.
    TooShort,
}

impl Failure {
    /// The stable code logged as `reason`.
    pub(crate) const fn code(self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            Self::BadSignature => "bad_signature",
            Self::UnknownKid => "unknown_kid",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::TypMismatch => "typ_mismatch",
            Self::CritUnsupported => "crit_unsupported",
            Self::HeaderKeyRefused => "header_key_refused",
            Self::AudMismatch => "aud_mismatch",
            Self::IssMismatch => "iss_mismatch",
            Self::ClaimType => "claim_type",
            Self::MissingClaim => "missing_claim",
            Self::NbfFuture => "nbf_future",
            Self::IatFuture => "iat_future",
            Self::TooOld => "too_old",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::MissingSub => "missing_sub",
            Self::NestedJwt => "nested_jwt",
            Self::TimeOutOfRange => "time_out_of_range",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::MissingIat => "missing_iat",
            Self::MissingJti => "missing_jti",
            Self::MissingClientId => "missing_client_id",
            Self::TooShort => "too_short",
        }
    }

    /// What the client is told. Failures that only an attacker or a misconfigured issuer
    /// would cause share one text, so the response does not guide forgery.
    pub(crate) const fn detail(self) -> &'static str {
        match self {
            Self::Expired => "The token has expired.",
            Self::NbfFuture | Self::IatFuture => "The token is not yet valid.",
            Self::TooOld => "The token is too old.",
            Self::AudMismatch => "The token is not meant for this audience.",
            Self::IssMismatch => "The token's issuer is not trusted.",
            Self::TypMismatch => "The token is not an access token.",
            Self::TooLarge => "The token is too large.",
            Self::Malformed | Self::TooShort => "The token is malformed.",
            _ => "The token is not valid.",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    /// The algorithm named in the header (never `none`).
    pub(crate) alg: Algorithm,
    /// The header's `kid`, a lookup string only.
    pub(crate) kid: Option<String>,
    /// The header's `typ`, if present.
    pub(crate) typ: Option<String>,
    /// The payload, parsed once.
    pub(crate) claims: Map<String, Value>,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    signing_input: &'a str,
    /// The signature, still base64url.
    signature: &'a str,
}

/// Header members that carry or point at a key; we never use them, and a token that sends
/// one is refused rather than risk a later change honouring it.
const KEY_BEARING_HEADERS: &[&str] = &["jwk", "jku", "x5u", "x5c"];

/// Splits and decodes `token` (already checked against the size limit).
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, Failure> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::Malformed);
    };
    let signing_input = &token[..header.len() + 1 + payload.len()];

    // The header first, so that `alg: none` is logged as such whatever follows it.
    let header = decode_object(header)?;
    let (alg, kid, typ) = check_header(&header)?;
    if payload.is_empty() || signature.is_empty() {
        return Err(Failure::Malformed);
    }
    let claims = decode_object(payload)?;
    Ok(Unverified {
        alg,
        kid,
        typ,
        claims,
        signing_input,
        signature,
    })
}

fn check_header(
    header: &Map<String, Value>,
) -> Result<(Algorithm, Option<String>, Option<String>), Failure> {
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(Failure::ClaimType),
        None => return Err(Failure::Malformed),
    };
    // `none` in any spelling is never an algorithm we verify; `FromStr` is exact, so
    // every other spelling of anything is refused too.
    if alg.eq_ignore_ascii_case("none") {
        return Err(Failure::AlgNotAllowed);
    }
    let alg: Algorithm = alg.parse().map_err(|_| Failure::AlgNotAllowed)?;
    if KEY_BEARING_HEADERS
        .iter()
        .any(|name| header.contains_key(*name))
    {
        return Err(Failure::HeaderKeyRefused);
    }
    if header.contains_key("crit") {
        // We understand no extension, so any `crit` names one we do not (RFC 7515 4.1.11).
        return Err(Failure::CritUnsupported);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Failure::ClaimType),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(typ)) => Some(typ.clone()),
        Some(_) => return Err(Failure::ClaimType),
    };
    match header.get("cty") {
        None => {}
        // A nested JWT (RFC 7519 section 5.2): the payload would be another token, whose
        // checks we would have to repeat; access tokens are never nested.
        Some(Value::String(cty)) if is_generic_jwt_typ(cty) => return Err(Failure::NestedJwt),
        Some(Value::String(_)) => {}
        Some(_) => return Err(Failure::ClaimType),
    }
    Ok((alg, kid, typ))
}

/// Whether `typ` names a JWT access token (RFC 9068): `at+jwt` or `application/at+jwt`.
pub(crate) fn is_access_token_typ(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case("at+jwt")
}

/// Whether `typ` names a back-channel logout token: `logout+jwt` or
/// `application/logout+jwt`.
#[cfg(feature = "oidc")]
pub(crate) fn is_logout_token_typ(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case("logout+jwt")
}

/// Whether `typ` is the generic `JWT` (or `application/jwt`).
pub(crate) fn is_generic_jwt_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("jwt") || typ.eq_ignore_ascii_case("application/jwt")
}

impl Unverified<'_> {
    /// Checks the signature with `key`, which must allow the token's algorithm.
    pub(crate) fn verify(&self, key: &VerificationKey) -> Result<(), Failure> {
        if !key.allows(self.alg) {
            return Err(Failure::AlgNotAllowed);
        }
        if !signature_shape_ok(self.alg, self.signature) {
            return Err(Failure::BadSignature);
        }
        #[cfg(feature = "aws-lc-rs")]
        if let Some(parsed) = key.parsed_for(self.alg) {
            // Decoded as jsonwebtoken decodes it (base64url, no padding), into the stack.
            let mut signature = [0_u8; super::parsed::MAX_SIGNATURE_BYTES];
            let Ok(len) = URL_SAFE_NO_PAD.decode_slice(self.signature, &mut signature) else {
                return Err(Failure::BadSignature);
            };
            let message = self.signing_input.as_bytes();
            return match signature.get(..len) {
                Some(signature) if parsed.verify_sig(message, signature).is_ok() => Ok(()),
                _ => Err(Failure::BadSignature),
            };
        }
        match jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            key.decoding_key(),
            self.alg,
        ) {
            Ok(true) => Ok(()),
            _ => Err(Failure::BadSignature),
        }
    }
}

/// Checks what can be checked of a signature before the cryptography: its length for
/// fixed-size algorithms, and that neither ECDSA half is zero.
fn signature_shape_ok(alg: Algorithm, signature: &str) -> bool {
    let expected: usize = match alg {
        Algorithm::ES256 | Algorithm::EdDSA => 64,
        Algorithm::ES384 => 96,
        // RSA signatures are as long as the modulus; HMAC tags are compared in full by the
        // verifier. Both are bounded by the token size limit.
        _ => return true,
    };
    // Base64url without padding: 4 characters per 3 bytes.
    if signature.len() != (expected * 4).div_ceil(3) {
        return false;
    }
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    if bytes.len() != expected {
        return false;
    }
    if matches!(alg, Algorithm::ES256 | Algorithm::ES384) {
        let (r, s) = bytes.split_at(expected / 2);
        if r.iter().all(|&b| b == 0) || s.iter().all(|&b| b == 0) {
            return false;
        }
    }
    true
}

/// Decodes one base64url part into a JSON object whose members are all distinct.
fn decode_object(part: &str) -> Result<Map<String, Value>, Failure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Failure::Malformed)?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let object =
        UniqueObject::deserialize_from(&mut deserializer).map_err(|_| Failure::Malformed)?;
    deserializer.end().map_err(|_| Failure::Malformed)?;
    Ok(object)
}

/// A JSON object whose top-level members must be distinct: two `alg`s or two `exp`s are a
/// parser-differential attack, never an honest token.
struct UniqueObject;

impl UniqueObject {
    fn deserialize_from<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Map<String, Value>, D::Error> {
        deserializer.deserialize_map(UniqueObject)
    }
}

impl<'de> Visitor<'de> for UniqueObject {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with distinct members")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom("duplicate member"));
            }
            let value: Value = access.next_value()?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(payload))
    }

    #[test]
    fn refuses_duplicate_members() {
        let t = token(r#"{"alg":"RS256","alg":"none"}"#, "{}");
        assert_eq!(parse(&t).err(), Some(Failure::Malformed));
        let t = token(r#"{"alg":"RS256"}"#, r#"{"exp":1,"exp":2}"#);
        assert_eq!(parse(&t).err(), Some(Failure::Malformed));
    }

    #[test]
    fn refuses_none_in_any_case() {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(parse(&t).err(), Some(Failure::AlgNotAllowed), "{alg}");
        }
    }

    #[test]
    fn refuses_padding_and_wrong_part_counts() {
        let t = format!("{}=.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("{}"));
        assert_eq!(parse(&t).err(), Some(Failure::Malformed));
        assert_eq!(parse("a.b").err(), Some(Failure::Malformed));
        assert_eq!(parse("a.b.c.d").err(), Some(Failure::Malformed));
        assert_eq!(parse("..").err(), Some(Failure::Malformed));
    }

    #[test]
    fn typ_spellings() {
        assert!(is_access_token_typ("at+jwt"));
        assert!(is_access_token_typ("application/AT+JWT"));
        assert!(!is_access_token_typ("JWT"));
        assert!(!is_access_token_typ("application/"));
        assert!(!is_access_token_typ("é"));
    }

    #[test]
    fn refuses_nested_jwts_in_any_spelling() {
        for cty in ["JWT", "jwt", "Jwt", "application/jwt", "APPLICATION/JWT"] {
            let t = token(&format!(r#"{{"alg":"RS256","cty":"{cty}"}}"#), "{}");
            assert_eq!(parse(&t).err(), Some(Failure::NestedJwt), "{cty}");
        }
        let t = token(r#"{"alg":"RS256","cty":1}"#, "{}");
        assert_eq!(parse(&t).err(), Some(Failure::ClaimType));
        let t = token(r#"{"alg":"RS256","cty":"jwt+x"}"#, "{}");
        assert!(parse(&t).is_ok());
    }

    #[test]
    fn ecdsa_zero_signature_is_refused_before_crypto() {
        let zero = URL_SAFE_NO_PAD.encode([0u8; 64]);
        assert!(!signature_shape_ok(Algorithm::ES256, &zero));
        assert!(!signature_shape_ok(Algorithm::ES256, "AAAA"));
    }
}
