//! Envelopes: a message that another service wrapped in a notification of its own, unwrapped by
//! the source that declares it (never guessed from a body's shape).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{EventBridgeMeta, SnsMeta};
use crate::error::RecordError;
use crate::path::{IntoPathName, PathName};

/// A message unwrapped from an SNS notification: the body of an SQS message that a topic's
/// subscription without raw message delivery sent.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SnsNotification {
    /// The published message (`Message`).
    pub message: String,
    /// The notification's id, topic, subject, timestamp and message attributes.
    pub meta: SnsMeta,
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "MessageId")]
    message_id: Option<String>,
    #[serde(rename = "TopicArn")]
    topic_arn: Option<String>,
    #[serde(rename = "Subject")]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "Timestamp")]
    timestamp: Option<String>,
    #[serde(rename = "MessageAttributes", default)]
    message_attributes: BTreeMap<String, Attribute>,
}

#[derive(Deserialize)]
struct Attribute {
    #[serde(rename = "Value")]
    value: Option<String>,
}

impl SnsNotification {
    /// Reads a notification's JSON (`{"Type": "Notification", "MessageId": …, "TopicArn": …,
    /// "Message": …, …}`).
    ///
    /// # Errors
    ///
    /// When the text is not an SNS notification (not JSON, not an object, no string `Message`,
    /// another `Type`): the error says what was expected, and that raw message delivery sends
    /// the message without the notification.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::source::SnsNotification;
    /// let n = SnsNotification::parse(
    ///     r#"{"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
    ///         "Message": "{\"path\": \"A\", \"kwargs\": {}}", "Timestamp": "2026-12-06T12:00:00Z",
    ///         "MessageAttributes": {"tenant": {"Type": "String", "Value": "t1"}}}"#,
    /// )
    /// .unwrap();
    /// assert_eq!(n.message, r#"{"path": "A", "kwargs": {}}"#);
    /// assert_eq!(n.meta.message_id.as_deref(), Some("m-1"));
    /// assert_eq!(n.meta.message_attribute("tenant"), Some("t1"));
    /// let e = SnsNotification::parse(r#"{"path": "A", "kwargs": {}}"#).unwrap_err();
    /// assert!(e.message().contains("not an SNS notification"), "{e}");
    /// ```
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let not_one = |why: &str| {
            RecordError::invalid_payload(format!(
                "the body is not an SNS notification ({why}), and its source declares the SNS envelope (a subscription with raw message delivery sends the message alone: declare no envelope for it)"
            ))
        };
        let n: Notification = serde_json::from_str(text).map_err(|e| not_one(&e.to_string()))?;
        match n.kind.as_deref() {
            Some("Notification") => {}
            Some(other) => return Err(not_one(&format!("its Type is '{other}'"))),
            None => return Err(not_one("it has no Type")),
        }
        let message = n.message.ok_or_else(|| not_one("it has no Message"))?;
        let attributes = n
            .message_attributes
            .into_iter()
            .filter_map(|(name, a)| Some((name, a.value?)))
            .collect();
        let meta = SnsMeta::new(n.topic_arn, n.subject, n.timestamp, attributes)
            .with_message_id(n.message_id);
        Ok(SnsNotification { message, meta })
    }
}

/// EventBridge events that a rule delivered to a queue (each SQS message's body is the whole
/// event), routed as the EventBridge source routes events: by `detail-type` to a path with the
/// event's `detail` as kwargs, else a `detail` that is an lpipe message runs as one, else a
/// `detail` object is bare kwargs for the default path.
///
/// # Examples
///
/// ```
/// use lpipe_core::source::EventBridgeEnvelope;
/// let envelope = EventBridgeEnvelope::new().route("Order Placed", "PLACE");
/// let event = r#"{"version": "0", "id": "e-1", "detail-type": "Order Placed", "source": "shop",
///     "time": "2026-12-06T12:00:00Z", "detail": {"order_id": "o-1"}}"#;
/// let unwrapped = envelope.unwrap(event).unwrap();
/// assert_eq!(unwrapped.path.as_deref(), Some("PLACE"));
/// assert_eq!(unwrapped.body, r#"{"order_id": "o-1"}"#);
/// assert_eq!(unwrapped.meta.detail_type.as_deref(), Some("Order Placed"));
/// assert!(envelope.unwrap(r#"{"path": "PLACE", "kwargs": {}}"#).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventBridgeEnvelope {
    routes: BTreeMap<String, PathName>,
    s3: Option<S3Envelope>,
}

