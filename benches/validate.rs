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
//! - `bare_service`: the inner service alone, to subtract.
//!
//! Futures are polled with a no-op waker: every step completes without waiting, so no
//! executor cost is measured. A tokio runtime is entered so the body-read timer can be armed,
//! as it is in a server.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis::validate::{JsonLimits, RequestSchema, ValidateLayer, ValidationRules};
use serde_json::{Value, json};
use tower::{Layer, Service, service_fn};

fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "customer", "items"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "customer": {
                "type": "object",
                "required": ["name", "email"],
                "properties": {
                    "name": {"type": "string", "maxLength": 100},
                    "email": {"type": "string", "format": "email"}
                }
            },
            "items": {
                "type": "array",
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                        "quantity": {"type": "integer", "minimum": 1},
                        "note": {"type": ["string", "null"]}
                    },
                    "additionalProperties": false
                }
            },
            "express": {"type": "boolean"}
        }
    })
}

/// A realistic order of about 1 KB.
fn body(valid: bool) -> Bytes {
    let items: Vec<Value> = (0..18)
        .map(|i| {
            json!({
                "sku": if valid || i != 3 { format!("ABC-{:04}", 1000 + i) } else { "bad".into() },
                "quantity": if valid || i != 5 { i + 1 } else { 0 },
                "note": if i % 3 == 0 { Value::from("gift wrap") } else { Value::Null }
            })
        })
        .collect();
    let order = json!({
        "id": "5f0c6a9e-3c1b-4b8e-9d2a-1f2e3d4c5b6a",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "items": items,
        "express": true
    });
    Bytes::from(serde_json::to_vec(&order).expect("serialises"))
}

fn poll_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmark's futures never wait"),
    }
}

async fn bare(
    _: Request<portcullis::validate::RequestBody<Full<Bytes>>>,
) -> Result<Response<()>, Infallible> {
    Ok(Response::new(()))
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

    let schema = schema();
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
    let valid = body(true);
    let invalid = body(false);
    let limits = JsonLimits::default();
    assert!(
        valid.len() > 900 && valid.len() < 1200,
        "body is {} bytes",
        valid.len()
    );
    assert_eq!(
        poll_now(service.call(request(&valid)))
            .map(|r| r.status())
            .ok(),
        Some(StatusCode::OK)
    );
    assert_eq!(
        poll_now(service.call(request(&invalid)))
            .map(|r| r.status())
            .ok(),
        Some(StatusCode::BAD_REQUEST)
    );

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
            black_box(poll_now(bare_service.call(request)).is_ok())
        });
    });
    group.bench_function("validate_layer/valid", |b| {
        b.iter(|| black_box(poll_now(service.call(request(&valid))).is_ok()));
    });
    group.bench_function("validate_layer/invalid", |b| {
        b.iter(|| black_box(poll_now(service.call(request(&invalid))).is_ok()));
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
