//! The types of kwargs, from the JSON Schemas functions given with `with_schema` carry in their
//! Lambda's description: what `lpipe check` compares across a forward.

use std::collections::BTreeSet;

use serde_json::Value;

/// The JSON types a function's argument accepts for a field (`"string"`, `"integer"`, …,
/// without `"null"`), if its schema says: `None` when the function has no schema, the schema
/// has no such property, or the property's type is not stated.
pub fn field_types(function: &Value, field: &str) -> Option<BTreeSet<String>> {
    let root = function["params"].get("schema")?;
    let property = resolve(root, root.get("properties")?.get(field)?)?;
    let mut types = BTreeSet::new();
    collect(root, property, &mut types, 0);
    types.remove("null");
    (!types.is_empty()).then_some(types)
}

/// Whether a value of any of the `sent` types is accepted as one of the `taken` types (an
/// integer is a number).
pub fn accepted(sent: &BTreeSet<String>, taken: &BTreeSet<String>) -> bool {
    sent.iter()
        .all(|t| taken.contains(t) || (t == "integer" && taken.contains("number")))
}

/// `a or b`, for a message.
pub fn describe(types: &BTreeSet<String>) -> String {
    types.iter().cloned().collect::<Vec<_>>().join(" or ")
}

/// A `{"$ref": "#/$defs/Name"}` (or `#/definitions/`) as the schema it names.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => root.pointer(reference.strip_prefix('#')?),
        None => Some(schema),
    }
}

/// The types a schema allows: its `type`, or the union of its `anyOf` / `oneOf` branches.
fn collect(root: &Value, schema: &Value, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 8 {
        return; // a recursive type; what was found so far will do
    }
    match schema.get("type") {
        Some(Value::String(t)) => {
            out.insert(t.clone());
        }
        Some(Value::Array(ts)) => {
            out.extend(ts.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        for branch in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(branch) = resolve(root, branch) {
                collect(root, branch, out, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn function(schema: Value) -> Value {
        json!({"name": "f", "params": {"kind": "fields", "fields": [], "optional": [], "schema": schema}})
    }

    fn set(types: &[&str]) -> BTreeSet<String> {
        types.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn a_field_s_types_come_from_its_property_its_reference_or_its_branches() {
        let f = function(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "count": {"type": ["integer", "null"]},
                "address": {"$ref": "#/$defs/Address"},
                "either": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]},
                "anything": {}
            },
            "$defs": {"Address": {"type": "object"}}
        }));
        assert_eq!(field_types(&f, "name"), Some(set(&["string"])));
        assert_eq!(field_types(&f, "count"), Some(set(&["integer"])));
        assert_eq!(field_types(&f, "address"), Some(set(&["object"])));
        assert_eq!(field_types(&f, "either"), Some(set(&["object"])));
        assert_eq!(field_types(&f, "anything"), None);
        assert_eq!(field_types(&f, "missing"), None);
        let no_schema = json!({"name": "f", "params": {"kind": "any"}});
        assert_eq!(field_types(&no_schema, "name"), None);
    }

    #[test]
    fn an_integer_is_a_number_but_not_a_string() {
        assert!(accepted(&set(&["integer"]), &set(&["number"])));
        assert!(accepted(&set(&["string"]), &set(&["string", "integer"])));
        assert!(!accepted(&set(&["number"]), &set(&["integer"])));
        assert!(!accepted(&set(&["string", "integer"]), &set(&["string"])));
    }
}
