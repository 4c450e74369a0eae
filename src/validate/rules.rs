//! [`ValidationRules`]: which schema applies to which route, compiled at build time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::business::{
    AsyncBusinessRule, AsyncFn, BusinessRule, NamedRule, RuleInput, RuleKind, RuleRequest,
};
use super::json::JsonLimits;
use super::schema::{Coercion, CompiledSchema, Dialect, property_coercions};
use crate::error::ConfigError;
use crate::openapi::OpenApiSpec;
use crate::openapi::model::{Location, Operation, Parameter, SchemaDialect};
use crate::rejection::Violation;
use crate::route::RouteTable;

/// What to validate on one route: a JSON Schema for the body, and object schemas for the
/// query parameters, path parameters and headers (strings are coerced to the types the
/// schemas declare before validation, as OpenAPI does).
///
/// A body schema makes the body required, in `application/json` or any `+json` media type,
/// unless [`optional_body`](Self::optional_body) or [`media_types`](Self::media_types) say
/// otherwise.
///
/// # Example
///
/// ```
/// use portcullis::validate::RequestSchema;
/// use serde_json::json;
///
/// let create_order = RequestSchema::new()
///     .body(json!({
///         "type": "object",
///         "required": ["item", "quantity"],
///         "properties": {
///             "item": {"type": "string", "maxLength": 64},
///             "quantity": {"type": "integer", "minimum": 1}
///         },
///         "additionalProperties": false
///     }))
///     .query(json!({"type": "object", "properties": {"dry_run": {"type": "boolean"}}}))
///     .max_body_bytes(16 * 1024);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RequestSchema {
    body: Option<Value>,
    body_optional: bool,
    media_types: Option<Vec<String>>,
    query: Option<Value>,
    path: Option<Value>,
    headers: Option<Value>,
    max_body_bytes: Option<usize>,
    rules: Vec<NamedRule>,
}

impl RequestSchema {
    /// Nothing validated yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The JSON Schema of the body.
    pub fn body(mut self, schema: Value) -> Self {
        self.body = Some(schema);
        self
    }

    /// Allows requests without a body (an empty body is not validated). Defaults to
    /// required when a body schema is set.
    pub fn optional_body(mut self) -> Self {
        self.body_optional = true;
        self
    }

    /// The media types the body may have. Defaults to `application/json` and any
    /// `application/…+json`. Other types are accepted without schema validation.
    pub fn media_types<I, T>(mut self, media_types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.media_types = Some(
            media_types
                .into_iter()
                .map(|media_type| essence_of(&media_type.into()))
                .collect(),
        );
        self
    }

    /// An object schema for the query parameters.
    pub fn query(mut self, schema: Value) -> Self {
        self.query = Some(schema);
        self
    }

    /// An object schema for the path parameters (`{id}` → property `id`).
    pub fn path(mut self, schema: Value) -> Self {
        self.path = Some(schema);
        self
    }

    /// An object schema for headers; property names are lower-case header names.
    pub fn headers(mut self, schema: Value) -> Self {
        self.headers = Some(schema);
        self
    }

