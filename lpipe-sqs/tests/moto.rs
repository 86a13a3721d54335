//! The SQS source and sink against a real SQS API: the moto_server started by the test command
//! (`./scripts/test`, which runs these tests, ignored by default because each needs the server,
//! with `--include-ignored`). Run without a server, they fail, naming what they need.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use lpipe_aws::testing::CountCalls;
use lpipe_core::testing::{
    assert_contains, lambda_context, message, moto_endpoint, raw_event, unique_name,
};
use lpipe_core::{
    registry::Registry, sink::RetryPolicy, Action, BoxError, FailButContinue, FailCatastrophically,
    NoParams, Pipeline, Queue, QueueKind,
};
use lpipe_sqs::{SqsSink, SqsSource};
use serde::Deserialize;
use serde_json::{json, Value};

async fn client() -> aws_sdk_sqs::Client {
    // The standard AWS configuration: the test command points AWS_ENDPOINT_URL at moto.
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_sqs::Client::new(&config)
}

/// A client as [`client`]'s whose calls `calls` counts.
async fn counted_client(calls: &CountCalls) -> aws_sdk_sqs::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .interceptor(calls.clone())
            .build(),
    )
}

async fn create_queue(client: &aws_sdk_sqs::Client, name: &str, fifo: bool) -> String {
    let mut req = client.create_queue().queue_name(name);
    if fifo {
        req = req.attributes(QueueAttributeName::FifoQueue, "true");
    }
    req.send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("a queue URL")
}

/// Every message in the queue (deleting them), in the order received.
async fn drain(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return all;
        }
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        client
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        all.extend(messages);
    }
}

