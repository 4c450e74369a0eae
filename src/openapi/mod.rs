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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use http::Method;
use serde_json::{Map, Value, json};

use crate::error::ConfigError;

/// How deeply schemas may nest, and how many Reference Objects a chain may follow, before
/// the document is refused.
const MAX_DEPTH: usize = 128;

/// How many characters of a JSON or YAML parser's message are kept in
/// [`OpenApiError::Syntax`].
const MAX_SYNTAX_MESSAGE_CHARS: usize = 200;

/// The operation fields of a Path Item Object, in the order operations are listed.
const OPERATION_METHODS: [(&str, Method); 8] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
    ("patch", Method::PATCH),
    ("trace", Method::TRACE),
];

/// Header parameters that OpenAPI says "SHALL be ignored" (lowercase).
const IGNORED_HEADERS: [&str; 3] = ["accept", "content-type", "authorization"];

/// Where the document's component schemas live, as a JSON pointer prefix.
const COMPONENT_SCHEMAS: &str = "/components/schemas/";

/// `jsonSchemaDialect` values of a 3.1 document that mean JSON Schema 2020-12.
const SUPPORTED_3_1_DIALECTS: [&str; 2] = [
    "https://spec.openapis.org/oas/3.1/dialect/",
    "https://json-schema.org/draft/2020-12/schema",
];

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

/// The JSON Schema dialect every schema of a [`Document`] is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemaDialect {
    /// JSON Schema Draft 4: OpenAPI 3.0 schemas, after conversion.
    Draft4,
    /// JSON Schema Draft 2020-12: OpenAPI 3.1 schemas.
    Draft202012,
}

/// What an OpenAPI document says about the requests it accepts.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The dialect of every schema in [`Document::operations`].
    pub(crate) dialect: SchemaDialect,
    /// Every operation, sorted by path template, then method.
    pub(crate) operations: Vec<Operation>,
}

/// One operation: a method on a path template.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    /// One of GET, PUT, POST, DELETE, OPTIONS, HEAD, PATCH, TRACE.
    #[cfg_attr(not(any(feature = "authz", feature = "validate")), allow(dead_code))]
    pub(crate) method: Method,
    /// The path template as written in the document, e.g. `/pets/{petId}`.
    pub(crate) path: String,
    /// The `operationId`, when there is one.
    #[cfg_attr(not(feature = "validate"), allow(dead_code))] // Read by validation rules.
    pub(crate) operation_id: Option<String>,
    /// The path item's parameters merged with the operation's; the operation's win on the
    /// same name and location. `Accept`, `Content-Type` and `Authorization` headers are
    /// left out.
    #[cfg_attr(not(feature = "validate"), allow(dead_code))] // Read by validation rules.
    pub(crate) parameters: Vec<Parameter>,
    /// The request body, when the operation declares one.
    #[cfg_attr(not(feature = "validate"), allow(dead_code))] // Read by validation rules.
    pub(crate) body: Option<RequestBody>,
    /// The effective security: the operation's own, else the document's.
    #[cfg_attr(not(feature = "authz"), allow(dead_code))] // Read by authorization rules.
    pub(crate) security: Security,
}

/// Where a parameter is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    /// A `{name}` segment of the path template.
    Path,
    /// A query-string parameter.
    Query,
    /// A request header (name lowercased).
    Header,
    /// A cookie.
    Cookie,
}

impl Location {
    /// The value of `in` that names this location.
    fn keyword(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub(crate) struct Parameter {
    /// The name; lowercase for headers.
    pub(crate) name: String,
    /// Where the parameter is sent.
    pub(crate) location: Location,
    /// Whether the request must carry it; always true for path parameters.
    #[cfg_attr(not(feature = "validate"), allow(dead_code))] // Read by validation rules.
    pub(crate) required: bool,
    /// The parameter's schema as a self-contained root (see the module documentation).
    pub(crate) schema: Option<Value>,
}

/// A declared request body.
#[derive(Debug, Clone)]
pub(crate) struct RequestBody {
    /// Whether the request must carry a body.
    #[cfg_attr(not(feature = "validate"), allow(dead_code))] // Read by validation rules.
    pub(crate) required: bool,
    /// The accepted media types, sorted by name.
    pub(crate) content: Vec<MediaType>,
}

/// One media type a request body may be sent as.
#[derive(Debug, Clone)]
pub(crate) struct MediaType {
    /// The media type or range as declared, lowercased, e.g. `application/json`.
    pub(crate) media_type: String,
    /// The body's schema as a self-contained root (see the module documentation).
    pub(crate) schema: Option<Value>,
}

/// The effective security of an operation (operation-level `security` overrides the
/// document's top-level `security`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Security {
    /// Neither the operation nor the document declares `security`.
    Undeclared,
    /// `security: []`: no authentication.
    Public,
    /// Any one of these requirement objects (OR); each lists schemes that must all be
    /// satisfied (AND). An empty requirement (`{}`) means anonymous callers are allowed.
    Alternatives(Vec<Vec<SchemeRequirement>>),
}

/// One security scheme within a requirement object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SchemeRequirement {
    /// The scheme's name in `components.securitySchemes`.
    pub(crate) scheme: String,
    /// What kind of scheme it is.
    pub(crate) kind: SchemeKind,
    /// The scopes (OAuth 2.0, OpenID Connect) or roles (other kinds, 3.1) required.
    pub(crate) scopes: Vec<String>,
}

/// The kind of a security scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SchemeKind {
    /// `type: apiKey`.
    ApiKey,
    /// `type: http`, `scheme: bearer`.
    HttpBearer,
    /// `type: http`, `scheme: basic`.
    HttpBasic,
    /// `type: http` with another scheme, lowercased.
    HttpOther(String),
    /// `type: oauth2`.
    OAuth2,
    /// `type: openIdConnect`.
    OpenIdConnect,
    /// `type: mutualTLS`.
    MutualTls,
}

/// Why a document cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum OpenApiError {
    /// The text is neither valid JSON nor valid YAML; the parser's message, cut to 200
    /// characters.
    #[error("the OpenAPI document is neither valid JSON nor valid YAML: {0}")]
    Syntax(String),
    /// `openapi` is missing (a Swagger 2.0 document, for one) or is not 3.0.x or 3.1.x.
    #[error("unsupported OpenAPI version ({0}): only 3.0.x and 3.1.x are supported")]
    UnsupportedVersion(String),
    /// A structural problem.
    #[error("invalid OpenAPI document at {}: {reason}", show_pointer(.pointer))]
    Invalid {
        /// A JSON pointer to the problem, e.g. `/paths/~1pets/get/parameters/0`.
        pointer: String,
        /// What is wrong there.
        reason: String,
    },
    /// A `$ref` that does not resolve inside the document; references to other documents
    /// are refused this way too, as they are never fetched.
    #[error(
        "`$ref` {reference:?} at {} does not resolve inside the document \
         (other documents are never fetched)",
        show_pointer(.pointer)
    )]
    UnresolvedRef {
        /// A JSON pointer to the object holding the `$ref`.
        pointer: String,
        /// The reference as written.
        reference: String,
    },
    /// A security requirement names a scheme absent from `components.securitySchemes`.
    #[error(
        "the security requirement at {} names {scheme:?}, which components.securitySchemes \
         does not declare",
        show_pointer(.pointer)
    )]
    UnknownScheme {
        /// A JSON pointer to the requirement object.
        pointer: String,
        /// The scheme's name.
        scheme: String,
    },
}

/// A JSON pointer for a message: quoted, and named when it is the whole document.
fn show_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        "the document root".to_owned()
    } else {
        format!("`{pointer}`")
    }
}

/// An [`OpenApiError::Invalid`] at `pointer`.
fn invalid(pointer: &str, reason: impl Into<String>) -> OpenApiError {
    OpenApiError::Invalid {
        pointer: pointer.to_owned(),
        reason: reason.into(),
    }
}

/// An [`OpenApiError::Syntax`] from a parser's message, cut to its first characters.
fn syntax(message: &impl ToString) -> OpenApiError {
    let message = message.to_string();
    if message.chars().count() <= MAX_SYNTAX_MESSAGE_CHARS {
        return OpenApiError::Syntax(message);
    }
    let mut short: String = message.chars().take(MAX_SYNTAX_MESSAGE_CHARS - 1).collect();
    short.push('…');
    OpenApiError::Syntax(short)
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for character in token.chars() {
        match character {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            other => pointer.push(other),
        }
    }
}

/// `pointer` with one more reference token.
fn child(pointer: &str, token: &str) -> String {
    let mut extended = pointer.to_owned();
    push_token(&mut extended, token);
    extended
}

/// The value of one hexadecimal digit.
fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A URI fragment with its percent-encoding undone; `None` when it is malformed or not
/// UTF-8.
fn decode_fragment(fragment: &str) -> Option<String> {
    if !fragment.contains('%') {
        return Some(fragment.to_owned());
    }
    let mut decoded = Vec::with_capacity(fragment.len());
    let mut bytes = fragment.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = hex_digit(bytes.next()?)?;
            let low = hex_digit(bytes.next()?)?;
            decoded.push((high << 4) | low);
        } else {
            decoded.push(byte);
        }
    }
    String::from_utf8(decoded).ok()
}

