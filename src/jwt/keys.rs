//! Verification keys: [`VerificationKey`] (one key, bound to the algorithms its type allows)
//! and [`KeySet`] (the keys of one issuer, from code or a JWKS document).
//!
//! Every key is parsed once, when it is loaded; requests only look keys up.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The shortest HMAC secret accepted, in bytes (the output size of SHA-256).
const MIN_HMAC_SECRET_BYTES: usize = 32;
/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits (the most the verifiers handle).
const MAX_RSA_BITS: usize = 8192;
/// The longest `kid` accepted, in bytes.
const MAX_KID_BYTES: usize = 256;

/// RSA algorithms, in the order they are offered by default.
const RSA_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const HMAC_ALGORITHMS: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// What kind of key a [`VerificationKey`] is. The type decides which algorithms the key may
/// verify; a token's `alg` header never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// An RSA public key of 2048 to 8192 bits: `RS256/384/512`, `PS256/384/512`.
    Rsa,
    /// An ECDSA public key on P-256: `ES256` only.
    EcP256,
    /// An ECDSA public key on P-384: `ES384` only.
    EcP384,
    /// An Ed25519 public key: `EdDSA` only.
    Ed25519,
    /// An HMAC secret given in code: `HS256/384/512`. Never loaded from a JWKS.
    Hmac,
}

impl KeyType {
    /// The algorithms a key of this type can verify.
    #[must_use]
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Self::Rsa => RSA_ALGORITHMS,
            Self::EcP256 => &[Algorithm::ES256],
            Self::EcP384 => &[Algorithm::ES384],
            Self::Ed25519 => &[Algorithm::EdDSA],
            Self::Hmac => HMAC_ALGORITHMS,
        }
    }

    /// Whether this is a shared-secret (HMAC) key type.
    #[must_use]
    pub fn is_symmetric(self) -> bool {
        self == Self::Hmac
    }
}

/// Why a key cannot be used to verify token signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM text is not a public key of the expected type.
    #[error("not a PEM-encoded {expected} public key")]
    InvalidPem {
        /// The key type that was expected.
        expected: &'static str,
    },
    /// A JWK member is missing, has the wrong JSON type, or is not valid base64url.
    #[error("JWK member `{member}` is missing or invalid")]
    InvalidMember {
        /// The member's name.
        member: &'static str,
    },
    /// The JWK is not a JSON object.
    #[error("the JWK is not a JSON object")]
    NotAnObject,
    /// The key's `kty` is not one we verify with.
    #[error("key type `{kty}` is not supported")]
    UnsupportedKeyType {
        /// The `kty` given (cut short).
        kty: String,
    },
    /// The key's `crv` is not one we verify with.
    #[error("curve `{crv}` is not supported")]
    UnsupportedCurve {
        /// The `crv` given (cut short).
        crv: String,
    },
    /// A symmetric (`oct`) key was found in a JWKS; shared secrets are only taken from code.
    #[error("symmetric (`oct`) keys are never taken from a JWKS")]
    SymmetricKeyInJwks,
    /// The RSA modulus is too small or too large.
    #[error("RSA modulus of {bits} bits is outside 2048..=8192")]
    RsaModulusSize {
        /// The modulus size in bits.
        bits: usize,
    },
    /// The HMAC secret is shorter than 32 bytes.
    #[error("HMAC secret of {len} bytes is shorter than 32 bytes")]
    HmacSecretTooShort {
        /// The secret's length (never the secret).
        len: usize,
    },
    /// The key's `alg` (or the algorithm asked for) cannot be used with its key type.
    #[error("algorithm `{alg}` cannot be used with this key type")]
    AlgorithmMismatch {
        /// The algorithm named (cut short).
        alg: String,
    },
    /// The key's `use` is not `sig`.
    #[error("key use `{key_use}` is not `sig`")]
    NotForSignatures {
        /// The `use` given (cut short).
        key_use: String,
    },
    /// The key's `key_ops` do not include `verify`.
    #[error("key_ops do not include `verify`")]
    NoVerifyOperation,
    /// The `kid` is empty or longer than 256 bytes.
    #[error("kid is empty or longer than 256 bytes")]
    InvalidKid,
    /// Another key in the same set has the same `kid`.
    #[error("kid `{kid}` appears twice")]
    DuplicateKid {
        /// The repeated kid (cut short).
        kid: String,
    },
}

