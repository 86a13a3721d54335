//! The dispatcher's semantics: outcomes, typed parameters, the graph's validation, the depth
//! bound, the outbox's batching and retries, ordering and deadlines.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use lpipe_core::testing::CapturingReporter;
use lpipe_core::testing::{
    assert_contains, assert_not_contains, lambda_context, message, raw_event,
};
use lpipe_core::{
    async_trait,
    error::InvocationError,
    registry::Registry,
    sink::{MemorySink, RetryPolicy, SinkLimits},
    source::{BatchResult, EventProbe, EventSource, InvalidEvent, Record, RecordOrder},
    Action, BoxError, ErrorKind, FailButContinue, FailCatastrophically, NoParams, OnError, Outcome,
    Payload, Pipeline, PipelineBuilder, Queue, QueueKind,
};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Foo {
    foo: String,
}

async fn needs_foo(args: Foo) -> Result<String, BoxError> {
    Ok(args.foo)
}

async fn boom(_: NoParams) -> Result<(), BoxError> {
    panic!("boom at the user's own code");
}

#[derive(Deserialize)]
struct Typed {
    #[allow(dead_code)]
    user_id: i64,
}

async fn typed(_: Typed) -> Result<(), BoxError> {
    Ok(())
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        backoff: lpipe_core::sink::Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
    }
}

async fn run(builder: PipelineBuilder, messages: &[Value]) -> Result<Value, InvocationError> {
    let pipeline = builder.build().expect("valid pipeline");
    pipeline
        .handle(&raw_event(messages), lambda_context(0))
        .await
}

#[tokio::test]
async fn a_panic_drops_only_its_record() {
    let reporter = CapturingReporter::new();
    let builder = Pipeline::builder()
        .path("BOOM", [Action::new().function(boom)])
        .path("OK", [Action::new().function(needs_foo)])
        .reporter(reporter.clone());
    let response = run(
        builder,
        &[
            message("OK", json!({"foo": "a"})),
            message("BOOM", json!({})),
            message("OK", json!({"foo": "b"})),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 3, "successes": 2, "dropped": 1, "failed": 0})
    );
    assert_eq!(response["output"], json!(["a", null, "b"]));
    let reports = reporter.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].record_id.as_deref(), Some("1"));
    assert_eq!(reports[0].kind, ErrorKind::Panic);
    assert_eq!(reports[0].outcome, Outcome::Dropped);
    assert_contains(&reports[0].message, "boom at the user's own code");
}

#[tokio::test]
async fn a_mistyped_or_missing_parameter_names_the_field_and_the_path() {
    let reporter = CapturingReporter::new();
    let builder = Pipeline::builder()
        .path("TYPED", [Action::new().function(typed)])
        .reporter(reporter.clone());
    let response = run(
        builder,
        &[
            message("TYPED", json!({"user_id": "seven"})),
            message("TYPED", json!({})),
            message("TYPED", json!({"user_id": 7})),
        ],
    )
    .await
    .unwrap();
    assert_eq!(response["stats"]["successes"], 1);
    assert_eq!(response["stats"]["dropped"], 2);
    let reports = reporter.reports();
    assert_eq!(reports[0].kind, ErrorKind::InvalidPayload);
    assert_contains(&reports[0].message, "`user_id`");
    assert_contains(&reports[0].message, "path TYPED");
    assert_contains(&reports[0].message, "in typed");
    assert_contains(&reports[1].message, "missing field `user_id`");
}

#[tokio::test]
async fn bad_messages_are_dropped_with_their_reason() {
    let reporter = CapturingReporter::new();
    let builder = Pipeline::builder()
        .path("OK", [Action::new().function(needs_foo)])
        .reporter(reporter.clone());
    let response = run(
        builder,
        &[
            json!({}),
            json!({"path": "NOPE", "kwargs": {}}),
            json!({"path": "OK", "kwargs": [1]}),
            json!("not json"),
            json!(17),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 5, "successes": 0, "dropped": 5, "failed": 0})
    );
    let kinds: Vec<ErrorKind> = reporter.reports().iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::InvalidPayload,
            ErrorKind::InvalidPath,
            ErrorKind::InvalidPayload,
            ErrorKind::InvalidPayload,
            ErrorKind::InvalidPayload
        ]
    );
    assert!(reporter.reports()[1]
        .message
        .contains("unknown path 'NOPE'"));
}

#[test]
fn the_build_names_what_is_wrong_with_the_graph() {
    use lpipe_core::{
        error::{GraphLocation, QueueProblem},
        pipeline::PathName,
        InvalidConfigurationError as E,
    };
    let err = |b: PipelineBuilder| b.build().expect_err("the build must fail");
    let p = PathName::new;
    let action = |path: &str, n: usize| GraphLocation::Action {
        path: PathName::new(path),
        action: n,
    };

    let e = err(Pipeline::builder().path(
        "A",
        [Action::new().function(needs_foo).path("MISSING_PATH")],
    ));
    assert_eq!(
        e,
        E::UnknownPath {
            at: action("A", 1),
            path: p("MISSING_PATH")
        }
    );
    // The messages stay as clear as the variants.
    assert_eq!(
        e.to_string(),
        "InvalidConfigurationError: action 1 of path A runs path MISSING_PATH, which is not declared"
    );
    assert_eq!(
        err(Pipeline::builder().path("A", [Action::new()])),
        E::EmptyAction { at: action("A", 1) }
    );
    assert_eq!(
        err(Pipeline::builder()
            .path("A", [Action::new().function(needs_foo)])
            .path("a", [Action::new().function(needs_foo)])),
        E::DuplicatePath { path: p("A") }
    );
    let e = err(Pipeline::builder()
        .path("A", [Action::new().queue(Queue::sqs("q"))])
        .registry(Registry::empty()));
    assert!(
        matches!(&e, E::Queue { at, problem: QueueProblem::NoSink { registered }, .. }
            if *at == action("A", 1) && registered.is_empty()),
        "{e:?}"
    );
    assert_contains(e.to_string(), "kind 'sqs', which has no sink");
    assert_eq!(
        err(Pipeline::builder()
            .path("A", [Action::new().path("B")])
            .path("B", [Action::new().path("A")])),
        E::Cycle {
            paths: vec![p("A"), p("B"), p("A")]
        }
    );
    assert_eq!(
        err(Pipeline::builder()
            .path("A", [Action::new().function(needs_foo)])
            .default_path("B")),
        E::UnknownDefaultPath { path: p("B") }
    );
    assert_eq!(
        err(Pipeline::builder().path("A", Vec::<Action>::new())),
        E::NoActions { path: p("A") }
    );
    assert_eq!(
        err(Pipeline::builder()
            .path("A", [Action::new().function(needs_foo)])
            .registry(Registry::empty())
            .only_source("sqs")),
        E::UnknownSource {
            name: "sqs".into(),
            registered: vec![]
        }
    );
    assert_eq!(err(Pipeline::builder()), E::NoPaths);
    assert_eq!(
        err(Pipeline::builder()
            .path("A", [Action::new().function(needs_foo)])
            .concurrency(0)),
        E::ZeroConcurrency
    );
    assert_eq!(
        err(Pipeline::builder().path("A", [Action::new().required_param("").function(needs_foo)])),
        E::EmptyParamName { at: action("A", 1) }
    );
    assert_eq!(
        err(Pipeline::builder()
            .path("A", [Action::new().function(needs_foo)])
            .dead_letter_queue(Queue::sqs("dlq").path("X"))
            .record_outbound(MemorySink::new())),
        E::DeadLetterWithPath {
            queue: "sqs:dlq (path X)".into()
        }
    );
}