    /// This route's body limit, instead of the rules' default.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = Some(limit);
        self
    }

    /// Adds business rule `name` (for logs): a closure over the schema-valid request
    /// returning the violations it finds. Rules run after the schemas, in the order they
    /// are added, and the first that finds violations answers (**422** `rule_violation`).
    /// None by default. See [`BusinessRule`].
    pub fn rule<F>(self, name: &str, check: F) -> Self
    where
        F: Fn(&RuleInput<'_>) -> Vec<Violation> + Send + Sync + 'static,
    {
        self.business_rule(name, check)
    }

    /// Adds business rule `name` that waits (an async closure given an owned
    /// [`RuleRequest`]), bounded by the rules' timeout. See [`AsyncBusinessRule`].
    pub fn async_rule<F, Fut>(self, name: &str, check: F) -> Self
    where
        F: Fn(RuleRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Violation>> + Send + 'static,
    {
        self.async_business_rule(name, AsyncFn(check))
    }

    /// Adds business rule `name`, a [`BusinessRule`] implementation.
    pub fn business_rule(mut self, name: &str, rule: impl BusinessRule) -> Self {
        self.rules.push(sync_rule(name, rule));
        self
    }

    /// Adds business rule `name`, an [`AsyncBusinessRule`] implementation.
    pub fn async_business_rule(mut self, name: &str, rule: impl AsyncBusinessRule) -> Self {
        self.rules.push(async_rule(name, rule));
        self
    }
}

fn sync_rule(name: &str, rule: impl BusinessRule) -> NamedRule {
    NamedRule {
        name: name.into(),
        kind: RuleKind::Sync(Arc::new(rule)),
    }
}

fn async_rule(name: &str, rule: impl AsyncBusinessRule) -> NamedRule {
    NamedRule {
        name: name.into(),
        kind: RuleKind::Async(Arc::new(rule)),
    }
}

/// The compiled checks for one route.
#[derive(Debug)]
pub(crate) struct RouteSchemas {
    pub(crate) body: Option<BodySchema>,
    pub(crate) query: Option<ParameterSchema>,
    pub(crate) path: Option<ParameterSchema>,
    pub(crate) headers: Option<ParameterSchema>,
    pub(crate) max_body_bytes: Option<usize>,
    /// Business rules, in declaration order.
    pub(crate) rules: Vec<NamedRule>,
}

/// What a route's body may be.
#[derive(Debug)]
pub(crate) struct BodySchema {
    pub(crate) required: bool,
    /// Accepted media types; `None` means "the default JSON types".
    media_types: Option<Vec<(String, Option<Arc<CompiledSchema>>)>>,
    /// The schema for the default JSON types.
    default_schema: Option<Arc<CompiledSchema>>,
}

/// How the body must be read: as JSON against a schema (or none), or just bounded.
#[derive(Debug)]
pub(crate) enum BodyCheck {
    Json(Option<Arc<CompiledSchema>>),
    Opaque,
}

impl BodySchema {
    /// Whether every JSON body the route accepts is checked against a schema: a body a rule
    /// may then read as validated. Asked the way requests are answered: for plain JSON, for
    /// a `+json` type, and for each JSON type listed (one listed without a schema would let
    /// an unchecked body through).
    #[cfg(feature = "authz")]
    fn has_json_schema(&self) -> bool {
        let listed = self
            .media_types
            .iter()
            .flatten()
            .map(|(media_type, _)| media_type);
        let probes = ["application/json", "application/x-portcullis-probe+json"]
            .into_iter()
            .chain(
                listed
                    .map(String::as_str)
                    .filter(|media_type| is_json(media_type)),
            );
        let mut checked = false;
        for probe in probes {
            match self.check_for(probe) {
                Some(BodyCheck::Json(Some(_))) => checked = true,
                Some(BodyCheck::Json(None)) => return false,
                Some(BodyCheck::Opaque) | None => {}
            }
        }
        checked
    }

    /// The check for a request's `Content-Type`, or `None` when the type is not accepted.
    pub(crate) fn check_for(&self, content_type: &str) -> Option<BodyCheck> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let json = is_json(essence);
        match &self.media_types {
            None => json.then(|| BodyCheck::Json(self.default_schema.clone())),
            Some(accepted) => {
                let exact = accepted
                    .iter()
                    .find(|(media_type, _)| media_type.eq_ignore_ascii_case(essence));
                let range = || {
                    accepted.iter().find(|(media_type, _)| {
                        media_type == "*/*"
                            || media_type.strip_suffix("/*").is_some_and(|kind| {
                                essence
                                    .split_once('/')
                                    .is_some_and(|(wanted, _)| wanted.eq_ignore_ascii_case(kind))
                            })
                    })
                };
                // `application/json` also covers the `+json` types (`application/merge-patch+json`).
                let found = exact
                    .or_else(|| {
                        json.then(|| {
                            accepted
                                .iter()
                                .find(|(media_type, _)| media_type == "application/json")
                        })
                        .flatten()
                    })
                    .or_else(range)?;
                Some(if json {
                    BodyCheck::Json(found.1.clone())
                } else {
                    BodyCheck::Opaque
                })
            }
        }
    }
}

/// The essence of a media type (`type/subtype`), lower-case, without parameters.
fn essence_of(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a media type's essence (`type/subtype`, any case) is JSON: `application/json`
/// or `application/…+json`.
fn is_json(essence: &str) -> bool {
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .len()
                .checked_sub(5)
                .and_then(|at| subtype.get(at..))
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

/// An object schema over named string parameters, with their coercions.
#[derive(Debug)]
pub(crate) struct ParameterSchema {
    pub(crate) schema: CompiledSchema,
    pub(crate) coercions: HashMap<String, Coercion>,
}

/// Validation rules: schemas per route, and the limits every validated body obeys.
///
/// # Example
///
/// ```
/// use portcullis::validate::{RequestSchema, ValidationRules};
/// use serde_json::json;
///
/// let rules = ValidationRules::builder()
///     .route("POST /orders", RequestSchema::new().body(json!({"type": "object"})))
///     .route("GET /orders", RequestSchema::new().query(json!({
///         "type": "object",
///         "properties": {"limit": {"type": "integer", "maximum": 100}}
///     })))
///     .build()?;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ValidationRules {
    pub(crate) inner: Arc<Settings>,
}

pub(crate) struct Settings {
    pub(crate) routes: RouteTable<RouteSchemas>,
    pub(crate) limits: JsonLimits,
    pub(crate) max_body_bytes: usize,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) max_violations: usize,
    pub(crate) violation_status: StatusCode,
    pub(crate) rule_timeout: Duration,
}

