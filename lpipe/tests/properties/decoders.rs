//! The decoders never panic and never accept what they should reject: arbitrary bytes and
//! arbitrary JSON as an event give a clear `InvalidEvent` or per-record outcomes that count
//! every record, and a source takes only events whose every record names it; arbitrary Kinesis
//! data (not base64, not UTF-8) drops only its own record, saying why.

use base64::Engine;
use lpipe::testing::lambda_context;
use lpipe::testing::CapturingReporter;
use lpipe::{Action, BoxError, ErrorKind, NoParams, Outcome, Pipeline};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::support::{block_on, config};

async fn ok(_: NoParams) -> Result<(), BoxError> {
    Ok(())
}

const PINS: [Option<&str>; 5] = [
    None,
    Some("raw"),
    Some("sqs"),
    Some("kinesis"),
    Some("cloudwatch"),
];

fn pipeline(pin: Option<&str>, reporter: CapturingReporter) -> Pipeline {
    let builder = Pipeline::builder()
        .detect_source()
        .path("OK", [Action::new().function(ok)])
        .registry(lpipe::registry())
        .reporter(reporter);
    match pin {
        Some(name) => builder.only_source(name),
        None => builder,
    }
    .build()
    .expect("a valid pipeline")
}

/// The keys that the sources look at, and a few others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "Records", "eventSource", "EventSource", "body", "messageId", "attributes",
            "MessageGroupId", "eventSourceARN", "kinesis", "data", "sequenceNumber",
            "partitionKey", "detail", "detail-type", "source", "id", "path", "kwargs",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "aws:sqs",
            "aws:kinesis",
            "aws:s3",
            "OK",
            "{}",
            "e30=",
            "not base64",
            "arn:aws:sqs:us-east-1:1:q.fifo",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Events shaped like the sources' own, with arbitrary values inside: records that name a
/// source (or none) and are well-formed for theirs, or hold arbitrary entries.
fn event_like() -> impl Strategy<Value = Value> {
    let well_formed = |source: Option<&str>, i: usize| match source {
        Some("aws:kinesis") => json!({
            "kinesis": {"sequenceNumber": format!("{i}"), "partitionKey": "p", "data": "e30="}
        }),
        Some("aws:dynamodb") => json!({"dynamodb": {"Keys": {}}, "eventName": "INSERT"}),
        _ => json!({"messageId": format!("m{i}"), "body": "{}", "receiptHandle": "rh"}),
    };
    let record = (
        prop::option::of(prop::sample::select(vec![
            "aws:sqs",
            "aws:kinesis",
            "aws:dynamodb",
        ])),
        any::<bool>(),
        prop::collection::vec((key(), json_value()), 0..5),
    );
    let records = prop::collection::vec(record, 0..6).prop_map(move |records| {
        let records: Vec<Value> = records
            .into_iter()
            .enumerate()
            .map(|(i, (source, formed, entries))| {
                let mut record = if formed {
                    well_formed(source, i)
                } else {
                    Value::Object(entries.into_iter().collect::<Map<_, _>>())
                };
                if let Some(s) = source {
                    record["eventSource"] = json!(s);
                }
                record
            })
            .collect();
        json!({ "Records": records })
    });
    prop_oneof![2 => records, 1 => json_value()]
}

/// Bytes that are mostly events: random ones, and events of the sources' shapes cut short or
/// with one byte changed, some behind a UTF-8 byte-order mark.
fn damaged_events() -> impl Strategy<Value = Vec<u8>> {
    let damaged = (
        event_like(),
        any::<prop::sample::Index>(),
        prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        any::<bool>(),
    )
        .prop_map(|(event, cut, flip, bom)| {
            let mut bytes = event.to_string().into_bytes();
            if let Some((at, byte)) = flip {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
            } else {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            if bom {
                let mut with_bom = "\u{feff}".as_bytes().to_vec();
                with_bom.extend(bytes);
                bytes = with_bom;
            }
            bytes
        });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..200),
        4 => damaged,
    ]
}

