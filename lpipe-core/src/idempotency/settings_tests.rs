use super::*;
use crate::idempotency::MemoryIdempotencyStore;
use serde_json::json;

fn kwargs(v: serde_json::Value) -> Kwargs {
    Kwargs::from_serialize(&v).unwrap()
}

#[test]
fn keys_are_namespaced_by_the_function_and_the_path() {
    let i = Idempotency::new(MemoryIdempotencyStore::new());
    let n = kwargs(json!({"n": 1}));
    let a = i.key("orders", &PathName::new("A"), &n).unwrap();
    assert_eq!(a.namespace(), "orders.A");
    let b = i.key("orders", &PathName::new("B"), &n).unwrap();
    assert_eq!(b.namespace(), "orders.B");
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a, b, "the namespace is part of the key");
}

#[test]
fn a_namespace_set_replaces_the_function_name_in_every_process() {
    let path = PathName::new("ORDER");
    let order = kwargs(json!({"order_id": "o-1"}));
    let plain = Idempotency::new(MemoryIdempotencyStore::new()).key_from(["order_id"]);
    let a = plain.key("orders-intake", &path, &order).unwrap();
    assert_eq!(a.namespace(), "orders-intake.ORDER");
    let named = plain.clone().namespace("orders");
    let under_lambda = named.key("orders-intake", &path, &order).unwrap();
    let in_a_worker = named.key("orders-worker", &path, &order).unwrap();
    assert_eq!(under_lambda, in_a_worker);
    assert_eq!(under_lambda.namespace(), "orders.ORDER");
    assert_eq!(under_lambda.digest(), a.digest());
}

#[test]
fn claims_lock_until_the_deadline_or_the_timeout() {
    let i = Idempotency::new(MemoryIdempotencyStore::new());
    let key = || IdempotencyKey::new("k", [0; 16]);
    let now = super::super::now_ms();
    let c = i.claim(key(), Some(now + 5_000));
    assert_eq!(c.lock_until_ms, now + 5_000);
    assert!(c.expires_at_s >= now / 1000 + 3600);
    let c = i.claim(key(), None);
    assert!(c.lock_until_ms >= now + 60_000);
    // Every claim has its own owner.
    assert_ne!(i.claim(key(), None).owner, i.claim(key(), None).owner);
    let c = i
        .lock_timeout(Duration::from_secs(2))
        .claim(key(), Some(now + 900_000));
    assert!(c.lock_until_ms < now + 10_000);
}
