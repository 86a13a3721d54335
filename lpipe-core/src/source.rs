//! Event sources: how a Lambda event becomes records, and how the batch's outcome becomes the
//! Lambda response.

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{ErrorKind, InvocationError, Outcome, RecordError};

/// One record of a batch, borrowed from the event's text where possible.
#[derive(Debug)]
pub struct Record<'e> {
    /// Its identity in the source (SQS `messageId`, Kinesis `sequenceNumber`…), used in the
    /// response to name failed records.
    pub id: Option<Cow<'e, str>>,
    /// Its ordering key (FIFO `MessageGroupId`, Kinesis partition key), if ordered.
    pub ordering_key: Option<Cow<'e, str>>,
    /// The lpipe message's JSON text (or still encoded, decoded when the record runs), or why
    /// it could not be extracted (bad base64, say). When the source chose the record's path
    /// ([`Record::with_path`]), the body is the kwargs object instead.
    pub body: Body<'e>,
    /// The path, when the source decided it (see [`Record::path`]). Boxed: few sources set it,
    /// and a record moves a few times between its event and its run; at 128 bytes or less a
    /// move is a few instructions, not a call to `memcpy` (~4% of a batch's run for SQS).
    pub(crate) path: Option<Box<Cow<'e, str>>>,
    /// What the source says about the record besides (see [`RecordMeta`]).
    pub meta: RecordMeta,
}

/// A record's body as its source found it. A body still encoded in the event (an SQS body is
/// a JSON string with escapes; Kinesis data is base64) is decoded when its record runs and
/// freed when it has run, so a batch never holds all its decoded bodies at once.
#[derive(Debug)]
pub enum Body<'e> {
    /// The text.
    Text(Cow<'e, str>),
    /// Text still encoded as it sits in the event, and the function that decodes it.
    Encoded {
        /// The encoded text.
        raw: &'e str,
        /// Decodes it; an error says what is wrong with it (and drops the record).
        decode: fn(&str) -> Result<String, RecordError>,
    },
    /// Why the body could not be extracted (the record is dropped with this error).
    Invalid(RecordError),
}

impl<'e> Body<'e> {
    /// The text, decoding it if it is still encoded.
    ///
    /// # Errors
    ///
    /// Why the body could not be extracted or decoded.
    pub fn into_text(self) -> Result<Cow<'e, str>, RecordError> {
        match self {
            Body::Text(text) => Ok(text),
            Body::Encoded { raw, decode } => decode(raw).map(Cow::Owned),
            Body::Invalid(e) => Err(e),
        }
    }

    /// A JSON string literal as it sits in the event (`"…"`, quotes included): borrowed when
    /// it has no escapes, else unescaped when its record runs.
    pub fn json_string(literal: &'e str) -> Body<'e> {
        match literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
            Some(inner)
                if memchr::memchr2(b'\\', b'"', inner.as_bytes()).is_none()
                    && !inner.bytes().any(|b| b < 0x20) =>
            {
                Body::Text(Cow::Borrowed(inner))
            }
            _ => Body::Encoded {
                raw: literal,
                decode: unescape_json_string,
            },
        }
    }
}

/// A JSON string literal's text. The common escapes are undone here in one pass; anything
/// else (a literal that is not a well-formed string, a lone surrogate) goes to serde_json,
/// for its verdict and its precise error.
fn unescape_json_string(literal: &str) -> Result<String, RecordError> {
    unescape_simple(literal).map_or_else(
        || {
            serde_json::from_str(literal).map_err(|e| {
                RecordError::invalid_payload(format!("the record's body is not a JSON string: {e}"))
            })
        },
        Ok,
    )
}

