//! OpenAPI 3.0.x and 3.1.x documents, read once into the operations that the validation
//! layer compiles into JSON Schema validators and the authorization layer turns into route
//! rules.
//!
//! [`OpenApiSpec::parse`] takes the text of one document (JSON when it starts with `{` and
//! parses as JSON, YAML otherwise; [`OpenApiSpec::from_file`] reads a file) and keeps, for
//! every operation, its method, its path template as written (`/pets/{petId}`, the syntax
//! axum and `matchit` use), its parameters (path-item level merged with operation level),
//! the media types of its request body, and its effective security requirements. The
//! document is read on its own: nothing is ever fetched. This module transforms data; it
//! validates no request. Hand the spec to
//! [`ValidationRulesBuilder::openapi`](crate::validate::ValidationRulesBuilder::openapi)
//! (feature `validate`, which enables `openapi`) and to
//! [`RouteRulesBuilder::openapi_security`](crate::authz::RouteRulesBuilder::openapi_security)
//! (features `authz` and `openapi`; `validate` is not needed). A document that cannot be used
//! is a [`ConfigError::InvalidOpenApi`] naming the problem, with a JSON pointer to it.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::{delete, post}};
//! use http::{Request, StatusCode};
//! use portcullis::authz::{AuthorizeLayer, RouteRules, deny};
//! use portcullis::openapi::OpenApiSpec;
//! use portcullis::validate::{ValidateLayer, ValidationRules};
//! use tower::ServiceExt;
//!
//! # #[cfg(all(feature = "authz", feature = "validate"))]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = OpenApiSpec::parse(r#"
//! openapi: 3.1.0
//! info: {title: Orders, version: "1.0"}
//! paths:
//!   /orders:
//!     post:
//!       security: []
//!       requestBody:
//!         required: true
//!         content:
//!           application/json:
//!             schema:
//!               type: object
//!               required: [quantity]
//!               properties:
//!                 quantity: {type: integer, minimum: 1}
//!   /orders/{id}:
//!     delete:
//!       security: [{oauth: ["orders:write"]}]
//!       parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
//! components:
//!   securitySchemes:
//!     oauth:
//!       type: oauth2
//!       flows:
//!         clientCredentials:
//!           tokenUrl: https://id.example.com/token
//!           scopes: {"orders:write": change orders}
//! "#)?;
//!
//! let validation = ValidationRules::builder().openapi(&spec).build()?;
//! let authorization = RouteRules::builder().openapi_security(&spec).unmatched(deny()).build()?;
//! let app = Router::new()
//!     .route("/orders", post(|| async { "created" }))
//!     .route("/orders/{id}", delete(|| async { "deleted" }))
//!     .layer(ValidateLayer::new(validation))
//!     .layer(AuthorizeLayer::new(authorization));
//!
//! let order = |body: &'static str| {
//!     Request::post("/orders")
//!         .header("content-type", "application/json")
//!         .body(Body::from(body))
//! };
//! // `security: []`: anyone may order, but only what the schema allows.
//! assert_eq!(app.clone().oneshot(order(r#"{"quantity": 2}"#)?).await?.status(), StatusCode::OK);
//! assert_eq!(app.clone().oneshot(order(r#"{"quantity": 0}"#)?).await?.status(), StatusCode::BAD_REQUEST);
//! // The OAuth 2.0 requirement needs a caller holding `orders:write`.
//! let cancel = Request::delete("/orders/7").body(Body::empty())?;
//! assert_eq!(app.oneshot(cancel).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! # #[cfg(not(all(feature = "authz", feature = "validate")))] fn main() {}
//! ```
//!
//! # Why `serde_json::Value`, and not an OpenAPI model crate
//!
//! The document is read from a [`serde_json::Value`] by hand, on purpose; please do not
//! "fix" this by adopting `openapiv3` or `oas3`:
//!
//! - `openapiv3` reads OpenAPI 3.0.x only (3.1 was an incompatible change), and `oas3` reads
//!   3.1.x only. Supporting both versions would take both crates and two code paths.
//! - Both turn schemas into typed structs. This module's main job is the opposite: handing
//!   `jsonschema` raw `Value`s with every keyword preserved (including the ones those structs
//!   do not model), after the few rewrites below. Typed schemas would have to be converted
//!   back into `Value`s, losing what they do not model.
//! - What they would replace is the part that reads parameters, request bodies and security
//!   requirements (about 400 lines); none of the schema conversion, reference checking or
//!   component embedding.
//!
//! # Schemas
//!
//! Every schema handed out is a self-contained root: the schema as declared, with the
//! document's component schemas (converted the same way) added under a top-level
//! `{"components": {"schemas": …}}`, so `{"$ref": "#/components/schemas/Pet"}` resolves
//! inside it. Only the component schemas that the operation's schemas reference, directly
//! or through each other, are embedded, so a large document is not copied into every
//! schema; every schema of one operation embeds the same set, so they can be merged into
//! one root keeping any one's `components`.
//!
//! - OpenAPI 3.0 schemas are turned into JSON Schema Draft 4:
//!   `nullable: true` next to `type: T` becomes `type: [T, "null"]` (and adds `null` to an
//!   `enum`); `nullable` is removed; a schema whose root is a `$ref` is wrapped in
//!   `allOf`, because Draft 4 ignores the siblings of `$ref`. Boolean
//!   `exclusiveMinimum`/`exclusiveMaximum` are already Draft 4 and stay.
//! - OpenAPI 3.1 schemas are JSON Schema 2020-12 and stay
//!   as they are, boolean schemas included.
//! - In both, a property marked `readOnly: true` (directly, or on the schema its `$ref`
//!   names) is removed from its parent's `required`: a request need not send it.
//!
//! Conversion walks the subschema keywords (`properties`, `patternProperties`, `items`,
//! `prefixItems`, `additionalProperties`, `allOf`, `anyOf`, `oneOf`, `not`, `$defs`, `if`,
//! …) and never the data keywords (`example`, `examples`, `enum`, `default`, `const`).
//! Schemas nested deeper than 128 levels are refused.
//!
//! # References
//!
//! Reference Objects for parameters, request bodies, security schemes and path items are
//! followed (in chains, with cycles refused) to anywhere in the document. A schema `$ref`
//! must point into `#/components/schemas` (a JSON pointer, percent-encoding allowed), or in
//! 3.1 name a `$anchor`/`$dynamicAnchor` declared there; anchor references are rewritten
//! as JSON pointers, since a validator does not look for anchors under the embedded
//! `components`. Every schema `$ref` is checked to resolve before anything is handed out.
//!
//! # Parameters
//!
//! `in: path | query | header | cookie`, `required` (always true in the path), and the
//! `schema`, or the schema of the single media type in `content`. Header names are
//! lowercased; `Accept`, `Content-Type` and `Authorization` header parameters are dropped,
//! as OpenAPI says they are ignored. Every `{name}` in the path template must be declared
//! as a path parameter and every path parameter must appear in the template.
//!
//! # Not supported
//!
//! - External references (`other.yaml#/Pet`, URLs): refused as references that
//!   do not resolve, never fetched.
//! - Schema `$ref`s outside `#/components/schemas` (for example to a parameter's schema
//!   or into `#/paths`): refused.
//! - `servers`: their base paths are not prefixed to the path templates.
//! - `webhooks`, `callbacks`, `responses`, `links`, `examples`: not read.
//! - Parameter serialization (`style`, `explode`, `allowReserved`, `allowEmptyValue`): not
//!   read; the validation layer decodes query strings and headers its own way.
//! - `nullable: true` without a `type` (for example next to `allOf`) changes nothing, and
//!   `nullable` in a 3.1 document is not a keyword and stays without effect.
//! - `readOnly` properties made required through `allOf` composition; `writeOnly`;
//!   `discriminator` (its `oneOf` is still validated as written).
//! - Scopes in a security requirement are not checked against the scopes the scheme's
//!   flows declare.
//! - In 3.1: a `jsonSchemaDialect` other than the OpenAPI base dialect or 2020-12, and
//!   `$id` in schemas (which would change what the references inside them mean once
//!   embedded), are refused; `$dynamicRef` is passed to
//!   the validator unchecked, and anchors declared outside `components.schemas` are not
//!   found.

