//! Schemas: each converted to the document's JSON Schema dialect (OpenAPI 3.0 → Draft 4,
//! `nullable` included; 3.1 stays 2020-12), `readOnly` properties dropped from `required`,
//! and made a root that a validator can compile.

use serde_json::{Map, Value, json};

use super::MAX_DEPTH;
use super::error::{OpenApiError, invalid};
use super::model::SchemaDialect;
use super::pointer::{child, push_token};
use super::reader::Reader;

/// How a schema keyword holds subschemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Subschemas {
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
pub(super) fn subschemas(keyword: &str, value: &Value) -> Option<Subschemas> {
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

impl<'a> Reader<'a> {
    /// A schema converted to the document's dialect, as an object ready to be a root
    /// (components are added by [`Reader::embed_components`]).
    pub(super) fn root_schema(&self, schema: &Value, pointer: &str) -> Result<Value, OpenApiError> {
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

    /// Converts one schema in place (see the module documentation), checks its `$ref`s,
    /// and rewrites those naming a 3.1 anchor into JSON pointers.
    pub(super) fn convert(
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
    use std::collections::HashMap;

    use http::Method;
    use serde_json::json;

    use super::super::model::Security;
    use super::super::parse;
    use super::super::test_support::*;
    use super::*;

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
}