/// [`unescape_json_string`]'s one pass: `None` when it is not sure. The literal's text is
/// copied whole (one `memcpy`), then unescaped in place with a read and a write cursor: an
/// escape is never shorter than what it stands for, so the text only shrinks. Message bodies
/// escape every few bytes (each quote of the JSON inside), which makes a tight loop over
/// bytes cheaper than finding and copying runs. The result is checked as UTF-8 once (the ASCII
/// fast path; escapes write whole characters and other bytes are copied in order).
fn unescape_simple(literal: &str) -> Option<String> {
    let text = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut buf = text.as_bytes().to_vec();
    let (mut read, mut write) = (0, 0);
    while let Some(&b) = buf.get(read) {
        if !STOPS[usize::from(b)] {
            buf[write] = b;
            write += 1;
            read += 1;
            continue;
        }
        let plain = match (b, buf.get(read + 1)) {
            (b'\\', Some(b'"')) => b'"',
            (b'\\', Some(b'\\')) => b'\\',
            (b'\\', Some(b'/')) => b'/',
            (b'\\', Some(b'b')) => 0x08,
            (b'\\', Some(b'f')) => 0x0c,
            (b'\\', Some(b'n')) => b'\n',
            (b'\\', Some(b'r')) => b'\r',
            (b'\\', Some(b't')) => b'\t',
            (b'\\', Some(b'u')) => {
                let (ch, used) = unicode_escape(&buf[read..])?;
                // At most 4 bytes of UTF-8 for 6 (or 12) of escape: the write stays behind.
                let mut utf8 = [0; 4];
                let encoded = ch.encode_utf8(&mut utf8).as_bytes();
                buf[write..write + encoded.len()].copy_from_slice(encoded);
                write += encoded.len();
                read += used;
                continue;
            }
            // A quote or control character that is not escaped, or an unknown escape.
            _ => return None,
        };
        buf[write] = plain;
        write += 1;
        read += 2;
    }
    buf.truncate(write);
    String::from_utf8(buf).ok()
}

/// The bytes that end a plain run in a JSON string: `\`, `"` and control characters.
const STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stops[b] = true;
        b += 1;
    }
    stops[b'\\' as usize] = true;
    stops[b'"' as usize] = true;
    stops
};

/// A `\uXXXX` escape (or a surrogate pair of two) at the start of `bytes`: the character and
/// how many bytes it took.
fn unicode_escape(bytes: &[u8]) -> Option<(char, usize)> {
    let unit = |from: usize| {
        let hex = bytes.get(from..from + 4)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    };
    let first = unit(2)?;
    if !(0xD800..0xDC00).contains(&first) {
        return Some((char::from_u32(first)?, 6));
    }
    // A surrogate pair: `\uD83D\uDE00`.
    if bytes.get(6..8)? != b"\\u" {
        return None;
    }
    let second = unit(8)?;
    if !(0xDC00..0xE000).contains(&second) {
        return None;
    }
    Some((
        char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))?,
        12,
    ))
}

impl<'e> From<Result<Cow<'e, str>, RecordError>> for Body<'e> {
    fn from(body: Result<Cow<'e, str>, RecordError>) -> Self {
        match body {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Invalid(e),
        }
    }
}

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
/// use lpipe_core::{decode_records, Record};
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

/// What the event source says about a record beyond its body, id and ordering key; functions
/// read it from their [`Context`](crate::Context) (`ctx.record().sqs()`, …).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum RecordMeta {
    /// Nothing (direct invocations, sources of your own).
    #[default]
    None,
    /// An SQS message's attributes.
    Sqs(SqsMeta),
    /// A Kinesis record's.
    Kinesis(KinesisMeta),
    /// An EventBridge event's (boxed: one per invocation, and larger than the others).
    EventBridge(Box<EventBridgeMeta>),
    /// A DynamoDB stream record's (boxed: the largest, and on its source's records only).
    DynamoDb(Box<DynamoDbMeta>),
}

/// An SQS message's attributes (the FIFO `MessageGroupId` is the record's ordering key).
///
/// The message attributes and trace header are kept apart, boxed, and only for a message that
/// has either: every record carries its metadata, and most messages have neither.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SqsMeta {
    /// `ApproximateReceiveCount`: how many times the message has been received, this time
    /// included.
    pub receive_count: Option<u32>,
    /// `SentTimestamp`, in Unix milliseconds.
    pub sent_timestamp_ms: Option<u64>,
    /// Its message attributes and trace header, when it has either.
    rare: Option<Box<SqsRare>>,
}

/// What few SQS messages have (see [`SqsMeta`]).
#[derive(Clone, Debug, Default, PartialEq)]
struct SqsRare {
    message_attributes: Vec<(String, String)>,
    trace_header: Option<String>,
}

