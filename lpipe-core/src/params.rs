//! Learning a function's parameter names from its argument type, once, at build time.
//!
//! A recording serde `Deserializer` is handed to `T::deserialize`: a derived struct calls
//! `deserialize_struct` with the names of its fields (after `rename`s), which is exactly the
//! "signature" Python lpipe reads with `inspect`. The recorder then stops the deserialization.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};

/// The kwargs a function takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// These named fields (a struct).
    Fields(&'static [&'static str]),
    /// Any key (a map, `serde_json::Value`, or a type that could not be inspected): the
    /// function is passed on everything, like Python's `**kwargs`.
    Any,
    /// No parameters ([`NoParams`], `()`, a unit struct).
    None,
}

impl Signature {
    /// Learns the parameters of `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::function::Signature;
    /// #[derive(serde::Deserialize)]
    /// struct Subscribe { name: String, #[serde(rename = "e-mail")] email: String }
    /// assert_eq!(Signature::of::<Subscribe>(), Signature::Fields(&["name", "e-mail"]));
    /// assert_eq!(Signature::of::<serde_json::Value>(), Signature::Any);
    /// assert_eq!(Signature::of::<lpipe_core::NoParams>(), Signature::None);
    /// ```
    pub fn of<T: DeserializeOwned>() -> Signature {
        let seen = RefCell::new(None);
        let _ = T::deserialize(Recorder { seen: &seen });
        seen.into_inner().unwrap_or(Signature::Any)
    }

    /// The field names, when known.
    pub fn fields(&self) -> Option<&'static [&'static str]> {
        match self {
            Signature::Fields(f) => Some(f),
            _ => None,
        }
    }
}

/// The fields of `T` it can do without (`Option`s, `#[serde(default)]`s): `T` is deserialized
/// from every field but one, each with the empty value of whatever type it asks for; the field
/// left out is optional when that succeeds. A type it cannot fill (a tuple, an enum variant with
/// data) makes its fields look required, which is the safe side for checks.
///
/// # Examples
///
/// ```
/// use lpipe_core::function::optional_fields;
/// #[derive(serde::Deserialize)]
/// #[allow(dead_code)]
/// struct Welcome { address: String, name: Option<String>, #[serde(default)] retries: u32 }
/// assert_eq!(optional_fields::<Welcome>(&["address", "name", "retries"]), ["name", "retries"]);
/// ```
pub fn optional_fields<T: DeserializeOwned>(fields: &[&'static str]) -> Vec<&'static str> {
    fields
        .iter()
        .copied()
        .filter(|&left_out| {
            let present = fields
                .iter()
                .filter(|f| **f != left_out)
                .map(|f| (*f, Empty));
            let map = de::value::MapDeserializer::<_, de::value::Error>::new(present);
            T::deserialize(map).is_ok()
        })
        .collect()
}

/// A value that takes the empty value of whatever type asks for one.
#[derive(Clone, Copy)]
struct Empty;

impl<'de, E: de::Error> de::IntoDeserializer<'de, E> for Empty {
    type Deserializer = EmptyValue<E>;
    fn into_deserializer(self) -> EmptyValue<E> {
        EmptyValue(std::marker::PhantomData)
    }
}

struct EmptyValue<E>(std::marker::PhantomData<E>);

impl<'de, E: de::Error> de::Deserializer<'de> for EmptyValue<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_bool(false)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_i64(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_u64(0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_char(' ')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_none()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_seq(de::value::SeqDeserializer::<_, E>::new(std::iter::empty::<
            Empty,
        >()))
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_map(de::value::MapDeserializer::<_, E>::new(
            std::iter::empty::<(&str, Empty)>(),
        ))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        // A nested struct: every field there, empty.
        let present = fields.iter().map(|f| (*f, Empty));
        visitor.visit_map(de::value::MapDeserializer::<_, E>::new(present))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        let first = variants.first().copied().unwrap_or("");
        visitor.visit_enum(de::IntoDeserializer::<E>::into_deserializer(first))
    }

    serde::forward_to_deserialize_any! {
        unit unit_struct ignored_any
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_i64(v)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_i64(v)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_i64(v)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_i64(v)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_u64(v)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_u64(v)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_u64(v)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_u64(v)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_f64(v)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_str(v)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_bytes(v)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        self.deserialize_str(v)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, E> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, E> {
        self.deserialize_seq(v)
    }
}

/// The argument type of a function that takes no parameters: deserializes from any kwargs.
///
/// # Examples
///
/// ```
/// use lpipe_core::{Context, NoParams};
/// async fn ping(_: NoParams, ctx: Context) -> Result<(), std::convert::Infallible> {
///     Ok(())
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoParams;

impl<'de> serde::Deserialize<'de> for NoParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_ignored_any(de::IgnoredAny)?;
        Ok(NoParams)
    }
}

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parameters recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

struct Recorder<'a> {
    seen: &'a RefCell<Option<Signature>>,
}

impl Recorder<'_> {
    fn set(&self, p: Signature) -> Stop {
        self.seen.borrow_mut().get_or_insert(p);
        Stop
    }
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(self.set(Signature::Any))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        Err(self.set(Signature::Fields(fields)))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(self.set(Signature::None))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(self.set(Signature::None))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, Stop> {
        Err(self.set(Signature::None))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf seq tuple tuple_struct map enum identifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct A {
        foo: String,
        #[serde(default)]
        bar: Option<i64>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Wrapper(A);

    #[derive(Deserialize)]
    struct Unit;

    #[test]
    fn records_struct_fields_and_the_fallbacks() {
        assert_eq!(Signature::of::<A>(), Signature::Fields(&["foo", "bar"]));
        assert_eq!(
            Signature::of::<Wrapper>(),
            Signature::Fields(&["foo", "bar"])
        );
        assert_eq!(
            Signature::of::<Option<A>>(),
            Signature::Fields(&["foo", "bar"])
        );
        assert_eq!(Signature::of::<HashMap<String, i64>>(), Signature::Any);
        assert_eq!(Signature::of::<()>(), Signature::None);
        assert_eq!(Signature::of::<Unit>(), Signature::None);
        assert_eq!(Signature::of::<NoParams>(), Signature::None);
    }
}
