//! The API key format: `{prefix}_{id}{secret}{checksum}`.
//!
//! - `prefix`: 2–16 lowercase letters or digits naming the issuer (default `pcl`), so a
//!   leaked key is recognisable by secret scanners and by people;
//! - `id`: 12 base62 characters, random, not secret: how the store finds the key;
//! - `secret`: 32 base62 characters (190 bits) from the operating system's CSPRNG;
//! - `checksum`: the CRC-32 of everything before it, as 6 base62 characters, so a mistyped
//!   or invented key is refused before any store lookup.

use std::fmt;
use std::sync::Arc;

use crate::error::ConfigError;
use crate::secret::ApiKey;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the key id.
pub(crate) const ID_LEN: usize = 12;
/// Length of the secret part.
const SECRET_LEN: usize = 32;
/// Length of the checksum.
const CHECKSUM_LEN: usize = 6;
/// Length of everything after `prefix_`.
const BODY_LEN: usize = ID_LEN + SECRET_LEN + CHECKSUM_LEN;

/// The shape of the keys a store issues and an authenticator accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: Arc<str>,
}

impl Default for KeyFormat {
    /// The `pcl` prefix.
    fn default() -> Self {
        Self {
            prefix: Arc::from("pcl"),
        }
    }
}

/// Why a presented key does not have the format. Both answers lead to the same 401; the
/// difference only shows in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// Wrong prefix, length or alphabet.
    Malformed,
    /// The shape is right but the checksum is not.
    BadChecksum,
}

/// A presented key that has the format: its non-secret id and its secret part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParsedKey<'a> {
    pub(crate) id: KeyId,
    pub(crate) secret: &'a [u8],
}

impl KeyFormat {
    /// A format with the given prefix: 2 to 16 lowercase ASCII letters or digits, e.g. your
    /// company's short name. Choose one that secret scanners can be taught.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKeyPrefix`] when the prefix has another shape.
    pub fn new(prefix: &str) -> Result<Self, ConfigError> {
        let valid = (2..=16).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(ConfigError::InvalidKeyPrefix {
                prefix: prefix.to_owned(),
            });
        }
        Ok(Self {
            prefix: Arc::from(prefix),
        })
    }

    /// The prefix, without the `_`.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Total length of a key in this format.
    #[must_use]
    pub fn key_len(&self) -> usize {
        self.prefix.len() + 1 + BODY_LEN
    }

    /// Generates a new key for a [`KeyStore`](super::KeyStore) implementation to issue: its
    /// id, the key text to hand out once, and the digest to store.
    ///
    /// # Errors
    ///
    /// [`StoreError::Randomness`](super::StoreError::Randomness) when the operating system
    /// cannot provide random bytes.
    pub fn generate_key(&self) -> Result<GeneratedKey, super::StoreError> {
        let (id, key) = self
            .generate()
            .map_err(|error| super::StoreError::Randomness(error.to_string()))?;
        let parsed = self
            .parse(key.expose_secret().as_bytes())
            .map_err(|_| super::StoreError::Randomness("generated key does not parse".into()))?;
        let digest = crate::secret::KeyDigest::of_bytes(parsed.secret);
        Ok(GeneratedKey { id, key, digest })
    }

    /// Generates a new key from the operating system's CSPRNG.
    pub(crate) fn generate(&self) -> Result<(KeyId, ApiKey), getrandom::Error> {
        let mut text = String::with_capacity(self.key_len());
        text.push_str(&self.prefix);
        text.push('_');
        let mut random = [0u8; ID_LEN + SECRET_LEN];
        fill_base62(&mut random)?;
        text.extend(random.iter().map(|&b| char::from(b)));
        let checksum = crc32fast::hash(text.as_bytes());
        push_base62_fixed(&mut text, checksum);
        let id_start = self.prefix.len() + 1;
        let id = KeyId::parse(&text[id_start..id_start + ID_LEN])
            .unwrap_or_else(|| unreachable!("generated ids are base62"));
        Ok((id, ApiKey::new(text, id_start + ID_LEN)))
    }

    /// Checks the prefix, length, alphabet and checksum of a presented key (its bytes, as
    /// sent: anything not base62 is malformed), in that order, without allocating.
    pub(crate) fn parse<'a>(&self, key: &'a [u8]) -> Result<ParsedKey<'a>, FormatError> {
        let body = key
            .strip_prefix(self.prefix.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"_"))
            .ok_or(FormatError::Malformed)?;
        // Every byte looked at (no early exit), which the compiler turns into vector code.
        let alphanumeric = body
            .iter()
            .fold(true, |all, byte| all & byte.is_ascii_alphanumeric());
        if body.len() != BODY_LEN || !alphanumeric {
            return Err(FormatError::Malformed);
        }
        let (signed, checksum) = key.split_at(key.len() - CHECKSUM_LEN);
        if decode_base62(checksum) != Some(u64::from(crc32fast::hash(signed))) {
            return Err(FormatError::BadChecksum);
        }
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&body[..ID_LEN]);
        Ok(ParsedKey {
            // Base62, checked above.
            id: KeyId(id),
            secret: &body[ID_LEN..ID_LEN + SECRET_LEN],
        })
    }
}