impl SqsMeta {
    /// Its metadata from these values.
    pub fn new(
        receive_count: Option<u32>,
        sent_timestamp_ms: Option<u64>,
        message_attributes: Vec<(String, String)>,
    ) -> Self {
        SqsMeta {
            receive_count,
            sent_timestamp_ms,
            rare: (!message_attributes.is_empty()).then(|| {
                Box::new(SqsRare {
                    message_attributes,
                    trace_header: None,
                })
            }),
        }
    }

    /// With this `AWSTraceHeader`.
    pub fn with_trace_header(mut self, trace_header: Option<String>) -> Self {
        match (trace_header, &mut self.rare) {
            (Some(header), rare) => {
                rare.get_or_insert_with(Box::default).trace_header = Some(header)
            }
            (None, Some(rare)) if rare.message_attributes.is_empty() => self.rare = None,
            (None, Some(rare)) => rare.trace_header = None,
            (None, None) => {}
        }
        self
    }

    /// The message attributes that have a string value, by name.
    pub fn message_attributes(&self) -> &[(String, String)] {
        self.rare.as_deref().map_or(&[], |r| &r.message_attributes)
    }

    /// A message attribute's string value.
    pub fn message_attribute(&self, name: &str) -> Option<&str> {
        self.message_attributes()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `AWSTraceHeader`: the X-Ray trace header its sender attached
    /// (`Root=1-…;Parent=…;Sampled=…`).
    pub fn trace_header(&self) -> Option<&str> {
        self.rare.as_deref()?.trace_header.as_deref()
    }
}

/// A Kinesis record's metadata (the partition key is the record's ordering key).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct KinesisMeta {
    /// `approximateArrivalTimestamp`, in Unix seconds.
    pub arrival_timestamp: Option<f64>,
    /// The shard, from the record's `eventID` (`shardId-000000000000`).
    pub shard_id: Option<std::sync::Arc<str>>,
}

impl KinesisMeta {
    /// Its metadata from these values.
    pub fn new(arrival_timestamp: Option<f64>, shard_id: Option<std::sync::Arc<str>>) -> Self {
        KinesisMeta {
            arrival_timestamp,
            shard_id,
        }
    }
}

/// An EventBridge event's envelope (its `id` is the record's id).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct EventBridgeMeta {
    /// `source`.
    pub source: Option<String>,
    /// `detail-type`.
    pub detail_type: Option<String>,
    /// `time`.
    pub time: Option<String>,
}

impl EventBridgeMeta {
    /// Its metadata from these values.
    pub fn new(source: Option<String>, detail_type: Option<String>, time: Option<String>) -> Self {
        EventBridgeMeta {
            source,
            detail_type,
            time,
        }
    }
}

/// A DynamoDB stream record's metadata (its `SequenceNumber` is the record's id). Keys and
/// images are plain JSON (DynamoDB's attribute values turned into JSON, numbers with their
/// exact digits), read like kwargs: `meta.keys.deserialize::<OrderKey>()`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DynamoDbMeta {
    /// `eventName`: `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: String,
    /// The item's key attributes (`dynamodb.Keys`).
    pub keys: crate::Kwargs,
    /// The item before the change (`dynamodb.OldImage`), when the stream carries it.
    pub old_image: Option<crate::Kwargs>,
    /// `dynamodb.ApproximateCreationDateTime`, in Unix seconds.
    pub creation_time: Option<f64>,
    /// `eventSourceARN`: the table's stream.
    pub event_source_arn: Option<String>,
}

impl DynamoDbMeta {
    /// Its metadata from these values.
    pub fn new(event_name: impl Into<String>, keys: crate::Kwargs) -> Self {
        DynamoDbMeta {
            event_name: event_name.into(),
            keys,
            old_image: None,
            creation_time: None,
            event_source_arn: None,
        }
    }

    /// With the item's old image.
    pub fn with_old_image(mut self, old_image: Option<crate::Kwargs>) -> Self {
        self.old_image = old_image;
        self
    }

    /// With its creation time (Unix seconds) and stream ARN.
    pub fn with_origin(
        mut self,
        creation_time: Option<f64>,
        event_source_arn: Option<String>,
    ) -> Self {
        self.creation_time = creation_time;
        self.event_source_arn = event_source_arn;
        self
    }
}

