//! The SQS source without a server: decoding, partial batch responses, FIFO ordering.

use lpipe_core::testing::{assert_contains, lambda_context};
use lpipe_core::{
    error::InvocationError, registry::Registry, Action, BoxError, FailCatastrophically, NoParams,
    Pipeline, PipelineBuilder,
};
use lpipe_sqs::SqsSource;
use serde::Deserialize;
use serde_json::{json, Value};

const SAMPLE: &str = include_str!("fixtures/sqs-event.json");

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

fn builder() -> PipelineBuilder {
    Pipeline::builder()
        .path("GREET", [Action::new().function(greet)])
        .path("RETRY_ME", [Action::new().function(retry_me)])
        .registry(Registry::empty())
        .event_source(SqsSource::new())
}

async fn handle(builder: PipelineBuilder, event: &str) -> Result<Value, InvocationError> {
    builder
        .build()
        .unwrap()
        .handle(event, lambda_context(0))
        .await
}

#[test]
fn the_fixture_is_an_aws_sqs_event() {
    let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_str(SAMPLE).unwrap();
    assert_eq!(event.records.len(), 4);
    let again: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
    assert_eq!(event, again);
}

#[tokio::test]
async fn only_catastrophic_failures_are_listed_for_retry() {
    let response = handle(builder(), SAMPLE).await.unwrap();
    // A mistyped parameter and a body that is not JSON are dropped; RETRY_ME is kept.
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "4d3f5a21-1111-4b8f-8e2c-3c7f5b2dae12"}])
    );
    assert_eq!(
        response["stats"],
        json!({"received": 4, "successes": 1, "dropped": 2, "failed": 1})
    );
}

#[tokio::test]
async fn the_source_is_detected_among_the_registered_ones() {
    let pipeline = Pipeline::builder()
        .path("GREET", [Action::new().function(greet)])
        .path("RETRY_ME", [Action::new().function(retry_me)])
        .registry(Registry::from_inventory().with_source(std::sync::Arc::new(SqsSource::new())))
        .build()
        .unwrap();
    let response = pipeline.handle(SAMPLE, lambda_context(0)).await.unwrap();
    assert_eq!(response["stats"]["received"], 4);
    assert!(response.get("batchItemFailures").is_some());
}

fn fifo_record(id: &str, group: &str, path: &str) -> Value {
    json!({
        "messageId": id, "receiptHandle": format!("rh-{id}"),
        "body": json!({"path": path, "kwargs": {"name": id}}).to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "x",
            "ApproximateFirstReceiveTimestamp": "1", "MessageGroupId": group,
            "MessageDeduplicationId": id, "SequenceNumber": "1"},
        "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:q.fifo", "awsRegion": "us-east-2"
    })
}

#[tokio::test]
async fn a_fifo_failure_fails_the_rest_of_its_group_only() {
    let event = json!({"Records": [
        fifo_record("a1", "A", "GREET"),
        fifo_record("a2", "A", "RETRY_ME"),
        fifo_record("b1", "B", "GREET"),
        fifo_record("a3", "A", "GREET"),
        fifo_record("b2", "B", "GREET"),
    ]});
    // One record at a time, and groups side by side: the same outcome.
    for concurrency in [1, 4] {
        let response = handle(builder().concurrency(concurrency), &event.to_string())
            .await
            .unwrap();
        assert_eq!(
            response["batchItemFailures"],
            json!([{"itemIdentifier": "a2"}, {"itemIdentifier": "a3"}]),
            "concurrency {concurrency}"
        );
        assert_eq!(
            response["stats"],
            json!({"received": 5, "successes": 3, "dropped": 0, "failed": 2})
        );
    }
}

#[tokio::test]
async fn a_failed_record_without_message_id_fails_the_invocation() {
    let mut event: Value = serde_json::from_str(SAMPLE).unwrap();
    event["Records"][3]
        .as_object_mut()
        .unwrap()
        .remove("messageId");
    let err = handle(builder(), &event.to_string()).await.unwrap_err();
    assert_eq!(err.error_type, "UnreportableFailure");
    assert_contains(&err.error_message, "[3]");

    // An empty messageId is no identifier either.
    let mut event: Value = serde_json::from_str(SAMPLE).unwrap();
    event["Records"][3]["messageId"] = json!("");
    assert_eq!(
        handle(builder(), &event.to_string())
            .await
            .unwrap_err()
            .error_type,
        "UnreportableFailure"
    );
}

