//! A program that uses the facade but names none of its plugins (no `lpipe::sqs::…`, no
//! `lpipe::run`, no `lpipe::registry()`) still gets the enabled plugins' event sources and
//! sinks: naming the facade links it, and it links the plugins its features enable.

use lpipe::{registry::Registry, Action, Pipeline, Queue};

#[tokio::test]
async fn a_pipeline_built_through_the_facade_sees_the_enabled_plugins() {
    let registry = Registry::from_inventory();
    let mut sources = vec!["cloudwatch", "kinesis", "raw", "sqs"];
    if cfg!(feature = "dynamodb") {
        sources.push("dynamodb");
    }
    if cfg!(feature = "sns-source") {
        sources.push("sns");
    }
    if cfg!(feature = "s3-source") {
        sources.push("s3");
    }
    sources.sort_unstable();
    assert_eq!(registry.source_names(), sources);
    let mut sinks = vec!["eventbridge", "kinesis", "sqs"];
    if cfg!(feature = "sns") {
        sinks.push("sns");
    }
    sinks.sort_unstable();
    assert_eq!(registry.sink_kinds(), sinks);

    // Queues of every built-in kind find their sinks without a registry given.
    let pipeline = Pipeline::builder()
        .detect_source()
        .path(
            "A",
            [Action::new()
                .queue(Queue::sqs("q"))
                .queue(Queue::kinesis("s"))
                .queue(Queue::eventbridge("bus"))],
        )
        .build();
    assert!(
        pipeline.is_ok(),
        "{:?}",
        pipeline.err().map(|e| e.to_string())
    );

    // An SQS event is recognised (an unknown path drops the record, it is not refused).
    let pipeline = Pipeline::builder()
        .detect_source()
        .path("A", [Action::new().queue(Queue::sqs("q"))])
        .build()
        .unwrap();
    let event = r#"{"Records": [{"messageId": "m1", "receiptHandle": "h", "body": "{\"path\": \"NOPE\", \"kwargs\": {}}",
        "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:in", "awsRegion": "us-east-1"}]}"#;
    let response = pipeline
        .handle(event, lpipe::lambda_runtime::Context::default())
        .await
        .expect("the sqs source took the event");
    assert_eq!(response["stats"]["received"], 1, "{response}");
    assert_eq!(response["stats"]["dropped"], 1, "{response}");
}
