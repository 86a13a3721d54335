//! The SNS event source.

use std::borrow::Cow;
use std::collections::BTreeMap;

use lpipe_core::{
    async_trait,
    error::InvocationError,
    payload::declared_size,
    source::{
        BatchResult, Body, EventProbe, EventSource, InvalidEvent, Record, RecordMeta, SnsMeta,
    },
    RecordError,
};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The SNS event source. See the [crate docs](crate).
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, NoParams, Pipeline};
/// use lpipe_sns::SnsSource;
/// async fn welcome(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
/// let pipeline = Pipeline::builder()
///     .path("WELCOME", [Action::new().function(welcome)])
///     .event_source(SnsSource::new())
///     .only_source(SnsSource::NAME)
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SnsSource;

impl SnsSource {
    /// The name it registers under.
    pub const NAME: &'static str = "sns";

    /// The SNS source.
    pub fn new() -> Self {
        SnsSource
    }
}

/// What every record of an SNS event names as its `EventSource`.
const EVENT_SOURCE: &str = "aws:sns";

#[derive(Deserialize)]
struct SnsRecord<'a> {
    #[serde(
        rename = "EventSource",
        alias = "eventSource",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "Sns", borrow, default)]
    sns: Option<Notification<'a>>,
}

#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(
        rename = "MessageId",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    message_id: Option<Cow<'a, str>>,
    /// The JSON string literal, unescaped when the record runs (see [`Body`]).
    #[serde(rename = "Message", borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(rename = "TopicArn", default)]
    topic_arn: Option<String>,
    #[serde(rename = "Subject", default)]
    subject: Option<String>,
    #[serde(rename = "Timestamp", default)]
    timestamp: Option<String>,
    /// Read leniently, apart from the rest: a malformed attribute must not cost the record.
    #[serde(rename = "MessageAttributes", borrow, default)]
    message_attributes: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessageAttribute {
    #[serde(rename = "Value", default)]
    value: Option<String>,
}

/// The values of a notification's message attributes (none when they cannot be read; binary
/// ones are left out).
fn attributes(raw: Option<&RawValue>) -> Vec<(String, String)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    serde_json::from_str::<BTreeMap<String, MessageAttribute>>(raw.get())
        .map(|attributes| {
            attributes
                .into_iter()
                .filter_map(|(name, a)| Some((name, a.value?)))
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl EventSource for SnsSource {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn matches(&self, probe: &EventProbe) -> bool {
        probe.first_event_source.as_deref() == Some(EVENT_SOURCE)
    }

    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        lpipe_core::source::decode_records(Self::NAME, event, |index, r: SnsRecord<'e>| {
            InvalidEvent::check_record_source(
                Self::NAME,
                EVENT_SOURCE,
                index,
                r.event_source.as_deref(),
            )?;
            let Some(n) = r.sns else {
                let missing = RecordError::invalid_payload("the SNS record has no Sns object");
                return Ok(Record::new(None, Body::Invalid(missing)));
            };
            let body = match n.message {
                Some(literal) if literal.get().starts_with('"') => Body::json_string(literal.get()),
                Some(_) => Body::Invalid(RecordError::invalid_payload(
                    "the notification's Message is not a string",
                )),
                None => Body::Invalid(RecordError::invalid_payload(
                    "the notification has no Message",
                )),
            };
            let meta = SnsMeta::new(
                n.topic_arn,
                n.subject,
                n.timestamp,
                attributes(n.message_attributes),
            )
            .with_message_id(n.message_id.as_deref().map(str::to_owned));
            let mut record = Record::new(n.message_id.filter(|id| !id.is_empty()), body);
            let meta = RecordMeta::Sns(Box::new(meta));
            if declared_size(&meta).is_some() {
                // Published by an extended client: the Message points to the payload in S3.
                record = record.offloaded();
            }
            Ok(record.meta(meta))
        })
    }

    async fn respond(
        &self,
        _event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError> {
        // SNS reads no response: a failed record fails the invocation, so that it is retried.
        batch.finished_or_failed(None)
    }
}
