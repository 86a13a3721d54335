//! The user-written webhook sink against a real HTTP server on 127.0.0.1.

use std::sync::{Arc, Mutex};

use lpipe::sink::RetryPolicy;
use lpipe::testing::{assert_contains, lambda_context};
use lpipe_examples::webhook;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server answering `status` to every request and keeping the bodies.
async fn server(status: u16) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        kept.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&buf[i + 4..i + 4 + len]).unwrap());
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = socket
                .write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
        }
    });
    (url, bodies)
}

#[tokio::test]
async fn the_webhook_receives_what_the_pipeline_forwards() {
    let (url, bodies) = server(204).await;
    let pipeline = webhook::pipeline_to(&url).build().unwrap();
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/custom-sink.json"
    ))
    .unwrap();
    let response = pipeline.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 1, "dropped": 1, "failed": 0})
    );
    // One call with the one forwarded message, carrying only the function's parameters.
    assert_eq!(
        *bodies.lock().unwrap(),
        [json!([{"order_id": "o-1", "total_cents": 1250}])]
    );
}

#[tokio::test]
async fn a_failing_webhook_fails_the_records_after_retries() {
    let (url, bodies) = server(503).await;
    let pipeline = webhook::pipeline_to(&url)
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            backoff: lpipe::sink::Backoff::new(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_millis(5),
            ),
        })
        .build()
        .unwrap();
    let err = pipeline
        .handle(
            r#"[{"path": "NOTIFY", "kwargs": {"order_id": "o-9", "total_cents": 5}}]"#,
            lambda_context(0),
        )
        .await
        .unwrap_err();
    assert_contains(&err.error_message, "answered 503");
    assert_eq!(bodies.lock().unwrap().len(), 3, "three attempts");
}