/// What every handled event must satisfy, whatever it was.
fn check(event: &str, pin: Option<&str>, parsed: Option<&Value>) -> Result<(), TestCaseError> {
    let reporter = CapturingReporter::new();
    let result = block_on(pipeline(pin, reporter.clone()).handle(event, lambda_context(0)));
    let stats = match &result {
        Ok(response) => Some(response["stats"].clone()),
        Err(e) => {
            prop_assert!(
                [
                    "InvalidEvent",
                    "FailCatastrophically",
                    "UnreportableFailure"
                ]
                .contains(&e.error_type.as_str()),
                "{:?}",
                e
            );
            prop_assert!(!e.error_message.is_empty());
            e.error_message
                .rsplit_once("stats: ")
                .and_then(|(_, s)| serde_json::from_str(s).ok())
        }
    };
    let taken = stats.is_some();
    if let Some(stats) = stats {
        let n = |k: &str| stats[k].as_u64().expect("a count");
        let reports = reporter.reports();
        prop_assert_eq!(reports.len() as u64, n("dropped") + n("failed"));
        prop_assert!(reports
            .iter()
            .all(|r| r.outcome != Outcome::Success && !r.message.is_empty()));
    }
    // A source takes an event only if every record names it.
    let own = match pin {
        Some("sqs") => Some("aws:sqs"),
        Some("kinesis") => Some("aws:kinesis"),
        _ => None,
    };
    if let (true, Some(value), Some(own)) = (taken, parsed, own) {
        let records = value["Records"].as_array();
        prop_assert!(records.is_some(), "took an event without Records");
        for r in records.unwrap() {
            prop_assert!(
                r["eventSource"] == own || r["EventSource"] == own,
                "took a record of another source: {}",
                r
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(300))]

    /// Random bytes, and events cut short or with a byte changed (with or without a
    /// byte-order mark): what is not JSON is refused as a whole, never taken as an empty or
    /// partial batch.
    #[test]
    fn arbitrary_bytes_are_refused_or_counted(bytes in damaged_events()) {
        let text = String::from_utf8_lossy(&bytes);
        let json = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let is_json = serde_json::from_str::<serde::de::IgnoredAny>(json).is_ok();
        for pin in PINS {
            check(&text, pin, None)?;
            if !is_json {
                let result = block_on(
                    pipeline(pin, CapturingReporter::new()).handle(&text, lambda_context(0)),
                );
                let err = result.err().map(|e| e.error_type);
                prop_assert_eq!(err.as_deref(), Some("InvalidEvent"), "{:?} took {}", pin, text);
            }
        }
    }

    #[test]
    fn arbitrary_json_is_refused_or_counted(event in event_like()) {
        let text = event.to_string();
        for pin in PINS {
            check(&text, pin, Some(&event))?;
        }
    }

    /// Kinesis data: valid base64 of arbitrary bytes (often not UTF-8), or arbitrary text.
    #[test]
    fn arbitrary_kinesis_data_drops_only_its_record(
        data in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..40).prop_map(Ok),
                any::<String>().prop_map(Err),
            ],
            1..20,
        ),
    ) {
        let records: Vec<Value> = data
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let data = match d {
                    Ok(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
                    Err(text) => text.clone(),
                };
                json!({"eventSource": "aws:kinesis", "kinesis": {
                    "sequenceNumber": format!("{:030}", i), "partitionKey": "p", "data": data}})
            })
            .collect();
        let reporter = CapturingReporter::new();
        let response = block_on(
            pipeline(Some("kinesis"), reporter.clone())
                .handle(&json!({"Records": records}).to_string(), lambda_context(0)),
        )
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(response["stats"]["received"].as_u64(), Some(data.len() as u64));
        for (i, d) in data.iter().enumerate() {
            let id = format!("{i:030}");
            let report = reporter.reports().into_iter().find(|r| r.record_id.as_deref() == Some(&id));
            let decoded = match d {
                Ok(bytes) => Ok(bytes.clone()),
                Err(text) => base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| ()),
            };
            match decoded {
                Err(()) => {
                    let r = report.expect("a record that is not base64 is dropped");
                    prop_assert_eq!(r.kind, ErrorKind::InvalidPayload);
                    prop_assert!(r.message.contains("not base64"), "{}", r.message);
                }
                Ok(bytes) if std::str::from_utf8(&bytes).is_err() => {
                    let r = report.expect("a record that is not UTF-8 is dropped");
                    prop_assert_eq!(r.kind, ErrorKind::InvalidPayload);
                    prop_assert!(r.message.contains("not UTF-8"), "{}", r.message);
                }
                // Text: it is a message (then it runs) or not (then it is dropped).
                Ok(bytes) => {
                    let is_message = serde_json::from_slice::<Value>(&bytes)
                        .is_ok_and(|v| v["path"] == "OK" && v["kwargs"].is_object());
                    prop_assert_eq!(report.is_none(), is_message);
                }
            }
        }
    }
}
