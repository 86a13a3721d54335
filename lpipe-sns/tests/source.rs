//! The SNS source without a server: decoding, metadata on the context, outcomes of an
//! asynchronous invocation, refusal of other events.

use std::sync::{Arc, Mutex};

use lpipe_core::sink::MemorySink;
use lpipe_core::testing::{assert_contains, lambda_context, message, SnsEvent, SqsEvent};
use lpipe_core::{
    error::InvocationError, registry::Registry, Action, BoxError, Context, FailCatastrophically,
    NoParams, Pipeline, PipelineBuilder, Queue,
};
use lpipe_sns::SnsSource;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Welcome {
    name: String,
}

/// What the last WELCOME saw: its name, topic, subject, attribute and record id.
type Seen = Arc<
    Mutex<
        Vec<(
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
        )>,
    >,
>;

fn builder(seen: &Seen) -> PipelineBuilder {
    let seen = seen.clone();
    let welcome = move |args: Welcome, ctx: Context| {
        let seen = seen.clone();
        async move {
            let record = ctx.record();
            let sns = record.sns().expect("SNS metadata");
            seen.lock().unwrap().push((
                args.name,
                sns.topic_arn.clone(),
                sns.subject.clone(),
                sns.message_attribute("tenant").map(str::to_owned),
                record.id().unwrap_or("").to_owned(),
            ));
            Ok::<_, BoxError>(())
        }
    };
    async fn retry_me(_: NoParams) -> Result<(), FailCatastrophically> {
        Err(FailCatastrophically::new("the mail service is down"))
    }
    Pipeline::builder()
        .path("WELCOME", [Action::new().function(welcome)])
        .path("RETRY_ME", [Action::new().function(retry_me)])
        .registry(Registry::empty())
        .event_source(SnsSource::new())
        .only_source(SnsSource::NAME)
}

async fn handle(builder: PipelineBuilder, event: &str) -> Result<Value, InvocationError> {
    builder
        .build()
        .unwrap()
        .handle(event, lambda_context(0))
        .await
}

#[test]
fn the_test_kit_writes_an_sns_event_as_aws_documents_it() {
    let text = SnsEvent::new(message("WELCOME", json!({"name": "Ada"})))
        .subject("signup")
        .attribute("tenant", "t1")
        .number_attribute("priority", 2)
        .to_string();
    let event: aws_lambda_events::sns::SnsEvent = serde_json::from_str(&text).unwrap();
    let sns = &event.records[0].sns;
    assert_eq!(event.records[0].event_source, "aws:sns");
    assert_eq!(sns.subject.as_deref(), Some("signup"));
    assert_eq!(sns.message_attributes["tenant"].value, "t1");
    assert_eq!(sns.message_attributes["priority"].data_type, "Number");
    let inner: Value = serde_json::from_str(&sns.message).unwrap();
    assert_eq!(inner["path"], "WELCOME");
}

#[tokio::test]
async fn the_message_runs_with_the_notifications_metadata_on_its_context() {
    let seen = Seen::default();
    let event = SnsEvent::new(message("WELCOME", json!({"name": "Ada"})))
        .message_id("m-1")
        .topic("signups")
        .subject("signup")
        .attribute("tenant", "t1")
        .to_string();
    let response = handle(builder(&seen), &event).await.unwrap();
    assert_eq!(response["event"], "Finished.");
    assert_eq!(response["stats"]["successes"], 1);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.as_slice(),
        [(
            "Ada".to_owned(),
            Some("arn:aws:sns:us-east-1:123456789012:signups".to_owned()),
            Some("signup".to_owned()),
            Some("t1".to_owned()),
            "m-1".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_kept_record_fails_the_invocation_so_that_lambda_retries_it() {
    let event = SnsEvent::new(message("RETRY_ME", json!({})))
        .message_id("m-2")
        .to_string();
    let e = handle(builder(&Seen::default()), &event).await.unwrap_err();
    assert_eq!(e.error_type, "FailCatastrophically");
    assert_contains(&e.error_message, "record m-2");
    assert_contains(&e.error_message, "the mail service is down");
}

#[tokio::test]
async fn a_message_that_is_not_an_lpipe_message_is_dropped_and_dead_lettered_as_it_came() {
    let dlq = MemorySink::new();
    let builder = builder(&Seen::default())
        .dead_letter_queue(Queue::sqs("sns-dropped"))
        .record_outbound(dlq.clone());
    let event = SnsEvent::text("Hello from SNS!").to_string();
    let response = handle(builder, &event).await.unwrap();
    assert_eq!(response["stats"]["dropped"], 1);
    let letters = dlq.messages();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, "Hello from SNS!");
}

#[tokio::test]
async fn another_services_event_is_refused_not_acknowledged() {
    let sqs = SqsEvent::new()
        .message(message("WELCOME", json!({"name": "Ada"})))
        .to_string();
    let e = handle(builder(&Seen::default()), &sqs).await.unwrap_err();
    assert_eq!(e.error_type, "InvalidEvent");
    // A record inside that names another service: the whole event is refused.
    let record = |source: &str| {
        let mut event: Value = serde_json::from_str(&SnsEvent::new(json!({})).to_string()).unwrap();
        event["Records"][0]["EventSource"] = json!(source);
        event["Records"][0].clone()
    };
    let mixed = json!({"Records": [record("aws:sns"), record("aws:sqs")]}).to_string();
    let e = lpipe_core::source::EventSource::decode(&SnsSource::new(), &mixed).unwrap_err();
    assert_contains(
        e.to_string(),
        "record 1 has eventSource 'aws:sqs', not 'aws:sns'",
    );
}

#[test]
fn linking_the_crate_registers_the_source() {
    assert_eq!(lpipe_sns::link(), "sns");
    assert!(Registry::from_inventory().source_names().contains(&"sns"));
}

#[tokio::test]
async fn a_notification_published_by_an_extended_client_runs_with_its_payload_from_s3() {
    use lpipe_core::payload::{
        LargePayloads, MemoryPayloadStore, PayloadPointer, PayloadStore, SIZE_ATTRIBUTE,
    };
    let store = MemoryPayloadStore::new();
    let payload = message("WELCOME", json!({"name": "Ann".repeat(100_000)})).to_string();
    store.put("payloads", "k1", &payload).await.unwrap();
    let pointer = PayloadPointer {
        bucket: "payloads".into(),
        key: "k1".into(),
    }
    .to_body();
    let seen = Seen::default();
    let pipeline = builder(&seen)
        .large_payloads(LargePayloads::new(store).allow_bucket("payloads"))
        .build()
        .unwrap();
    let event = SnsEvent::text(pointer)
        .number_attribute(SIZE_ATTRIBUTE, payload.len())
        .to_string();
    pipeline.handle(&event, lambda_context(0)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0.len(), 300_000);
}
