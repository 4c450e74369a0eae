//! Placeholder until the OpenAPI import lands (overwritten by the real module).
#![allow(dead_code, missing_docs)]

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemaDialect {
    Draft4,
    Draft202012,
}
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub(crate) dialect: SchemaDialect,
    pub(crate) operations: Vec<Operation>,
}
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub(crate) method: http::Method,
    pub(crate) path: String,
    pub(crate) operation_id: Option<String>,
    pub(crate) parameters: Vec<Parameter>,
    pub(crate) body: Option<RequestBody>,
    pub(crate) security: Security,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Path,
    Query,
    Header,
    Cookie,
}
#[derive(Debug, Clone)]
pub(crate) struct Parameter {
    pub(crate) name: String,
    pub(crate) location: Location,
    pub(crate) required: bool,
    pub(crate) schema: Option<serde_json::Value>,
}
#[derive(Debug, Clone)]
pub(crate) struct RequestBody {
    pub(crate) required: bool,
    pub(crate) content: Vec<MediaType>,
}
#[derive(Debug, Clone)]
pub(crate) struct MediaType {
    pub(crate) media_type: String,
    pub(crate) schema: Option<serde_json::Value>,
}
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Security {
    Undeclared,
    Public,
    Alternatives(Vec<Vec<SchemeRequirement>>),
}
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SchemeRequirement {
    pub(crate) scheme: String,
    pub(crate) kind: SchemeKind,
    pub(crate) scopes: Vec<String>,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SchemeKind {
    ApiKey,
    HttpBearer,
    HttpBasic,
    HttpOther(String),
    OAuth2,
    OpenIdConnect,
    MutualTls,
}
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenApiError {
    #[error("not yet")]
    Syntax(String),
}
pub(crate) fn parse(_text: &str) -> Result<Document, OpenApiError> {
    Err(OpenApiError::Syntax("stub".into()))
}
