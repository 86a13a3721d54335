//! The SNS sink against moto: a pipeline publishes to a topic, moto delivers to the queues
//! subscribed to it (raw message delivery and not), and an lpipe consumer of each queue runs
//! every message once. Needs the moto_server the test command starts.

use std::sync::{Arc, Mutex};

#[path = "../../lpipe-sqs/tests/common/mod.rs"]
mod common;

use lpipe_core::source::RawSource;
use lpipe_core::testing::{
    assert_contains, lambda_context, message, moto_endpoint, raw_event, unique_name,
};
use lpipe_core::{registry::Registry, Action, BoxError, Pipeline, Queue, QueueKind};
use lpipe_sns::SnsSink;
use lpipe_sqs::{SqsEnvelope, SqsSource};
use serde::Deserialize;
use serde_json::{json, Value};

async fn clients() -> (aws_sdk_sns::Client, aws_sdk_sqs::Client) {
    // The standard AWS configuration: the test command points AWS_ENDPOINT_URL at moto.
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    (
        aws_sdk_sns::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
    )
}

async fn topic(sns: &aws_sdk_sns::Client, name: &str, fifo: bool) -> String {
    let mut create = sns.create_topic().name(name);
    if fifo {
        create = create.attributes("FifoTopic", "true");
    }
    create
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn
        .expect("a topic ARN")
}

async fn subscribe(sns: &aws_sdk_sns::Client, topic: &str, queue_arn: &str, raw: bool) {
    sns.subscribe()
        .topic_arn(topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", raw.to_string())
        .send()
        .await
        .expect("Subscribe");
}

/// A producer: `PUBLISH` forwards its kwargs to the topic, for the consumers' `GREET`.
fn producer(sns: &aws_sdk_sns::Client, topic: Queue) -> Pipeline {
    Pipeline::builder()
        .path(
            "PUBLISH",
            [Action::new()
                .include_all_params()
                .queue(topic.path("GREET"))],
        )
        .registry(Registry::empty())
        .event_source(RawSource)
        .sink(QueueKind::SNS, SnsSink::with_client(sns.clone()))
        .build()
        .unwrap()
}

#[derive(Deserialize)]
struct Greet {
    name: String,
}

/// A consumer of a subscribed queue: the names it greeted, in order.
fn consumer(source: SqsSource, seen: &Arc<Mutex<Vec<String>>>) -> Pipeline {
    let seen = seen.clone();
    let greet = move |g: Greet| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(g.name);
            Ok::<_, BoxError>(())
        }
    };
    Pipeline::builder()
        .path("GREET", [Action::new().function(greet)])
        .registry(Registry::empty())
        .event_source(source)
        .build()
        .unwrap()
}

fn names(names: &[&str]) -> String {
    let messages: Vec<Value> = names
        .iter()
        .map(|n| message("PUBLISH", json!({"name": n})))
        .collect();
    raw_event(&messages)
}

