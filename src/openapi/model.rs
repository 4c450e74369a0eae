//! What the reader makes of a document: its operations, their parameters, request bodies
//! and security requirements. Crate-private: the validation and authorization layers read
//! it through [`OpenApiSpec::operations`](super::OpenApiSpec::operations).

use http::Method;
use serde_json::Value;

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
    /// Who owns the object the operation acts on: the `x-portcullis-owner` extension.
    #[cfg_attr(not(feature = "authz"), allow(dead_code))] // Read by authorization rules.
    pub(crate) owner: Option<Owner>,
}

/// The `x-portcullis-owner` extension of an operation: which request field names the
/// object's owner, and which of the caller's values it must match.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "authz"), allow(dead_code))]
pub(crate) struct Owner {
    /// Where the owner is in the request.
    pub(crate) field: OwnerField,
    /// The caller's claim it must equal; `sub` means the caller's subject, however they
    /// authenticated.
    pub(crate) claim: String,
    /// Whether the claim is a list the field must be one of.
    pub(crate) member: bool,
    /// Callers with this role are exempt.
    pub(crate) unless_role: Option<String>,
}

/// Where the owner's identifier is in a request.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "authz"), allow(dead_code))]
pub(crate) enum OwnerField {
    Param(String),
    Query(String),
    Header(String),
    /// A JSON pointer into the body.
    Body(String),
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
    pub(super) fn keyword(self) -> &'static str {
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