async fn loop_back(_: NoParams) -> Result<Payload, BoxError> {
    Ok(Payload::to_path("LOOP", &json!({}))?)
}

#[tokio::test]
async fn a_returned_payload_loop_stops_at_the_depth_bound() {
    let reporter = CapturingReporter::new();
    let builder = Pipeline::builder()
        .path("LOOP", [Action::new().function(loop_back)])
        .path("OK", [Action::new().function(needs_foo)])
        .max_depth(8)
        .reporter(reporter.clone());
    let err = run(
        builder,
        &[
            message("LOOP", json!({})),
            message("OK", json!({"foo": "x"})),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "FailCatastrophically");
    assert_contains(&err.error_message, "record 0");
    assert_not_contains(&err.error_message, "record 1");
    let reports = reporter.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].kind, ErrorKind::DepthExceeded);
    assert_contains(&reports[0].message, "bound of 8");
}

async fn fail_hard(_: NoParams) -> Result<(), FailCatastrophically> {
    Err(FailCatastrophically::new("downstream is down"))
}

async fn fail_soft(_: NoParams) -> Result<(), FailButContinue> {
    Err(FailButContinue::new("not for us"))
}

#[tokio::test]
async fn the_error_classes_decide_the_outcome_and_every_record_is_tried() {
    let builder = Pipeline::builder()
        .path("HARD", [Action::new().function(fail_hard)])
        .path("SOFT", [Action::new().function(fail_soft)])
        .path("OK", [Action::new().function(needs_foo)]);
    let err = run(
        builder,
        &[
            message("HARD", json!({})),
            message("SOFT", json!({})),
            message("OK", json!({"foo": "x"})),
        ],
    )
    .await
    .unwrap_err();
    assert_contains(
        &err.error_message,
        "record 0 (FailCatastrophically in fail_hard on path HARD: downstream is down)",
    );
    assert_contains(&err.error_message, r#""successes":1"#);
    assert_contains(&err.error_message, r#""dropped":1"#);
}

#[derive(Deserialize)]
struct Renamed {
    foo: String,
}

async fn forward_check(args: Renamed) -> Result<String, BoxError> {
    Ok(args.foo)
}

#[tokio::test]
async fn forwarded_kwargs_follow_python_lpipe() {
    let sink = MemorySink::new();
    let builder = Pipeline::builder()
        // The union of the functions' parameters that are present.
        .path(
            "UNION",
            [Action::new()
                .function(needs_foo)
                .queue(Queue::sqs("q").path("NEXT"))],
        )
        // Required params, renamed; the functions receive the same.
        .path(
            "RENAME",
            [Action::new()
                .required_param(("bar", "foo"))
                .function(forward_check)
                .queue(Queue::sqs("q"))],
        )
        // Everything.
        .path(
            "ALL",
            [Action::new()
                .function(needs_foo)
                .include_all_params()
                .queue(Queue::sqs("q"))],
        )
        // Nothing, for an action with only queues.
        .path(
            "NOTHING",
            [Action::new().queue(Queue::custom_kind_for_test())],
        )
        .record_outbound(sink.clone());
    let response = run(
        builder,
        &[
            message("UNION", json!({"foo": "a", "extra": 1})),
            message("RENAME", json!({"bar": "b", "extra": 1})),
            message("ALL", json!({"foo": "c", "extra": 1})),
            message("NOTHING", json!({"foo": "d"})),
        ],
    )
    .await
    .unwrap();
    assert_eq!(response["stats"]["successes"], 4, "{response}");
    // Exactly these messages, each to its queue (sent grouped by queue, in record order within
    // each).
    let sent: Vec<(String, Value)> = sink
        .messages()
        .iter()
        .map(|m| (m.queue.to_string(), serde_json::from_str(&m.body).unwrap()))
        .collect();
    let to = |queue: &str, body: Value| (queue.to_owned(), body);
    assert_eq!(
        sent,
        [
            to("sqs:q", json!({"foo": "b"})),
            to("sqs:q", json!({"foo": "c", "extra": 1})),
            to(
                "sqs:q (path NEXT)",
                json!({"path": "NEXT", "kwargs": {"foo": "a"}})
            ),
            to("webhook:https://example.com/hook", json!({})),
        ]
    );
}

trait CustomKind {
    fn custom_kind_for_test() -> Queue;
}

impl CustomKind for Queue {
    fn custom_kind_for_test() -> Queue {
        Queue::new(QueueKind::custom("webhook"), "https://example.com/hook")
    }
}

async fn forward_then_drop(_: NoParams) -> Result<Vec<Payload>, BoxError> {
    Ok(vec![
        Payload::to_queue(Queue::sqs("q"), &json!({"n": 1}))?,
        Payload::to_path("SOFT", &json!({}))?,
    ])
}

#[tokio::test]
async fn a_dropped_record_sends_nothing() {
    let sink = MemorySink::new();
    let builder = Pipeline::builder()
        .path("FWD", [Action::new().function(forward_then_drop)])
        .path("SOFT", [Action::new().function(fail_soft)])
        .record_outbound(sink.clone());
    let response = run(builder, &[message("FWD", json!({}))]).await.unwrap();
    assert_eq!(response["stats"]["dropped"], 1);
    assert!(sink.messages().is_empty());
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn outbound_messages_are_batched_within_the_sink_limits() {
    let sink = MemorySink::new().with_limits(SinkLimits {
        max_entries: 10,
        max_entry_bytes: 200,
        max_batch_bytes: 1000,
    });
    let builder = Pipeline::builder()
        .path(
            "FWD",
            [Action::new().include_all_params().queue(Queue::sqs("q"))],
        )
        .sink(QueueKind::SQS, sink.clone())
        .registry(Registry::from_inventory());
    let mut messages: Vec<Value> = (0..25).map(|i| message("FWD", json!({"i": i}))).collect();
    messages.push(message("FWD", json!({"big": "x".repeat(300)})));
    let err = run(builder, &messages).await.unwrap_err();
    // 25 small messages in 3 calls; the oversized one fails its record only.
    assert_eq!(sink.messages().len(), 25);
    assert_eq!(sink.calls(), 3);
    assert_contains(&err.error_message, "record 25 (Undeliverable");
    assert_contains(&err.error_message, "over the sink's limit of 200 bytes");
    assert_contains(&err.error_message, r#""successes":25"#);

    // The byte limit per call splits batches too: 8 messages of ~150 bytes, 1000 bytes a call.
    let sink = MemorySink::new().with_limits(SinkLimits {
        max_entries: 10,
        max_entry_bytes: 200,
        max_batch_bytes: 1000,
    });
    let builder = Pipeline::builder()
        .path(
            "FWD",
            [Action::new().include_all_params().queue(Queue::sqs("q"))],
        )
        .record_outbound(sink.clone());
    let messages: Vec<Value> = (0..8)
        .map(|i| message("FWD", json!({"i": i, "pad": "y".repeat(140)})))
        .collect();
    run(builder, &messages).await.unwrap();
    assert_eq!(sink.messages().len(), 8);
    assert_eq!(sink.calls(), 2);
}

#[tokio::test]
async fn failed_entries_are_retried_and_then_fail_exactly_their_records() {
    // Two retryable failures: retried, everything arrives.
    let sink = MemorySink::new();
    sink.fail_next(2, true);
    let builder = Pipeline::builder()
        .path(
            "FWD",
            [Action::new().include_all_params().queue(Queue::sqs("q"))],
        )
        .record_outbound(sink.clone())
        .retry_policy(fast_retry());
    let messages: Vec<Value> = (0..5).map(|i| message("FWD", json!({"i": i}))).collect();
    let response = run(builder, &messages).await.unwrap();
    assert_eq!(response["stats"]["successes"], 5);
    assert_eq!(sink.messages().len(), 5);
    assert_eq!(sink.calls(), 2);

    // Records 1 and 3 always fail (retryably): after the retries, exactly they fail.
    let sink = MemorySink::new();
    sink.fail_bodies_containing("\"poison\"", true);
    let builder = Pipeline::builder()
        .path(
            "FWD",
            [Action::new().include_all_params().queue(Queue::sqs("q"))],
        )
        .record_outbound(sink.clone())
        .retry_policy(fast_retry());
    let messages: Vec<Value> = (0..5)
        .map(|i| {
            message(
                "FWD",
                if i % 2 == 1 {
                    json!({"i": i, "k": "poison"})
                } else {
                    json!({"i": i})
                },
            )
        })
        .collect();
    let err = run(builder, &messages).await.unwrap_err();
    assert_contains(&err.error_message, "record 1 (Undeliverable");
    assert_contains(&err.error_message, "record 3 (Undeliverable");
    assert_contains(&err.error_message, "after 3 attempts");
    assert_not_contains(&err.error_message, "record 0");
    assert_eq!(sink.messages().len(), 3);
    assert_eq!(sink.calls(), 3);

    // A permanent failure is not retried.
    let sink = MemorySink::new();
    sink.fail_next(1, false);
    let builder = Pipeline::builder()
        .path(
            "FWD",
            [Action::new().include_all_params().queue(Queue::sqs("q"))],
        )
        .record_outbound(sink.clone())
        .retry_policy(fast_retry());
    let err = run(
        builder,
        &[
            message("FWD", json!({"i": 0})),
            message("FWD", json!({"i": 1})),
        ],
    )
    .await
    .unwrap_err();
    assert_contains(&err.error_message, "record 0 (Undeliverable");
    assert_not_contains(&err.error_message, "record 1");
    assert_eq!(sink.calls(), 1);
}

#[tokio::test]
async fn the_single_function_form_and_the_default_path_take_bare_kwargs() {
    let pipeline = Pipeline::from_function(needs_foo).build().unwrap();
    let response = pipeline
        .handle(r#"[{"foo": "x"}, {"nofoo": 1}]"#, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 1, "dropped": 1, "failed": 0})
    );
    let pipeline = Pipeline::builder()
        .path("A", [Action::new().function(needs_foo)])
        .default_path("a")
        .build()
        .unwrap();
    let response = pipeline
        .handle(r#"{"foo": "single"}"#, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["output"], json!(["single"]));
}

#[tokio::test]
async fn records_are_not_started_when_the_deadline_is_too_close() {
    let pipeline = Pipeline::builder()
        .path("OK", [Action::new().function(needs_foo)])
        .deadline_margin(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = pipeline
        .handle(
            &raw_event(&[message("OK", json!({"foo": "x"}))]),
            lambda_context(1000),
        )
        .await
        .unwrap_err();
    assert_contains(
        &err.error_message,
        "record 0 (NotRun: not run: the invocation's deadline is too close)",
    );
}

/// A source whose records carry ordering keys: `{"Records": [{"key": …, "msg": {…}}]}`.
struct Keyed(RecordOrder);

#[derive(Deserialize)]
struct KeyedEvent<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<KeyedRecord<'a>>,
}

#[derive(Deserialize)]
struct KeyedRecord<'a> {
    key: String,
    #[serde(borrow)]
    msg: &'a serde_json::value::RawValue,
}

#[async_trait]
impl EventSource for Keyed {
    fn name(&self) -> &'static str {
        "keyed"
    }
    fn matches(&self, probe: &EventProbe) -> bool {
        probe.has_records
    }
    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        let e: KeyedEvent<'e> = serde_json::from_str(event).map_err(|e| InvalidEvent {
            source_name: "keyed",
            message: e.to_string(),
        })?;
        Ok(e.records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                Record::new(
                    Some(Cow::Owned(format!("r{i}"))),
                    Ok(Cow::Borrowed(r.msg.get())),
                )
                .ordering_key(Some(Cow::Owned(r.key)))
            })
            .collect())
    }
    fn ordering(&self) -> RecordOrder {
        self.0
    }
    async fn respond(
        &self,
        _event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<Value, InvocationError> {
        let failed: Vec<&str> = batch
            .failed()
            .filter_map(|(_, r)| r.id.as_deref())
            .collect();
        Ok(json!({"failed": failed, "stats": batch.stats}))
    }
}