/// An lpipe record unwrapped from an EventBridge event (see [`EventBridgeEnvelope::unwrap`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EventBridgeUnwrapped {
    /// The record's body: the kwargs when `path` is set, else an lpipe message or bare kwargs.
    pub body: String,
    /// The path the event's `detail-type` (or its directed message) names.
    pub path: Option<String>,
    /// The event's `id`.
    pub id: Option<String>,
    /// The event's source, `detail-type` and time.
    pub meta: EventBridgeMeta,
}

#[derive(Deserialize)]
struct Event<'a> {
    id: Option<String>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    source: Option<String>,
    time: Option<String>,
    #[serde(borrow)]
    detail: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Directed<'a> {
    path: String,
    #[serde(borrow)]
    kwargs: &'a RawValue,
}

impl EventBridgeEnvelope {
    /// An envelope without routes (directed messages and the default path only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `path` for events of this `detail-type`, with the event's `detail` as kwargs.
    pub fn route(mut self, detail_type: impl Into<String>, path: impl IntoPathName) -> Self {
        self.routes
            .insert(detail_type.into(), path.into_path_name());
        self
    }

    /// Runs S3's events (`source: "aws.s3"`, from a bucket with EventBridge notifications on)
    /// by these routes, named by `detail-type` (`Object Created`, `Object Deleted`, …), with
    /// the kwargs S3 notifications give (see [`S3Envelope::unwrap_eventbridge`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::source::{EventBridgeEnvelope, S3Envelope};
    /// let envelope = EventBridgeEnvelope::new().s3(S3Envelope::new().route("Object Created", "INGEST"));
    /// let event = r#"{"id": "e1", "source": "aws.s3", "detail-type": "Object Created",
    ///     "detail": {"bucket": {"name": "uploads"}, "object": {"key": "a b.pdf", "size": 5}}}"#;
    /// let unwrapped = envelope.unwrap(event).unwrap();
    /// assert_eq!(unwrapped.path.as_deref(), Some("INGEST"));
    /// assert_eq!(unwrapped.body, r#"{"bucket":"uploads","key":"a b.pdf","size":5}"#);
    /// ```
    pub fn s3(mut self, routes: S3Envelope) -> Self {
        self.s3 = Some(routes);
        self
    }

    /// Its routes, for descriptions: `{"routes": {detail-type: path}, "s3": …}`.
    pub fn describe(&self) -> serde_json::Value {
        let routes: serde_json::Map<String, serde_json::Value> = self
            .routes
            .iter()
            .map(|(t, p)| (t.clone(), p.as_str().into()))
            .collect();
        serde_json::json!({"routes": routes, "s3": self.s3.as_ref().map(S3Envelope::describe)})
    }

    /// Unwraps one event's JSON.
    ///
    /// # Errors
    ///
    /// When the text is not an EventBridge event (not JSON, no `detail-type` or no `detail`),
    /// or its `detail` is not a JSON object, or it is an S3 event no S3 route takes: the error
    /// says what was expected.
    pub fn unwrap(&self, text: &str) -> Result<EventBridgeUnwrapped, RecordError> {
        let not_one = |why: &str| {
            RecordError::invalid_payload(format!(
                "the body is not an EventBridge event ({why}), and its source declares the EventBridge envelope"
            ))
        };
        let event: Event<'_> = serde_json::from_str(text).map_err(|e| not_one(&e.to_string()))?;
        let detail_type = event
            .detail_type
            .ok_or_else(|| not_one("it has no detail-type"))?;
        let detail = event
            .detail
            .ok_or_else(|| not_one("it has no detail"))?
            .get();
        let s3 = self
            .s3
            .as_ref()
            .filter(|_| event.source.as_deref() == Some("aws.s3"));
        let (body, path) = if let Some(s3) = s3 {
            let (path, kwargs) = s3.unwrap_eventbridge(&detail_type, detail)?;
            (kwargs, Some(path))
        } else if let Some(path) = self.routes.get(&detail_type) {
            (detail.to_owned(), Some(path.as_str().to_owned()))
        } else if let Ok(directed) = serde_json::from_str::<Directed<'_>>(detail) {
            (directed.kwargs.get().to_owned(), Some(directed.path))
        } else if detail.trim_start().starts_with('{') {
            (detail.to_owned(), None)
        } else {
            return Err(RecordError::invalid_payload(format!(
                "the event's detail must be a JSON object (detail-type '{detail_type}')"
            )));
        };
        let meta = EventBridgeMeta::new(event.source, Some(detail_type), event.time);
        Ok(EventBridgeUnwrapped {
            body,
            path,
            id: event.id,
            meta,
        })
    }
}