fn forwarding_pipeline(sink: &SqsSink, target: &str) -> Pipeline {
    Pipeline::builder()
        .path(
            "FWD",
            [Action::new()
                .include_all_params()
                .queue(Queue::sqs(target).path("NEXT"))],
        )
        .registry(Registry::from_inventory())
        .sink(QueueKind::SQS, sink.clone())
        .build()
        .unwrap()
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn forwarding_n_messages_arrives_as_exactly_n_in_batches_of_ten() {
    moto_endpoint("forwarding_n_messages_arrives_as_exactly_n_in_batches_of_ten");
    let client = client().await;
    for n in [1usize, 10, 11, 1000] {
        let name = unique_name("fwd");
        let url = create_queue(&client, &name, false).await;
        let calls = CountCalls::default();
        let counted = counted_client(&calls).await;
        let sink = SqsSink::with_client(counted);
        let pipeline = forwarding_pipeline(&sink, &name);
        // Every third message is equal to the one before it: equal bodies must both arrive.
        let messages: Vec<Value> = (0..n)
            .map(|i| message("FWD", json!({"i": i - i % 3 / 2})))
            .collect();
        let response = pipeline
            .handle(&raw_event(&messages), lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], n, "n={n}: {response}");
        assert_eq!(
            sink.batch_calls(),
            n.div_ceil(10),
            "n={n}: SendMessageBatch calls"
        );
        assert_eq!(calls.get("SendMessageBatch"), n.div_ceil(10), "n={n}");
        // Up to SQS_CALLS_IN_FLIGHT calls at once, and one lookup of the queue's URL for all.
        assert_eq!(
            calls.get("GetQueueUrl"),
            1,
            "n={n}: the URL is looked up once"
        );
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        for m in &messages {
            let body = json!({"path": "NEXT", "kwargs": m["kwargs"]}).to_string();
            *expected.entry(body).or_default() += 1;
        }
        let mut received: BTreeMap<String, usize> = BTreeMap::new();
        for m in drain(&client, &url).await {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            *received.entry(body.to_string()).or_default() += 1;
        }
        assert_eq!(
            received, expected,
            "n={n}: exactly the sent messages arrive, duplicates included"
        );
    }
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn queues_are_targeted_by_name_url_or_arn() {
    moto_endpoint("queues_are_targeted_by_name_url_or_arn");
    let client = client().await;
    let name = unique_name("target");
    let url = create_queue(&client, &name, false).await;
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    for target in [name.as_str(), url.as_str(), arn.as_str()] {
        let sink = SqsSink::with_client(client.clone());
        let pipeline = forwarding_pipeline(&sink, target);
        let response = pipeline
            .handle(
                &raw_event(&[message("FWD", json!({"t": target}))]),
                lambda_context(0),
            )
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 1, "{target}: {response}");
        let got = drain(&client, &url).await;
        assert_eq!(got.len(), 1, "{target}");
        assert!(got[0].body().unwrap().contains(target), "{target}");
    }
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn fifo_forwarding_keeps_group_order() {
    moto_endpoint("fifo_forwarding_keeps_group_order");
    let client = client().await;
    let name = format!("{}.fifo", unique_name("order"));
    let url = create_queue(&client, &name, true).await;
    let sink = SqsSink::with_client(client.clone());
    let pipeline = Pipeline::builder()
        .path(
            "FWD",
            [Action::new()
                .include_all_params()
                .queue(Queue::sqs(&name).message_group_id_from("user"))],
        )
        .registry(Registry::empty())
        .event_source(lpipe_core::source::RawSource)
        .sink(QueueKind::SQS, sink.clone())
        .build()
        .unwrap();
    let messages: Vec<Value> = (0..45)
        .map(|i| message("FWD", json!({"user": format!("u{}", i % 3), "seq": i})))
        .collect();
    let response = pipeline
        .handle(&raw_event(&messages), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 45, "{response}");
    let received = drain(&client, &url).await;
    assert_eq!(received.len(), 45);
    let mut per_group: HashMap<String, Vec<i64>> = HashMap::new();
    for m in &received {
        let group = m.attributes().unwrap()
            [&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId]
            .clone();
        let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert_eq!(
            body["user"],
            group.as_str(),
            "the group comes from the message_group_id_from kwarg"
        );
        per_group
            .entry(group)
            .or_default()
            .push(body["seq"].as_i64().unwrap());
    }
    assert_eq!(per_group.len(), 3);
    for (group, seqs) in per_group {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(
            seqs, sorted,
            "group {group} arrives in the order it was sent"
        );
        assert_eq!(seqs.len(), 15);
    }
}

async fn ok(_: NoParams) -> Result<(), BoxError> {
    Ok(())
}

async fn drop_it(_: NoParams) -> Result<(), FailButContinue> {
    Err(FailButContinue::new("dropped on purpose"))
}

async fn keep_it(_: NoParams) -> Result<(), FailCatastrophically> {
    Err(FailCatastrophically::new("kept on purpose"))
}

/// An SQS Lambda event made of messages received from a real queue.
/// Sends these messages to the queue and receives them (and nothing else: the queue is the
/// test's), invisible for this many seconds.
async fn send_and_receive(
    client: &aws_sdk_sqs::Client,
    url: &str,
    messages: &[Value],
    visibility_s: i32,
) -> Vec<aws_sdk_sqs::types::Message> {
    for chunk in messages.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, message)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(message.to_string())
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(
            out.failed.is_empty(),
            "every message sent: {:?}",
            out.failed
        );
    }
    let mut received = Vec::new();
    while received.len() < messages.len() {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility_s)
            .send()
            .await
            .unwrap();
        received.extend(out.messages.unwrap_or_default());
    }
    received
}

fn lambda_event(messages: &[aws_sdk_sqs::types::Message], arn: &str) -> String {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "x",
                    "ApproximateFirstReceiveTimestamp": "1"},
                "messageAttributes": {}, "md5OfBody": m.md5_of_body(), "eventSource": "aws:sqs",
                "eventSourceARN": arn, "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({"Records": records}).to_string()
}

/// A classic-mode pipeline through this client whose paths OK, DROP and KEEP succeed, drop
/// and fail their records.
fn classic_pipeline(client: aws_sdk_sqs::Client) -> Pipeline {
    Pipeline::builder()
        .path("OK", [Action::new().function(ok)])
        .path("DROP", [Action::new().function(drop_it)])
        .path("KEEP", [Action::new().function(keep_it)])
        .registry(Registry::empty())
        .event_source(SqsSource::classic().with_client(client))
        .build()
        .unwrap()
}

/// A new standard queue of the test's (its name starts with `prefix`): its URL, and the ARN
/// its events name.
async fn source_queue(client: &aws_sdk_sqs::Client, prefix: &str) -> (String, String) {
    let name = unique_name(prefix);
    let url = create_queue(client, &name, false).await;
    (url, format!("arn:aws:sqs:us-east-1:123456789012:{name}"))
}

