use super::*;
use serde_json::json;

fn key(fields: Option<&[String]>, kwargs: Value) -> Result<IdempotencyKey, String> {
    IdempotencyKey::of(
        Arc::from("orders.PLACE"),
        fields,
        &Kwargs::from_serialize(&kwargs).unwrap(),
    )
}

#[test]
fn keys_are_canonical_namespaced_and_hashed() {
    let a = key(
        None,
        json!({"a": 1, "b": {"y": 2, "x": [1, {"q": 1, "p": 2}]}}),
    )
    .unwrap();
    let b = key(
        None,
        json!({"b": {"x": [1, {"p": 2, "q": 1}], "y": 2}, "a": 1}),
    )
    .unwrap();
    assert_eq!(a, b, "key order does not matter");
    assert!(a.to_string().starts_with("orders.PLACE#"), "{a}");
    assert_eq!(a.to_string().len(), "orders.PLACE#".len() + 32);
    assert_ne!(a, key(None, json!({"a": 2})).unwrap());
    // SHA-256 of the canonical text, its first 16 bytes.
    let sha = Sha256::digest(br#"{"a":1}"#);
    assert_eq!(key(None, json!({"a": 1})).unwrap().digest()[..], sha[..16]);
}

#[test]
fn keys_from_fields_ignore_the_rest_and_name_what_is_missing() {
    let fields = ["order_id".to_owned()];
    let by_id = |kwargs| key(Some(&fields), kwargs);
    let a = by_id(json!({"order_id": "o-1", "n": 1})).unwrap();
    assert_eq!(a, by_id(json!({"n": 2, "order_id": "o-1"})).unwrap());
    assert_ne!(a, by_id(json!({"order_id": "o-2"})).unwrap());
    let missing = by_id(json!({"n": 1})).unwrap_err();
    assert!(
        missing.contains("'order_id'") && missing.contains("lacks"),
        "{missing}"
    );
    let null = by_id(json!({"order_id": null})).unwrap_err();
    assert!(null.contains("null"), "{null}");
}

#[test]
fn raw_and_escaped_kwargs_give_the_same_keys() {
    let whole = |text: &str| {
        IdempotencyKey::of(Arc::from("n"), None, &Kwargs::from_json(text).unwrap()).unwrap()
    };
    assert_eq!(
        whole(r#"{"a": 1.50, "b": "x\u0041"}"#),
        whole(r#"{"b": "xA", "a": 1.5}"#)
    );
    // A repeated key: the last wins, as when parsing.
    assert_eq!(whole(r#"{"a": 0, "a": 1}"#), whole(r#"{"a": 1}"#));
}