fn keyed_event() -> String {
    let rec =
        |key: &str, path: &str| json!({"key": key, "msg": message(path, json!({"foo": "x"}))});
    json!({"Records": [
        rec("g1", "OK"), rec("g1", "HARD"), rec("g2", "OK"), rec("g1", "OK"), rec("g2", "SOFT"), rec("g2", "OK")
    ]})
    .to_string()
}

fn keyed_pipeline(ordering: RecordOrder) -> Pipeline {
    Pipeline::builder()
        .path("OK", [Action::new().function(needs_foo)])
        .path("HARD", [Action::new().function(fail_hard)])
        .path("SOFT", [Action::new().function(fail_soft)])
        .registry(Registry::empty())
        .event_source(Keyed(ordering))
        .build()
        .unwrap()
}

#[tokio::test]
async fn outbound_ids_are_scoped_by_the_request_when_record_ids_are_positions() {
    let sink = MemorySink::new();
    let pipeline = ordered_run(&sink).build().unwrap();
    let mut ids = Vec::new();
    for request in ["req-a", "req-b", "req-a"] {
        let mut ctx = lambda_context(0);
        ctx.request_id = request.to_owned();
        let event = raw_event(&[message("FWD", json!({"i": 1}))]);
        pipeline.handle(&event, ctx).await.unwrap();
        ids.push(sink.messages().last().unwrap().id.clone());
    }
    // Two invocations forwarding the same message from the same position: distinct ids (a
    // FIFO queue must not deduplicate them); a retry of one invocation: the same id.
    assert_eq!(ids[0], "req-a/0:0");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2]);

    // A source whose record ids are its own (SQS message ids, ...) keeps them as they are.
    let sink = MemorySink::new();
    let pipeline = Pipeline::builder()
        .path(
            "OK",
            [Action::new().function(needs_foo).queue(Queue::sqs("q"))],
        )
        .path("HARD", [Action::new().function(fail_hard)])
        .path("SOFT", [Action::new().function(fail_soft)])
        .registry(Registry::empty())
        .event_source(Keyed(RecordOrder::Unordered))
        .record_outbound(sink.clone())
        .build()
        .unwrap();
    pipeline
        .handle(&keyed_event(), lambda_context(0))
        .await
        .unwrap();
    let ids: Vec<String> = sink.messages().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["r0:0", "r2:0", "r3:0", "r5:0"]);
}

