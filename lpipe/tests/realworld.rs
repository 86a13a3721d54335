//! Every event in `tests/realworld-events` (written by others: AWS's libraries, Powertools, SAM;
//! see its MANIFEST.tsv) through every source, detected and pinned.
//!
//! What must hold: an SQS, Kinesis, EventBridge, DynamoDB Streams, SNS or S3 event gives a well-formed response that counts
//! every record; an event of another service, or one handed to a pipeline pinned to another
//! source, is refused with `InvalidEvent` or dropped, and never taken as a success. None of the
//! bodies is an lpipe message, so a pipeline without a default path drops every record it takes;
//! one whose default path fails catastrophically keeps every record whose body is a JSON object
//! (and, by the source's ordering, those after it).

use std::collections::HashSet;
use std::path::PathBuf;

use base64::Engine;
use lpipe::testing::lambda_context;
use lpipe::{Action, FailCatastrophically, NoParams, Pipeline, PipelineBuilder};
use serde_json::Value;

async fn never_called(_: NoParams) -> Result<(), lpipe::BoxError> {
    panic!("no real-world body is an lpipe message")
}

async fn keep(_: NoParams) -> Result<(), FailCatastrophically> {
    Err(FailCatastrophically::new("kept for the test"))
}

/// Drops everything it takes: no body names a path.
fn dropping() -> PipelineBuilder {
    Pipeline::builder()
        .detect_source()
        .path("NEVER", [Action::new().function(never_called)])
}

/// Runs every record that is a JSON object on a default path that keeps it for retry.
fn keeping() -> PipelineBuilder {
    Pipeline::builder()
        .detect_source()
        .path("KEEP", [Action::new().function(keep)])
        .default_path("KEEP")
}

struct Sample {
    path: String,
    kind: String,
    /// The manifest says it parses as JSON (one upstream fixture is truncated on purpose).
    parses: bool,
    text: String,
}

fn samples() -> Vec<Sample> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/realworld-events");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("the manifest");
    manifest
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let bytes = std::fs::read(dir.join(cols[0])).expect("a listed file");
            Sample {
                path: cols[0].to_owned(),
                kind: cols[4].to_owned(),
                parses: cols[5] == "yes",
                // Every sample is UTF-8 (a few start with a byte-order mark, which handle skips).
                text: String::from_utf8(bytes).expect("the samples are UTF-8"),
            }
        })
        .collect()
}

/// The source that owns an event of this kind, if any.
fn owner(kind: &str) -> Option<&'static str> {
    match kind {
        "sqs" | "sqs-fifo" => Some("sqs"),
        "kinesis" => Some("kinesis"),
        "eventbridge" | "scheduled" => Some("cloudwatch"),
        "foreign-dynamodb" => Some("dynamodb"),
        "foreign-sns" => Some("sns"),
        "foreign-s3" => Some("s3"),
        _ => None,
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .expect("an event of a batch source is JSON")
}

fn is_object(body: Option<&str>) -> bool {
    body.and_then(|b| serde_json::from_str::<Value>(b).ok())
        .is_some_and(|v| v.is_object())
}

/// The identifiers a pipeline that keeps every JSON object must report, in order, once each.
fn expected_failures(kind: &str, event: &Value) -> Vec<String> {
    let records = event["Records"].as_array().expect("Records");
    let mut failed = Vec::new();
    let mut failed_groups = HashSet::new();
    let mut stopped = false;
    for r in records {
        let (id, fails) = match kind {
            "kinesis" => {
                let data = r["kinesis"]["data"].as_str().and_then(|d| {
                    base64::engine::general_purpose::STANDARD
                        .decode(d)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                });
                let fails = stopped || is_object(data.as_deref());
                stopped |= fails;
                (r["kinesis"]["sequenceNumber"].as_str(), fails)
            }
            "foreign-dynamodb" => {
                // The kwargs: the item (the old one for REMOVE; the keys without images), in
                // plain JSON. One that does not convert is dropped, not kept.
                let d = &r["dynamodb"];
                let image = match r["eventName"].as_str() {
                    Some("REMOVE") => d.get("OldImage").or(d.get("NewImage")),
                    _ => d.get("NewImage").or(d.get("OldImage")),
                }
                .or(d.get("Keys"));
                let converts = image
                    .and_then(Value::as_object)
                    .is_some_and(|m| lpipe::dynamodb::item_to_json(m).is_ok());
                let fails = stopped || converts;
                stopped |= fails;
                (d["SequenceNumber"].as_str(), fails)
            }
            _ => {
                let group = r["attributes"]["MessageGroupId"].as_str();
                let blocked = group.is_some_and(|g| failed_groups.contains(g));
                let fails = blocked || is_object(r["body"].as_str());
                if let (true, Some(g)) = (fails, group) {
                    failed_groups.insert(g.to_owned());
                }
                (r["messageId"].as_str(), fails)
            }
        };
        let id = id.expect("the samples' records have ids").to_owned();
        if fails && !failed.contains(&id) {
            failed.push(id);
        }
    }
    failed
}

fn pinned(builder: PipelineBuilder, source: Option<&str>) -> Pipeline {
    let builder = builder.registry(lpipe::registry());
    match source {
        Some(s) => builder.only_source(s),
        None => builder,
    }
    .build()
    .expect("a valid pipeline")
}

