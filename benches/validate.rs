//! Request validation beside its floor, in one run.
//!
//! The floor is what validating a JSON body cannot avoid: `serde_json` parsing the 1 KB
//! body into a `Value` and a compiled `jsonschema` validator's `is_valid` on it. Beside it:
//!
//! - `validate_layer/valid`: the whole `ValidateLayer` around a bare service, for the same
//!   body (route match, media type, reading the body, the one parse with the JSON limits
//!   enforced, schema, the inner call with the exact bytes, and `ValidatedJson` in the
//!   extensions);
//! - `validate_layer/invalid`: the same with a body that breaks the schema (violations
//!   collected and rendered as problem+json);
//! - `json_limits/check`: the parse with the limits alone (`JsonLimits::check`), beside
//!   `floor/parse`, `serde_json::from_slice` into a `Value` alone;
//! - `bare_service`: the inner service alone, to subtract;
//! - `validate_layer/valid_with_rule`: `validate_layer/valid` with one closure business rule
//!   (a trivial check comparing two fields), beside `rule/closure_alone`, the same check
//!   called alone on the parsed body: the difference between the two layer measurements
//!   should be the closure itself.
//!
//! Futures are polled with a no-op waker: every step completes without waiting, so no
//! executor cost is measured. A tokio runtime is entered so the body-read timer can be armed,
//! as it is in a server.

#[path = "support/orders.rs"]
mod orders;
#[path = "support/poll.rs"]
mod poll;

use orders::{order, order_schema};
use poll::complete;
use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis::Violation;
use portcullis::validate::{JsonLimits, RequestSchema, RuleInput, ValidateLayer, ValidationRules};
use serde_json::Value;
use tower::{Layer, Service, service_fn};

async fn bare(
    _: Request<portcullis::validate::RequestBody<Full<Bytes>>>,
) -> Result<Response<()>, Infallible> {
    Ok(Response::new(()))
}

/// The business rule's check: an express order has at most 20 items (two fields compared).
fn express_items(body: &Value) -> Vec<Violation> {
    let express = body["express"].as_bool().unwrap_or(false);
    let items = body["items"].as_array().map_or(0, Vec::len);
    if express && items > 20 {
        vec![Violation::new(
            "body",
            "/items",
            "express_items",
            "an express order has at most 20 items",
        )]
    } else {
        Vec::new()
    }
}

fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/orders")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Full::new(body.clone()))
        .expect("request")
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _context = runtime.enter();

    let schema = order_schema();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&schema)
        .expect("schema compiles");
    let rules = ValidationRules::builder()
        .route("POST /orders", RequestSchema::new().body(schema.clone()))
        .build()
        .expect("rules");
    let mut service = ValidateLayer::new(rules).layer(service_fn(bare));
    let with_rule = ValidationRules::builder()
        .route(
            "POST /orders",
            RequestSchema::new()
                .body(schema.clone())
                .rule("express items", |input: &RuleInput<'_>| {
                    input.body().map_or_else(Vec::new, express_items)
                }),
        )
        .build()
        .expect("rules");
    let mut service_with_rule = ValidateLayer::new(with_rule).layer(service_fn(bare));
    let valid = order(true);
    let invalid = order(false);
    let limits = JsonLimits::default();
    assert!(
        valid.len() > 900 && valid.len() < 1200,
        "body is {} bytes",
        valid.len()
    );
    assert_eq!(
        complete(service.call(request(&valid)))
            .map(|r| r.status())
            .ok(),
        Some(StatusCode::OK)
    );
    assert_eq!(
        complete(service.call(request(&invalid)))
            .map(|r| r.status())
            .ok(),
        Some(StatusCode::BAD_REQUEST)
    );
    assert_eq!(
        complete(service_with_rule.call(request(&valid)))
            .map(|r| r.status())
            .ok(),
        Some(StatusCode::OK)
    );
    let parsed: Value = serde_json::from_slice(&valid).expect("parses");
    assert!(express_items(&parsed).is_empty());

    let mut group = c.benchmark_group("validate_1kb");
    group.bench_function("floor/parse_and_is_valid", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(&valid)).expect("parses");
            black_box(validator.is_valid(&value))
        });
    });
    group.bench_function("floor/parse", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&valid)).is_ok()));
    });
    group.bench_function("json_limits/check", |b| {
        b.iter(|| black_box(limits.check(black_box(&valid)).is_ok()));
    });
    let mut bare_service = service_fn(bare);
    group.bench_function("bare_service", |b| {
        b.iter(|| {
            let request = request(&valid).map(portcullis_request_body);
            black_box(complete(bare_service.call(request)).is_ok())
        });
    });
    group.bench_function("validate_layer/valid", |b| {
        b.iter(|| black_box(complete(service.call(request(&valid))).is_ok()));
    });
    group.bench_function("validate_layer/valid_with_rule", |b| {
        b.iter(|| black_box(complete(service_with_rule.call(request(&valid))).is_ok()));
    });
    group.bench_function("rule/closure_alone", |b| {
        b.iter(|| black_box(express_items(black_box(&parsed)).is_empty()));
    });
    group.bench_function("validate_layer/invalid", |b| {
        b.iter(|| black_box(complete(service.call(request(&invalid))).is_ok()));
    });
    group.finish();
}

/// Wraps a body the way the layer does for the inner service, so `bare_service` receives
/// the same request type.
fn portcullis_request_body(body: Full<Bytes>) -> portcullis::validate::RequestBody<Full<Bytes>> {
    portcullis::validate::RequestBody::from(body)
}

criterion_group!(validate, benches);
criterion_main!(validate);