#[tokio::test]
async fn ordered_sources_stop_a_key_or_the_batch_after_a_failure() {
    let per_key = keyed_pipeline(RecordOrder::PerKey)
        .handle(&keyed_event(), lambda_context(0))
        .await
        .unwrap();
    // r1 failed; r3 (same key) is not run and fails too; g2 carries on (a drop does not block).
    assert_eq!(per_key["failed"], json!(["r1", "r3"]));
    assert_eq!(
        per_key["stats"],
        json!({"received": 6, "successes": 3, "dropped": 1, "failed": 2})
    );

    let stop = keyed_pipeline(RecordOrder::StopOnFailure)
        .handle(&keyed_event(), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(stop["failed"], json!(["r1", "r2", "r3", "r4", "r5"]));

    let unordered = keyed_pipeline(RecordOrder::Unordered)
        .handle(&keyed_event(), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(unordered["failed"], json!(["r1"]));
}

#[tokio::test]
async fn an_event_no_source_recognises_fails_the_invocation_with_the_registered_names() {
    let pipeline = Pipeline::builder()
        .path("OK", [Action::new().function(needs_foo)])
        .registry(Registry::from_inventory())
        .build()
        .unwrap();
    let err = pipeline
        .handle(
            r#"{"Records": [{"eventSource": "aws:unknown"}]}"#,
            lambda_context(0),
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
    assert_contains(&err.error_message, "registered: raw");
    let err = pipeline
        .handle("[not json", lambda_context(0))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
}

#[tokio::test]
async fn an_event_of_a_built_in_source_not_registered_says_how_to_register_it() {
    let pipeline = Pipeline::builder()
        .path("OK", [Action::new().function(needs_foo)])
        .registry(Registry::empty())
        .build()
        .unwrap();
    for (event, krate, feature) in [
        (
            r#"{"Records": [{"eventSource": "aws:sqs"}]}"#,
            "lpipe_sqs",
            "sqs",
        ),
        (
            r#"{"Records": [{"eventSource": "aws:kinesis"}]}"#,
            "lpipe_kinesis",
            "kinesis",
        ),
        (
            r#"{"source": "orders", "detail-type": "Placed", "detail": {}}"#,
            "lpipe_cloudwatch",
            "cloudwatch",
        ),
        (
            r#"{"Records": [{"EventSource": "aws:sns"}]}"#,
            "lpipe_sns",
            "sns",
        ),
        (
            r#"{"Records": [{"eventSource": "aws:s3"}]}"#,
            "lpipe_s3",
            "s3-source",
        ),
    ] {
        let err = pipeline.handle(event, lambda_context(0)).await.unwrap_err();
        assert_eq!(err.error_type, "InvalidEvent");
        assert_contains(
            &err.error_message,
            format!("enable the lpipe feature '{feature}', or, if {krate} is a dependency of its own, add `use {krate} as _;`"),
        );
    }
    // An event no built-in source would take gets no such hint.
    let err = pipeline
        .handle(
            r#"{"Records": [{"eventSource": "aws:ses"}]}"#,
            lambda_context(0),
        )
        .await
        .unwrap_err();
    assert!(
        !err.error_message.contains("use lpipe_"),
        "{}",
        err.error_message
    );
}

#[derive(Clone)]
struct Clients {
    prefix: &'static str,
}

async fn with_state(args: Foo, ctx: lpipe_core::Context) -> Result<String, BoxError> {
    let clients = ctx.state::<Clients>().ok_or("no state")?;
    Ok(format!(
        "{}{}@{}#{}",
        clients.prefix,
        args.foo,
        ctx.path(),
        ctx.record().id().unwrap_or("")
    ))
}

#[tokio::test]
async fn functions_see_the_context_and_the_shared_state() {
    let builder = Pipeline::builder()
        .path("S", [Action::new().function(with_state)])
        .state(Clients { prefix: ">" });
    let response = run(builder, &[message("s", json!({"foo": "x"}))])
        .await
        .unwrap();
    assert_eq!(response["output"], json!([">x@S#0"]));
}

#[tokio::test]
async fn kinds_without_a_sink_can_be_recorded_instead_of_failing_the_build() {
    // The local mode with --send: kinds whose plugin is off are recorded, the others sent.
    let recorded = MemorySink::new();
    let sent = MemorySink::new();
    let builder = Pipeline::builder()
        .path(
            "FWD",
            [Action::new()
                .include_all_params()
                .queue(Queue::sqs("q"))
                .queue(Queue::kinesis("s"))],
        )
        .registry(Registry::from_inventory())
        .sink(QueueKind::SQS, sent.clone())
        .record_unsendable(recorded.clone());
    run(builder, &[message("FWD", json!({"a": 1}))])
        .await
        .unwrap();
    assert_eq!(sent.messages().len(), 1);
    assert_eq!(sent.messages()[0].queue.kind(), &QueueKind::SQS);
    assert_eq!(recorded.messages().len(), 1);
    assert_eq!(recorded.messages()[0].queue.kind(), &QueueKind::KINESIS);
}

#[tokio::test]
async fn a_deadline_that_is_not_a_timestamp_is_ignored() {
    // `cargo lambda watch` sends its timeout (600000) as the deadline.
    let pipeline = Pipeline::builder()
        .path("OK", [Action::new().function(needs_foo)])
        .build()
        .unwrap();
    let mut ctx = lambda_context(0);
    ctx.deadline = 600_000;
    let response = pipeline
        .handle(&raw_event(&[message("OK", json!({"foo": "x"}))]), ctx)
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 1);
}

fn ordered_run(sink: &MemorySink) -> PipelineBuilder {
    Pipeline::builder()
        .path(
            "FWD",
            [Action::new()
                .include_all_params()
                .queue(Queue::sqs("q.fifo"))],
        )
        .record_outbound(sink.clone())
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            ..fast_retry()
        })
}