impl fmt::Debug for ValidationRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &*self.inner;
        f.debug_struct("ValidationRules")
            .field(
                "routes",
                &settings
                    .routes
                    .iter()
                    .map(|(text, _)| text)
                    .collect::<Vec<_>>(),
            )
            .field("limits", &settings.limits)
            .field("max_body_bytes", &settings.max_body_bytes)
            .field("read_timeout", &settings.read_timeout)
            .field("max_violations", &settings.max_violations)
            .field("violation_status", &settings.violation_status)
            .field("business_rule_timeout", &settings.rule_timeout)
            .finish()
    }
}

impl ValidationRules {
    /// Starts an empty rule set with the default limits.
    pub fn builder() -> ValidationRulesBuilder {
        ValidationRulesBuilder {
            routes: Vec::new(),
            openapi: Vec::new(),
            limits: JsonLimits::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            max_violations: DEFAULT_MAX_VIOLATIONS,
            violation_status: StatusCode::BAD_REQUEST,
            rules: Vec::new(),
            rule_timeout: DEFAULT_RULE_TIMEOUT,
        }
    }
}

impl ValidationRules {
    /// Whether every method of rule `text` (`POST /orders/{id}`) has, for the same path
    /// pattern, a JSON body schema: a body a rule may read once it is validated.
    #[cfg(feature = "authz")]
    pub(crate) fn has_body_schema(&self, text: &str) -> Result<bool, ConfigError> {
        Ok(self
            .inner
            .routes
            .same_route(text)?
            .into_iter()
            .all(|schemas| {
                schemas
                    .and_then(|schemas| schemas.body.as_ref())
                    .is_some_and(BodySchema::has_json_schema)
            }))
    }
}

/// 1 MiB: larger than any ordinary JSON API request.
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// 10 seconds: a slow mobile client sends 1 MiB well within it.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// 20 violations: enough to fix a request, few enough to keep the answer small.
const DEFAULT_MAX_VIOLATIONS: usize = 20;
/// 1 second: a lookup that takes longer is failing, and the client is better told so.
const DEFAULT_RULE_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds [`ValidationRules`]; every schema is compiled by [`build`](Self::build).
#[must_use]
pub struct ValidationRulesBuilder {
    routes: Vec<(String, RequestSchema)>,
    openapi: Vec<OpenApiSpec>,
    limits: JsonLimits,
    max_body_bytes: usize,
    read_timeout: Option<Duration>,
    max_violations: usize,
    violation_status: StatusCode,
    /// Business rules by route text, after the routes' own.
    rules: Vec<(String, NamedRule)>,
    rule_timeout: Duration,
}

