//! Deserializing typed arguments from indexed kwargs: each function parses only the values of
//! its own fields; the others are skipped without being scanned again.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Byte ranges of one entry's key (without quotes) and value in the kwargs text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The key's start and length (without quotes).
    pub(crate) key: (u32, u32),
    /// The value's start and length.
    pub(crate) value: (u32, u32),
}

impl Entry {
    /// The entry of `key` and `value`, by position from `base` (all three borrowed from one
    /// text, `base` first).
    pub(crate) fn at(base: &str, key: &str, value: &str) -> Entry {
        let offset = |s: &str| (s.as_ptr() as usize - base.as_ptr() as usize) as u32;
        Entry {
            key: (offset(key), key.len() as u32),
            value: (offset(value), value.len() as u32),
        }
    }

    /// Counted from `shift` bytes earlier.
    pub(crate) fn shift(&mut self, shift: u32) {
        self.key.0 += shift;
        self.value.0 += shift;
    }
}

/// The entries of a JSON object, found in one scan (fails on keys with escapes: the caller
/// falls back): where each key and value lies, counted from the first key, so that the list
/// becomes the kwargs' index as it is (see [`Entries::index_in`]); no list of borrowed slices
/// is built and copied.
pub(crate) struct Entries<'a> {
    /// The first key and the last value, which bound the object's entries.
    pub(crate) first_key: Option<&'a str>,
    pub(crate) last_value: Option<&'a RawValue>,
    /// Each entry's key and value, by position from the start of `first_key`.
    entries: Vec<Entry>,
}

impl Entries<'_> {
    /// The index of the entries in `text`, the object's text, which holds them.
    pub(crate) fn index_in(self, text: &str) -> Vec<Entry> {
        let mut entries = self.entries;
        if let Some(first) = self.first_key {
            let shift = (first.as_ptr() as usize - text.as_ptr() as usize) as u32;
            for e in &mut entries {
                e.shift(shift);
            }
        }
        entries
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Entries<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'a>, A::Error> {
                let mut out = Entries {
                    first_key: None,
                    last_value: None,
                    entries: Vec::with_capacity(map.size_hint().unwrap_or(8)),
                };
                while let Some(key) = map.next_key::<&'de str>()? {
                    let value = map.next_value::<&'de RawValue>()?;
                    let base = *out.first_key.get_or_insert(key);
                    out.entries.push(Entry::at(base, key, value.get()));
                    out.last_value = Some(value);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

type Range = (u32, u32);

/// The part of a kwargs text at an index position (start, length).
pub(crate) fn slice(text: &str, (start, len): Range) -> &str {
    &text[start as usize..(start + len) as usize]
}

/// A deserializer over the indexed entries of a kwargs object.
pub(crate) struct Indexed<'a, I> {
    pub(crate) text: &'a str,
    pub(crate) entries: I,
}

impl<'de, I: Iterator<Item = (Range, Range)>> de::Deserializer<'de> for Indexed<'de, I> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(EntryAccess {
            text: self.text,
            entries: self.entries,
            value: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    // Anything else is not a shape kwargs can have; let serde_json say so on the whole text.
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct enum identifier
    }
}

struct EntryAccess<'a, I> {
    text: &'a str,
    entries: I,
    value: Option<Range>,
}

impl<'de, I: Iterator<Item = (Range, Range)>> MapAccess<'de> for EntryAccess<'de, I> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                let key: &'de str = slice(self.text, key);
                seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let range = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value without a key"))?;
        seed.deserialize(ValueDeserializer(slice(self.text, range)))
    }
}

/// One value: parsed by serde_json when wanted, not at all when ignored.
struct ValueDeserializer<'a>(&'a str);

macro_rules! forward_to_json {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            let mut de = serde_json::Deserializer::from_str(self.0);
            let value = de::Deserializer::$method(&mut de, $($arg,)* visitor)?;
            de.end()?;
            Ok(value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = serde_json::Error;

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    forward_to_json! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(),
        deserialize_i64(), deserialize_i128(), deserialize_u8(), deserialize_u16(), deserialize_u32(),
        deserialize_u64(), deserialize_u128(), deserialize_f32(), deserialize_f64(), deserialize_char(),
        deserialize_str(), deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str), deserialize_seq(),
        deserialize_tuple(len: usize), deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(), deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(),
    }
}

#[cfg(test)]
mod tests {
    use crate::Kwargs;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Args {
        user_id: i64,
        #[serde(default)]
        score: f64,
        tags: Vec<String>,
        nested: Option<Inner>,
        #[serde(rename = "e-mail")]
        email: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: Vec<u8>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Flat {
        user_id: i64,
        #[serde(flatten)]
        rest: BTreeMap<String, serde_json::Value>,
    }

    #[test]
    fn the_indexed_path_agrees_with_serde_json() {
        let texts = [
            r#"{"user_id": 1, "tags": ["a", "b\"c"], "e-mail": "a@b", "skip": {"x": [1, {"y": null}]}}"#,
            r#"{"nested": {"a": [1, 2]}, "user_id": -3, "score": 1.5e3, "tags": [], "e-mail": "\u00e9"}"#,
        ];
        for text in texts {
            let kwargs = Kwargs::from_json(text).unwrap();
            assert!(kwargs.index().is_some(), "{text}");
            let fast: Args = kwargs.deserialize().unwrap();
            let slow: Args = serde_json::from_str(text).unwrap();
            assert_eq!(fast, slow);
            let fast: Flat = kwargs.deserialize().unwrap();
            let slow: Flat = serde_json::from_str(text).unwrap();
            assert_eq!(fast, slow);
            let fast: serde_json::Value = kwargs.deserialize().unwrap();
            assert_eq!(
                fast,
                serde_json::from_str::<serde_json::Value>(text).unwrap()
            );
        }
    }

    #[test]
    fn errors_still_name_the_field() {
        let kwargs = Kwargs::from_json(r#"{"user_id": "x", "tags": [], "e-mail": ""}"#).unwrap();
        let err = kwargs.deserialize::<Args>().unwrap_err();
        assert_eq!(err.path().to_string(), "user_id");
        let kwargs =
            Kwargs::from_json(r#"{"user_id": 1, "tags": [], "e-mail": "", "user_id": 2}"#).unwrap();
        assert!(kwargs
            .deserialize::<Args>()
            .unwrap_err()
            .to_string()
            .contains("duplicate field"));
    }

    #[test]
    fn keys_with_escapes_take_the_slow_path() {
        let kwargs = Kwargs::from_json(r#"{"user_\u0069d": 1, "tags": [], "e-mail": ""}"#).unwrap();
        assert!(kwargs.index().is_none());
        assert_eq!(kwargs.deserialize::<Args>().unwrap().user_id, 1);
    }
}
