//! The floor of lpipe's benchmark: the `bench` program's work written by hand, as a careful
//! engineer would without a framework. It decodes the event with borrowed serde structs, runs
//! the three functions of path PROCESS (`validate` + `enrich`, then `store`) on each record's
//! typed kwargs, and prints the same response as lpipe (a partial batch response with the
//! stats; dropped records are acknowledged).
//!
//! usage: `lpipe-bench-floor EVENT_FILE sqs|kinesis` (prints the response; the time spent
//! handling the event to stderr).

use std::borrow::Cow;
use std::process::ExitCode;

#[path = "../../harness.rs"]
mod harness;

use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct SqsEvent<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<SqsRecord<'a>>,
}

#[derive(Deserialize)]
struct KinesisEvent<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<KinesisRecord<'a>>,
}

#[derive(Deserialize)]
struct SqsRecord<'a> {
    #[serde(rename = "messageId", borrow)]
    message_id: Cow<'a, str>,
    #[serde(borrow)]
    body: Cow<'a, str>,
}

#[derive(Deserialize)]
struct KinesisRecord<'a> {
    #[serde(borrow)]
    kinesis: KinesisData<'a>,
}

#[derive(Deserialize)]
struct KinesisData<'a> {
    #[serde(rename = "sequenceNumber", borrow)]
    sequence_number: Cow<'a, str>,
    #[serde(borrow)]
    data: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    kwargs: &'a RawValue,
}

#[derive(Deserialize)]
struct Validate<'a> {
    user_id: i64,
    #[serde(borrow)]
    email: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Enrich<'a> {
    user_id: i64,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    score: f64,
}

#[derive(Deserialize)]
struct Store<'a> {
    user_id: i64,
    #[serde(borrow)]
    tags: Vec<Cow<'a, str>>,
}

enum Outcome {
    Success,
    Dropped,
}

/// The three functions of path PROCESS on one message; any error drops the record.
fn process(body: &str) -> Outcome {
    let Ok(message) = serde_json::from_str::<Message<'_>>(body) else {
        return Outcome::Dropped;
    };
    if message.path != "PROCESS" {
        return Outcome::Dropped;
    }
    let kwargs = message.kwargs.get();
    let (Ok(validate), Ok(enrich)) = (
        serde_json::from_str::<Validate<'_>>(kwargs),
        serde_json::from_str::<Enrich<'_>>(kwargs),
    ) else {
        return Outcome::Dropped;
    };
    if !validate.email.contains('@') {
        return Outcome::Dropped;
    }
    std::hint::black_box((enrich.user_id, &enrich.name, enrich.score));
    let Ok(store) = serde_json::from_str::<Store<'_>>(kwargs) else {
        return Outcome::Dropped;
    };
    std::hint::black_box((validate.user_id, store.user_id, &store.tags));
    Outcome::Success
}

/// Runs every record's body; returns (received, successes, dropped).
fn handle(event: &str, kind: &str) -> Result<(usize, usize, usize), String> {
    let mut counts = (0, 0, 0);
    let mut count = |outcome: Outcome| {
        counts.0 += 1;
        match outcome {
            Outcome::Success => counts.1 += 1,
            Outcome::Dropped => counts.2 += 1,
        }
    };
    match kind {
        "sqs" => {
            let event: SqsEvent<'_> = serde_json::from_str(event).map_err(|e| e.to_string())?;
            for r in &event.records {
                std::hint::black_box(&r.message_id);
                count(process(&r.body));
            }
        }
        "kinesis" => {
            let event: KinesisEvent<'_> = serde_json::from_str(event).map_err(|e| e.to_string())?;
            for r in &event.records {
                std::hint::black_box(&r.kinesis.sequence_number);
                let body = base64::engine::general_purpose::STANDARD
                    .decode(r.kinesis.data.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                count(body.as_deref().map_or(Outcome::Dropped, process));
            }
        }
        other => return Err(format!("unknown kind {other} (sqs or kinesis)")),
    }
    Ok(counts)
}

fn main() -> ExitCode {
    harness::run("lpipe-bench-floor", |event, kind| {
        let (received, successes, dropped) = handle(event, kind)?;
        let response = format!(
            r#"{{"batchItemFailures":[],"stats":{{"dropped":{dropped},"failed":0,"received":{received},"successes":{successes}}}}}"#
        );
        Ok((response, received))
    })
}
