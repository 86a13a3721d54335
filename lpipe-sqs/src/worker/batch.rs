//! One batch: the Lambda event it becomes, its run with its heartbeat, and the deletes of
//! what it acknowledged.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::Message;
use lpipe_core::idempotency::HeldKeys;
use serde::Deserialize;

use super::retry::{backoff, with_retries};
use super::{QueueInfo, Shared};

/// Handles one received batch as Lambda would, keeps its messages invisible while it runs,
/// and deletes the acknowledged ones.
pub(super) async fn handle_batch(
    shared: &Arc<Shared>,
    messages: Vec<Message>,
    received_at: Instant,
) {
    let counters = &shared.counters;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .received
        .fetch_add(messages.len() as u64, Ordering::Relaxed);
    counters
        .in_flight
        .fetch_add(messages.len() as u64, Ordering::SeqCst);
    let event = lambda_event(&messages, &shared.queue);
    let visibility = Duration::from_secs(shared.queue.visibility_timeout.max(1) as u64);
    let handles: Vec<(String, String)> = messages
        .iter()
        .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
        .collect();
    let held = HeldKeys::new();
    // Stopped when the batch is done, and when it is abandoned at the grace period (the
    // batch's future is dropped): its messages must then reappear.
    let heartbeat = AbortOnDrop(tokio::spawn(keep_invisible(
        shared.clone(),
        handles.clone(),
        held.clone(),
    )));
    let context = lambda_context(&shared.config, received_at, visibility);
    let response = shared.pipeline.handle_holding(&event, context, &held).await;
    drop(heartbeat);
    let acknowledged: Vec<&(String, String)> = match &response {
        Ok(response) => match SqsBatchResponse::deserialize(response) {
            Ok(answer) => {
                let failed: Vec<&str> = answer
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_str())
                    .collect();
                handles
                    .iter()
                    .filter(|(id, _)| !failed.contains(&id.as_str()))
                    .collect()
            }
            Err(e) => {
                tracing::error!(
                        "the pipeline's response is not a partial batch response ({e}); no message of the batch is deleted, they reappear"
                    );
                Vec::new()
            }
        },
        Err(e) => {
            tracing::error!(
                error_type = %e.error_type,
                "the batch failed as a whole; its messages reappear: {}",
                e.error_message
            );
            Vec::new()
        }
    };
    counters.left.fetch_add(
        (handles.len() - acknowledged.len()) as u64,
        Ordering::Relaxed,
    );
    delete(shared, &acknowledged).await;
    counters
        .in_flight
        .fetch_sub(messages.len() as u64, Ordering::SeqCst);
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The least time a batch has, whatever the visibility timeout: its heartbeats keep its
/// messages invisible meanwhile.
const MIN_BATCH_TIME: Duration = Duration::from_secs(30);

/// The Lambda context of a batch: the function's configuration as Lambda would give it (read
/// once from the environment, see [`lpipe_core::runtime::lambda_config_from_env`]: idempotency keys are
/// namespaced by its function name, as under Lambda), and a deadline of the visibility timeout
/// (at least [`MIN_BATCH_TIME`]) from its receipt.
fn lambda_context(
    config: &Arc<lpipe_core::lambda_runtime::Config>,
    received_at: Instant,
    visibility: Duration,
) -> lpipe_core::lambda_runtime::Context {
    let now_ms = now_ms();
    let left = visibility
        .max(MIN_BATCH_TIME)
        .saturating_sub(received_at.elapsed());
    let mut context = lpipe_core::lambda_runtime::Context::default();
    context.env_config = config.clone();
    context.request_id = format!("worker-{now_ms}-{}", std::process::id());
    context.deadline = now_ms + left.as_millis() as u64;
    context
}

