//! Payloads over the limit kept in S3, against AWS's own extended clients (PyPI
//! `amazon-sqs-extended-client`, `amazon-sns-extended-client`) on moto's S3, SQS and SNS: a large
//! message they send, lpipe reads; a large message lpipe sends, they read. Needs the moto_server
//! the test command starts, and its Python (`LPIPE_PYTHON`, with both clients installed).

use std::process::Command;
use std::sync::{Arc, Mutex};

#[path = "../../lpipe-sqs/tests/common/mod.rs"]
mod common;

use lpipe_core::payload::{LargePayloads, PayloadPointer};
use lpipe_core::source::RawSource;
use lpipe_core::testing::{lambda_context, message, moto_endpoint, raw_event, unique_name};
use lpipe_core::{registry::Registry, Action, BoxError, Pipeline, Queue, QueueKind};
use lpipe_s3::S3PayloadStore;
use lpipe_sns::SnsSink;
use lpipe_sqs::{SqsEnvelope, SqsSink, SqsSource};
use serde::Deserialize;
use serde_json::{json, Value};

/// Larger than the extended clients' threshold (256 KiB), so that they offload it.
const LARGE: usize = 300_000;

struct Aws {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
}

async fn aws(test: &str) -> Aws {
    moto_endpoint(test);
    // The standard AWS configuration: the test command points AWS_ENDPOINT_URL at moto.
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(true);
    Aws {
        s3: aws_sdk_s3::Client::from_conf(s3.build()),
        sqs: aws_sdk_sqs::Client::new(&config),
        sns: aws_sdk_sns::Client::new(&config),
    }
}

async fn bucket(s3: &aws_sdk_s3::Client) -> String {
    let name = unique_name("payloads").to_lowercase().replace('_', "-");
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("CreateBucket");
    name
}

