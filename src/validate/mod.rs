//! Request validation: JSON Schema and OpenAPI per route, with JSON limits enforced in the
//! one pass that parses the body.
//!
//! [`ValidationRules`] map `METHOD /path` patterns (the same matcher and precedence as the
//! authorization rules) to a [`RequestSchema`]: a body schema, and object schemas for query
//! parameters, path parameters and headers, whose string values are coerced to the types
//! the schemas declare. Rules can also come from an OpenAPI 3.0 or 3.1 document
//! ([`OpenApiSpec`]). Every schema is compiled once, at build time, with no network or file
//! access and a linear-time regex engine for `pattern`.
//!
//! [`ValidateLayer`] checks each request to a route that has rules:
//!
//! 1. parameters (path, query, headers) → 400 listing every violation;
//! 2. a required body that is missing → 400; the body's media type → 415;
//! 3. `Content-Length` over the limit → 413 without reading;
//! 4. the body, read with a size limit (413 as soon as it is passed) and a read timeout
//!    (408);
//! 5. the body parsed once, with the [`JsonLimits`] (depth, sizes, duplicate keys) enforced
//!    in the same pass as `serde_json`'s syntax, UTF-8 and number checks → 400, with nesting
//!    refused before it can exhaust the stack;
//! 6. the parsed body against its schema → 400 (or 422) listing violations with JSON
//!    pointers;
//! 7. the route's business rules, in declaration order → 422 `rule_violation` (see
//!    [Business rules](#business-rules)).
//!
//! The service behind receives exactly the bytes that were sent, with the original headers,
//! so axum's `Json<T>` works as before; the parsed value is also in the request's
//! extensions as [`ValidatedJson`]. Requests to routes without rules pass untouched.
//!
//! The read timeout uses tokio's timer: run the service on a tokio runtime with time
//! enabled (as `axum::serve` does). Outside any tokio runtime the timeout is not armed.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use portcullis::validate::{RequestSchema, ValidateLayer, ValidationRules};
//! use serde_json::json;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rules = ValidationRules::builder()
//!     .route("POST /orders", RequestSchema::new().body(json!({
//!         "type": "object",
//!         "required": ["quantity"],
//!         "properties": {"quantity": {"type": "integer", "minimum": 1}}
//!     })))
//!     .build()?;
//! let app = Router::new()
//!     .route("/orders", post(|body: String| async move { body }))
//!     .layer(ValidateLayer::new(rules));
//!
//! let request = Request::post("/orders")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"quantity": 0}"#))?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//!
//! let request = Request::post("/orders")
//!     .header("content-type", "text/plain")
//!     .body(Body::from("3 please"))?;
//! assert_eq!(app.oneshot(request).await?.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
//! # Ok(()) }
//! ```
//!
//! # Business rules
//!
//! Checks a schema cannot express ("`end` after `start`", "a viewer may order at most 10
//! items") are written once per route as a [`BusinessRule`]: a closure over a
//! [`RuleInput`] (the parsed body, the percent-decoded path parameters, the query string,
//! the [`Principal`](crate::Principal) from the request's extensions) returning the
//! [`Violation`](crate::Violation)s it finds. Attach them with [`RequestSchema::rule`], or
//! with [`ValidationRulesBuilder::rule`] for routes that come from an OpenAPI document.
//!
//! - Rules run only on requests whose schemas passed, in the order they were added (the
//!   route's own, then the builder's); the **first rule that reports violations answers**,
//!   and the rules after it do not run. The answer is **422** `rule_violation`, with the
//!   rule's violations in the same problem+json as schema violations.
//! - Routes with rules but no body schema still run them, with no body, and the body
//!   streams through unread; routes without rules are untouched.
//! - A sync rule costs the closure call: nothing is boxed, copied or allocated for it. The
//!   path parameters are decoded once per request, only on routes that have rules and
//!   parameters.
//! - An [`AsyncBusinessRule`] ([`RequestSchema::async_rule`]) may wait (a database lookup),
//!   given an owned [`RuleRequest`]; it is bounded by
//!   [`business_rule_timeout`](ValidationRulesBuilder::business_rule_timeout) (1 s by
//!   default, tokio's timer) → **503** `unavailable` with `Retry-After: 1`. The service is
//!   called with exactly the bytes that arrived once every rule has passed.
//! - A rule that panics (sync, or async while making or polling its future) is caught and
//!   logged with its name and route → **500** `rule_failed`; the connection and the server
//!   carry on.
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use portcullis::Violation;
//! use portcullis::validate::{RequestSchema, RuleInput, ValidateLayer, ValidationRules};
//! use serde_json::json;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rules = ValidationRules::builder()
//!     .route("POST /bookings", RequestSchema::new()
//!         .body(json!({
//!             "type": "object",
//!             "required": ["start", "end"],
//!             "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}}
//!         }))
//!         .rule("end after start", |input: &RuleInput<'_>| {
//!             let body = input.body().expect("the route has a JSON body");
//!             if body["end"].as_f64() > body["start"].as_f64() {
//!                 return Vec::new();
//!             }
//!             vec![Violation::new("body", "/end", "end_after_start", "`end` must be after `start`")]
//!         }))
//!     .build()?;
//! let app = Router::new()
//!     .route("/bookings", post(|body: String| async move { body }))
//!     .layer(ValidateLayer::new(rules));
//!
//! let request = Request::post("/bookings")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"start": 10, "end": 9}"#))?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
//!
//! let request = Request::post("/bookings")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"start": 9, "end": 10}"#))?;
//! assert_eq!(app.oneshot(request).await?.status(), StatusCode::OK);
//! # Ok(()) }
//! ```

mod body;
mod business;
mod json;
mod layer;
mod rules;
mod schema;

#[doc(inline)]
pub use self::body::RequestBody;
#[doc(inline)]
pub use self::business::{
    AsyncBusinessRule, BusinessRule, PathParams, RuleFuture, RuleInput, RuleRequest,
};
#[doc(inline)]
pub use self::json::JsonLimits;
#[doc(inline)]
pub use self::layer::{ResponseFuture, Validate, ValidateLayer, ValidatedJson};
#[doc(inline)]
pub use self::rules::{RequestSchema, ValidationRules, ValidationRulesBuilder};
#[doc(inline)]
pub use crate::openapi::OpenApiSpec;

/// The one-pass JSON parse with limits, for the fuzz targets (`crate::fuzzing`).
#[cfg(fuzzing)]
pub(crate) use self::json::parse as parse_json;
