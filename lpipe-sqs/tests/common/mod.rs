//! What the tests that deliver to a queue through another service (SNS, S3) share: a queue and
//! its ARN on moto, and what it received as the Lambda event its mapping would deliver.

use aws_sdk_sqs::types::{Message, QueueAttributeName};
use lpipe_core::testing::{unique_name, SqsEvent, SqsRecord};

/// A new queue named from `prefix`: its URL and its ARN (what a subscription or a bucket's
/// notification targets).
pub async fn queue_with_arn(sqs: &aws_sdk_sqs::Client, prefix: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(unique_name(prefix))
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("a queue URL");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("the queue's ARN");
    (url, arn)
}

/// Up to 10 messages the queue holds (waiting a second for them), with their message attributes.
pub async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default()
}

/// Received messages as the Lambda event the queue's event source mapping would deliver: each
/// body, id and string message attribute.
pub fn lambda_event(messages: Vec<Message>) -> String {
    let mut event = SqsEvent::new();
    for m in messages {
        let mut record = SqsRecord::new(m.body().unwrap_or_default()).id(m.message_id().unwrap());
        for (name, value) in m.message_attributes.unwrap_or_default() {
            if let Some(v) = value.string_value {
                record = record.attribute(name, v);
            }
        }
        event = event.record(record);
    }
    event.to_string()
}
