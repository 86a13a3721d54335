//! The EventBridge sink: PutEvents within the API's limits.

use std::sync::Arc;

use aws_sdk_cloudwatchevents::types::PutEventsRequestEntry;
use lpipe_core::{
    async_trait,
    sink::{OutboundMessage, SendError, Sink, SinkLimits},
    Queue,
};

/// Entries per PutEvents call.
pub const EVENTBRIDGE_MAX_ENTRIES: usize = 10;
/// Bytes per PutEvents call (and so per entry), counted as AWS documents: the UTF-8 bytes of
/// each entry's `Source`, `DetailType`, `Detail` and `Resources`, plus 14 for a `Time`.
pub const EVENTBRIDGE_MAX_BATCH_BYTES: usize = 256 * 1024;

/// PutEvents calls to one queue on their way at once ([`Sink::calls_in_flight`]), for
/// messages without an order key: forwarding thousands of messages waits for hundreds of round
/// trips eight at a time, not one after another.
pub const EVENTBRIDGE_CALLS_IN_FLIGHT: usize = 8;

/// The `source` of events when the queue sets none.
pub const DEFAULT_SOURCE: &str = "lpipe";

/// Sends to queues of kind `eventbridge`, targeted by bus name or ARN, with PutEvents; the
/// message is the event's `detail`.
///
/// Per queue options ([`Queue::option`]): `source` (default `lpipe`) and `detail_type`
/// (default: the queue's path, or `lpipe.message` without one).
#[derive(Clone, Default)]
pub struct EventBridgeSink {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    client: Option<aws_sdk_cloudwatchevents::Client>,
    state: lpipe_aws::SinkState,
}

impl EventBridgeSink {
    /// A sink using the shared client (see [`shared_client`](crate::shared_client)).
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink using this client.
    pub fn with_client(client: aws_sdk_cloudwatchevents::Client) -> Self {
        EventBridgeSink {
            inner: Arc::new(Inner {
                client: Some(client),
                ..Inner::default()
            }),
        }
    }

    /// Overrides the limits.
    pub fn with_limits(self, limits: SinkLimits) -> Self {
        self.inner.state.set_limits(limits);
        self
    }

    /// PutEvents calls made so far.
    pub fn put_events_calls(&self) -> usize {
        self.inner.state.calls()
    }
}

fn source_of(queue: &Queue) -> &str {
    queue.get_option("source").unwrap_or(DEFAULT_SOURCE)
}

fn detail_type_of(queue: &Queue) -> &str {
    queue
        .get_option("detail_type")
        .or_else(|| queue.consumer_path().map(|p| p.as_str()))
        .unwrap_or("lpipe.message")
}

/// Error codes worth retrying.
const RETRYABLE: &[&str] = &[
    "InternalFailure",
    "ThrottlingException",
    "InternalException",
    "ServiceUnavailable",
];

#[async_trait]
impl Sink for EventBridgeSink {
    fn options(&self) -> Option<&'static [&'static str]> {
        Some(&["source", "detail_type"])
    }

    fn routing(&self, message: &OutboundMessage) -> Vec<(&'static str, String)> {
        vec![
            ("Source", source_of(&message.queue).to_owned()),
            ("DetailType", detail_type_of(&message.queue).to_owned()),
        ]
    }

    async fn send(
        &self,
        queue: &Queue,
        batch: &[OutboundMessage],
    ) -> Result<Vec<Result<(), SendError>>, SendError> {
        let client = match &self.inner.client {
            Some(c) => c.clone(),
            None => crate::shared_client().await,
        };
        let entries: Vec<PutEventsRequestEntry> = batch
            .iter()
            .map(|m| {
                PutEventsRequestEntry::builder()
                    .source(source_of(queue))
                    .detail_type(detail_type_of(queue))
                    .detail(&m.body)
                    .event_bus_name(queue.target())
                    .set_trace_header(m.trace_header.as_deref().map(str::to_owned))
                    .build()
            })
            .collect();
        self.inner.state.count_call();
        let out = client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                lpipe_aws::classify(
                    &e,
                    &format!("PutEvents to bus '{}'", queue.target()),
                    RETRYABLE,
                )
            })?;
        let results = out.entries.unwrap_or_default();
        if results.len() != batch.len() {
            return Err(SendError::retryable(format!(
                "PutEvents returned {} results for {} entries",
                results.len(),
                batch.len()
            )));
        }
        Ok(results
            .into_iter()
            .map(|r| match r.error_code {
                None => Ok(()),
                Some(code) => Err(SendError {
                    retryable: RETRYABLE.contains(&code.as_str()),
                    message: format!("{code}: {}", r.error_message.unwrap_or_default()),
                }),
            })
            .collect())
    }

    fn calls_in_flight(&self, _queue: &Queue) -> usize {
        EVENTBRIDGE_CALLS_IN_FLIGHT
    }

    fn limits(&self, _queue: &Queue) -> SinkLimits {
        self.inner.state.limits_or(SinkLimits {
            max_entries: EVENTBRIDGE_MAX_ENTRIES,
            max_entry_bytes: EVENTBRIDGE_MAX_BATCH_BYTES,
            max_batch_bytes: EVENTBRIDGE_MAX_BATCH_BYTES,
        })
    }

    fn entry_size(&self, message: &OutboundMessage) -> usize {
        source_of(&message.queue).len() + detail_type_of(&message.queue).len() + message.body.len()
    }

    fn validate(&self, queue: &Queue) -> Result<(), String> {
        let t = queue.target();
        if t.starts_with("arn:") && !t.contains(":events:") {
            return Err(format!(
                "'{t}' is not an event bus ARN (arn:aws:events:REGION:ACCOUNT:event-bus/NAME)"
            ));
        }
        if source_of(queue).is_empty() || detail_type_of(queue).is_empty() {
            return Err("source and detail_type must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_sizes_count_source_detail_type_and_detail() {
        let sink = EventBridgeSink::new();
        let q = Queue::eventbridge("bus").event_source("app").path("NEXT");
        let m = OutboundMessage {
            queue: q,
            body: r#"{"a":1}"#.into(),
            id: "0:0".into(),
            trace_header: None,
            attributes: Vec::new(),
            kept_kwargs: Vec::new(),
        };
        assert_eq!(sink.entry_size(&m), 3 + 4 + 7);
        let q = Queue::eventbridge("bus");
        assert_eq!(detail_type_of(&q), "lpipe.message");
        assert_eq!(source_of(&q), "lpipe");
    }
}
