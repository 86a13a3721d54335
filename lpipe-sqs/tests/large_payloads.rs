//! Payloads kept in S3, without a server (the store in memory): SQS messages that are pointers
//! run with the payload they point to; large outbound messages go out as pointers. The same
//! against moto's S3 and AWS's own extended clients: `lpipe-s3/tests/large_payloads.rs`.

use lpipe_core::payload::{
    LargePayloads, MemoryPayloadStore, PayloadPointer, PayloadStore, SIZE_ATTRIBUTE,
};
use lpipe_core::sink::{MemorySink, SinkLimits};
use lpipe_core::testing::{assert_contains, lambda_context, SnsEvent, SqsEvent, SqsRecord};
use lpipe_core::{
    registry::Registry, Action, BoxError, Pipeline, PipelineBuilder, Queue, QueueKind,
};
use lpipe_sqs::{SqsEnvelope, SqsSource};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Deserialize)]
struct Doc {
    text: String,
}

fn builder(seen: &Arc<Mutex<Vec<String>>>) -> PipelineBuilder {
    let seen = seen.clone();
    let read = move |doc: Doc| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(doc.text);
            Ok::<_, BoxError>(())
        }
    };
    Pipeline::builder()
        .path("READ", [Action::new().function(read)])
        .registry(Registry::empty())
        .event_source(SqsSource::new())
}

fn pointer(bucket: &str, key: &str) -> String {
    PayloadPointer {
        bucket: bucket.into(),
        key: key.into(),
    }
    .to_body()
}

async fn store_with(bucket: &str, key: &str, text: &str) -> MemoryPayloadStore {
    let store = MemoryPayloadStore::new();
    let message = json!({"path": "READ", "kwargs": {"text": text}}).to_string();
    store.put(bucket, key, &message).await.unwrap();
    store
}

fn offloaded_record(id: &str, bucket: &str, key: &str) -> SqsRecord {
    SqsRecord::new(pointer(bucket, key))
        .id(id)
        .attribute(SIZE_ATTRIBUTE, "300000")
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_pointer_runs_with_the_payload_it_points_to_and_only_from_allowed_buckets() {
    let big = "x".repeat(300_000);
    let store = store_with("payloads", "k1", &big).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let dead = MemorySink::new();
    let pipeline = builder(&seen)
        .large_payloads(LargePayloads::new(store.clone()).allow_bucket("payloads"))
        .dead_letter_queue(Queue::sqs("dead"))
        .sink(QueueKind::SQS, dead.clone())
        .build()
        .unwrap();
    let event = SqsEvent::new()
        .record(offloaded_record("ok", "payloads", "k1"))
        .record(offloaded_record("refused", "elsewhere", "k1"))
        .record(offloaded_record("missing", "payloads", "gone"))
        // Marked as a pointer, but it is not one.
        .record(
            SqsRecord::new(json!({"path": "READ", "kwargs": {"text": "hi"}}))
                .id("not-a-pointer")
                .attribute(SIZE_ATTRIBUTE, "2"),
        )
        // Not marked: a pointer-shaped body is an ordinary body (never guessed from its shape).
        .record(SqsRecord::new(pointer("payloads", "k1")).id("unmarked"))
        .to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(response["stats"]["dropped"], 4, "{response}");
    assert_eq!(*seen.lock().unwrap(), [big]);
    // The object stays: other subscribers may need it.
    assert!(store.object("payloads", "k1").is_some());

    // Each dropped pointer is dead-lettered as it came, with the attribute that says what it is.
    let letters = dead.messages();
    assert_eq!(letters.len(), 4);
    let reason = |id: &str| {
        let letter = letters
            .iter()
            .find(|l| l.attributes.iter().any(|(_, v)| v == id))
            .unwrap_or_else(|| panic!("no dead letter of {id}"));
        let attribute = |name: &str| {
            letter
                .attributes
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        (
            letter.body.clone(),
            attribute("lpipe.error_message"),
            attribute(SIZE_ATTRIBUTE),
        )
    };
    let (body, why, size) = reason("refused");
    assert_eq!(body, pointer("elsewhere", "k1"));
    assert_eq!(size.as_deref(), Some("300000"));
    assert_contains(
        why.unwrap(),
        "kept in the bucket 'elsewhere', which this pipeline does not read from (allowed: payloads)",
    );
    let (body, why, _) = reason("missing");
    assert_eq!(body, pointer("payloads", "gone"));
    assert_contains(
        why.unwrap(),
        "reading the payload s3://payloads/gone: no object",
    );
    let (_, why, _) = reason("not-a-pointer");
    assert_contains(
        why.unwrap(),
        "marked as kept in S3 but is not a payload pointer",
    );
    let (_, why, size) = reason("unmarked");
    assert_contains(
        why.unwrap(),
        "unknown path 'software.amazon.payloadoffloading.PayloadS3Pointer'",
    );
    assert_eq!(size, None);
}

#[tokio::test]
async fn without_large_payloads_a_pointer_is_dropped_saying_how_to_read_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pipeline = builder(&seen).build().unwrap();
    let event = SqsEvent::new()
        .record(offloaded_record("1", "payloads", "k1"))
        .to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["dropped"], 1, "{response}");
    assert!(seen.lock().unwrap().is_empty());
}