mod error; // OpenApiError
pub(crate) mod model; // what the layers read: operations, parameters, bodies, security
mod pointer; // JSON pointers and `$ref` fragments
mod reader; // paths, operations, parameters, request bodies
mod refs; // Reference Objects, schema `$ref`s and anchors, component embedding
mod schema; // dialect conversion, `nullable`, `readOnly`
mod security; // security requirements and scheme kinds
#[cfg(test)]
mod test_support; // the test documents (tests/fixtures/openapi) and shared test helpers

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use self::error::{OpenApiError, invalid, syntax};
use self::model::{Document, Operation, SchemaDialect};
use self::reader::Reader;
use crate::error::ConfigError;

/// How deeply schemas may nest, and how many Reference Objects a chain may follow, before
/// the document is refused.
const MAX_DEPTH: usize = 128;

/// `jsonSchemaDialect` values of a 3.1 document that mean JSON Schema 2020-12.
const SUPPORTED_3_1_DIALECTS: [&str; 2] = [
    "https://spec.openapis.org/oas/3.1/dialect/",
    "https://json-schema.org/draft/2020-12/schema",
];

/// A loaded OpenAPI 3.0 or 3.1 document, to drive validation
/// ([`ValidationRulesBuilder::openapi`](crate::validate::ValidationRulesBuilder::openapi),
/// feature `validate`) and authorization
/// ([`RouteRulesBuilder::openapi_security`](crate::authz::RouteRulesBuilder::openapi_security),
/// features `authz` and `openapi`).
///
/// Only the document itself is read: external `$ref`s are refused, never fetched.
#[derive(Clone)]
pub struct OpenApiSpec {
    document: Arc<Document>,
}

