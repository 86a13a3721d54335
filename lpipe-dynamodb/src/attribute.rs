//! DynamoDB's attribute-value JSON (`{"S": "x"}`, `{"N": "1.5"}`, …) as plain JSON.

use base64::Engine;
use serde_json::{Map, Value};

/// Turns an item in DynamoDB's attribute-value JSON (as a stream record's `NewImage`,
/// `OldImage` and `Keys` carry it) into plain JSON text: `S` a string, `N` a number with its
/// exact digits (as DynamoDB keeps up to 38 of them, more than an `f64` holds), `B` its base64
/// string, `BOOL`, `NULL`, `M` an object, `L` an array, and the sets `SS`, `NS`, `BS` arrays.
///
/// # Errors
///
/// A message naming the attribute (`items[2].qty`) whose value is not an attribute value: an
/// unknown type, a number that is not one, a binary that is not base64.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// let image = json!({
///     "gift": {"BOOL": false},
///     "lines": {"L": [{"M": {"qty": {"N": "2"}, "sku": {"S": "A"}}}]},
///     "note": {"NULL": true},
///     "order_id": {"S": "o-1"},
///     "tags": {"SS": ["new", "vip"]},
///     "total": {"N": "12345678901234567890.5"}
/// });
/// let plain = lpipe_dynamodb::item_to_json(image.as_object().unwrap()).unwrap();
/// assert_eq!(
///     plain,
///     r#"{"gift":false,"lines":[{"qty":2,"sku":"A"}],"note":null,"order_id":"o-1","tags":["new","vip"],"total":12345678901234567890.5}"#
/// );
/// ```
pub fn item_to_json(item: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(64);
    let mut at = String::new();
    write_map(item, &mut out, &mut at)?;
    Ok(out)
}

fn write_map(map: &Map<String, Value>, out: &mut String, at: &mut String) -> Result<(), String> {
    out.push('{');
    for (n, (name, value)) in map.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_string(name, out);
        out.push(':');
        let len = at.len();
        if !at.is_empty() {
            at.push('.');
        }
        at.push_str(name);
        write_attribute(value, out, at)?;
        at.truncate(len);
    }
    out.push('}');
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_owned()).to_string());
}

fn bad(at: &str, what: impl std::fmt::Display) -> String {
    let at = if at.is_empty() { "the item" } else { at };
    format!("attribute {at}: {what}")
}

/// A DynamoDB number as a JSON number with the same digits (`+1`, `.5` and `5.` are
/// numbers to DynamoDB, not to JSON: they get the sign dropped or a 0 added).
fn write_number(n: &str, out: &mut String, at: &str) -> Result<(), String> {
    let trimmed = n.trim();
    let unsigned = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let (sign, digits) = match unsigned.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", unsigned),
    };
    let mut text = String::with_capacity(n.len() + 2);
    text.push_str(sign);
    if digits.starts_with('.') {
        text.push('0');
    }
    match digits.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            text.push_str(mantissa);
            if mantissa.ends_with('.') {
                text.push('0');
            }
            text.push('e');
            text.push_str(exponent.strip_prefix('+').unwrap_or(exponent));
        }
        None => {
            text.push_str(digits);
            if digits.ends_with('.') {
                text.push('0');
            }
        }
    }
    // JSON has no leading zeros ("007"): drop them, keeping the digits' value.
    let text = strip_leading_zeros(&text);
    let valid = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
        && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
    if !valid {
        return Err(bad(at, format!("N is not a number: {n:?}")));
    }
    out.push_str(&text);
    Ok(())
}

fn strip_leading_zeros(text: &str) -> String {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let int_len = rest.find(['.', 'e', 'E']).unwrap_or(rest.len());
    let (int, tail) = rest.split_at(int_len);
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    format!("{sign}{int}{tail}")
}

