//! Reading an OpenAPI 3.0.x or 3.1.x document ([`OpenApiSpec`]) into the list of operations
//! that the validation layer compiles into JSON Schema validators and the authorization layer
//! turns into route rules.
//!
//! `parse` takes the text of one document (JSON when it starts with `{` and parses as
//! JSON, YAML otherwise) and returns a `Document`: for every operation its method, its
//! path template as written (`/pets/{petId}`, the syntax `matchit` uses), its parameters
//! (path-item level merged with operation level), the media types of its request body, and
//! its effective `Security`. The document is read on its own: nothing is ever fetched.
//! This module transforms data; it validates no request.
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
//! - OpenAPI 3.0 schemas are turned into JSON Schema Draft 4 (`SchemaDialect::Draft4`):
//!   `nullable: true` next to `type: T` becomes `type: [T, "null"]` (and adds `null` to an
//!   `enum`); `nullable` is removed; a schema whose root is a `$ref` is wrapped in
//!   `allOf`, because Draft 4 ignores the siblings of `$ref`. Boolean
//!   `exclusiveMinimum`/`exclusiveMaximum` are already Draft 4 and stay.
//! - OpenAPI 3.1 schemas are JSON Schema 2020-12 (`SchemaDialect::Draft202012`) and stay
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
//! - External references (`other.yaml#/Pet`, URLs): refused with
//!   `OpenApiError::UnresolvedRef`, never fetched.
//! - Schema `$ref`s outside `#/components/schemas` (for example to a parameter's schema
//!   or into `#/paths`): refused with `OpenApiError::Invalid`.
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
//!   embedded), are refused with `OpenApiError::Invalid`; `$dynamicRef` is passed to
//!   the validator unchecked, and anchors declared outside `components.schemas` are not
//!   found.

mod error;
pub(crate) mod model;
mod pointer;
mod reader;
mod refs;
mod schema;
mod security;
#[cfg(test)]
mod test_support;

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