#[tokio::test]
async fn a_record_without_body_is_dropped_alone() {
    let mut event: Value = serde_json::from_str(SAMPLE).unwrap();
    event["Records"][0].as_object_mut().unwrap().remove("body");
    let response = handle(builder(), &event.to_string()).await.unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 4, "successes": 0, "dropped": 3, "failed": 1})
    );
}

#[tokio::test]
async fn an_event_with_a_record_of_another_source_is_refused_whole() {
    let mut event: Value = serde_json::from_str(SAMPLE).unwrap();
    event["Records"][2]["eventSource"] = json!("aws:kinesis");
    let err = handle(builder(), &event.to_string()).await.unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
    assert_contains(
        &err.error_message,
        "record 2 has eventSource 'aws:kinesis', not 'aws:sqs'",
    );
    event["Records"][2]
        .as_object_mut()
        .unwrap()
        .remove("eventSource");
    let err = handle(builder(), &event.to_string()).await.unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
    assert_contains(&err.error_message, "record 2 has no eventSource");
}

#[tokio::test]
async fn a_pipeline_pinned_to_sqs_refuses_a_kinesis_event() {
    let kinesis = json!({"Records": [{"eventSource": "aws:kinesis", "kinesis": {
        "sequenceNumber": "1", "partitionKey": "k", "data": "e30="}}]});
    let err = handle(builder().only_source("sqs"), &kinesis.to_string())
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
    assert_contains(
        &err.error_message,
        "takes only 'sqs' events, and this is not one (records of eventSource 'aws:kinesis')",
    );
}

#[test]
fn an_unknown_queue_option_fails_the_build_naming_the_known_ones() {
    use lpipe_core::{sink::MemorySink, Queue};
    let with = |queue: Queue| {
        Pipeline::builder()
            .path("FWD", [Action::new().function(greet).queue(queue)])
            .registry(Registry::from_inventory())
    };
    // A typo is caught, also when messages are only recorded (the local mode).
    for builder in [
        with(Queue::sqs("orders.fifo").option("mesage_group_id_from", "name")),
        with(Queue::sqs("orders.fifo").option("mesage_group_id_from", "name"))
            .record_outbound(MemorySink::new()),
    ] {
        let e = builder.build().unwrap_err();
        assert!(
            matches!(
                &e,
                lpipe_core::InvalidConfigurationError::Queue {
                    problem: lpipe_core::error::QueueProblem::UnknownOption { option, known },
                    ..
                } if option == "mesage_group_id_from" && known == &["message_group_id", "message_group_id_from"]
            ),
            "{e:?}"
        );
        assert_contains(
            e.to_string(),
            "queue sqs:orders.fifo has an unknown option 'mesage_group_id_from' (the sqs sink knows: message_group_id, message_group_id_from)",
        );
    }
    // Another kind's option, through its typed setter, is as unknown to SQS.
    let e = with(Queue::sqs("orders").partition_key_from("name"))
        .build()
        .unwrap_err()
        .to_string();
    assert_contains(e, "unknown option 'partition_key_from'");
    // The typed setters, and a conflict between two of them.
    assert!(
        with(Queue::sqs("orders.fifo").message_group_id_from("name"))
            .build()
            .is_ok()
    );
    let e = with(
        Queue::sqs("orders.fifo")
            .message_group_id("all")
            .message_group_id_from("name"),
    )
    .record_outbound(MemorySink::new())
    .build()
    .unwrap_err()
    .to_string();
    assert_contains(e, "set message_group_id or message_group_id_from, not both");
}

mod sns_envelope {
    //! Messages of a queue subscribed to an SNS topic without raw message delivery.

    use std::sync::{Arc, Mutex};

    use lpipe_core::sink::MemorySink;
    use lpipe_core::testing::{assert_contains, lambda_context, SnsEvent, SqsEvent, SqsRecord};
    use lpipe_core::{registry::Registry, Action, BoxError, Context, Pipeline, Queue};
    use lpipe_sqs::{SqsEnvelope, SqsSource};
    use serde_json::{json, Value};