/// A store whose reads fail retryably, as S3 does when it throttles.
#[derive(Clone, Default)]
struct Throttled(MemoryPayloadStore);

#[lpipe_core::async_trait]
impl PayloadStore for Throttled {
    async fn get(&self, _: &str, _: &str) -> Result<String, lpipe_core::payload::PayloadError> {
        Err(lpipe_core::payload::PayloadError::retryable("SlowDown"))
    }
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: &str,
    ) -> Result<(), lpipe_core::payload::PayloadError> {
        if body.contains("refuse-me") {
            return Err(lpipe_core::payload::PayloadError::retryable("SlowDown"));
        }
        self.0.put(bucket, key, body).await
    }
    async fn delete(&self, b: &str, k: &str) -> Result<(), lpipe_core::payload::PayloadError> {
        self.0.delete(b, k).await
    }
}

#[tokio::test]
async fn a_store_that_throttles_keeps_the_record_for_retry() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pipeline = builder(&seen)
        .large_payloads(LargePayloads::new(Throttled::default()).allow_bucket("payloads"))
        .build()
        .unwrap();
    let event = SqsEvent::new()
        .record(offloaded_record("1", "payloads", "k1"))
        .to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(failures(&response), ["1"]);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn delete_after_success_deletes_only_what_succeeded() {
    let store = store_with("payloads", "ok", "fine").await;
    store
        .put(
            "payloads",
            "bad",
            r#"{"path": "READ", "kwargs": {"text": 7}}"#,
        )
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pipeline = builder(&seen)
        .large_payloads(
            LargePayloads::new(store.clone())
                .allow_bucket("payloads")
                .delete_after_success(),
        )
        .build()
        .unwrap();
    let event = SqsEvent::new()
        .record(offloaded_record("1", "payloads", "ok"))
        .record(offloaded_record("2", "payloads", "bad"))
        .to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(store.object("payloads", "ok"), None);
    assert!(store.object("payloads", "bad").is_some());
}

#[tokio::test]
async fn a_pointer_inside_an_sns_notification_is_read_too() {
    let store = store_with("payloads", "k1", "from a topic").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pipeline = builder(&seen)
        .event_source(SqsSource::new().envelope(SqsEnvelope::Sns))
        .large_payloads(LargePayloads::new(store).allow_bucket("payloads"))
        .build()
        .unwrap();
    let notification = SnsEvent::text(pointer("payloads", "k1"))
        .number_attribute(SIZE_ATTRIBUTE, 300_000)
        .notification();
    let event = SqsEvent::new()
        .record(SqsRecord::new(notification).id("1"))
        .to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(*seen.lock().unwrap(), ["from a topic"]);
}

#[derive(Deserialize)]
struct Forward {
    user: String,
    text: String,
}

async fn forward(args: Forward) -> Result<Value, BoxError> {
    Ok(json!({"user": args.user, "text": args.text}))
}

