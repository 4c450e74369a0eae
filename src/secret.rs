//! Secret handling, one module for every secret the crate holds: credentials it presents
//! to others ([`ClientSecret`]), the API key text shown once ([`ApiKey`]) and the digest
//! stored in its place ([`KeyDigest`]).
//!
//! A secret lives in memory only as long as it must, is wiped when dropped, never prints
//! through `Debug`, and is compared only in constant time.

use std::fmt;

#[cfg(feature = "api-key")]
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret this crate presents to someone else: an OAuth 2.0 client secret (for
/// introspection, and next the OpenID Connect token endpoint).
///
/// Wiped from memory when dropped; `Debug` shows `[redacted]`; equality is constant-time.
/// Build it from the text (`ClientSecret::from(text)`), read it with
/// [`expose_secret`](Self::expose_secret) only where it is sent.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// The secret text, for the one place it is sent.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for ClientSecret {
    fn from(text: String) -> Self {
        Self(Zeroizing::new(text))
    }
}

impl From<&str> for ClientSecret {
    fn from(text: &str) -> Self {
        Self::from(text.to_owned())
    }
}

impl PartialEq for ClientSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for ClientSecret {}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// The key that seals (encrypts and authenticates, AES-256-GCM) the OpenID Connect login
/// cookie: 32 random bytes.
///
/// Give every instance of a service the same key ([`from_bytes`](Self::from_bytes)) when a
/// login may start on one instance and end on another; [`generate`](Self::generate) makes
/// a key that lives as long as the process. Wiped from memory when dropped; `Debug` shows
/// `[redacted]`.
#[cfg(feature = "oidc")]
#[derive(Clone)]
pub struct SessionKey(Zeroizing<[u8; 32]>);

#[cfg(feature = "oidc")]
impl SessionKey {
    /// A fresh random key from the operating system's generator.
    ///
    /// # Panics
    ///
    /// Only if the operating system's random generator fails, which aws-lc-rs treats as
    /// fatal too.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0_u8; 32]);
        aws_lc_rs::rand::fill(&mut bytes[..]).expect("the system random generator failed");
        Self(bytes)
    }

    /// The key from its 32 bytes (for example decoded from a secret store).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSessionKey`](crate::ConfigError::InvalidSessionKey) unless
    /// `bytes` is exactly 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::ConfigError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| crate::ConfigError::InvalidSessionKey { len: bytes.len() })?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// Seals `plaintext`: a fresh random nonce, then AES-256-GCM with `context` as
    /// associated data (a value sealed for one use does not open as another): nonce,
    /// ciphertext and tag, in one buffer.
    pub(crate) fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
        let mut nonce = [0_u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system random generator failed");
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        // Sealing fails only beyond the AEAD's size limit (~64 GiB); an empty result then
        // fails to open, which refuses it.
        if self
            .aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut body,
            )
            .is_err()
        {
            return Vec::new();
        }
        sealed.extend_from_slice(&body);
        sealed
    }

    /// Opens what [`seal`](Self::seal) made for `context`; `None` for anything else.
    pub(crate) fn open(&self, context: &[u8], mut sealed: Vec<u8>) -> Option<Vec<u8>> {
        use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce};
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).ok()?;
        let length = self
            .aead()
            .open_in_place(nonce, Aad::from(context), &mut sealed[NONCE_LEN..])
            .ok()?
            .len();
        sealed.copy_within(NONCE_LEN..NONCE_LEN + length, 0);
        sealed.truncate(length);
        Some(sealed)
    }

    fn aead(&self) -> aws_lc_rs::aead::LessSafeKey {
        use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
        // 32 bytes is AES-256's key length: `new` cannot fail.
        let unbound = UnboundKey::new(&AES_256_GCM, &self.0[..])
            .unwrap_or_else(|_| unreachable!("AES-256 takes 32-byte keys"));
        LessSafeKey::new(unbound)
    }
}

#[cfg(feature = "oidc")]
impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

#[cfg(feature = "api-key")]
pub use self::api_key::{ApiKey, KeyDigest};

#[cfg(feature = "api-key")]
mod api_key {
    use super::*;

    /// A complete API key as given to its owner, e.g. `pcl_0123456789abKq…`.
    ///
    /// The only place the secret exists: returned once when a key is issued or rotated, never
    /// stored. Its memory is wiped on drop and `Debug` shows only the non-secret key id.
    #[derive(Clone, PartialEq, Eq)]
    pub struct ApiKey {
        text: Zeroizing<String>,
        /// Byte length of the non-secret head (`prefix_` plus the key id), for `Debug`.
        public_len: usize,
    }

    impl ApiKey {
        pub(crate) fn new(text: String, public_len: usize) -> Self {
            Self {
                text: Zeroizing::new(text),
                public_len,
            }
        }

        /// The full key text, to hand to its owner. Treat it as a password.
        #[must_use]
        pub fn expose_secret(&self) -> &str {
            &self.text
        }
    }

