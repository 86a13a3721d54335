//! The conformance Lambda on SQS, Kinesis and CloudWatch events, sending for real to the
//! moto_server the test command started (skipped, saying why, without it; failing with
//! LPIPE_REQUIRE_MOTO=1).

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

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn the_conformance_binary_takes_sqs_events_and_sends_for_real_when_asked() {
    moto_endpoint("the_conformance_binary_takes_sqs_events_and_sends_for_real_when_asked");
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
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let stream = unique_name("conformance-stream");
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
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
        .env("TEST_KINESIS_STREAM", &stream)
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
    assert_eq!(
        read_stream(&kinesis, &stream).await,
        [json!({"path": "TEST_FUNC", "kwargs": {"uri": "s3://b/k3"}})]
    );
}

async fn read_stream(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<Value> {
    let shard = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards
        .unwrap()
        .remove(0);
    let it = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard.shard_id)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let out = client
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap();
    out.records
        .iter()
        .map(|r| serde_json::from_slice(r.data.as_ref()).unwrap())
        .collect()
}

fn run(args: &[&str], event: &Value, envs: &[(&str, &str)]) -> (bool, Value, String) {
    let file = std::env::temp_dir().join(format!("{}.json", unique_name("event")));
    std::fs::write(&file, event.to_string()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conformance"));
    cmd.args(args)
        .arg(&file)
        .env_remove("AWS_LAMBDA_RUNTIME_API");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let output = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let json =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (output.status.success(), json, stderr)
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn the_conformance_binary_takes_kinesis_events_and_sends_test_kinesis_queue_for_real() {
    moto_endpoint(
        "the_conformance_binary_takes_kinesis_events_and_sends_test_kinesis_queue_for_real",
    );
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let stream = unique_name("conformance-kinesis");
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let event = kinesis_event(&[
        json!({"path": "TEST_KINESIS_QUEUE", "kwargs": {"uri": "s3://b/k"}}),
        json!({"path": "TEST_RAISE_CUSTOM", "kwargs": {}}),
        json!({"path": "TEST_FUNC", "kwargs": {"foo": "bar"}}),
    ]);
    let (ok, response, stderr) = run(&["--send"], &event, &[("TEST_KINESIS_STREAM", &stream)]);
    assert!(ok, "{stderr}");
    // The second record fails; the third is not run and is reported with it.
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "101"}, {"itemIdentifier": "102"}])
    );
    assert_eq!(
        read_stream(&kinesis, &stream).await,
        [json!({"path": "TEST_FUNC", "kwargs": {"uri": "s3://b/k"}})]
    );
}

fn kinesis_event(messages: &[Value]) -> Value {
    use base64::Engine;
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": (100 + i).to_string(),
                   "data": base64::engine::general_purpose::STANDARD.encode(m.to_string()),
                   "approximateArrivalTimestamp": 1545084650.987},
                   "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{}", 100 + i),
                   "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
                   "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/in"})
        })
        .collect();
    json!({"Records": records})
}

#[test]
fn the_conformance_binary_takes_cloudwatch_events() {
    let event = json!({"version": "0", "id": "ev-1", "detail-type": "Conformance", "source": "test",
                       "account": "123456789012", "time": "2026-11-28T00:00:00Z", "region": "us-east-1",
                       "resources": [], "detail": {"path": "TEST_RET", "kwargs": {}}});
    let (ok, response, stderr) = run(&[], &event, &[]);
    assert!(ok, "{stderr}");
    assert_eq!(response["output"], json!(["foobar"]));
    // A scheduled event's empty detail, as bare kwargs for a default path.
    let mut scheduled = event.clone();
    scheduled["detail-type"] = json!("Scheduled Event");
    scheduled["detail"] = json!({});
    let (ok, response, _) = run(&["--default-path", "TEST_FUNC_NO_PARAMS"], &scheduled, &[]);
    assert!(ok);
    assert_eq!(response["stats"]["successes"], 1);
    // A catastrophic failure fails the invocation.
    let mut failing = event;
    failing["detail"] = json!({"path": "TEST_RAISE_CUSTOM", "kwargs": {}});
    let (ok, response, _) = run(&[], &failing, &[]);
    assert!(!ok);
    assert_eq!(response["errorType"], "FailCatastrophically");
}

#[test]
fn the_conformance_binary_takes_kinesis_events_locally() {
    let event = kinesis_event(&[
        json!({"path": "TEST_FUNC", "kwargs": {"foo": "bar"}}),
        json!({"path": "TEST_KINESIS_QUEUE", "kwargs": {"uri": "u"}}),
    ]);
    let (ok, response, stderr) = run(&[], &event, &[]);
    assert!(ok, "{stderr}");
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(response["stats"]["successes"], 2);
    assert!(
        stderr.contains("kinesis:test-kinesis-stream (path TEST_FUNC)"),
        "{stderr}"
    );
}