impl fmt::Debug for OpenApiSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenApiSpec")
            .field("dialect", &self.document.dialect)
            .field("operations", &self.document.operations.len())
            .finish()
    }
}

impl OpenApiSpec {
    /// Parses a document given as JSON or YAML text.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidOpenApi`] when the text is not an OpenAPI 3.0/3.1 document we
    /// can use, with a JSON pointer to the problem.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let document = parse(text).map_err(|error| ConfigError::InvalidOpenApi {
            reason: error.to_string(),
        })?;
        Ok(Self {
            document: Arc::new(document),
        })
    }

    /// Reads and parses a document file.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidOpenApi`] when the file cannot be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::InvalidOpenApi {
            reason: format!("cannot read {}: {error}", path.display()),
        })?;
        Self::parse(&text)
    }

    /// Every operation of the document, sorted by path template, then method: what the
    /// validation and authorization layers turn into route rules.
    #[cfg_attr(not(any(feature = "authz", feature = "validate")), allow(dead_code))]
    pub(crate) fn operations(&self) -> &[Operation] {
        &self.document.operations
    }

    /// The dialect every schema of [`OpenApiSpec::operations`] is written in.
    #[cfg_attr(not(feature = "validate"), allow(dead_code))] // Read by validation rules.
    pub(crate) fn dialect(&self) -> SchemaDialect {
        self.document.dialect
    }
}

/// Reads an OpenAPI 3.0.x or 3.1.x document, JSON or YAML, into its operations.
///
/// Operations are sorted by path template, then by method in the order
/// `get put post delete options head patch trace`.
///
/// # Errors
///
/// - [`OpenApiError::Syntax`] when the text is neither JSON nor YAML;
/// - [`OpenApiError::UnsupportedVersion`] when `openapi` is missing (Swagger 2.0 included)
///   or is not 3.0.x or 3.1.x;
/// - [`OpenApiError::Invalid`] for a structural problem, with a JSON pointer to it;
/// - [`OpenApiError::UnresolvedRef`] for a `$ref` that does not resolve inside the
///   document, external references included;
/// - [`OpenApiError::UnknownScheme`] for a security requirement naming a scheme that
///   `components.securitySchemes` does not declare.
pub(crate) fn parse(text: &str) -> Result<Document, OpenApiError> {
    let root = parse_text(text)?;
    let Value::Object(fields) = &root else {
        return Err(invalid(
            "",
            "the document must be a mapping (a JSON object)",
        ));
    };
    let dialect = dialect_of(fields)?;
    let reader = Reader::new(&root, dialect)?;
    let operations = reader.operations()?;
    Ok(Document {
        dialect,
        operations,
    })
}

