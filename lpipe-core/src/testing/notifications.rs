//! The SNS and S3 event builders: notifications as Lambda's triggers deliver them, and as
//! the services write them into a subscribed queue.

use std::fmt;

use serde::Serialize;
use serde_json::{json, Value};

/// An SNS event as Lambda's SNS trigger delivers it: one notification per invocation (in the
/// `Records` list AWS wraps it in). [`Display`](fmt::Display) writes the event's JSON.
///
/// # Examples
///
/// ```
/// use lpipe_core::testing::{message, SnsEvent};
/// use serde_json::json;
/// let event = SnsEvent::new(message("WELCOME", json!({"name": "Ada"})))
///     .subject("signup")
///     .attribute("tenant", "t1");
/// let text = event.to_string();
/// assert!(text.contains(r#""EventSource":"aws:sns""#));
/// assert!(text.contains(r#"\"path\":\"WELCOME\""#), "the message is a JSON string: {text}");
/// ```
#[derive(Clone, Debug)]
pub struct SnsEvent {
    message: String,
    message_id: String,
    topic: String,
    subject: Option<String>,
    attributes: Vec<(String, String, String)>,
}

impl SnsEvent {
    /// A notification whose `Message` is this value as JSON text (an lpipe message, or bare
    /// kwargs).
    pub fn new(message: impl Serialize) -> Self {
        Self::text(serde_json::to_string(&message).expect("the message serializes"))
    }

    /// A notification whose `Message` is this text as it is (which need not be JSON).
    pub fn text(message: impl Into<String>) -> Self {
        SnsEvent {
            message: message.into(),
            message_id: "95df01b4-ee98-5cb9-9903-4c221d41eb5e".to_owned(),
            topic: "lpipe-test".to_owned(),
            subject: None,
            attributes: Vec::new(),
        }
    }

    /// Its `MessageId`.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = id.into();
        self
    }

    /// The topic's name (its ARN is built in `us-east-1`, account `123456789012`).
    pub fn topic(mut self, name: impl Into<String>) -> Self {
        self.topic = name.into();
        self
    }

    /// Its `Subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// A message attribute of type `String`.
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes
            .push((name.into(), "String".to_owned(), value.into()));
        self
    }

    /// A message attribute of type `Number`.
    pub fn number_attribute(mut self, name: impl Into<String>, value: impl fmt::Display) -> Self {
        self.attributes
            .push((name.into(), "Number".to_owned(), value.to_string()));
        self
    }
}

impl SnsEvent {
    fn topic_arn(&self) -> String {
        format!("arn:aws:sns:us-east-1:123456789012:{}", self.topic)
    }

    /// The notification as SNS writes it into the body of an SQS message when the queue is
    /// subscribed to the topic without raw message delivery: the body an SQS source that
    /// declares the SNS envelope unwraps.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::testing::{message, SnsEvent, SqsEvent, SqsRecord};
    /// use serde_json::json;
    /// let notification = SnsEvent::new(message("WELCOME", json!({"name": "Ada"}))).notification();
    /// let event = SqsEvent::new().record(SqsRecord::new(notification)).to_string();
    /// assert!(event.contains(r#"\"Type\":\"Notification\""#), "{event}");
    /// ```
    pub fn notification(&self) -> String {
        let mut notification = self.notification_json();
        // In an SQS message SNS spells these two with "URL"; in a Lambda event with "Url".
        let object = notification.as_object_mut().expect("an object");
        object.insert("SigningCertURL".into(), object["SigningCertUrl"].clone());
        object.insert("UnsubscribeURL".into(), object["UnsubscribeUrl"].clone());
        object.remove("SigningCertUrl");
        object.remove("UnsubscribeUrl");
        notification.to_string()
    }

    fn notification_json(&self) -> Value {
        let attributes: serde_json::Map<String, Value> = self
            .attributes
            .iter()
            .map(|(name, kind, value)| (name.clone(), json!({"Type": kind, "Value": value})))
            .collect();
        json!({
            "Type": "Notification",
            "MessageId": self.message_id,
            "TopicArn": self.topic_arn(),
            "Subject": self.subject,
            "Message": self.message,
            "Timestamp": "2026-11-28T12:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": attributes,
        })
    }
}

impl fmt::Display for SnsEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event = json!({"Records": [{
            "EventVersion": "1.0",
            "EventSubscriptionArn": format!("{}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55", self.topic_arn()),
            "EventSource": "aws:sns",
            "Sns": self.notification_json(),
        }]});
        write!(f, "{event}")
    }
}

/// An S3 event notification: the Lambda event of a bucket's notification trigger
/// ([`Display`](fmt::Display)), or, with [`S3Event::notification`], the body S3 writes into a
/// notified queue's message.
///
/// # Examples
///
/// ```
/// use lpipe_core::testing::{S3Event, SqsEvent, SqsRecord};
/// let created = S3Event::new("ObjectCreated:Put", "uploads", "q1 report.pdf").size(42);
/// assert!(created.to_string().contains(r#""key":"q1+report.pdf""#), "S3 URL-encodes keys");
/// let in_queue = SqsEvent::new().record(SqsRecord::new(created.notification()));
/// # let _ = in_queue;
/// ```
#[derive(Clone, Debug)]
pub struct S3Event {
    event_name: String,
    bucket: String,
    key: String,
    size: u64,
    sequencer: String,
}

impl S3Event {
    /// An event of this name (`ObjectCreated:Put`, …) for this object (the key as it is: it is
    /// URL-encoded as S3 writes it).
    pub fn new(
        event_name: impl Into<String>,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        S3Event {
            event_name: event_name.into(),
            bucket: bucket.into(),
            key: key.into(),
            size: 0,
            sequencer: "0055AED6DCD90281E5".to_owned(),
        }
    }

    /// The object's size.
    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }

    /// The event's `sequencer`.
    pub fn sequencer(mut self, sequencer: impl Into<String>) -> Self {
        self.sequencer = sequencer.into();
        self
    }

    /// The notification S3 writes into the body of a notified queue's message.
    pub fn notification(&self) -> String {
        self.to_string()
    }

    fn record(&self) -> Value {
        json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2026-11-28T12:00:00.000Z",
            "eventName": self.event_name,
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "EXAMPLE"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "lpipe-test",
                "bucket": {
                    "name": self.bucket,
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": format!("arn:aws:s3:::{}", self.bucket),
                },
                "object": {
                    "key": url_encoded_key(&self.key),
                    "size": self.size,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                    "sequencer": self.sequencer,
                },
            },
        })
    }
}

impl fmt::Display for S3Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", json!({"Records": [self.record()]}))
    }
}

/// A key as S3 writes it in notifications: a space as `+`, other bytes than letters, digits
/// and `-_.~/` as `%XX`.
fn url_encoded_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b' ' => "+".to_owned(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
