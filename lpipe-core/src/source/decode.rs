//! Reading `{"Records": [...]}` events record by record, and the error for an event that cannot
//! be read.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::source::Record;

/// Decodes an event of the common layout `{"Records": [ … ]}` record by record: each element
/// is read as a `T` and handed to `each` with its index, and what `each` makes of it is kept;
/// no list of the elements themselves is built. Other top-level fields are skipped.
///
/// # Errors
///
/// When the event is not such an object (the message names what is wrong and where), or the
/// first error `each` returns.
///
/// # Examples
///
/// ```
/// use std::borrow::Cow;
/// use lpipe_core::{source::{decode_records, Record}};
///
/// #[derive(serde::Deserialize)]
/// struct Item<'a> {
///     #[serde(borrow)]
///     id: Cow<'a, str>,
///     #[serde(borrow)]
///     text: Cow<'a, str>,
/// }
///
/// let event = r#"{"Records": [{"id": "a", "text": "{}"}], "other": 1}"#;
/// let records = decode_records("mine", event, |_, item: Item<'_>| {
///     Ok(Record::new(Some(item.id), Ok(item.text)))
/// })
/// .unwrap();
/// assert_eq!(records.len(), 1);
/// assert!(decode_records("mine", "{}", |_, item: Item<'_>| Ok(Record::new(None, Ok(item.text)))).is_err());
/// ```
pub fn decode_records<'e, T, F>(
    source_name: &'static str,
    event: &'e str,
    mut each: F,
) -> Result<Vec<Record<'e>>, InvalidEvent>
where
    T: serde::Deserialize<'e>,
    F: FnMut(usize, T) -> Result<Record<'e>, InvalidEvent>,
{
    let mut failed = None;
    let seed = RecordsEvent(RecordsList {
        each: &mut each,
        failed: &mut failed,
        capacity: event.len() / MIN_RECORD_TEXT,
        marker: std::marker::PhantomData,
    });
    let mut de = serde_json::Deserializer::from_str(event);
    let result = seed.deserialize(&mut de).and_then(|records| {
        de.end()?;
        Ok(records)
    });
    result.map_err(|e| {
        failed.take().unwrap_or_else(|| InvalidEvent {
            source_name,
            message: e.to_string(),
        })
    })
}

/// The event object of [`decode_records`]: its `Records` list is read once.
struct RecordsEvent<'a, T, F>(RecordsList<'a, T, F>);

impl<'de, T, F> DeserializeSeed<'de> for RecordsEvent<'_, T, F>
where
    T: serde::Deserialize<'de>,
    F: FnMut(usize, T) -> Result<Record<'de>, InvalidEvent>,
{
    type Value = Vec<Record<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T, F> Visitor<'de> for RecordsEvent<'_, T, F>
where
    T: serde::Deserialize<'de>,
    F: FnMut(usize, T) -> Result<Record<'de>, InvalidEvent>,
{
    type Value = Vec<Record<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object with a `Records` list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut list, mut records) = (Some(self.0), None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key != "Records" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let list = list
                .take()
                .ok_or_else(|| de::Error::duplicate_field("Records"))?;
            records = Some(map.next_value_seed(list)?);
        }
        records.ok_or_else(|| de::Error::missing_field("Records"))
    }
}

/// Fewer bytes of event text than any record of an AWS source takes (the smallest in AWS's
/// sample events, a DynamoDB stream record, takes ~350 written compactly; SQS ~430):
/// [`decode_records`] reserves room for `event.len() / MIN_RECORD_TEXT` records at once, so
/// the list is not copied as it grows (at 100,000 SQS records, growing it cost more than a
/// quarter of the decoding). Room reserved and never written takes address space, not
/// memory: the pages are never touched.
const MIN_RECORD_TEXT: usize = 256;

/// The `Records` list of [`decode_records`]; `failed` keeps the error of `each`, which serde
/// can only carry as text; `capacity` is the room reserved for the records.
struct RecordsList<'a, T, F> {
    each: &'a mut F,
    failed: &'a mut Option<InvalidEvent>,
    capacity: usize,
    marker: std::marker::PhantomData<fn() -> T>,
}