/// Runs a Python script with AWS's extended clients importable, `stdin` its standard input;
/// returns what it printed.
fn python(script: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let python = std::env::var("LPIPE_PYTHON").unwrap_or_else(|_| {
        panic!("LPIPE_PYTHON is not set: run ./scripts/test, which installs AWS's extended clients into .venv and sets it")
    });
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .expect("writing to Python");
    drop(input);
    let out = child.wait_with_output().expect("Python's output");
    assert!(
        out.status.success(),
        "the Python script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// argv: queue URL, bucket; stdin: the body. Sends the body with the SQS extended client.
const SQS_SEND: &str = r#"
import sys, boto3, sqs_extended_client
sqs = boto3.client("sqs")
sqs.large_payload_support = sys.argv[2]
sqs.send_message(QueueUrl=sys.argv[1], MessageBody=sys.stdin.read())
"#;

/// argv: queue URL. Receives one message with the SQS extended client; prints its body.
const SQS_RECEIVE: &str = r#"
import sys, boto3, sqs_extended_client
sqs = boto3.client("sqs")
sqs.large_payload_support = "unused-for-reading"
for _ in range(5):
    messages = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
    if messages:
        sys.stdout.write(messages[0]["Body"])
        break
"#;

/// argv: topic ARN, bucket; stdin: the body. Publishes the body with the SNS extended client.
const SNS_PUBLISH: &str = r#"
import sys, boto3, sns_extended_client
sns = boto3.client("sns")
sns.large_payload_support = sys.argv[2]
sns.publish(TopicArn=sys.argv[1], Message=sys.stdin.read())
"#;

#[derive(Deserialize)]
struct Doc {
    text: String,
}

/// A consumer whose `READ` notes the length of the text it got; it reads payloads from `bucket`
/// (and deletes them after, if asked).
fn consumer(
    source: SqsSource,
    bucket: &str,
    s3: &aws_sdk_s3::Client,
    delete: bool,
) -> (Pipeline, Arc<Mutex<Vec<usize>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let noted = seen.clone();
    let read = move |doc: Doc| {
        let noted = noted.clone();
        async move {
            noted.lock().unwrap().push(doc.text.len());
            Ok::<_, BoxError>(())
        }
    };
    let mut payloads =
        LargePayloads::new(S3PayloadStore::with_client(s3.clone())).allow_bucket(bucket);
    if delete {
        payloads = payloads.delete_after_success();
    }
    let pipeline = Pipeline::builder()
        .path("READ", [Action::new().function(read)])
        .registry(Registry::empty())
        .event_source(source)
        .large_payloads(payloads)
        .build()
        .unwrap();
    (pipeline, seen)
}

fn large_message() -> String {
    message("READ", json!({"text": "x".repeat(LARGE)})).to_string()
}

async fn object_count(s3: &aws_sdk_s3::Client, bucket: &str) -> usize {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    listed.contents().len()
}

#[tokio::test]
#[ignore = "needs moto_server and the test command's Python: run ./scripts/test"]
async fn lpipe_reads_what_the_sqs_extended_client_sends() {
    let aws = aws("lpipe_reads_what_the_sqs_extended_client_sends").await;
    let bucket = bucket(&aws.s3).await;
    let (url, _) = common::queue_with_arn(&aws.sqs, "extended-in").await;
    python(SQS_SEND, &[&url, &bucket], &large_message());
    let received = common::receive(&aws.sqs, &url).await;
    assert_eq!(received.len(), 1);
    // What reached the queue is a pointer, marked as such.
    PayloadPointer::parse(received[0].body().unwrap()).expect("a pointer");
    assert_eq!(object_count(&aws.s3, &bucket).await, 1);

    let (pipeline, seen) = consumer(SqsSource::new(), &bucket, &aws.s3, true);
    let event = common::lambda_event(received);
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(*seen.lock().unwrap(), [LARGE]);
    // Deleted once its record succeeded.
    assert_eq!(object_count(&aws.s3, &bucket).await, 0);
}

#[tokio::test]
#[ignore = "needs moto_server and the test command's Python: run ./scripts/test"]
async fn lpipe_reads_what_the_sns_extended_client_publishes_raw_and_not() {
    let aws = aws("lpipe_reads_what_the_sns_extended_client_publishes_raw_and_not").await;
    let bucket = bucket(&aws.s3).await;
    let topic = aws
        .sns
        .create_topic()
        .name(unique_name("extended"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let mut queues = Vec::new();
    for raw in [true, false] {
        let (url, arn) = common::queue_with_arn(&aws.sqs, "extended-sub").await;
        aws.sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", raw.to_string())
            .send()
            .await
            .unwrap();
        queues.push((url, raw));
    }
    python(SNS_PUBLISH, &[&topic, &bucket], &large_message());
    for (url, raw) in queues {
        let received = common::receive(&aws.sqs, &url).await;
        assert_eq!(received.len(), 1, "raw delivery {raw}");
        let source = if raw {
            SqsSource::new()
        } else {
            SqsSource::new().envelope(SqsEnvelope::Sns)
        };
        // Both subscriptions read the one object: neither deletes it.
        let (pipeline, seen) = consumer(source, &bucket, &aws.s3, false);
        let event = common::lambda_event(received);
        let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
        assert_eq!(response["stats"]["successes"], 1, "raw {raw}: {response}");
        assert_eq!(*seen.lock().unwrap(), [LARGE], "raw delivery {raw}");
    }
}

/// A producer whose `SEND` forwards `text` to `queue` (for the consumers' `READ`), offloading
/// what is over 256 KiB to `bucket`.
fn producer(queue: Queue, bucket: &str, aws: &Aws) -> Pipeline {
    Pipeline::builder()
        .path(
            "SEND",
            [Action::new().include_all_params().queue(queue.path("READ"))],
        )
        .registry(Registry::empty())
        .event_source(RawSource)
        .sink(QueueKind::SQS, SqsSink::with_client(aws.sqs.clone()))
        .sink(QueueKind::SNS, SnsSink::with_client(aws.sns.clone()))
        .large_payloads(
            LargePayloads::new(S3PayloadStore::with_client(aws.s3.clone()))
                .offload_to(bucket)
                .threshold(256 * 1024),
        )
        .build()
        .unwrap()
}

fn send_event(text: &str) -> String {
    raw_event(&[message("SEND", json!({"text": text}))])
}

fn text_of(body: &str) -> usize {
    let body: Value = serde_json::from_str(body).expect("the payload is an lpipe message");
    body["kwargs"]["text"].as_str().expect("a text").len()
}

#[tokio::test]
#[ignore = "needs moto_server and the test command's Python: run ./scripts/test"]
async fn the_sqs_extended_client_reads_what_lpipe_sends() {
    let aws = aws("the_sqs_extended_client_reads_what_lpipe_sends").await;
    let bucket = bucket(&aws.s3).await;
    let (url, _) = common::queue_with_arn(&aws.sqs, "extended-out").await;
    let response = producer(Queue::sqs(&url), &bucket, &aws)
        .handle(&send_event(&"y".repeat(LARGE)), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(object_count(&aws.s3, &bucket).await, 1);
    let body = python(SQS_RECEIVE, &[&url], "");
    assert_eq!(text_of(&body), LARGE);

    // A small message goes as it is.
    let (url, _) = common::queue_with_arn(&aws.sqs, "extended-out-small").await;
    producer(Queue::sqs(&url), &bucket, &aws)
        .handle(&send_event("small"), lambda_context(0))
        .await
        .unwrap();
    let received = common::receive(&aws.sqs, &url).await;
    assert_eq!(text_of(received[0].body().unwrap()), 5);
    assert_eq!(object_count(&aws.s3, &bucket).await, 1);
}

#[tokio::test]
#[ignore = "needs moto_server and the test command's Python: run ./scripts/test"]
async fn the_sqs_extended_client_reads_what_lpipe_publishes_to_a_topic() {
    let aws = aws("the_sqs_extended_client_reads_what_lpipe_publishes_to_a_topic").await;
    let bucket = bucket(&aws.s3).await;
    let topic = aws
        .sns
        .create_topic()
        .name(unique_name("extended-out"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (url, arn) = common::queue_with_arn(&aws.sqs, "extended-topic-sub").await;
    aws.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    producer(Queue::sns(&topic), &bucket, &aws)
        .handle(&send_event(&"z".repeat(LARGE)), lambda_context(0))
        .await
        .unwrap();
    let body = python(SQS_RECEIVE, &[&url], "");
    assert_eq!(text_of(&body), LARGE);
}
