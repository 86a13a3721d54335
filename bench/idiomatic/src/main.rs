//! The second floor of lpipe's benchmark: the `bench` program's work as most Rust Lambdas
//! are written by hand today. The event is read into `aws_lambda_events`' owned types
//! (`SqsEvent`, `KinesisEvent`), each body into a `{"path", "kwargs"}` message with the kwargs
//! as a `serde_json::Value`, and each function's typed arguments from a copy of those kwargs;
//! the answer is a `SqsBatchResponse` (plus the stats lpipe prints).
//!
//! usage: `lpipe-bench-idiomatic EVENT_FILE sqs|kinesis` (prints the response; the time spent
//! handling the event to stderr).

use std::process::ExitCode;

#[path = "../../harness.rs"]
mod harness;

use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde::Deserialize;

#[derive(Deserialize)]
struct Message {
    path: String,
    kwargs: serde_json::Value,
}

#[derive(Deserialize)]
struct Validate {
    user_id: i64,
    email: String,
}

#[derive(Deserialize)]
struct Enrich {
    user_id: i64,
    name: String,
    #[serde(default)]
    score: f64,
}

#[derive(Deserialize)]
struct Store {
    user_id: i64,
    tags: Vec<String>,
}

/// Why a record is dropped.
type Dropped = String;

/// The three functions of path PROCESS on one message; any error drops the record.
fn process(body: &str) -> Result<(), Dropped> {
    let message: Message = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if message.path != "PROCESS" {
        return Err(format!("unknown path {}", message.path));
    }
    let validate: Validate =
        serde_json::from_value(message.kwargs.clone()).map_err(|e| e.to_string())?;
    let enrich: Enrich =
        serde_json::from_value(message.kwargs.clone()).map_err(|e| e.to_string())?;
    if !validate.email.contains('@') {
        return Err(format!("bad email {}", validate.email));
    }
    std::hint::black_box((enrich.user_id, &enrich.name, enrich.score));
    let store: Store = serde_json::from_value(message.kwargs).map_err(|e| e.to_string())?;
    std::hint::black_box((validate.user_id, store.user_id, &store.tags));
    Ok(())
}

/// Runs every record's body; returns the response and (received, successes, dropped).
fn handle(event: &str, kind: &str) -> Result<(SqsBatchResponse, [usize; 3]), String> {
    let mut counts = [0; 3];
    let mut count = |outcome: Result<(), Dropped>| {
        counts[0] += 1;
        match outcome {
            Ok(()) => counts[1] += 1,
            Err(why) => {
                std::hint::black_box(why);
                counts[2] += 1;
            }
        }
    };
    match kind {
        "sqs" => {
            let event: SqsEvent = serde_json::from_str(event).map_err(|e| e.to_string())?;
            for r in event.records {
                std::hint::black_box(&r.message_id);
                count(process(r.body.as_deref().unwrap_or_default()));
            }
        }
        "kinesis" => {
            let event: KinesisEvent = serde_json::from_str(event).map_err(|e| e.to_string())?;
            for r in event.records {
                std::hint::black_box(&r.kinesis.sequence_number);
                match String::from_utf8(r.kinesis.data.0) {
                    Ok(body) => count(process(&body)),
                    Err(e) => count(Err(e.to_string())),
                }
            }
        }
        other => return Err(format!("unknown kind {other} (sqs or kinesis)")),
    }
    // Dropped records are acknowledged: no failures to report.
    Ok((SqsBatchResponse::default(), counts))
}

fn main() -> ExitCode {
    harness::run("lpipe-bench-idiomatic", |event, kind| {
        let (answer, [received, successes, dropped]) = handle(event, kind)?;
        let mut response = serde_json::to_value(&answer).expect("a response serializes");
        response["stats"] = serde_json::json!({
            "dropped": dropped, "failed": 0, "received": received, "successes": successes,
        });
        Ok((response.to_string(), received))
    })
}
