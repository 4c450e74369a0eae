//! References: Reference Objects followed through the document, schema `$ref`s checked
//! (3.1 anchors rewritten as JSON pointers), and the component schemas each operation's
//! schemas need, embedded into them.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::MAX_DEPTH;
use super::error::{OpenApiError, invalid};
use super::pointer::{child, local_pointer, pointer_fragment};
use super::reader::Reader;
use super::schema::{Subschemas, subschemas};

/// Where the document's component schemas live, as a JSON pointer prefix.
const COMPONENT_SCHEMAS: &str = "/components/schemas/";

/// Where each `$anchor` and `$dynamicAnchor` of the component schemas is declared, as a
/// JSON pointer; `None` for a name declared in more than one place. Walks schema keywords
/// only, without recursion; nesting past [`MAX_DEPTH`] is left for the conversion to
/// refuse.
pub(super) fn collect_anchors(schemas: &Map<String, Value>) -> HashMap<String, Option<String>> {
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

/// The names of the component schemas that `$ref`s under `schema` point into (after
/// conversion, every schema `$ref` is a pointer into `#/components/schemas`). Walks every
/// value, without recursion: a `$ref` inside example data only embeds one schema too many.
pub(super) fn referenced_components(schema: &Value) -> BTreeSet<String> {
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

impl<'a> Reader<'a> {
    /// Follows a chain of Reference Objects from `value` (at `pointer`) to the object it
    /// ends at, and returns that object with a JSON pointer to it.
    pub(super) fn resolve(
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

    /// Adds `{"components": {"schemas": …}}` to each of one operation's schemas: the same
    /// for all, holding every component schema that any of them references, directly or
    /// through other component schemas.
    pub(super) fn embed_components(&self, schemas: Vec<&mut Value>) {
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

    /// The JSON pointer a schema `$ref` names inside the document: a pointer fragment, or
    /// (3.1) the place of the `$anchor` it names. `Ok(None)` when it does not resolve.
    pub(super) fn schema_ref_target(
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
    pub(super) fn check_schema_ref(
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
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::super::error::OpenApiError;
    use super::super::test_support::*;

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
}
