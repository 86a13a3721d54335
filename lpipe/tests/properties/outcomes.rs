//! The outcome model, per source: every record ends exactly once as its generated behaviour
//! implies, the response names exactly the records to retry, outputs are in record order, and
//! a record's outbound messages are sent only if it succeeds.

use std::collections::HashSet;

use base64::Engine;
use lpipe::testing::lambda_context;
use lpipe::testing::CapturingReporter;
use lpipe::{
    error::InvocationError, sink::MemorySink, Action, BoxError, ErrorKind, FailButContinue,
    FailCatastrophically, Outcome, Payload, Pipeline, Queue, QueueKind,
};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::{block_on, config, quiet_generated_panics, GENERATED_PANIC};

/// What the function a record reaches does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// Returns its `n` as the record's output.
    Output,
    /// Succeeds and forwards `{"n": n}` to the memory queue.
    Forward,
    /// Returns a payload to the `Output` path.
    Hop,
    /// `FailButContinue`.
    Drop,
    /// An ordinary error.
    Error,
    /// `FailCatastrophically`.
    Hard,
    /// Forwards `{"n": n}` in a first action, then fails catastrophically in a second: the
    /// message must not be sent.
    ForwardThenFail,
    /// Panics.
    Panic,
}

impl Behaviour {
    fn path(self) -> &'static str {
        match self {
            Behaviour::Output => "OUTPUT",
            Behaviour::Forward => "FORWARD",
            Behaviour::Hop => "HOP",
            Behaviour::Drop => "DROP",
            Behaviour::Error => "ERROR",
            Behaviour::Hard => "HARD",
            Behaviour::ForwardThenFail => "FORWARD_THEN_FAIL",
            Behaviour::Panic => "PANIC",
        }
    }
}

/// A record's body.
#[derive(Clone, Debug)]
enum Body {
    /// `{"path": …, "kwargs": {"n": i}}`.
    Message(Behaviour),
    /// `{"n": i}`: runs the default path, if the pipeline has one.
    Bare,
    /// Not JSON.
    BadJson,
    /// `n` is a string.
    WrongType,
    /// A path the pipeline does not have.
    UnknownPath,
    /// The source has no body to give (no SQS `body`, Kinesis data that is not base64, a raw
    /// record that is a number, an EventBridge event without `detail`).
    Missing,
}

/// How a record's id is generated.
#[derive(Clone, Copy, Debug)]
enum Id {
    Unique,
    /// One of a few ids shared with other records.
    Repeated(u8),
    Empty,
    Missing,
}

#[derive(Clone, Debug)]
struct Generated {
    body: Body,
    id: Id,
    /// FIFO group, or Kinesis partition key (`None`: no group).
    key: Option<u8>,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => Just(Behaviour::Output),
        3 => Just(Behaviour::Forward),
        2 => Just(Behaviour::Hop),
        1 => Just(Behaviour::Drop),
        1 => Just(Behaviour::Error),
        1 => Just(Behaviour::Hard),
        1 => Just(Behaviour::ForwardThenFail),
        1 => Just(Behaviour::Panic),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        12 => behaviour().prop_map(Body::Message),
        1 => Just(Body::Bare),
        1 => Just(Body::BadJson),
        1 => Just(Body::WrongType),
        1 => Just(Body::UnknownPath),
        1 => Just(Body::Missing),
    ]
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        12 => Just(Id::Unique),
        4 => (0u8..3).prop_map(Id::Repeated),
        1 => Just(Id::Empty),
        1 => Just(Id::Missing),
    ]
}

fn record() -> impl Strategy<Value = Generated> {
    (body(), id(), prop::option::weighted(0.9, 0u8..4)).prop_map(|(body, id, key)| Generated {
        body,
        id,
        key,
    })
}

