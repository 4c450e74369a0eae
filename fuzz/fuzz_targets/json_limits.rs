//! The streaming JSON limits pass.
//!
//! Input: five bytes choosing the limits, one byte `n` and `n` (≤ 8) little-endian `u16`
//! split points, then the body. Properties: the outcome (error kind, limit and byte offset
//! included) is the same whole, in the fuzzer's chunks and byte by byte, and through the
//! public `JsonLimits::check`; a body it accepts is one serde_json accepts (but for the
//! documented number-range gap); a body serde_json accepts is refused only for a limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::json_limits_scan;
use portcullis::validate::JsonLimits;

/// The error codes that only mean "over a limit" (the rest mean "not JSON").
const LIMIT_CODES: [&str; 8] = [
    "json_too_deep",
    "json_too_many_entries",
    "json_too_many_elements",
    "json_string_too_long",
    "json_key_too_long",
    "json_too_many_values",
    "json_duplicate_key",
    "json_number_out_of_range",
];

fn limits(config: [u8; 5]) -> JsonLimits {
    if config[0] & 0x80 != 0 {
        return JsonLimits::new();
    }
    // Depth stays below serde_json's own recursion limit of 128.
    JsonLimits::new()
        .max_depth(usize::from(config[0] % 100))
        .max_object_entries(usize::from(config[1] % 40))
        .max_array_elements(usize::from(config[2] % 40))
        .max_string_bytes(usize::from(config[3] % 80))
        .max_key_bytes(usize::from(config[4] % 40))
        .max_values(usize::from(config[1] ^ config[2]) * 4)
        .reject_duplicate_keys(config[0] & 0x40 == 0)
}

fuzz_target!(|data: &[u8]| {
    let Some((config, rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    let Some((&count, rest)) = rest.split_first() else {
        return;
    };
    let count = usize::from(count % 9);
    let Some(split_bytes) = rest.get(..count * 2) else {
        return;
    };
    let body = &rest[count * 2..];
    let limits = limits(*config);

    let whole = json_limits_scan(&limits, [body]);

    let mut cuts: Vec<usize> = split_bytes
        .chunks_exact(2)
        .map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (body.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&body[start..cut]);
        start = cut;
    }
    chunks.push(&body[start..]);
    assert_eq!(
        json_limits_scan(&limits, chunks),
        whole,
        "chunked differently"
    );
    assert_eq!(
        json_limits_scan(&limits, body.chunks(1)),
        whole,
        "byte by byte differently"
    );

    let public = limits.check(body);
    assert_eq!(
        public.as_ref().err().map(|v| v.keyword()),
        whole.as_ref().err().map(|(code, _)| code.as_str())
    );

    let parsed = serde_json::from_slice::<serde_json::Value>(body);
    match (&whole, &parsed) {
        (Ok(()), Err(error)) => assert!(
            error.to_string().contains("number out of range"),
            "accepted what serde_json refuses: {error}"
        ),
        (Err((code, message)), Ok(_)) => assert!(
            LIMIT_CODES.contains(&code.as_str()),
            "refused valid JSON as {code}: {message}"
        ),
        _ => {}
    }
});