impl<'de, T, F> DeserializeSeed<'de> for RecordsList<'_, T, F>
where
    T: serde::Deserialize<'de>,
    F: FnMut(usize, T) -> Result<Record<'de>, InvalidEvent>,
{
    type Value = Vec<Record<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T, F> Visitor<'de> for RecordsList<'_, T, F>
where
    T: serde::Deserialize<'de>,
    F: FnMut(usize, T) -> Result<Record<'de>, InvalidEvent>,
{
    type Value = Vec<Record<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(self.capacity));
        while let Some(element) = seq.next_element::<T>()? {
            match (self.each)(records.len(), element) {
                Ok(record) => records.push(record),
                Err(e) => {
                    let message = e.to_string();
                    *self.failed = Some(e);
                    return Err(de::Error::custom(message));
                }
            }
        }
        Ok(records)
    }
}

/// The event as a whole could not be read (not JSON, not the source's shape, not the source's
/// own event).
#[derive(Debug, thiserror::Error)]
#[error("invalid {source_name} event: {message}")]
pub struct InvalidEvent {
    /// The source that tried.
    pub source_name: &'static str,
    /// What was wrong.
    pub message: String,
}

impl InvalidEvent {
    /// Checks the `eventSource` a record names (`found`) against the one its source expects
    /// (`expected`, e.g. `aws:sqs`).
    ///
    /// A source must never take records of another service's event: decoded with the wrong
    /// layout they would all be dropped and acknowledged, and lost. The whole event is refused
    /// instead, so that the invocation fails and the records come back.
    ///
    /// # Errors
    ///
    /// When the record names another event source, or none.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::source::InvalidEvent;
    /// assert!(InvalidEvent::check_record_source("sqs", "aws:sqs", 0, Some("aws:sqs")).is_ok());
    /// let e = InvalidEvent::check_record_source("sqs", "aws:sqs", 1, Some("aws:kinesis")).unwrap_err();
    /// assert_eq!(
    ///     e.to_string(),
    ///     "invalid sqs event: record 1 has eventSource 'aws:kinesis', not 'aws:sqs' \
    ///      (is the event source mapping attached to the right function?); \
    ///      no record of this event is taken"
    /// );
    /// ```
    pub fn check_record_source(
        source_name: &'static str,
        expected: &str,
        index: usize,
        found: Option<&str>,
    ) -> Result<(), InvalidEvent> {
        let what = match found {
            Some(found) if found == expected => return Ok(()),
            Some(found) => format!("has eventSource '{found}'"),
            None => "has no eventSource".to_owned(),
        };
        Err(InvalidEvent {
            source_name,
            message: format!(
                "record {index} {what}, not '{expected}' (is the event source mapping attached to the right function?); no record of this event is taken"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_records_keeps_each_records_error_and_names_bad_events() {
        let each = |index: usize, r: serde_json::Map<String, serde_json::Value>| {
            InvalidEvent::check_record_source("mine", "aws:mine", index, r["eventSource"].as_str())
                .map(|()| Record::new(None, Ok(Cow::Borrowed("{}"))))
        };
        let ok =
            r#"{"x": [1], "Records": [{"eventSource": "aws:mine"}, {"eventSource": "aws:mine"}]}"#;
        assert_eq!(decode_records("mine", ok, each).unwrap().len(), 2);
        // The error of `each` comes back as it was made, not as serde's text.
        let other = r#"{"Records": [{"eventSource": "aws:mine"}, {"eventSource": "aws:sqs"}]}"#;
        let e = decode_records("mine", other, each).unwrap_err();
        assert!(
            e.message.starts_with("record 1 has eventSource 'aws:sqs'"),
            "{e}"
        );
        for (bad, says) in [
            ("{}", "missing field `Records`"),
            (
                r#"{"Records": [], "Records": []}"#,
                "duplicate field `Records`",
            ),
            (r#"{"Records": {}}"#, "a list of records"),
            ("[]", "an event object"),
            (r#"{"Records": []} x"#, "trailing characters"),
        ] {
            let e = decode_records("mine", bad, each).unwrap_err();
            assert_eq!(e.source_name, "mine");
            assert!(e.message.contains(says), "{bad}: {e}");
        }
    }
}