/// A batch: mostly small, sometimes up to `max` records. Only some batches have records
/// without ids (one failed record without an id fails the whole invocation, which would leave
/// the rest of the response unchecked).
fn batch(max: usize) -> impl Strategy<Value = Vec<Generated>> {
    let records = prop_oneof![
        3 => prop::collection::vec(record(), 0..12),
        1 => prop::collection::vec(record(), 0..max),
    ];
    (records, prop::bool::weighted(0.2)).prop_map(|(mut records, missing_ids)| {
        if !missing_ids {
            for r in &mut records {
                if matches!(r.id, Id::Empty | Id::Missing) {
                    r.id = Id::Unique;
                }
            }
        }
        records
    })
}

#[derive(Deserialize)]
struct N {
    n: i64,
}

async fn output(args: N) -> Result<i64, BoxError> {
    Ok(args.n)
}

async fn hop(args: N) -> Result<Payload, BoxError> {
    Ok(Payload::to_path("OUTPUT", &json!({"n": args.n}))?)
}

async fn drop_it(_: N) -> Result<(), FailButContinue> {
    Err(FailButContinue::new("generated drop"))
}

async fn error(_: N) -> Result<(), BoxError> {
    Err("generated error".into())
}

async fn hard(_: N) -> Result<(), FailCatastrophically> {
    Err(FailCatastrophically::new("generated failure"))
}

async fn panic(_: N) -> Result<(), BoxError> {
    std::panic::panic_any(GENERATED_PANIC)
}

fn memory_queue() -> Queue {
    Queue::new(QueueKind::custom("memory"), "out")
}

struct Run {
    response: Result<Value, InvocationError>,
    reports: Vec<(Option<String>, Outcome, ErrorKind)>,
    sent: Vec<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Raw,
    Sqs { fifo: bool },
    Kinesis,
    EventBridge,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Raw => "raw",
            Source::Sqs { .. } => "sqs",
            Source::Kinesis => "kinesis",
            Source::EventBridge => "cloudwatch",
        }
    }
}

const FIFO_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:in.fifo";

fn body_text(body: &Body, n: usize) -> Option<String> {
    Some(match body {
        Body::Message(b) => json!({"path": b.path(), "kwargs": {"n": n}}).to_string(),
        Body::Bare => json!({"n": n}).to_string(),
        Body::BadJson => format!(r#"{{"path": "OUTPUT", "kwargs": {{"n": {n}"#),
        Body::WrongType => json!({"path": "OUTPUT", "kwargs": {"n": "seven"}}).to_string(),
        Body::UnknownPath => json!({"path": "NOPE", "kwargs": {"n": n}}).to_string(),
        Body::Missing => return None,
    })
}

/// The id each generated record carries in the event (`None`: absent).
fn event_ids(source: Source, records: &[Generated]) -> Vec<Option<String>> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| match (source, r.id) {
            // Kinesis: ascending sequence numbers, as a shard gives them.
            (Source::Kinesis, Id::Unique | Id::Repeated(_)) => Some(format!("{:030}", 1000 + i)),
            (_, Id::Unique) => Some(format!("id-{i}")),
            (_, Id::Repeated(k)) => Some(format!("shared-{k}")),
            (_, Id::Empty) => Some(String::new()),
            (_, Id::Missing) => None,
        })
        .collect()
}

