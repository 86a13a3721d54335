//! The SNS event builder: a notification as Lambda's SNS trigger delivers it.

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

impl fmt::Display for SnsEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topic_arn = format!("arn:aws:sns:us-east-1:123456789012:{}", self.topic);
        let attributes: serde_json::Map<String, Value> = self
            .attributes
            .iter()
            .map(|(name, kind, value)| (name.clone(), json!({"Type": kind, "Value": value})))
            .collect();
        let event = json!({"Records": [{
            "EventVersion": "1.0",
            "EventSubscriptionArn": format!("{topic_arn}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"),
            "EventSource": "aws:sns",
            "Sns": {
                "Type": "Notification",
                "MessageId": self.message_id,
                "TopicArn": topic_arn,
                "Subject": self.subject,
                "Message": self.message,
                "Timestamp": "2026-11-28T12:00:00.000Z",
                "SignatureVersion": "1",
                "Signature": "EXAMPLE",
                "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
                "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                "MessageAttributes": attributes,
            }
        }]});
        write!(f, "{event}")
    }
}