/// Fills `out` with uniformly random base62 characters, by rejection sampling.
fn fill_base62(out: &mut [u8]) -> Result<(), getrandom::Error> {
    // 248 = 4 × 62: bytes at or above it would bias the result and are drawn again.
    let mut pool = [0u8; 64];
    let mut filled = 0;
    while filled < out.len() {
        getrandom::fill(&mut pool)?;
        for &byte in &pool {
            if byte < 248 && filled < out.len() {
                out[filled] = ALPHABET[usize::from(byte % 62)];
                filled += 1;
            }
        }
    }
    Ok(())
}

/// Appends `value` as exactly six base62 digits (62⁶ > 2³²), most significant first.
fn push_base62_fixed(out: &mut String, mut value: u32) {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out.extend(digits.iter().map(|&b| char::from(b)));
}

fn decode_base62(text: &[u8]) -> Option<u64> {
    text.iter().try_fold(0u64, |value, byte| {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'A'..=b'Z' => byte - b'A' + 10,
            b'a'..=b'z' => byte - b'a' + 36,
            _ => return None,
        };
        Some(value * 62 + u64::from(digit))
    })
}

/// A freshly generated key: what a store keeps ([`id`](Self::id), [`digest`](Self::digest))
/// and what it hands out once ([`key`](Self::key)).
#[derive(Debug)]
#[non_exhaustive]
pub struct GeneratedKey {
    /// The key's public identifier.
    pub id: KeyId,
    /// The full key text, to return once in an [`IssuedKey`](super::IssuedKey).
    pub key: ApiKey,
    /// The digest of the secret, to store in the [`KeyRecord`](super::KeyRecord).
    pub digest: crate::secret::KeyDigest,
}

/// The public identifier of an API key: 12 base62 characters, safe to log and show.
///
/// Held inline (no allocation: every request parses one), compared, ordered and hashed as
/// its text, so maps keyed by `KeyId` can be searched by `&str`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId([u8; ID_LEN]);

impl std::hash::Hash for KeyId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that `Borrow<str>` lookups find it.
        self.as_str().hash(state);
    }
}

impl KeyId {
    /// Parses a key id: exactly 12 base62 characters.
    #[must_use]
    pub fn parse(id: &str) -> Option<Self> {
        let bytes: [u8; ID_LEN] = id.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(Self(bytes))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // ASCII by construction (`parse` and `KeyFormat::parse` are the only ways in, and
        // both check the bytes).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub(crate) fn shared(&self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

impl std::borrow::Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.as_str())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for KeyId {
    type Error = String;