    /// What each run saw: its kwargs, the SNS metadata, and the SQS record's id.
    type Seen = Arc<Mutex<Vec<(Value, Option<lpipe_core::source::SnsMeta>, String)>>>;

    fn pipeline(seen: &Seen, dlq: &MemorySink) -> Pipeline {
        let seen = seen.clone();
        let take = move |kwargs: Value, ctx: Context| {
            let seen = seen.clone();
            async move {
                let record = ctx.record();
                seen.lock().unwrap().push((
                    kwargs,
                    record.sns().cloned(),
                    record.id().unwrap_or("").to_owned(),
                ));
                Ok::<_, BoxError>(())
            }
        };
        Pipeline::builder()
            .path("TAKE", [Action::new().function(take)])
            .default_path("TAKE")
            .registry(Registry::empty())
            .event_source(SqsSource::new().envelope(SqsEnvelope::Sns))
            .only_source("sqs")
            .dead_letter_queue(Queue::sqs("dropped"))
            .record_outbound(dlq.clone())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_notifications_message_runs_with_its_metadata() {
        let (seen, dlq) = (Seen::default(), MemorySink::new());
        // Bare kwargs, for the pipeline's default path.
        let notification = SnsEvent::new(json!({"name": "Ada"}))
            .message_id("sns-1")
            .topic("signups")
            .subject("signup")
            .attribute("tenant", "t1")
            .notification();
        let event = SqsEvent::new()
            .record(SqsRecord::new(notification).id("sqs-1"))
            .to_string();
        let response = pipeline(&seen, &dlq)
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 1, "{response}");
        let seen = seen.lock().unwrap();
        let (kwargs, sns, id) = &seen[0];
        assert_eq!(kwargs, &json!({"name": "Ada"}));
        // The record is the SQS message (its id answers the partial batch response); the
        // notification's metadata is beside it.
        assert_eq!(id, "sqs-1");
        let sns = sns.as_ref().expect("the notification's metadata");
        assert_eq!(sns.message_id.as_deref(), Some("sns-1"));
        assert_eq!(
            sns.topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:signups")
        );
        assert_eq!(sns.subject.as_deref(), Some("signup"));
        assert_eq!(sns.message_attribute("tenant"), Some("t1"));
    }

    #[tokio::test]
    async fn a_real_world_sns_in_sqs_event_unwraps() {
        // Powertools' sample (SNS wrote the body, with its own spacing and escapes).
        let event =
            include_str!("../../lpipe/tests/realworld-events/powertools-python/snsSqsEvent.json");
        let (seen, dlq) = (Seen::default(), MemorySink::new());
        let response = pipeline(&seen, &dlq)
            .handle(event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 1, "{response}");
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[0].0,
            json!({"message": "hello world", "username": "lessa"})
        );
        let sns = seen[0].1.as_ref().unwrap();
        assert_eq!(
            sns.message_id.as_deref(),
            Some("d88d4479-6ec0-54fe-b63f-1cf9df4bb16e")
        );
        assert_eq!(sns.timestamp.as_deref(), Some("2021-01-19T10:07:07.287Z"));
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_notification_is_dropped_and_dead_lettered_as_it_came() {
        let (seen, dlq) = (Seen::default(), MemorySink::new());
        let body = r#"{"path": "TAKE", "kwargs": {"name": "Ada"}}"#;
        let event = SqsEvent::new().record(SqsRecord::new(body)).to_string();
        let response = pipeline(&seen, &dlq)
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["dropped"], 1, "{response}");
        assert!(seen.lock().unwrap().is_empty(), "never run as if unwrapped");
        let letters = dlq.messages();
        assert_eq!(letters[0].body, body);
        let why = letters[0]
            .attributes
            .iter()
            .find(|(k, _)| *k == "lpipe.error_message")
            .map(|(_, v)| v.as_str())
            .unwrap();
        assert_contains(why, "not an SNS notification");
    }

    #[tokio::test]
    async fn a_dropped_notification_goes_to_the_dead_letter_queue_whole() {
        // The message runs and is dropped (not a JSON object): its dead letter is the
        // notification as SNS wrote it, so that a redrive to the queue replays it.
        let (seen, dlq) = (Seen::default(), MemorySink::new());
        let notification = SnsEvent::text("plain text").notification();
        let event = SqsEvent::new()
            .record(SqsRecord::new(notification.clone()))
            .to_string();
        let response = pipeline(&seen, &dlq)
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["dropped"], 1, "{response}");
        assert_eq!(dlq.messages()[0].body, notification);
    }

    #[tokio::test]
    async fn without_the_envelope_declared_a_notification_is_not_unwrapped() {
        let seen = Seen::default();
        let take_all = {
            let seen = seen.clone();
            move |kwargs: Value| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push((kwargs, None, String::new()));
                    Ok::<_, BoxError>(())
                }
            }
        };
        let pipeline = Pipeline::builder()
            .path("TAKE", [Action::new().function(take_all)])
            .default_path("TAKE")
            .registry(Registry::empty())
            .event_source(SqsSource::new())
            .only_source("sqs")
            .build()
            .unwrap();
        let notification = SnsEvent::new(json!({"name": "Ada"})).notification();
        let event = SqsEvent::new()
            .record(SqsRecord::new(notification))
            .to_string();
        pipeline.handle(&event, lambda_context(0)).await.unwrap();
        assert_eq!(seen.lock().unwrap()[0].0["Type"], "Notification");
    }
}