impl RecordMeta {
    /// The X-Ray trace header the record arrived with (SQS `AWSTraceHeader`), if any.
    pub fn trace_header(&self) -> Option<&str> {
        match self {
            RecordMeta::Sqs(m) => m.trace_header(),
            _ => None,
        }
    }
}

/// The trace id of an X-Ray trace header: its `Root=` value (`1-5759e988-bd862e3fe1be46a994272793`).
///
/// # Examples
///
/// ```
/// let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
/// assert_eq!(lpipe_core::trace_id(header), Some("1-5759e988-bd862e3fe1be46a994272793"));
/// assert_eq!(lpipe_core::trace_id("Parent=1"), None);
/// ```
pub fn trace_id(header: &str) -> Option<&str> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .filter(|root| !root.is_empty())
}

impl<'e> Record<'e> {
    /// A record whose body is an lpipe message (or bare kwargs for a default path): its text,
    /// a [`Body`], or why it could not be extracted.
    pub fn new(id: Option<Cow<'e, str>>, body: impl Into<Body<'e>>) -> Self {
        Record {
            id,
            ordering_key: None,
            body: body.into(),
            path: None,
            meta: RecordMeta::None,
        }
    }

    /// Sets what the source says about the record besides.
    pub fn meta(mut self, meta: RecordMeta) -> Self {
        self.meta = meta;
        self
    }

    /// Sets the ordering key.
    pub fn ordering_key(mut self, key: Option<Cow<'e, str>>) -> Self {
        self.ordering_key = key;
        self
    }

    /// Sets the path chosen by the source; the body is then the kwargs.
    pub fn with_path(mut self, path: Cow<'e, str>) -> Self {
        self.path = Some(Box::new(path));
        self
    }

    /// The path, when the source decided it (EventBridge routes by `detail-type`, or unpacks
    /// a directed message from `detail`; DynamoDB Streams routes by `eventName`); the body is
    /// then the kwargs. `None`: the body is a message, or bare kwargs for the pipeline's
    /// default path.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref().map(|p| &**p)
    }
}

/// How a source orders its records, which decides what happens after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// No order: a failure touches only its own record.
    Unordered,
    /// Records sharing an ordering key run in order; after a record fails, the rest of its
    /// key are not run and are reported as failed too (SQS FIFO).
    PerKey,
    /// After a record fails, no later record of the batch is run; they are reported as failed
    /// (Kinesis: Lambda replays from the lowest failed sequence number anyway).
    StopOnFailure,
}

/// What happened to one record.
#[derive(Debug)]
pub struct RecordResult<'e> {
    /// Its identity (see [`Record::id`]), borrowed from the event where the record's was.
    pub id: Option<Cow<'e, str>>,
    /// The outcome.
    pub outcome: Outcome,
    /// The error, unless it succeeded.
    pub error: Option<RecordError>,
    /// Its output (see [`Returned::Output`](crate::Returned::Output)), if any (boxed: most
    /// records have none, and every record has a result).
    pub output: Option<Box<serde_json::Value>>,
}

/// Counts of a batch's outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Records in the batch.
    pub received: usize,
    /// Records that succeeded.
    pub successes: usize,
    /// Records dropped (acknowledged, never retried).
    pub dropped: usize,
    /// Records failed (kept for retry).
    pub failed: usize,
    /// Of the successes, records not run because their idempotency key was completed (see
    /// [`Idempotency`](crate::Idempotency)); left out of the JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub duplicates: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The outcome of a batch, handed to [`EventSource::respond`]; `'e` is the event's text.
#[derive(Debug)]
pub struct BatchResult<'e> {
    /// One entry per record, in batch order.
    pub records: Vec<RecordResult<'e>>,
    /// The counts.
    pub stats: Stats,
}

impl<'e> BatchResult<'e> {
    /// The records that failed (kept for retry).
    pub fn failed(&self) -> impl Iterator<Item = (usize, &RecordResult<'e>)> {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.outcome == Outcome::Failed)
    }

    /// The outputs in record order (`null` where a record produced none), when at least one
    /// record produced one.
    pub fn outputs(&self) -> Option<Vec<serde_json::Value>> {
        if self.records.iter().any(|r| r.output.is_some()) {
            Some(
                self.records
                    .iter()
                    .map(|r| {
                        r.output
                            .as_deref()
                            .cloned()
                            .unwrap_or(serde_json::Value::Null)
                    })
                    .collect(),
            )
        } else {
            None
        }
    }

