//! Every line logged while a record runs names that record, its path and function, also when
//! records run side by side and across awaits (the records of a batch are polled by one
//! task; the scope is set and restored around each poll).

use std::time::Duration;

use lpipe_core::testing::{lambda_context, message, raw_event, CapturedLogs};
use lpipe_core::{registry::Registry, runtime::LogFormat, Action, BoxError, Pipeline};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Job {
    n: u64,
}

async fn first(job: Job) -> Result<(), BoxError> {
    tracing::info!(n = job.n, "before");
    // Different waits, so that records interleave.
    tokio::time::sleep(Duration::from_millis(10 * (job.n % 4))).await;
    tracing::info!(n = job.n, "after");
    Ok(())
}

async fn second(job: Job) -> Result<(), BoxError> {
    tokio::task::yield_now().await;
    tracing::info!(n = job.n, "second");
    Ok(())
}

#[tokio::test]
async fn concurrent_records_log_under_their_own_ids() {
    let pipeline = Pipeline::builder()
        .path("WORK", [Action::new().function(first).function(second)])
        .registry(Registry::from_inventory())
        .concurrency(4)
        .build()
        .unwrap();
    let messages: Vec<_> = (0..12).map(|n| message("work", json!({"n": n}))).collect();
    let logs = CapturedLogs::new();
    let subscriber = logs.subscriber(LogFormat::Json, "info");
    let mut context = lambda_context(0);
    context.request_id = "req-1".to_owned();
    let _guard = tracing::subscriber::set_default(subscriber);
    pipeline
        .handle(&raw_event(&messages), context)
        .await
        .unwrap();
    let lines = logs.json_lines();
    let of = |message: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["message"] == message).collect()
    };
    for (message, function) in [
        ("before", "first"),
        ("after", "first"),
        ("second", "second"),
    ] {
        let found = of(message);
        assert_eq!(found.len(), 12, "{message}: {}", logs.text());
        for line in found {
            // Raw records are numbered by position: record n has kwargs n.
            assert_eq!(line["record_id"], line["n"].to_string(), "{line}");
            assert_eq!(line["path"], "WORK", "{line}");
            assert_eq!(line["function"], function, "{line}");
            assert_eq!(line["request_id"], "req-1", "{line}");
        }
    }
    // Lines of the invocation outside any record name the request only.
    let finished = of("batch finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["request_id"], "req-1");
    assert!(finished[0].get("record_id").is_none(), "{}", finished[0]);
    assert!(finished[0].get("function").is_none(), "{}", finished[0]);
}
