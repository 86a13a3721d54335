//! Kwargs: a message's parameters, kept as the JSON text they arrived in.
//!
//! Functions deserialize their typed arguments straight from this text; nothing is parsed into
//! an intermediate tree, and nothing is copied per function. A projection (the kwargs an action
//! passes on to its paths and queues) is built only when an action has somewhere to pass them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::kwargs_de::{slice, Entry};

/// The kwargs of a message: a JSON object, stored as its text.
///
/// # Examples
///
/// ```
/// use lpipe_core::Kwargs;
/// let kwargs = Kwargs::from_serialize(&serde_json::json!({"name": "Ann", "plan": "pro"})).unwrap();
/// #[derive(serde::Deserialize)]
/// struct Subscribe { name: String }
/// let args: Subscribe = kwargs.deserialize().unwrap();
/// assert_eq!(args.name, "Ann");
/// assert!(kwargs.contains("plan"));
/// ```
#[derive(Clone)]
pub struct Kwargs {
    /// The JSON text of an object; valid JSON by construction.
    text: Box<str>,
    /// Where each entry's key and value sit in `text`: found while the message was parsed, or
    /// once, on first use.
    index: Index,
}

/// [`Kwargs`]' index of its entries: found while the message was parsed, or on first use.
/// (A `OnceLock` made full, with `OnceLock::from`, still goes through its slow path to set
/// itself: a cost on every record's kwargs that the first variant does without.)
#[derive(Clone)]
enum Index {
    /// Found when the kwargs were made.
    Found(Option<Vec<Entry>>),
    /// Found on first use.
    Lazy(OnceLock<Option<Vec<Entry>>>),
}

/// The kwargs were not a JSON object, or could not be serialized.
#[derive(Debug, thiserror::Error)]
pub enum KwargsError {
    /// Not a JSON object.
    #[error("kwargs must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// Serialization failed.
    #[error("kwargs could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A parameter that an action requires could not be found.
#[derive(Debug, thiserror::Error)]
#[error("missing parameter '{0}'")]
pub struct MissingParam(pub String);

pub(crate) fn json_kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't') | Some(b'f') => "a boolean",
        Some(_) => "a number",
        None => "nothing",
    }
}

impl Kwargs {
    fn new(raw: Box<RawValue>) -> Self {
        Kwargs {
            text: Box::<str>::from(raw),
            index: Index::Lazy(OnceLock::new()),
        }
    }

    /// Kwargs from a slice of a message that serde_json has just parsed as an object, with its
    /// entries (borrowed from `text`) already found: no second scan.
    pub(crate) fn from_parsed(text: &str, entries: crate::kwargs_de::Entries<'_>) -> Self {
        Kwargs {
            index: Index::Found(Some(entries.index_in(text))),
            text: text.into(),
        }
    }

    /// The entries' positions, or `None` when a key has escapes (then the slow path runs).
    pub(crate) fn index(&self) -> Option<&[Entry]> {
        let found = match &self.index {
            Index::Found(found) => found,
            Index::Lazy(lazy) => lazy.get_or_init(|| {
                let text = self.as_str();
                let entries = serde_json::from_str::<crate::kwargs_de::Entries<'_>>(text).ok()?;
                Some(entries.index_in(text))
            }),
        };
        found.as_deref()
    }

    /// The raw value text of the last entry with this key (as parsing would keep), from the
    /// index: `None` when there is no such entry, or no index (a key has escapes). Lengths are
    /// compared before text.
    pub(crate) fn raw_last(&self, key: &str) -> Option<Option<&str>> {
        let text = self.as_str();
        let entries = self.index()?;
        // As bytes: the index's ranges are a key's, between quotes, so no check of character
        // boundaries is needed to compare them.
        let bytes = text.as_bytes();
        let found = entries.iter().rev().find(|e| {
            e.key.1 as usize == key.len()
                && bytes.get(e.key.0 as usize..(e.key.0 + e.key.1) as usize) == Some(key.as_bytes())
        });
        Some(found.map(|e| slice(text, e.value)))
    }

    /// `{}`.
    pub fn empty() -> Self {
        Kwargs::new(RawValue::from_string("{}".to_owned()).expect("valid JSON"))
    }

    /// Kwargs from already-validated JSON text of an object.
    ///
    /// # Errors
    ///
    /// [`KwargsError::NotAnObject`] when the JSON is not an object.
    pub fn from_raw(raw: Box<RawValue>) -> Result<Self, KwargsError> {
        match json_kind(raw.get()) {
            "an object" => Ok(Kwargs::new(raw)),
            other => Err(KwargsError::NotAnObject(other)),
        }
    }

    /// Kwargs from JSON text.
    ///
    /// # Errors
    ///
    /// When the text is not JSON, or not a JSON object.
    pub fn from_json(text: &str) -> Result<Self, KwargsError> {
        let raw: Box<RawValue> = serde_json::from_str(text)?;
        Self::from_raw(raw)
    }

