//! The SQS event source.

use std::borrow::Cow;
use std::collections::BTreeMap;

use lpipe_core::{
    async_trait, BatchResult, Body, EventProbe, EventSource, InvalidEvent, InvocationError,
    Ordering, Outcome, Record, RecordError, RecordMeta, SqsMeta,
};
use serde::Deserialize;

/// How failures are reported to the event source mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqsMode {
    /// A partial batch response listing the failed records; the mapping must have
    /// `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
    #[default]
    PartialBatch,
    /// Python lpipe's mode, for mappings without `ReportBatchItemFailures`: delete every
    /// acknowledged message (successes and dropped ones) with DeleteMessageBatch, then fail the
    /// invocation so that only the failed messages return after their visibility timeout.
    Classic,
}

/// The SQS event source. See the [crate docs](crate).
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, NoParams, Pipeline};
/// use lpipe_sqs::SqsSource;
/// async fn f(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
/// // A mapping without ReportBatchItemFailures: the classic mode, chosen explicitly.
/// let pipeline = Pipeline::builder()
///     .path("A", [Action::new().function(f)])
///     .event_source(SqsSource::classic())
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
#[derive(Clone, Debug, Default)]
pub struct SqsSource {
    mode: SqsMode,
    client: Option<aws_sdk_sqs::Client>,
    backoff: Option<Backoff>,
}

/// Backoff for kept records (opt-in, [`SqsSource::with_backoff`]): a record that fails comes
/// back later and later instead of every visibility timeout. Its visibility timeout is set
/// (`ChangeMessageVisibilityBatch`) to `base × 2^(receive count − 1)`, at most `cap`, less a
/// random part of up to half (jitter), in whole seconds (at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's delay.
    pub base: std::time::Duration,
    /// The longest delay (SQS allows 12 hours).
    pub cap: std::time::Duration,
}

impl Backoff {
    /// A backoff from `base`, doubling up to `cap`.
    pub fn new(base: std::time::Duration, cap: std::time::Duration) -> Self {
        Backoff { base, cap }
    }

    /// The longest delay before the retry of a record received this many times (the
    /// jittered delay lies between half of it and it).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = lpipe_sqs::Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
    /// assert_eq!(b.ceiling(1), Duration::from_secs(2));
    /// assert_eq!(b.ceiling(3), Duration::from_secs(8));
    /// assert_eq!(b.ceiling(30), Duration::from_secs(60));
    /// ```
    pub fn ceiling(&self, receive_count: u32) -> std::time::Duration {
        let doublings = receive_count.saturating_sub(1).min(30);
        self.base
            .saturating_mul(1u32 << doublings)
            .min(self.cap)
            .min(std::time::Duration::from_secs(43_200))
    }

    /// The visibility timeout, in seconds, for a record received this many times.
    fn timeout(&self, receive_count: u32) -> i32 {
        let ceiling = self.ceiling(receive_count).as_secs_f64();
        let jittered = ceiling * (0.5 + rand::random::<f64>() / 2.0);
        (jittered.round() as i32).max(1)
    }
}

impl SqsSource {
    /// The name it registers under.
    pub const NAME: &'static str = "sqs";

    /// The default: partial batch responses.
    pub fn new() -> Self {
        Self::default()
    }

    /// The classic mode (see [`SqsMode::Classic`]).
    pub fn classic() -> Self {
        SqsSource {
            mode: SqsMode::Classic,
            client: None,
            backoff: None,
        }
    }

    /// Uses this client for DeleteMessageBatch in the classic mode, instead of the shared one.
    pub fn with_client(mut self, client: aws_sdk_sqs::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// With backoff for kept records (partial batch responses only): see [`Backoff`].
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The mode.
    pub fn mode(&self) -> SqsMode {
        self.mode
    }
}

#[derive(Deserialize)]
struct SqsRecord<'a> {
    #[serde(
        rename = "messageId",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    message_id: Option<Cow<'a, str>>,
    /// The JSON string literal: unescaped when the record runs (see [`Body`]).
    #[serde(borrow, default)]
    body: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    attributes: Option<Attributes<'a>>,
    /// Read leniently, apart from the rest: a malformed attribute must not cost the batch.
    #[serde(rename = "messageAttributes", borrow, default)]
    message_attributes: Option<&'a serde_json::value::RawValue>,
    #[serde(
        rename = "eventSourceARN",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    event_source_arn: Option<Cow<'a, str>>,
    #[serde(
        rename = "eventSource",
        alias = "EventSource",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    event_source: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageAttribute<'a> {
    #[serde(
        rename = "stringValue",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    string_value: Option<Cow<'a, str>>,
}

/// The string values of a record's message attributes (none when they cannot be read).
fn string_attributes(raw: Option<&serde_json::value::RawValue>) -> Vec<(String, String)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    if raw.get() == "{}" {
        return Vec::new();
    }
    serde_json::from_str::<std::collections::BTreeMap<Cow<'_, str>, MessageAttribute<'_>>>(
        raw.get(),
    )
    .map(|attributes| {
        attributes
            .into_iter()
            .filter_map(|(name, a)| Some((name.into_owned(), a.string_value?.into_owned())))
            .collect()
    })
    .unwrap_or_default()
}

/// What every record of an SQS event names as its `eventSource`.
const EVENT_SOURCE: &str = "aws:sqs";

#[derive(Deserialize)]
struct Attributes<'a> {
    #[serde(
        rename = "MessageGroupId",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    message_group_id: Option<Cow<'a, str>>,
    #[serde(
        rename = "ApproximateReceiveCount",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    receive_count: Option<Cow<'a, str>>,
    #[serde(
        rename = "SentTimestamp",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    sent_timestamp: Option<Cow<'a, str>>,
    #[serde(
        rename = "AWSTraceHeader",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    trace_header: Option<Cow<'a, str>>,
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

