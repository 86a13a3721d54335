//! `lpipe up`'s stand-in for the services that invoke a Lambda themselves: an SNS topic, a
//! bucket's notifications, an EventBridge rule. Moto does not invoke a local binary, so each
//! such trigger delivers to a queue of its own (a subscription, a bucket notification, a rule's
//! target), and a bridge receives from it and invokes the binary with the event the service
//! would have sent (`my-lambda --send EVENT_FILE`). A failed invocation is tried again, three
//! tries in all, as Lambda retries an asynchronous invocation twice; then the event is dropped,
//! saying so. A development tool, like the stream poller. (moto's bucket notifications carry no
//! `sequencer`; the bridge gives them one, as S3's do.)

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{json, Value};

/// What invokes the Lambda.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invoker {
    /// An SNS topic: the queue receives its notifications (not raw).
    Sns,
    /// A bucket's notifications.
    S3,
    /// An EventBridge rule.
    EventBridge,
}

/// One bridge: a Lambda's binary invoked with what arrives on a queue.
pub struct Bridge {
    /// The Lambda.
    pub lambda: String,
    /// Its binary.
    pub exe: PathBuf,
    /// Environment for the binary.
    pub env: Vec<(String, String)>,
    /// The queue the service delivers to.
    pub queue_url: String,
    /// What the service is.
    pub invoker: Invoker,
}

/// Tries of an event, as Lambda's asynchronous invocation makes (one, and two retries).
const TRIES: u32 = 3;

/// Runs a bridge until its task is dropped.
pub async fn run(bridge: Bridge, sqs: aws_sdk_sqs::Client) {
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&bridge.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                let e = aws_sdk_sqs::error::DisplayErrorContext(e);
                eprintln!(
                    "[{}] receiving from {}: {e}",
                    bridge.lambda, bridge.queue_url
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for m in messages {
            let tries: u32 = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            if deliver(&bridge, m.body().unwrap_or_default(), tries).await {
                let _ = sqs
                    .delete_message()
                    .queue_url(&bridge.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await;
            }
        }
    }
}

/// Invokes the binary with one delivery; whether the delivery is done with (invoked, given
/// up on, or not an event at all).
async fn deliver(bridge: &Bridge, body: &str, tries: u32) -> bool {
    let Some(event) = event(bridge.invoker, body) else {
        return true;
    };
    let lambda = (
        bridge.lambda.as_str(),
        bridge.exe.as_path(),
        bridge.env.as_slice(),
    );
    match crate::stream::invoke_binary(lambda, "event", &event).await {
        Ok(_) => true,
        Err(e) if tries >= TRIES => {
            eprintln!(
                "[{}] dropping an event after {tries} tries, as Lambda drops an asynchronous invocation (give the function an on-failure destination in AWS): {e}",
                bridge.lambda
            );
            true
        }
        Err(e) => {
            eprintln!(
                "[{}] try {tries} of {TRIES} failed, trying again: {e}",
                bridge.lambda
            );
            false
        }
    }
}

/// The Lambda event a service would send for what it delivered to the queue: `None` for what
/// is not an event (S3's test message when a notification is set up, or a body that is not
/// JSON).
pub fn event(invoker: Invoker, body: &str) -> Option<Value> {
    let body: Value = serde_json::from_str(body).ok()?;
    match invoker {
        Invoker::Sns => Some(sns_event(&body)),
        Invoker::S3 if body["Event"] == "s3:TestEvent" => None,
        Invoker::S3 => Some(with_sequencers(body)),
        Invoker::EventBridge => Some(body),
    }
}

/// S3 gives each object event a `sequencer` (hexadecimal, growing for a key); moto's
/// notifications have none, so records without one get one here, from the clock, as S3 would
/// have sent.
fn with_sequencers(mut body: Value) -> Value {
    for record in body["Records"].as_array_mut().into_iter().flatten() {
        let object = &mut record["s3"]["object"];
        if object.is_object() && object.get("sequencer").is_none() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            object["sequencer"] = json!(format!("{nanos:020X}"));
        }
    }
    body
}

/// An SNS notification, as delivered to a queue, as the event SNS invokes a Lambda with.
fn sns_event(n: &Value) -> Value {
    let topic = n["TopicArn"].as_str().unwrap_or_default();
    let attributes = match &n["MessageAttributes"] {
        Value::Null => json!({}),
        a => a.clone(),
    };
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic}:lpipe-up"),
        "Sns": {
            "Type": n["Type"],
            "MessageId": n["MessageId"],
            "TopicArn": topic,
            "Subject": n["Subject"],
            "Message": n["Message"],
            "Timestamp": n["Timestamp"],
            "SignatureVersion": n["SignatureVersion"],
            "Signature": n["Signature"],
            "SigningCertUrl": n["SigningCertURL"],
            "UnsubscribeUrl": n["UnsubscribeURL"],
            "MessageAttributes": attributes,
        },
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_becomes_the_event_sns_invokes_with() {
        let body = json!({
            "Type": "Notification", "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
            "Message": "{\"path\": \"RECORD_ORDER\"}", "Timestamp": "2026-12-06T00:00:00.000Z",
            "SigningCertURL": "https://cert", "UnsubscribeURL": "https://unsubscribe",
            "MessageAttributes": {"lpipe-id": {"Type": "String", "Value": "x"}},
        });
        let event = event(Invoker::Sns, &body.to_string()).unwrap();
        let record = &event["Records"][0];
        assert_eq!(record["EventSource"], "aws:sns");
        assert_eq!(record["Sns"]["MessageId"], "m-1");
        assert_eq!(record["Sns"]["Message"], "{\"path\": \"RECORD_ORDER\"}");
        assert_eq!(record["Sns"]["SigningCertUrl"], "https://cert");
        assert_eq!(record["Sns"]["MessageAttributes"]["lpipe-id"]["Value"], "x");
    }

    #[test]
    fn s3_s_test_message_is_no_event_and_other_bodies_are_the_event() {
        let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"});
        assert_eq!(event(Invoker::S3, &test.to_string()), None);
        let records = json!({"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": "k", "sequencer": "0A"}}}]});
        assert_eq!(event(Invoker::S3, &records.to_string()), Some(records));
        // moto's notifications have no sequencer: S3's always do.
        let moto = json!({"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": "k"}}}]});
        let given = event(Invoker::S3, &moto.to_string()).unwrap();
        let sequencer = given["Records"][0]["s3"]["object"]["sequencer"]
            .as_str()
            .unwrap();
        assert!(
            sequencer.len() == 20 && sequencer.chars().all(|c| c.is_ascii_hexdigit()),
            "{sequencer}"
        );
        let rule = json!({"detail-type": "Signup", "detail": {}});
        assert_eq!(event(Invoker::EventBridge, &rule.to_string()), Some(rule));
        assert_eq!(event(Invoker::EventBridge, "not json"), None);
    }
}