fn event(source: Source, records: &[Generated]) -> String {
    let ids = event_ids(source, records);
    let with_id = |mut record: Value, key: &str, id: &Option<String>| {
        if let Some(id) = id {
            record[key] = json!(id);
        }
        record
    };
    match source {
        Source::Raw => {
            let elements: Vec<Value> = records
                .iter()
                .enumerate()
                .map(|(i, r)| match body_text(&r.body, i) {
                    // Objects as they are, or as strings holding them.
                    Some(text) => match serde_json::from_str::<Value>(&text) {
                        Ok(v) if i % 2 == 0 => v,
                        _ => json!(text),
                    },
                    None => json!(i),
                })
                .collect();
            Value::Array(elements).to_string()
        }
        Source::Sqs { fifo } => {
            let arn = if fifo {
                FIFO_ARN
            } else {
                "arn:aws:sqs:us-east-1:123456789012:in"
            };
            let records: Vec<Value> = records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut record = json!({
                        "receiptHandle": "rh", "eventSource": "aws:sqs", "eventSourceARN": arn,
                        "awsRegion": "us-east-1", "md5OfBody": "x", "messageAttributes": {},
                        "attributes": {"ApproximateReceiveCount": "1"},
                    });
                    if let Some(text) = body_text(&r.body, i) {
                        record["body"] = json!(text);
                    }
                    if let (true, Some(k)) = (fifo, r.key) {
                        record["attributes"]["MessageGroupId"] = json!(format!("g{k}"));
                    }
                    with_id(record, "messageId", &ids[i])
                })
                .collect();
            json!({ "Records": records }).to_string()
        }
        Source::Kinesis => {
            let records: Vec<Value> = records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let data = match body_text(&r.body, i) {
                        Some(text) => base64::engine::general_purpose::STANDARD.encode(text),
                        None => "not base64!".to_owned(),
                    };
                    let payload = json!({
                        "kinesisSchemaVersion": "1.0", "data": data,
                        "partitionKey": format!("p{}", r.key.unwrap_or(0)),
                        "approximateArrivalTimestamp": 1_700_000_000.5,
                    });
                    json!({
                        "eventSource": "aws:kinesis", "eventVersion": "1.0",
                        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/in",
                        "kinesis": with_id(payload, "sequenceNumber", &ids[i]),
                    })
                })
                .collect();
            json!({ "Records": records }).to_string()
        }
        Source::EventBridge => {
            let r = &records[0];
            let mut event = json!({
                "version": "0", "source": "lpipe.test", "detail-type": "Generated",
                "account": "123456789012", "region": "us-east-1",
                "time": "2026-11-28T00:00:00Z", "resources": [],
            });
            match (&r.body, body_text(&r.body, 0)) {
                (Body::BadJson, _) => event["detail"] = json!(0),
                (_, Some(text)) => event["detail"] = serde_json::from_str(&text).unwrap(),
                (_, None) => {}
            }
            with_id(event, "id", &ids[0]).to_string()
        }
    }
}

/// What one record should come to.
#[derive(Clone, Debug, PartialEq)]
struct Expected {
    outcome: Outcome,
    kind: Option<ErrorKind>,
    output: Option<Value>,
    forwards: bool,
}

fn success(output: Option<Value>, forwards: bool) -> Expected {
    Expected {
        outcome: Outcome::Success,
        kind: None,
        output,
        forwards,
    }
}

/// The outcomes table of the README, written out here rather than taken from the code.
fn outcome_of(kind: ErrorKind) -> Outcome {
    match kind {
        ErrorKind::InvalidPayload
        | ErrorKind::InvalidPath
        | ErrorKind::FailButContinue
        | ErrorKind::Unhandled
        | ErrorKind::Panic => Outcome::Dropped,
        _ => Outcome::Failed,
    }
}

fn not_success(kind: ErrorKind) -> Expected {
    Expected {
        outcome: outcome_of(kind),
        kind: Some(kind),
        output: None,
        forwards: false,
    }
}

/// The record's outcome on its own, before ordering is taken into account.
fn own_outcome(source: Source, default_path: bool, body: &Body, n: usize) -> Expected {
    let run = |b: Behaviour| match b {
        Behaviour::Output | Behaviour::Hop => success(Some(json!(n)), false),
        Behaviour::Forward => success(None, true),
        Behaviour::Drop => not_success(ErrorKind::FailButContinue),
        Behaviour::Error => not_success(ErrorKind::Unhandled),
        Behaviour::Hard | Behaviour::ForwardThenFail => {
            not_success(ErrorKind::FailCatastrophically)
        }
        Behaviour::Panic => not_success(ErrorKind::Panic),
    };
    // An EventBridge detail naming a path wins over the default path.
    let directed = source == Source::EventBridge;
    match body {
        Body::Message(b) if directed || !default_path => run(*b),
        Body::UnknownPath if directed || !default_path => not_success(ErrorKind::InvalidPath),
        Body::Bare if default_path => run(Behaviour::Output),
        // Messages read as kwargs of the default path lack `n`; and the rest is unreadable.
        _ => not_success(ErrorKind::InvalidPayload),
    }
}

