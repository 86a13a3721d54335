//! The `fanout` example: a publisher and a consumer joined by an SNS topic. Its sample events
//! without a server; then end to end on moto: the publisher publishes through the real topic,
//! moto delivers to two subscribed queues (raw message delivery and not), and the consumer of
//! each runs every order once, a redelivery included.

use lpipe::sink::MemorySink;
use lpipe::testing::{lambda_context, moto_endpoint, unique_name, SqsEvent, SqsRecord};
use lpipe_examples::fanout;
use serde_json::{json, Value};

#[path = "../../lpipe-sqs/tests/common/mod.rs"]
mod common;

fn event(name: &str) -> String {
    std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn the_sample_events_run_as_documented() {
    let sink = MemorySink::new();
    let publisher = fanout::publisher()
        .record_outbound(sink.clone())
        .build()
        .unwrap();
    let response = publisher
        .handle(&event("fanout-publisher.json"), lambda_context(0))
        .await
        .unwrap();
    // o-1 is published; o-2 costs nothing (dropped).
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 1, "dropped": 1, "failed": 0})
    );
    let sent = sink.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].queue.to_string(),
        "sns:lpipe-fanout-orders (path RECORD_ORDER)"
    );

    let consumer = fanout::consumer_of(false).build().unwrap();
    let response = consumer
        .handle(&event("fanout-consumer.json"), lambda_context(0))
        .await
        .unwrap();
    // Three deliveries, two orders: the notification SNS delivered twice runs once.
    assert_eq!(
        response["stats"],
        json!({"received": 3, "successes": 3, "dropped": 0, "failed": 0, "duplicates": 1})
    );

    // With raw message delivery: the messages as published, their id an SQS attribute.
    let consumer = fanout::consumer_of(true).build().unwrap();
    let response = consumer
        .handle(&event("fanout-consumer-raw.json"), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 3, "successes": 3, "dropped": 0, "failed": 0, "duplicates": 1})
    );
}

#[tokio::test]
async fn a_receipt_uploaded_to_the_bucket_is_filed_once() {
    let consumer = fanout::consumer_of(false).build().unwrap();
    let event = event("fanout-consumer-s3.json");
    let response = consumer.handle(&event, lambda_context(0)).await.unwrap();
    // S3 invokes the Lambda asynchronously: the answer is the outputs.
    assert_eq!(
        response,
        json!({"event": "Finished.",
               "output": ["filed s3://lpipe-fanout-receipts/receipts/o-1 March.pdf (2048 bytes)"],
               "stats": {"received": 1, "successes": 1, "dropped": 0, "failed": 0}})
    );
    // S3 delivered the notification again: the receipt is not filed twice.
    let response = consumer.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["duplicates"], 1, "{response}");
    // An object outside receipts/ has no route: dropped, saying so.
    let elsewhere = event.replace("receipts/o-1", "photos/cat");
    let response = consumer
        .handle(&elsewhere, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["dropped"], 1, "{response}");
}

async fn clients() -> (aws_sdk_sns::Client, aws_sdk_sqs::Client) {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    (
        aws_sdk_sns::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
    )
}

/// A queue subscribed to the topic: its URL.
async fn subscribed_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic: &str,
    raw: bool,
) -> String {
    let (url, arn) = common::queue_with_arn(sqs, "fanout-consumer").await;
    sns.subscribe()
        .topic_arn(topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", raw.to_string())
        .send()
        .await
        .unwrap();
    url
}

/// What the queue holds (`expected` messages), as the Lambda event its mapping would deliver.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, expected: usize) -> String {
    let mut messages = Vec::new();
    for _ in 0..10 {
        messages.extend(common::receive(sqs, url).await);
        if messages.len() >= expected {
            break;
        }
    }
    assert_eq!(messages.len(), expected, "messages in {url}");
    common::lambda_event(messages)
}

#[tokio::test]
#[ignore = "needs moto_server: run ./scripts/test, which starts one"]
async fn orders_fan_out_through_the_topic_and_each_runs_once() {
    moto_endpoint("orders_fan_out_through_the_topic_and_each_runs_once");
    let (sns, sqs) = clients().await;
    let topic = sns
        .create_topic()
        .name(unique_name("lpipe-fanout-orders"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let raw_url = subscribed_queue(&sns, &sqs, &topic, true).await;
    let wrapped_url = subscribed_queue(&sns, &sqs, &topic, false).await;

    let publisher = fanout::publisher_to(lpipe::Queue::sns(&topic))
        .build()
        .unwrap();
    let orders: Vec<Value> = (1..=5)
        .map(|i| json!({"path": "PUBLISH_ORDER", "kwargs": {"order_id": format!("o-{i}"), "total_cents": 100 * i}}))
        .collect();
    let mut intake = SqsEvent::new();
    for (i, order) in orders.iter().enumerate() {
        intake = intake.record(SqsRecord::new(order).id(format!("intake-{i}")));
    }
    let intake = intake.to_string();
    let response = publisher.handle(&intake, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["successes"], 5, "{response}");
    // The publisher's batch is retried (say its invocation timed out after publishing): the
    // same messages, with the same lpipe message ids, are published again.
    publisher.handle(&intake, lambda_context(0)).await.unwrap();

    for (url, raw) in [(&raw_url, true), (&wrapped_url, false)] {
        let event = drain(&sqs, url, 10).await;
        let consumer = fanout::consumer_of(raw).build().unwrap();
        let response = consumer.handle(&event, lambda_context(0)).await.unwrap();
        assert_eq!(
            response["stats"],
            json!({"received": 10, "successes": 10, "dropped": 0, "failed": 0, "duplicates": 5}),
            "raw delivery {raw}"
        );
    }
}