    fn try_from(id: String) -> Result<Self, String> {
        Self::parse(&id).ok_or_else(|| "a key id is 12 base62 characters".to_owned())
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn generated() -> (KeyFormat, KeyId, ApiKey) {
        let format = KeyFormat::default();
        let (id, key) = format.generate().expect("OS randomness");
        (format, id, key)
    }

    #[test]
    fn generated_keys_parse_back() {
        let (format, id, key) = generated();
        let text = key.expose_secret();
        assert_eq!(text.len(), format.key_len());
        assert!(text.starts_with("pcl_"));
        let parsed = format.parse(text.as_bytes()).expect("well-formed");
        assert_eq!(parsed.id, id);
        assert_eq!(parsed.secret.len(), SECRET_LEN);
    }

    /// A key with a byte that is not UTF-8 (or a character of several bytes) is malformed,
    /// wherever the byte is: never a checksum failure, never a panic.
    #[test]
    fn keys_with_bytes_outside_ascii_are_malformed() {
        let (format, _, key) = generated();
        let bytes = key.expose_secret().as_bytes();
        for at in 0..bytes.len() {
            for wrong in [&[0xff_u8][..], "é".as_bytes()] {
                let mut changed = bytes[..at].to_vec();
                changed.extend_from_slice(wrong);
                changed.extend_from_slice(&bytes[at + 1..]);
                assert_eq!(
                    format.parse(&changed),
                    Err(FormatError::Malformed),
                    "at {at}"
                );
            }
        }
    }

    #[test]
    fn generated_keys_differ() {
        let (_, _, a) = generated();
        let (_, _, b) = generated();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let (format, _, key) = generated();
        let text = key.expose_secret();
        for position in format.prefix().len() + 1..text.len() {
            for replacement in [b'0', b'z', b'Q'] {
                let mut bytes = text.as_bytes().to_vec();
                if bytes[position] == replacement {
                    continue;
                }
                bytes[position] = replacement;
                let changed = String::from_utf8(bytes).expect("ASCII");
                assert!(
                    format.parse(changed.as_bytes()).is_err(),
                    "{changed} accepted"
                );
            }
        }
    }

    #[test]
    fn shapes_are_refused_before_the_checksum() {
        let (format, _, key) = generated();
        let text = key.expose_secret();
        assert_eq!(format.parse(b""), Err(FormatError::Malformed));
        assert_eq!(
            format.parse(&text.as_bytes()[1..]),
            Err(FormatError::Malformed)
        );
        assert_eq!(
            format.parse(format!("{text}0").as_bytes()),
            Err(FormatError::Malformed)
        );
        assert_eq!(
            format.parse(text.replace("pcl_", "abc_").as_bytes()),
            Err(FormatError::Malformed)
        );
        let other = KeyFormat::new("acme").expect("valid prefix");
        assert_eq!(other.parse(text.as_bytes()), Err(FormatError::Malformed));
    }

    #[test]
    fn prefixes_are_validated() {
        for bad in ["", "a", "ABC", "a_b", "toolongprefix1234", "é1"] {
            assert!(KeyFormat::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(KeyFormat::new("acme2").is_ok());
    }

    #[test]
    fn checksum_digits_are_fixed_width() {
        for value in [0, 1, 61, 62, u32::MAX] {
            let mut out = String::new();
            push_base62_fixed(&mut out, value);
            assert_eq!(out.len(), CHECKSUM_LEN);
            assert_eq!(decode_base62(out.as_bytes()), Some(u64::from(value)));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics_and_rarely_passes(text in "\\PC{0,80}") {
            let format = KeyFormat::default();
            if let Ok(parsed) = format.parse(text.as_bytes()) {
                // Only text with the exact shape and a matching checksum may pass.
                prop_assert!(text.starts_with("pcl_"));
                prop_assert_eq!(text.len(), format.key_len());
                prop_assert!(parsed.id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let format = KeyFormat::default();
            // The bytes as sent, not UTF-8 text: whatever passes is ASCII.
            if let Ok(parsed) = format.parse(&bytes) {
                prop_assert!(bytes.is_ascii());
                prop_assert!(parsed.secret.is_ascii());
            }
        }

        #[test]
        fn well_shaped_keys_pass_only_with_their_checksum(
            body in "[0-9A-Za-z]{44}",
            checksum in "[0-9A-Za-z]{6}",
        ) {
            let format = KeyFormat::default();
            let signed = format!("pcl_{body}");
            let mut correct = String::new();
            push_base62_fixed(&mut correct, crc32fast::hash(signed.as_bytes()));
            let candidate = format!("{signed}{checksum}");
            prop_assert_eq!(format.parse(candidate.as_bytes()).is_ok(), checksum == correct);
            let valid = format!("{signed}{correct}");
            prop_assert!(format.parse(valid.as_bytes()).is_ok());
        }
    }
}