/// The JSON pointer a document-local `$ref` (`#/…`, or `#` for the root) names.
fn local_pointer(reference: &str) -> Option<String> {
    let pointer = decode_fragment(reference.strip_prefix('#')?)?;
    (pointer.is_empty() || pointer.starts_with('/')).then_some(pointer)
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

/// The names of a path template's `{name}` parameters, and the template with every name
/// erased (two templates with the same erased form are the same route).
fn path_template<'p>(path: &'p str, pointer: &str) -> Result<(Vec<&'p str>, String), OpenApiError> {
    let mut names: Vec<&str> = Vec::new();
    let mut erased = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(brace) = rest.find(['{', '}']) {
        let (literal, tail) = rest.split_at(brace);
        erased.push_str(literal);
        let Some(after_open) = tail.strip_prefix('{') else {
            return Err(invalid(
                pointer,
                "the path template has a `}` without a `{`",
            ));
        };
        let Some((name, after_close)) = after_open.split_once('}') else {
            return Err(invalid(
                pointer,
                "the path template has a `{` without a `}`",
            ));
        };
        if name.is_empty() || name.contains('{') {
            return Err(invalid(
                pointer,
                "the path template has an empty or nested `{}` parameter",
            ));
        }
        if names.contains(&name) {
            return Err(invalid(
                pointer,
                format!("the path template names `{{{name}}}` twice"),
            ));
        }
        names.push(name);
        erased.push_str("{}");
        rest = after_close;
    }
    erased.push_str(rest);
    Ok((names, erased))
}

/// The path item's parameters with the operation's merged in: an operation parameter
/// replaces the path item's with the same name and location, in place.
fn merge_parameters(shared: &[Parameter], own: Vec<Parameter>) -> Vec<Parameter> {
    let mut merged = shared.to_vec();
    for parameter in own {
        match merged.iter_mut().find(|existing| {
            existing.name == parameter.name && existing.location == parameter.location
        }) {
            Some(existing) => *existing = parameter,
            None => merged.push(parameter),
        }
    }
    merged
}

/// Checks that the path template and the declared path parameters name the same
/// parameters.
fn check_path_parameters(
    template: &[&str],
    parameters: &[Parameter],
    pointer: &str,
) -> Result<(), OpenApiError> {
    let mut declared = parameters
        .iter()
        .filter(|parameter| parameter.location == Location::Path);
    if let Some(name) = template
        .iter()
        .find(|name| !declared.clone().any(|parameter| parameter.name == **name))
    {
        return Err(invalid(
            pointer,
            format!("the path template's `{{{name}}}` is not declared as an `in: path` parameter"),
        ));
    }
    if let Some(parameter) = declared.find(|parameter| !template.contains(&parameter.name.as_str()))
    {
        return Err(invalid(
            pointer,
            format!(
                "the path parameter {:?} does not appear in the path template",
                parameter.name
            ),
        ));
    }
    Ok(())
}

/// How a schema keyword holds subschemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subschemas {
    /// One schema (`not`, `additionalProperties`, `items` as an object, …).
    One,
    /// A list of schemas (`allOf`, `prefixItems`, `items` as a list, …).
    List,
    /// Names mapped to schemas (`properties`, `$defs`, …); with `lists_allowed`, a value
    /// may also be a list of property names (Draft 4 `dependencies`).
    Map {
        /// Whether list values are allowed and skipped.
        lists_allowed: bool,
    },
}

/// How the schema keyword `keyword` with this `value` holds subschemas; `None` for the
/// other keywords, data ones (`example`, `enum`, `default`, `const`, …) included.
fn subschemas(keyword: &str, value: &Value) -> Option<Subschemas> {
    match keyword {
        "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
            Some(Subschemas::Map {
                lists_allowed: false,
            })
        }
        "dependencies" => Some(Subschemas::Map {
            lists_allowed: true,
        }),
        "allOf" | "anyOf" | "oneOf" | "prefixItems" => Some(Subschemas::List),
        "items" if value.is_array() => Some(Subschemas::List),
        "items"
        | "additionalItems"
        | "additionalProperties"
        | "unevaluatedItems"
        | "unevaluatedProperties"
        | "contains"
        | "propertyNames"
        | "not"
        | "if"
        | "then"
        | "else"
        | "contentSchema" => Some(Subschemas::One),
        _ => None,
    }
}

/// Where each `$anchor` and `$dynamicAnchor` of the component schemas is declared, as a
/// JSON pointer; `None` for a name declared in more than one place. Walks schema keywords
/// only, without recursion; nesting past [`MAX_DEPTH`] is left for the conversion to
/// refuse.
fn collect_anchors(schemas: &Map<String, Value>) -> HashMap<String, Option<String>> {
    let mut anchors: HashMap<String, Option<String>> = HashMap::new();
    let mut pending: Vec<(&Value, String, usize)> = schemas
        .iter()
        .map(|(name, schema)| (schema, child("/components/schemas", name), 0))
        .collect();
    while let Some((schema, pointer, depth)) = pending.pop() {
        let Value::Object(fields) = schema else {
            continue;
        };
        if depth > MAX_DEPTH {
            continue;
        }
        for keyword in ["$anchor", "$dynamicAnchor"] {
            if let Some(Value::String(name)) = fields.get(keyword) {
                anchors
                    .entry(name.clone())
                    .and_modify(|place| {
                        if place.as_deref() != Some(pointer.as_str()) {
                            *place = None;
                        }
                    })
                    .or_insert_with(|| Some(pointer.clone()));
            }
        }
        for (keyword, value) in fields {
            let at = child(&pointer, keyword);
            match (subschemas(keyword, value), value) {
                (Some(Subschemas::One), _) => pending.push((value, at, depth + 1)),
                (Some(Subschemas::List), Value::Array(list)) => {
                    pending.extend(
                        list.iter()
                            .enumerate()
                            .map(|(index, item)| (item, child(&at, &index.to_string()), depth + 1)),
                    );
                }
                (Some(Subschemas::Map { .. }), Value::Object(map)) => {
                    pending.extend(
                        map.iter()
                            .map(|(name, item)| (item, child(&at, name), depth + 1)),
                    );
                }
                _ => {}
            }
        }
    }
    anchors
}

/// A JSON pointer as a URI fragment (`#/…`), percent-encoding what a fragment may not hold.
fn pointer_fragment(pointer: &str) -> String {
    const ALLOWED: &[u8] = b"/~-._!$&'()*+,;=:@";
    let mut fragment = String::with_capacity(pointer.len() + 1);
    fragment.push('#');
    for byte in pointer.bytes() {
        if byte.is_ascii_alphanumeric() || ALLOWED.contains(&byte) {
            fragment.push(char::from(byte));
        } else {
            fragment.push_str(&format!("%{byte:02X}"));
        }
    }
    fragment
}

