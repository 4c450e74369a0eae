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
//!    pointers.
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
