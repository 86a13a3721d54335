//! The SQS event source.

use std::borrow::Cow;

use lpipe_core::{
    async_trait,
    error::InvocationError,
    payload::declared_size,
    source::{
        BatchResult, Body, EventBridgeEnvelope, EventProbe, EventSource, InvalidEvent, Record,
        RecordMeta, RecordOrder, S3Envelope, S3Unwrapped, SnsNotification, SqsMeta,
    },
    RecordError,
};
use serde::Deserialize;

/// How failures are reported to the event source mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqsMode {
    /// A partial batch response listing the failed records; the mapping must have
    /// `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
    #[default]
    PartialBatch,
    /// Python lpipe's mode, for mappings without `ReportBatchItemFailures`: delete every
    /// acknowledged message (successes and dropped ones) with DeleteMessageBatch (in calls of 10,
    /// up to [`SQS_CALLS_IN_FLIGHT`](crate::SQS_CALLS_IN_FLIGHT) at once), then fail the
    /// invocation so that only the failed messages return after their visibility timeout
    /// (feature `client`).
    Classic,
}

/// An envelope the messages of a queue come in, when another service wrapped the lpipe message
/// (declared with [`SqsSource::envelope`]; never guessed from a body's shape).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqsEnvelope {
    /// SNS notifications: the queue is subscribed to a topic without raw message delivery, and
    /// each body is the notification's JSON. The record runs the notification's `Message`; its
    /// id, topic, subject, timestamp and message attributes are on the context
    /// (`ctx.record().sns()`). A body that is not a notification is dropped with an error
    /// saying so. (With raw message delivery the body is the message as published, and the
    /// topic's message attributes are the SQS message's: declare no envelope.)
    Sns,
    /// EventBridge events a rule delivered to the queue: each body is the whole event, routed
    /// as the EventBridge source routes events (see [`EventBridgeEnvelope`]); the event's
    /// source, `detail-type` and time are on the context (`ctx.record().eventbridge()`). A body
    /// that is not an event is dropped with an error saying so.
    EventBridge(EventBridgeEnvelope),
    /// S3 event notifications a bucket sends to the queue, routed by event name (see
    /// [`S3Envelope`]); the `s3:TestEvent` S3 sends when the notification is configured is
    /// acknowledged without running. A body that is not a notification, or an event no route
    /// takes, is dropped with an error saying so.
    S3(S3Envelope),
    /// S3 event notifications a bucket publishes to an SNS topic, delivered to the queue without
    /// raw message delivery: each body is an SNS notification whose `Message` is the S3
    /// notification. Unwrapped as [`SqsEnvelope::Sns`], then routed as [`SqsEnvelope::S3`]; both
    /// metadata are on the context. (With raw message delivery the body is the S3 notification
    /// itself: declare [`SqsEnvelope::S3`].)
    SnsS3(S3Envelope),
}

/// The SQS event source. See the [crate docs](crate).
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, NoParams, Pipeline};
/// use lpipe_sqs::SqsSource;
/// async fn f(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
/// // A mapping without ReportBatchItemFailures: the classic mode, chosen explicitly.
/// let pipeline = Pipeline::builder()
///     .path("A", [Action::new().function(f)])
///     .event_source(SqsSource::classic())
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
#[derive(Clone, Debug, Default)]
pub struct SqsSource {
    mode: SqsMode,
    envelope: Option<SqsEnvelope>,
    #[cfg(feature = "client")]
    pub(crate) client: Option<aws_sdk_sqs::Client>,
    #[cfg(feature = "client")]
    pub(crate) backoff: Option<crate::Backoff>,
    /// The queues' URLs by `eventSourceARN`, looked up once (the classic mode's deletes and
    /// backoff's visibility timeouts need them). Shared by clones.
    #[cfg(feature = "client")]
    pub(crate) urls: std::sync::Arc<crate::urls::QueueUrls>,
}

impl SqsSource {
    /// The name it registers under.
    pub const NAME: &'static str = "sqs";

    /// The default: partial batch responses.
    pub fn new() -> Self {
        Self::default()
    }

    /// The classic mode (see [`SqsMode::Classic`]; feature `client`).
    #[cfg(feature = "client")]
    pub fn classic() -> Self {
        SqsSource {
            mode: SqsMode::Classic,
            ..SqsSource::default()
        }
    }