/// The names of the component schemas that `$ref`s under `schema` point into (after
/// conversion, every schema `$ref` is a pointer into `#/components/schemas`). Walks every
/// value, without recursion: a `$ref` inside example data only embeds one schema too many.
fn referenced_components(schema: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut pending = vec![schema];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(fields) => {
                if let Some(name) = fields
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(component_name)
                {
                    names.insert(name);
                }
                pending.extend(fields.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    names
}

/// The component schema a `$ref` points into: `Pet` for `#/components/schemas/Pet` and
/// `#/components/schemas/Pet/properties/name`.
fn component_name(reference: &str) -> Option<String> {
    let pointer = local_pointer(reference)?;
    let token = pointer.strip_prefix(COMPONENT_SCHEMAS)?.split('/').next()?;
    Some(token.replace("~1", "/").replace("~0", "~"))
}

/// A boolean field: `default` when absent, [`OpenApiError::Invalid`] when not a boolean.
fn boolean_field(
    fields: &Map<String, Value>,
    name: &str,
    default: bool,
    pointer: &str,
) -> Result<bool, OpenApiError> {
    match fields.get(name) {
        None => Ok(default),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(invalid(
            &child(pointer, name),
            format!("`{name}` must be a boolean"),
        )),
    }
}

/// For OpenAPI 3.0: turns `nullable: true` into JSON Schema (`type: [T, "null"]`, `null`
/// added to `enum`) and removes `nullable`.
fn apply_nullable(schema: &mut Map<String, Value>, pointer: &str) -> Result<(), OpenApiError> {
    match schema.remove("nullable") {
        None | Some(Value::Bool(false)) => return Ok(()),
        Some(Value::Bool(true)) => {}
        Some(_) => {
            return Err(invalid(
                &child(pointer, "nullable"),
                "`nullable` must be a boolean",
            ));
        }
    }
    let null = Value::from("null");
    match schema.get_mut("type") {
        None => {}
        Some(Value::String(name)) if name == "null" => {}
        Some(slot @ Value::String(_)) => {
            let name = slot.take();
            *slot = Value::Array(vec![name, null]);
        }
        Some(Value::Array(names)) if names.contains(&null) => {}
        Some(Value::Array(names)) => names.push(null),
        Some(_) => {
            return Err(invalid(
                &child(pointer, "type"),
                "`type` must be a string or a list of strings",
            ));
        }
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    Ok(())
}

/// The fields of a Path Item Object, local ones first, then those of the path item its
/// `$ref` names.
#[derive(Debug)]
struct PathItemFields<'a> {
    /// Each source of fields with the JSON pointer to it.
    sources: Vec<(&'a Map<String, Value>, String)>,
}

impl<'a> PathItemFields<'a> {
    /// The field `name` and a JSON pointer to it.
    fn get(&self, name: &str) -> Option<(&'a Value, String)> {
        self.sources.iter().find_map(|(fields, pointer)| {
            fields.get(name).map(|value| (value, child(pointer, name)))
        })
    }
}

/// Reads operations out of a parsed document.
#[derive(Debug)]
struct Reader<'a> {
    /// The whole document.
    root: &'a Value,
    /// The dialect schemas are converted to.
    dialect: SchemaDialect,
    /// Where each `$anchor` and `$dynamicAnchor` of the component schemas is declared
    /// (3.1); `None` when declared more than once.
    anchors: HashMap<String, Option<String>>,
    /// Every component schema, converted.
    component_schemas: Map<String, Value>,
    /// For each component schema, the component schemas its `$ref`s name.
    component_references: HashMap<String, BTreeSet<String>>,
    /// The document's top-level `security`.
    default_security: Security,
}

impl<'a> Reader<'a> {
    /// Converts the component schemas and reads the top-level security.
    fn new(root: &'a Value, dialect: SchemaDialect) -> Result<Self, OpenApiError> {
        let schemas = match root.get("components") {
            None => None,
            Some(Value::Object(components)) => match components.get("schemas") {
                None => None,
                Some(Value::Object(schemas)) => Some(schemas),
                Some(_) => {
                    return Err(invalid(
                        "/components/schemas",
                        "`schemas` must be a mapping",
                    ));
                }
            },
            Some(_) => return Err(invalid("/components", "`components` must be a mapping")),
        };
        let mut reader = Self {
            root,
            dialect,
            anchors: HashMap::new(),
            component_schemas: Map::new(),
            component_references: HashMap::new(),
            default_security: Security::Undeclared,
        };
        if let Some(schemas) = schemas {
            if dialect == SchemaDialect::Draft202012 {
                reader.anchors = collect_anchors(schemas);
            }
            for (name, schema) in schemas {
                let mut schema = schema.clone();
                let mut pointer = child("/components/schemas", name);
                reader.convert(&mut schema, &mut pointer, 0)?;
                reader
                    .component_references
                    .insert(name.clone(), referenced_components(&schema));
                reader.component_schemas.insert(name.clone(), schema);
            }
        }
        if let Some(security) = root.get("security") {
            reader.default_security = reader.security(security, "/security")?;
        }
        Ok(reader)
    }

    /// Every operation of every path, sorted by path template, then method.
    fn operations(&self) -> Result<Vec<Operation>, OpenApiError> {
        let paths = match self.root.get("paths") {
            Some(Value::Object(paths)) => paths,
            Some(_) => return Err(invalid("/paths", "`paths` must be a mapping")),
            // 3.1 documents may have only webhooks or components.
            None if self.dialect == SchemaDialect::Draft202012 => return Ok(Vec::new()),
            None => return Err(invalid("", "the document has no `paths`")),
        };
        let mut operations = Vec::new();
        let mut routes: HashMap<String, &str> = HashMap::new();
        for (path, item) in paths {
            if path.starts_with("x-") {
                continue;
            }
            let pointer = child("/paths", path);
            if !path.starts_with('/') {
                return Err(invalid(&pointer, "a path must start with `/`"));
            }
            let (template, route) = path_template(path, &pointer)?;
            if let Some(other) = routes.insert(route, path) {
                return Err(invalid(
                    &pointer,
                    format!("{path:?} is the same route as {other:?}: only parameter names differ"),
                ));
            }
            self.path_item(path, &template, item, pointer, &mut operations)?;
        }
        operations.sort_by(|left, right| left.path.cmp(&right.path));
        Ok(operations)
    }

    /// Reads the operations of one Path Item Object into `out`.
    fn path_item(
        &self,
        path: &str,
        template: &[&str],
        item: &'a Value,
        pointer: String,
        out: &mut Vec<Operation>,
    ) -> Result<(), OpenApiError> {
        let Value::Object(local) = item else {
            return Err(invalid(&pointer, "a path item must be a mapping"));
        };
        let mut sources = vec![(local, pointer.clone())];
        if local.contains_key("$ref") {
            let (target, target_pointer) = self.resolve(item, pointer)?;
            let Value::Object(target) = target else {
                return Err(invalid(&target_pointer, "a path item must be a mapping"));
            };
            sources.push((target, target_pointer));
        }
        let fields = PathItemFields { sources };
        let shared = match fields.get("parameters") {
            Some((parameters, at)) => self.parameters(parameters, &at)?,
            None => Vec::new(),
        };
        for (name, method) in OPERATION_METHODS {
            if let Some((operation, at)) = fields.get(name) {
                out.push(self.operation(path, template, method, operation, &at, &shared)?);
            }
        }
        Ok(())
    }

    /// Reads one Operation Object.
    fn operation(
        &self,
        path: &str,
        template: &[&str],
        method: Method,
        operation: &'a Value,
        pointer: &str,
        shared: &[Parameter],
    ) -> Result<Operation, OpenApiError> {
        let Value::Object(fields) = operation else {
            return Err(invalid(pointer, "an operation must be a mapping"));
        };
        let operation_id = match fields.get("operationId") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                return Err(invalid(
                    &child(pointer, "operationId"),
                    "`operationId` must be a string",
                ));
            }
        };
        let own = match fields.get("parameters") {
            Some(parameters) => self.parameters(parameters, &child(pointer, "parameters"))?,
            None => Vec::new(),
        };
        let mut parameters = merge_parameters(shared, own);
        check_path_parameters(template, &parameters, pointer)?;
        let mut body = match fields.get("requestBody") {
            Some(body) => Some(self.request_body(body, child(pointer, "requestBody"))?),
            None => None,
        };
        let schemas = parameters
            .iter_mut()
            .filter_map(|parameter| parameter.schema.as_mut())
            .chain(
                body.iter_mut()
                    .flat_map(|body| body.content.iter_mut())
                    .filter_map(|media| media.schema.as_mut()),
            );
        self.embed_components(schemas.collect());
        let security = match fields.get("security") {
            Some(security) => self.security(security, &child(pointer, "security"))?,
            None => self.default_security.clone(),
        };
        Ok(Operation {
            method,
            path: path.to_owned(),
            operation_id,
            parameters,
            body,
            security,
        })
    }

    /// Reads a `parameters` list, following Reference Objects.
    fn parameters(&self, list: &'a Value, pointer: &str) -> Result<Vec<Parameter>, OpenApiError> {
        let Value::Array(items) = list else {
            return Err(invalid(pointer, "`parameters` must be a list"));
        };
        let mut parameters: Vec<Parameter> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let at = child(pointer, &index.to_string());
            let (definition, definition_at) = self.resolve(item, at.clone())?;
            let Some(parameter) = self.parameter(definition, &definition_at)? else {
                continue;
            };
            if parameters.iter().any(|existing| {
                existing.name == parameter.name && existing.location == parameter.location
            }) {
                return Err(invalid(
                    &at,
                    format!(
                        "the {} parameter {:?} is declared twice",
                        parameter.location.keyword(),
                        parameter.name
                    ),
                ));
            }
            parameters.push(parameter);
        }
        Ok(parameters)
    }

    /// Reads one Parameter Object; `None` for a header that OpenAPI says to ignore.
    fn parameter(
        &self,
        parameter: &Value,
        pointer: &str,
    ) -> Result<Option<Parameter>, OpenApiError> {
        let Value::Object(fields) = parameter else {
            return Err(invalid(pointer, "a parameter must be a mapping"));
        };
        let Some(Value::String(name)) = fields.get("name") else {
            return Err(invalid(
                &child(pointer, "name"),
                "a parameter needs a string `name`",
            ));
        };
        let location = match fields.get("in").and_then(Value::as_str) {
            Some("path") => Location::Path,
            Some("query") => Location::Query,
            Some("header") => Location::Header,
            Some("cookie") => Location::Cookie,
            _ => {
                return Err(invalid(
                    &child(pointer, "in"),
                    "`in` must be one of path, query, header, cookie",
                ));
            }
        };
        let name = if location == Location::Header {
            let lowercase = name.to_ascii_lowercase();
            if IGNORED_HEADERS.contains(&lowercase.as_str()) {
                return Ok(None);
            }
            lowercase
        } else {
            name.clone()
        };
        let required =
            boolean_field(fields, "required", false, pointer)? || location == Location::Path;
        let schema = match (fields.get("schema"), fields.get("content")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    pointer,
                    "a parameter has either `schema` or `content`, not both",
                ));
            }
            (Some(schema), None) => Some(self.root_schema(schema, &child(pointer, "schema"))?),
            (None, Some(content)) => {
                let content_at = child(pointer, "content");
                let single = match content {
                    Value::Object(media_types) if media_types.len() == 1 => {
                        media_types.iter().next()
                    }
                    _ => None,
                };
                let Some((media_type, media)) = single else {
                    return Err(invalid(
                        &content_at,
                        "a parameter's `content` must be a mapping with exactly one media type",
                    ));
                };
                self.media_schema(media, &child(&content_at, media_type))?
            }
            (None, None) => None,
        };
        Ok(Some(Parameter {
            name,
            location,
            required,
            schema,
        }))
    }

    /// Reads a Request Body Object, following Reference Objects.
    fn request_body(&self, body: &'a Value, pointer: String) -> Result<RequestBody, OpenApiError> {
        let (body, pointer) = self.resolve(body, pointer)?;
        let Value::Object(fields) = body else {
            return Err(invalid(&pointer, "a request body must be a mapping"));
        };
        let required = boolean_field(fields, "required", false, &pointer)?;
        let content_at = child(&pointer, "content");
        let content = match fields.get("content") {
            Some(Value::Object(content)) => content,
            Some(_) => return Err(invalid(&content_at, "`content` must be a mapping")),
            None => return Err(invalid(&pointer, "a request body needs `content`")),
        };
        let mut media_types: Vec<MediaType> = Vec::with_capacity(content.len());
        for (name, media) in content {
            let media_at = child(&content_at, name);
            let media_type = name.trim().to_ascii_lowercase();
            if !media_type.contains('/') {
                return Err(invalid(
                    &media_at,
                    format!("{name:?} is not a media type (`type/subtype`)"),
                ));
            }
            if media_types
                .iter()
                .any(|existing| existing.media_type == media_type)
            {
                return Err(invalid(
                    &media_at,
                    format!("the media type {media_type:?} is listed twice"),
                ));
            }
            let schema = self.media_schema(media, &media_at)?;
            media_types.push(MediaType { media_type, schema });
        }
        media_types.sort_by(|left, right| left.media_type.cmp(&right.media_type));
        Ok(RequestBody {
            required,
            content: media_types,
        })
    }

    /// The schema of a Media Type Object, converted (see [`Reader::root_schema`]).
    fn media_schema(&self, media: &Value, pointer: &str) -> Result<Option<Value>, OpenApiError> {
        let Value::Object(fields) = media else {
            return Err(invalid(pointer, "a media type must be a mapping"));
        };
        fields
            .get("schema")
            .map(|schema| self.root_schema(schema, &child(pointer, "schema")))
            .transpose()
    }

    /// Reads a `security` list into the requirement alternatives it allows.
    fn security(&self, security: &Value, pointer: &str) -> Result<Security, OpenApiError> {
        let Value::Array(requirements) = security else {
            return Err(invalid(
                pointer,
                "`security` must be a list of security requirement objects",
            ));
        };
        if requirements.is_empty() {
            return Ok(Security::Public);
        }
        let mut alternatives = Vec::with_capacity(requirements.len());
        for (index, requirement) in requirements.iter().enumerate() {
            let at = child(pointer, &index.to_string());
            let Value::Object(schemes) = requirement else {
                return Err(invalid(&at, "a security requirement must be a mapping"));
            };
            let mut all_of = Vec::with_capacity(schemes.len());
            for (scheme, scopes) in schemes {
                let kind = self.scheme_kind(scheme, &at)?;
                let scopes = match scopes {
                    Value::Array(scopes) => scopes
                        .iter()
                        .map(|scope| scope.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>(),
                    _ => None,
                }
                .ok_or_else(|| {
                    invalid(
                        &child(&at, scheme),
                        "a security requirement's scopes must be a list of strings",
                    )
                })?;
                all_of.push(SchemeRequirement {
                    scheme: scheme.clone(),
                    kind,
                    scopes,
                });
            }
            all_of.sort_by(|left, right| left.scheme.cmp(&right.scheme));
            alternatives.push(all_of);
        }
        Ok(Security::Alternatives(alternatives))
    }

    /// The kind of the security scheme `name`, named by the requirement at `pointer`.
    fn scheme_kind(&self, name: &str, pointer: &str) -> Result<SchemeKind, OpenApiError> {
        let Some(definition) = self
            .root
            .get("components")
            .and_then(|components| components.get("securitySchemes"))
            .and_then(|schemes| schemes.get(name))
        else {
            return Err(OpenApiError::UnknownScheme {
                pointer: pointer.to_owned(),
                scheme: name.to_owned(),
            });
        };
        let (definition, at) =
            self.resolve(definition, child("/components/securitySchemes", name))?;
        match definition.get("type").and_then(Value::as_str) {
            Some("apiKey") => Ok(SchemeKind::ApiKey),
            Some("http") => match definition
                .get("scheme")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
            {
                Some(scheme) if scheme == "bearer" => Ok(SchemeKind::HttpBearer),
                Some(scheme) if scheme == "basic" => Ok(SchemeKind::HttpBasic),
                Some(scheme) if !scheme.is_empty() => Ok(SchemeKind::HttpOther(scheme)),
                _ => Err(invalid(
                    &child(&at, "scheme"),
                    "an `http` security scheme needs a `scheme`",
                )),
            },
            Some("oauth2") => Ok(SchemeKind::OAuth2),
            Some("openIdConnect") => Ok(SchemeKind::OpenIdConnect),
            Some("mutualTLS") => Ok(SchemeKind::MutualTls),
            _ => Err(invalid(
                &child(&at, "type"),
                "`type` must be one of apiKey, http, oauth2, openIdConnect, mutualTLS",
            )),
        }
    }

    /// Follows a chain of Reference Objects from `value` (at `pointer`) to the object it
    /// ends at, and returns that object with a JSON pointer to it.
    fn resolve(
        &self,
        value: &'a Value,
        pointer: String,
    ) -> Result<(&'a Value, String), OpenApiError> {
        let mut current = value;
        let mut at = pointer;
        let mut visited = HashSet::new();
        while let Some(reference) = current.get("$ref") {
            let Value::String(reference) = reference else {
                return Err(invalid(&child(&at, "$ref"), "`$ref` must be a string"));
            };
            let unresolved = || OpenApiError::UnresolvedRef {
                pointer: at.clone(),
                reference: reference.clone(),
            };
            let target = local_pointer(reference).ok_or_else(unresolved)?;
            if visited.len() >= MAX_DEPTH || !visited.insert(target.clone()) {
                return Err(invalid(
                    &at,
                    format!("`$ref` {reference:?} is part of a reference cycle"),
                ));
            }
            current = self.root.pointer(&target).ok_or_else(unresolved)?;
            at = target;
        }
        Ok((current, at))
    }

    /// A schema converted to the document's dialect, as an object ready to be a root
    /// (components are added by [`Reader::embed_components`]).
    fn root_schema(&self, schema: &Value, pointer: &str) -> Result<Value, OpenApiError> {
        let mut converted = schema.clone();
        let mut at = pointer.to_owned();
        self.convert(&mut converted, &mut at, 0)?;
        let mut root = match converted {
            Value::Object(root) => root,
            Value::Bool(true) => Map::new(),
            Value::Bool(false) => Map::from_iter([("not".to_owned(), json!({}))]),
            _ => return Err(invalid(pointer, "a schema must be an object")),
        };
        if self.dialect == SchemaDialect::Draft4
            && let Some(reference) = root.get("$ref").cloned()
        {
            // Draft 4 ignores every sibling of `$ref`, `components` included.
            root = Map::from_iter([("allOf".to_owned(), json!([{ "$ref": reference }]))]);
        }
        Ok(Value::Object(root))
    }

    /// Adds `{"components": {"schemas": …}}` to each of one operation's schemas: the same
    /// for all, holding every component schema that any of them references, directly or
    /// through other component schemas.
    fn embed_components(&self, schemas: Vec<&mut Value>) {
        let mut needed = BTreeSet::new();
        let mut pending: Vec<String> = schemas
            .iter()
            .flat_map(|schema| referenced_components(schema))
            .collect();
        while let Some(name) = pending.pop() {
            if let Some(references) = self.component_references.get(&name)
                && needed.insert(name)
            {
                pending.extend(references.iter().cloned());
            }
        }
        let subset: Map<String, Value> = needed
            .into_iter()
            .filter_map(|name| {
                let schema = self.component_schemas.get(&name)?.clone();
                Some((name, schema))
            })
            .collect();
        let components = json!({ "schemas": subset });
        for schema in schemas {
            if let Value::Object(root) = schema {
                root.insert("components".to_owned(), components.clone());
            }
        }
    }

    /// Converts one schema in place (see the module documentation), checks its `$ref`s,
    /// and rewrites those naming a 3.1 anchor into JSON pointers.
    fn convert(
        &self,
        schema: &mut Value,
        pointer: &mut String,
        depth: usize,
    ) -> Result<(), OpenApiError> {
        if depth > MAX_DEPTH {
            return Err(invalid(
                pointer,
                format!("schemas nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        let object = match schema {
            Value::Object(object) => object,
            // Boolean schemas: `true` and `false` (2020-12, and `additionalProperties`).
            Value::Bool(_) => return Ok(()),
            _ => return Err(invalid(pointer, "a schema must be an object")),
        };
        if self.dialect == SchemaDialect::Draft202012 && object.contains_key("$id") {
            // The schemas are embedded in other roots, where an `$id` would change what
            // the references inside it mean.
            return Err(invalid(
                &child(pointer, "$id"),
                "`$id` is not supported: references resolve against the document",
            ));
        }
        match object.get("$ref") {
            None => {}
            Some(Value::String(reference)) => {
                if let Some(rewritten) = self.check_schema_ref(reference, pointer)? {
                    object.insert("$ref".to_owned(), Value::String(rewritten));
                }
            }
            Some(_) => return Err(invalid(&child(pointer, "$ref"), "`$ref` must be a string")),
        }
        for (keyword, value) in object.iter_mut() {
            let Some(shape) = subschemas(keyword, value) else {
                continue;
            };
            let mark = pointer.len();
            push_token(pointer, keyword);
            match (shape, value) {
                (Subschemas::One, schema) => self.convert(schema, pointer, depth + 1)?,
                (Subschemas::List, Value::Array(schemas)) => {
                    for (index, schema) in schemas.iter_mut().enumerate() {
                        let mark = pointer.len();
                        push_token(pointer, &index.to_string());
                        self.convert(schema, pointer, depth + 1)?;
                        pointer.truncate(mark);
                    }
                }
                (Subschemas::Map { lists_allowed }, Value::Object(schemas)) => {
                    for (name, schema) in schemas.iter_mut() {
                        if lists_allowed && schema.is_array() {
                            continue;
                        }
                        let mark = pointer.len();
                        push_token(pointer, name);
                        self.convert(schema, pointer, depth + 1)?;
                        pointer.truncate(mark);
                    }
                }
                (Subschemas::List, _) => return Err(invalid(pointer, "must be a list of schemas")),
                (Subschemas::Map { .. }, _) => {
                    return Err(invalid(pointer, "must be a mapping of schemas"));
                }
            }
            pointer.truncate(mark);
        }
        if self.dialect == SchemaDialect::Draft4 {
            apply_nullable(object, pointer)?;
        }
        self.drop_read_only_from_required(object);
        Ok(())
    }

    /// The JSON pointer a schema `$ref` names inside the document: a pointer fragment, or
    /// (3.1) the place of the `$anchor` it names. `Ok(None)` when it does not resolve.
    fn schema_ref_target(
        &self,
        reference: &str,
        pointer: &str,
    ) -> Result<Option<String>, OpenApiError> {
        let Some(fragment) = reference.strip_prefix('#') else {
            return Ok(None);
        };
        if fragment.is_empty() || fragment.starts_with('/') {
            return Ok(local_pointer(reference));
        }
        match self.anchors.get(fragment) {
            None => Ok(None),
            Some(Some(target)) => Ok(Some(target.clone())),
            Some(None) => Err(invalid(
                pointer,
                format!("the anchor in `$ref` {reference:?} is declared more than once"),
            )),
        }
    }

    /// Checks that a schema `$ref` (in the schema at `pointer`) resolves to a component
    /// schema; returns the `$ref` to write instead when it names a 3.1 anchor (a JSON
    /// pointer, as anchors are not found under the `components` of an embedding root).
    fn check_schema_ref(
        &self,
        reference: &str,
        pointer: &str,
    ) -> Result<Option<String>, OpenApiError> {
        let unresolved = || OpenApiError::UnresolvedRef {
            pointer: pointer.to_owned(),
            reference: reference.to_owned(),
        };
        let target = self
            .schema_ref_target(reference, pointer)?
            .ok_or_else(unresolved)?;
        if self.root.pointer(&target).is_none() {
            return Err(unresolved());
        }
        if !target.starts_with(COMPONENT_SCHEMAS) {
            return Err(invalid(
                pointer,
                format!("the schema `$ref` {reference:?} must point into #/components/schemas"),
            ));
        }
        let is_pointer = reference
            .strip_prefix('#')
            .is_some_and(|fragment| fragment.starts_with('/'));
        Ok((!is_pointer).then(|| pointer_fragment(&target)))
    }

    /// Removes the properties marked `readOnly` from the schema's `required`, and
    /// `required` itself when that empties it (Draft 4 refuses an empty `required`).
    fn drop_read_only_from_required(&self, schema: &mut Map<String, Value>) {
        let (Some(Value::Array(required)), Some(Value::Object(properties))) =
            (schema.get("required"), schema.get("properties"))
        else {
            return;
        };
        let read_only: Vec<String> = required
            .iter()
            .filter_map(Value::as_str)
            .filter(|name| {
                properties
                    .get(*name)
                    .is_some_and(|property| self.is_read_only(property))
            })
            .map(str::to_owned)
            .collect();
        if read_only.is_empty() {
            return;
        }
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|name| {
                name.as_str()
                    .is_none_or(|name| !read_only.iter().any(|dropped| dropped == name))
            });
            if required.is_empty() {
                schema.remove("required");
            }
        }
    }

    /// Whether a property schema is `readOnly`, directly or through the `$ref`s it
    /// follows inside the document.
    fn is_read_only(&self, property: &Value) -> bool {
        let mut schema = property;
        for _ in 0..MAX_DEPTH {
            if let Some(Value::Bool(read_only)) = schema.get("readOnly") {
                return *read_only;
            }
            let Some(next) = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|reference| self.schema_ref_target(reference, "").ok().flatten())
                .and_then(|target| self.root.pointer(&target))
            else {
                return false;
            };
            schema = next;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An OpenAPI 3.0.3 orders API, in YAML.
    const ORDERS_3_0: &str = r##"
openapi: 3.0.3
info:
  title: Orders API
  version: 1.4.0
servers:
  - url: https://api.example.com/v1
security:
  - bearerAuth: []
  - apiKey: []
paths:
  /orders:
    get:
      operationId: listOrders
      summary: List orders, newest first
      security:
        - oauth: [orders:read]
      parameters:
        - $ref: '#/components/parameters/Limit'
        - name: status
          in: query
          schema:
            type: string
            enum: [pending, shipped]
            nullable: true
        - name: X-Request-ID
          in: header
          schema:
            type: string
            format: uuid
        - name: Authorization
          in: header
          required: true
          schema:
            type: string
      responses:
        200:
          description: A page of orders
    post:
      operationId: createOrder
      requestBody:
        $ref: '#/components/requestBodies/NewOrder'
      responses:
        '201':
          description: Created
  /orders/{orderId}:
    parameters:
      - name: orderId
        in: path
        required: true
        schema:
          type: string
          pattern: '^ord_[a-z0-9]+$'
      - name: X-Tenant
        in: header
        required: true
        schema:
          type: string
    get:
      operationId: getOrder
      security:
        - {}
        - oauth: [read]
      parameters:
        - name: x-tenant
          in: header
          schema:
            type: string
            maxLength: 32
      responses:
        '200':
          description: The order
    patch:
      operationId: updateOrder
      requestBody:
        required: true
        content:
          Application/JSON:
            schema:
              $ref: '#/components/schemas/OrderPatch'
          application/merge-patch+json:
            schema:
              $ref: '#/components/schemas/OrderPatch'
      responses:
        '200':
          description: Updated
    delete:
      operationId: cancelOrder
      security:
        - oidc: [openid, orders:admin]
          apiKey: []
      responses:
        '204':
          description: Cancelled
  /health:
    get:
      operationId: health
      security: []
      responses:
        '200':
          description: Alive
components:
  securitySchemes:
    bearerAuth:
      type: http
      scheme: Bearer
      bearerFormat: JWT
    apiKey:
      type: apiKey
      in: header
      name: X-API-Key
    oauth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://auth.example.com/oauth/token
          scopes:
            read: Read anything
            orders:read: Read orders
    oidc:
      type: openIdConnect
      openIdConnectUrl: https://auth.example.com/.well-known/openid-configuration
  parameters:
    Limit:
      name: limit
      in: query
      description: Page size
      schema:
        type: integer
        minimum: 1
        maximum: 100
        default: 20
  requestBodies:
    NewOrder:
      required: true
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/Order'
  schemas:
    Order:
      type: object
      required: [id, createdAt, customer, lines]
      properties:
        id:
          type: string
          readOnly: true
        createdAt:
          $ref: '#/components/schemas/Timestamp'
        customer:
          $ref: '#/components/schemas/Customer'
        lines:
          type: array
          minItems: 1
          items:
            $ref: '#/components/schemas/OrderLine'
        note:
          type: string
          nullable: true
          maxLength: 500
        coupon:
          type: string
          enum: [SPRING, SUMMER]
          nullable: true
      example:
        id: ord_1
        note: null
        nullable: true
    OrderLine:
      type: object
      required: [sku, quantity]
      properties:
        sku:
          type: string
        quantity:
          type: integer
          minimum: 0
          exclusiveMinimum: true
    Customer:
      type: object
      nullable: true
      required: [email]
      properties:
        email:
          type: string
          format: email
    OrderPatch:
      type: object
      minProperties: 1
      additionalProperties: false
      properties:
        note:
          type: string
          nullable: true
        status:
          $ref: '#/components/schemas/Status'
    Status:
      type: string
      enum: [pending, shipped, cancelled]
    Timestamp:
      type: string
      format: date-time
      readOnly: true
"##;

    /// The component schemas of [`ORDERS_3_0`] after conversion to Draft 4.
    fn orders_components() -> Value {
        json!({"schemas": {
            "Order": {
                "type": "object",
                "required": ["customer", "lines"],
                "properties": {
                    "id": {"type": "string", "readOnly": true},
                    "createdAt": {"$ref": "#/components/schemas/Timestamp"},
                    "customer": {"$ref": "#/components/schemas/Customer"},
                    "lines": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"$ref": "#/components/schemas/OrderLine"}
                    },
                    "note": {"type": ["string", "null"], "maxLength": 500},
                    "coupon": {"type": ["string", "null"], "enum": ["SPRING", "SUMMER", null]}
                },
                "example": {"id": "ord_1", "note": null, "nullable": true}
            },
            "OrderLine": {
                "type": "object",
                "required": ["sku", "quantity"],
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 0, "exclusiveMinimum": true}
                }
            },
            "Customer": {
                "type": ["object", "null"],
                "required": ["email"],
                "properties": {"email": {"type": "string", "format": "email"}}
            },
            "OrderPatch": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": false,
                "properties": {
                    "note": {"type": ["string", "null"]},
                    "status": {"$ref": "#/components/schemas/Status"}
                }
            },
            "Status": {"type": "string", "enum": ["pending", "shipped", "cancelled"]},
            "Timestamp": {"type": "string", "format": "date-time", "readOnly": true}
        }})
    }

    /// An OpenAPI 3.1.0 pet store API, in JSON.
    const PETS_3_1: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "Pet store", "version": "2.0.0"},
  "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
  "security": [{"petstore_oauth": ["pets:read"]}, {"oidc": ["openid"]}],
  "paths": {
    "/pets": {
      "parameters": [{"$ref": "#/components/parameters/TraceId"}],
      "get": {
        "operationId": "listPets",
        "security": [{}, {"oauth": ["read"]}],
        "parameters": [
          {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
          {"name": "limit", "in": "query", "required": false,
           "schema": {"type": ["integer", "null"], "maximum": 100}}
        ],
        "responses": {"200": {"description": "Pets"}}
      },
      "post": {
        "operationId": "addPet",
        "security": [{"api_key": [], "bearer": []}, {"oauth": ["pets:write"]}],
        "requestBody": {"$ref": "#/components/requestBodies/NewPet"},
        "responses": {"201": {"description": "Created"}}
      }
    },
    "/pets/{petId}": {
      "parameters": [
        {"name": "petId", "in": "path", "required": true,
         "schema": {"type": "integer", "format": "int64"}}
      ],
      "get": {
        "operationId": "showPet",
        "security": [],
        "responses": {"200": {"description": "A pet"}}
      },
      "put": {
        "operationId": "replacePet",
        "parameters": [
          {"name": "petId", "in": "path", "required": true,
           "schema": {"type": "integer", "minimum": 1}},
          {"name": "If-Match", "in": "header", "required": true, "schema": {"type": "string"}},
          {"name": "session", "in": "cookie", "schema": true}
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {"$ref": "#/components/schemas/Pet", "description": "The whole pet"}
            }
          }
        },
        "responses": {"200": {"description": "Replaced"}}
      }
    },
    "/status": {"$ref": "#/components/pathItems/Status"}
  },
  "components": {
    "securitySchemes": {
      "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
      "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
      "oauth": {
        "type": "oauth2",
        "flows": {
          "authorizationCode": {
            "authorizationUrl": "https://auth.example.com/authorize",
            "tokenUrl": "https://auth.example.com/token",
            "scopes": {"read": "Read", "pets:read": "Read pets", "pets:write": "Write pets"}
          }
        }
      },
      "petstore_oauth": {"$ref": "#/components/securitySchemes/oauth"},
      "oidc": {
        "type": "openIdConnect",
        "openIdConnectUrl": "https://auth.example.com/.well-known/openid-configuration"
      }
    },
    "parameters": {
      "TraceId": {
        "name": "X-Trace-Id", "in": "header",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}
      }
    },
    "requestBodies": {
      "NewPet": {
        "required": true,
        "content": {
          "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Pet"}},
          "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}
        }
      }
    },
    "pathItems": {
      "Status": {
        "get": {
          "operationId": "status", "security": [],
          "responses": {"200": {"description": "Up"}}
        }
      }
    },
    "schemas": {
      "Pet": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {
          "id": {"type": "integer", "readOnly": true},
          "name": {"type": "string", "minLength": 1},
          "nickname": {"type": ["string", "null"]},
          "category": {"$ref": "#category"},
          "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}}
        },
        "examples": [{"id": 1, "name": "Rex", "nickname": null}]
      },
      "Category": {"$anchor": "category", "enum": ["dog", "cat", "bird"]},
      "Tag": {"type": "string", "maxLength": 20}
    }
  }
}"##;

    /// The component schemas of [`PETS_3_1`] as embedded: `readOnly` handled, the anchor
    /// reference rewritten as a JSON pointer.
    fn pets_components() -> Value {
        json!({"schemas": {
            "Pet": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "id": {"type": "integer", "readOnly": true},
                    "name": {"type": "string", "minLength": 1},
                    "nickname": {"type": ["string", "null"]},
                    "category": {"$ref": "#/components/schemas/Category"},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}}
                },
                "examples": [{"id": 1, "name": "Rex", "nickname": null}]
            },
            "Category": {"$anchor": "category", "enum": ["dog", "cat", "bird"]},
            "Tag": {"type": "string", "maxLength": 20}
        }})
    }

    /// The operation `method path` of a document.
    fn find<'d>(document: &'d Document, method: Method, path: &str) -> &'d Operation {
        document
            .operations
            .iter()
            .find(|operation| operation.method == method && operation.path == path)
            .unwrap_or_else(|| panic!("no operation {method} {path}"))
    }

    /// `(name, location, required)` of each parameter.
    fn parameter_summary(operation: &Operation) -> Vec<(&str, Location, bool)> {
        operation
            .parameters
            .iter()
            .map(|parameter| {
                (
                    parameter.name.as_str(),
                    parameter.location,
                    parameter.required,
                )
            })
            .collect()
    }

    /// The parameter `name` of an operation.
    fn parameter<'o>(operation: &'o Operation, name: &str) -> &'o Parameter {
        operation
            .parameters
            .iter()
            .find(|parameter| parameter.name == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    }

    /// The `components` holding only the named schemas of `all`.
    fn only(all: &Value, names: &[&str]) -> Value {
        let schemas: Map<String, Value> = names
            .iter()
            .map(|name| ((*name).to_owned(), all["schemas"][*name].clone()))
            .collect();
        json!({ "schemas": schemas })
    }

    /// `schema` with `components` added, as every output schema has.
    fn rooted(mut schema: Value, components: &Value) -> Value {
        schema["components"] = components.clone();
        schema
    }

    fn requirement(scheme: &str, kind: SchemeKind, scopes: &[&str]) -> SchemeRequirement {
        SchemeRequirement {
            scheme: scheme.to_owned(),
            kind,
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        }
    }

    /// Parses a document built with `json!`.
    fn parse_value(document: &Value) -> Result<Document, OpenApiError> {
        parse(&document.to_string())
    }

    /// A 3.0 document with the given paths and components.
    fn document_3_0(paths: Value, components: Value) -> Value {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": paths,
            "components": components
        })
    }

    #[test]
    fn orders_3_0_operations_are_listed_in_order() {
        let document = parse(ORDERS_3_0).expect("the orders document parses");
        assert_eq!(document.dialect, SchemaDialect::Draft4);
        let listed: Vec<(String, &str, Option<&str>)> = document
            .operations
            .iter()
            .map(|operation| {
                (
                    operation.method.to_string(),
                    operation.path.as_str(),
                    operation.operation_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("GET".to_owned(), "/health", Some("health")),
                ("GET".to_owned(), "/orders", Some("listOrders")),
                ("POST".to_owned(), "/orders", Some("createOrder")),
                ("GET".to_owned(), "/orders/{orderId}", Some("getOrder")),
                (
                    "DELETE".to_owned(),
                    "/orders/{orderId}",
                    Some("cancelOrder")
                ),
                ("PATCH".to_owned(), "/orders/{orderId}", Some("updateOrder")),
            ]
        );
    }

    #[test]
    fn orders_3_0_parameters_are_merged_converted_and_rooted() {
        let document = parse(ORDERS_3_0).expect("the orders document parses");
        // No schema of these operations references a component schema.
        let components = json!({"schemas": {}});

        let list = find(&document, Method::GET, "/orders");
        // `Authorization` is dropped; header names are lowercased.
        assert_eq!(
            parameter_summary(list),
            [
                ("limit", Location::Query, false),
                ("status", Location::Query, false),
                ("x-request-id", Location::Header, false),
            ]
        );
        assert_eq!(
            parameter(list, "limit").schema,
            Some(rooted(
                json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
                &components
            ))
        );
        assert_eq!(
            parameter(list, "status").schema,
            Some(json!({
                "type": ["string", "null"],
                "enum": ["pending", "shipped", null],
                "components": components
            }))
        );

        // The operation's `x-tenant` replaces the path item's `X-Tenant`, in place.
        let get = find(&document, Method::GET, "/orders/{orderId}");
        assert_eq!(
            parameter_summary(get),
            [
                ("orderId", Location::Path, true),
                ("x-tenant", Location::Header, false),
            ]
        );
        assert_eq!(
            parameter(get, "x-tenant").schema,
            Some(rooted(
                json!({"type": "string", "maxLength": 32}),
                &components
            ))
        );
        let patch = find(&document, Method::PATCH, "/orders/{orderId}");
        assert_eq!(
            parameter_summary(patch),
            [
                ("orderId", Location::Path, true),
                ("x-tenant", Location::Header, true),
            ]
        );
        // Every schema of an operation embeds the component schemas that any of them
        // (here the body) references, directly or not.
        assert_eq!(
            parameter(patch, "orderId").schema,
            Some(rooted(
                json!({"type": "string", "pattern": "^ord_[a-z0-9]+$"}),
                &only(&orders_components(), &["OrderPatch", "Status"])
            ))
        );
    }

    #[test]
    fn orders_3_0_bodies_wrap_root_refs_and_embed_converted_components() {
        let document = parse(ORDERS_3_0).expect("the orders document parses");
        let all = orders_components();
        let components = only(&all, &["Customer", "Order", "OrderLine", "Timestamp"]);

        let create = find(&document, Method::POST, "/orders");
        let body = create.body.as_ref().expect("createOrder has a body");
        assert!(body.required);
        assert_eq!(body.content.len(), 1);
        assert_eq!(body.content[0].media_type, "application/json");
        let schema = body.content[0].schema.as_ref().expect("a body schema");
        assert_eq!(
            *schema,
            json!({
                "allOf": [{"$ref": "#/components/schemas/Order"}],
                "components": components
            })
        );
        // `id` (readOnly) and `createdAt` (a `$ref` to a readOnly schema) are not
        // required in requests; `nullable` became a `null` type; examples are untouched.
        assert_eq!(
            schema["components"]["schemas"]["Order"]["required"],
            json!(["customer", "lines"])
        );
        assert_eq!(
            schema["components"]["schemas"]["Order"]["properties"]["note"],
            json!({"type": ["string", "null"], "maxLength": 500})
        );
        assert_eq!(
            schema["components"]["schemas"]["Order"]["example"]["nullable"],
            json!(true)
        );

        let patch = find(&document, Method::PATCH, "/orders/{orderId}");
        let body = patch.body.as_ref().expect("updateOrder has a body");
        assert!(body.required);
        let media_types: Vec<&str> = body
            .content
            .iter()
            .map(|media| media.media_type.as_str())
            .collect();
        assert_eq!(
            media_types,
            ["application/json", "application/merge-patch+json"]
        );
        for media in &body.content {
            assert_eq!(
                media.schema,
                Some(json!({
                    "allOf": [{"$ref": "#/components/schemas/OrderPatch"}],
                    "components": only(&all, &["OrderPatch", "Status"])
                }))
            );
        }
        assert!(find(&document, Method::GET, "/health").body.is_none());
    }

    #[test]
    fn orders_3_0_security_is_effective_per_operation() {
        let document = parse(ORDERS_3_0).expect("the orders document parses");
        let top_level = Security::Alternatives(vec![
            vec![requirement("bearerAuth", SchemeKind::HttpBearer, &[])],
            vec![requirement("apiKey", SchemeKind::ApiKey, &[])],
        ]);
        assert_eq!(find(&document, Method::POST, "/orders").security, top_level);
        assert_eq!(
            find(&document, Method::PATCH, "/orders/{orderId}").security,
            top_level
        );
        assert_eq!(
            find(&document, Method::GET, "/orders").security,
            Security::Alternatives(vec![vec![requirement(
                "oauth",
                SchemeKind::OAuth2,
                &["orders:read"]
            )]])
        );
        assert_eq!(
            find(&document, Method::GET, "/orders/{orderId}").security,
            Security::Alternatives(vec![
                vec![],
                vec![requirement("oauth", SchemeKind::OAuth2, &["read"])],
            ])
        );
        assert_eq!(
            find(&document, Method::DELETE, "/orders/{orderId}").security,
            Security::Alternatives(vec![vec![
                requirement("apiKey", SchemeKind::ApiKey, &[]),
                requirement(
                    "oidc",
                    SchemeKind::OpenIdConnect,
                    &["openid", "orders:admin"]
                ),
            ]])
        );
        assert_eq!(
            find(&document, Method::GET, "/health").security,
            Security::Public
        );
    }

    #[test]
    fn pets_3_1_operations_parameters_and_bodies() {
        let document = parse(PETS_3_1).expect("the pet store document parses");
        assert_eq!(document.dialect, SchemaDialect::Draft202012);
        let components = pets_components();
        let none = json!({"schemas": {}});
        let listed: Vec<(String, &str)> = document
            .operations
            .iter()
            .map(|operation| (operation.method.to_string(), operation.path.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("GET".to_owned(), "/pets"),
                ("POST".to_owned(), "/pets"),
                ("GET".to_owned(), "/pets/{petId}"),
                ("PUT".to_owned(), "/pets/{petId}"),
                ("GET".to_owned(), "/status"),
            ]
        );

        let list = find(&document, Method::GET, "/pets");
        assert_eq!(list.operation_id.as_deref(), Some("listPets"));
        assert_eq!(
            parameter_summary(list),
            [
                ("x-trace-id", Location::Header, false),
                ("tag", Location::Query, false),
                ("limit", Location::Query, false),
            ]
        );
        assert_eq!(
            parameter(list, "limit").schema,
            Some(json!({
                "type": ["integer", "null"],
                "maximum": 100,
                "components": none
            }))
        );
        assert_eq!(
            parameter(list, "x-trace-id").schema,
            Some(rooted(
                json!({"type": "string", "pattern": "^[0-9a-f]{32}$"}),
                &none
            ))
        );

        let replace = find(&document, Method::PUT, "/pets/{petId}");
        assert_eq!(
            parameter_summary(replace),
            [
                ("petId", Location::Path, true),
                ("if-match", Location::Header, true),
                ("session", Location::Cookie, false),
            ]
        );
        assert_eq!(
            parameter(replace, "petId").schema,
            Some(rooted(
                json!({"type": "integer", "minimum": 1}),
                &components
            ))
        );
        // A boolean schema becomes an object root.
        assert_eq!(
            parameter(replace, "session").schema,
            Some(json!({"components": components}))
        );
        // 2020-12 keeps `$ref` siblings: no `allOf` wrapping.
        let body = replace.body.as_ref().expect("replacePet has a body");
        assert_eq!(
            body.content[0].schema,
            Some(json!({
                "$ref": "#/components/schemas/Pet",
                "description": "The whole pet",
                "components": components
            }))
        );

        let add = find(&document, Method::POST, "/pets");
        let body = add.body.as_ref().expect("addPet has a body");
        assert!(body.required);
        let media_types: Vec<(&str, Option<&Value>)> = body
            .content
            .iter()
            .map(|media| (media.media_type.as_str(), media.schema.as_ref()))
            .collect();
        let pet = json!({"$ref": "#/components/schemas/Pet", "components": components});
        assert_eq!(
            media_types,
            [
                ("application/json", Some(&pet)),
                ("application/x-www-form-urlencoded", Some(&pet)),
            ]
        );
        let status = find(&document, Method::GET, "/status");
        assert_eq!(status.operation_id.as_deref(), Some("status"));
        assert!(status.parameters.is_empty());
    }

    #[test]
    fn pets_3_1_security_is_effective_per_operation() {
        let document = parse(PETS_3_1).expect("the pet store document parses");
        assert_eq!(
            find(&document, Method::GET, "/pets").security,
            Security::Alternatives(vec![
                vec![],
                vec![requirement("oauth", SchemeKind::OAuth2, &["read"])],
            ])
        );
        assert_eq!(
            find(&document, Method::POST, "/pets").security,
            Security::Alternatives(vec![
                vec![
                    requirement("api_key", SchemeKind::ApiKey, &[]),
                    requirement("bearer", SchemeKind::HttpBearer, &[]),
                ],
                vec![requirement("oauth", SchemeKind::OAuth2, &["pets:write"])],
            ])
        );
        assert_eq!(
            find(&document, Method::GET, "/pets/{petId}").security,
            Security::Public
        );
        // Inherited from the top level; `petstore_oauth` is a `$ref` to `oauth`.
        assert_eq!(
            find(&document, Method::PUT, "/pets/{petId}").security,
            Security::Alternatives(vec![
                vec![requirement(
                    "petstore_oauth",
                    SchemeKind::OAuth2,
                    &["pets:read"]
                )],
                vec![requirement("oidc", SchemeKind::OpenIdConnect, &["openid"])],
            ])
        );
        assert_eq!(
            find(&document, Method::GET, "/status").security,
            Security::Public
        );
    }

    #[test]
    fn undeclared_security_and_other_http_schemes() {
        let document = json!({
            "openapi": "3.0.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/open": {"get": {"responses": {}}},
                "/signed": {"get": {"security": [{"sig": []}, {"basic": []}, {"tls": []}]}}
            },
            "components": {"securitySchemes": {
                "sig": {"type": "http", "scheme": "HOBA"},
                "basic": {"type": "http", "scheme": "basic"},
                "tls": {"type": "mutualTLS"}
            }}
        });
        let document = parse_value(&document).expect("parses");
        assert_eq!(
            find(&document, Method::GET, "/open").security,
            Security::Undeclared
        );
        assert_eq!(
            find(&document, Method::GET, "/signed").security,
            Security::Alternatives(vec![
                vec![requirement(
                    "sig",
                    SchemeKind::HttpOther("hoba".to_owned()),
                    &[]
                )],
                vec![requirement("basic", SchemeKind::HttpBasic, &[])],
                vec![requirement("tls", SchemeKind::MutualTls, &[])],
            ])
        );
    }

    #[test]
    fn nullable_conversion_edge_cases() {
        let document = document_3_0(
            json!({"/things": {"post": {
                "parameters": [
                    {"name": "any", "in": "query", "schema": {"nullable": true, "minLength": 2}},
                    {"name": "plain", "in": "query",
                     "schema": {"type": "integer", "nullable": false}}
                ],
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "nullable": true},
                    "properties": {
                        "choice": {"oneOf": [
                            {"type": "string", "nullable": true},
                            {"type": "array", "items": {"type": "boolean", "nullable": true}}
                        ]},
                        "only": {"$ref": "#/components/schemas/Only"}
                    },
                    "default": {"nullable": true},
                    "enum": [{"nullable": true}]
                }}}}
            }}}),
            json!({"schemas": {"Only": {"type": "string", "nullable": true, "enum": ["a", null]}}}),
        );
        let document = parse_value(&document).expect("parses");
        let operation = find(&document, Method::POST, "/things");
        let components =
            json!({"schemas": {"Only": {"type": ["string", "null"], "enum": ["a", null]}}});
        assert_eq!(
            parameter(operation, "any").schema,
            Some(rooted(json!({"minLength": 2}), &components))
        );
        assert_eq!(
            parameter(operation, "plain").schema,
            Some(rooted(json!({"type": "integer"}), &components))
        );
        let body = operation.body.as_ref().expect("a body");
        assert!(!body.required);
        assert_eq!(
            body.content[0].schema,
            Some(rooted(
                json!({
                    "type": "object",
                    "additionalProperties": {"type": ["number", "null"]},
                    "properties": {
                        "choice": {"oneOf": [
                            {"type": ["string", "null"]},
                            {"type": "array", "items": {"type": ["boolean", "null"]}}
                        ]},
                        "only": {"$ref": "#/components/schemas/Only"}
                    },
                    "default": {"nullable": true},
                    "enum": [{"nullable": true}]
                }),
                &components
            ))
        );
    }

    #[test]
    fn parameter_content_and_percent_encoded_refs() {
        let document = document_3_0(
            json!({"/search": {"get": {"parameters": [
                {"name": "filter", "in": "query",
                 "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/Filter"}
                 }}},
                {"$ref": "#/components/parameters/Page%20Size"}
            ]}}}),
            json!({
                "schemas": {"Filter": {"type": "object"}},
                "parameters": {"Page Size": {
                    "name": "size", "in": "query", "schema": {"type": "integer"}
                }}
            }),
        );
        let document = parse_value(&document).expect("parses");
        let search = find(&document, Method::GET, "/search");
        let components = json!({"schemas": {"Filter": {"type": "object"}}});
        assert_eq!(
            parameter(search, "filter").schema,
            Some(json!({
                "allOf": [{"$ref": "#/components/schemas/Filter"}],
                "components": components
            }))
        );
        assert_eq!(
            parameter(search, "size").schema,
            Some(rooted(json!({"type": "integer"}), &components))
        );
    }

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

    #[test]
    fn unresolved_refs_are_refused() {
        let missing_parameter = document_3_0(
            json!({"/things": {"get": {"parameters": [
                {"$ref": "#/components/parameters/Missing"}
            ]}}}),
            json!({}),
        );
        match parse_value(&missing_parameter) {
            Err(OpenApiError::UnresolvedRef { pointer, reference }) => {
                assert_eq!(pointer, "/paths/~1things/get/parameters/0");
                assert_eq!(reference, "#/components/parameters/Missing");
            }
            other => panic!("expected UnresolvedRef, got {other:?}"),
        }
        let missing_schema = document_3_0(
            json!({}),
            json!({"schemas": {"A": {"properties": {"b": {"$ref": "#/components/schemas/B"}}}}}),
        );
        match parse_value(&missing_schema) {
            Err(OpenApiError::UnresolvedRef { pointer, reference }) => {
                assert_eq!(pointer, "/components/schemas/A/properties/b");
                assert_eq!(reference, "#/components/schemas/B");
            }
            other => panic!("expected UnresolvedRef, got {other:?}"),
        }
        let missing_anchor = json!({
            "openapi": "3.1.0",
            "paths": {},
            "components": {"schemas": {"A": {"$ref": "#nowhere"}}}
        });
        assert!(matches!(
            parse_value(&missing_anchor),
            Err(OpenApiError::UnresolvedRef { .. })
        ));
    }

    #[test]
    fn external_refs_are_never_fetched() {
        let external_body = document_3_0(
            json!({"/things": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "other.yaml#/x"}
            }}}}}}),
            json!({}),
        );
        match parse_value(&external_body) {
            Err(OpenApiError::UnresolvedRef { pointer, reference }) => {
                assert_eq!(
                    pointer,
                    "/paths/~1things/post/requestBody/content/application~1json/schema"
                );
                assert_eq!(reference, "other.yaml#/x");
            }
            other => panic!("expected UnresolvedRef, got {other:?}"),
        }
        let external_parameter = document_3_0(
            json!({"/things": {"get": {"parameters": [{"$ref": "other.yaml#/x"}]}}}),
            json!({}),
        );
        assert!(matches!(
            parse_value(&external_parameter),
            Err(OpenApiError::UnresolvedRef { reference, .. }) if reference == "other.yaml#/x"
        ));
    }

    #[test]
    fn schema_refs_outside_component_schemas_are_refused() {
        let document = document_3_0(
            json!({"/things": {"get": {"parameters": [
                {"name": "a", "in": "query", "schema": {"type": "string"}},
                {"name": "b", "in": "query",
                 "schema": {"$ref": "#/paths/~1things/get/parameters/0/schema"}}
            ]}}}),
            json!({}),
        );
        assert!(matches!(
            parse_value(&document),
            Err(OpenApiError::Invalid { pointer, .. })
                if pointer == "/paths/~1things/get/parameters/1/schema"
        ));
    }

    #[test]
    fn unknown_security_schemes_are_refused() {
        let in_operation = document_3_0(
            json!({"/things": {"get": {"security": [{"key": []}, {"nope": ["x"]}]}}}),
            json!({"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "K"}}}),
        );
        match parse_value(&in_operation) {
            Err(OpenApiError::UnknownScheme { pointer, scheme }) => {
                assert_eq!(pointer, "/paths/~1things/get/security/1");
                assert_eq!(scheme, "nope");
            }
            other => panic!("expected UnknownScheme, got {other:?}"),
        }
        let mut top_level = document_3_0(json!({}), json!({}));
        top_level["security"] = json!([{"ghost": []}]);
        assert!(matches!(
            parse_value(&top_level),
            Err(OpenApiError::UnknownScheme { pointer, scheme })
                if pointer == "/security/0" && scheme == "ghost"
        ));
        let bad_kind = document_3_0(
            json!({"/things": {"get": {"security": [{"weird": []}]}}}),
            json!({"securitySchemes": {"weird": {"type": "carrierPigeon"}}}),
        );
        assert!(matches!(
            parse_value(&bad_kind),
            Err(OpenApiError::Invalid { pointer, .. })
                if pointer == "/components/securitySchemes/weird/type"
        ));
    }

    #[test]
    fn path_parameters_must_match_the_template() {
        let undeclared = document_3_0(json!({"/things/{id}": {"get": {}}}), json!({}));
        match parse_value(&undeclared) {
            Err(OpenApiError::Invalid { pointer, reason }) => {
                assert_eq!(pointer, "/paths/~1things~1{id}/get");
                assert!(reason.contains("{id}"), "{reason}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let not_in_template = document_3_0(
            json!({"/things": {"get": {"parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}
            ]}}}),
            json!({}),
        );
        assert!(matches!(
            parse_value(&not_in_template),
            Err(OpenApiError::Invalid { pointer, reason })
                if pointer == "/paths/~1things/get" && reason.contains("\"id\"")
        ));
        // Declared at the path item, used by every operation.
        let shared = document_3_0(
            json!({"/things/{id}": {
                "parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}],
                "get": {}, "delete": {}
            }}),
            json!({}),
        );
        let document = parse_value(&shared).expect("parses");
        assert_eq!(document.operations.len(), 2);
        assert!(
            document.operations.iter().all(|operation| {
                parameter_summary(operation) == [("id", Location::Path, true)]
            })
        );
        for path in [
            "/things/{id",
            "/things/id}",
            "/things/{}",
            "/a/{x}/{x}",
            "things",
        ] {
            let document = document_3_0(json!({ path: {} }), json!({}));
            assert!(
                matches!(parse_value(&document), Err(OpenApiError::Invalid { .. })),
                "{path}"
            );
        }
        let same_route = document_3_0(
            json!({
                "/things/{id}": {"parameters": [{"name": "id", "in": "path"}]},
                "/things/{thingId}": {"parameters": [{"name": "thingId", "in": "path"}]}
            }),
            json!({}),
        );
        assert!(matches!(
            parse_value(&same_route),
            Err(OpenApiError::Invalid { reason, .. }) if reason.contains("same route")
        ));
    }

    #[test]
    fn reference_cycles_are_refused() {
        let cycle = document_3_0(
            json!({"/things": {"get": {"parameters": [{"$ref": "#/components/parameters/A"}]}}}),
            json!({"parameters": {
                "A": {"$ref": "#/components/parameters/B"},
                "B": {"$ref": "#/components/parameters/A"}
            }}),
        );
        match parse_value(&cycle) {
            Err(OpenApiError::Invalid { pointer, reason }) => {
                assert_eq!(pointer, "/components/parameters/B");
                assert!(reason.contains("cycle"), "{reason}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let self_cycle = document_3_0(json!({"/things": {"$ref": "#/paths/~1things"}}), json!({}));
        assert!(matches!(
            parse_value(&self_cycle),
            Err(OpenApiError::Invalid { reason, .. }) if reason.contains("cycle")
        ));
    }

    #[test]
    fn structural_problems_point_at_their_place() {
        let cases = [
            (
                json!({"/t": {"get": {"parameters": [{"name": "q", "in": "body"}]}}}),
                "/paths/~1t/get/parameters/0/in",
            ),
            (
                json!({"/t": {"get": {"parameters": [
                    {"name": "q", "in": "query"}, {"name": "q", "in": "query"}
                ]}}}),
                "/paths/~1t/get/parameters/1",
            ),
            (
                json!({"/t": {"post": {"requestBody": {"required": true}}}}),
                "/paths/~1t/post/requestBody",
            ),
            (
                json!({"/t": {"get": {"parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string", "nullable": "yes"}}
                ]}}}),
                "/paths/~1t/get/parameters/0/schema/nullable",
            ),
            (
                json!({"/t": {"get": {"operationId": 7}}}),
                "/paths/~1t/get/operationId",
            ),
        ];
        for (paths, expected) in cases {
            match parse_value(&document_3_0(paths, json!({}))) {
                Err(OpenApiError::Invalid { pointer, .. }) => assert_eq!(pointer, expected),
                other => panic!("expected Invalid at {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn anchors_become_pointers_and_ids_are_refused() {
        let document = json!({
            "openapi": "3.1.0",
            "paths": {"/notes": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#title"}
            }}}}}},
            "components": {"schemas": {"Note": {"properties": {
                "the title": {"$anchor": "title", "type": "string"}
            }}}}
        });
        let document = parse_value(&document).expect("parses");
        let body = document.operations[0].body.as_ref().expect("a body");
        assert_eq!(
            body.content[0]
                .schema
                .as_ref()
                .map(|schema| &schema["$ref"]),
            Some(&json!("#/components/schemas/Note/properties/the%20title"))
        );

        let twice = json!({
            "openapi": "3.1.0",
            "paths": {},
            "components": {"schemas": {
                "A": {"$anchor": "same"},
                "B": {"$anchor": "same"},
                "C": {"$ref": "#same"}
            }}
        });
        assert!(matches!(
            parse_value(&twice),
            Err(OpenApiError::Invalid { pointer, .. }) if pointer == "/components/schemas/C"
        ));

        let with_id = json!({
            "openapi": "3.1.0",
            "paths": {},
            "components": {"schemas": {"A": {"$id": "https://example.com/a"}}}
        });
        assert!(matches!(
            parse_value(&with_id),
            Err(OpenApiError::Invalid { pointer, .. }) if pointer == "/components/schemas/A/$id"
        ));
    }

    #[test]
    fn embedded_components_follow_references_and_cycles() {
        let document = document_3_0(
            json!({"/trees": {"post": {
                "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Node/properties/id"}
                }}}}
            }}}),
            json!({"schemas": {
                "Node": {"properties": {
                    "id": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Branch"}}
                }},
                "Branch": {"properties": {"node": {"$ref": "#/components/schemas/Node"}}},
                "Unused": {"type": "integer"}
            }}),
        );
        let document = parse_value(&document).expect("parses");
        let operation = find(&document, Method::POST, "/trees");
        let expected: Vec<&str> = vec!["Branch", "Node"];
        let body = operation.body.as_ref().expect("a body");
        for schema in [
            parameter(operation, "q").schema.as_ref(),
            body.content[0].schema.as_ref(),
        ] {
            let names: Vec<&str> = schema
                .and_then(|schema| schema["components"]["schemas"].as_object())
                .map(|schemas| schemas.keys().map(String::as_str).collect())
                .unwrap_or_default();
            assert_eq!(names, expected);
        }
    }

    #[test]
    fn schema_nesting_is_bounded() {
        let mut schema = json!({"type": "string"});
        for _ in 0..200 {
            schema = json!({ "not": schema });
        }
        let root = json!({});
        let reader = Reader {
            root: &root,
            dialect: SchemaDialect::Draft4,
            anchors: HashMap::new(),
            component_schemas: Map::new(),
            component_references: HashMap::new(),
            default_security: Security::Undeclared,
        };
        match reader.root_schema(&schema, "/deep") {
            Err(OpenApiError::Invalid { reason, .. }) => {
                assert!(reason.contains("128"), "{reason}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn errors_read_well() {
        let error = invalid("/paths/~1pets", "a path item must be a mapping");
        assert_eq!(
            error.to_string(),
            "invalid OpenAPI document at `/paths/~1pets`: a path item must be a mapping"
        );
        assert_eq!(
            invalid("", "x").to_string(),
            "invalid OpenAPI document at the document root: x"
        );
    }
}
