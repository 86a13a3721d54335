//! Envelopes: a message that another service wrapped in a notification of its own, unwrapped by
//! the source that declares it (never guessed from a body's shape).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SnsMeta;
use crate::error::RecordError;

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
