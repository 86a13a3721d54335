//! The SQS sink: SendMessageBatch within the API's limits.

use std::sync::Arc;

use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};
use lpipe_core::{
    async_trait,
    sink::{OutboundMessage, SendError, Sink, SinkLimits},
    Queue,
};

use crate::urls::{parse_queue_arn, QueueUrls, UrlError};

/// Messages per SendMessageBatch call.
pub const SQS_MAX_ENTRIES: usize = 10;
/// Bytes per message (1 MiB since 2025; it was 256 KiB before).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Bytes per SendMessageBatch call.
pub const SQS_MAX_BATCH_BYTES: usize = 1024 * 1024;

/// SendMessageBatch calls to one queue on their way at once ([`Sink::calls_in_flight`]), for
/// a standard queue (a FIFO queue's calls go one after another): forwarding thousands of
/// messages waits for hundreds of round trips eight at a time, not one after another. The
/// source's classic-mode deletes and backoff's visibility changes go as many at once.
pub const SQS_CALLS_IN_FLIGHT: usize = 8;

/// Sends to queues of kind `sqs`, targeted by name (its URL is looked up once with GetQueueUrl
/// and cached), URL or ARN.
///
/// Per queue options ([`Queue::option`]):
/// - `message_group_id`: the FIFO `MessageGroupId` of every message;
/// - `message_group_id_from`: a kwarg whose value is the `MessageGroupId` (e.g. `user_id`).
///
/// Without either, a FIFO message's group is derived from its body, so equal messages keep
/// their order. Every message carries its identity ([`OutboundMessage::id`]: its record and
/// position, the same when the record is retried and the message sent again) as the message
/// attribute [`lpipe_core::sink::MESSAGE_ID_ATTRIBUTE`]. The FIFO `MessageDeduplicationId` is derived from the message's identity (its
/// record and position, stable when the record is retried) and its body, so a retried record
/// does not send twice within SQS's five-minute window, and distinct messages never collide.
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, Pipeline, Queue, QueueKind};
/// use lpipe_sqs::{SqsSink, SQS_MAX_ENTRIES};
/// let pipeline = Pipeline::builder()
///     .path("A", [Action::new().include_all_params().queue(Queue::sqs("orders.fifo").message_group_id_from("customer"))])
///     .sink(QueueKind::SQS, SqsSink::new())
///     .build()
///     .unwrap();
/// # let _ = (pipeline, SQS_MAX_ENTRIES);
/// ```
#[derive(Clone, Default)]
pub struct SqsSink {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    client: Option<aws_sdk_sqs::Client>,
    urls: QueueUrls,
    state: lpipe_aws::SinkState,
}

impl SqsSink {
    /// A sink using the shared client (see [`shared_client`](crate::shared_client)).
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink using this client.
    pub fn with_client(client: aws_sdk_sqs::Client) -> Self {
        SqsSink {
            inner: Arc::new(Inner {
                client: Some(client),
                ..Inner::default()
            }),
        }
    }

    /// Overrides the limits (AWS has raised them before).
    pub fn with_limits(self, limits: SinkLimits) -> Self {
        self.inner.state.set_limits(limits);
        self
    }

    /// SendMessageBatch calls made so far.
    pub fn batch_calls(&self) -> usize {
        self.inner.state.calls()
    }

    async fn client(&self) -> aws_sdk_sqs::Client {
        match &self.inner.client {
            Some(c) => c.clone(),
            None => crate::shared_client().await,
        }
    }

    async fn queue_url(
        &self,
        client: &aws_sdk_sqs::Client,
        target: &str,
    ) -> Result<String, SendError> {
        self.inner
            .urls
            .of(client, target)
            .await
            .map_err(|e| match e {
                UrlError::Api(e) => classify(&e, &format!("GetQueueUrl for queue '{target}'")),
                UrlError::NoUrl => SendError::permanent(format!(
                    "GetQueueUrl for queue '{target}' returned no URL"
                )),
            })
    }
}

/// SQS error codes worth retrying.
const RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "RequestThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "KmsThrottled",
];

