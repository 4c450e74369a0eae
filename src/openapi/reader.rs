//! The reader: paths, path items, operations, parameters and request bodies, read from the
//! parsed document into the [model](super::model). Schemas, references and security
//! requirements are read by the same [`Reader`], in their own files.

use std::collections::{BTreeSet, HashMap};

use http::Method;
use serde_json::{Map, Value};

use super::error::{OpenApiError, invalid};
use super::model::{
    Location, MediaType, Operation, Owner, OwnerField, Parameter, RequestBody, SchemaDialect,
    Security,
};
use super::pointer::child;
use super::refs::{collect_anchors, referenced_components};

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

/// Reads an `x-portcullis-owner` extension: `{param: id, claim: sub}`, with exactly one of
/// `param`, `query`, `header`, `body` (a JSON pointer), a `claim`, and optionally
/// `member: true` and `unless_role: NAME`.
fn read_owner(value: &Value, template: &[&str], pointer: &str) -> Result<Owner, OpenApiError> {
    let Value::Object(fields) = value else {
        return Err(invalid(pointer, "`x-portcullis-owner` must be a mapping"));
    };
    let text = |key: &str| -> Result<Option<String>, OpenApiError> {
        match fields.get(key) {
            None => Ok(None),
            Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
            Some(_) => Err(invalid(
                &child(pointer, key),
                format!("`{key}` must be a non-empty string"),
            )),
        }
    };
    if let Some(unknown) = fields.keys().find(|key| {
        ![
            "param",
            "query",
            "header",
            "body",
            "claim",
            "member",
            "unless_role",
        ]
        .contains(&key.as_str())
    }) {
        return Err(invalid(
            &child(pointer, unknown),
            format!("unknown key `{unknown}` in `x-portcullis-owner`"),
        ));
    }
    let mut found = Vec::new();
    if let Some(name) = text("param")? {
        if !template.contains(&name.as_str()) {
            return Err(invalid(
                &child(pointer, "param"),
                format!("the path template has no `{{{name}}}`"),
            ));
        }
        found.push(OwnerField::Param(name));
    }
    if let Some(name) = text("query")? {
        found.push(OwnerField::Query(name));
    }
    if let Some(name) = text("header")? {
        found.push(OwnerField::Header(name));
    }
    if let Some(body) = text("body")? {
        if !body.starts_with('/') {
            return Err(invalid(
                &child(pointer, "body"),
                "`body` is a JSON pointer such as `/customer/id`",
            ));
        }
        found.push(OwnerField::Body(body));
    }
    let [field] = <[OwnerField; 1]>::try_from(found).map_err(|_| {
        invalid(
            pointer,
            "`x-portcullis-owner` names exactly one of `param`, `query`, `header`, `body`",
        )
    })?;
    let claim = text("claim")?.ok_or_else(|| {
        invalid(
            pointer,
            "`x-portcullis-owner` needs a `claim` (`sub` for the subject)",
        )
    })?;
    let member = match fields.get("member") {
        None => false,
        Some(Value::Bool(member)) => *member,
        Some(_) => {
            return Err(invalid(
                &child(pointer, "member"),
                "`member` must be a boolean",
            ));
        }
    };
    Ok(Owner {
        field,
        claim,
        member,
        unless_role: text("unless_role")?,
    })
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
pub(super) struct Reader<'a> {
    /// The whole document.
    pub(super) root: &'a Value,
    /// The dialect schemas are converted to.
    pub(super) dialect: SchemaDialect,
    /// Where each `$anchor` and `$dynamicAnchor` of the component schemas is declared
    /// (3.1); `None` when declared more than once.
    pub(super) anchors: HashMap<String, Option<String>>,
    /// Every component schema, converted.
    pub(super) component_schemas: Map<String, Value>,
    /// For each component schema, the component schemas its `$ref`s name.
    pub(super) component_references: HashMap<String, BTreeSet<String>>,
    /// The document's top-level `security`.
    pub(super) default_security: Security,
}

impl<'a> Reader<'a> {
    /// Converts the component schemas and reads the top-level security.
    pub(super) fn new(root: &'a Value, dialect: SchemaDialect) -> Result<Self, OpenApiError> {
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
    pub(super) fn operations(&self) -> Result<Vec<Operation>, OpenApiError> {
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
        let owner = match fields.get("x-portcullis-owner") {
            Some(owner) => Some(read_owner(
                owner,
                template,
                &child(pointer, "x-portcullis-owner"),
            )?),
            None => None,
        };
        if owner.is_some() && security == Security::Public {
            return Err(invalid(
                &child(pointer, "x-portcullis-owner"),
                "an operation with an owner needs a caller, but its `security` is empty (public)",
            ));
        }
        Ok(Operation {
            method,
            path: path.to_owned(),
            operation_id,
            parameters,
            body,
            security,
            owner,
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
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::super::parse;
    use super::super::test_support::*;
    use super::*;

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
}