/// Handles the received messages as one classic-mode invocation, which fails (a record is
/// kept), and checks that it deleted this many acknowledged messages and failed to delete
/// none: its error.
async fn classic_invocation(
    pipeline: &Pipeline,
    received: &[aws_sdk_sqs::types::Message],
    arn: &str,
    deleted: usize,
) -> lpipe_core::error::InvocationError {
    let err = pipeline
        .handle(&lambda_event(received, arn), lambda_context(0))
        .await
        .unwrap_err();
    assert_contains(
        &err.error_message,
        format!("{deleted} acknowledged messages deleted, 0 not deleted"),
    );
    err
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn the_classic_mode_deletes_exactly_the_acknowledged_messages() {
    moto_endpoint("the_classic_mode_deletes_exactly_the_acknowledged_messages");
    let client = client().await;
    let (url, arn) = source_queue(&client, "classic").await;
    let messages: Vec<Value> = ["OK", "KEEP", "DROP", "OK", "KEEP"]
        .iter()
        .enumerate()
        .map(|(i, path)| json!({"path": path, "kwargs": {"i": i}}))
        .collect();
    let received = send_and_receive(&client, &url, &messages, 2).await;
    let pipeline = classic_pipeline(client.clone());
    let err = classic_invocation(&pipeline, &received, &arn, 3).await;
    assert_eq!(err.error_type, "FailCatastrophically");

    // After the visibility timeout only the two failed messages come back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let back = drain(&client, &url).await;
    let mut paths: Vec<String> = back
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    paths.sort();
    assert_eq!(paths, ["KEEP", "KEEP"]);
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn the_classic_mode_looks_a_queue_url_up_once() {
    moto_endpoint("the_classic_mode_looks_a_queue_url_up_once");
    let client = client().await;
    let (url, arn) = source_queue(&client, "classic-url").await;
    let calls = CountCalls::default();
    let counted = counted_client(&calls).await;
    let pipeline = classic_pipeline(counted);
    // Two failing invocations, each deleting its acknowledged message from the same queue.
    for round in 0..2 {
        let messages = ["OK", "KEEP"].map(|path| json!({"path": path, "kwargs": {"round": round}}));
        let received = send_and_receive(&client, &url, &messages, 30).await;
        classic_invocation(&pipeline, &received, &arn, 1).await;
    }
    assert_eq!(calls.get("DeleteMessageBatch"), 2);
    assert_eq!(calls.get("GetQueueUrl"), 1, "the URL is looked up once");
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn the_classic_mode_deletes_many_messages_in_calls_side_by_side() {
    moto_endpoint("the_classic_mode_deletes_many_messages_in_calls_side_by_side");
    let client = client().await;
    let (url, arn) = source_queue(&client, "classic-many").await;
    let calls = CountCalls::default();
    let counted = counted_client(&calls).await;
    // 100 acknowledged records and one kept one: the invocation fails, so the classic mode
    // deletes the 100 itself, in 10 calls.
    let mut messages: Vec<Value> = (0..100)
        .map(|i| json!({"path": "OK", "kwargs": {"i": i}}))
        .collect();
    messages.push(json!({"path": "KEEP", "kwargs": {"i": 100}}));
    // Invisible long enough that none is received twice while the rest are.
    let received = send_and_receive(&client, &url, &messages, 60).await;
    assert_eq!(received.len(), 101);
    let pipeline = classic_pipeline(counted);
    classic_invocation(&pipeline, &received, &arn, 100).await;
    assert_eq!(calls.get("DeleteMessageBatch"), 10);
    let most = calls.max_in_flight();
    assert!(
        (2..=lpipe_sqs::SQS_CALLS_IN_FLIGHT).contains(&most),
        "the deletes go side by side, at most {} at once: {most} were",
        lpipe_sqs::SQS_CALLS_IN_FLIGHT
    );

    // Every message made visible again: only the kept one is still in the queue.
    // (The deleted ones' entries fail: their receipt handles are gone.)
    for chunk in received.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap())
                    .visibility_timeout(0)
                    .build()
                    .unwrap()
            })
            .collect();
        client
            .change_message_visibility_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .ok();
    }
    let back = drain(&client, &url).await;
    let paths: Vec<Value> = back
        .iter()
        .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["path"].clone())
        .collect();
    assert_eq!(paths, [json!("KEEP")]);
}