mod eventbridge_envelope {
    //! EventBridge events a rule delivered to the queue.

    use std::sync::{Arc, Mutex};

    use lpipe_core::sink::MemorySink;
    use lpipe_core::source::EventBridgeEnvelope;
    use lpipe_core::testing::{lambda_context, message, EventBridgeEvent, SqsEvent, SqsRecord};
    use lpipe_core::{registry::Registry, Action, BoxError, Context, Pipeline, Queue};
    use lpipe_sqs::{SqsEnvelope, SqsSource};
    use serde_json::{json, Value};

    /// What each run saw: its path, kwargs and the event's detail-type.
    type Seen = Arc<Mutex<Vec<(String, Value, Option<String>)>>>;

    fn pipeline(seen: &Seen, dlq: &MemorySink) -> Pipeline {
        let recorder = |path: &'static str| {
            let seen = seen.clone();
            move |kwargs: Value, ctx: Context| {
                let seen = seen.clone();
                async move {
                    let detail_type = ctx
                        .record()
                        .eventbridge()
                        .and_then(|m| m.detail_type.clone());
                    seen.lock()
                        .unwrap()
                        .push((path.to_owned(), kwargs, detail_type));
                    Ok::<_, BoxError>(())
                }
            }
        };
        let envelope = EventBridgeEnvelope::new().route("Order Placed", "PLACE");
        Pipeline::builder()
            .path("PLACE", [Action::new().function(recorder("PLACE"))])
            .path("AUDIT", [Action::new().function(recorder("AUDIT"))])
            .registry(Registry::empty())
            .event_source(SqsSource::new().envelope(SqsEnvelope::EventBridge(envelope)))
            .only_source("sqs")
            .dead_letter_queue(Queue::sqs("dropped"))
            .record_outbound(dlq.clone())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn events_are_routed_by_detail_type_or_run_their_directed_message() {
        let (seen, dlq) = (Seen::default(), MemorySink::new());
        let routed =
            EventBridgeEvent::new("Order Placed", json!({"order_id": "o-1"})).source("shop");
        let directed = EventBridgeEvent::new("lpipe", message("AUDIT", json!({"who": "ada"})));
        let event = SqsEvent::new()
            .record(SqsRecord::new(routed.to_string()))
            .record(SqsRecord::new(directed.to_string()))
            .to_string();
        let response = pipeline(&seen, &dlq)
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 2, "{response}");
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            [
                (
                    "PLACE".to_owned(),
                    json!({"order_id": "o-1"}),
                    Some("Order Placed".to_owned())
                ),
                (
                    "AUDIT".to_owned(),
                    json!({"who": "ada"}),
                    Some("lpipe".to_owned())
                ),
            ]
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_event_is_dropped_and_dead_lettered_as_it_came() {
        let (seen, dlq) = (Seen::default(), MemorySink::new());
        let body = r#"{"path": "PLACE", "kwargs": {"order_id": "o-1"}}"#;
        let event = SqsEvent::new().record(SqsRecord::new(body)).to_string();
        let response = pipeline(&seen, &dlq)
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["dropped"], 1, "{response}");
        assert!(seen.lock().unwrap().is_empty());
        assert_eq!(dlq.messages()[0].body, body);
        let why = &dlq.messages()[0].attributes;
        assert!(
            why.iter()
                .any(|(k, v)| *k == "lpipe.error_message" && v.contains("not an EventBridge event")),
            "{why:?}"
        );
        // An event that runs and is dropped goes to the dead-letter queue whole.
        let unrouted = EventBridgeEvent::new("Unknown", json!({"x": 1})).to_string();
        let event = SqsEvent::new()
            .record(SqsRecord::new(unrouted.clone()))
            .to_string();
        let response = pipeline(&seen, &dlq)
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        // Bare kwargs and no default path: dropped, naming why.
        assert_eq!(response["stats"]["dropped"], 1, "{response}");
        assert_eq!(dlq.messages()[1].body, unrouted);
    }
}