fn expected(source: Source, default_path: bool, records: &[Generated]) -> Vec<Expected> {
    let mut failed_keys = HashSet::new();
    let mut stopped = false;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key = match source {
                Source::Sqs { fifo: true } => {
                    Some(r.key.map_or(FIFO_ARN.to_owned(), |k| format!("g{k}")))
                }
                _ => None,
            };
            let blocked = stopped || key.as_ref().is_some_and(|k| failed_keys.contains(k));
            let e = if blocked {
                not_success(ErrorKind::NotRun)
            } else {
                own_outcome(source, default_path, &r.body, i)
            };
            if e.outcome == Outcome::Failed {
                if source == Source::Kinesis {
                    stopped = true;
                }
                if let Some(k) = key {
                    failed_keys.insert(k);
                }
            }
            e
        })
        .collect()
}

fn run(source: Source, default_path: bool, concurrency: usize, records: &[Generated]) -> Run {
    quiet_generated_panics();
    let sink = MemorySink::new();
    let reporter = CapturingReporter::new();
    let mut builder = Pipeline::builder()
        .detect_source()
        .path("OUTPUT", [Action::new().function(output)])
        .path(
            "FORWARD",
            [Action::new().function(output).queue(memory_queue())],
        )
        .path("HOP", [Action::new().function(hop)])
        .path("DROP", [Action::new().function(drop_it)])
        .path("ERROR", [Action::new().function(error)])
        .path("HARD", [Action::new().function(hard)])
        .path(
            "FORWARD_THEN_FAIL",
            [
                Action::new().function(output).queue(memory_queue()),
                Action::new().function(hard),
            ],
        )
        .path("PANIC", [Action::new().function(panic)])
        .sink(QueueKind::custom("memory"), sink.clone())
        .reporter(reporter.clone())
        .registry(lpipe::registry())
        .only_source(source.name())
        .concurrency(concurrency);
    if default_path {
        builder = builder.default_path("OUTPUT");
    }
    let pipeline = builder.build().expect("a valid pipeline");
    let response = block_on(pipeline.handle(&event(source, records), lambda_context(0)));
    Run {
        response,
        reports: reporter
            .reports()
            .into_iter()
            .map(|r| (r.record_id, r.outcome, r.kind))
            .collect(),
        sent: sink
            .messages()
            .iter()
            .map(|m| serde_json::from_str(&m.body).expect("a JSON body"))
            .collect(),
    }
}

