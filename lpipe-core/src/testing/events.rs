//! Event builders: Lambda events of every source lpipe reads, with the attributes AWS gives
//! them, for tests of pipelines that never touch AWS.
//!
//! Each builder adds records (or, for EventBridge, sets the one event's fields) and
//! [`to_string`](ToString::to_string)s into the event's JSON, ready for
//! [`Pipeline::handle`](crate::Pipeline::handle). Ids are deterministic (the `n`th record of
//! every event built the same way has the same id) and settable.

use std::fmt;

use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
/// 2026-11-28T12:00:00Z, in Unix milliseconds: when the builders' records were "sent".
const SENT_MS: u64 = 1_796_212_800_000;

/// The JSON text of a message, or the text itself when given a string.
fn body_of(message: &impl Serialize) -> String {
    match serde_json::to_value(message).expect("a message serializes") {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// An ARN given as it is, or a name made one: `arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE_PREFIX+name`.
fn arn_of(name_or_arn: &str, service: &str, resource_prefix: &str) -> String {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.to_owned()
    } else {
        format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{resource_prefix}{name_or_arn}")
    }
}

/// A UUID-shaped id, the same for the same `n` (AWS's message ids and event ids are UUIDs).
fn uuid_like(kind: u32, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

/// One record of an [`SqsEvent`].
///
/// # Examples
///
/// ```
/// use lpipe_core::testing::{message, SqsEvent, SqsRecord};
/// use serde_json::json;
/// let event = SqsEvent::fifo()
///     .record(SqsRecord::new(message("SHIP", json!({"order": 1}))).group("customer-7").id("m-1"))
///     .to_string();
/// assert!(event.contains(r#""MessageGroupId":"customer-7""#));
/// ```
#[derive(Clone, Debug)]
pub struct SqsRecord {
    body: Option<String>,
    id: Option<String>,
    group: Option<String>,
    receive_count: u32,
    message_attributes: Vec<(String, String)>,
}

impl SqsRecord {
    /// A record whose body is this message (serialized to JSON; a string is taken as the body
    /// text itself).
    pub fn new(message: impl Serialize) -> Self {
        SqsRecord {
            body: Some(body_of(&message)),
            id: None,
            group: None,
            receive_count: 1,
            message_attributes: Vec::new(),
        }
    }

    /// A record without a `body` (as some hand-written events have).
    pub fn without_body() -> Self {
        SqsRecord {
            body: None,
            ..SqsRecord::new("")
        }
    }

    /// Its `messageId` (default: a UUID from its position).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Its `MessageGroupId` (FIFO queues; default for a FIFO event: `group-0`).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Its `ApproximateReceiveCount` (default 1).
    pub fn receive_count(mut self, count: u32) -> Self {
        self.receive_count = count;
        self
    }

    /// Adds a string message attribute.
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.message_attributes.push((name.into(), value.into()));
        self
    }
}

/// An SQS event (standard or FIFO queue), as an event source mapping delivers it.
///
/// # Examples
///
/// ```
/// use lpipe_core::testing::{message, SqsEvent};
/// use serde_json::json;
/// let event = SqsEvent::new()
///     .message(message("GREET", json!({"name": "Ann"})))
///     .message(json!({"name": "Bob"})) // bare kwargs, for a default path
///     .to_string();
/// let parsed: serde_json::Value = serde_json::from_str(&event).unwrap();
/// assert_eq!(parsed["Records"][0]["eventSource"], "aws:sqs");
/// assert_eq!(parsed["Records"][1]["body"], r#"{"name":"Bob"}"#);
/// ```
#[derive(Clone, Debug)]
pub struct SqsEvent {
    queue_arn: String,
    fifo: bool,
    records: Vec<SqsRecord>,
}

impl Default for SqsEvent {
    fn default() -> Self {
        Self::new()
    }
}

impl SqsEvent {
    /// An event of the standard queue `lpipe-test`.
    pub fn new() -> Self {
        SqsEvent {
            queue_arn: arn_of("lpipe-test", "sqs", ""),
            fifo: false,
            records: Vec::new(),
        }
    }

    /// An event of the FIFO queue `lpipe-test.fifo`: records carry a `MessageGroupId`
    /// (`group-0` unless set), a deduplication id and a sequence number.
    pub fn fifo() -> Self {
        SqsEvent {
            queue_arn: arn_of("lpipe-test.fifo", "sqs", ""),
            fifo: true,
            records: Vec::new(),
        }
    }

    /// The queue the records come from (its name or ARN; a name ending in `.fifo` makes a FIFO
    /// event).
    pub fn queue(mut self, name_or_arn: &str) -> Self {
        self.queue_arn = arn_of(name_or_arn, "sqs", "");
        self.fifo = self.queue_arn.ends_with(".fifo");
        self
    }

    /// Adds a record whose body is this message.
    pub fn message(self, message: impl Serialize) -> Self {
        self.record(SqsRecord::new(message))
    }

    /// Adds a record.
    pub fn record(mut self, record: SqsRecord) -> Self {
        self.records.push(record);
        self
    }

    /// The events' records as JSON values.
    fn records_json(&self) -> Vec<Value> {
        self.records
            .iter()
            .enumerate()
            .map(|(n, r)| {
                let id = r.id.clone().unwrap_or_else(|| uuid_like(0x5e5, n));
                let sent = (SENT_MS + n as u64).to_string();
                let mut attributes = json!({
                    "ApproximateReceiveCount": r.receive_count.to_string(),
                    "SentTimestamp": sent,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": sent,
                });
                if self.fifo {
                    attributes["MessageGroupId"] =
                        json!(r.group.clone().unwrap_or_else(|| "group-0".to_owned()));
                    attributes["MessageDeduplicationId"] = json!(format!("dedup-{id}"));
                    attributes["SequenceNumber"] = json!((18_000_000_000_000_000_000u64 + n as u64).to_string());
                } else if let Some(group) = &r.group {
                    attributes["MessageGroupId"] = json!(group);
                }
                let message_attributes: serde_json::Map<String, Value> = r
                    .message_attributes
                    .iter()
                    .map(|(k, v)| {
                        (k.clone(), json!({"stringValue": v, "stringListValues": [], "binaryListValues": [], "dataType": "String"}))
                    })
                    .collect();
                let mut record = json!({
                    "messageId": id,
                    "receiptHandle": format!("AQEB{}", uuid_like(0x4ec, n).replace('-', "")),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": REGION,
                });
                if let Some(body) = &r.body {
                    record["body"] = json!(body);
                }
                record
            })
            .collect()
    }
}

impl fmt::Display for SqsEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", json!({ "Records": self.records_json() }))
    }
}