/// S3 event notifications that a bucket sends to a queue (each message's body is a
/// notification, `{"Records": [{"eventName": "ObjectCreated:Put", "s3": {…}}]}`), routed by
/// event name. The record runs its route's path with the kwargs `bucket`, `key` (URL-decoded:
/// S3 writes a space as `+` and other characters as `%xx`), `size`, `etag`, `version_id` and
/// `sequencer` (those the notification has). The `s3:TestEvent` message S3 sends when a
/// notification is configured succeeds without running.
///
/// # Examples
///
/// ```
/// use lpipe_core::source::{S3Envelope, S3Unwrapped};
/// let envelope = S3Envelope::new().route("ObjectCreated:*", "INGEST");
/// let body = r#"{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
///     "s3": {"bucket": {"name": "uploads"},
///            "object": {"key": "reports/q1+2026%C3%A9.pdf", "size": 42, "eTag": "e", "sequencer": "0A"}}}]}"#;
/// let S3Unwrapped::Object { path, kwargs, .. } = envelope.unwrap(body).unwrap() else { panic!() };
/// assert_eq!(path, "INGEST");
/// let kwargs: serde_json::Value = serde_json::from_str(&kwargs).unwrap();
/// assert_eq!(kwargs["key"], "reports/q1 2026é.pdf");
/// assert_eq!(kwargs["size"], 42);
/// let test = r#"{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads"}"#;
/// assert_eq!(envelope.unwrap(test).unwrap(), S3Unwrapped::TestEvent);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Envelope {
    routes: Vec<(S3Match, PathName)>,
}

/// Which S3 events a route takes: an event name (`ObjectCreated:Put`, or a prefix and `*`;
/// through EventBridge, a `detail-type` such as `Object Created`), and optionally a bucket and
/// a key prefix (of the decoded key).
///
/// # Examples
///
/// ```
/// use lpipe_core::source::{S3Envelope, S3Match, S3Unwrapped};
/// let envelope = S3Envelope::new()
///     .route_matching(S3Match::event("ObjectCreated:*").bucket("uploads").key_prefix("reports/"), "REPORT")
///     .route("ObjectCreated:*", "INGEST");
/// let body = |key: &str| format!(r#"{{"Records": [{{"eventName": "ObjectCreated:Put",
///     "s3": {{"bucket": {{"name": "uploads"}}, "object": {{"key": "{key}"}}}}}}]}}"#);
/// let path = |key: &str| match envelope.unwrap(&body(key)).unwrap() {
///     S3Unwrapped::Object { path, .. } => path,
///     _ => unreachable!(),
/// };
/// assert_eq!(path("reports/q1.pdf"), "REPORT");
/// assert_eq!(path("photos/cat.jpg"), "INGEST");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Match {
    event: String,
    bucket: Option<String>,
    key_prefix: Option<String>,
}

impl S3Match {
    /// Events of this name (or, ending in `*`, of this prefix), in any bucket, any key.
    pub fn event(event_name: impl Into<String>) -> Self {
        S3Match {
            event: event_name.into(),
            bucket: None,
            key_prefix: None,
        }
    }

    /// Only events of this bucket.
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = Some(bucket.into());
        self
    }

    /// Only events of keys that start with this (the key decoded).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    fn matches(&self, event_name: &str, bucket: Option<&str>, key: Option<&str>) -> bool {
        let event = match self.event.strip_suffix('*') {
            Some(prefix) => event_name.starts_with(prefix),
            None => event_name == self.event,
        };
        let bucket = self.bucket.as_deref().is_none_or(|b| bucket == Some(b));
        let key = match &self.key_prefix {
            Some(prefix) => key.is_some_and(|k| k.starts_with(prefix.as_str())),
            None => true,
        };
        event && bucket && key
    }
}

impl std::fmt::Display for S3Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.event)?;
        match (&self.bucket, &self.key_prefix) {
            (Some(b), Some(p)) => write!(f, " in {b}/{p}*"),
            (Some(b), None) => write!(f, " in {b}"),
            (None, Some(p)) => write!(f, " under {p}*"),
            (None, None) => Ok(()),
        }
    }
}