fn delivered_order(sink: &MemorySink) -> Vec<i64> {
    sink.messages()
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(&m.body).unwrap()["i"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn an_ordered_queue_sends_nothing_after_a_failure_until_it_is_retried() {
    let messages: Vec<Value> = (0..6)
        .map(|i| {
            message(
                "FWD",
                if i == 1 {
                    json!({"i": i, "k": "poison"})
                } else {
                    json!({"i": i})
                },
            )
        })
        .collect();
    let limits = SinkLimits {
        max_entries: 2,
        max_entry_bytes: 1000,
        max_batch_bytes: 10_000,
    };

    // Message 1 fails once: the batches after it wait for its retry, so order holds.
    let sink = MemorySink::new().with_limits(limits).ordered();
    sink.fail_bodies_containing_times("\"poison\"", true, 1);
    let response = run(ordered_run(&sink), &messages).await.unwrap();
    assert_eq!(response["stats"]["successes"], 6);
    assert_eq!(delivered_order(&sink), [0, 1, 2, 3, 4, 5]);
    // Attempt 1: [0, 1] (1 fails), the rest held back. Attempt 2: [1], [2, 3], [4, 5].
    assert_eq!(sink.calls(), 4);

    // Message 1 always fails: it is retried alone (nothing of its key rides in its call), and
    // what was queued behind it is not sent either; those records fail (kept, retried by the
    // source) rather than overtake it.
    let sink = MemorySink::new().with_limits(limits).ordered();
    sink.fail_bodies_containing("\"poison\"", true);
    let err = run(ordered_run(&sink), &messages).await.unwrap_err();
    assert_eq!(delivered_order(&sink), [0]);
    assert_eq!(sink.calls(), 2);
    for r in [1, 2, 3, 4, 5] {
        assert_contains(&err.error_message, format!("record {r} (Undeliverable"));
    }
    assert_contains(&err.error_message, "held back behind an earlier message");

    // An unordered queue sends everything else in the first attempt.
    let sink = MemorySink::new().with_limits(limits);
    sink.fail_bodies_containing("\"poison\"", true);
    let _ = run(ordered_run(&sink), &messages).await.unwrap_err();
    assert_eq!(delivered_order(&sink), [0, 2, 3, 4, 5]);
}

#[tokio::test]
async fn an_ordered_queue_holds_back_only_the_failed_key() {
    // Keys alternate: even messages have key "a", odd ones "b"; message 1 ("b") always fails.
    let messages: Vec<Value> = (0..8)
        .map(|i| {
            let mut kwargs = json!({"i": i, "g": if i % 2 == 0 { "a" } else { "b" }});
            if i == 1 {
                kwargs["k"] = json!("poison");
            }
            message("FWD", kwargs)
        })
        .collect();
    let limits = SinkLimits {
        max_entries: 2,
        max_entry_bytes: 1000,
        max_batch_bytes: 10_000,
    };
    let sink = MemorySink::new().with_limits(limits).ordered_by_kwarg("g");
    sink.fail_bodies_containing("\"poison\"", true);
    let err = run(ordered_run(&sink), &messages).await.unwrap_err();
    // Key "a" is delivered whole and in order; 3, 5 and 7 ("b") wait behind 1 and fail with
    // it.
    assert_eq!(delivered_order(&sink), [0, 2, 4, 6]);
    for r in [1, 3, 5, 7] {
        assert_contains(&err.error_message, format!("record {r} (Undeliverable"));
    }
    for r in [0, 2, 4, 6] {
        assert_not_contains(&err.error_message, format!("record {r} ("));
    }

    // A permanent failure gives its key up at once: nothing later with that key is sent, and
    // the error says why.
    let sink = MemorySink::new().with_limits(limits).ordered_by_kwarg("g");
    sink.fail_bodies_containing("\"poison\"", false);
    let err = run(ordered_run(&sink), &messages).await.unwrap_err();
    assert_eq!(delivered_order(&sink), [0, 2, 4, 6]);
    assert_contains(&err.error_message, "so as not to overtake");
}

fn dead_letter_pipeline(sink: &MemorySink) -> PipelineBuilder {
    Pipeline::builder()
        .path(
            "OK",
            [Action::new().function(needs_foo).queue(Queue::sqs("next"))],
        )
        .path("HARD", [Action::new().function(fail_hard)])
        .path("SOFT", [Action::new().function(fail_soft)])
        .path("BOOM", [Action::new().function(boom)])
        .dead_letter_queue(Queue::sqs("dropped"))
        .record_outbound(sink.clone())
        .retry_policy(fast_retry())
}

#[tokio::test]
async fn dropped_records_go_to_the_dead_letter_queue_verbatim() {
    let sink = MemorySink::new();
    let messages = [
        message("OK", json!({"foo": "a"})),
        message("SOFT", json!({"foo": "b"})),
        message("HARD", json!({"foo": "c"})),
        message("BOOM", json!({})),
        message("OK", json!({"foo": 5})),
        message("NOWHERE", json!({})),
        json!("{not json"),
    ];
    let err = run(dead_letter_pipeline(&sink), &messages)
        .await
        .unwrap_err();
    // Only the catastrophic failure is kept; the rest were dropped or succeeded.
    assert_contains(&err.error_message, "record 2 (");
    let to = |queue: &str| -> Vec<String> {
        sink.messages()
            .into_iter()
            .filter(|m| m.queue.target() == queue)
            .map(|m| m.body)
            .collect()
    };
    assert_eq!(to("next").len(), 1);
    // Every dropped record, as it came: a FailButContinue, a panic, a mistyped parameter, an
    // unknown path, a body that is not JSON.
    let expected: Vec<String> = [1, 3, 4, 5]
        .iter()
        .map(|&i| messages[i].to_string())
        .chain(["{not json".to_owned()])
        .collect();
    assert_eq!(to("dropped"), expected);
    let ids: Vec<String> = sink
        .messages()
        .into_iter()
        .filter(|m| m.queue.target() == "dropped")
        .map(|m| m.id)
        .collect();
    assert_eq!(ids[0], "test-request/1:dead-letter");
}

#[tokio::test]
async fn a_dropped_record_that_cannot_reach_the_dead_letter_queue_is_kept() {
    let sink = MemorySink::new();
    sink.fail_bodies_containing("\"SOFT\"", false);
    let err = run(
        dead_letter_pipeline(&sink),
        &[
            message("SOFT", json!({"foo": "b"})),
            message("OK", json!({"foo": "a"})),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type, "FailCatastrophically");
    assert_contains(&err.error_message, "record 0 (Undeliverable");
    assert_contains(
        &err.error_message,
        "could not be sent to the dead-letter queue",
    );
    assert_contains(&err.error_message, "not for us");
    assert_not_contains(&err.error_message, "record 1 (");
}

#[test]
fn a_dead_letter_queue_is_checked_when_the_pipeline_is_built() {
    let base = || Pipeline::builder().path("OK", [Action::new().function(needs_foo)]);
    let e = base()
        .dead_letter_queue(Queue::sqs("dropped").path("OK"))
        .record_outbound(MemorySink::new())
        .build()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("dead-letter queue sqs:dropped (path OK) has a path"),
        "{e}"
    );
    let e = base()
        .registry(Registry::empty())
        .dead_letter_queue(Queue::new(QueueKind::custom("tape"), "t"))
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains("the dead-letter queue: queue") && e.to_string().contains("'tape'"),
        "{e}"
    );
}

/// Counts how many calls of `slow` are in flight, and the most there ever were, per key.
#[derive(Default)]
struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    per_key: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    order: std::sync::Mutex<Vec<(String, i64)>>,
}

