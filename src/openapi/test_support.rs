//! The documents and helpers the unit tests of this module share.

use http::Method;
use serde_json::{Map, Value, json};

use super::error::OpenApiError;
use super::model::{Document, Location, Operation, Parameter, SchemeKind, SchemeRequirement};
use super::parse;

/// An OpenAPI 3.0.3 orders API, in YAML.
pub(super) const ORDERS_3_0: &str = include_str!("../../tests/fixtures/openapi/orders-3.0.yaml");

/// The component schemas of [`ORDERS_3_0`] after conversion to Draft 4.
pub(super) fn orders_components() -> Value {
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
pub(super) const PETS_3_1: &str = include_str!("../../tests/fixtures/openapi/pets-3.1.json");

/// The component schemas of [`PETS_3_1`] as embedded: `readOnly` handled, the anchor
/// reference rewritten as a JSON pointer.
pub(super) fn pets_components() -> Value {
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
pub(super) fn find<'d>(document: &'d Document, method: Method, path: &str) -> &'d Operation {
    document
        .operations
        .iter()
        .find(|operation| operation.method == method && operation.path == path)
        .unwrap_or_else(|| panic!("no operation {method} {path}"))
}

/// `(name, location, required)` of each parameter.
pub(super) fn parameter_summary(operation: &Operation) -> Vec<(&str, Location, bool)> {
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
pub(super) fn parameter<'o>(operation: &'o Operation, name: &str) -> &'o Parameter {
    operation
        .parameters
        .iter()
        .find(|parameter| parameter.name == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

/// The `components` holding only the named schemas of `all`.
pub(super) fn only(all: &Value, names: &[&str]) -> Value {
    let schemas: Map<String, Value> = names
        .iter()
        .map(|name| ((*name).to_owned(), all["schemas"][*name].clone()))
        .collect();
    json!({ "schemas": schemas })
}

/// `schema` with `components` added, as every output schema has.
pub(super) fn rooted(mut schema: Value, components: &Value) -> Value {
    schema["components"] = components.clone();
    schema
}

pub(super) fn requirement(scheme: &str, kind: SchemeKind, scopes: &[&str]) -> SchemeRequirement {
    SchemeRequirement {
        scheme: scheme.to_owned(),
        kind,
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
    }
}

/// Parses a document built with `json!`.
pub(super) fn parse_value(document: &Value) -> Result<Document, OpenApiError> {
    parse(&document.to_string())
}

/// A 3.0 document with the given paths and components.
pub(super) fn document_3_0(paths: Value, components: Value) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": paths,
        "components": components
    })
}
