//! The CloudWatch Events / EventBridge source with AWS's sample events.

use lpipe_cloudwatch::CloudWatchSource;
use lpipe_core::testing::{assert_contains, lambda_context};
use lpipe_core::{
    error::InvocationError, registry::Registry, source::RawSource, Action, BoxError,
    FailCatastrophically, NoParams, Pipeline, PipelineBuilder,
};
use serde::Deserialize;
use serde_json::{json, Value};

const SCHEDULED: &str = include_str!("fixtures/scheduled-event.json");
const CUSTOM: &str = include_str!("fixtures/custom-event.json");

#[derive(Deserialize)]
struct Greet {
    name: String,
}

async fn greet(args: Greet) -> Result<String, BoxError> {
    Ok(format!("hello {}", args.name))
}

async fn nightly(_: NoParams) -> Result<&'static str, BoxError> {
    Ok("nightly ran")
}

async fn retry_me(_: NoParams) -> Result<(), FailCatastrophically> {
    Err(FailCatastrophically::new("not now"))
}

fn builder(source: CloudWatchSource) -> PipelineBuilder {
    Pipeline::builder()
        .path("GREET", [Action::new().function(greet)])
        .path("NIGHTLY", [Action::new().function(nightly)])
        .path("RETRY_ME", [Action::new().function(retry_me)])
        .registry(Registry::empty())
        .event_source(RawSource)
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
fn the_fixtures_are_aws_events() {
    for text in [SCHEDULED, CUSTOM] {
        let event: aws_lambda_events::cloudwatch_events::CloudWatchEvent =
            serde_json::from_str(text).unwrap();
        let again: aws_lambda_events::cloudwatch_events::CloudWatchEvent =
            serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(event, again);
    }
}

#[tokio::test]
async fn a_scheduled_event_is_routed_by_detail_type() {
    let response = handle(
        builder(CloudWatchSource::new().route("Scheduled Event", "NIGHTLY")),
        SCHEDULED,
    )
    .await
    .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 1, "successes": 1, "dropped": 0, "failed": 0})
    );
    assert_eq!(response["output"], json!(["nightly ran"]));
}

#[tokio::test]
async fn an_unrouted_scheduled_event_runs_the_default_path_or_is_dropped() {
    let response = handle(
        builder(CloudWatchSource::new()).default_path("NIGHTLY"),
        SCHEDULED,
    )
    .await
    .unwrap();
    assert_eq!(response["stats"]["successes"], 1);
    let response = handle(builder(CloudWatchSource::new()), SCHEDULED)
        .await
        .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 1, "successes": 0, "dropped": 1, "failed": 0})
    );
}

#[tokio::test]
async fn a_directed_detail_runs_its_path_even_with_a_default_path() {
    let response = handle(
        builder(CloudWatchSource::new()).default_path("NIGHTLY"),
        CUSTOM,
    )
    .await
    .unwrap();
    assert_eq!(response["output"], json!(["hello Ann"]));
}

#[tokio::test]
async fn a_catastrophic_failure_fails_the_invocation_a_drop_returns() {
    let mut event: Value = serde_json::from_str(CUSTOM).unwrap();
    event["detail"] = json!({"path": "RETRY_ME", "kwargs": {}});
    let err = handle(builder(CloudWatchSource::new()), &event.to_string())
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "FailCatastrophically");
    assert_contains(&err.error_message, "6a7e8feb-b491-4cf7-a9f1-bf3703467718");
    event["detail"] = json!({"path": "GREET", "kwargs": {"name": 5}});
    let response = handle(builder(CloudWatchSource::new()), &event.to_string())
        .await
        .unwrap();
    assert_eq!(response["stats"]["dropped"], 1);
}

#[tokio::test]
async fn a_constant_rule_input_is_the_raw_sources() {
    let response = handle(
        builder(CloudWatchSource::new()),
        r#"{"path": "GREET", "kwargs": {"name": "Bo"}}"#,
    )
    .await
    .unwrap();
    assert_eq!(response["output"], json!(["hello Bo"]));
}

#[tokio::test]
async fn s3_events_run_their_s3_route_with_the_objects_kwargs() {
    use lpipe_core::source::S3Envelope;
    let seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let noted = seen.clone();
    let ingest = move |kwargs: Value| {
        let noted = noted.clone();
        async move {
            noted.lock().unwrap().push(kwargs);
            Ok::<_, BoxError>(())
        }
    };
    let source = CloudWatchSource::new().s3(S3Envelope::new().route("Object *", "INGEST"));
    let pipeline = Pipeline::builder()
        .path("INGEST", [Action::new().function(ingest)])
        .registry(Registry::empty())
        .event_source(source)
        .build()
        .unwrap();
    let created = include_str!(
        "../../lpipe/tests/realworld-events/lambda-dotnet/EventsTests.Shared/cloudwatchevents-s3objectcreated.json"
    );
    pipeline.handle(created, lambda_context(0)).await.unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [
            json!({"bucket": "DOC-EXAMPLE-BUCKET1", "key": "example-key", "size": 5,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "version_id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "617f08299329d189"})
        ]
    );
    // An S3 event no route takes is dropped, saying so (the invocation succeeds).
    let restored = created.replace("Object Created", "Restore Completed");
    let response = pipeline.handle(&restored, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["dropped"], 1, "{response}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}
