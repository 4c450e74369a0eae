//! The order the validation benches send: its JSON Schema and a body of about 1 KB, valid
//! or with two violations. Shared by `benches/validate.rs` and the end-to-end app.

use bytes::Bytes;
use serde_json::{Value, json};

/// The schema of `POST /orders`.
pub(crate) fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "customer", "items"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "customer": {
                "type": "object",
                "required": ["name", "email"],
                "properties": {
                    "name": {"type": "string", "maxLength": 100},
                    "email": {"type": "string", "format": "email"}
                }
            },
            "items": {
                "type": "array",
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                        "quantity": {"type": "integer", "minimum": 1},
                        "note": {"type": ["string", "null"]}
                    },
                    "additionalProperties": false
                }
            },
            "express": {"type": "boolean"}
        }
    })
}

/// A realistic order of about 1 KB: valid, or with a bad `sku` and a zero `quantity`.
pub(crate) fn order(valid: bool) -> Bytes {
    let items: Vec<Value> = (0..18)
        .map(|i| {
            json!({
                "sku": if valid || i != 3 { format!("ABC-{:04}", 1000 + i) } else { "bad".into() },
                "quantity": if valid || i != 5 { i + 1 } else { 0 },
                "note": if i % 3 == 0 { Value::from("gift wrap") } else { Value::Null }
            })
        })
        .collect();
    let order = json!({
        "id": "5f0c6a9e-3c1b-4b8e-9d2a-1f2e3d4c5b6a",
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "items": items,
        "express": true
    });
    Bytes::from(serde_json::to_vec(&order).expect("serialises"))
}
