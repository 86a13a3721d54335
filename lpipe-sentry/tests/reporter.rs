//! What reaches Sentry: through sentry's test transport, and end to end through a DSN that
//! points at an HTTP server on 127.0.0.1 which records the envelopes.

use std::sync::{Arc, Mutex};

use lpipe_core::testing::{lambda_context, message, raw_event};
use lpipe_core::{Action, BoxError, FailButContinue, FailCatastrophically, NoParams, Pipeline};
use lpipe_sentry::SentryReporter;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Deserialize)]
struct Charge {
    #[allow(dead_code)]
    card: String,
}

async fn charge(_: Charge) -> Result<(), FailCatastrophically> {
    Err(FailCatastrophically::new("the payment service is down"))
}

async fn reject(_: NoParams) -> Result<(), FailButContinue> {
    Err(FailButContinue::new("not ours"))
}

async fn fine(_: NoParams) -> Result<(), BoxError> {
    Ok(())
}

fn pipeline(reporter: SentryReporter) -> Pipeline {
    Pipeline::builder()
        .path("CHARGE", [Action::new().function(charge)])
        .path("REJECT", [Action::new().function(reject)])
        .path("FINE", [Action::new().function(fine)])
        .reporter(reporter)
        .build()
        .unwrap()
}

fn event() -> String {
    raw_event(&[
        message("FINE", json!({})),
        message("REJECT", json!({})),
        message("CHARGE", json!({"card": "4111-secret"})),
    ])
}

fn test_reporter(include_kwargs: bool) -> (SentryReporter, Arc<sentry::test::TestTransport>) {
    let transport = sentry::test::TestTransport::new();
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some("https://public@sentry.invalid/1".parse().unwrap());
    options.transport = Some(Arc::new(transport.clone()));
    (
        SentryReporter::with_options(options).include_kwargs(include_kwargs),
        transport,
    )
}

#[tokio::test]
async fn dropped_and_failed_records_reach_sentry_with_their_tags() {
    let (reporter, transport) = test_reporter(false);
    let err = pipeline(reporter)
        .handle(&event(), lambda_context(0))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "FailCatastrophically", "CHARGE failed");
    let events = transport.fetch_and_clear_events();
    assert_eq!(
        events.len(),
        2,
        "one event per dropped or failed record, none for the success"
    );
    let reject = &events[0];
    assert_eq!(reject.level, sentry::Level::Warning);
    assert_eq!(reject.tags["lpipe.path"], "REJECT");
    assert_eq!(reject.tags["lpipe.function"], "reject");
    assert_eq!(reject.tags["lpipe.record_id"], "1");
    assert_eq!(reject.tags["lpipe.event_source"], "raw");
    assert_eq!(reject.tags["lpipe.outcome"], "dropped");
    assert_eq!(reject.tags["aws.request_id"], "test-request");
    assert_eq!(reject.exception[0].ty, "FailButContinue");
    let charge = &events[1];
    assert_eq!(charge.level, sentry::Level::Error);
    assert_eq!(charge.tags["lpipe.outcome"], "failed");
    assert_eq!(
        charge.exception[0].value.as_deref(),
        Some("the payment service is down")
    );
    assert!(
        !charge.extra.contains_key("kwargs"),
        "kwargs only when opted in"
    );
}

#[tokio::test]
async fn kwargs_are_attached_only_when_opted_in() {
    let (reporter, transport) = test_reporter(true);
    let err = pipeline(reporter)
        .handle(&event(), lambda_context(0))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "FailCatastrophically", "CHARGE failed");
    let events = transport.fetch_and_clear_events();
    assert_eq!(events[1].extra["kwargs"], json!({"card": "4111-secret"}));
}

#[test]
fn without_a_dsn_reporting_is_off() {
    // Read from a value, not the environment: tests run side by side.
    assert!(!SentryReporter::from_dsn(None).is_enabled());
    assert!(!SentryReporter::from_dsn(Some("  ")).is_enabled());
    assert!(!SentryReporter::from_dsn(Some("not a dsn")).is_enabled());
    assert!(SentryReporter::from_dsn(Some("https://public@sentry.invalid/1")).is_enabled());
}

/// An HTTP server that keeps every request body.
async fn envelope_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    kept.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
                    buf.drain(..end + 4 + len);
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                        .await;
                }
            });
        }
    });
    (port, bodies)
}

#[tokio::test(flavor = "multi_thread")]
async fn end_to_end_the_envelopes_reach_the_dsn_before_the_invocation_returns() {
    let (port, bodies) = envelope_server().await;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(
        format!("http://public@127.0.0.1:{port}/42")
            .parse()
            .unwrap(),
    );
    let reporter = SentryReporter::with_options(options);
    assert!(reporter.is_enabled());
    let err = pipeline(reporter)
        .handle(&event(), lambda_context(0))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "FailCatastrophically", "CHARGE failed");
    // handle() flushed: the envelopes are there now, without waiting.
    let bodies = bodies.lock().unwrap().clone();
    let events: Vec<Value> = bodies
        .iter()
        .flat_map(|b| {
            b.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .filter(|v| v.get("tags").is_some())
        .collect();
    assert_eq!(events.len(), 2, "{bodies:?}");
    let paths: Vec<&str> = events
        .iter()
        .map(|e| e["tags"]["lpipe.path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["REJECT", "CHARGE"]);
}