    impl fmt::Debug for ApiKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let public = self.text.get(..self.public_len).unwrap_or("");
            write!(f, "ApiKey(\"{public}…[redacted]\")")
        }
    }

    /// The SHA-256 digest of a key's secret part, stored instead of the secret.
    ///
    /// Secrets are 190 random bits, so a fast hash suffices: nothing can be guessed from the
    /// digest. Digests are compared in constant time.
    #[derive(Clone, Copy)]
    pub struct KeyDigest([u8; 32]);

    /// Domain separation, so a digest of a key secret is never the digest of anything else.
    const DIGEST_CONTEXT: &[u8] = b"portcullis api-key v1\0";

    impl KeyDigest {
        /// The digest of `secret`.
        #[must_use]
        pub fn of(secret: &str) -> Self {
            Self::of_bytes(secret.as_bytes())
        }

        /// The digest of a secret's bytes.
        pub(crate) fn of_bytes(secret: &[u8]) -> Self {
            let mut hasher = Sha256::new();
            hasher.update(DIGEST_CONTEXT);
            hasher.update(secret);
            Self(hasher.finalize().into())
        }

        /// Restores a digest saved with [`to_hex`](Self::to_hex).
        #[must_use]
        pub fn from_hex(hex: &str) -> Option<Self> {
            let bytes = hex.as_bytes();
            if bytes.len() != 64 {
                return None;
            }
            let mut out = [0u8; 32];
            for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                let high = char::from(pair[0]).to_digit(16)?;
                let low = char::from(pair[1]).to_digit(16)?;
                *byte = u8::try_from(high * 16 + low).ok()?;
            }
            Some(Self(out))
        }

        /// The digest as lowercase hex, for stores that persist records.
        #[must_use]
        pub fn to_hex(&self) -> String {
            use fmt::Write as _;
            self.0
                .iter()
                .fold(String::with_capacity(64), |mut out, byte| {
                    let _ = write!(out, "{byte:02x}");
                    out
                })
        }

        /// Constant-time comparison.
        #[must_use]
        pub fn matches(&self, other: &KeyDigest) -> bool {
            // A word at a time, every word compared (no early exit): subtle's byte-by-byte
            // comparison of the 32 bytes costs ten times as much on every request.
            let word = |digest: &[u8; 32], at: usize| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&digest[at..at + 8]);
                u64::from_le_bytes(bytes)
            };
            let (ours, theirs) = (&self.0, &other.0);
            let equal = word(ours, 0).ct_eq(&word(theirs, 0))
                & word(ours, 8).ct_eq(&word(theirs, 8))
                & word(ours, 16).ct_eq(&word(theirs, 16))
                & word(ours, 24).ct_eq(&word(theirs, 24));
            equal.into()
        }
    }

    impl fmt::Debug for KeyDigest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "KeyDigest({}…)", &self.to_hex()[..8])
        }
    }

    impl serde::Serialize for KeyDigest {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(&self.to_hex())
        }
    }

    impl<'de> serde::Deserialize<'de> for KeyDigest {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let hex = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            Self::from_hex(&hex).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
        }
    }
}

#[cfg(test)]
mod client_secret_tests {
    use super::*;

    #[test]
    fn client_secrets_never_print_and_compare_by_value() {
        let secret = ClientSecret::from("s3cret-value");
        assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
        assert_eq!(secret.expose_secret(), "s3cret-value");
        assert_eq!(secret, ClientSecret::from("s3cret-value".to_owned()));
        assert_ne!(secret, ClientSecret::from("s3cret-valuf"));
        assert_ne!(secret, ClientSecret::from("s3cret"));
    }
}

#[cfg(all(test, feature = "api-key"))]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_through_hex() {
        let digest = KeyDigest::of("secret");
        let restored = KeyDigest::from_hex(&digest.to_hex()).expect("valid hex");
        assert!(digest.matches(&restored));
        assert!(!digest.matches(&KeyDigest::of("secreT")));
        assert!(KeyDigest::from_hex("zz").is_none());
        assert!(KeyDigest::from_hex(&"g".repeat(64)).is_none());
    }

    /// Digests differing in any one byte (so in any one of the four words compared) do not
    /// match.
    #[test]
    fn digests_differing_in_one_byte_do_not_match() {
        let digest = KeyDigest::of("secret");
        let hex = digest.to_hex();
        for byte in 0..32 {
            let mut changed = hex.clone().into_bytes();
            changed[2 * byte] = if changed[2 * byte] == b'0' {
                b'1'
            } else {
                b'0'
            };
            let changed = KeyDigest::from_hex(std::str::from_utf8(&changed).expect("hex"))
                .expect("valid hex");
            assert!(!digest.matches(&changed), "byte {byte}");
            assert!(!changed.matches(&digest), "byte {byte}");
        }
    }

    #[test]
    fn debug_redacts_the_secret() {
        let key = ApiKey::new("pcl_abcdefghijklSECRETSECRET".into(), 16);
        let debug = format!("{key:?}");
        assert!(debug.contains("pcl_abcdefghijkl"));
        assert!(!debug.contains("SECRET"));
    }
}