mod s3_envelope {
    //! S3 event notifications a bucket sends to the queue.

    use std::sync::{Arc, Mutex};

    use lpipe_core::sink::MemorySink;
    use lpipe_core::source::S3Envelope;
    use lpipe_core::testing::{lambda_context, SqsEvent, SqsRecord};
    use lpipe_core::{registry::Registry, Action, BoxError, Pipeline, Queue};
    use lpipe_sqs::{SqsEnvelope, SqsSource};
    use serde_json::{json, Value};

    type Seen = Arc<Mutex<Vec<Value>>>;

    fn pipeline(seen: &Seen, dlq: &MemorySink) -> Pipeline {
        let seen = seen.clone();
        let ingest = move |kwargs: Value| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(kwargs);
                Ok::<_, BoxError>(())
            }
        };
        let routes = S3Envelope::new().route("ObjectCreated:*", "INGEST");
        Pipeline::builder()
            .path("INGEST", [Action::new().function(ingest)])
            .registry(Registry::empty())
            .event_source(SqsSource::new().envelope(SqsEnvelope::S3(routes)))
            .only_source("sqs")
            .dead_letter_queue(Queue::sqs("dropped"))
            .record_outbound(dlq.clone())
            .build()
            .unwrap()
    }

    fn notification(event_name: &str, key: &str) -> String {
        json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-12-06T12:00:00.000Z", "eventName": event_name,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "uploads",
                   "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
                   "object": {"key": key, "size": 7, "eTag": "e-1", "sequencer": "0A1"}}
        }]})
        .to_string()
    }

    #[tokio::test]
    async fn a_real_world_s3_in_sqs_event_runs_its_route_with_the_objects_kwargs() {
        let event =
            include_str!("../../lpipe/tests/realworld-events/powertools-python/s3SqsEvent.json");
        let seen = Seen::default();
        let dlq = MemorySink::new();
        let response = pipeline(&seen, &dlq)
            .handle(event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 1, "{response}");
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            [json!({
                "bucket": "xxx", "key": "test.pdf", "size": 104681,
                "etag": "2e3ad1e983318bbd8e73b080e2997980",
                "version_id": "yd3d4HaWOT2zguDLvIQLU6ptDTwKBnQV", "sequencer": "00643717F9F8B85354"
            })]
        );
    }

    #[tokio::test]
    async fn keys_are_url_decoded_test_events_acknowledged_and_unrouted_events_dropped() {
        let seen = Seen::default();
        let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent",
            "Time": "2026-12-06T12:00:00.000Z", "Bucket": "uploads"})
        .to_string();
        let event = SqsEvent::new()
            .record(SqsRecord::new(notification(
                "ObjectCreated:Put",
                "q1+report%3A%C3%A9.pdf",
            )))
            .record(SqsRecord::new(test_event))
            .record(SqsRecord::new(notification(
                "ObjectRemoved:Delete",
                "gone.pdf",
            )))
            .to_string();
        let dlq = MemorySink::new();
        let response = pipeline(&seen, &dlq)
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        // The object ran; the test event succeeded without running; the unrouted one dropped.
        assert_eq!(response["stats"]["successes"], 2, "{response}");
        assert_eq!(response["stats"]["dropped"], 1, "{response}");
        assert_eq!(response["batchItemFailures"], json!([]));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0]["key"], "q1 report:é.pdf");
        let letters = dlq.messages();
        assert_eq!(letters.len(), 1, "only the unrouted event is dead-lettered");
        assert_eq!(
            letters[0].body,
            notification("ObjectRemoved:Delete", "gone.pdf")
        );
        let why = letters[0]
            .attributes
            .iter()
            .find(|(k, _)| *k == "lpipe.error_message");
        assert!(
            why.is_some_and(|(_, v)| v.contains("no route for the S3 event ObjectRemoved:Delete")),
            "{why:?}"
        );
    }
}