/// The URL of the queue of an `eventSourceARN`, or `None` (logged).
async fn queue_url(client: &aws_sdk_sqs::Client, arn: &str) -> Option<String> {
    let Some((account, name)) = parse_queue_arn(arn) else {
        tracing::warn!(arn, "cannot derive a queue URL from this eventSourceARN");
        return None;
    };
    match client
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
    {
        Ok(out) => out.queue_url,
        Err(e) => {
            tracing::warn!(arn, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "GetQueueUrl failed");
            None
        }
    }
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` → (account, name).
pub(crate) fn parse_queue_arn(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("sqs"), Some(_region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!account.is_empty() && !name.is_empty()).then_some((account, name))
}

#[async_trait]
impl EventSource for SqsSource {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn matches(&self, probe: &EventProbe) -> bool {
        // An empty batch names no source; pinned to this one, it is taken (nothing to run).
        probe.first_event_source.as_deref() == Some(EVENT_SOURCE) || probe.empty_records
    }

    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        lpipe_core::decode_records(Self::NAME, event, |index, r: SqsRecord<'e>| {
            InvalidEvent::check_record_source(
                Self::NAME,
                EVENT_SOURCE,
                index,
                r.event_source.as_deref(),
            )?;
            let fifo_queue = r
                .event_source_arn
                .as_deref()
                .is_some_and(|a| a.ends_with(".fifo"));
            let (group, receive_count, sent, trace_header) = match r.attributes {
                Some(a) => (
                    a.message_group_id,
                    a.receive_count.and_then(|c| c.parse().ok()),
                    a.sent_timestamp.and_then(|t| t.parse().ok()),
                    a.trace_header.filter(|t| !t.is_empty()),
                ),
                None => (None, None, None, None),
            };
            let meta = SqsMeta::new(receive_count, sent, string_attributes(r.message_attributes))
                .with_trace_header(trace_header.map(Cow::into_owned));
            let ordering_key = match (group, fifo_queue) {
                (Some(g), _) => Some(g),
                // A FIFO queue's record without a group: keep the whole queue in order.
                (None, true) => r.event_source_arn.clone(),
                (None, false) => None,
            };
            let body = match r.body {
                Some(literal) => Body::json_string(literal.get()),
                None => Body::Invalid(RecordError::invalid_payload("the SQS record has no body")),
            };
            Ok(Record::new(r.message_id.filter(|id| !id.is_empty()), body)
                .ordering_key(ordering_key)
                .meta(RecordMeta::Sqs(meta)))
        })
    }

    fn ordering(&self) -> Ordering {
        Ordering::PerKey
    }

    async fn respond(
        &self,
        event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError> {
        let response = batch.partial_batch_response("messageId")?;
        if self.mode == SqsMode::Classic && batch.stats.failed > 0 {
            let deleted = self.delete_acknowledged(event, batch).await;
            return Err(batch.catastrophic_error(Some(&deleted)));
        }
        if let (Some(backoff), true) = (self.backoff, batch.stats.failed > 0) {
            self.back_off_failed(event, batch, backoff).await;
        }
        Ok(response)
    }
}

impl SqsSource {
    async fn client(&self) -> aws_sdk_sqs::Client {
        match &self.client {
            Some(c) => c.clone(),
            None => crate::shared_client().await,
        }
    }

    /// Sets the visibility timeout of the failed messages from their receive counts (see
    /// [`Backoff`]). What cannot be set is logged: those records come back after the queue's
    /// visibility timeout, as without backoff.
    async fn back_off_failed(&self, event: &str, batch: &BatchResult<'_>, backoff: Backoff) {
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
                    .push((handle, backoff.timeout(count)));
            }
        }
        let client = self.client().await;
        for (arn, messages) in by_queue {
            let Some(url) = queue_url(&client, arn).await else {
                continue;
            };
            for chunk in messages.chunks(10) {
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (handle, timeout))| {
                        aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(*handle)
                            .visibility_timeout(*timeout)
                            .build()
                            .ok()
                    })
                    .collect();
                match client
                    .change_message_visibility_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
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
    }

    /// Deletes the acknowledged messages of the batch; returns a summary for the error message.
    async fn delete_acknowledged(&self, event: &str, batch: &BatchResult<'_>) -> String {
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
        for (arn, messages) in by_queue {
            let Some(url) = queue_url(&client, arn).await else {
                tracing::warn!(
                    arn,
                    "acknowledged messages of this queue are not deleted and will be redelivered"
                );
                not_deleted += messages.len();
                continue;
            };
            for chunk in messages.chunks(10) {
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, handle))| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(*handle)
                            .build()
                            .ok()
                    })
                    .collect();
                match client
                    .delete_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => {
                        deleted += out.successful.len();
                        for f in &out.failed {
                            tracing::warn!(id = f.id, code = f.code, message = ?f.message, "an acknowledged message was not deleted and will be redelivered");
                        }
                        not_deleted += out.failed.len();
                    }
                    Err(e) => {
                        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed; acknowledged messages will be redelivered");
                        not_deleted += chunk.len();
                    }
                }
            }
        }
        format!("{deleted} acknowledged messages deleted, {not_deleted} not deleted")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_give_account_and_name() {
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:us-east-2:123456789012:my-queue"),
            Some(("123456789012", "my-queue"))
        );
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:us-east-2:123456789012:q.fifo"),
            Some(("123456789012", "q.fifo"))
        );
        assert_eq!(
            parse_queue_arn("arn:aws:sns:us-east-2:123456789012:topic"),
            None
        );
        assert_eq!(parse_queue_arn("my-queue"), None);
    }
}
