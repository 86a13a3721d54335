//! A record's idempotency key: a namespace and the digest of the record's canonical JSON.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::kwargs::Kwargs;

/// How long a key's digest is: 16 bytes (32 hex digits).
pub(crate) const DIGEST_BYTES: usize = 16;

/// A record's idempotency key: the namespace it is unique in (`{function name}.{path}`, or
/// `{namespace}.{path}`) and the first 128 bits of the SHA-256 of the record's canonical JSON
/// (collisions need 2^64 keys). Its text (`Display`), `{namespace}#{the digest in hex}`, names
/// it in a store (the DynamoDB item's `id`).
///
/// ```
/// use lpipe_core::idempotency::IdempotencyKey;
///
/// let key = IdempotencyKey::new("orders.PLACE_ORDER", [0xab; 16]);
/// assert_eq!(
///     key.to_string(),
///     "orders.PLACE_ORDER#abababababababababababababababab"
/// );
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey {
    namespace: Arc<str>,
    digest: [u8; DIGEST_BYTES],
}

impl IdempotencyKey {
    /// A key of this namespace and digest.
    pub fn new(namespace: impl AsRef<str>, digest: [u8; DIGEST_BYTES]) -> Self {
        IdempotencyKey {
            namespace: Arc::from(namespace.as_ref()),
            digest,
        }
    }

    /// The key of these kwargs in this namespace: the canonical JSON of the named fields'
    /// values as an array (`fields`), or of the whole kwargs object, digested.
    ///
    /// # Errors
    ///
    /// A message naming the first field the kwargs lack (or have as `null`).
    pub(crate) fn of(
        namespace: Arc<str>,
        fields: Option<&[String]>,
        kwargs: &Kwargs,
    ) -> Result<Self, String> {
        let material = match fields {
            None => kwargs.to_value(),
            Some(fields) => {
                let mut values = Vec::with_capacity(fields.len());
                for field in fields {
                    match kwargs.value_of(field) {
                        Some(v) if !v.is_null() => values.push(v),
                        found => return Err(missing_field(field, found.is_some())),
                    }
                }
                Value::Array(values)
            }
        };
        Ok(IdempotencyKey {
            namespace,
            digest: digest_of(&canonical_json(&material)),
        })
    }

    /// The key of a text (a message id) in a namespace: the digest of the text as a JSON string.
    pub(crate) fn of_text(namespace: Arc<str>, text: &str) -> Self {
        let material = Value::String(text.to_owned());
        IdempotencyKey {
            namespace,
            digest: digest_of(&canonical_json(&material)),
        }
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its digest.
    pub fn digest(&self) -> &[u8; DIGEST_BYTES] {
        &self.digest
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#", self.namespace)?;
        self.digest.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// JSON with object keys sorted (serde_json's maps are ordered by key) and no whitespace: equal
/// values, however their keys were written, give equal text.
fn canonical_json(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value serializes")
}

fn digest_of(text: &str) -> [u8; DIGEST_BYTES] {
    let full = Sha256::digest(text.as_bytes());
    let mut digest = [0; DIGEST_BYTES];
    digest.copy_from_slice(&full[..DIGEST_BYTES]);
    digest
}

fn missing_field(field: &str, null: bool) -> String {
    if null {
        format!("the idempotency key needs the kwarg '{field}', which is null in this record")
    } else {
        format!("the idempotency key needs the kwarg '{field}', which this record lacks")
    }
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
