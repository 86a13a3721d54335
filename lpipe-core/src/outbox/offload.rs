//! Outbound messages over the threshold are put in S3 and sent as pointers (see
//! [`crate::payload`]), for queues whose sink takes pointers.

use std::sync::Arc;

use crate::payload::{LargePayloads, PayloadPointer, PayloadStore, SIZE_ATTRIBUTE};
use crate::queue::Queue;
use crate::sink::{OutboundMessage, Sink, SinkLimits};

/// Where one queue's large messages go, and from what size.
pub(super) struct Offload {
    store: Arc<dyn PayloadStore>,
    bucket: String,
    /// Messages larger than this (as the sink counts them) are offloaded.
    pub(super) threshold: usize,
}

impl Offload {
    /// How a queue's large messages are offloaded: not at all when the pipeline offloads
    /// nothing or the queue's sink does not take pointers.
    pub(super) fn for_queue(
        payloads: Option<&LargePayloads>,
        sink: &dyn Sink,
        queue: &Queue,
        limits: SinkLimits,
    ) -> Option<Offload> {
        let payloads = payloads?;
        let bucket = payloads.offload_bucket.clone()?;
        if !sink.takes_payload_pointers(queue) {
            return None;
        }
        let limit = limits.max_entry_bytes.min(limits.max_batch_bytes);
        Some(Offload {
            store: payloads.store.clone(),
            bucket,
            threshold: payloads.threshold.unwrap_or(limit).min(limit),
        })
    }

    /// Puts the message's body in the bucket, under a key derived from the message's identity
    /// and body (a resend after a retry writes the same object), and makes the message the
    /// pointer, with the size attribute and the kwargs the queue's options name.
    pub(super) async fn put(&self, message: &mut OutboundMessage) -> Result<(), String> {
        let digest = crate::sink::content_digest(&[&message.id, &message.body]);
        let key = format!("lpipe/{digest}");
        self.store
            .put(&self.bucket, &key, &message.body)
            .await
            .map_err(|e| {
                format!(
                    "the message to {} is over {} bytes and could not be put in s3://{}/{key}: {e}",
                    message.queue, self.threshold, self.bucket
                )
            })?;
        let queue = message.queue.clone();
        for (_, name) in queue.kwarg_options() {
            if let Some(value) = message.kwarg_value(name) {
                message.kept_kwargs.push((name.to_owned(), value));
            }
        }
        let size = message.body.len();
        message.body = PayloadPointer {
            bucket: self.bucket.clone(),
            key,
        }
        .to_body();
        message.attributes.push((SIZE_ATTRIBUTE, size.to_string()));
        Ok(())
    }
}
