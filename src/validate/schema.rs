//! Compiling JSON Schemas once, validating instances, and turning strings from the query,
//! path and headers into the JSON types their schemas declare (as OpenAPI does).

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Number, Value};

use crate::error::ConfigError;
use crate::rejection::Violation;

/// Which JSON Schema draft to compile with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// From the schema's `$schema`, else 2020-12.
    Detect,
    /// Draft 4 (used for OpenAPI 3.0 schemas).
    Draft4,
    /// Draft 2020-12 (OpenAPI 3.1).
    Draft202012,
}

/// A schema compiled at build time.
pub(crate) struct CompiledSchema {
    validator: jsonschema::Validator,
}

impl fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledSchema").finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Compiles `schema` without any network or file access: only local `$ref`s resolve.
    /// `format` is asserted, and `pattern` runs on a linear-time regex engine, so no
    /// pattern can be made to backtrack catastrophically.
    pub(crate) fn compile(
        rule: &str,
        part: &str,
        schema: &Value,
        dialect: Dialect,
    ) -> Result<Self, ConfigError> {
        let mut options = jsonschema::options()
            .should_validate_formats(true)
            .with_pattern_options(jsonschema::PatternOptions::regex());
        options = match dialect {
            Dialect::Detect => options,
            Dialect::Draft4 => options.with_draft(jsonschema::Draft::Draft4),
            Dialect::Draft202012 => options.with_draft(jsonschema::Draft::Draft202012),
        };
        let validator = options
            .build(schema)
            .map_err(|error| ConfigError::InvalidSchema {
                rule: rule.to_owned(),
                part: part.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Self { validator })
    }

    /// Appends up to `cap` violations of `instance` to `out`.
    pub(crate) fn check(
        &self,
        location: &'static str,
        instance: &Value,
        cap: usize,
        out: &mut Vec<Violation>,
    ) {
        if self.validator.is_valid(instance) {
            return;
        }
        for error in self.validator.iter_errors(instance) {
            if out.len() >= cap {
                break;
            }
            out.push(Violation::new(
                location,
                error.instance_path().as_str(),
                error.kind().keyword(),
                &error.to_string(),
            ));
        }
    }
}

/// The JSON types a parameter's schema declares, in the order to try them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Coercion {
    types: Vec<Kind>,
    items: Vec<Kind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Number,
    Boolean,
    Null,
    Array,
    String,
}

impl Coercion {
    /// Whether the parameter is an array (repeated query parameter, comma-separated header).
    pub(crate) fn is_array(&self) -> bool {
        self.types.contains(&Kind::Array)
    }

    /// One string as the first declared type it parses as, else as a string (which the
    /// schema then refuses, with a clear `type` violation).
    pub(crate) fn scalar(&self, raw: &str) -> Value {
        coerce(&self.types, raw)
    }

    /// Several strings as an array of the declared item type.
    pub(crate) fn array<'a>(&self, raw: impl Iterator<Item = &'a str>) -> Value {
        Value::Array(raw.map(|item| coerce(&self.items, item)).collect())
    }
}

fn coerce(types: &[Kind], raw: &str) -> Value {
    for kind in types {
        match kind {
            Kind::Integer => {
                if let Ok(value) = raw.parse::<i64>() {
                    return Value::from(value);
                }
                if let Ok(value) = raw.parse::<u64>() {
                    return Value::from(value);
                }
            }
            Kind::Number => {
                if let Some(number) = raw.parse::<f64>().ok().and_then(Number::from_f64) {
                    return Value::Number(number);
                }
            }
            Kind::Boolean => match raw {
                "true" => return Value::Bool(true),
                "false" => return Value::Bool(false),
                _ => {}
            },
            Kind::Null if raw.is_empty() || raw == "null" => return Value::Null,
            Kind::Null | Kind::Array | Kind::String => {}
        }
    }
    Value::String(raw.to_owned())
}