    /// Uses this client for DeleteMessageBatch in the classic mode, instead of the shared one
    /// (feature `client`).
    #[cfg(feature = "client")]
    pub fn with_client(mut self, client: aws_sdk_sqs::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// With backoff for kept records (partial batch responses only): see
    /// [`Backoff`](crate::Backoff) (feature `client`).
    #[cfg(feature = "client")]
    pub fn with_backoff(mut self, backoff: crate::Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The messages come in this envelope (see [`SqsEnvelope`]). A dropped record goes to the
    /// dead-letter queue as it came, envelope and all, so that a redrive replays it.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_sqs::{SqsEnvelope, SqsSource};
    /// // A queue subscribed to a topic without raw message delivery.
    /// let source = SqsSource::new().envelope(SqsEnvelope::Sns);
    /// assert_eq!(source.declared_envelope(), Some(&SqsEnvelope::Sns));
    /// ```
    pub fn envelope(mut self, envelope: SqsEnvelope) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// The envelope declared, if any.
    pub fn declared_envelope(&self) -> Option<&SqsEnvelope> {
        self.envelope.as_ref()
    }

    /// The mode.
    pub fn mode(&self) -> SqsMode {
        self.mode
    }
}

#[derive(Deserialize)]
struct SqsRecord<'a> {
    #[serde(
        rename = "messageId",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    message_id: Option<Cow<'a, str>>,
    /// The JSON string literal: unescaped when the record runs (see [`Body`]).
    #[serde(borrow, default)]
    body: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    attributes: Option<Attributes<'a>>,
    /// Read leniently, apart from the rest: a malformed attribute must not cost the batch.
    #[serde(rename = "messageAttributes", borrow, default)]
    message_attributes: Option<&'a serde_json::value::RawValue>,
    #[serde(
        rename = "eventSourceARN",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    event_source_arn: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventSource",
        alias = "EventSource",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    event_source: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageAttribute<'a> {
    #[serde(
        rename = "stringValue",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    string_value: Option<Cow<'a, str>>,
}

/// The string values of a record's message attributes (none when they cannot be read).
fn string_attributes(raw: Option<&serde_json::value::RawValue>) -> Vec<(String, String)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    if raw.get() == "{}" {
        return Vec::new();
    }
    serde_json::from_str::<std::collections::BTreeMap<Cow<'_, str>, MessageAttribute<'_>>>(
        raw.get(),
    )
    .map(|attributes| {
        attributes
            .into_iter()
            .filter_map(|(name, a)| Some((name.into_owned(), a.string_value?.into_owned())))
            .collect()
    })
    .unwrap_or_default()
}

/// What every record of an SQS event names as its `eventSource`.
const EVENT_SOURCE: &str = "aws:sqs";

#[derive(Deserialize)]
struct Attributes<'a> {
    #[serde(
        rename = "MessageGroupId",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    message_group_id: Option<Cow<'a, str>>,
    #[serde(
        rename = "ApproximateReceiveCount",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    receive_count: Option<Cow<'a, str>>,
    #[serde(
        rename = "SentTimestamp",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    sent_timestamp: Option<Cow<'a, str>>,
    #[serde(
        rename = "AWSTraceHeader",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    trace_header: Option<Cow<'a, str>>,
}

/// What an envelope held: a message to run (its body, and its path if the envelope chose it),
/// or S3's test event.
enum Unwrapped {
    Message(String, Option<String>),
    TestEvent,
}

impl From<S3Unwrapped> for Unwrapped {
    fn from(unwrapped: S3Unwrapped) -> Self {
        match unwrapped {
            S3Unwrapped::Object { path, kwargs, .. } => Unwrapped::Message(kwargs, Some(path)),
            _ => Unwrapped::TestEvent,
        }
    }
}

/// A record whose body is in an envelope: it runs what the envelope holds, keeps the body as
/// it came (for its dead letter), and the envelope's metadata. Unwrapped when the event is
/// decoded (the metadata is the record's from the start; a batch has at most 10,000 records).
fn unwrap<'e>(
    envelope: &SqsEnvelope,
    mut record: Record<'e>,
    body: Body<'e>,
    meta: &mut SqsMeta,
) -> Record<'e> {
    let text = match body.into_text() {
        Ok(text) => text,
        Err(e) => {
            record.body = Body::Invalid(e);
            return record;
        }
    };
    let unwrapped = match envelope {
        SqsEnvelope::Sns => SnsNotification::parse(&text).map(|notification| {
            meta.sns = Some(Box::new(notification.meta));
            Unwrapped::Message(notification.message, None)
        }),
        SqsEnvelope::EventBridge(routes) => routes.unwrap(&text).map(|event| {
            meta.eventbridge = Some(Box::new(event.meta));
            Unwrapped::Message(event.body, event.path)
        }),
        SqsEnvelope::S3(routes) => routes.unwrap(&text).map(Unwrapped::from),
        SqsEnvelope::SnsS3(routes) => SnsNotification::parse(&text).and_then(|notification| {
            meta.sns = Some(Box::new(notification.meta));
            routes.unwrap(&notification.message).map(Unwrapped::from)
        }),
    };
    let unwrapped = match unwrapped {
        Ok(Unwrapped::Message(body, path)) => Ok((body, path)),
        Ok(Unwrapped::TestEvent) => {
            // The s3:TestEvent: S3 checking that it can send here.
            record.body = Body::Text(Cow::Borrowed("{}"));
            let why = "the s3:TestEvent S3 sends when a notification is configured";
            return record.acknowledge(why);
        }
        Err(e) => Err(e),
    };
    match unwrapped {
        Ok((body, path)) => {
            record.body = Body::Text(Cow::Owned(body));
            if let Some(path) = path {
                record = record.with_path(Cow::Owned(path));
            }
        }
        Err(e) => record.body = Body::Invalid(e),
    }
    record.as_it_came(text)
}