/// One record of a [`KinesisEvent`].
#[derive(Clone, Debug)]
pub struct KinesisRecord {
    data: Vec<u8>,
    partition_key: Option<String>,
    sequence_number: Option<String>,
}

impl KinesisRecord {
    /// A record whose data is this message (serialized to JSON; a string is taken as the text
    /// itself), base64-encoded as Kinesis delivers it.
    pub fn new(message: impl Serialize) -> Self {
        KinesisRecord {
            data: body_of(&message).into_bytes(),
            partition_key: None,
            sequence_number: None,
        }
    }

    /// A record of these raw bytes (not UTF-8, say).
    pub fn bytes(data: impl Into<Vec<u8>>) -> Self {
        KinesisRecord {
            data: data.into(),
            partition_key: None,
            sequence_number: None,
        }
    }

    /// Its partition key (default `partition-0`).
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Its sequence number (default: increasing with its position).
    pub fn sequence_number(mut self, number: impl Into<String>) -> Self {
        self.sequence_number = Some(number.into());
        self
    }
}

/// A Kinesis Data Streams event, as an event source mapping delivers it: the data of each
/// record base64-encoded, sequence numbers increasing.
///
/// # Examples
///
/// ```
/// use lpipe_core::testing::{message, KinesisEvent, KinesisRecord};
/// use serde_json::json;
/// let event = KinesisEvent::new()
///     .record(KinesisRecord::new(message("STORE", json!({"order": 1}))).partition_key("customer-7"))
///     .to_string();
/// let parsed: serde_json::Value = serde_json::from_str(&event).unwrap();
/// assert_eq!(parsed["Records"][0]["kinesis"]["partitionKey"], "customer-7");
/// ```
#[derive(Clone, Debug)]
pub struct KinesisEvent {
    stream_arn: String,
    records: Vec<KinesisRecord>,
}

impl Default for KinesisEvent {
    fn default() -> Self {
        Self::new()
    }
}

impl KinesisEvent {
    /// An event of the stream `lpipe-test`.
    pub fn new() -> Self {
        KinesisEvent {
            stream_arn: arn_of("lpipe-test", "kinesis", "stream/"),
            records: Vec::new(),
        }
    }

