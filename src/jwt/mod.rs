//! JSON Web Tokens: strict parsing of a compact JWS, verification keys, and the claim
//! checks every token profile shares. Used by the bearer layer for access tokens, and next
//! by OpenID Connect for ID tokens and back-channel logout tokens.
//!
//! Only the keys are public: [`VerificationKey`] (one key, bound to the algorithms its type
//! allows) and [`KeySet`] (the keys of one issuer, from code or a JWKS document).

pub(crate) mod claims;
mod keys;
#[cfg(feature = "aws-lc-rs")]
mod parsed;
pub(crate) mod token;

pub(crate) use self::keys::SelectError;
#[doc(inline)]
pub use self::keys::{KeyError, KeySet, KeySetError, KeyType, SkippedKey, VerificationKey};
#[doc(inline)]
pub use jsonwebtoken::Algorithm;

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "the `bearer` feature needs a crypto backend: enable `aws-lc-rs` (default) or `rust-crypto`"
);

/// With both crypto backends compiled in (as `--all-features` does), jsonwebtoken cannot
/// pick one by itself and would panic when verifying: this chooses aws-lc-rs, the faster.
///
/// The bearer layer calls it before it parses any key; call it yourself before using
/// jsonwebtoken directly in a program that compiles both backends. Installing twice is a
/// no-op; with one backend it does nothing.
pub fn select_crypto_backend() {
    #[cfg(all(feature = "aws-lc-rs", feature = "rust-crypto"))]
    {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    }
}