#[tokio::test]
async fn every_real_event_is_answered_by_its_own_source_and_refused_by_the_others() {
    let samples = samples();
    assert!(samples.len() > 300, "the samples are there");
    let mut checked = 0;
    for sample in &samples {
        for pin in [
            None,
            Some("raw"),
            Some("sqs"),
            Some("kinesis"),
            Some("cloudwatch"),
            Some("dynamodb"),
            Some("sns"),
            Some("s3"),
        ] {
            let what = format!("{} ({}), pinned to {pin:?}", sample.path, sample.kind);
            let own = owner(&sample.kind);
            let taken_by_owner = own.is_some() && (pin.is_none() || pin == own);
            let dropped = pinned(dropping(), pin)
                .handle(&sample.text, lambda_context(0))
                .await;
            let kept = pinned(keeping(), pin)
                .handle(&sample.text, lambda_context(0))
                .await;
            if taken_by_owner && !sample.parses {
                for result in [&dropped, &kept] {
                    let err = result.as_ref().expect_err(&what);
                    assert_eq!(err.error_type, "InvalidEvent", "{what}");
                }
            } else if taken_by_owner {
                let event = json_of(&sample.text);
                let received = event["Records"].as_array().map_or(1, Vec::len);
                let response = dropped.unwrap_or_else(|e| panic!("{what}: {e:?}"));
                assert_eq!(response["stats"]["received"], received, "{what}");
                assert_eq!(response["stats"]["dropped"], received, "{what}");
                if own == Some("sns") {
                    // Asynchronous invocations: a record kept for retry fails the invocation.
                    assert_eq!(response["event"], "Finished.", "{what}");
                    let objects = event["Records"].as_array().expect("Records").iter();
                    let mut messages = objects.map(|r| r["Sns"]["Message"].as_str());
                    if messages.any(is_object) {
                        let err = kept.expect_err(&what);
                        assert_eq!(err.error_type, "FailCatastrophically", "{what}");
                    } else {
                        let response = kept.unwrap_or_else(|e| panic!("{what}: {e:?}"));
                        assert_eq!(response["stats"]["dropped"], received, "{what}");
                    }
                } else if own == Some("s3") {
                    // The registered S3 source has no routes: every event is dropped, naming
                    // its event name, and nothing fails the (asynchronous) invocation.
                    assert_eq!(response["event"], "Finished.", "{what}");
                    let response = kept.unwrap_or_else(|e| panic!("{what}: {e:?}"));
                    assert_eq!(response["stats"]["dropped"], received, "{what}");
                } else if own == Some("cloudwatch") {
                    assert_eq!(response["event"], "Finished.", "{what}");
                    // The detail (or `{}` when there is none) is kwargs: kept, so the
                    // invocation fails and the rule's retry policy takes over.
                    let err = kept.expect_err(&what);
                    assert_eq!(err.error_type, "FailCatastrophically", "{what}");
                } else {
                    assert_eq!(
                        response["batchItemFailures"],
                        serde_json::json!([]),
                        "{what}"
                    );
                    let response = kept.unwrap_or_else(|e| panic!("{what}: {e:?}"));
                    let reported: Vec<&str> = response["batchItemFailures"]
                        .as_array()
                        .expect("batchItemFailures")
                        .iter()
                        .map(|f| f["itemIdentifier"].as_str().expect("an identifier"))
                        .collect();
                    assert_eq!(reported, expected_failures(&sample.kind, &event), "{what}");
                    let stats = &response["stats"];
                    assert_eq!(stats["received"], received, "{what}");
                }
            } else {
                // Not this source's event (or nobody's): refused, or (the raw source takes
                // any object without Records) dropped or kept, never a success.
                for result in [&dropped, &kept] {
                    match result {
                        Err(e) => assert!(
                            ["InvalidEvent", "FailCatastrophically"]
                                .contains(&e.error_type.as_str()),
                            "{what}: {e:?}"
                        ),
                        Ok(response) => {
                            assert_ne!(pin, Some("sqs"), "{what}: {response}");
                            assert_ne!(pin, Some("kinesis"), "{what}: {response}");
                            assert_ne!(pin, Some("dynamodb"), "{what}: {response}");
                            assert_ne!(pin, Some("sns"), "{what}: {response}");
                            assert_ne!(pin, Some("s3"), "{what}: {response}");
                            assert_eq!(response["stats"]["successes"], 0, "{what}: {response}");
                            assert_eq!(response["stats"]["failed"], 0, "{what}: {response}");
                        }
                    }
                }
                if pin.is_some() && own.is_some() && pin != Some("raw") {
                    let err = dropped.as_ref().expect_err(&what);
                    assert_eq!(err.error_type, "InvalidEvent", "{what}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, samples.len() * 8);
}

/// The case: a pipeline pinned to SQS, handed a Kinesis event by a misconfigured
/// mapping, must not acknowledge (and lose) its records.
#[tokio::test]
async fn a_kinesis_event_is_refused_by_a_pipeline_pinned_to_sqs() {
    let kinesis = samples()
        .into_iter()
        .find(|s| s.path == "powertools-python/kinesisStreamEvent.json")
        .expect("the sample");
    let err = pinned(dropping(), Some("sqs"))
        .handle(&kinesis.text, lambda_context(0))
        .await
        .expect_err("refused");
    assert_eq!(err.error_type, "InvalidEvent");
    lpipe::testing::assert_contains(
        &err.error_message,
        "this pipeline takes only 'sqs' events, and this is not one (records of eventSource 'aws:kinesis')",
    );
}
