//! A user-written [`Sink`]: posts messages to an HTTP webhook, as a JSON array per call.
//!
//! Queues of the custom kind `webhook` target a URL (`http://host:port/path`; plain HTTP keeps
//! the example free of TLS dependencies). A 2xx answer delivers the batch; 5xx and connection
//! failures are retried by the outbox; any other status fails the records.

use lpipe::{
    async_trait,
    sink::{OutboundMessage, SendError, Sink, SinkLimits},
    Action, Pipeline, PipelineBuilder, Queue, QueueKind,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The queue kind this sink sends.
pub fn kind() -> QueueKind {
    QueueKind::custom("webhook")
}

/// Posts batches of messages to webhooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebhookSink;

fn split_url(url: &str) -> Result<(&str, &str), SendError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| SendError::permanent(format!("'{url}' is not an http:// URL")))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

async fn post(url: &str, body: &str) -> Result<u16, SendError> {
    let (host, path) = split_url(url)?;
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| SendError::retryable(format!("cannot connect to {host}: {e}")))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| SendError::retryable(e.to_string()))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| SendError::retryable(e.to_string()))?;
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| SendError::retryable(format!("not an HTTP response: {head:?}")))
}

#[async_trait]
impl Sink for WebhookSink {
    async fn send(
        &self,
        queue: &Queue,
        batch: &[OutboundMessage],
    ) -> Result<Vec<Result<(), SendError>>, SendError> {
        let body = format!(
            "[{}]",
            batch
                .iter()
                .map(|m| m.body.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        match post(queue.target(), &body).await? {
            200..=299 => Ok(batch.iter().map(|_| Ok(())).collect()),
            code @ 500..=599 => Err(SendError::retryable(format!(
                "{} answered {code}",
                queue.target()
            ))),
            code => Err(SendError::permanent(format!(
                "{} answered {code}",
                queue.target()
            ))),
        }
    }

    fn limits(&self, _queue: &Queue) -> SinkLimits {
        SinkLimits {
            max_entries: 20,
            max_entry_bytes: 64 * 1024,
            max_batch_bytes: 256 * 1024,
        }
    }

    fn validate(&self, queue: &Queue) -> Result<(), String> {
        split_url(queue.target()).map(|_| ()).map_err(|e| e.message)
    }
}

/// The webhook URL (`WEBHOOK_URL`, default `http://127.0.0.1:8080/hooks`).
pub fn webhook_url() -> String {
    std::env::var("WEBHOOK_URL").unwrap_or_else(|_| "http://127.0.0.1:8080/hooks".to_owned())
}

/// An order to notify about.
#[derive(Debug, Deserialize)]
pub struct Order {
    /// The order.
    pub order_id: String,
    /// Its total, in cents.
    pub total_cents: u64,
}

/// Checks the order (its fields are what NOTIFY forwards to the webhook).
pub async fn check_order(order: Order) -> Result<(), lpipe::FailButContinue> {
    if order.total_cents == 0 {
        return Err(lpipe::FailButContinue::new(format!(
            "order {} is empty",
            order.order_id
        )));
    }
    Ok(())
}

/// The pipeline: NOTIFY checks an order and posts it to the webhook ([`webhook_url`]), with
/// the sink registered.
pub fn pipeline() -> PipelineBuilder {
    pipeline_to(&webhook_url())
}

/// The same pipeline, posting to `url`.
pub fn pipeline_to(url: &str) -> PipelineBuilder {
    Pipeline::builder()
        .path(
            "NOTIFY",
            [Action::new()
                .function(check_order)
                .queue(Queue::new(kind(), url))],
        )
        .sink(kind(), WebhookSink)
        // Invoked directly (or by a test) with lpipe messages.
        .only_source("raw")
}
