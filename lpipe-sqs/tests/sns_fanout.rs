//! A queue subscribed to an SNS topic, through moto's real SNS -> SQS delivery: with raw message
//! delivery and without it (the SNS envelope declared on the source). Needs the moto_server the
//! test command starts.

use std::sync::{Arc, Mutex};

mod common;

use lpipe_core::testing::{lambda_context, moto_endpoint, unique_name};
use lpipe_core::{registry::Registry, Action, BoxError, Context, Pipeline};
use lpipe_sqs::{SqsEnvelope, SqsSource};
use serde_json::{json, Value};

async fn clients() -> (aws_sdk_sns::Client, aws_sdk_sqs::Client) {
    // The standard AWS configuration: the test command points AWS_ENDPOINT_URL at moto.
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    (
        aws_sdk_sns::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
    )
}

/// A topic, a queue subscribed to it (raw delivery or not), and the queue's URL.
async fn subscribed_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    raw: bool,
) -> (String, String) {
    let topic = sns
        .create_topic()
        .name(unique_name("fanout"))
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn
        .expect("a topic ARN");
    let (url, arn) = common::queue_with_arn(sqs, "fanout-consumer").await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", raw.to_string())
        .send()
        .await
        .expect("Subscribe");
    (topic, url)
}

/// Publishes one message with a `tenant` attribute.
async fn publish(sns: &aws_sdk_sns::Client, topic: &str, message: &Value) {
    let tenant = aws_sdk_sns::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value("t1")
        .build()
        .unwrap();
    sns.publish()
        .topic_arn(topic)
        .subject("signup")
        .message(message.to_string())
        .message_attributes("tenant", tenant)
        .send()
        .await
        .expect("Publish");
}

/// What each run saw: its kwargs, the SNS topic its context names, and the `tenant` attribute
/// from the SNS metadata or else from the SQS message's attributes.
type Seen = Arc<Mutex<Vec<(Value, Option<String>, Option<String>)>>>;

fn pipeline(seen: &Seen, source: SqsSource) -> Pipeline {
    let seen = seen.clone();
    let take = move |kwargs: Value, ctx: Context| {
        let seen = seen.clone();
        async move {
            let record = ctx.record();
            let sns = record.sns();
            let tenant = sns
                .and_then(|m| m.message_attribute("tenant"))
                .or_else(|| record.sqs().and_then(|m| m.message_attribute("tenant")));
            seen.lock().unwrap().push((
                kwargs,
                sns.and_then(|m| m.topic_arn.clone()),
                tenant.map(str::to_owned),
            ));
            Ok::<_, BoxError>(())
        }
    };
    Pipeline::builder()
        .path("TAKE", [Action::new().function(take)])
        .default_path("TAKE")
        .registry(Registry::empty())
        .event_source(source)
        .only_source("sqs")
        .build()
        .unwrap()
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn a_notification_through_a_subscription_without_raw_delivery_is_unwrapped() {
    moto_endpoint("a_notification_through_a_subscription_without_raw_delivery_is_unwrapped");
    let (sns, sqs) = clients().await;
    let (topic, url) = subscribed_queue(&sns, &sqs, false).await;
    publish(&sns, &topic, &json!({"name": "Ada"})).await;
    let event = common::lambda_event(common::receive(&sqs, &url).await);
    let seen = Seen::default();
    let envelope = SqsSource::new().envelope(SqsEnvelope::Sns);
    let response = pipeline(&seen, envelope)
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}: {event}");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [(json!({"name": "Ada"}), Some(topic), Some("t1".to_owned()))]
    );
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn a_message_through_a_subscription_with_raw_delivery_needs_no_envelope() {
    moto_endpoint("a_message_through_a_subscription_with_raw_delivery_needs_no_envelope");
    let (sns, sqs) = clients().await;
    let (topic, url) = subscribed_queue(&sns, &sqs, true).await;
    publish(&sns, &topic, &json!({"name": "Ada"})).await;
    let event = common::lambda_event(common::receive(&sqs, &url).await);
    let seen = Seen::default();
    let response = pipeline(&seen, SqsSource::new())
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}: {event}");
    // The body is the message as published; the topic's attributes are the SQS message's.
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [(json!({"name": "Ada"}), None, Some("t1".to_owned()))]
    );
    // The same message declared as an envelope is not a notification: dropped, saying so.
    publish(&sns, &topic, &json!({"name": "Bob"})).await;
    let event = common::lambda_event(common::receive(&sqs, &url).await);
    let envelope = SqsSource::new().envelope(SqsEnvelope::Sns);
    let response = pipeline(&Seen::default(), envelope)
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["dropped"], 1, "{response}");
}