#[async_trait]
impl EventSource for SqsSource {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn matches(&self, probe: &EventProbe) -> bool {
        // An empty batch names no source; pinned to this one, it is taken (nothing to run).
        probe.first_event_source.as_deref() == Some(EVENT_SOURCE) || probe.empty_records
    }

    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        lpipe_core::source::decode_records(Self::NAME, event, |index, r: SqsRecord<'e>| {
            InvalidEvent::check_record_source(
                Self::NAME,
                EVENT_SOURCE,
                index,
                r.event_source.as_deref(),
            )?;
            let fifo_queue = r
                .event_source_arn
                .as_deref()
                .is_some_and(|a| a.ends_with(".fifo"));
            let (group, receive_count, sent, trace_header) = match r.attributes {
                Some(a) => (
                    a.message_group_id,
                    a.receive_count.and_then(|c| c.parse().ok()),
                    a.sent_timestamp.and_then(|t| t.parse().ok()),
                    a.trace_header.filter(|t| !t.is_empty()),
                ),
                None => (None, None, None, None),
            };
            let mut meta =
                SqsMeta::new(receive_count, sent, string_attributes(r.message_attributes))
                    .with_trace_header(trace_header.map(Cow::into_owned));
            let ordering_key = match (group, fifo_queue) {
                (Some(g), _) => Some(g),
                // A FIFO queue's record without a group: keep the whole queue in order.
                (None, true) => r.event_source_arn.clone(),
                (None, false) => None,
            };
            let body = match r.body {
                Some(literal) => Body::json_string(literal.get()),
                None => Body::Invalid(RecordError::invalid_payload("the SQS record has no body")),
            };
            let id = r.message_id.filter(|id| !id.is_empty());
            let mut record = match &self.envelope {
                None => Record::new(id, body),
                Some(envelope) => {
                    let unwrapped = Record::new(id, Body::Text(Cow::Borrowed("")));
                    unwrap(envelope, unwrapped, body, &mut meta)
                }
            };
            let meta = RecordMeta::Sqs(meta);
            // A pointer (sent by an extended client, or by lpipe offloading) is a message the
            // source runs as it is, or as an SNS notification holds it.
            let may_point = matches!(self.envelope, None | Some(SqsEnvelope::Sns));
            if may_point && declared_size(&meta).is_some() {
                record = record.offloaded();
            }
            Ok(record.ordering_key(ordering_key).meta(meta))
        })
    }

    fn describe(&self) -> serde_json::Value {
        let envelope = match &self.envelope {
            None => serde_json::Value::Null,
            Some(SqsEnvelope::Sns) => serde_json::json!({"kind": "sns"}),
            Some(SqsEnvelope::EventBridge(e)) => {
                serde_json::json!({"kind": "eventbridge", "eventbridge": e.describe()})
            }
            Some(SqsEnvelope::S3(e)) => serde_json::json!({"kind": "s3", "s3": e.describe()}),
            Some(SqsEnvelope::SnsS3(e)) => {
                serde_json::json!({"kind": "sns_s3", "s3": e.describe()})
            }
        };
        #[cfg(feature = "client")]
        let backoff = self
            .backoff
            .map(|b| serde_json::json!({"base_ms": b.base.as_millis() as u64, "cap_ms": b.cap.as_millis() as u64}));
        #[cfg(not(feature = "client"))]
        let backoff: Option<serde_json::Value> = None;
        serde_json::json!({
            "mode": match self.mode {
                SqsMode::PartialBatch => "partial_batch",
                SqsMode::Classic => "classic",
            },
            "envelope": envelope,
            "backoff": backoff,
        })
    }

    fn ordering(&self) -> RecordOrder {
        RecordOrder::PerKey
    }

    async fn respond(
        &self,
        event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError> {
        let response = batch.partial_batch_response("messageId")?;
        #[cfg(feature = "client")]
        if batch.stats.failed > 0 {
            if self.mode == SqsMode::Classic {
                let deleted = self.delete_acknowledged(event, batch).await;
                return Err(batch.catastrophic_error(Some(&deleted)));
            }
            if let Some(backoff) = self.backoff {
                self.back_off_failed(event, batch, backoff).await;
            }
        }
        #[cfg(not(feature = "client"))]
        let _ = event;
        Ok(response)
    }
}
