//! The Kinesis source without a server: decoding, partial batch responses, stop-on-failure.

use lpipe_core::testing::{assert_contains, lambda_context};
use lpipe_core::{
    error::InvocationError, registry::Registry, Action, BoxError, FailCatastrophically, NoParams,
    Pipeline, PipelineBuilder,
};
use lpipe_kinesis::KinesisSource;
use serde::Deserialize;
use serde_json::{json, Value};

const SAMPLE: &str = include_str!("fixtures/kinesis-event.json");

#[derive(Deserialize)]
struct Greet {
    name: String,
}

async fn greet(args: Greet) -> Result<String, BoxError> {
    Ok(format!("hello {}", args.name))
}

async fn retry_me(_: NoParams) -> Result<(), FailCatastrophically> {
    Err(FailCatastrophically::new(
        "the downstream service is unavailable",
    ))
}

fn builder(source: KinesisSource) -> PipelineBuilder {
    Pipeline::builder()
        .path("GREET", [Action::new().function(greet)])
        .path("RETRY_ME", [Action::new().function(retry_me)])
        .registry(Registry::empty())
        .event_source(source)
}

async fn handle(builder: PipelineBuilder, event: &str) -> Result<Value, InvocationError> {
    builder
        .build()
        .unwrap()
        .handle(event, lambda_context(0))
        .await
}

#[test]
fn the_fixture_is_an_aws_kinesis_event() {
    // aws_lambda_events rejects the whole event for one record that is not base64 (which is
    // why lpipe decodes records itself: a bad record must touch only itself) ...
    assert!(serde_json::from_str::<aws_lambda_events::kinesis::KinesisEvent>(SAMPLE).is_err());
    // ... and reads the others as AWS documents them.
    let mut event: Value = serde_json::from_str(SAMPLE).unwrap();
    event["Records"].as_array_mut().unwrap().remove(2);
    let event: aws_lambda_events::kinesis::KinesisEvent = serde_json::from_value(event).unwrap();
    assert_eq!(event.records.len(), 4);
    let again: aws_lambda_events::kinesis::KinesisEvent =
        serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
    assert_eq!(event, again);
}

#[tokio::test]
async fn after_a_failure_later_records_are_not_run_and_are_reported() {
    let response = handle(builder(KinesisSource::new()), SAMPLE).await.unwrap();
    // Record 1 is not JSON and record 2 not base64: dropped alone. Record 3 fails; record 4 is
    // not run and is reported with it.
    assert_eq!(
        response["batchItemFailures"],
        json!([
            {"itemIdentifier": "49590338271490256608559692540925702759324208523137515620"},
            {"itemIdentifier": "49590338271490256608559692540925702759324208523137515621"}
        ])
    );
    assert_eq!(
        response["stats"],
        json!({"received": 5, "successes": 1, "dropped": 2, "failed": 2})
    );
}

#[tokio::test]
async fn without_partial_responses_a_failure_fails_the_invocation() {
    let err = handle(builder(KinesisSource::without_partial_responses()), SAMPLE)
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "FailCatastrophically");
    assert_contains(
        &err.error_message,
        "49590338271490256608559692540925702759324208523137515620",
    );
    let ok =
        json!({"Records": [serde_json::from_str::<Value>(SAMPLE).unwrap()["Records"][0].clone()]});
    let response = handle(
        builder(KinesisSource::without_partial_responses()),
        &ok.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
}

#[tokio::test]
async fn the_source_is_detected_among_the_registered_ones() {
    let pipeline = Pipeline::builder()
        .path("GREET", [Action::new().function(greet)])
        .path("RETRY_ME", [Action::new().function(retry_me)])
        .registry(Registry::from_inventory().with_source(std::sync::Arc::new(KinesisSource::new())))
        .build()
        .unwrap();
    let response = pipeline.handle(SAMPLE, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["received"], 5);
}

#[tokio::test]
async fn an_event_with_a_record_of_another_source_is_refused_whole() {
    let mut event: Value = serde_json::from_str(SAMPLE).unwrap();
    event["Records"][1]["eventSource"] = json!("aws:sqs");
    let err = handle(builder(KinesisSource::new()), &event.to_string())
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
    assert_contains(
        &err.error_message,
        "record 1 has eventSource 'aws:sqs', not 'aws:kinesis'",
    );
}

#[tokio::test]
async fn a_pipeline_pinned_to_kinesis_refuses_an_sqs_event() {
    let sqs = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}]});
    let err = handle(
        builder(KinesisSource::new()).only_source("kinesis"),
        &sqs.to_string(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
    assert_contains(
        &err.error_message,
        "takes only 'kinesis' events, and this is not one (records of eventSource 'aws:sqs')",
    );
}