#[tokio::test]
async fn large_outbound_messages_go_out_as_pointers() {
    let store = MemoryPayloadStore::new();
    let sink = MemorySink::new()
        .taking_payload_pointers()
        .with_limits(SinkLimits {
            max_entries: 10,
            max_entry_bytes: 1000,
            max_batch_bytes: 1000,
        })
        .ordered_by_kwarg("user");
    let pipeline = Pipeline::builder()
        .path(
            "FORWARD",
            [Action::new().function(forward).include_all_params().queue(
                Queue::sqs("next.fifo")
                    .path("READ")
                    .message_group_id_from("user"),
            )],
        )
        .registry(Registry::empty())
        .event_source(SqsSource::new())
        .sink(QueueKind::SQS, sink.clone())
        .large_payloads(LargePayloads::new(store.clone()).offload_to("out"))
        .build()
        .unwrap();
    let message = |user: &str, text: String| json!({"path": "FORWARD", "kwargs": {"user": user, "text": text}});
    let event = SqsEvent::new()
        .record(SqsRecord::new(message("ann", "small".into())).id("1"))
        .record(SqsRecord::new(message("bob", "y".repeat(5000))).id("2"))
        .to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["successes"], 2, "{response}");
    let sent = sink.messages();
    assert_eq!(sent.len(), 2);
    let small = sent.iter().find(|m| m.body.contains("small")).unwrap();
    assert!(small.attributes.is_empty());
    let large = sent.iter().find(|m| !m.body.contains("small")).unwrap();
    let pointer = PayloadPointer::parse(&large.body).unwrap();
    assert_eq!(pointer.bucket, "out");
    let payload = store.object("out", &pointer.key).unwrap();
    let payload_json: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload_json["kwargs"]["text"], "y".repeat(5000));
    assert_eq!(
        large.attributes,
        [(SIZE_ATTRIBUTE, payload.len().to_string())]
    );
    // The FIFO group still comes from the kwarg, which the pointer no longer holds.
    assert_eq!(large.kwarg_value("user").as_deref(), Some("bob"));

    // And an lpipe consumer reads it back.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumer = builder(&seen)
        .large_payloads(LargePayloads::new(store.clone()).allow_bucket("out"))
        .build()
        .unwrap();
    let event = SqsEvent::new()
        .record(
            SqsRecord::new(large.body.clone())
                .id("3")
                .attribute(SIZE_ATTRIBUTE, "5000"),
        )
        .to_string();
    let response = consumer.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(*seen.lock().unwrap(), ["y".repeat(5000)]);
}

/// FORWARD forwards every kwarg to the queue `next`, whose sink takes pointers and messages of
/// up to 1,000 bytes; the sink, and the pipeline with these large payloads.
fn forwarder(payloads: LargePayloads) -> (MemorySink, Pipeline) {
    let sink = MemorySink::new()
        .taking_payload_pointers()
        .with_limits(SinkLimits {
            max_entries: 10,
            max_entry_bytes: 1000,
            max_batch_bytes: 1000,
        });
    let pipeline = Pipeline::builder()
        .path(
            "FORWARD",
            [Action::new()
                .function(forward)
                .include_all_params()
                .queue(Queue::sqs("next").path("READ"))],
        )
        .registry(Registry::empty())
        .event_source(SqsSource::new())
        .sink(QueueKind::SQS, sink.clone())
        .large_payloads(payloads)
        .build()
        .unwrap();
    (sink, pipeline)
}

#[tokio::test]
async fn a_large_message_that_cannot_be_put_in_s3_fails_its_record() {
    let (sink, pipeline) = forwarder(LargePayloads::new(Throttled::default()).offload_to("out"));
    let text = format!("refuse-me {}", "z".repeat(2000));
    let event = SqsEvent::new()
        .record(
            SqsRecord::new(json!({"path": "FORWARD", "kwargs": {"user": "u", "text": text}}))
                .id("1"),
        )
        .to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(failures(&response), ["1"]);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn without_offloading_a_large_message_is_refused_as_before() {
    // Reads, but does not offload.
    let (sink, pipeline) =
        forwarder(LargePayloads::new(MemoryPayloadStore::new()).allow_bucket("in"));
    let event = SqsEvent::new()
        .record(
            SqsRecord::new(
                json!({"path": "FORWARD", "kwargs": {"user": "u", "text": "z".repeat(2000)}}),
            )
            .id("1"),
        )
        .to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(failures(&response), ["1"]);
    assert!(sink.messages().is_empty());
}
