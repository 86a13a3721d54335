//! A cheap look at an event, for sources to recognise their own.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A cheap look at an event, enough for sources to recognise their own: the shape and the
/// first record's `eventSource`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventProbe {
    /// The event is a JSON array.
    pub is_array: bool,
    /// The event is a JSON object.
    pub is_object: bool,
    /// The object has a `Records` array.
    pub has_records: bool,
    /// The first record's `eventSource` (or `EventSource`), e.g. `aws:sqs`.
    pub first_event_source: Option<String>,
    /// The `Records` array is empty (a batch that names no source, and has nothing to lose).
    pub empty_records: bool,
    /// The object's `source` (EventBridge).
    pub source: Option<String>,
    /// The object has a `detail-type` key (EventBridge).
    pub has_detail_type: bool,
    /// The object has a `detail` key (EventBridge).
    pub has_detail: bool,
}

impl EventProbe {
    /// Probes an event. Reads the top-level keys and the first record only.
    pub fn of(event: &str) -> EventProbe {
        let mut probe = EventProbe::default();
        let mut de = serde_json::Deserializer::from_str(event);
        let _ = ProbeSeed(&mut probe).deserialize(&mut de);
        probe
    }
}

struct ProbeSeed<'p>(&'p mut EventProbe);

impl<'de> DeserializeSeed<'de> for ProbeSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ProbeSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.0.is_array = true;
        // Stop here: nothing else of an array matters.
        Err(de::Error::custom("probe done"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.is_object = true;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "Records" => {
                    self.0.has_records = true;
                    map.next_value_seed(FirstRecordSeed(self.0))?;
                }
                "source" => self.0.source = map.next_value::<Option<String>>().ok().flatten(),
                "detail-type" => {
                    self.0.has_detail_type = true;
                    map.next_value::<IgnoredAny>()?;
                }
                "detail" => {
                    self.0.has_detail = true;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

struct FirstRecordSeed<'p>(&'p mut EventProbe);

impl<'de> DeserializeSeed<'de> for FirstRecordSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FirstRecordSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        #[derive(serde::Deserialize)]
        struct First {
            #[serde(rename = "eventSource", alias = "EventSource", default)]
            event_source: Option<String>,
        }
        match seq.next_element::<First>()? {
            Some(first) => self.0.first_event_source = first.event_source,
            None => self.0.empty_records = true,
        }
        // Stop here: the records themselves are the source's business.
        Err(de::Error::custom("probe done"))
    }
}

impl EventProbe {
    /// What the event looks like, for errors: `records of eventSource 'aws:kinesis'`, `an
    /// EventBridge event (source 'aws.ec2')`, `a JSON array`, ….
    pub fn describe(&self) -> String {
        match self {
            EventProbe {
                has_records: true,
                first_event_source: Some(s),
                ..
            } => format!("records of eventSource '{s}'"),
            EventProbe {
                empty_records: true,
                ..
            } => "an empty list of Records".to_owned(),
            EventProbe {
                has_records: true, ..
            } => "records that name no eventSource".to_owned(),
            EventProbe {
                has_detail_type: true,
                source,
                ..
            }
            | EventProbe {
                has_detail: true,
                source: source @ Some(_),
                ..
            } => format!(
                "an EventBridge event (source '{}')",
                source.as_deref().unwrap_or("")
            ),
            EventProbe { is_array: true, .. } => "a JSON array".to_owned(),
            EventProbe {
                is_object: true, ..
            } => "a JSON object without Records".to_owned(),
            _ => "not a JSON object or array".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_shape_and_first_event_source_only() {
        let p = EventProbe::of(
            r#"{"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "x"}, not json"#,
        );
        assert!(p.is_object && p.has_records);
        assert_eq!(p.first_event_source.as_deref(), Some("aws:sqs"));
        let p = EventProbe::of(r#"[{"path": "X"}]"#);
        assert!(p.is_array && !p.is_object);
        let p = EventProbe::of(
            r#"{"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}"#,
        );
        assert!(p.has_detail_type);
        assert_eq!(p.source.as_deref(), Some("aws.events"));
    }
}