#[derive(Deserialize)]
struct Route {
    #[allow(dead_code)]
    n: i64,
}

async fn route(_: Route) -> Result<(), BoxError> {
    Ok(())
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn a_missing_queue_fails_the_records_that_targeted_it_and_no_others() {
    moto_endpoint("a_missing_queue_fails_the_records_that_targeted_it_and_no_others");
    let client = client().await;
    let good = unique_name("good");
    let url = create_queue(&client, &good, false).await;
    let sink = SqsSink::with_client(client.clone());
    let pipeline = Pipeline::builder()
        .path(
            "TO_GOOD",
            [Action::new().function(route).queue(Queue::sqs(&good))],
        )
        .path(
            "TO_MISSING",
            [Action::new()
                .function(route)
                .queue(Queue::sqs(unique_name("missing")))],
        )
        .registry(Registry::from_inventory())
        .sink(QueueKind::SQS, sink.clone())
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            backoff: lpipe_core::sink::Backoff::new(
                Duration::from_millis(5),
                Duration::from_millis(10),
            ),
        })
        .build()
        .unwrap();
    let records: Vec<Value> = (0..4)
        .map(|i| {
            let path = if i % 2 == 0 { "TO_GOOD" } else { "TO_MISSING" };
            json!({"messageId": format!("m{i}"), "receiptHandle": "rh", "eventSource": "aws:sqs",
                   "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:src",
                   "body": json!({"path": path, "kwargs": {"n": i}}).to_string()})
        })
        .collect();
    let response = pipeline
        .handle(&json!({"Records": records}).to_string(), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}])
    );
    assert_eq!(
        response["stats"],
        json!({"received": 4, "successes": 2, "dropped": 0, "failed": 2})
    );
    assert_eq!(drain(&client, &url).await.len(), 2);
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn an_oversized_message_fails_its_record_only() {
    moto_endpoint("an_oversized_message_fails_its_record_only");
    let client = client().await;
    let name = unique_name("big");
    let url = create_queue(&client, &name, false).await;
    let sink = SqsSink::with_client(client.clone());
    let pipeline = forwarding_pipeline(&sink, &name);
    let big = "x".repeat(lpipe_sqs::SQS_MAX_MESSAGE_BYTES);
    let event = json!({"Records": [
        {"messageId": "small", "receiptHandle": "rh", "eventSource": "aws:sqs",
         "body": json!({"path": "FWD", "kwargs": {"s": "small"}}).to_string()},
        {"messageId": "big", "receiptHandle": "rh", "eventSource": "aws:sqs",
         "body": json!({"path": "FWD", "kwargs": {"s": big}}).to_string()},
    ]});
    let response = pipeline
        .handle(&event.to_string(), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "big"}])
    );
    let got = drain(&client, &url).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].body().unwrap().contains("small"));
}

