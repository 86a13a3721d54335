//! Borrowing strings from the event while deserializing it.
//!
//! serde borrows a `Cow<'a, str>` field marked `#[serde(borrow)]`, but not an
//! `Option<Cow<'a, str>>`: that one is always copied into a new `String`. Event sources read
//! several optional strings per record (ids, attributes, the event source), so each record
//! cost as many allocations. [`option_str`] borrows them (copying only a string with escapes).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Deserializes an optional string, borrowed from the input when it has no escapes. Use it as
/// `#[serde(borrow, default, deserialize_with = "lpipe_core::borrow::option_str")]` on an
/// `Option<Cow<'a, str>>` field.
///
/// # Errors
///
/// When the value is neither a string nor `null`.
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
///
/// #[derive(serde::Deserialize)]
/// struct Item<'a> {
///     #[serde(borrow, default, deserialize_with = "lpipe_core::borrow::option_str")]
///     id: Option<Cow<'a, str>>,
/// }
///
/// let item: Item<'_> = serde_json::from_str(r#"{"id": "abc"}"#).unwrap();
/// assert!(matches!(item.id, Some(Cow::Borrowed("abc"))));
/// let item: Item<'_> = serde_json::from_str(r#"{"id": "a\"b"}"#).unwrap();
/// assert_eq!(item.id.as_deref(), Some("a\"b"));
/// let item: Item<'_> = serde_json::from_str("{}").unwrap();
/// assert!(item.id.is_none());
/// ```
pub fn option_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_option(OptionStr)
}

struct OptionStr;

impl<'de> Visitor<'de> for OptionStr {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(Str).map(Some)
    }
}

struct Str;

impl<'de> Visitor<'de> for Str {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}
