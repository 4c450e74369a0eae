//! Random values: state, nonce, PKCE verifier, session ids.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Fills `bytes` from the operating system's generator.
pub(crate) fn fill(bytes: &mut [u8]) {
    // aws-lc-rs treats a failing system generator as fatal; so do we, rather than issue
    // a guessable state or session id.
    aws_lc_rs::rand::fill(bytes).expect("the system random generator failed");
}

/// 256 random bits as 43 base64url characters.
pub(crate) fn token() -> String {
    let mut bytes = [0_u8; 32];
    fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `text` looks like a [`token`]: 43 base64url characters.
pub(crate) fn is_token(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