/// Now, in Unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Extends the messages' visibility every third of the timeout, and the locks of the
/// idempotency keys the batch's records hold as far, until aborted.
async fn keep_invisible(shared: Arc<Shared>, handles: Vec<(String, String)>, held: HeldKeys) {
    let (client, url) = (&shared.client, &shared.queue.url);
    let visibility_timeout = shared.queue.visibility_timeout;
    let visibility_ms = visibility_timeout.max(1) as u64 * 1000;
    let every = Duration::from_millis(visibility_ms / 3);
    loop {
        tokio::time::sleep(every).await;
        for chunk in handles.chunks(10) {
            let entries = crate::acks::visibility_entries(
                chunk
                    .iter()
                    .map(|(_, handle)| (handle.as_str(), visibility_timeout)),
            );
            let out = with_retries("ChangeMessageVisibilityBatch", || {
                client
                    .change_message_visibility_batch()
                    .queue_url(url)
                    .set_entries(Some(entries.clone()))
                    .send()
            })
            .await;
            match out {
                Ok(out) if !out.failed.is_empty() => tracing::warn!(
                    failed = out.failed.len(),
                    "the visibility of some messages of a running batch could not be extended: they may be delivered again while they run"
                ),
                Ok(_) => tracing::debug!(messages = chunk.len(), "visibility extended"),
                Err(e) => tracing::warn!(
                    "{e}; the batch's messages may be delivered again while they run"
                ),
            }
        }
        if held.is_empty() {
            continue;
        }
        match held.extend_locks(now_ms() + visibility_ms).await {
            Ok(()) => tracing::debug!(keys = held.len(), "idempotency locks extended"),
            Err(e) => tracing::warn!(
                "{e}; a duplicate of a record still running may run beside it once they time out"
            ),
        }
    }
}

/// Deletes acknowledged messages, 10 a call, retrying failed calls and failed entries.
async fn delete(shared: &Shared, acknowledged: &[&(String, String)]) {
    let counters = &shared.counters;
    for chunk in acknowledged.chunks(10) {
        let mut pending: Vec<(usize, &str)> = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, handle))| (i, handle.as_str()))
            .collect();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let entries = crate::acks::delete_entries(pending.iter().copied());
            let out = shared
                .client
                .delete_message_batch()
                .queue_url(&shared.queue.url)
                .set_entries(Some(entries))
                .send()
                .await;
            let failed: Vec<(usize, String)> = match out {
                Ok(out) => {
                    let failed: HashMap<String, String> =
                        out.failed.into_iter().map(|f| (f.id, f.code)).collect();
                    let done = pending.len() - failed.len();
                    counters.deleted.fetch_add(done as u64, Ordering::Relaxed);
                    pending.retain(|(i, _)| failed.contains_key(&i.to_string()));
                    failed
                        .into_iter()
                        .filter_map(|(id, code)| Some((id.parse().ok()?, code)))
                        .collect()
                }
                Err(e) => {
                    let why = DisplayErrorContext(&e).to_string();
                    pending.iter().map(|(i, _)| (*i, why.clone())).collect()
                }
            };
            if pending.is_empty() {
                break;
            }
            attempt += 1;
            counters.retried_calls.fetch_add(1, Ordering::Relaxed);
            if attempt > 5 {
                counters
                    .undeleted
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                for (i, why) in &failed {
                    tracing::error!(
                        message_id = %chunk[*i].0,
                        "an acknowledged message could not be deleted ({why}): it will be delivered again"
                    );
                }
                break;
            }
            tracing::warn!(
                attempt,
                failed = pending.len(),
                "DeleteMessageBatch failed for some messages, retrying"
            );
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// The SQS event Lambda's event source mapping would send for these messages.
fn lambda_event(messages: &[Message], queue: &QueueInfo) -> String {
    let mut event = SqsEvent::default();
    event.records = messages.iter().map(|m| lambda_message(m, queue)).collect();
    serde_json::to_string(&event).expect("an SQS event serializes")
}

/// One message as Lambda's event source mapping delivers it.
fn lambda_message(m: &Message, queue: &QueueInfo) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id.clone_from(&m.message_id);
    message.receipt_handle.clone_from(&m.receipt_handle);
    message.body = Some(m.body.clone().unwrap_or_default());
    message.md5_of_body.clone_from(&m.md5_of_body);
    message.attributes = m
        .attributes
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    message.message_attributes = m
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, v)| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.data_type = Some(v.data_type.clone());
            attribute.string_value.clone_from(&v.string_value);
            attribute.binary_value = v.binary_value.as_ref().map(|b| {
                let mut data = Base64Data::default();
                data.0 = b.as_ref().to_vec();
                data
            });
            (name.clone(), attribute)
        })
        .collect();
    message.event_source = Some("aws:sqs".to_owned());
    message.event_source_arn = Some(queue.arn.clone());
    message.aws_region = Some(queue.region.clone());
    message
}
