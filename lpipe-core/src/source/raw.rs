//! The source of direct invocations.

use std::borrow::Cow;

use async_trait::async_trait;
use serde_json::value::RawValue;

use crate::error::{ErrorKind, InvocationError, RecordError};
use crate::source::{BatchResult, EventProbe, EventSource, InvalidEvent, Record};

/// The source of direct invocations (and of constant rule inputs): the event is a JSON array
/// of messages, objects or strings that hold JSON, or a single message.
///
/// The response is Python lpipe's `{"event": "Finished.", "stats": {…}, "output": […]}`, with
/// `output` (one entry per record, in order; `null` where a record produced none) only when a
/// record produced one. If any record failed, every record is still tried and then the
/// invocation fails with an error naming the failed records.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawSource;

impl RawSource {
    /// The name it registers under.
    pub const NAME: &'static str = "raw";
}

fn json_text<'e>(raw: &'e RawValue) -> Result<Cow<'e, str>, RecordError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => Ok(Cow::Borrowed(text)),
        Some(b'"') => match serde_json::from_str::<&'e str>(text) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(_) => serde_json::from_str::<String>(text)
                .map(Cow::Owned)
                .map_err(|e| RecordError::invalid_payload(format!("bad string record: {e}"))),
        },
        _ => Err(RecordError::new(
            ErrorKind::InvalidPayload,
            format!(
                "a record must be a JSON object or a string holding one, got {}",
                crate::kwargs::json_kind(text)
            ),
        )),
    }
}

#[async_trait]
impl EventSource for RawSource {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn matches(&self, probe: &EventProbe) -> bool {
        probe.is_array || (probe.is_object && !probe.has_records)
    }

    fn stable_record_ids(&self) -> bool {
        // Record ids are positions in the event.
        false
    }

    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        let invalid = |message: String| InvalidEvent {
            source_name: Self::NAME,
            message,
        };
        let trimmed = event.trim_start();
        let elements: Vec<&'e RawValue> = if trimmed.starts_with('[') {
            serde_json::from_str(event).map_err(|e| invalid(e.to_string()))?
        } else {
            vec![serde_json::from_str(event).map_err(|e| invalid(e.to_string()))?]
        };
        Ok(elements
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Record::new(Some(Cow::Owned(i.to_string())), json_text(raw)))
            .collect())
    }

    async fn respond(
        &self,
        _event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError> {
        batch.finished_or_failed(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_records_are_objects_or_strings_holding_json() {
        let event = r#"[{"path": "A", "kwargs": {}}, "{\"path\": \"B\", \"kwargs\": {}}", 5]"#;
        let records = RawSource.decode(event).unwrap();
        assert_eq!(records.len(), 3);
        let mut bodies = records.into_iter().map(|r| r.body.into_text());
        assert_eq!(
            bodies.next().unwrap().unwrap(),
            r#"{"path": "A", "kwargs": {}}"#
        );
        assert_eq!(
            bodies.next().unwrap().unwrap(),
            r#"{"path": "B", "kwargs": {}}"#
        );
        let err = bodies.next().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidPayload);
        assert!(err.message().contains("a number"), "{err}");
        let single = RawSource.decode(r#"{"path": "A", "kwargs": {}}"#).unwrap();
        assert_eq!(single.len(), 1);
        assert!(RawSource.decode("not json").is_err());
    }
}
