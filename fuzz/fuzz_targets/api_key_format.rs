//! `KeyFormat::parse` against a reference model of the key format: a key passes exactly
//! when it is `{prefix}_` + 44 base62 characters + the base62 CRC-32 of everything before
//! the checksum; otherwise a wrong shape is `malformed` and a wrong checksum `bad_checksum`.
//!
//! Arbitrary text almost never has a right checksum, so each input is also tried with its
//! last six characters replaced by the right checksum, which reaches the success path.
//! Bytes that are not UTF-8 are parsed as they are (the parse reads a header's bytes): never
//! a key.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::api_key::KeyFormat;
use portcullis::fuzzing::api_key_parse;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The CRC-32 as six base62 digits, most significant first (written independently of the
/// crate's encoder).
fn checksum(signed: &str) -> String {
    let mut value = crc32fast::hash(signed.as_bytes());
    let mut digits = [0u8; 6];
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(digits.to_vec()).expect("ASCII")
}

/// Whether `key` has the format's shape, checksum aside.
fn well_shaped(format: &KeyFormat, key: &str) -> bool {
    key.strip_prefix(format.prefix())
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == 50 && body.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn check(format: &KeyFormat, key: &str) -> bool {
    let shaped = well_shaped(format, key);
    match api_key_parse(format, key.as_bytes()) {
        Ok((id, secret)) => {
            assert!(shaped, "{key:?} accepted without the shape");
            assert_eq!(key.len(), format.key_len());
            let start = format.prefix().len() + 1;
            assert_eq!(id, &key[start..start + 12]);
            assert_eq!(secret, key[start + 12..start + 44].as_bytes());
            let (signed, sum) = key.split_at(key.len() - 6);
            assert_eq!(
                sum,
                checksum(signed),
                "{key:?} accepted with a wrong checksum"
            );
            true
        }
        Err("malformed") => {
            assert!(!shaped, "{key:?} well shaped but called malformed");
            false
        }
        Err("bad_checksum") => {
            assert!(shaped, "{key:?} badly shaped but blamed on its checksum");
            let (signed, sum) = key.split_at(key.len() - 6);
            assert_ne!(
                sum,
                checksum(signed),
                "{key:?} refused with a right checksum"
            );
            false
        }
        Err(other) => panic!("unknown outcome {other}"),
    }
}

fn formats() -> &'static [KeyFormat; 2] {
    static FORMATS: OnceLock<[KeyFormat; 2]> = OnceLock::new();
    FORMATS.get_or_init(|| {
        [
            KeyFormat::default(),
            KeyFormat::new("acme2").expect("prefix"),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        for format in formats() {
            assert_eq!(api_key_parse(format, data), Err("malformed"), "{data:?}");
        }
        return;
    };
    for format in formats() {
        check(format, text);
        let Some(cut) = text
            .len()
            .checked_sub(6)
            .filter(|&cut| text.is_char_boundary(cut))
        else {
            continue;
        };
        let signed = &text[..cut];
        let repaired = format!("{signed}{}", checksum(signed));
        let accepted = check(format, &repaired);
        assert_eq!(accepted, well_shaped(format, &repaired), "{repaired:?}");
    }
});