/// One public key (or HMAC secret) that verifies token signatures.
///
/// The key is parsed once, when it is built. It verifies only the algorithms its
/// [`KeyType`] allows, narrowed to one when the key names its `alg`.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<Arc<str>>,
    key_type: KeyType,
    algorithms: Arc<[Algorithm]>,
    key: Arc<DecodingKey>,
    /// The public key parsed once per algorithm (aws-lc-rs backend).
    #[cfg(feature = "aws-lc-rs")]
    parsed: super::parsed::ParsedKeys,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key material is left out (an HMAC key is a secret).
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    fn new(key_type: KeyType, key: DecodingKey) -> Self {
        // PEM keys, EC points and Ed25519 keys carry their bytes; RSA keys from JWK
        // components are parsed by the caller (`with_public_key`).
        #[cfg(feature = "aws-lc-rs")]
        let parsed = match (key_type, key.try_get_as_bytes()) {
            (KeyType::Hmac, _) | (_, Err(_)) => super::parsed::ParsedKeys::default(),
            (_, Ok(bytes)) => super::parsed::ParsedKeys::new(key_type.algorithms(), bytes),
        };
        Self {
            kid: None,
            key_type,
            algorithms: key_type.algorithms().into(),
            key: Arc::new(key),
            #[cfg(feature = "aws-lc-rs")]
            parsed,
        }
    }

    /// The key, parsed once, for `alg` (aws-lc-rs backend; `None` for HMAC).
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) fn parsed_for(
        &self,
        alg: Algorithm,
    ) -> Option<&aws_lc_rs::signature::ParsedPublicKey> {
        self.parsed.get(alg)
    }

    /// An RSA public key from PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPem`] if the text is not an RSA public key;
    /// [`KeyError::RsaModulusSize`] if its modulus is under 2048 or over 8192 bits.
    pub fn from_rsa_pem(pem: &[u8]) -> Result<Self, KeyError> {
        super::select_crypto_backend();
        let invalid = KeyError::InvalidPem { expected: "RSA" };
        let key = DecodingKey::from_rsa_pem(pem).map_err(|_| invalid.clone())?;
        let der = key.try_get_as_bytes().map_err(|_| invalid.clone())?;
        let bits = rsa_public_key_modulus_bits(der).ok_or(invalid)?;
        check_rsa_bits(bits)?;
        Ok(Self::new(KeyType::Rsa, key))
    }

    /// An ECDSA public key on P-256 or P-384 from PEM (`PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPem`] if the text is not an EC public key on P-256 or P-384.
    pub fn from_ec_pem(pem: &[u8]) -> Result<Self, KeyError> {
        super::select_crypto_backend();
        let invalid = KeyError::InvalidPem { expected: "EC" };
        let key = DecodingKey::from_ec_pem(pem).map_err(|_| invalid.clone())?;
        let point = key.try_get_as_bytes().map_err(|_| invalid.clone())?;
        // An uncompressed point: 0x04 || x || y.
        let key_type = match (point.first(), point.len()) {
            (Some(4), 65) => KeyType::EcP256,
            (Some(4), 97) => KeyType::EcP384,
            _ => return Err(invalid),
        };
        Ok(Self::new(key_type, key))
    }

    /// An Ed25519 public key from PEM (`PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPem`] if the text is not an Ed25519 public key.
    pub fn from_ed_pem(pem: &[u8]) -> Result<Self, KeyError> {
        super::select_crypto_backend();
        let invalid = KeyError::InvalidPem {
            expected: "Ed25519",
        };
        let key = DecodingKey::from_ed_pem(pem).map_err(|_| invalid.clone())?;
        if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32) {
            return Err(invalid);
        }
        Ok(Self::new(KeyType::Ed25519, key))
    }

    /// An HMAC secret (for `HS256/384/512`), given in code. Shared secrets are never loaded
    /// from a JWKS.
    ///
    /// # Errors
    ///
    /// [`KeyError::HmacSecretTooShort`] if the secret is shorter than 32 bytes.
    pub fn from_hmac_secret(secret: &[u8]) -> Result<Self, KeyError> {
        super::select_crypto_backend();
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(KeyError::HmacSecretTooShort { len: secret.len() });
        }
        Ok(Self::new(KeyType::Hmac, DecodingKey::from_secret(secret)))
    }

    /// A public key from one JWK (RFC 7517) JSON object: `kty` `RSA`, `EC` (`P-256`,
    /// `P-384`) or `OKP` (`Ed25519`). Its `kid` and `alg` are kept; `use` must be `sig` and
    /// `key_ops` must include `verify` when present. `oct` keys are refused: use
    /// [`from_hmac_secret`](Self::from_hmac_secret).
    ///
    /// # Errors
    ///
    /// A [`KeyError`] naming the first thing wrong with the JWK.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        super::select_crypto_backend();
        let jwk = jwk.as_object().ok_or(KeyError::NotAnObject)?;
        if let Some(key_use) = jwk.get("use") {
            match key_use.as_str() {
                Some("sig") => {}
                Some(other) => {
                    return Err(KeyError::NotForSignatures {
                        key_use: short(other),
                    });
                }
                None => return Err(KeyError::InvalidMember { member: "use" }),
            }
        }
        if let Some(ops) = jwk.get("key_ops") {
            let ops = ops
                .as_array()
                .ok_or(KeyError::InvalidMember { member: "key_ops" })?;
            let mut verify = false;
            for op in ops {
                let op = op
                    .as_str()
                    .ok_or(KeyError::InvalidMember { member: "key_ops" })?;
                verify |= op == "verify";
            }
            if !verify {
                return Err(KeyError::NoVerifyOperation);
            }
        }
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) => {
                check_kid(kid)?;
                Some(Arc::<str>::from(kid.as_str()))
            }
            Some(_) => return Err(KeyError::InvalidMember { member: "kid" }),
        };
        let kty = member_str(jwk, "kty")?;
        let (key_type, key) = match kty {
            "RSA" => {
                let n = member_bytes(jwk, "n")?;
                let e = member_bytes(jwk, "e")?;
                let n = strip_leading_zeros(&n);
                let e = strip_leading_zeros(&e);
                if e.is_empty() || e.len() > 8 {
                    return Err(KeyError::InvalidMember { member: "e" });
                }
                check_rsa_bits(bit_length(n))?;
                let key = DecodingKey::from_rsa_raw_components(n, e);
                #[cfg(feature = "aws-lc-rs")]
                let der = super::parsed::rsa_public_key_der(n, e);
                let mut key = Self::new(KeyType::Rsa, key);
                #[cfg(feature = "aws-lc-rs")]
                {
                    key.parsed = super::parsed::ParsedKeys::new(KeyType::Rsa.algorithms(), &der);
                }
                key.kid = kid;
                return match jwk.get("alg") {
                    None => Ok(key),
                    Some(Value::String(alg)) => key.only_algorithm_named(alg),
                    Some(_) => Err(KeyError::InvalidMember { member: "alg" }),
                };
            }
            "EC" => {
                let (key_type, size) = match member_str(jwk, "crv")? {
                    "P-256" => (KeyType::EcP256, 32),
                    "P-384" => (KeyType::EcP384, 48),
                    other => return Err(KeyError::UnsupportedCurve { crv: short(other) }),
                };
                let x = member_bytes(jwk, "x")?;
                let y = member_bytes(jwk, "y")?;
                if x.len() != size {
                    return Err(KeyError::InvalidMember { member: "x" });
                }
                if y.len() != size {
                    return Err(KeyError::InvalidMember { member: "y" });
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (key_type, DecodingKey::from_ec_der(&point))
            }
            "OKP" => {
                match member_str(jwk, "crv")? {
                    "Ed25519" => {}
                    other => return Err(KeyError::UnsupportedCurve { crv: short(other) }),
                }
                let x = member_bytes(jwk, "x")?;
                if x.len() != 32 {
                    return Err(KeyError::InvalidMember { member: "x" });
                }
                (KeyType::Ed25519, DecodingKey::from_ed_der(&x))
            }
            "oct" => return Err(KeyError::SymmetricKeyInJwks),
            other => return Err(KeyError::UnsupportedKeyType { kty: short(other) }),
        };
        let mut key = Self::new(key_type, key);
        key.kid = kid;
        match jwk.get("alg") {
            None => Ok(key),
            Some(Value::String(alg)) => key.only_algorithm_named(alg),
            Some(_) => Err(KeyError::InvalidMember { member: "alg" }),
        }
    }

    /// Names this key with `kid`, the string tokens use to pick it. Keys built from PEM or
    /// a secret have no `kid` until given one.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidKid`] if `kid` is empty or longer than 256 bytes.
    pub fn with_kid(mut self, kid: &str) -> Result<Self, KeyError> {
        check_kid(kid)?;
        self.kid = Some(kid.into());
        Ok(self)
    }

    /// Restricts this key to the single algorithm `alg`.
    ///
    /// # Errors
    ///
    /// [`KeyError::AlgorithmMismatch`] if the key's type cannot verify `alg`.
    pub fn with_algorithm(mut self, alg: Algorithm) -> Result<Self, KeyError> {
        if !self.key_type.algorithms().contains(&alg) {
            return Err(KeyError::AlgorithmMismatch {
                alg: format!("{alg:?}"),
            });
        }
        self.algorithms = Arc::new([alg]);
        Ok(self)
    }

    fn only_algorithm_named(self, alg: &str) -> Result<Self, KeyError> {
        let mismatch = || KeyError::AlgorithmMismatch { alg: short(alg) };
        let parsed: Algorithm = alg.parse().map_err(|_| mismatch())?;
        self.with_algorithm(parsed).map_err(|_| mismatch())
    }

    /// The key's identifier, if it has one.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's type.
    #[must_use]
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The algorithms this key may verify.
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Whether this key may verify a signature made with `alg`.
    #[must_use]
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// A key that [`KeySet::from_jwks`] left out, and why; for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's position in the document's `keys` array.
    pub index: usize,
    /// The key's `kid`, when it has a string one (cut short).
    pub kid: Option<String>,
    /// Why it was left out.
    pub reason: KeyError,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key {} (kid `{kid}`): {}", self.index, self.reason),
            None => write!(f, "key {}: {}", self.index, self.reason),
        }
    }
}