#[tokio::test]
#[ignore = "needs moto_server: run ./scripts/test, which starts one"]
async fn published_messages_reach_every_subscribed_queue_and_run_once() {
    moto_endpoint("published_messages_reach_every_subscribed_queue_and_run_once");
    let (sns, sqs) = clients().await;
    let topic_arn = topic(&sns, &unique_name("greetings"), false).await;
    let (raw_url, raw_arn) = common::queue_with_arn(&sqs, "greet-raw").await;
    let (wrapped_url, wrapped_arn) = common::queue_with_arn(&sqs, "greet-wrapped").await;
    subscribe(&sns, &topic_arn, &raw_arn, true).await;
    subscribe(&sns, &topic_arn, &wrapped_arn, false).await;

    let sink = SnsSink::with_client(sns.clone());
    let producer = Pipeline::builder()
        .path(
            "PUBLISH",
            [Action::new()
                .include_all_params()
                .queue(Queue::sns(&topic_arn).path("GREET"))],
        )
        .registry(Registry::empty())
        .event_source(RawSource)
        .sink(QueueKind::SNS, sink.clone())
        .build()
        .unwrap();
    let all: Vec<String> = (0..12).map(|i| format!("n{i}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let response = producer
        .handle(&names(&refs), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 12, "{response}");
    // Twelve messages: two PublishBatch calls of at most ten.
    assert_eq!(sink.batch_calls(), 2);

    for (url, source) in [
        (&raw_url, SqsSource::new()),
        (&wrapped_url, SqsSource::new().envelope(SqsEnvelope::Sns)),
    ] {
        let mut received = Vec::new();
        for _ in 0..5 {
            received.extend(common::receive(&sqs, url).await);
            if received.len() >= 12 {
                break;
            }
        }
        assert_eq!(received.len(), 12, "{url}");
        if url == &raw_url {
            // With raw delivery the message's identity is an SQS message attribute.
            let attributes = received[0].message_attributes.clone().unwrap_or_default();
            assert!(
                attributes.contains_key(lpipe_core::sink::MESSAGE_ID_ATTRIBUTE),
                "{attributes:?}"
            );
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let event = common::lambda_event(received);
        let response = consumer(source, &seen)
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 12, "{url}: {response}");
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        let mut expected = all.clone();
        expected.sort();
        assert_eq!(seen, expected, "{url}");
    }
}

#[tokio::test]
#[ignore = "needs moto_server: run ./scripts/test, which starts one"]
async fn a_topic_is_found_by_name_and_a_missing_one_fails_its_records() {
    moto_endpoint("a_topic_is_found_by_name_and_a_missing_one_fails_its_records");
    let (sns, sqs) = clients().await;
    let name = unique_name("by-name");
    let topic_arn = topic(&sns, &name, false).await;
    let (url, arn) = common::queue_with_arn(&sqs, "by-name").await;
    subscribe(&sns, &topic_arn, &arn, true).await;

    let response = producer(&sns, Queue::sns(&name))
        .handle(&names(&["ann"]), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    let received = common::receive(&sqs, &url).await;
    assert_eq!(received.len(), 1);
    assert_contains(received[0].body().unwrap(), r#""name":"ann""#);

    let missing = unique_name("no-such-topic");
    let err = producer(&sns, Queue::sns(&missing))
        .handle(&names(&["bob"]), lambda_context(0))
        .await
        .unwrap_err();
    // A direct invocation fails as a whole when a record fails (kept for retry).
    assert_contains(
        &err.error_message,
        format!("no SNS topic named '{missing}' in this account and region"),
    );
}

#[tokio::test]
#[ignore = "needs moto_server: run ./scripts/test, which starts one"]
async fn a_fifo_topic_keeps_each_group_in_order() {
    moto_endpoint("a_fifo_topic_keeps_each_group_in_order");
    let (sns, sqs) = clients().await;
    let topic_arn = topic(&sns, &format!("{}.fifo", unique_name("ordered")), true).await;
    let queue = format!("{}.fifo", unique_name("ordered"));
    let url = sqs
        .create_queue()
        .queue_name(&queue)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap();
    subscribe(&sns, &topic_arn, &arn, true).await;

    let producer = producer(&sns, Queue::sns(&topic_arn).message_group_id_from("group"));
    let messages: Vec<Value> = [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)]
        .iter()
        .map(|(g, n)| message("PUBLISH", json!({"name": format!("{g}{n}"), "group": g})))
        .collect();
    let response = producer
        .handle(&raw_event(&messages), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 5, "{response}");
    // Sent again (a retried invocation): deduplicated by the topic.
    producer
        .handle(&raw_event(&messages), lambda_context(0))
        .await
        .unwrap();

    let mut received = Vec::new();
    for _ in 0..5 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
            )
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        for m in &got {
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        received.extend(got);
    }
    let by_group = |group: &str| -> Vec<String> {
        received
            .iter()
            .filter(|m| {
                m.attributes()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                    })
                    .map(String::as_str)
                    == Some(group)
            })
            .map(|m| {
                let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                body["kwargs"]["name"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(by_group("a"), ["a1", "a2", "a3"]);
    assert_eq!(by_group("b"), ["b1", "b2"]);
    assert_eq!(received.len(), 5, "each message once");
}