    /// The error that fails an invocation because records failed (for sources that report
    /// failures by failing the invocation): names the failed records and gives the stats.
    pub fn catastrophic_error(&self, detail: Option<&str>) -> InvocationError {
        let mut message = format!(
            "Encountered catastrophic exceptions while handling one or more records: {}",
            self.describe_failures()
        );
        if let Some(detail) = detail {
            message.push_str("; ");
            message.push_str(detail);
        }
        message.push_str("; stats: ");
        message.push_str(&serde_json::to_string(&self.stats).unwrap_or_default());
        InvocationError::new("FailCatastrophically", message)
    }

    /// Python lpipe's response to a direct invocation:
    /// `{"event": "Finished.", "stats": {…}, "output": […]}`, `output` only when a record
    /// produced one.
    pub fn finished_response(&self) -> serde_json::Value {
        let mut response = serde_json::json!({"event": "Finished.", "stats": self.stats});
        if let Some(outputs) = self.outputs() {
            response["output"] = serde_json::Value::Array(outputs);
        }
        response
    }

    /// The partial batch response Lambda's SQS, Kinesis and DynamoDB Streams mappings read:
    /// `{"batchItemFailures": [{"itemIdentifier": id}, …], "stats": {…}}`, the failed records
    /// named by their ids (`id_name` names the id in the error).
    ///
    /// # Errors
    ///
    /// As [`failed_ids`](Self::failed_ids): a failed record without an id.
    pub fn partial_batch_response(
        &self,
        id_name: &str,
    ) -> Result<serde_json::Value, InvocationError> {
        let failures: Vec<serde_json::Value> = self
            .failed_ids(id_name)?
            .into_iter()
            .map(|id| serde_json::json!({ "itemIdentifier": id }))
            .collect();
        Ok(serde_json::json!({ "batchItemFailures": failures, "stats": self.stats }))
    }

    /// The identities to list in a partial batch response: each failed record's id, once.
    ///
    /// # Errors
    ///
    /// When a failed record has no id (`id_name` says what it should have been, e.g.
    /// `messageId`), it cannot be reported alone: the error fails the invocation so that the
    /// whole batch is retried rather than the record lost.
    pub fn failed_ids(&self, id_name: &str) -> Result<Vec<&str>, InvocationError> {
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut unreportable = Vec::new();
        for (index, record) in self.failed() {
            match record.id.as_deref() {
                Some(id) if !id.is_empty() => {
                    if seen.insert(id) {
                        ids.push(id);
                    }
                }
                _ => unreportable.push(index),
            }
        }
        if unreportable.is_empty() {
            return Ok(ids);
        }
        tracing::error!(
            records = ?unreportable,
            "failed records have no {id_name} and cannot be reported individually; failing the whole invocation so they are retried"
        );
        Err(InvocationError::new(
            "UnreportableFailure",
            format!(
                "records at positions {unreportable:?} failed and have no {id_name} to report: {}",
                self.describe_failures()
            ),
        ))
    }

    /// A one-line summary of the failed records, for invocation errors:
    /// `record 0 (FailCatastrophically on path X: why); record 3 (…)`.
    pub fn describe_failures(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.failed() {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let id = r.id.as_deref().map_or_else(|| i.to_string(), str::to_owned);
            match &r.error {
                Some(e) => out.push_str(&format!("record {id} ({e})")),
                None => out.push_str(&format!("record {id}")),
            }
        }
        out
    }
}

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
    /// use lpipe_core::InvalidEvent;
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