    /// Kwargs from any value that serializes to a JSON object (a struct, a map, `json!({…})`).
    ///
    /// # Errors
    ///
    /// When serialization fails or the value is not an object.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, KwargsError> {
        let text = serde_json::to_string(value)?;
        Self::from_raw(RawValue::from_string(text)?)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Parses the kwargs into a [`serde_json::Value`] (allocates; for inspection and tests).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.as_str()).unwrap_or(serde_json::Value::Null)
    }

    /// Deserializes a typed view of the kwargs. Unknown keys are ignored unless the type says
    /// otherwise. The error carries the path of the offending field.
    ///
    /// # Errors
    ///
    /// When a field is missing or has the wrong type.
    pub fn deserialize<T: DeserializeOwned>(
        &self,
    ) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
        // The fast path: plain serde_json. Only when it fails is the input parsed again, with
        // the path-tracking deserializer, to name the offending field.
        let fast = match self.index() {
            Some(entries) => T::deserialize(crate::kwargs_de::Indexed {
                text: self.as_str(),
                entries: entries.iter().map(|e| (e.key, e.value)),
            }),
            None => serde_json::from_str(self.as_str()),
        };
        match fast {
            Ok(value) => Ok(value),
            Err(_) => {
                let mut de = serde_json::Deserializer::from_str(self.as_str());
                serde_path_to_error::deserialize(&mut de)
            }
        }
    }

    /// The value of one kwarg (the last, if repeated): parsed from its text in the index (the
    /// rest is not parsed), or from the whole kwargs when they have no index (a key with
    /// escapes); `None` when absent.
    pub(crate) fn value_of(&self, key: &str) -> Option<serde_json::Value> {
        match self.raw_last(key) {
            Some(raw) => raw.and_then(|raw| serde_json::from_str(raw).ok()),
            None => self.to_value().get(key).cloned(),
        }
    }

    /// Whether a key is present.
    pub fn contains(&self, key: &str) -> bool {
        self.entries().map(|e| e.contains_key(key)).unwrap_or(false)
    }

    /// The entries, borrowed from the text (keys are unescaped copies).
    pub(crate) fn entries(&self) -> Result<BTreeMap<String, &RawValue>, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }

    /// The kwargs with only the given keys, renamed: each `(from, to)` takes `from` and names it
    /// `to`. Keys that are absent are skipped when `required` is false.
    ///
    /// # Errors
    ///
    /// [`MissingParam`] naming the first absent key when `required` is true.
    pub(crate) fn select<'n>(
        &self,
        names: impl IntoIterator<Item = (&'n str, &'n str)>,
        required: bool,
    ) -> Result<Kwargs, MissingParam> {
        let entries = self.entries().map_err(|_| MissingParam(String::new()))?;
        let mut out = String::with_capacity(self.as_str().len());
        out.push('{');
        let mut seen = std::collections::BTreeSet::new();
        for (from, to) in names {
            match entries.get(from) {
                Some(value) => {
                    if !seen.insert(to) {
                        continue;
                    }
                    if out.len() > 1 {
                        out.push(',');
                    }
                    push_key(&mut out, to);
                    out.push_str(value.get());
                }
                None if required => return Err(MissingParam(from.to_owned())),
                None => {}
            }
        }
        out.push('}');
        Ok(Kwargs::new(
            RawValue::from_string(out).expect("built from valid JSON parts"),
        ))
    }

    /// These kwargs with the entries of `overrides` added (replacing equal keys).
    pub(crate) fn merged_with(&self, overrides: &Kwargs) -> Kwargs {
        let (Ok(mut base), Ok(extra)) = (self.entries(), overrides.entries()) else {
            return self.clone();
        };
        base.extend(extra);
        let mut out = String::with_capacity(self.as_str().len() + overrides.as_str().len());
        out.push('{');
        for (i, (k, v)) in base.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_key(&mut out, k);
            out.push_str(v.get());
        }
        out.push('}');
        Kwargs::new(RawValue::from_string(out).expect("built from valid JSON parts"))
    }
}

/// The positions in `text` of entries borrowed from it.
fn push_key(out: &mut String, key: &str) {
    out.push_str(&serde_json::to_string(key).expect("a string serializes"));
    out.push(':');
}

impl fmt::Debug for Kwargs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Kwargs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Kwargs {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

impl Serialize for Kwargs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The text is valid JSON by construction: embed it as is.
        let raw: &RawValue = serde_json::from_str(&self.text).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn select_renames_and_reports_the_missing_key() {
        let k = Kwargs::from_json(r#"{"bar": "x", "n": [1, 2], "q\"uote": 1}"#).unwrap();
        let s = k
            .select([("bar", "foo"), ("n", "n"), ("absent", "absent")], false)
            .unwrap();
        assert_eq!(s.to_value(), json!({"foo": "x", "n": [1, 2]}));
        let err = k.select([("absent", "absent")], true).unwrap_err();
        assert_eq!(err.to_string(), "missing parameter 'absent'");
        let s = k.select([("q\"uote", "q\"uote")], true).unwrap();
        assert_eq!(s.to_value(), json!({"q\"uote": 1}));
    }

    #[test]
    fn merge_overrides() {
        let a = Kwargs::from_json(r#"{"a": 1, "b": 2}"#).unwrap();
        let b = Kwargs::from_json(r#"{"b": 3}"#).unwrap();
        assert_eq!(a.merged_with(&b).to_value(), json!({"a": 1, "b": 3}));
    }

    #[test]
    fn only_objects_are_kwargs() {
        assert!(matches!(
            Kwargs::from_json("[1]"),
            Err(KwargsError::NotAnObject("an array"))
        ));
        assert!(Kwargs::from_json("{}").is_ok());
    }
}