mod s3_through_sns_and_eventbridge {
    //! S3 notifications that reach the queue through an SNS topic, and S3 events a rule sends
    //! from EventBridge.

    use std::sync::{Arc, Mutex};

    use lpipe_core::source::{EventBridgeEnvelope, S3Envelope};
    use lpipe_core::testing::{lambda_context, S3Event, SnsEvent, SqsEvent, SqsRecord};
    use lpipe_core::{registry::Registry, Action, BoxError, Pipeline};
    use lpipe_sqs::{SqsEnvelope, SqsSource};
    use serde_json::{json, Value};

    type Seen = Arc<Mutex<Vec<Value>>>;

    fn pipeline(seen: &Seen, envelope: SqsEnvelope) -> Pipeline {
        let seen = seen.clone();
        let ingest = move |kwargs: Value| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(kwargs);
                Ok::<_, BoxError>(())
            }
        };
        Pipeline::builder()
            .path("INGEST", [Action::new().function(ingest)])
            .path(
                "AUDIT",
                [Action::new().function(|_: Value| async { Ok::<_, BoxError>(()) })],
            )
            .registry(Registry::empty())
            .event_source(SqsSource::new().envelope(envelope))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn s3_notifications_in_sns_notifications_run_their_route() {
        let seen = Seen::default();
        let routes = S3Envelope::new().route("ObjectCreated:*", "INGEST");
        let created = S3Event::new("ObjectCreated:Put", "uploads", "q1 report.pdf").size(7);
        let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent",
            "Time": "2026-12-06T12:00:00.000Z", "Bucket": "uploads"});
        let event = SqsEvent::new()
            .record(SqsRecord::new(
                SnsEvent::text(created.notification()).notification(),
            ))
            .record(SqsRecord::new(SnsEvent::new(test_event).notification()))
            // An SNS notification whose message is not S3's.
            .record(SqsRecord::new(
                SnsEvent::new(json!({"a": 1})).notification(),
            ))
            // An S3 notification that did not come through SNS.
            .record(SqsRecord::new(created.notification()))
            .to_string();
        let response = pipeline(&seen, SqsEnvelope::SnsS3(routes))
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 2, "{response}");
        assert_eq!(response["stats"]["dropped"], 2, "{response}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0]["key"], "q1 report.pdf");
        assert_eq!(seen[0]["bucket"], "uploads");
    }

    #[tokio::test]
    async fn s3_events_from_eventbridge_run_their_route_beside_other_events() {
        let seen = Seen::default();
        let envelope = EventBridgeEnvelope::new()
            .route("Audit Entry", "AUDIT")
            .s3(S3Envelope::new().route("Object Created", "INGEST"));
        let created = include_str!(
            "../../lpipe/tests/realworld-events/powertools-python/s3EventBridgeNotificationObjectCreatedEvent.json"
        );
        let deleted = created.replace("Object Created", "Object Deleted");
        let audit =
            json!({"id": "e2", "source": "audits", "detail-type": "Audit Entry", "detail": {}});
        let event = SqsEvent::new()
            .record(SqsRecord::new(created))
            .record(SqsRecord::new(deleted))
            .record(SqsRecord::new(audit.to_string()))
            .to_string();
        let response = pipeline(&seen, SqsEnvelope::EventBridge(envelope))
            .handle(&event, lambda_context(0))
            .await
            .unwrap();
        // Created and the audit entry run; Object Deleted has no S3 route: dropped.
        assert_eq!(response["stats"]["successes"], 2, "{response}");
        assert_eq!(response["stats"]["dropped"], 1, "{response}");
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            [
                json!({"bucket": "example-bucket", "key": "IMG_m7fzo3.jpg", "size": 184662,
                    "etag": "4e68adba0abe2dc8653dc3354e14c01d", "sequencer": "006408CAD69598B05E"})
            ]
        );
    }
}