fn write_attribute(value: &Value, out: &mut String, at: &mut String) -> Result<(), String> {
    let Some(map) = value.as_object().filter(|m| m.len() == 1) else {
        return Err(bad(
            at,
            format!(
                "not an attribute value (one type and its value, like {{\"S\": \"x\"}}): {value}"
            ),
        ));
    };
    let (kind, inner) = map.iter().next().expect("one entry");
    let wrong = |at: &str| bad(at, format!("{kind} holds {inner}"));
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => write_string(s, out),
        ("N", Value::String(n)) => write_number(n, out, at)?,
        ("B", Value::String(b)) => {
            check_base64(b, at)?;
            write_string(b, out);
        }
        ("BOOL", Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        ("NULL", Value::Bool(true)) => out.push_str("null"),
        ("M", Value::Object(m)) => write_map(m, out, at)?,
        ("L", Value::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let len = at.len();
                at.push_str(&format!("[{i}]"));
                write_attribute(item, out, at)?;
                at.truncate(len);
            }
            out.push(']');
        }
        ("SS" | "NS" | "BS", Value::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let Value::String(s) = item else {
                    return Err(wrong(at));
                };
                match kind.as_str() {
                    "NS" => write_number(s, out, at)?,
                    "BS" => {
                        check_base64(s, at)?;
                        write_string(s, out);
                    }
                    _ => write_string(s, out),
                }
            }
            out.push(']');
        }
        ("S" | "N" | "B" | "BOOL" | "NULL" | "M" | "L" | "SS" | "NS" | "BS", _) => {
            return Err(wrong(at))
        }
        (other, _) => return Err(bad(at, format!("unknown attribute type {other:?}"))),
    }
    Ok(())
}

fn check_base64(b: &str, at: &str) -> Result<(), String> {
    base64::engine::general_purpose::STANDARD
        .decode(b)
        .map(drop)
        .map_err(|e| bad(at, format!("B is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(v: Value) -> Result<String, String> {
        item_to_json(v.as_object().unwrap())
    }

    #[test]
    fn every_type_becomes_plain_json() {
        // Keys in order: the output follows the map's order.
        let plain = convert(json!({
            "b": {"B": "aGk="},
            "big": {"N": "123456789012345678901234567890123456"},
            "bs": {"BS": ["aGk="]},
            "e": {"N": "1E+3"},
            "m": {"M": {"inner": {"L": [{"N": "1"}, {"S": "x"}, {"M": {}}]}}},
            "n": {"N": "-0.25"},
            "ns": {"NS": ["1", "2.5"]},
            "s": {"S": "a \"quoted\" é"},
            "ss": {"SS": ["a", "b"]},
            "t": {"BOOL": true},
            "z": {"NULL": true},
        }))
        .unwrap();
        assert_eq!(
            plain,
            r#"{"b":"aGk=","big":123456789012345678901234567890123456,"bs":["aGk="],"e":1e3,"m":{"inner":[1,"x",{}]},"n":-0.25,"ns":[1,2.5],"s":"a \"quoted\" é","ss":["a","b"],"t":true,"z":null}"#
        );
        // Digits survive: the text holds them exactly.
        let v: Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(v["ns"][1], json!(2.5));
    }

    #[test]
    fn numbers_dynamodb_accepts_become_json_numbers() {
        for (n, json) in [
            ("+1", "1"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("5.", "5.0"),
            ("007", "7"),
            ("0", "0"),
            ("1e-7", "1e-7"),
        ] {
            assert_eq!(
                convert(json!({"n": {"N": n}})).unwrap(),
                format!("{{\"n\":{json}}}"),
                "{n}"
            );
        }
    }

    #[test]
    fn errors_name_the_attribute() {
        let e = convert(json!({"lines": {"L": [{"N": "1"}, {"M": {"qty": {"N": "two"}}}]}}))
            .unwrap_err();
        assert!(e.contains("lines[1].qty") && e.contains("\"two\""), "{e}");
        let e = convert(json!({"x": {"Q": "1"}})).unwrap_err();
        assert!(
            e.contains("attribute x") && e.contains("unknown attribute type \"Q\""),
            "{e}"
        );
        let e = convert(json!({"x": "plain"})).unwrap_err();
        assert!(e.contains("attribute x: not an attribute value"), "{e}");
        let e = convert(json!({"x": {"S": 1}})).unwrap_err();
        assert!(e.contains("S holds 1"), "{e}");
        let e = convert(json!({"x": {"B": "not base64!"}})).unwrap_err();
        assert!(e.contains("B is not base64"), "{e}");
        let e = convert(json!({"x": {"NS": ["1", "NaN"]}})).unwrap_err();
        assert!(e.contains("N is not a number"), "{e}");
    }
}
