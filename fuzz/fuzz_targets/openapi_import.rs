//! OpenAPI import: any bytes as a JSON or YAML document, then, when it is one we can use,
//! validation rules and authorization rules built from it. Errors are expected; a panic, a
//! hang or unbounded memory is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::authz::RouteRules;
use portcullis::validate::{OpenApiSpec, ValidationRules};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = OpenApiSpec::parse(text) else {
        return;
    };
    let _ = format!("{spec:?}");
    let _ = ValidationRules::builder().openapi(&spec).build();
    let _ = RouteRules::builder().openapi_security(&spec).build();
});