/// Why a key set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// The document is not JSON, or not an object with a `keys` array.
    #[error("the JWKS document is not a JSON object with a `keys` array")]
    NotAKeySet,
    /// No usable key is left (every key was skipped, or none was given).
    #[error("the key set has no usable key ({} skipped)", skipped.len())]
    NoUsableKeys {
        /// The keys that were left out, and why.
        skipped: Vec<SkippedKey>,
    },
    /// Two keys given in code have the same `kid`.
    #[error("kid `{kid}` appears twice")]
    DuplicateKid {
        /// The repeated kid.
        kid: String,
    },
}

/// The keys one issuer signs with.
///
/// Cloning is a reference-count increment. A set is never empty.
#[derive(Clone)]
pub struct KeySet {
    keys: Arc<[VerificationKey]>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter()).finish()
    }
}

/// Why no key could be chosen for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// No key has the token's `kid`, or no `kid` and several keys could verify the token.
    UnknownKid,
    /// The key found cannot verify the token's algorithm.
    AlgorithmNotAllowed,
}

impl KeySet {
    /// A set of keys given in code.
    ///
    /// # Errors
    ///
    /// [`KeySetError::NoUsableKeys`] if `keys` is empty; [`KeySetError::DuplicateKid`] if
    /// two keys share a `kid`.
    pub fn new(keys: impl IntoIterator<Item = VerificationKey>) -> Result<Self, KeySetError> {
        let keys: Vec<VerificationKey> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(KeySetError::NoUsableKeys {
                skipped: Vec::new(),
            });
        }
        for (index, key) in keys.iter().enumerate() {
            if let Some(kid) = key.kid()
                && keys[..index]
                    .iter()
                    .any(|earlier| earlier.kid() == Some(kid))
            {
                return Err(KeySetError::DuplicateKid {
                    kid: kid.to_owned(),
                });
            }
        }
        Ok(Self { keys: keys.into() })
    }

    /// The signature keys of a JWKS document (`{"keys":[...]}`), each parsed on its own, so
    /// that one unknown or bad key never drops the others. Keys that are not for signatures
    /// (`use` other than `sig`, `key_ops` without `verify`), `oct` keys, RSA keys under
    /// 2048 bits, unknown key types or curves, and keys whose `alg` contradicts their type
    /// are skipped and listed, with the reason, for logs.
    ///
    /// # Errors
    ///
    /// [`KeySetError::NotAKeySet`] if the document cannot be parsed;
    /// [`KeySetError::NoUsableKeys`] if no key is left.
    pub fn from_jwks(json: &[u8]) -> Result<(Self, Vec<SkippedKey>), KeySetError> {
        super::select_crypto_backend();
        let document: Value = serde_json::from_slice(json).map_err(|_| KeySetError::NotAKeySet)?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeySetError::NotAKeySet)?;
        let mut keys: Vec<VerificationKey> = Vec::with_capacity(entries.len());
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let kid = entry.get("kid").and_then(Value::as_str).map(short);
            let parsed = VerificationKey::from_jwk(entry).and_then(|key| match key.kid() {
                Some(kid) if keys.iter().any(|earlier| earlier.kid() == Some(kid)) => {
                    Err(KeyError::DuplicateKid { kid: short(kid) })
                }
                _ => Ok(key),
            });
            match parsed {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push(SkippedKey { index, kid, reason }),
            }
        }
        if keys.is_empty() {
            return Err(KeySetError::NoUsableKeys { skipped });
        }
        Ok((Self { keys: keys.into() }, skipped))
    }

    /// The keys, in the order given.
    #[must_use]
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// Every algorithm some key in the set may verify.
    #[must_use]
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut out: Vec<Algorithm> = Vec::new();
        for alg in self.keys.iter().flat_map(|key| key.algorithms().iter()) {
            if !out.contains(alg) {
                out.push(*alg);
            }
        }
        out
    }

    /// Chooses the key for a token: by `kid` when the token names one (only a lookup
    /// string, compared exactly); otherwise the single key that may verify `alg`.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&VerificationKey, SelectError> {
        match kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|key| key.kid() == Some(kid))
                    .ok_or(SelectError::UnknownKid)?;
                if key.allows(alg) {
                    Ok(key)
                } else {
                    Err(SelectError::AlgorithmNotAllowed)
                }
            }
            None => {
                let mut usable = self.keys.iter().filter(|key| key.allows(alg));
                match (usable.next(), usable.next()) {
                    (Some(key), None) => Ok(key),
                    (None, _) => Err(SelectError::AlgorithmNotAllowed),
                    (Some(_), Some(_)) => Err(SelectError::UnknownKid),
                }
            }
        }
    }
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() || kid.len() > MAX_KID_BYTES {
        return Err(KeyError::InvalidKid);
    }
    Ok(())
}