/// Parses the text as JSON when it looks like JSON, else (or when that fails) as YAML.
fn parse_text(text: &str) -> Result<Value, OpenApiError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        return match serde_json::from_str(text) {
            Ok(value) => Ok(value),
            // A YAML flow mapping also starts with `{`; when it is neither, the JSON
            // parser's message is the one that helps.
            Err(json_error) => serde_yaml_ng::from_str(text).map_err(|_| syntax(&json_error)),
        };
    }
    serde_yaml_ng::from_str(text).map_err(|yaml_error| syntax(&yaml_error))
}

/// The schema dialect the document's `openapi` version implies.
fn dialect_of(root: &Map<String, Value>) -> Result<SchemaDialect, OpenApiError> {
    let version = match root.get("openapi") {
        Some(Value::String(version)) => version.clone(),
        // `openapi: 3.1` unquoted in YAML is a number.
        Some(Value::Number(version)) => version.to_string(),
        Some(other) => return Err(OpenApiError::UnsupportedVersion(other.to_string())),
        None => {
            let found = match root.get("swagger") {
                Some(Value::String(version)) => format!("Swagger {version}"),
                Some(version) => format!("Swagger {version}"),
                None => "no `openapi` field".to_owned(),
            };
            return Err(OpenApiError::UnsupportedVersion(found));
        }
    };
    let is = |minor: &str| {
        version
            .strip_prefix(minor)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    };
    if is("3.0") {
        Ok(SchemaDialect::Draft4)
    } else if is("3.1") {
        match root.get("jsonSchemaDialect") {
            None => Ok(SchemaDialect::Draft202012),
            Some(Value::String(uri))
                if SUPPORTED_3_1_DIALECTS
                    .iter()
                    .any(|supported| uri.trim_end_matches('#').starts_with(supported)) =>
            {
                Ok(SchemaDialect::Draft202012)
            }
            Some(_) => Err(invalid(
                "/jsonSchemaDialect",
                "only the OpenAPI 3.1 base dialect and JSON Schema 2020-12 are supported",
            )),
        }
    } else {
        Err(OpenApiError::UnsupportedVersion(format!("{version:?}")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_support::parse_value;
    use super::*;

    #[test]
    fn yaml_flow_mapping_and_unquoted_version_parse() {
        let document = parse("{openapi: 3.1, info: {title: t, version: '1'}, paths: {}}")
            .expect("a YAML flow mapping parses");
        assert_eq!(document.dialect, SchemaDialect::Draft202012);
        assert!(document.operations.is_empty());
    }

    #[test]
    fn swagger_2_and_other_versions_are_unsupported() {
        let swagger = "swagger: '2.0'\ninfo:\n  title: t\n  version: '1'\npaths: {}\n";
        match parse(swagger) {
            Err(OpenApiError::UnsupportedVersion(found)) => assert_eq!(found, "Swagger 2.0"),
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        for version in ["3.2.0", "3.10.0", "4.0"] {
            let document = json!({"openapi": version, "paths": {}});
            assert!(
                matches!(
                    parse_value(&document),
                    Err(OpenApiError::UnsupportedVersion(_))
                ),
                "{version}"
            );
        }
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        for text in [
            "openapi: [3.0.3\npaths: {",
            "{\"openapi\": \"3.0.3\", \"paths\": ",
            "\t- : : ]",
        ] {
            match parse(text) {
                Err(OpenApiError::Syntax(message)) => {
                    assert!(!message.is_empty());
                    assert!(message.chars().count() <= 200);
                }
                other => panic!("expected Syntax for {text:?}, got {other:?}"),
            }
        }
        let long = format!("{{\"openapi\": \"{}", "x".repeat(1_000));
        match parse(&long) {
            Err(OpenApiError::Syntax(message)) => assert!(message.chars().count() <= 200),
            other => panic!("expected Syntax, got {other:?}"),
        }
        assert!(matches!(
            parse("just words"),
            Err(OpenApiError::Invalid { pointer, .. }) if pointer.is_empty()
        ));
    }
}