#[derive(Deserialize)]
struct Slow {
    #[serde(default)]
    key: String,
    i: i64,
    #[serde(default)]
    fail: bool,
    #[serde(default = "fifty")]
    ms: u64,
}

fn fifty() -> u64 {
    50
}

async fn slow(args: Slow, ctx: lpipe_core::Context) -> Result<i64, FailCatastrophically> {
    use std::sync::atomic::Ordering::SeqCst;
    let state = ctx.state::<Arc<InFlight>>().expect("state");
    let now = state.now.fetch_add(1, SeqCst) + 1;
    state.most.fetch_max(now, SeqCst);
    {
        let mut per_key = state.per_key.lock().unwrap();
        let n = per_key.entry(args.key.clone()).or_default();
        *n += 1;
        // Unkeyed records ("") may overlap.
        assert!(
            args.key.is_empty() || *n == 1,
            "two records of key {} ran at once",
            args.key
        );
    }
    state.order.lock().unwrap().push((args.key.clone(), args.i));
    tokio::time::sleep(Duration::from_millis(args.ms)).await;
    *state.per_key.lock().unwrap().get_mut(&args.key).unwrap() -= 1;
    state.now.fetch_sub(1, SeqCst);
    if args.fail {
        return Err(FailCatastrophically::new("failed on purpose"));
    }
    Ok(args.i)
}

fn slow_pipeline(state: &Arc<InFlight>, concurrency: usize) -> PipelineBuilder {
    Pipeline::builder()
        .path("SLOW", [Action::new().function(slow)])
        .state(state.clone())
        .concurrency(concurrency)
}

// Tokio's clock is paused in these tests: the sleeps take no time and end in a fixed order.
#[tokio::test(start_paused = true)]
async fn records_run_concurrently_up_to_the_limit_and_answer_in_order() {
    for (concurrency, expected_most) in [(1, 1), (4, 4)] {
        let state = Arc::new(InFlight::default());
        let messages: Vec<Value> = (0..10).map(|i| message("SLOW", json!({"i": i}))).collect();
        let response = run(slow_pipeline(&state, concurrency), &messages)
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 10);
        assert_eq!(response["output"], json!((0..10).collect::<Vec<_>>()));
        assert_eq!(
            state.most.load(std::sync::atomic::Ordering::SeqCst),
            expected_most,
            "concurrency {concurrency}"
        );
    }
}

#[test]
fn a_concurrency_of_zero_fails_the_build() {
    let state = Arc::new(InFlight::default());
    let e = slow_pipeline(&state, 0).build().unwrap_err();
    assert_contains(e.to_string(), "concurrency must be at least 1 (got 0)");
}

#[tokio::test(start_paused = true)]
async fn concurrent_records_of_one_key_run_in_order_and_stop_after_a_failure() {
    let rec = |key: &str, i: i64, fail: bool| {
        // The failing record is quicker (30 ms against 50).
        let ms = if fail { 30 } else { 50 };
        json!({"key": key, "msg": message("SLOW", json!({"key": key, "i": i, "fail": fail, "ms": ms}))})
    };
    let event = json!({"Records": [
        rec("a", 0, false), rec("b", 1, false), rec("a", 2, true), rec("c", 3, false),
        rec("b", 4, false), rec("a", 5, false), rec("c", 6, false), rec("b", 7, false)
    ]})
    .to_string();
    let state = Arc::new(InFlight::default());
    let response = slow_pipeline(&state, 8)
        .registry(Registry::empty())
        .event_source(Keyed(RecordOrder::PerKey))
        .build()
        .unwrap()
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    // r2 failed; r5 (key a, after it) was not run; b and c ran whole.
    assert_eq!(response["failed"], json!(["r2", "r5"]));
    assert_eq!(response["stats"]["successes"], 6);
    // Three keys ran side by side (the per-key assertion in `slow` checks no key overlapped).
    assert_eq!(state.most.load(std::sync::atomic::Ordering::SeqCst), 3);
    let order = state.order.lock().unwrap().clone();
    for key in ["a", "b", "c"] {
        let seen: Vec<i64> = order
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, i)| *i)
            .collect();
        let expected: Vec<i64> = match key {
            "a" => vec![0, 2],
            "b" => vec![1, 4, 7],
            _ => vec![3, 6],
        };
        assert_eq!(seen, expected, "key {key}");
    }

    // Stop-on-failure (Kinesis): nothing starts after the failure; every record not run is
    // reported with it.
    let state = Arc::new(InFlight::default());
    let response = slow_pipeline(&state, 8)
        .registry(Registry::empty())
        .event_source(Keyed(RecordOrder::StopOnFailure))
        .build()
        .unwrap()
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    // At 0 ms r0, r1 and r3 start; at 50 ms r2, r4 and r6; at 80 ms r2 fails, so at 100 ms
    // neither r5 nor r7 starts. r4 and r6, already running, finish.
    assert_eq!(response["failed"], json!(["r2", "r5", "r7"]));
    assert_eq!(
        response["stats"],
        json!({"received": 8, "successes": 5, "dropped": 0, "failed": 3})
    );
}