fn check_rsa_bits(bits: usize) -> Result<(), KeyError> {
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(KeyError::RsaModulusSize { bits })
    }
}

fn member_str<'a>(
    jwk: &'a serde_json::Map<String, Value>,
    member: &'static str,
) -> Result<&'a str, KeyError> {
    jwk.get(member)
        .and_then(Value::as_str)
        .ok_or(KeyError::InvalidMember { member })
}

fn member_bytes(
    jwk: &serde_json::Map<String, Value>,
    member: &'static str,
) -> Result<Vec<u8>, KeyError> {
    let text = member_str(jwk, member)?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KeyError::InvalidMember { member })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(&first) => (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

/// The modulus size of a PKCS#1 `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`), or
/// `None` if `der` is not exactly that (a private key has more integers, so it is refused).
pub(super) fn rsa_public_key_modulus_bits(der: &[u8]) -> Option<usize> {
    let (sequence, rest) = der_element(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (modulus, rest) = der_element(sequence, 0x02)?;
    let (exponent, rest) = der_element(rest, 0x02)?;
    if !rest.is_empty() || strip_leading_zeros(exponent).is_empty() {
        return None;
    }
    Some(bit_length(strip_leading_zeros(modulus)))
}

/// Splits one DER element with tag `tag` off the front of `input`: (contents, rest).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 {
            return None;
        }
        let (len_bytes, rest) = (rest.get(..count)?, rest.get(count..)?);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// Cuts text from a key document to a length fit for an error message.
fn short(text: &str) -> String {
    crate::text::truncate(text, 64).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every asymmetric key is parsed once for the aws-lc-rs backend, whichever way it was
    /// loaded; HMAC secrets stay with jsonwebtoken.
    #[cfg(feature = "aws-lc-rs")]
    #[test]
    fn asymmetric_keys_are_parsed_once_for_each_of_their_algorithms() {
        let fixture = |name: &str| {
            std::fs::read(format!(
                "{}/tests/fixtures/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("fixture")
        };
        let rsa = VerificationKey::from_rsa_pem(&fixture("rsa2048.pub")).expect("rsa");
        for alg in KeyType::Rsa.algorithms() {
            assert!(rsa.parsed_for(*alg).is_some(), "{alg:?}");
        }
        assert!(rsa.parsed_for(Algorithm::ES256).is_none());
        let ec = VerificationKey::from_ec_pem(&fixture("p256.pub")).expect("ec");
        assert!(ec.parsed_for(Algorithm::ES256).is_some());
        let ed = VerificationKey::from_ed_pem(&fixture("ed25519.pub")).expect("ed");
        assert!(ed.parsed_for(Algorithm::EdDSA).is_some());
        let hmac = VerificationKey::from_hmac_secret(&[7; 32]).expect("hmac");
        assert!(hmac.parsed_for(Algorithm::HS256).is_none());

        // A JWK's RSA components become PKCS#1 DER that aws-lc-rs accepts.
        let pem = DecodingKey::from_rsa_pem(&fixture("rsa2048.pub")).expect("pem");
        let der = pem.try_get_as_bytes().expect("der");
        let (sequence, _) = der_element(der, 0x30).expect("sequence");
        let (n, rest) = der_element(sequence, 0x02).expect("n");
        let (e, _) = der_element(rest, 0x02).expect("e");
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(strip_leading_zeros(n)),
            "e": URL_SAFE_NO_PAD.encode(strip_leading_zeros(e)),
        });
        let from_jwk = VerificationKey::from_jwk(&jwk).expect("jwk");
        assert!(from_jwk.parsed_for(Algorithm::RS256).is_some());
        assert!(from_jwk.parsed_for(Algorithm::PS512).is_some());
    }

    #[test]
    fn der_modulus_bits() {
        // SEQUENCE { INTEGER 0x00 0xff (8 bits), INTEGER 3 }
        let der = [0x30, 0x07, 0x02, 0x02, 0x00, 0xff, 0x02, 0x01, 0x03];
        assert_eq!(rsa_public_key_modulus_bits(&der), Some(8));
        assert_eq!(rsa_public_key_modulus_bits(&der[..8]), None);
        assert_eq!(rsa_public_key_modulus_bits(&[]), None);
    }

    #[test]
    fn hmac_secret_needs_32_bytes() {
        assert!(VerificationKey::from_hmac_secret(&[7; 31]).is_err());
        let key = VerificationKey::from_hmac_secret(&[7; 32]);
        assert!(key.is_ok_and(|key| key.allows(Algorithm::HS256) && !key.allows(Algorithm::RS256)));
    }

    #[test]
    fn kid_lookup_is_exact() {
        let key = VerificationKey::from_hmac_secret(&[1; 32]).and_then(|k| k.with_kid("a"));
        let Ok(key) = key else { panic!("key") };
        let Ok(set) = KeySet::new([key]) else {
            panic!("set")
        };
        assert!(set.select(Some("a"), Algorithm::HS256).is_ok());
        assert_eq!(
            set.select(Some("../a"), Algorithm::HS256).err(),
            Some(SelectError::UnknownKid)
        );
        assert_eq!(
            set.select(Some("a"), Algorithm::RS256).err(),
            Some(SelectError::AlgorithmNotAllowed)
        );
        assert!(set.select(None, Algorithm::HS256).is_ok());
    }
}