/// What an S3 notification holds (see [`S3Envelope::unwrap`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum S3Unwrapped {
    /// An object's event, for this path, with these kwargs (JSON text).
    Object {
        /// The route's path.
        path: String,
        /// `bucket`, `key`, `size`, `etag`, `version_id`, `sequencer`, as a JSON object.
        kwargs: String,
        /// The event's name (`ObjectCreated:Put`, …).
        event_name: String,
    },
    /// The `s3:TestEvent` S3 sends when a notification is configured.
    TestEvent,
}

#[derive(Deserialize)]
struct S3Notification {
    #[serde(rename = "Records")]
    records: Option<Vec<S3Record>>,
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
struct S3Record {
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Option<S3Bucket>,
    object: Option<S3Object>,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: Option<String>,
}

#[derive(Deserialize)]
struct S3Object {
    key: Option<String>,
    size: Option<u64>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// The `detail` of an S3 event delivered by EventBridge.
#[derive(Deserialize)]
struct S3EventBridgeDetail {
    bucket: Option<S3Bucket>,
    object: Option<S3EventBridgeObject>,
}

#[derive(Deserialize)]
struct S3EventBridgeObject {
    key: Option<String>,
    size: Option<u64>,
    #[serde(alias = "eTag")]
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

impl S3Envelope {
    /// An envelope without routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `path` for events of this name: `ObjectCreated:Put`, or a prefix and `*`
    /// (`ObjectCreated:*`). Routes are tried in the order given; the first that matches wins.
    pub fn route(self, event_name: impl Into<String>, path: impl IntoPathName) -> Self {
        self.route_matching(S3Match::event(event_name), path)
    }

    /// Runs `path` for the events this matches (an event name, and optionally a bucket and a
    /// key prefix; see [`S3Match`]). Routes are tried in the order given.
    pub fn route_matching(mut self, matching: S3Match, path: impl IntoPathName) -> Self {
        self.routes.push((matching, path.into_path_name()));
        self
    }

    /// Its routes, for descriptions: `{"routes": [{"event", "bucket", "key_prefix", "path"}]}`.
    pub fn describe(&self) -> serde_json::Value {
        let routes: Vec<serde_json::Value> = self
            .routes
            .iter()
            .map(|(m, path)| {
                serde_json::json!({"event": m.event, "bucket": m.bucket,
                    "key_prefix": m.key_prefix, "path": path.as_str()})
            })
            .collect();
        serde_json::json!({ "routes": routes })
    }

    /// Unwraps one notification's JSON.
    ///
    /// # Errors
    ///
    /// When the text is not an S3 notification of one record, or no route matches its event
    /// name: the error says which.
    pub fn unwrap(&self, text: &str) -> Result<S3Unwrapped, RecordError> {
        let not_one = |why: &str| {
            RecordError::invalid_payload(format!(
                "the body is not an S3 event notification ({why}), and its source declares the S3 envelope"
            ))
        };
        let n: S3Notification = serde_json::from_str(text).map_err(|e| not_one(&e.to_string()))?;
        if n.event.as_deref() == Some("s3:TestEvent") {
            return Ok(S3Unwrapped::TestEvent);
        }
        match n.records.as_deref() {
            Some([record]) => self.unwrap_one(record, not_one),
            Some(records) => Err(not_one(&format!(
                "{} records, where S3 sends one",
                records.len()
            ))),
            None => Err(not_one("it has no Records")),
        }
    }

    /// Unwraps an S3 event EventBridge delivered (a bucket with EventBridge notifications on):
    /// routed by its `detail-type` (`Object Created`, `Object Deleted`, …; a prefix and `*`
    /// too), with the kwargs `bucket`, `key` (as it is: EventBridge does not URL-encode keys),
    /// `size`, `etag`, `version_id` and `sequencer` from its `detail`.
    ///
    /// Returns the route's path and the kwargs (a JSON object's text). EventBridge delivers no
    /// test event.
    ///
    /// # Errors
    ///
    /// When no route matches the `detail-type`, or the detail is not an S3 event's.
    pub fn unwrap_eventbridge(
        &self,
        detail_type: &str,
        detail: &str,
    ) -> Result<(String, String), RecordError> {
        let detail: S3EventBridgeDetail = serde_json::from_str(detail).map_err(|e| {
            RecordError::invalid_payload(format!(
                "the detail of the S3 event '{detail_type}' is not S3's: {e}"
            ))
        })?;
        let object = detail.object.as_ref();
        self.routed(
            detail_type,
            ObjectFields {
                bucket: detail.bucket.and_then(|b| b.name),
                key: object.and_then(|o| o.key.clone()),
                size: object.and_then(|o| o.size),
                etag: object.and_then(|o| o.etag.clone()),
                version_id: object.and_then(|o| o.version_id.clone()),
                sequencer: object.and_then(|o| o.sequencer.clone()),
            },
        )
    }

