//! What the source does through the SQS API (feature `client`): the classic mode's deletes and
//! backoff's visibility timeouts.

use std::borrow::Cow;
use std::collections::BTreeMap;

use futures::StreamExt;
use lpipe_core::sink::Backoff;
use lpipe_core::{source::BatchResult, Outcome};
use serde::Deserialize;

use crate::urls::{parse_queue_arn, UrlError};
use crate::SqsSource;

/// How many of the classic mode's `DeleteMessageBatch` calls, or of backoff's
/// `ChangeMessageVisibilityBatch` calls, go to SQS at once: as many as the sink's
/// ([`crate::SQS_CALLS_IN_FLIGHT`]). A batch of 10,000 records takes 1,000 calls of 10.
const ACK_CALLS_IN_FLIGHT: usize = crate::SQS_CALLS_IN_FLIGHT;

/// The visibility timeout, in whole seconds (at least 1), that delays the retry of a kept
/// record received this many times (opt-in, [`SqsSource::with_backoff`]; feature `client`):
/// the backoff's delay for retry `receive_count - 1`, at most SQS's 12 hours.
fn backoff_timeout(backoff: &Backoff, receive_count: u32) -> i32 {
    let delay = backoff
        .delay(receive_count.saturating_sub(1))
        .min(std::time::Duration::from_secs(43_200));
    (delay.as_secs_f64().round() as i32).max(1)
}

/// What the classic mode needs to delete a message.
#[derive(Deserialize)]
struct Receipt<'a> {
    #[serde(
        rename = "messageId",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    message_id: Option<Cow<'a, str>>,
    #[serde(
        rename = "receiptHandle",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    receipt_handle: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventSourceARN",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    event_source_arn: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    attributes: Option<ReceiptAttributes<'a>>,
}

#[derive(Deserialize)]
struct ReceiptAttributes<'a> {
    #[serde(
        rename = "ApproximateReceiveCount",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    receive_count: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ReceiptEvent<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<Receipt<'a>>,
}

impl SqsSource {
    /// The URL of the queue of an `eventSourceARN` (looked up once, then remembered), or
    /// `None` (logged).
    async fn queue_url(&self, client: &aws_sdk_sqs::Client, arn: &str) -> Option<String> {
        if parse_queue_arn(arn).is_none() {
            tracing::warn!(arn, "cannot derive a queue URL from this eventSourceARN");
            return None;
        }
        match self.urls.of(client, arn).await {
            Ok(url) => Some(url),
            Err(UrlError::Api(e)) => {
                tracing::warn!(arn, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "GetQueueUrl failed");
                None
            }
            Err(UrlError::NoUrl) => {
                tracing::warn!(arn, "GetQueueUrl returned no URL");
                None
            }
        }
    }

    pub(crate) async fn client(&self) -> aws_sdk_sqs::Client {
        match &self.client {
            Some(c) => c.clone(),
            None => crate::shared_client().await,
        }
    }

    /// Sets the visibility timeout of the failed messages from their receive counts (see
    /// [`Backoff`]). What cannot be set is logged: those records come back after the queue's
    /// visibility timeout, as without backoff.
    pub(crate) async fn back_off_failed(
        &self,
        event: &str,
        batch: &BatchResult<'_>,
        backoff: Backoff,
    ) {
        let Ok(receipts) = serde_json::from_str::<ReceiptEvent<'_>>(event) else {
            tracing::warn!("backoff not applied: the event could not be re-read");
            return;
        };
        let mut by_queue: BTreeMap<&str, Vec<(&str, i32)>> = BTreeMap::new();
        for (receipt, result) in receipts.records.iter().zip(&batch.records) {
            if result.outcome != Outcome::Failed {
                continue;
            }
            let count = receipt
                .attributes
                .as_ref()
                .and_then(|a| a.receive_count.as_deref())
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            if let (Some(arn), Some(handle)) = (&receipt.event_source_arn, &receipt.receipt_handle)
            {
                by_queue
                    .entry(arn)
                    .or_default()
                    .push((handle, backoff_timeout(&backoff, count)));
            }
        }
        let client = self.client().await;
        let mut calls = Vec::new();
        for (arn, messages) in &by_queue {
            if let Some(url) = self.queue_url(&client, arn).await {
                // Built here, not in a stream's closure: a closure making futures inside this
                // future would need to be general over lifetimes, which `Send` cannot prove.
                calls.extend(
                    messages
                        .chunks(10)
                        .map(|chunk| change_visibility(&client, url.clone(), chunk)),
                );
            }
        }
        let mut sent = futures::stream::iter(calls).buffer_unordered(ACK_CALLS_IN_FLIGHT);
        while let Some(result) = sent.next().await {
            match result {
                Ok(out) => {
                    for f in &out.failed {
                        tracing::warn!(id = f.id, code = f.code, "backoff not applied to a failed message: it comes back after the queue's visibility timeout");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ChangeMessageVisibilityBatch failed: failed messages come back after the queue's visibility timeout")
                }
            }
        }
    }