#[tokio::test]
async fn a_pinned_source_refuses_an_event_it_does_not_recognise() {
    let pipeline = Pipeline::builder()
        .path("OK", [Action::new().function(needs_foo)])
        .registry(Registry::from_inventory())
        .only_source("raw")
        .build()
        .unwrap();
    // Read as a raw message, this would be one record, dropped for its missing path.
    let err = pipeline
        .handle(
            r#"{"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}]}"#,
            lambda_context(0),
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "InvalidEvent");
    assert_contains(
        &err.error_message,
        "this pipeline takes only 'raw' events, and this is not one (records of eventSource 'aws:sqs')",
    );
    // Its own events it still takes, a leading byte-order mark and all.
    let event = format!(
        "\u{feff}{}",
        raw_event(&[message("OK", json!({"foo": "a"}))])
    );
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["output"], json!(["a"]));
}

async fn io_timeout(_: NoParams) -> Result<(), std::io::Error> {
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the database timed out",
    ))
}

/// An error of the user's own that wraps an I/O error as its source.
#[derive(Debug)]
struct StoreError(std::io::Error);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not store")
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

async fn wrapped_timeout(_: NoParams) -> Result<(), StoreError> {
    Err(StoreError(std::io::Error::other("connection reset")))
}

async fn plain_error(_: NoParams) -> Result<(), BoxError> {
    Err("a bug in the input".into())
}

/// Runs one record per path and returns each record's (outcome, error class), in order.
async fn outcomes_of(builder: PipelineBuilder, paths: &[&str]) -> Vec<(Outcome, ErrorKind)> {
    let reporter = CapturingReporter::new();
    let pipeline = builder
        .path("IO", [Action::new().function(io_timeout)])
        .path("WRAPPED", [Action::new().function(wrapped_timeout)])
        .path("PLAIN", [Action::new().function(plain_error)])
        .path("SOFT", [Action::new().function(fail_soft)])
        .path("BOOM", [Action::new().function(boom)])
        .reporter(reporter.clone())
        .build()
        .expect("valid pipeline");
    let messages: Vec<Value> = paths.iter().map(|p| message(p, json!({}))).collect();
    // Direct invocations fail when a record failed, and answer otherwise.
    let kept = pipeline
        .handle(&raw_event(&messages), lambda_context(0))
        .await
        .err()
        .map(|e| e.error_type);
    let mut reports = reporter.reports();
    reports.sort_by_key(|r| r.record_id.clone().unwrap().parse::<usize>().unwrap());
    assert_eq!(reports.len(), paths.len(), "every record reported");
    let any_failed = reports.iter().any(|r| r.outcome == Outcome::Failed);
    assert_eq!(kept.is_some(), any_failed, "{kept:?}");
    reports.into_iter().map(|r| (r.outcome, r.kind)).collect()
}

const ALL: [&str; 5] = ["IO", "WRAPPED", "PLAIN", "SOFT", "BOOM"];

#[tokio::test]
async fn ordinary_errors_are_dropped_by_default() {
    let dropped = |kind| (Outcome::Dropped, kind);
    assert_eq!(
        outcomes_of(Pipeline::builder(), &ALL).await,
        [
            dropped(ErrorKind::Unhandled),
            dropped(ErrorKind::Unhandled),
            dropped(ErrorKind::Unhandled),
            dropped(ErrorKind::FailButContinue),
            dropped(ErrorKind::Panic),
        ]
    );
}

#[tokio::test]
async fn the_retry_policy_keeps_ordinary_errors_but_not_drops_or_panics() {
    let response = Pipeline::builder()
        .path("IO", [Action::new().function(io_timeout)])
        .on_error(OnError::Retry)
        .build()
        .unwrap()
        .handle(&raw_event(&[message("IO", json!({}))]), lambda_context(0))
        .await
        .unwrap_err();
    assert_eq!(response.error_type, "FailCatastrophically");
    assert_contains(
        &response.error_message,
        "RetryableError in io_timeout on path IO: the database timed out",
    );
    assert_eq!(
        outcomes_of(Pipeline::builder().on_error(OnError::Retry), &ALL).await,
        [
            (Outcome::Failed, ErrorKind::Retryable),
            (Outcome::Failed, ErrorKind::Retryable),
            (Outcome::Failed, ErrorKind::Retryable),
            (Outcome::Dropped, ErrorKind::FailButContinue),
            (Outcome::Dropped, ErrorKind::Panic),
        ]
    );
}

#[tokio::test]
async fn a_path_policy_overrides_the_pipeline_policy_for_that_path() {
    let builder = Pipeline::builder()
        .on_error(OnError::Retry)
        .on_error_in("plain", OnError::Drop)
        .on_error_in("IO", OnError::Retry);
    assert_eq!(
        outcomes_of(builder, &["IO", "PLAIN"]).await,
        [
            (Outcome::Failed, ErrorKind::Retryable),
            (Outcome::Dropped, ErrorKind::Unhandled),
        ]
    );
    let e = Pipeline::builder()
        .path("IO", [Action::new().function(io_timeout)])
        .on_error_in("STORE", OnError::Retry)
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        lpipe_core::InvalidConfigurationError::UnknownErrorPolicyPath {
            path: lpipe_core::pipeline::PathName::new("STORE")
        }
    );
    assert_contains(
        e.to_string(),
        "on_error_in names path STORE, which is not declared",
    );
}

#[tokio::test]
async fn marked_error_types_are_kept_wherever_they_are_in_the_source_chain() {
    let builder = Pipeline::builder().retry_on::<std::io::Error>();
    assert_eq!(
        outcomes_of(builder, &["IO", "WRAPPED", "PLAIN"]).await,
        [
            (Outcome::Failed, ErrorKind::Retryable),
            (Outcome::Failed, ErrorKind::Retryable),
            (Outcome::Dropped, ErrorKind::Unhandled),
        ]
    );
}

#[derive(Deserialize)]
struct Hop {
    to: String,
}

