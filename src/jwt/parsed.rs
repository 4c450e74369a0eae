//! Public keys parsed once, for the aws-lc-rs backend: jsonwebtoken's `crypto::verify`
//! parses the key again on every call (about a fifth of an RS256 verification), so the
//! asymmetric algorithms verify here with keys parsed when the key is loaded. HMAC, and
//! everything under the `rust-crypto` backend, still goes through jsonwebtoken.

use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use jsonwebtoken::Algorithm;

/// The largest signature verified here, in bytes: an RSA 8192-bit signature.
pub(crate) const MAX_SIGNATURE_BYTES: usize = 1024;

/// One key parsed once per algorithm it may verify.
#[derive(Clone, Default)]
pub(crate) struct ParsedKeys(Arc<[(Algorithm, ParsedPublicKey)]>);

impl ParsedKeys {
    /// Parses `public_key` (PKCS#1 `RSAPublicKey` DER, an uncompressed EC point, or the
    /// 32 Ed25519 bytes) for each asymmetric algorithm in `algorithms`. An algorithm the
    /// key cannot be parsed for is left to jsonwebtoken, which then refuses it as before.
    pub(crate) fn new(algorithms: &[Algorithm], public_key: &[u8]) -> Self {
        Self(
            algorithms
                .iter()
                .filter_map(|&alg| {
                    let verification = verification_algorithm(alg)?;
                    let key = ParsedPublicKey::new(verification, public_key).ok()?;
                    Some((alg, key))
                })
                .collect(),
        )
    }

    /// The key parsed for `alg`, if there is one.
    pub(crate) fn get(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.0
            .iter()
            .find(|(parsed_for, _)| *parsed_for == alg)
            .map(|(_, key)| key)
    }
}

/// The aws-lc-rs algorithm jsonwebtoken verifies `alg` with (the same constants, so the
/// two paths accept exactly the same signatures); `None` for HMAC.
fn verification_algorithm(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        _ => return None,
    })
}

/// PKCS#1 `RSAPublicKey` DER of a modulus and exponent (big-endian, no leading zeros):
/// `SEQUENCE { INTEGER n, INTEGER e }`.
pub(crate) fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8], out: &mut Vec<u8>) {
        // A set high bit would make the INTEGER negative: prefix a zero byte.
        let pad = bytes.first().is_some_and(|&b| b & 0x80 != 0);
        out.push(0x02);
        length(bytes.len() + usize::from(pad), out);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(bytes);
    }
    fn length(len: usize, out: &mut Vec<u8>) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(n, &mut body);
    integer(e, &mut body);
    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(0x30);
    length(body.len(), &mut der);
    der.extend_from_slice(&body);
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_public_key_der_encodes_integers_and_lengths() {
        // Short form, and a zero byte before a set high bit.
        assert_eq!(
            rsa_public_key_der(&[0x7f], &[0x80]),
            [0x30, 0x07, 0x02, 0x01, 0x7f, 0x02, 0x02, 0x00, 0x80]
        );
        // Long form: a 256-byte modulus.
        let n = [0xff; 256];
        let der = rsa_public_key_der(&n, &[1, 0, 1]);
        assert_eq!(&der[..4], [0x30, 0x82, 0x01, 0x0a]);
        assert_eq!(&der[4..9], [0x02, 0x82, 0x01, 0x01, 0x00]);
        assert_eq!(der.len(), 4 + 0x010a);
        assert_eq!(
            super::super::keys::rsa_public_key_modulus_bits(&der),
            Some(2048)
        );
    }
}
