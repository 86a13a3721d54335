//! Message parsing: a record's body becomes the path it runs and its kwargs.
//!
//! One scan of the body finds the path and indexes every kwarg (the fast path); bodies that it
//! declines (escaped keys, empty kwargs, any error) take the general path, with its precise
//! errors.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::action::Action;
use crate::error::{ErrorKind, RecordError};
use crate::kwargs::Kwargs;
use crate::path::PathName;
use crate::pipeline::Pipeline;

/// A parsed record: the path it runs (as the pipeline names it), that path's actions, and its
/// kwargs. The path is looked up once, here.
pub(super) type Parsed<'p> = (&'p PathName, &'p [Action], Kwargs);

#[derive(serde::Deserialize)]
struct Message<'a> {
    #[serde(borrow, default, deserialize_with = "crate::borrow::option_str")]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kwargs: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct IndexedMessage<'a> {
    #[serde(borrow, default, deserialize_with = "crate::borrow::option_str")]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kwargs: Option<crate::kwargs_de::Entries<'a>>,
}

/// The kwargs object of a parsed message, from the positions of its entries in `body`: the
/// object runs from the `{` before the first key to the `}` after the last value (only
/// whitespace and the key's quote lie between). `None` for an empty object.
fn indexed_kwargs(body: &str, entries: crate::kwargs_de::Entries<'_>) -> Option<Kwargs> {
    let base = body.as_ptr() as usize;
    let offset = |s: &str| s.as_ptr() as usize - base;
    let (first_key, last_value) = (entries.first_key?, entries.last_value?);
    let open = body[..offset(first_key)].rfind('{')?;
    let after = offset(last_value.get()) + last_value.get().len();
    let close = after + body[after..].find('}')?;
    Some(Kwargs::from_parsed(&body[open..=close], entries))
}

impl Pipeline {
    /// The body is the kwargs of a path the source chose.
    pub(super) fn parse_kwargs_for(
        &self,
        path: &str,
        body: &str,
    ) -> Result<Parsed<'_>, RecordError> {
        let kwargs =
            Kwargs::from_json(body).map_err(|e| RecordError::invalid_payload(e.to_string()))?;
        self.with_path(path, kwargs)
    }

    /// The parsed record of a path name and kwargs; an error for an unknown path.
    fn with_path(&self, path: &str, kwargs: Kwargs) -> Result<Parsed<'_>, RecordError> {
        match self.lookup(path) {
            Some((name, actions)) => Ok((name, actions, kwargs)),
            None => Err(self.unknown_path(path)),
        }
    }

    pub(super) fn parse_message(&self, body: &str) -> Result<Parsed<'_>, RecordError> {
        if let Some(default) = &self.inner.default_path {
            let raw: Box<RawValue> = serde_json::from_str(body).map_err(|e| {
                RecordError::invalid_payload(format!("the record is not valid JSON: {e}"))
            })?;
            let kwargs =
                Kwargs::from_raw(raw).map_err(|e| RecordError::invalid_payload(e.to_string()))?;
            return self.with_path(default.as_str(), kwargs);
        }
        // The fast path: one scan finds the path and every kwarg. It declines (and the general
        // path below runs, with its precise errors) on keys with escapes, empty kwargs or any
        // error.
        if let Ok(IndexedMessage {
            path: Some(path),
            kwargs: Some(entries),
        }) = serde_json::from_str::<IndexedMessage<'_>>(body)
        {
            if let Some(kwargs) = indexed_kwargs(body, entries) {
                return self.with_path(&path, kwargs);
            }
        }
        let message: Message<'_> = serde_json::from_str(body).map_err(|e| {
            RecordError::invalid_payload(format!(
                "the record is not an lpipe message {{\"path\", \"kwargs\"}}: {e}"
            ))
        })?;
        let (Some(path), Some(kwargs)) = (message.path, message.kwargs) else {
            return Err(RecordError::invalid_payload(
                "'path' or 'kwargs' missing from payload",
            ));
        };
        let kwargs = Kwargs::from_raw(kwargs.to_owned())
            .map_err(|e| RecordError::invalid_payload(e.to_string()))?;
        self.with_path(&path, kwargs)
    }

    pub(super) fn unknown_path(&self, path: &str) -> RecordError {
        let known: Vec<&str> = self
            .inner
            .path_order
            .iter()
            .take(20)
            .map(PathName::as_str)
            .collect();
        RecordError::new(
            ErrorKind::InvalidPath,
            format!(
                "unknown path '{path}' (this pipeline has: {}{})",
                known.join(", "),
                if self.inner.path_order.len() > 20 {
                    ", …"
                } else {
                    ""
                }
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(body: &str) -> Option<String> {
        let m: IndexedMessage<'_> = serde_json::from_str(body).ok()?;
        indexed_kwargs(body, m.kwargs?).map(|k| k.as_str().to_owned())
    }

    #[test]
    fn the_kwargs_slice_is_the_whole_object() {
        assert_eq!(
            index(r#"{"path":"X","kwargs": { "a" : 1 , "b":"x}" } , "z": 1}"#).as_deref(),
            Some(r#"{ "a" : 1 , "b":"x}" }"#)
        );
        assert_eq!(
            index(r#"{"kwargs":{"a":{"b":[1,{"c":2}]}},"path":"X"}"#).as_deref(),
            Some(r#"{"a":{"b":[1,{"c":2}]}}"#)
        );
        assert_eq!(index(r#"{"path":"X","kwargs":{}}"#), None);
        let k = index(r#"{"path":"X","kwargs":{ "a" : [1, 2] ,"b": null}}"#).unwrap();
        let kwargs = Kwargs::from_json(&k).unwrap();
        assert_eq!(
            kwargs.to_value(),
            serde_json::json!({"a": [1, 2], "b": null})
        );
    }
}