    /// Deletes the acknowledged messages of the batch; returns a summary for the error message.
    pub(crate) async fn delete_acknowledged(&self, event: &str, batch: &BatchResult<'_>) -> String {
        let receipts: ReceiptEvent<'_> = match serde_json::from_str(event) {
            Ok(r) => r,
            Err(e) => {
                return format!(
                    "acknowledged messages not deleted: the event could not be re-read: {e}"
                )
            }
        };
        let mut by_queue: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        let mut skipped = 0usize;
        for (receipt, result) in receipts.records.iter().zip(&batch.records) {
            if result.outcome == Outcome::Failed {
                continue;
            }
            match (
                &receipt.event_source_arn,
                &receipt.receipt_handle,
                &receipt.message_id,
            ) {
                (Some(arn), Some(handle), Some(id)) => {
                    by_queue.entry(arn).or_default().push((id, handle))
                }
                _ => skipped += 1,
            }
        }
        let client = self.client().await;
        let (mut deleted, mut not_deleted) = (0usize, skipped);
        let mut calls = Vec::new();
        for (arn, messages) in &by_queue {
            let Some(url) = self.queue_url(&client, arn).await else {
                tracing::warn!(
                    arn,
                    "acknowledged messages of this queue are not deleted and will be redelivered"
                );
                not_deleted += messages.len();
                continue;
            };
            calls.extend(
                messages
                    .chunks(10)
                    .map(|chunk| delete(&client, url.clone(), chunk)),
            );
        }
        let mut sent = futures::stream::iter(calls).buffer_unordered(ACK_CALLS_IN_FLIGHT);
        while let Some((messages, result)) = sent.next().await {
            match result {
                Ok(out) => {
                    deleted += out.successful.len();
                    for f in &out.failed {
                        tracing::warn!(id = f.id, code = f.code, message = ?f.message, "an acknowledged message was not deleted and will be redelivered");
                    }
                    not_deleted += out.failed.len();
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed; acknowledged messages will be redelivered");
                    not_deleted += messages;
                }
            }
        }
        format!("{deleted} acknowledged messages deleted, {not_deleted} not deleted")
    }
}

/// One `ChangeMessageVisibilityBatch` call: up to 10 (receipt handle, timeout) pairs.
async fn change_visibility(
    client: &aws_sdk_sqs::Client,
    url: String,
    chunk: &[(&str, i32)],
) -> Result<
    aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput,
    aws_sdk_sqs::error::SdkError<
        aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchError,
    >,
> {
    client
        .change_message_visibility_batch()
        .queue_url(url)
        .set_entries(Some(visibility_entries(chunk.iter().copied())))
        .send()
        .await
}

/// One `DeleteMessageBatch` call: up to 10 (message id, receipt handle) pairs; returns how
/// many messages it carried beside its result.
async fn delete(
    client: &aws_sdk_sqs::Client,
    url: String,
    chunk: &[(&str, &str)],
) -> (
    usize,
    Result<
        aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput,
        aws_sdk_sqs::error::SdkError<
            aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchError,
        >,
    >,
) {
    let entries = delete_entries(chunk.iter().map(|(_, handle)| *handle).enumerate());
    let result = client
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await;
    (chunk.len(), result)
}

/// The entries of one `ChangeMessageVisibilityBatch` call: each receipt handle with its
/// timeout, their ids their positions in the call. (The builder fails only without an id or
/// a handle, and both are set.)
pub(crate) fn visibility_entries<'a>(
    handles: impl Iterator<Item = (&'a str, i32)>,
) -> Vec<aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry> {
    handles
        .enumerate()
        .filter_map(|(i, (handle, timeout))| {
            aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .visibility_timeout(timeout)
                .build()
                .ok()
        })
        .collect()
}

/// The entries of one `DeleteMessageBatch` call: each receipt handle with its id (a number
/// the caller finds its failures by). (The builder fails only without an id or a handle, and
/// both are set.)
pub(crate) fn delete_entries<'a>(
    handles: impl Iterator<Item = (usize, &'a str)>,
) -> Vec<aws_sdk_sqs::types::DeleteMessageBatchRequestEntry> {
    handles
        .filter_map(|(i, handle)| {
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .ok()
        })
        .collect()
}
