//! The Kinesis event source.

use std::borrow::Cow;

use base64::Engine;
use lpipe_core::{
    async_trait,
    error::InvocationError,
    source::{
        BatchResult, Body, EventProbe, EventSource, InvalidEvent, KinesisMeta, Record, RecordMeta,
        RecordOrder,
    },
    RecordError,
};
use serde::Deserialize;

/// The Kinesis event source. See the [crate docs](crate).
#[derive(Clone, Copy, Debug)]
pub struct KinesisSource {
    partial_responses: bool,
}

impl Default for KinesisSource {
    fn default() -> Self {
        KinesisSource {
            partial_responses: true,
        }
    }
}

impl KinesisSource {
    /// The name it registers under.
    pub const NAME: &'static str = "kinesis";

    /// Partial batch responses (the mapping has `ReportBatchItemFailures`).
    pub fn new() -> Self {
        Self::default()
    }

    /// For mappings without `ReportBatchItemFailures`: a catastrophic failure fails the
    /// invocation, and Lambda retries the batch.
    pub fn without_partial_responses() -> Self {
        KinesisSource {
            partial_responses: false,
        }
    }
}

#[derive(Deserialize)]
struct KinesisRecord<'a> {
    #[serde(borrow, default)]
    kinesis: Option<Payload<'a>>,
    #[serde(
        rename = "eventSource",
        alias = "EventSource",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    event_source: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventID",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    event_id: Option<Cow<'a, str>>,
}

/// What every record of a Kinesis event names as its `eventSource`.
const EVENT_SOURCE: &str = "aws:kinesis";

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(
        rename = "sequenceNumber",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    sequence_number: Option<Cow<'a, str>>,
    #[serde(
        rename = "partitionKey",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    partition_key: Option<Cow<'a, str>>,
    /// The base64 as a JSON string literal: decoded when the record runs (see [`Body`]).
    #[serde(borrow, default)]
    data: Option<&'a serde_json::value::RawValue>,
    #[serde(rename = "approximateArrivalTimestamp", default)]
    arrival: Option<f64>,
}

/// A record's data (a JSON string literal of base64) as text: run when the record runs, so
/// that decoded bodies do not pile up (see [`Body`]).
fn decode_data(literal: &str) -> Result<String, RecordError> {
    // Base64 has no characters JSON must escape; a writer may still escape `/` as `\/`. The
    // literal was checked as JSON when the event was read, so one without a backslash is
    // its text between the quotes (anything there that is not base64 fails the decoding).
    let text = match literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner) if !inner.as_bytes().contains(&b'\\') => std::borrow::Cow::Borrowed(inner),
        _ => Body::json_string(literal).into_text().map_err(|_| {
            RecordError::invalid_payload(format!(
                "the Kinesis record's data is not a string: {}",
                literal.chars().take(40).collect::<String>()
            ))
        })?,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|e| {
            RecordError::invalid_payload(format!("the Kinesis record's data is not base64: {e}"))
        })?;
    String::from_utf8(bytes).map_err(|e| {
        RecordError::invalid_payload(format!("the Kinesis record's data is not UTF-8: {e}"))
    })
}

#[async_trait]
impl EventSource for KinesisSource {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "partial_responses": self.partial_responses })
    }

    fn matches(&self, probe: &EventProbe) -> bool {
        // An empty batch names no source; pinned to this one, it is taken (nothing to run).
        probe.first_event_source.as_deref() == Some(EVENT_SOURCE) || probe.empty_records
    }

    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        // A batch comes from one shard: its id is shared, not copied per record.
        let mut shard: Option<std::sync::Arc<str>> = None;
        lpipe_core::source::decode_records(Self::NAME, event, |index, r: KinesisRecord<'e>| {
            let shard_id =
                r.event_id
                    .as_deref()
                    .and_then(|id| id.split_once(':'))
                    .map(|(shard_id, _)| match &shard {
                        Some(s) if s.as_ref() == shard_id => s.clone(),
                        _ => {
                            let s: std::sync::Arc<str> = shard_id.into();
                            shard = Some(s.clone());
                            s
                        }
                    });
            InvalidEvent::check_record_source(
                Self::NAME,
                EVENT_SOURCE,
                index,
                r.event_source.as_deref(),
            )?;
            Ok(match r.kinesis {
                Some(k) => Record::new(
                    k.sequence_number.filter(|s| !s.is_empty()),
                    match k.data {
                        Some(literal) => Body::Encoded {
                            raw: literal.get(),
                            decode: decode_data,
                        },
                        None => Body::Invalid(RecordError::invalid_payload(
                            "the Kinesis record has no data",
                        )),
                    },
                )
                .ordering_key(k.partition_key)
                .meta(RecordMeta::Kinesis(KinesisMeta::new(k.arrival, shard_id))),
                None => Record::new(
                    None,
                    Err(RecordError::invalid_payload(
                        "the record has no 'kinesis' object",
                    )),
                ),
            })
        })
    }

    fn ordering(&self) -> RecordOrder {
        RecordOrder::StopOnFailure
    }

    async fn respond(
        &self,
        _event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError> {
        if !self.partial_responses && batch.stats.failed > 0 {
            return Err(batch.catastrophic_error(None));
        }
        batch.partial_batch_response("sequenceNumber")
    }
}

#[cfg(test)]
mod tests {
    use super::decode_data;

    #[test]
    fn data_decodes_with_and_without_escapes_and_names_what_is_wrong() {
        assert_eq!(decode_data(r#""eyJhIjogMX0=""#).unwrap(), r#"{"a": 1}"#);
        // `/` may be escaped by the writer: "Pz8/" is "???".
        assert_eq!(decode_data(r#""Pz8\/""#).unwrap(), "???");
        assert_eq!(decode_data(r#""Pz8/""#).unwrap(), "???");
        let wrong = |literal: &str| decode_data(literal).unwrap_err().to_string();
        assert!(wrong("123").contains("not a string"), "{}", wrong("123"));
        assert!(wrong(r#""not base64!""#).contains("not base64"));
        assert!(wrong(r#""\u0001""#).contains("not base64"));
        assert!(wrong(r#""/w==""#).contains("not UTF-8"));
    }
}