async fn hop_to(args: Hop) -> Result<Payload, BoxError> {
    Ok(Payload::to_path(&args.to, &json!({"foo": "hopped"}))?)
}

#[tokio::test]
async fn an_action_declares_the_paths_its_functions_return_to() {
    let builder = || {
        Pipeline::builder()
            .path("START", [Action::new().function(hop_to).returns_to("NEXT")])
            .path("NEXT", [Action::new().function(needs_foo)])
            .path("ELSEWHERE", [Action::new().function(needs_foo)])
    };
    let reporter = CapturingReporter::new();
    let response = run(
        builder().reporter(reporter.clone()),
        &[
            message("START", json!({"to": "next"})),
            message("START", json!({"to": "ELSEWHERE"})),
        ],
    )
    .await
    .unwrap();
    assert_eq!(response["output"], json!(["hopped", null]));
    let reports = reporter.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].kind, ErrorKind::InvalidPath);
    assert_eq!(
        reports[0].message,
        "InvalidPathError in hop_to on path START: returned a payload to path ELSEWHERE, which its action does not declare (it returns to: NEXT)"
    );
    let chart = builder().build().unwrap().to_mermaid();
    assert_contains(&chart, "  path_START_1[\"hop_to\"]\n");
    assert_contains(&chart, "  path_START_1 -.->|\"returns\"| path_NEXT\n");

    use lpipe_core::{error::GraphLocation, pipeline::PathName, InvalidConfigurationError as E};
    let err = |b: PipelineBuilder| b.build().unwrap_err();
    let a1 = GraphLocation::Action {
        path: PathName::new("A"),
        action: 1,
    };
    let e = err(Pipeline::builder().path("A", [Action::new().function(hop_to).returns_to("B")]));
    assert_eq!(
        e,
        E::UnknownReturnPath {
            at: a1.clone(),
            path: PathName::new("B")
        }
    );
    assert_contains(
        e.to_string(),
        "action 1 of path A declares that its functions return to path B, which is not declared",
    );
    let e = err(Pipeline::builder()
        .path("A", [Action::new().path("B").returns_to("B")])
        .path("B", [Action::new().function(needs_foo)]));
    assert_eq!(
        e,
        E::ReturnWithoutFunctions {
            at: a1,
            path: PathName::new("B")
        }
    );
}

#[test]
fn actions_without_functions_are_drawn_by_what_they_forward() {
    let pipeline = Pipeline::builder()
        .path(
            "A",
            [
                Action::new().function(needs_foo),
                Action::new()
                    .required_params([("foo", "bar"), ("baz", "baz")])
                    .path("B"),
                Action::new().include_all_params().path("B"),
                Action::new().path("B"),
            ],
        )
        .path("B", [Action::new().function(needs_foo)])
        .build()
        .unwrap();
    let chart = pipeline.to_mermaid();
    assert_contains(&chart, "path_A_2[\"forward foo as bar, baz\"]");
    assert_contains(&chart, "path_A_3[\"forward all kwargs\"]");
    assert_contains(&chart, "path_A_4[\"forward\"]");
}

#[test]
fn drawing_the_graph_needs_no_sinks() {
    let builder = || {
        Pipeline::builder()
            .path("A", [Action::new().function(needs_foo).path("B")])
            .path("B", [Action::new().queue(Queue::sqs("next").path("C"))])
            .dead_letter_queue(Queue::sqs("dropped"))
            .registry(Registry::empty())
    };
    // No sink for `sqs`: the pipeline cannot be built, but it can be drawn …
    assert!(builder().build().is_err());
    let drawn = builder().to_mermaid();
    assert_contains(&drawn, "  path_B_1 -->|\"C\"| queue_1\n");
    // … exactly as the built pipeline draws itself.
    let built = builder()
        .record_outbound(MemorySink::new())
        .build()
        .unwrap()
        .to_mermaid();
    assert_eq!(drawn, built);
}

struct Prefix(&'static str);
struct Suffix(&'static str);

async fn decorate(args: Foo, prefix: lpipe_core::State<Prefix>) -> Result<String, BoxError> {
    Ok(format!("{}{}", prefix.0, args.foo))
}

async fn decorate_both(
    args: Foo,
    suffix: lpipe_core::State<Suffix>,
    ctx: lpipe_core::Context,
) -> Result<String, BoxError> {
    let prefix = ctx.state::<Prefix>().ok_or("no prefix")?;
    Ok(format!("{}{}{}", prefix.0, args.foo, suffix.0))
}

#[tokio::test]
async fn functions_take_state_by_type_and_the_build_checks_it_is_given() {
    let builder = || {
        Pipeline::builder()
            .path("ONE", [Action::new().function(decorate)])
            .path("BOTH", [Action::new().function(decorate_both)])
    };
    let response = run(
        builder().state(Prefix("<")).state(Suffix(">")),
        &[
            message("ONE", json!({"foo": "a"})),
            message("BOTH", json!({"foo": "b"})),
        ],
    )
    .await
    .unwrap();
    assert_eq!(response["output"], json!(["<a", "<b>"]));

    let e = builder()
        .state(Prefix("<"))
        .build()
        .unwrap_err()
        .to_string();
    assert_contains(
        e,
        "function decorate_both in action 1 of path BOTH takes State<dispatch::Suffix>, but the pipeline has no state of that type (give it with .state(…))",
    );
}

#[test]
fn a_missing_sink_of_a_built_in_kind_says_how_to_get_its_plugin_registered() {
    let e = Pipeline::builder()
        .path("A", [Action::new().queue(Queue::kinesis("s"))])
        .registry(Registry::empty())
        .build()
        .unwrap_err()
        .to_string();
    assert_contains(
        &e,
        "enable the lpipe feature 'kinesis', or, if lpipe_kinesis is a dependency of its own, add `use lpipe_kinesis as _;` to the program",
    );
    assert_contains(
        e,
        "the feature 'kinesis-source' is the event source alone, without the sink",
    );
}

/// `handle`'s future can be spawned (and so awaited in any `Send` context: an axum handler, a
/// worker's batch task), records side by side included. A compile-time property: this test
/// does not build when it is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_can_be_spawned() {
    let pipeline = Pipeline::builder()
        .path("OK", [Action::new().function(needs_foo)])
        .registry(Registry::from_inventory())
        .concurrency(4)
        .build()
        .unwrap();
    let messages: Vec<_> = (0..8)
        .map(|i| message("OK", json!({"foo": format!("f{i}")})))
        .collect();
    let event = raw_event(&messages);
    let response = tokio::spawn(async move { pipeline.handle(&event, lambda_context(0)).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response["stats"]["successes"], 8, "{response}");
}