/// The record ids as the source reports them: empty ids are no ids.
fn reported_ids(source: Source, records: &[Generated]) -> Vec<Option<String>> {
    match source {
        Source::Raw => (0..records.len()).map(|i| Some(i.to_string())).collect(),
        _ => event_ids(source, records)
            .into_iter()
            .map(|id| id.filter(|i| !i.is_empty()))
            .collect(),
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn outcome_rank(o: Outcome) -> u8 {
    match o {
        Outcome::Success => 0,
        Outcome::Dropped => 1,
        Outcome::Failed => 2,
    }
}

type Reported = Vec<(Option<String>, u8, String)>;

fn reports_of(
    ids: &[Option<String>],
    outcomes: impl Iterator<Item = (usize, Outcome, Option<ErrorKind>)>,
) -> Reported {
    sorted(
        outcomes
            .filter(|(_, o, _)| *o != Outcome::Success)
            .map(|(i, o, k)| (ids[i].clone(), outcome_rank(o), format!("{k:?}")))
            .collect(),
    )
}

/// Checks a run against the model: the reports (each dropped or failed record's id, outcome
/// and error class), the stats, the outbound messages, and the response.
fn check(
    source: Source,
    records: &[Generated],
    expected: &[Expected],
    run: &Run,
) -> Result<(), TestCaseError> {
    let ids = reported_ids(source, records);
    let actual_reports = sorted(
        run.reports
            .iter()
            .map(|(id, o, k)| (id.clone(), outcome_rank(*o), format!("{:?}", Some(*k))))
            .collect(),
    );
    let expected_reports = reports_of(
        &ids,
        expected
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.outcome, e.kind)),
    );
    prop_assert_eq!(
        &actual_reports,
        &expected_reports,
        "dropped and failed records"
    );

    let count = |o: Outcome| expected.iter().filter(|e| e.outcome == o).count();
    let stats = json!({
        "received": records.len(), "successes": count(Outcome::Success),
        "dropped": count(Outcome::Dropped), "failed": count(Outcome::Failed),
    });

    let forwarded: Vec<Value> = expected
        .iter()
        .enumerate()
        .filter(|(_, e)| e.forwards)
        .map(|(i, _)| json!({"n": i}))
        .collect();
    prop_assert_eq!(&run.sent, &forwarded, "outbound messages, in record order");

    let failed: Vec<usize> = (0..records.len())
        .filter(|&i| expected[i].outcome == Outcome::Failed)
        .collect();
    match source {
        Source::Raw | Source::EventBridge => {
            if failed.is_empty() {
                let response = run.response.as_ref().expect("no record failed");
                prop_assert!(response["event"] == "Finished.", "{}", response);
                prop_assert_eq!(&response["stats"], &stats);
                let outputs: Vec<Value> = expected
                    .iter()
                    .map(|e| e.output.clone().unwrap_or(Value::Null))
                    .collect();
                if expected.iter().any(|e| e.output.is_some()) {
                    prop_assert_eq!(&response["output"], &Value::Array(outputs));
                } else {
                    prop_assert!(response.get("output").is_none(), "{}", response);
                }
            } else {
                let err = run.response.as_ref().expect_err("records failed");
                prop_assert_eq!(&err.error_type, "FailCatastrophically");
                if source == Source::Raw {
                    for i in 0..records.len() {
                        let named = err.error_message.contains(&format!("record {i} ("));
                        prop_assert_eq!(named, failed.contains(&i), "{}", err.error_message);
                    }
                }
                let reported_stats = err
                    .error_message
                    .rsplit_once("stats: ")
                    .and_then(|(_, s)| serde_json::from_str::<Value>(s).ok());
                prop_assert_eq!(
                    reported_stats.as_ref(),
                    Some(&stats),
                    "{}",
                    err.error_message
                );
            }
        }
        Source::Sqs { .. } | Source::Kinesis => {
            if failed.iter().any(|&i| ids[i].is_none()) {
                let err = run.response.as_ref().expect_err("an unreportable failure");
                prop_assert_eq!(&err.error_type, "UnreportableFailure");
                return Ok(());
            }
            let response = run
                .response
                .as_ref()
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(&response["stats"], &stats);
            let mut want: Vec<&str> = Vec::new();
            for &i in &failed {
                let id = ids[i].as_deref().expect("checked above");
                if !want.contains(&id) {
                    want.push(id);
                }
            }
            let got: Vec<&str> = response["batchItemFailures"]
                .as_array()
                .expect("batchItemFailures")
                .iter()
                .map(|f| f["itemIdentifier"].as_str().expect("a string identifier"))
                .collect();
            prop_assert_eq!(&got, &want, "batchItemFailures");
            prop_assert!(got.iter().all(|id| !id.is_empty()));
            if source == Source::Kinesis {
                // Lambda replays a shard from the lowest reported sequence number: it must be
                // the first failure's.
                let lowest = got.iter().min();
                prop_assert_eq!(
                    lowest.copied(),
                    failed.first().and_then(|&i| ids[i].as_deref())
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn raw_records_end_as_their_behaviour_implies(
        records in batch(300), default_path in any::<bool>(), concurrency in prop_oneof![Just(1usize), Just(4)],
    ) {
        let want = expected(Source::Raw, default_path, &records);
        let run = run(Source::Raw, default_path, concurrency, &records);
        check(Source::Raw, &records, &want, &run)?;
    }

    #[test]
    fn sqs_records_end_as_their_behaviour_implies(
        records in batch(300), fifo in any::<bool>(), default_path in any::<bool>(),
        concurrency in prop_oneof![Just(1usize), Just(4)],
    ) {
        let source = Source::Sqs { fifo };
        let want = expected(source, default_path, &records);
        let run = run(source, default_path, concurrency, &records);
        check(source, &records, &want, &run)?;
    }

    #[test]
    fn kinesis_records_end_as_their_behaviour_implies(
        records in batch(300), default_path in any::<bool>(),
    ) {
        let want = expected(Source::Kinesis, default_path, &records);
        let run = run(Source::Kinesis, default_path, 1, &records);
        check(Source::Kinesis, &records, &want, &run)?;
    }

    /// With records of several partition keys running side by side, a failure stops records
    /// from starting, but those already running finish: a record comes to its own outcome or,
    /// once some record has failed, is not run; the records of a failed record's key after it
    /// are never run.
    #[test]
    fn concurrent_kinesis_records_stop_starting_after_a_failure(
        mut records in batch(300), default_path in any::<bool>(),
    ) {
        // Unique ids, so that the reports tell each record's fate.
        for r in &mut records {
            r.id = Id::Unique;
        }
        let source = Source::Kinesis;
        let ids = reported_ids(source, &records);
        let run = run(source, default_path, 4, &records);
        let own: Vec<Expected> = records
            .iter()
            .enumerate()
            .map(|(i, r)| own_outcome(source, default_path, &r.body, i))
            .collect();
        let not_run: Vec<bool> = (0..records.len())
            .map(|i| run.reports.iter().any(|(id, _, k)| id == &ids[i] && *k == ErrorKind::NotRun))
            .collect();
        // What actually happened to each record is its own outcome unless it was not run.
        let actual: Vec<Expected> = own
            .iter()
            .zip(&not_run)
            .map(|(e, &nr)| if nr { not_success(ErrorKind::NotRun) } else { e.clone() })
            .collect();
        let first_failure = own.iter().position(|e| e.outcome == Outcome::Failed);
        for (i, r) in records.iter().enumerate() {
            if not_run[i] {
                prop_assert!(first_failure.is_some(), "record {} not run without a failure", i);
                if ids[i].is_none() {
                    // Without an id, it cannot be told apart in the reports.
                    continue;
                }
            }
            let failed_before_in_key = records[..i].iter().enumerate().any(|(j, q)| {
                q.key.unwrap_or(0) == r.key.unwrap_or(0) && actual[j].outcome == Outcome::Failed
            });
            if failed_before_in_key && ids[i].is_some() {
                prop_assert!(not_run[i], "record {} ran after a failure of its key", i);
            }
        }
        check(source, &records, &actual, &run)?;
    }

    #[test]
    fn eventbridge_events_end_as_their_behaviour_implies(
        record in record(), default_path in any::<bool>(),
    ) {
        let records = [record];
        let want = expected(Source::EventBridge, default_path, &records);
        let run = run(Source::EventBridge, default_path, 1, &records);
        check(Source::EventBridge, &records, &want, &run)?;
    }
}

/// An empty batch, handed to a pipeline pinned to SQS or Kinesis, is answered (nothing to run)
/// rather than refused as a foreign event.
#[test]
fn regression_an_empty_batch_is_taken_by_its_pinned_source() {
    for source in [Source::Sqs { fifo: false }, Source::Kinesis] {
        let run = run(source, false, 1, &[]);
        check(source, &[], &[], &run).unwrap();
    }
}
