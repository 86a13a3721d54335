//! The EventBridge sink against a real events API: the moto_server started by the test command.
//! A rule on a bus targets an SQS queue; what the sink puts must arrive there. Without the
//! server these tests say they are skipped, unless `LPIPE_REQUIRE_MOTO=1`, when they fail.

use lpipe_cloudwatch::EventBridgeSink;
use lpipe_core::testing::{
    assert_contains, lambda_context, message, moto_endpoint, raw_event, unique_name,
};
use lpipe_core::{Action, Pipeline, Queue, QueueKind, RawSource, Registry};
use serde_json::{json, Value};

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn a_rule_on_the_bus_receives_what_the_sink_puts() {
    moto_endpoint("a_rule_on_the_bus_receives_what_the_sink_puts");
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let events = aws_sdk_cloudwatchevents::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);

    let bus = unique_name("bus");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("CreateEventBus");
    let queue = unique_name("from-bus");
    let url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{queue}");
    let source = unique_name("lpipe.test");
    events
        .put_rule()
        .name(unique_name("rule"))
        .event_bus_name(&bus)
        .event_pattern(json!({"source": [source]}).to_string())
        .send()
        .await
        .expect("PutRule");
    let rule = events
        .list_rules()
        .event_bus_name(&bus)
        .send()
        .await
        .unwrap()
        .rules
        .unwrap()
        .remove(0);
    events
        .put_targets()
        .rule(rule.name.unwrap())
        .event_bus_name(&bus)
        .targets(
            aws_sdk_cloudwatchevents::types::Target::builder()
                .id("q")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("PutTargets");

    let sink = EventBridgeSink::with_client(events.clone());
    let pipeline = Pipeline::builder()
        .path(
            "FWD",
            [Action::new()
                .include_all_params()
                .queue(Queue::eventbridge(&bus).path("NEXT").event_source(&source))],
        )
        .registry(Registry::empty())
        .event_source(RawSource)
        .sink(QueueKind::EVENTBRIDGE, sink.clone())
        .build()
        .unwrap();
    let messages: Vec<Value> = (0..12).map(|i| message("FWD", json!({"i": i}))).collect();
    let response = pipeline
        .handle(&raw_event(&messages), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 12, "{response}");
    assert_eq!(sink.put_events_calls(), 2, "10 entries per PutEvents call");

    let mut seen = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(event["source"], source.as_str());
            assert_eq!(event["detail-type"], "NEXT");
            assert_eq!(event["detail"]["path"], "NEXT");
            seen.push(event["detail"]["kwargs"]["i"].as_i64().unwrap());
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if seen.len() >= 12 {
            break;
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..12).collect::<Vec<i64>>());
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn a_missing_bus_fails_the_records_that_targeted_it() {
    moto_endpoint("a_missing_bus_fails_the_records_that_targeted_it");
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let events = aws_sdk_cloudwatchevents::Client::new(&config);
    let pipeline = Pipeline::builder()
        .path(
            "FWD",
            [Action::new()
                .include_all_params()
                .queue(Queue::eventbridge(unique_name("no-bus")))],
        )
        .registry(Registry::empty())
        .event_source(RawSource)
        .sink(QueueKind::EVENTBRIDGE, EventBridgeSink::with_client(events))
        .build()
        .unwrap();
    let result = pipeline
        .handle(
            &raw_event(&[message("FWD", json!({"i": 1}))]),
            lambda_context(0),
        )
        .await;
    let err = result.expect_err("a bus that does not exist cannot receive events");
    assert_contains(&err.error_message, "record 0 (Undeliverable");
}