impl fmt::Debug for ValidationRulesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidationRulesBuilder")
            .field("routes", &self.routes)
            .field("openapi", &self.openapi.len())
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl ValidationRulesBuilder {
    /// Validates requests to `rule` (`POST /orders`, same syntax as the authorization
    /// rules) against `schema`. Requests to routes without rules pass unvalidated.
    pub fn route(mut self, rule: &str, schema: RequestSchema) -> Self {
        self.routes.push((rule.to_owned(), schema));
        self
    }

    /// Validates every operation of an OpenAPI document: parameters, request bodies per
    /// media type.
    pub fn openapi(mut self, spec: &OpenApiSpec) -> Self {
        self.openapi.push(spec.clone());
        self
    }

    /// Structure limits for JSON bodies, enforced in the pass that parses them. Defaults to
    /// [`JsonLimits::default`]; [`build`](Self::build) refuses a zero limit.
    pub fn json_limits(mut self, limits: JsonLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The largest body accepted on validated routes, in bytes; a route can override it.
    /// Defaults to 1 MiB. Larger bodies get 413, before they are read when
    /// `Content-Length` says so, as soon as the limit is passed otherwise.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// How long a validated body may take to arrive. Defaults to 10 seconds; a client
    /// trickling bytes gets 408 and frees its slot. Needs a tokio runtime.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// How many violations one response lists at most. Defaults to 20.
    pub fn max_violations(mut self, max: usize) -> Self {
        self.max_violations = max;
        self
    }

    /// Answers schema violations with 422 Unprocessable Content instead of 400.
    pub fn unprocessable_entity(mut self) -> Self {
        self.violation_status = StatusCode::UNPROCESSABLE_ENTITY;
        self
    }

    /// Adds business rule `name` to route `route`, written as in [`route`](Self::route) or,
    /// for an OpenAPI operation, `METHOD /path` as in the document (`POST /orders/{id}`).
    /// It runs after the route's own rules ([`RequestSchema::rule`]), in the order added.
    /// None by default; [`build`](Self::build) refuses a route that has no validation
    /// entry.
    pub fn rule<F>(self, route: &str, name: &str, check: F) -> Self
    where
        F: Fn(&RuleInput<'_>) -> Vec<Violation> + Send + Sync + 'static,
    {
        self.business_rule(route, name, check)
    }

    /// Adds async business rule `name` to route `route`, as [`rule`](Self::rule) does.
    pub fn async_rule<F, Fut>(self, route: &str, name: &str, check: F) -> Self
    where
        F: Fn(RuleRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Violation>> + Send + 'static,
    {
        self.async_business_rule(route, name, AsyncFn(check))
    }

    /// Adds business rule `name`, a [`BusinessRule`] implementation, to route `route`.
    pub fn business_rule(mut self, route: &str, name: &str, rule: impl BusinessRule) -> Self {
        self.rules.push((route.to_owned(), sync_rule(name, rule)));
        self
    }

    /// Adds async business rule `name`, an [`AsyncBusinessRule`] implementation, to route
    /// `route`.
    pub fn async_business_rule(
        mut self,
        route: &str,
        name: &str,
        rule: impl AsyncBusinessRule,
    ) -> Self {
        self.rules.push((route.to_owned(), async_rule(name, rule)));
        self
    }

    /// How long an async business rule may take. Defaults to 1 second; past it the request
    /// gets 503 `unavailable` with `Retry-After: 1`. Needs a tokio runtime (outside one the
    /// timeout is not armed).
    pub fn business_rule_timeout(mut self, timeout: Duration) -> Self {
        self.rule_timeout = timeout;
        self
    }

    /// Compiles every schema and builds the rules.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSchema`] naming the route and part whose schema does not
    /// compile; [`ConfigError::InvalidRoute`] / [`ConfigError::ConflictingRules`] for route
    /// patterns; [`ConfigError::InvalidLimit`] for a zero limit.
    pub fn build(self) -> Result<ValidationRules, ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(ConfigError::InvalidLimit {
                setting: "max_body_bytes",
            });
        }
        if self.max_violations == 0 {
            return Err(ConfigError::InvalidLimit {
                setting: "max_violations",
            });
        }
        if self.read_timeout.is_some_and(|timeout| timeout.is_zero()) {
            return Err(ConfigError::InvalidLimit {
                setting: "body_read_timeout",
            });
        }
        if self.rule_timeout.is_zero() {
            return Err(ConfigError::InvalidLimit {
                setting: "business_rule_timeout",
            });
        }
        let mut used = vec![false; self.rules.len()];
        // The builder's rules for `text`, after the route's own.
        let mut attach = |text: &str, compiled: &mut RouteSchemas| {
            for ((route, rule), used) in self.rules.iter().zip(&mut used) {
                if route.trim() == text.trim() {
                    compiled.rules.push(rule.clone());
                    *used = true;
                }
            }
        };
        self.limits.validate()?;
        let mut routes = RouteTable::default();
        for (rule, schema) in &self.routes {
            let mut compiled = compile_route(rule, schema)?;
            attach(rule, &mut compiled);
            routes.insert(rule, compiled)?;
        }
        for spec in &self.openapi {
            for operation in spec.operations() {
                let rule = format!("{} {}", operation.method, operation.path);
                // Build errors name the operation as the document does.
                let named = match &operation.operation_id {
                    Some(id) => format!("{rule} ({id})"),
                    None => rule.clone(),
                };
                let mut compiled = compile_operation(&named, operation, spec.dialect())?;
                attach(&rule, &mut compiled);
                routes.insert(&rule, compiled)?;
            }
        }
        if let Some(((route, rule), _)) = self.rules.iter().zip(&used).find(|(_, used)| !**used) {
            return Err(ConfigError::UnknownRuleRoute {
                route: route.clone(),
                rule: rule.name.to_string(),
            });
        }
        Ok(ValidationRules {
            inner: Arc::new(Settings {
                routes,
                limits: self.limits,
                max_body_bytes: self.max_body_bytes,
                read_timeout: self.read_timeout,
                max_violations: self.max_violations,
                violation_status: self.violation_status,
                rule_timeout: self.rule_timeout,
            }),
        })
    }
}

fn compile_route(rule: &str, schema: &RequestSchema) -> Result<RouteSchemas, ConfigError> {
    let dialect = Dialect::Detect;
    let compile = |part: &str, value: &Value| {
        CompiledSchema::compile(rule, part, value, dialect).map(Arc::new)
    };
    let body = match (&schema.body, &schema.media_types) {
        (None, None) => None,
        (body, media_types) => {
            let compiled = body
                .as_ref()
                .map(|value| compile("body", value))
                .transpose()?;
            Some(BodySchema {
                required: body.is_some() && !schema.body_optional,
                media_types: media_types.as_ref().map(|types| {
                    types
                        .iter()
                        .map(|media_type| {
                            let schema = is_json(media_type).then(|| compiled.clone()).flatten();
                            (media_type.clone(), schema)
                        })
                        .collect()
                }),
                default_schema: compiled,
            })
        }
    };
    Ok(RouteSchemas {
        body,
        query: parameters(rule, "query", schema.query.as_ref(), dialect)?,
        path: parameters(rule, "path", schema.path.as_ref(), dialect)?,
        headers: parameters(rule, "header", schema.headers.as_ref(), dialect)?,
        max_body_bytes: schema.max_body_bytes,
        rules: schema.rules.clone(),
    })
}

fn parameters(
    rule: &str,
    part: &str,
    schema: Option<&Value>,
    dialect: Dialect,
) -> Result<Option<ParameterSchema>, ConfigError> {
    schema
        .map(|schema| {
            Ok(ParameterSchema {
                schema: CompiledSchema::compile(rule, part, schema, dialect)?,
                coercions: property_coercions(schema),
            })
        })
        .transpose()
}

fn compile_operation(
    rule: &str,
    operation: &Operation,
    dialect: SchemaDialect,
) -> Result<RouteSchemas, ConfigError> {
    let dialect = match dialect {
        SchemaDialect::Draft4 => Dialect::Draft4,
        SchemaDialect::Draft202012 => Dialect::Draft202012,
    };
    let mut locations: [(Location, &str, Option<Value>); 3] = [
        (Location::Query, "query", None),
        (Location::Path, "path", None),
        (Location::Header, "header", None),
    ];
    for (location, _, object) in &mut locations {
        let declared: Vec<&Parameter> = operation
            .parameters
            .iter()
            .filter(|parameter| parameter.location == *location)
            .collect();
        if !declared.is_empty() {
            *object = Some(parameters_object(&declared));
        }
    }
    let [query, path, headers] = locations.map(|(_, part, object)| (part, object));
    let body = match &operation.body {
        None => None,
        Some(body) => {
            let mut media_types = Vec::new();
            for media in &body.content {
                let essence = essence_of(&media.media_type);
                let json = is_json(&essence) || essence == "*/*" || essence == "application/*";
                let schema = match (&media.schema, json) {
                    (Some(schema), true) => Some(Arc::new(CompiledSchema::compile(
                        rule, "body", schema, dialect,
                    )?)),
                    _ => None,
                };
                media_types.push((essence_of(&media.media_type), schema));
            }
            Some(BodySchema {
                required: body.required,
                media_types: Some(media_types),
                default_schema: None,
            })
        }
    };
    Ok(RouteSchemas {
        body,
        query: parameters(rule, query.0, query.1.as_ref(), dialect)?,
        path: parameters(rule, path.0, path.1.as_ref(), dialect)?,
        headers: parameters(rule, headers.0, headers.1.as_ref(), dialect)?,
        max_body_bytes: None,
        rules: Vec::new(),
    })
}

/// One object schema over separately declared parameters, with the document's components
/// moved to its root so `$ref`s inside the parameter schemas still resolve.
fn parameters_object(declared: &[&Parameter]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut components = None;
    for parameter in declared {
        let mut schema = parameter.schema.clone().unwrap_or_else(|| json!({}));
        if let Some(object) = schema.as_object_mut()
            && let Some(found) = object.remove("components")
        {
            components.get_or_insert(found);
        }
        properties.insert(parameter.name.clone(), schema);
        if parameter.required {
            required.push(Value::from(parameter.name.clone()));
        }
    }
    let mut object = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        object["required"] = Value::Array(required);
    }
    if let Some(components) = components {
        object["components"] = components;
    }
    object
}