mod keyed_by_message_id {
    //! `Idempotency::key_from_message_id`: the producer's id, not the kwargs, says what a
    //! duplicate is.

    use std::sync::{Arc, Mutex};

    use lpipe_core::idempotency::MemoryIdempotencyStore;
    use lpipe_core::sink::MESSAGE_ID_ATTRIBUTE;
    use lpipe_core::source::RawSource;
    use lpipe_core::testing::{lambda_context, message, raw_event, SnsEvent, SqsEvent, SqsRecord};
    use lpipe_core::{registry::Registry, Action, BoxError, Idempotency, Pipeline};
    use lpipe_sqs::{SqsEnvelope, SqsSource};
    use serde_json::{json, Value};

    fn pipeline(source: SqsSource, runs: &Arc<Mutex<usize>>) -> Pipeline {
        let runs = runs.clone();
        let count = move |_: Value| {
            let runs = runs.clone();
            async move {
                *runs.lock().unwrap() += 1;
                Ok::<_, BoxError>(())
            }
        };
        Pipeline::builder()
            .path("COUNT", [Action::new().function(count)])
            .registry(Registry::empty())
            .event_source(source)
            .event_source(RawSource)
            .idempotent(Idempotency::new(MemoryIdempotencyStore::new()).key_from_message_id())
            .build()
            .unwrap()
    }

    fn notification(sns_id: &str, n: u32) -> String {
        SnsEvent::new(message("COUNT", json!({"n": n})))
            .message_id(sns_id)
            .notification()
    }

    #[tokio::test]
    async fn an_sns_message_delivered_twice_runs_once_and_equal_kwargs_in_two_messages_run_twice() {
        let runs = Arc::new(Mutex::new(0));
        let pipeline = pipeline(SqsSource::new().envelope(SqsEnvelope::Sns), &runs);
        let event = SqsEvent::new()
            // SNS delivered one notification twice (two SQS messages).
            .record(SqsRecord::new(notification("sns-1", 1)).id("sqs-1"))
            .record(SqsRecord::new(notification("sns-1", 1)).id("sqs-2"))
            // Two notifications with equal kwargs: two messages.
            .record(SqsRecord::new(notification("sns-2", 2)).id("sqs-3"))
            .record(SqsRecord::new(notification("sns-3", 2)).id("sqs-4"))
            .to_string();
        let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
        assert_eq!(response["stats"]["successes"], 4, "{response}");
        assert_eq!(*runs.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn the_lpipe_message_id_of_a_resent_message_says_it_is_the_same() {
        let runs = Arc::new(Mutex::new(0));
        let pipeline = pipeline(SqsSource::new(), &runs);
        let record = |sqs_id: &str, lpipe_id: &str| {
            SqsRecord::new(message("COUNT", json!({"n": 1})))
                .id(sqs_id)
                .attribute(MESSAGE_ID_ATTRIBUTE, lpipe_id)
        };
        let event = SqsEvent::new()
            // The producer's record was retried: its message sent twice, one lpipe id.
            .record(record("sqs-1", "producer-record-7:0"))
            .record(record("sqs-2", "producer-record-7:0"))
            .record(record("sqs-3", "producer-record-8:0"))
            .to_string();
        pipeline.handle(&event, lambda_context(0)).await.unwrap();
        assert_eq!(*runs.lock().unwrap(), 2);
        // Without the attribute, the SQS messageId: a redelivery runs once more only if new.
        let event = SqsEvent::new()
            .record(SqsRecord::new(message("COUNT", json!({"n": 1}))).id("sqs-9"))
            .record(SqsRecord::new(message("COUNT", json!({"n": 1}))).id("sqs-9"))
            .to_string();
        pipeline.handle(&event, lambda_context(0)).await.unwrap();
        assert_eq!(*runs.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn a_direct_invocation_has_no_message_id_and_says_so() {
        let runs = Arc::new(Mutex::new(0));
        let pipeline = pipeline(SqsSource::new(), &runs);
        let err = pipeline
            .handle(
                &raw_event(&[message("COUNT", json!({"n": 1}))]),
                lambda_context(0),
            )
            .await;
        // Dropped, not run (the reason is logged and reported).
        let response = err.unwrap();
        assert_eq!(response["stats"]["dropped"], 1, "{response}");
        assert_eq!(*runs.lock().unwrap(), 0);
    }
}