/// Turns Lambda events of one kind into records, and a batch's outcome into the response.
///
/// A source recognises its own events ([`EventSource::matches`]), so a pipeline can serve
/// several. Sources register with [`inventory`] (see [`SourceRegistration`](crate::SourceRegistration)).
#[async_trait]
pub trait EventSource: Send + Sync + 'static {
    /// The source's name (`raw`, `sqs`, …).
    fn name(&self) -> &'static str;

    /// Whether this event is one of this source's. Asked of a pinned source too
    /// ([`only_source`](crate::PipelineBuilder::only_source)): return `false` for an event
    /// whose records name another service, so that it is refused rather than misread.
    fn matches(&self, probe: &EventProbe) -> bool;

    /// Splits the event into records. Borrow from the event where you can, and decode
    /// straight into records ([`decode_records`] does it for `{"Records": [...]}` events); a
    /// body that needs decoding is best left as [`Body::Encoded`], decoded when its record
    /// runs, so that a large batch does not hold all its decoded bodies at once.
    ///
    /// # Errors
    ///
    /// [`InvalidEvent`] when the event as a whole cannot be read; a single bad record is
    /// reported in its [`Record::body`] instead.
    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent>;

    /// How records are ordered.
    fn ordering(&self) -> Ordering {
        Ordering::Unordered
    }

    /// Whether a record's id names it beyond this invocation, and stays the same when the
    /// record is delivered again (an SQS `messageId`, a Kinesis sequence number, an
    /// EventBridge event id). When not, the ids of the outbound messages (from which sinks
    /// derive deduplication ids) are scoped by the Lambda request id, which Lambda keeps
    /// across the retries of an asynchronous invocation.
    fn stable_record_ids(&self) -> bool {
        true
    }

    /// Builds the Lambda response, or fails the invocation.
    async fn respond(
        &self,
        event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError>;
}

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
        if batch.stats.failed > 0 {
            return Err(batch.catastrophic_error(None));
        }
        Ok(batch.finished_response())
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

    #[test]
    fn json_string_bodies_unescape_as_serde_json_does() {
        let cases = [
            r#""plain""#,
            r#""{\"path\": \"A\", \"kwargs\": {\"x\": \"a\\\\b\/c\"}}""#,
            r#""tab\tnew\nline\r\b\f""#,
            r#""\u00e9\u4e2d\ud83d\ude00 é""#,
            r#""\"""#,
            r#""\\""#,
            r#""""#,
        ];
        for literal in cases {
            let expected: String = serde_json::from_str(literal).unwrap();
            assert_eq!(
                unescape_simple(literal).as_deref(),
                Some(expected.as_str()),
                "{literal}"
            );
            assert_eq!(
                Body::json_string(literal).into_text().unwrap(),
                expected,
                "{literal}"
            );
        }
        // Not sure: serde_json decides, and names the problem.
        for bad in [
            r#""\u+0e9""#,
            r#""\ud83d alone""#,
            r#""\x""#,
            r#""open"#,
            r#""a"b""#,
            "\"ctl\u{1}\"",
            r#""a quote " inside a long run of plain text""#,
            "\"a control \u{1f} inside a long run of plain text\"",
            "5",
        ] {
            assert_eq!(unescape_simple(bad), None, "{bad}");
            let e = Body::json_string(bad).into_text().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidPayload, "{bad}");
            assert!(e.message().contains("not a JSON string"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_record_stays_small() {
        // Every record of a batch is held until the batch has run: 100,000 of them at 128
        // bytes are 12.8 MB. Rare metadata and the source's path are boxed to keep it so (and
        // a record's moves inline: no `memcpy` call above 128 bytes).
        assert_eq!(std::mem::size_of::<RecordMeta>(), 40);
        assert_eq!(std::mem::size_of::<Record<'_>>(), 128);
        let meta = SqsMeta::new(Some(1), None, Vec::new());
        assert_eq!(meta.trace_header(), None);
        let traced = meta.clone().with_trace_header(Some("Root=1-a".into()));
        assert_eq!(traced.trace_header(), Some("Root=1-a"));
        assert_eq!(traced.with_trace_header(None), meta);
        let tagged = SqsMeta::new(None, None, vec![("tenant".into(), "t1".into())])
            .with_trace_header(Some("Root=1-b".into()))
            .with_trace_header(None);
        assert_eq!(tagged.message_attribute("tenant"), Some("t1"));
        assert_eq!(tagged.trace_header(), None);
    }

    #[test]
    fn any_string_serde_json_writes_unescapes_to_itself() {
        use rand::{Rng, SeedableRng};
        let alphabet: Vec<char> = "ab \"\\/\u{0}\u{1f}\n\t\u{7f}é中😀{}:,".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..4_000 {
            let len = rng.random_range(0..80);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let literal = serde_json::to_string(&text).unwrap();
            assert_eq!(
                unescape_simple(&literal).as_deref(),
                Some(text.as_str()),
                "{literal}"
            );
        }
    }

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