fn classify<E, R>(e: &aws_sdk_sqs::error::SdkError<E, R>, what: &str) -> SendError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match lpipe_aws::error_code(e) {
        Some(code @ ("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")) => {
            SendError::permanent(format!("{what}: the queue does not exist ({code})"))
        }
        _ => lpipe_aws::classify(e, what, RETRYABLE),
    }
}

use lpipe_aws::fifo::{deduplication_id, group_id};

#[async_trait]
impl Sink for SqsSink {
    async fn send(
        &self,
        queue: &Queue,
        batch: &[OutboundMessage],
    ) -> Result<Vec<Result<(), SendError>>, SendError> {
        let client = self.client().await;
        let url = self.queue_url(&client, queue.target()).await?;
        let fifo = url.ends_with(".fifo");
        let mut entries = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let id = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(&m.id)
                .build()
                .map_err(|e| SendError::permanent(format!("bad message id attribute: {e}")))?;
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body)
                .message_attributes(lpipe_core::sink::MESSAGE_ID_ATTRIBUTE, id);
            for (name, value) in &m.attributes {
                let value = MessageAttributeValue::builder()
                    .data_type(lpipe_core::sink::attribute_data_type(name))
                    .string_value(value)
                    .build()
                    .map_err(|e| SendError::permanent(format!("bad attribute {name}: {e}")))?;
                entry = entry.message_attributes(*name, value);
            }
            if fifo {
                entry = entry
                    .message_group_id(group_id(queue, m))
                    .message_deduplication_id(deduplication_id(m));
            }
            if let Some(header) = &m.trace_header {
                entry = entry.message_system_attributes(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    MessageSystemAttributeValue::builder()
                        .data_type("String")
                        .string_value(header.as_ref())
                        .build()
                        .map_err(|e| SendError::permanent(format!("bad trace header: {e}")))?,
                );
            }
            entries.push(
                entry
                    .build()
                    .map_err(|e| SendError::permanent(format!("bad SQS entry: {e}")))?,
            );
        }
        self.inner.state.count_call();
        let out = client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&e, &format!("SendMessageBatch to {url}")))?;
        let mut results: Vec<Result<(), SendError>> = (0..batch.len())
            .map(|_| {
                Err(SendError::retryable(
                    "SendMessageBatch returned no result for this entry",
                ))
            })
            .collect();
        for s in out.successful {
            if let Some(r) = s.id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *r = Ok(());
            }
        }
        for f in out.failed {
            if let Some(r) = f.id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *r = Err(SendError {
                    retryable: !f.sender_fault,
                    message: format!("{}: {}", f.code, f.message.unwrap_or_default()),
                });
            }
        }
        Ok(results)
    }

    fn calls_in_flight(&self, _queue: &Queue) -> usize {
        SQS_CALLS_IN_FLIGHT
    }

    fn entry_size(&self, message: &OutboundMessage) -> usize {
        // SQS counts message attributes (name, type and value) against the size limit.
        lpipe_aws::fifo::entry_size(message)
    }

    fn limits(&self, _queue: &Queue) -> SinkLimits {
        self.inner.state.limits_or(SinkLimits {
            max_entries: SQS_MAX_ENTRIES,
            max_entry_bytes: SQS_MAX_MESSAGE_BYTES,
            max_batch_bytes: SQS_MAX_BATCH_BYTES,
        })
    }

    fn options(&self) -> Option<&'static [&'static str]> {
        Some(lpipe_aws::fifo::OPTIONS)
    }

    fn takes_payload_pointers(&self, _queue: &Queue) -> bool {
        true
    }

    fn routing(&self, message: &OutboundMessage) -> Vec<(&'static str, String)> {
        lpipe_aws::fifo::routing(message)
    }

    fn order_key(&self, message: &OutboundMessage) -> Option<String> {
        // FIFO queue names end with .fifo, whether given as name, URL or ARN.
        let queue = &message.queue;
        queue
            .target()
            .ends_with(".fifo")
            .then(|| group_id(queue, message))
    }

    fn validate(&self, queue: &Queue) -> Result<(), String> {
        let t = queue.target();
        if t.starts_with("arn:") && parse_queue_arn(t).is_none() {
            return Err(format!(
                "'{t}' is not an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)"
            ));
        }
        lpipe_aws::fifo::validate(queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpipe_core::testing::{assert_contains, assert_not_contains};

    fn msg(queue: &Queue, body: &str) -> OutboundMessage {
        OutboundMessage {
            queue: queue.clone(),
            body: body.to_owned(),
            id: "1:0".to_owned(),
            trace_header: None,
            attributes: Vec::new(),
            kept_kwargs: Vec::new(),
        }
    }

    #[test]
    fn fifo_ids_are_stable_and_distinct() {
        let digest = lpipe_core::sink::content_digest;
        let m = msg(&Queue::sqs("q.fifo"), "{}");
        assert_eq!(deduplication_id(&m), deduplication_id(&m.clone()));
        let mut other = m.clone();
        other.id = "1:1".into();
        assert_ne!(deduplication_id(&m), deduplication_id(&other));
        let q = Queue::sqs("q.fifo").message_group_id_from("user");
        assert_eq!(group_id(&q, &msg(&q, r#"{"user": "ann", "n": 1}"#)), "ann");
        assert_eq!(group_id(&q, &msg(&q, r#"{"user": 7}"#)), "7");
        let q = Queue::sqs("q.fifo").path("P").message_group_id_from("user");
        assert_eq!(
            group_id(&q, &msg(&q, r#"{"path": "P", "kwargs": {"user": "bob"}}"#)),
            "bob"
        );
        let q = Queue::sqs("q.fifo").message_group_id("all");
        assert_eq!(group_id(&q, &msg(&q, "{}")), "all");
        let q = Queue::sqs("q.fifo");
        assert_eq!(group_id(&q, &msg(&q, "{}")), digest(&["{}"]));
    }

    fn client(credentials: bool) -> aws_sdk_sqs::Client {
        let mut config = aws_sdk_sqs::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            // Nothing listens on the discard port: connections are refused at once.
            .endpoint_url("http://127.0.0.1:9");
        if credentials {
            config = config.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ));
        }
        aws_sdk_sqs::Client::from_conf(config.build())
    }

    #[tokio::test]
    async fn missing_credentials_are_not_retried_but_refused_connections_are() {
        let q = Queue::sqs("http://127.0.0.1:9/000000000000/q");
        let batch = [msg(&q, "{}")];
        let e = SqsSink::with_client(client(false))
            .send(&q, &batch)
            .await
            .unwrap_err();
        assert!(!e.retryable, "{}", e.message);
        assert_contains(&e.message, "SendMessageBatch to");
        assert_contains(e.message.to_lowercase(), "credentials");
        // Short: the error's kind and cause, not the SDK's whole debug dump.
        assert_contains(
            &e.message,
            "dispatch failure: other: no AWS credentials were found",
        );
        assert!(e.message.len() < 300, "{}", e.message);

        let e = SqsSink::with_client(client(true))
            .send(&q, &batch)
            .await
            .unwrap_err();
        assert!(e.retryable, "{}", e.message);
        assert_contains(&e.message, "dispatch failure: io error");
        assert_contains(&e.message, "Connection refused");
        assert_not_contains(&e.message, "DispatchFailure {");
    }

    #[test]
    fn fifo_queues_keep_order_per_message_group() {
        let sink = SqsSink::new();
        let q = Queue::sqs("https://sqs.us-east-1.amazonaws.com/1/q.fifo")
            .message_group_id_from("user");
        assert_eq!(
            sink.order_key(&msg(&q, r#"{"user": "ann"}"#)),
            Some("ann".to_owned())
        );
        let q = Queue::sqs("q").message_group_id_from("user");
        assert_eq!(sink.order_key(&msg(&q, r#"{"user": "ann"}"#)), None);
    }

    #[test]
    fn validation_names_a_bad_arn() {
        let e = SqsSink::new()
            .validate(&Queue::sqs("arn:aws:sns:x"))
            .unwrap_err();
        assert!(e.contains("not an SQS queue ARN"), "{e}");
        assert!(SqsSink::new()
            .validate(&Queue::sqs("arn:aws:sqs:us-east-1:123456789012:q"))
            .is_ok());
    }
}
