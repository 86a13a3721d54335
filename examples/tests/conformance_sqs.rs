//! The conformance Lambda on SQS events, sending for real to the moto_server the test command
//! started (skipped, saying why, without it; failing with LPIPE_REQUIRE_MOTO=1).

use std::process::Command;

use lpipe::testing::{moto_endpoint, unique_name};
use serde_json::{json, Value};

fn sqs_record(id: &str, body: Value) -> Value {
    json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": body.to_string(),
           "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "x",
                          "ApproximateFirstReceiveTimestamp": "1"},
           "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
           "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:conformance-in", "awsRegion": "us-east-1"})
}

#[tokio::test]
async fn the_conformance_binary_takes_sqs_events_and_sends_for_real_when_asked() {
    if moto_endpoint("the_conformance_binary_takes_sqs_events_and_sends_for_real_when_asked")
        .is_none()
    {
        return;
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_sqs::Client::new(&config);
    let queue = unique_name("conformance-out");
    let url = client
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let event = json!({"Records": [
        sqs_record("a", json!({"path": "TEST_SQS_QUEUE", "kwargs": {"uri": "s3://b/k", "extra": 1}})),
        sqs_record("b", json!({"path": "TEST_SQS_QUEUE_WITHOUT_PATH", "kwargs": {"uri": "s3://b/k2"}})),
        sqs_record("c", json!({"path": "TEST_FUNC", "kwargs": {"foo": "bar"}})),
        sqs_record("d", json!({"path": "TEST_RAISE_CUSTOM", "kwargs": {}})),
        sqs_record("e", json!({"path": "TEST_KINESIS_QUEUE", "kwargs": {"uri": "s3://b/k3"}})),
    ]});
    let file = std::env::temp_dir().join(format!("{}.json", unique_name("sqs-event")));
    std::fs::write(&file, event.to_string()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg("--send")
        .arg(&file)
        .env("TEST_SQS_QUEUE", &queue)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let response: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "d"}]),
        "{response}"
    );
    assert_eq!(
        response["stats"],
        json!({"received": 5, "successes": 4, "dropped": 0, "failed": 1})
    );
    // Kinds with no sink enabled are recorded, with a warning, not sent.
    assert!(
        stderr.contains("no sink for queue kind 'kinesis'"),
        "{stderr}"
    );

    let mut bodies = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in &messages {
            bodies.push(serde_json::from_str::<Value>(m.body().unwrap()).unwrap());
            client
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    bodies.sort_by_key(|b| b.to_string());
    assert_eq!(
        bodies,
        [
            json!({"path": "TEST_FUNC", "kwargs": {"uri": "s3://b/k"}}),
            json!({"uri": "s3://b/k2"})
        ]
    );
}