fn dead_letter_pipeline(client: &aws_sdk_sqs::Client, dead_letter_queue: &str) -> Pipeline {
    Pipeline::builder()
        .path("OK", [Action::new().function(ok)])
        .path("DROP", [Action::new().function(drop_it)])
        .path("KEEP", [Action::new().function(keep_it)])
        .registry(Registry::empty())
        .event_source(SqsSource::new())
        .sink(QueueKind::SQS, SqsSink::with_client(client.clone()))
        .dead_letter_queue(Queue::sqs(dead_letter_queue))
        .build()
        .unwrap()
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dropped_records_reach_the_dead_letter_queue_as_they_came() {
    moto_endpoint("dropped_records_reach_the_dead_letter_queue_as_they_came");
    let client = client().await;
    let source = unique_name("dlq-source");
    let dead = unique_name("dlq");
    let dead_url = create_queue(&client, &dead, false).await;
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{source}");
    let bodies = [
        json!({"path": "OK", "kwargs": {"i": 0}}).to_string(),
        json!({"path": "DROP", "kwargs": {"i": 1}}).to_string(),
        "not json at all".to_owned(),
        json!({"path": "KEEP", "kwargs": {"i": 3}}).to_string(),
        json!({"path": "NOWHERE", "kwargs": {"i": 4}}).to_string(),
    ];
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({"messageId": format!("m{i}"), "receiptHandle": "h", "body": body,
                "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
                "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"})
        })
        .collect();
    let response = dead_letter_pipeline(&client, &dead)
        .handle(&json!({"Records": records}).to_string(), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "m3"}])
    );
    assert_eq!(response["stats"]["dropped"], 3);
    let dead_letters = drain(&client, &dead_url).await;
    let mut received: Vec<String> = dead_letters
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .collect();
    received.sort();
    let mut expected = vec![bodies[1].clone(), bodies[2].clone(), bodies[4].clone()];
    expected.sort();
    assert_eq!(received, expected);
    // Each says why, where, and which record, as message attributes.
    let attribute = |m: &aws_sdk_sqs::types::Message, name: &str| {
        m.message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    };
    let dropped = dead_letters
        .iter()
        .find(|m| m.body() == Some(bodies[1].as_str()))
        .unwrap();
    assert_eq!(
        attribute(dropped, "lpipe.error_type").as_deref(),
        Some("FailButContinue")
    );
    assert_eq!(attribute(dropped, "lpipe.path").as_deref(), Some("DROP"));
    assert_eq!(
        attribute(dropped, "lpipe.function").as_deref(),
        Some("drop_it")
    );
    assert_eq!(attribute(dropped, "lpipe.record_id").as_deref(), Some("m1"));
    assert!(attribute(dropped, "lpipe.error_message").is_some());
    let unreadable = dead_letters
        .iter()
        .find(|m| m.body() == Some(bodies[2].as_str()))
        .unwrap();
    assert_eq!(
        attribute(unreadable, "lpipe.error_type").as_deref(),
        Some("InvalidPayloadError")
    );
    assert_eq!(
        attribute(unreadable, "lpipe.record_id").as_deref(),
        Some("m2")
    );

    // A dead-letter queue that does not exist: the dropped records are kept instead.
    let response = dead_letter_pipeline(&client, &unique_name("no-such-dlq"))
        .handle(&json!({"Records": records}).to_string(), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}, {"itemIdentifier": "m4"}])
    );
}

/// The message attribute that identifies each received message.
fn message_ids(messages: &[aws_sdk_sqs::types::Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            m.message_attributes()
                .and_then(|a| a.get(lpipe_core::sink::MESSAGE_ID_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .expect("every forwarded message carries its id")
                .to_owned()
        })
        .collect()
}

/// A record forwards to two queues, one of which refuses (it does not exist yet): the record
/// fails, and its message to the other queue was sent. On retry both are sent: the queue that
/// took the first send gets the message again, carrying the same id, so a consumer can tell
/// the resend from a new message.
#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn a_resent_message_carries_the_same_id() {
    moto_endpoint("a_resent_message_carries_the_same_id");
    let client = client().await;
    let (first, second) = (unique_name("resend-a"), unique_name("resend-b"));
    let first_url = create_queue(&client, &first, false).await;
    let sink = SqsSink::with_client(client.clone());
    let pipeline = Pipeline::builder()
        .path(
            "ROUTE",
            [Action::new()
                .function(route)
                .queue(Queue::sqs(&first).path("NEXT"))
                .queue(Queue::sqs(&second).path("NEXT"))],
        )
        .registry(Registry::from_inventory())
        .sink(QueueKind::SQS, sink)
        .only_source("sqs")
        .retry_policy(RetryPolicy {
            max_attempts: 1,
            backoff: lpipe_core::sink::Backoff::new(
                Duration::from_millis(5),
                Duration::from_millis(10),
            ),
        })
        .build()
        .unwrap();
    let event = json!({"Records": [
        {"messageId": "m-1", "receiptHandle": "rh", "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:src",
         "body": json!({"path": "ROUTE", "kwargs": {"n": 1}}).to_string()}
    ]})
    .to_string();
    let refused = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(
        refused["batchItemFailures"],
        json!([{"itemIdentifier": "m-1"}])
    );
    let sent_first = drain(&client, &first_url).await;
    assert_eq!(sent_first.len(), 1, "sent to the queue that took it");

    let second_url = create_queue(&client, &second, false).await;
    let retried = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(retried["batchItemFailures"], json!([]));
    let resent_first = drain(&client, &first_url).await;
    let sent_second = drain(&client, &second_url).await;
    assert_eq!(resent_first.len(), 1, "at least once per queue: sent again");
    assert_eq!(message_ids(&resent_first), message_ids(&sent_first));
    assert_eq!(message_ids(&sent_second).len(), 1);
    assert_ne!(message_ids(&sent_second), message_ids(&sent_first));
}