/// Reads the coercion of every property of an object schema (`{"properties": {...}}`),
/// following local `$ref`s and `allOf` a few levels, by property name.
pub(crate) fn property_coercions(schema: &Value) -> HashMap<String, Coercion> {
    let mut coercions = HashMap::new();
    let Some(properties) = resolve(schema, schema, 0)
        .and_then(|object| object.get("properties"))
        .and_then(Value::as_object)
    else {
        return coercions;
    };
    for (name, property) in properties {
        let types = declared_types(schema, property);
        let items = resolve(schema, property, 0)
            .and_then(|object| object.get("items"))
            .map(|items| declared_types(schema, items))
            .unwrap_or_default();
        coercions.insert(name.clone(), Coercion { types, items });
    }
    coercions
}

/// How deep `$ref` and `allOf` are followed when reading declared types.
const MAX_RESOLVE_DEPTH: usize = 8;

/// The object a schema stands for, after following a local `$ref` (or a single-`$ref`
/// `allOf` wrapper) within `root`.
fn resolve<'a>(root: &'a Value, schema: &'a Value, depth: usize) -> Option<&'a Map<String, Value>> {
    let object = schema.as_object()?;
    if depth >= MAX_RESOLVE_DEPTH {
        return Some(object);
    }
    if let Some(pointer) = object.get("$ref").and_then(Value::as_str)
        && !object.contains_key("type")
    {
        let target = pointer
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))?;
        return resolve(root, target, depth + 1);
    }
    if !object.contains_key("type")
        && let Some([single]) = object
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
    {
        return resolve(root, single, depth + 1);
    }
    Some(object)
}

fn declared_types(root: &Value, schema: &Value) -> Vec<Kind> {
    let Some(object) = resolve(root, schema, 0) else {
        return Vec::new();
    };
    let names: Vec<&str> = match object.get("type") {
        Some(Value::String(name)) => vec![name],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut kinds: Vec<Kind> = names
        .into_iter()
        .filter_map(|name| match name {
            "integer" => Some(Kind::Integer),
            "number" => Some(Kind::Number),
            "boolean" => Some(Kind::Boolean),
            "null" => Some(Kind::Null),
            "array" => Some(Kind::Array),
            "string" => Some(Kind::String),
            _ => None,
        })
        .collect();
    // Try the most specific parse first: "1" is an integer before it is a number.
    kinds.sort_by_key(|kind| *kind as u8);
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_become_declared_types() {
        let schema = json!({
            "type": "object",
            "properties": {
                "limit": {"type": "integer"},
                "ratio": {"type": ["number", "null"]},
                "flag": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "integer"}},
                "name": {"type": "string"},
                "ref": {"$ref": "#/components/schemas/Count"},
                "wrapped": {"allOf": [{"$ref": "#/components/schemas/Count"}]}
            },
            "components": {"schemas": {"Count": {"type": "integer"}}}
        });
        let coercions = property_coercions(&schema);
        assert_eq!(coercions["limit"].scalar("10"), json!(10));
        assert_eq!(coercions["limit"].scalar("ten"), json!("ten"));
        assert_eq!(coercions["ratio"].scalar("0.5"), json!(0.5));
        assert_eq!(coercions["ratio"].scalar(""), json!(null));
        assert_eq!(coercions["flag"].scalar("true"), json!(true));
        assert_eq!(coercions["name"].scalar("10"), json!("10"));
        assert_eq!(coercions["ref"].scalar("3"), json!(3));
        assert_eq!(coercions["wrapped"].scalar("3"), json!(3));
        assert!(coercions["tags"].is_array());
        assert_eq!(
            coercions["tags"].array(["1", "x"].into_iter()),
            json!([1, "x"])
        );
    }

    #[test]
    fn violations_are_capped_and_located() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}});
        let compiled =
            CompiledSchema::compile("POST /x", "body", &schema, Dialect::Detect).expect("compiles");
        let mut out = Vec::new();
        compiled.check("body", &json!({"a": "x", "b": "y"}), 1, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].keyword(), "type");
        assert!(out[0].pointer() == "/a" || out[0].pointer() == "/b");
    }

    #[test]
    fn bad_schemas_and_unbounded_patterns_fail_to_compile() {
        for schema in [json!({"type": 12}), json!({"pattern": "(?<=a)b"})] {
            let error = CompiledSchema::compile("POST /x", "body", &schema, Dialect::Detect)
                .expect_err("refused");
            assert!(
                matches!(error, ConfigError::InvalidSchema { ref rule, .. } if rule == "POST /x")
            );
        }
    }
}