    /// The stream the records come from (its name or ARN).
    pub fn stream(mut self, name_or_arn: &str) -> Self {
        self.stream_arn = arn_of(name_or_arn, "kinesis", "stream/");
        self
    }

    /// Adds a record whose data is this message.
    pub fn message(self, message: impl Serialize) -> Self {
        self.record(KinesisRecord::new(message))
    }

    /// Adds a record.
    pub fn record(mut self, record: KinesisRecord) -> Self {
        self.records.push(record);
        self
    }

    /// The sequence number the `n`th record gets by default.
    pub fn sequence_number_of(n: usize) -> String {
        format!(
            "4959033827149025660855969253836157109592157598913658{:04}",
            n
        )
    }
}

impl fmt::Display for KinesisEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let records: Vec<Value> = self
            .records
            .iter()
            .enumerate()
            .map(|(n, r)| {
                let sequence = r
                    .sequence_number
                    .clone()
                    .unwrap_or_else(|| Self::sequence_number_of(n));
                json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key.clone().unwrap_or_else(|| "partition-0".to_owned()),
                        "sequenceNumber": sequence,
                        "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                        "approximateArrivalTimestamp": (SENT_MS + n as u64) as f64 / 1000.0,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("shardId-000000000000:{sequence}"),
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": format!("arn:aws:iam::{ACCOUNT}:role/lpipe-test"),
                    "awsRegion": REGION,
                    "eventSourceARN": self.stream_arn,
                })
            })
            .collect();
        write!(f, "{}", json!({ "Records": records }))
    }
}

/// An EventBridge (CloudWatch Events) event, as a rule delivers it to Lambda: one event per
/// invocation.
///
/// # Examples
///
/// ```
/// use lpipe_core::testing::{message, EventBridgeEvent};
/// use serde_json::json;
/// // Routed by detail-type (CloudWatchSource::route), or a directed message in `detail`:
/// let scheduled = EventBridgeEvent::new("Scheduled Event", json!({})).source("aws.events");
/// let directed = EventBridgeEvent::new("lpipe", message("NIGHTLY", json!({"day": 1})));
/// assert!(directed.to_string().contains(r#""path":"NIGHTLY""#));
/// # let _ = scheduled;
/// ```
#[derive(Clone, Debug)]
pub struct EventBridgeEvent {
    detail_type: String,
    detail: Value,
    source: String,
    id: String,
    time: String,
}

impl EventBridgeEvent {
    /// An event of this `detail-type` whose `detail` is this value (an lpipe message, or bare
    /// kwargs).
    pub fn new(detail_type: impl Into<String>, detail: impl Serialize) -> Self {
        EventBridgeEvent {
            detail_type: detail_type.into(),
            detail: serde_json::to_value(detail).expect("the detail serializes"),
            source: "lpipe.test".to_owned(),
            id: uuid_like(0xeb, 0),
            time: "2026-11-28T12:00:00Z".to_owned(),
        }
    }

    /// Its `source` (default `lpipe.test`; `aws.events` for scheduled events).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Its `id`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Its `time`.
    pub fn time(mut self, time: impl Into<String>) -> Self {
        self.time = time.into();
        self
    }
}

impl fmt::Display for EventBridgeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event = json!({
            "version": "0",
            "id": self.id,
            "detail-type": self.detail_type,
            "source": self.source,
            "account": ACCOUNT,
            "time": self.time,
            "region": REGION,
            "resources": [],
            "detail": self.detail,
        });
        write!(f, "{event}")
    }
}

/// A value in DynamoDB's attribute-value JSON (`{"S": …}`, `{"N": "…"}`, `{"M": {…}}`, …),
/// from plain JSON: strings are `S`, numbers `N` (their exact digits), booleans `BOOL`, null
/// `NULL`, arrays `L`, objects `M`.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// assert_eq!(
///     lpipe_core::testing::attribute_value(&json!({"id": "o-1", "qty": 2, "tags": ["a"]})),
///     json!({"M": {"id": {"S": "o-1"}, "qty": {"N": "2"}, "tags": {"L": [{"S": "a"}]}}})
/// );
/// ```
pub fn attribute_value(value: &Value) -> Value {
    match value {
        Value::Null => json!({"NULL": true}),
        Value::Bool(b) => json!({ "BOOL": b }),
        Value::Number(n) => json!({ "N": n.to_string() }),
        Value::String(s) => json!({ "S": s }),
        Value::Array(items) => {
            json!({ "L": items.iter().map(attribute_value).collect::<Vec<_>>() })
        }
        Value::Object(_) => json!({ "M": item(value) }),
    }
}

