//! The JSON limits, enforced in the one serde_json pass that builds the value.
//!
//! Input: five bytes choosing the limits, then the body. Properties: the layer's parse and
//! the public `JsonLimits::check` agree; a body the limits accept is one serde_json accepts,
//! and gives the same value; a body serde_json accepts is refused only for a limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::json_limits_parse;
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
    let Some((config, body)) = data.split_first_chunk::<5>() else {
        return;
    };
    let limits = limits(*config);
    let parsed = json_limits_parse(&limits, body);

    let public = limits.check(body);
    assert_eq!(
        public.as_ref().err().map(|v| v.keyword()),
        parsed.as_ref().err().map(|(code, _)| code.as_str()),
        "check and parse disagree"
    );

    match (&parsed, serde_json::from_slice::<serde_json::Value>(body)) {
        (Ok(ours), Ok(theirs)) => assert_eq!(ours, &theirs, "a different value"),
        (Ok(_), Err(error)) => panic!("accepted what serde_json refuses: {error}"),
        (Err((code, message)), Ok(_)) => assert!(
            LIMIT_CODES.contains(&code.as_str()),
            "refused valid JSON as {code}: {message}"
        ),
        (Err(_), Err(_)) => {}
    }
});