    /// An object's event: the path of the first route that takes it and its kwargs, or an
    /// error naming the routes there are.
    fn routed(
        &self,
        event_name: &str,
        fields: ObjectFields,
    ) -> Result<(String, String), RecordError> {
        let (bucket, key) = (fields.bucket.as_deref(), fields.key.as_deref());
        let Some((_, path)) = self
            .routes
            .iter()
            .find(|(m, _)| m.matches(event_name, bucket, key))
        else {
            let routes: Vec<String> = self.routes.iter().map(|(m, _)| m.to_string()).collect();
            return Err(RecordError::invalid_payload(format!(
                "no route for the S3 event {event_name} of s3://{}/{} (routes: {})",
                bucket.unwrap_or("?"),
                key.unwrap_or("?"),
                if routes.is_empty() {
                    "none".to_owned()
                } else {
                    routes.join(", ")
                }
            )));
        };
        Ok((path.as_str().to_owned(), object_kwargs(fields)))
    }

    /// Unwraps one record of an S3 event (an element of its `Records`), as the S3 trigger
    /// delivers them.
    ///
    /// # Errors
    ///
    /// As [`unwrap`](Self::unwrap).
    pub fn unwrap_record(&self, record: &str) -> Result<S3Unwrapped, RecordError> {
        let not_one = |why: &str| {
            RecordError::invalid_payload(format!("the record is not an S3 event record ({why})"))
        };
        let record: S3Record = serde_json::from_str(record).map_err(|e| not_one(&e.to_string()))?;
        self.unwrap_one(&record, not_one)
    }

    fn unwrap_one(
        &self,
        record: &S3Record,
        not_one: impl Fn(&str) -> RecordError,
    ) -> Result<S3Unwrapped, RecordError> {
        let event_name = record
            .event_name
            .as_deref()
            .ok_or_else(|| not_one("no eventName"))?;
        let (bucket, object) = match &record.s3 {
            Some(S3Entity { bucket, object }) => (bucket.as_ref(), object.as_ref()),
            None => return Err(not_one("its record has no s3 object")),
        };
        let key = object.and_then(|o| o.key.as_deref()).map(url_decoded_key);
        let (path, kwargs) = self.routed(
            event_name,
            ObjectFields {
                bucket: bucket.and_then(|b| b.name.clone()),
                key: key.transpose().map_err(|e| not_one(&e))?,
                size: object.and_then(|o| o.size),
                etag: object.and_then(|o| o.etag.clone()),
                version_id: object.and_then(|o| o.version_id.clone()),
                sequencer: object.and_then(|o| o.sequencer.clone()),
            },
        )?;
        Ok(S3Unwrapped::Object {
            path,
            kwargs,
            event_name: event_name.to_owned(),
        })
    }
}

/// What an S3 event says of its object, however it came.
struct ObjectFields {
    bucket: Option<String>,
    key: Option<String>,
    size: Option<u64>,
    etag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// The kwargs of an S3 event, as a JSON object's text: the fields it has.
fn object_kwargs(fields: ObjectFields) -> String {
    let mut kwargs = serde_json::Map::new();
    let mut put = |name: &str, value: Option<serde_json::Value>| {
        if let Some(value) = value {
            kwargs.insert(name.to_owned(), value);
        }
    };
    put("bucket", fields.bucket.map(Into::into));
    put("key", fields.key.map(Into::into));
    put("size", fields.size.map(Into::into));
    put("etag", fields.etag.map(Into::into));
    put("version_id", fields.version_id.map(Into::into));
    put("sequencer", fields.sequencer.map(Into::into));
    serde_json::Value::Object(kwargs).to_string()
}

/// An object key as S3 writes it in notifications: `+` for a space, `%xx` for other bytes.
fn url_decoded_key(key: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(key.len());
    let mut rest = key.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest.get(..2).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                let byte = byte.ok_or_else(|| format!("its key {key:?} has a bad %-escape"))?;
                bytes.push(byte);
                rest = &rest[2..];
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| format!("its key {key:?} is not UTF-8 once decoded"))
}