/// An item (a JSON object) as DynamoDB's map of attribute values.
fn item(object: &Value) -> Value {
    let map: serde_json::Map<String, Value> = object
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), attribute_value(v)))
                .collect()
        })
        .unwrap_or_default();
    Value::Object(map)
}

/// A DynamoDB Streams event (stream view `NEW_AND_OLD_IMAGES`), from items written as plain
/// JSON objects; the key attributes are named with [`keys`](Self::keys) (default `id`).
///
/// # Examples
///
/// ```
/// use lpipe_core::testing::DynamoDbEvent;
/// use serde_json::json;
/// let event = DynamoDbEvent::new()
///     .insert(json!({"id": "o-1", "total": 900}))
///     .modify(json!({"id": "o-1", "total": 900}), json!({"id": "o-1", "total": 950}))
///     .remove(json!({"id": "o-1", "total": 950}))
///     .to_string();
/// let parsed: serde_json::Value = serde_json::from_str(&event).unwrap();
/// assert_eq!(parsed["Records"][0]["eventName"], "INSERT");
/// assert_eq!(parsed["Records"][0]["dynamodb"]["Keys"], json!({"id": {"S": "o-1"}}));
/// assert_eq!(parsed["Records"][1]["dynamodb"]["NewImage"]["total"], json!({"N": "950"}));
/// assert!(parsed["Records"][2]["dynamodb"].get("NewImage").is_none());
/// ```
#[derive(Clone, Debug)]
pub struct DynamoDbEvent {
    table: String,
    keys: Vec<String>,
    /// (eventName, old image, new image)
    records: Vec<(&'static str, Option<Value>, Option<Value>)>,
}

impl Default for DynamoDbEvent {
    fn default() -> Self {
        Self::new()
    }
}

impl DynamoDbEvent {
    /// An event of the table `lpipe-test`, keyed by `id`.
    pub fn new() -> Self {
        DynamoDbEvent {
            table: "lpipe-test".to_owned(),
            keys: vec!["id".to_owned()],
            records: Vec::new(),
        }
    }

    /// The table's name.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// The names of the key attributes (partition key, and sort key if any).
    pub fn keys<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.keys = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an `INSERT` of this item.
    pub fn insert(mut self, new_image: Value) -> Self {
        self.records.push(("INSERT", None, Some(new_image)));
        self
    }

    /// Adds a `MODIFY` from the old item to the new one.
    pub fn modify(mut self, old_image: Value, new_image: Value) -> Self {
        self.records
            .push(("MODIFY", Some(old_image), Some(new_image)));
        self
    }

    /// Adds a `REMOVE` of this item.
    pub fn remove(mut self, old_image: Value) -> Self {
        self.records.push(("REMOVE", Some(old_image), None));
        self
    }
}

impl fmt::Display for DynamoDbEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arn = format!(
            "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}/stream/2026-11-28T00:00:00.000",
            self.table
        );
        let records: Vec<Value> = self
            .records
            .iter()
            .enumerate()
            .map(|(n, (name, old, new))| {
                let image = new.as_ref().or(old.as_ref()).expect("an image");
                let keys: serde_json::Map<String, Value> = self
                    .keys
                    .iter()
                    .filter_map(|k| image.get(k).map(|v| (k.clone(), attribute_value(v))))
                    .collect();
                let mut dynamodb = json!({
                    "ApproximateCreationDateTime": (SENT_MS / 1000 + n as u64),
                    "Keys": keys,
                    "SequenceNumber": format!("{}", 111_000_000_000_000_000_000u128 + n as u128),
                    "SizeBytes": image.to_string().len(),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                });
                if let Some(new) = new {
                    dynamodb["NewImage"] = item(new);
                }
                if let Some(old) = old {
                    dynamodb["OldImage"] = item(old);
                }
                json!({
                    "eventID": uuid_like(0xddb, n).replace('-', ""),
                    "eventName": name,
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": REGION,
                    "dynamodb": dynamodb,
                    "eventSourceARN": arn,
                })
            })
            .collect();
        write!(f, "{}", json!({ "Records": records }))
    }
}
