//! The S3 source without a server: routing, URL-decoded keys, the test event, outcomes of an
//! asynchronous invocation, refusal of other events.

use std::sync::{Arc, Mutex};

use lpipe_core::sink::MemorySink;
use lpipe_core::testing::{assert_contains, lambda_context, SqsEvent};
use lpipe_core::{
    registry::Registry, Action, BoxError, FailCatastrophically, Pipeline, PipelineBuilder, Queue,
};
use lpipe_s3::S3Source;
use serde_json::{json, Value};

fn record(event_name: &str, key: &str) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-06T12:00:00.000Z", "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "EXAMPLE"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "uploads",
               "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
               "object": {"key": key, "size": 7, "eTag": "e-1", "versionId": "v-1", "sequencer": "0A1"}}
    })
}

type Seen = Arc<Mutex<Vec<Value>>>;

fn builder(seen: &Seen) -> PipelineBuilder {
    let seen = seen.clone();
    let ingest = move |kwargs: Value| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(kwargs);
            Ok::<_, BoxError>(())
        }
    };
    async fn retry_me(_: Value) -> Result<(), FailCatastrophically> {
        Err(FailCatastrophically::new("the archive is down"))
    }
    Pipeline::builder()
        .path("INGEST", [Action::new().function(ingest)])
        .path("ARCHIVE", [Action::new().function(retry_me)])
        .registry(Registry::empty())
        .event_source(
            S3Source::new()
                .route("ObjectCreated:*", "INGEST")
                .route("ObjectRemoved:Delete", "ARCHIVE"),
        )
        .only_source(S3Source::NAME)
}

#[test]
fn the_test_records_are_s3_events_as_aws_documents_them() {
    let event = json!({"Records": [record("ObjectCreated:Put", "a+b.txt")]});
    let parsed: aws_lambda_events::s3::S3Event = serde_json::from_value(event).unwrap();
    assert_eq!(parsed.records[0].s3.object.key.as_deref(), Some("a+b.txt"));
}

#[tokio::test]
async fn each_record_runs_its_route_with_the_objects_kwargs() {
    let seen = Seen::default();
    let event = json!({"Records": [
        record("ObjectCreated:Put", "q1+report%3A%C3%A9.pdf"),
        record("ObjectCreated:Copy", "b.txt"),
    ]})
    .to_string();
    let response = builder(&seen)
        .build()
        .unwrap()
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["event"], "Finished.");
    assert_eq!(response["stats"]["successes"], 2, "{response}");
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0],
        json!({"bucket": "uploads", "key": "q1 report:é.pdf", "size": 7, "etag": "e-1",
               "version_id": "v-1", "sequencer": "0A1"})
    );
    assert_eq!(seen[1]["key"], "b.txt");
}

#[tokio::test]
async fn a_kept_record_fails_the_invocation_and_an_unrouted_one_is_dropped_whole() {
    let dlq = MemorySink::new();
    let builder = builder(&Seen::default())
        .dead_letter_queue(Queue::sqs("s3-dropped"))
        .record_outbound(dlq.clone());
    let pipeline = builder.build().unwrap();
    let kept = json!({"Records": [record("ObjectRemoved:Delete", "a.txt")]}).to_string();
    let e = pipeline.handle(&kept, lambda_context(0)).await.unwrap_err();
    assert_eq!(e.error_type, "FailCatastrophically");
    assert_contains(&e.error_message, "the archive is down");
    let unrouted = record("ObjectRestore:Completed", "a.txt");
    let event = json!({"Records": [unrouted.clone()]}).to_string();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["dropped"], 1, "{response}");
    let letter: Value = serde_json::from_str(&dlq.messages()[0].body).unwrap();
    assert_eq!(letter, unrouted, "the record as it came");
}

#[tokio::test]
async fn another_services_event_is_refused_not_acknowledged() {
    let sqs = SqsEvent::new().message(json!({"a": 1})).to_string();
    let e = builder(&Seen::default())
        .build()
        .unwrap()
        .handle(&sqs, lambda_context(0))
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "InvalidEvent");
}

#[test]
fn linking_the_crate_registers_the_source() {
    assert_eq!(lpipe_s3::link(), "s3");
    assert!(Registry::from_inventory().source_names().contains(&"s3"));
}

#[tokio::test]
async fn the_test_kits_s3_events_are_aws_s3_events_and_their_keys_come_back_decoded() {
    use lpipe_core::testing::S3Event;
    let created = S3Event::new("ObjectCreated:Put", "uploads", "q1 report:é 100%.pdf").size(5);
    let parsed: aws_lambda_events::s3::S3Event =
        serde_json::from_str(&created.to_string()).unwrap();
    assert_eq!(
        parsed.records[0].s3.object.key.as_deref(),
        Some("q1+report%3A%C3%A9+100%25.pdf")
    );
    let seen = Seen::default();
    let response = builder(&seen)
        .build()
        .unwrap()
        .handle(&created.to_string(), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 1, "{response}");
    assert_eq!(seen.lock().unwrap()[0]["key"], "q1 report:é 100%.pdf");
    assert_eq!(seen.lock().unwrap()[0]["size"], 5);
}
