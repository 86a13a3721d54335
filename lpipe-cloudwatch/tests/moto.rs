//! The EventBridge sink against a real events API: the moto_server started by the test command.
//! A rule on a bus targets an SQS queue; what the sink puts must arrive there, and an SQS
//! consumer with the EventBridge envelope declared runs it. These tests are ignored by default
//! (each says why: they need moto_server); `./scripts/test` starts one and runs them with
//! `--include-ignored`. Run without a server, they fail, naming what they need.

use lpipe_cloudwatch::EventBridgeSink;
use lpipe_core::testing::{
    assert_contains, lambda_context, message, moto_endpoint, raw_event, unique_name,
};
use lpipe_core::testing::{SqsEvent, SqsRecord};
use lpipe_core::{
    registry::Registry,
    source::{EventBridgeEnvelope, RawSource},
    Action, Pipeline, Queue, QueueKind,
};
use lpipe_sqs::{SqsEnvelope, SqsSource};
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
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            bodies.push(m.body().unwrap().to_owned());
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

    // The consumer of that queue: an SQS source with the EventBridge envelope declared runs
    // each event's directed message (path NEXT) with the event's metadata on its context.
    let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let next = {
        let ran = ran.clone();
        move |args: Value, ctx: lpipe_core::Context| {
            let ran = ran.clone();
            async move {
                let meta = ctx
                    .record()
                    .eventbridge()
                    .cloned()
                    .expect("the event's metadata");
                ran.lock()
                    .unwrap()
                    .push((args["i"].as_i64().unwrap(), meta.source));
                Ok::<_, lpipe_core::BoxError>(())
            }
        }
    };
    let consumer = Pipeline::builder()
        .path("NEXT", [Action::new().function(next)])
        .registry(Registry::empty())
        .event_source(
            SqsSource::new().envelope(SqsEnvelope::EventBridge(EventBridgeEnvelope::new())),
        )
        .only_source("sqs")
        .build()
        .unwrap();
    let event = bodies
        .into_iter()
        .fold(SqsEvent::new(), |event, body| {
            event.record(SqsRecord::new(body))
        })
        .to_string();
    let response = consumer.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["successes"], 12, "{response}");
    let mut ran = ran.lock().unwrap().clone();
    ran.sort_unstable();
    let expected: Vec<(i64, Option<String>)> = (0..12).map(|i| (i, Some(source.clone()))).collect();
    assert_eq!(ran, expected);
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

/// Records the JSON body of every PutEvents request the client sends.
#[derive(Clone, Debug, Default)]
struct RecordPutEvents(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);

impl aws_sdk_cloudwatchevents::config::Intercept for RecordPutEvents {
    fn name(&self) -> &'static str {
        "RecordPutEvents"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_cloudwatchevents::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_cloudwatchevents::config::RuntimeComponents,
        _: &mut aws_sdk_cloudwatchevents::config::ConfigBag,
    ) -> Result<(), aws_sdk_cloudwatchevents::error::BoxError> {
        let request = context.request();
        if request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with("PutEvents"))
        {
            let body = request.body().bytes().expect("a buffered body");
            self.0.lock().unwrap().push(serde_json::from_slice(body)?);
        }
        Ok(())
    }
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn put_events_carry_the_invocations_trace_header() {
    moto_endpoint("put_events_carry_the_invocations_trace_header");
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let requests = RecordPutEvents::default();
    let events = aws_sdk_cloudwatchevents::Client::from_conf(
        aws_sdk_cloudwatchevents::config::Builder::from(&config)
            .interceptor(requests.clone())
            .build(),
    );
    let bus = unique_name("traced-bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let pipeline = Pipeline::builder()
        .path(
            "FWD",
            [Action::new()
                .include_all_params()
                .queue(Queue::eventbridge(&bus).path("NEXT"))],
        )
        .registry(Registry::empty())
        .event_source(RawSource)
        .sink(QueueKind::EVENTBRIDGE, EventBridgeSink::with_client(events))
        .build()
        .unwrap();
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let mut context = lambda_context(0);
    context.xray_trace_id = Some(header.to_owned());
    let event = raw_event(&[
        message("FWD", json!({"n": 1})),
        message("FWD", json!({"n": 2})),
    ]);
    pipeline.handle(&event, context).await.unwrap();
    let entries: Vec<Value> = requests
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r["Entries"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        assert_eq!(entry["TraceHeader"], header, "{entry}");
    }

    // Without a trace header, none is sent.
    requests.0.lock().unwrap().clear();
    pipeline
        .handle(
            &raw_event(&[message("FWD", json!({"n": 3}))]),
            lambda_context(0),
        )
        .await
        .unwrap();
    let sent = requests.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]["Entries"][0].get("TraceHeader").is_none(),
        "{sent:?}"
    );
}
