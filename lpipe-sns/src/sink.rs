//! The SNS sink: PublishBatch within the API's limits.

use std::sync::Arc;

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use lpipe_core::{
    async_trait,
    sink::{OutboundMessage, SendError, Sink, SinkLimits},
    Queue,
};

/// Messages per PublishBatch call.
pub const SNS_MAX_ENTRIES: usize = 10;
/// Bytes per message, its attributes included.
pub const SNS_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Bytes per PublishBatch call (all its messages together).
pub const SNS_MAX_BATCH_BYTES: usize = 256 * 1024;
/// PublishBatch calls to one standard topic on their way at once (a FIFO topic's calls go one
/// after another).
pub const SNS_CALLS_IN_FLIGHT: usize = 8;

/// Publishes to topics of kind `sns` ([`Queue::sns`]), targeted by ARN or by name (a name is
/// looked up once with ListTopics and remembered; an ARN needs no lookup and no
/// `sns:ListTopics` permission).
///
/// Per topic options, as for SQS FIFO queues: `message_group_id` or `message_group_id_from` (a
/// kwarg whose value is the group). A FIFO topic's (`.fifo`) message without either is grouped
/// by a digest of its body; its `MessageDeduplicationId` is derived from the message's identity
/// and body, so a retried record does not publish twice within SNS's five-minute window.
///
/// Every message carries its identity ([`OutboundMessage::id`]) as the message attribute
/// [`lpipe_core::sink::MESSAGE_ID_ATTRIBUTE`]; subscriptions see it as a message attribute
/// (raw message delivery) or in the notification's `MessageAttributes`. SNS takes an X-Ray
/// trace header per call, not per message: a call carries its first message's header.
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, Pipeline, Queue, QueueKind};
/// use lpipe_sns::SnsSink;
/// let pipeline = Pipeline::builder()
///     .path("A", [Action::new().include_all_params().queue(Queue::sns("arn:aws:sns:us-east-1:123456789012:orders").path("PLACED"))])
///     .sink(QueueKind::SNS, SnsSink::new())
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
#[derive(Clone, Default)]
pub struct SnsSink {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    client: Option<aws_sdk_sns::Client>,
    arns: lpipe_aws::Lookups,
    state: lpipe_aws::SinkState,
}

impl SnsSink {
    /// A sink using the shared client (see [`shared_client`](crate::shared_client)).
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink using this client.
    pub fn with_client(client: aws_sdk_sns::Client) -> Self {
        SnsSink {
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

    /// PublishBatch calls made so far.
    pub fn batch_calls(&self) -> usize {
        self.inner.state.calls()
    }

    async fn client(&self) -> aws_sdk_sns::Client {
        match &self.inner.client {
            Some(c) => c.clone(),
            None => crate::shared_client().await,
        }
    }

    /// The ARN of the topic a target names: an ARN is itself; a name is looked up once.
    async fn topic_arn(
        &self,
        client: &aws_sdk_sns::Client,
        target: &str,
    ) -> Result<String, SendError> {
        if target.starts_with("arn:") {
            return Ok(target.to_owned());
        }
        self.inner
            .arns
            .get(target, || find_topic(client, target))
            .await
    }
}

/// The ARN of the topic of this name, from ListTopics (the caller's account and region).
async fn find_topic(client: &aws_sdk_sns::Client, name: &str) -> Result<String, SendError> {
    let suffix = format!(":{name}");
    let mut pages = client.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            lpipe_aws::classify(&e, &format!("ListTopics to find topic '{name}'"), RETRYABLE)
        })?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(arn.to_owned());
        }
    }
    Err(SendError::permanent(format!(
        "no SNS topic named '{name}' in this account and region (ListTopics); give its ARN"
    )))
}

/// SNS error codes worth retrying.
const RETRYABLE: &[&str] = &[
    "Throttled",
    "ThrottlingException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottling",
];

fn classify<E, R>(e: &aws_sdk_sns::error::SdkError<E, R>, what: &str) -> SendError
where
    E: aws_sdk_sns::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match lpipe_aws::error_code(e) {
        Some(code @ "NotFound") => {
            SendError::permanent(format!("{what}: the topic does not exist ({code})"))
        }
        _ => lpipe_aws::classify(e, what, RETRYABLE),
    }
}

use lpipe_aws::fifo::{deduplication_id, group_id, is_fifo};

fn attribute(name: &str, value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type(lpipe_core::sink::attribute_data_type(name))
        .string_value(value)
        .build()
        .map_err(|e| SendError::permanent(format!("bad message attribute {name}: {e}")))
}

fn entry(
    queue: &Queue,
    index: usize,
    m: &OutboundMessage,
) -> Result<PublishBatchRequestEntry, SendError> {
    let mut entry = PublishBatchRequestEntry::builder()
        .id(index.to_string())
        .message(&m.body)
        .message_attributes(
            lpipe_core::sink::MESSAGE_ID_ATTRIBUTE,
            attribute(lpipe_core::sink::MESSAGE_ID_ATTRIBUTE, &m.id)?,
        );
    for (name, value) in &m.attributes {
        entry = entry.message_attributes(*name, attribute(name, value)?);
    }
    if is_fifo(queue) {
        entry = entry
            .message_group_id(group_id(queue, m))
            .message_deduplication_id(deduplication_id(m));
    }
    entry
        .build()
        .map_err(|e| SendError::permanent(format!("bad SNS entry: {e}")))
}

#[async_trait]
impl Sink for SnsSink {
    async fn send(
        &self,
        queue: &Queue,
        batch: &[OutboundMessage],
    ) -> Result<Vec<Result<(), SendError>>, SendError> {
        let client = self.client().await;
        let arn = self.topic_arn(&client, queue.target()).await?;
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, m)| entry(queue, i, m))
            .collect::<Result<Vec<_>, _>>()?;
        let trace_header = batch.iter().find_map(|m| m.trace_header.clone());
        self.inner.state.count_call();
        let out = client
            .publish_batch()
            .topic_arn(&arn)
            .set_publish_batch_request_entries(Some(entries))
            .customize()
            .mutate_request(move |request| {
                if let Some(header) = &trace_header {
                    request
                        .headers_mut()
                        .insert("X-Amzn-Trace-Id", header.to_string());
                }
            })
            .send()
            .await
            .map_err(|e| classify(&e, &format!("PublishBatch to {arn}")))?;
        let mut results: Vec<Result<(), SendError>> = (0..batch.len())
            .map(|_| {
                Err(SendError::retryable(
                    "PublishBatch returned no result for this entry",
                ))
            })
            .collect();
        for s in out.successful() {
            let slot = s.id().and_then(|id| id.parse::<usize>().ok());
            if let Some(r) = slot.and_then(|i| results.get_mut(i)) {
                *r = Ok(());
            }
        }
        for f in out.failed() {
            if let Some(r) = f.id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *r = Err(SendError {
                    retryable: !f.sender_fault,
                    message: format!("{}: {}", f.code, f.message.as_deref().unwrap_or_default()),
                });
            }
        }
        Ok(results)
    }

    fn calls_in_flight(&self, queue: &Queue) -> usize {
        if is_fifo(queue) {
            1
        } else {
            SNS_CALLS_IN_FLIGHT
        }
    }

    fn entry_size(&self, message: &OutboundMessage) -> usize {
        // SNS counts message attributes (name, type and value) against the size limit.
        lpipe_aws::fifo::entry_size(message)
    }

    fn limits(&self, _queue: &Queue) -> SinkLimits {
        self.inner.state.limits_or(SinkLimits {
            max_entries: SNS_MAX_ENTRIES,
            max_entry_bytes: SNS_MAX_MESSAGE_BYTES,
            max_batch_bytes: SNS_MAX_BATCH_BYTES,
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
        is_fifo(&message.queue).then(|| group_id(&message.queue, message))
    }

    fn validate(&self, queue: &Queue) -> Result<(), String> {
        let t = queue.target();
        if t.starts_with("arn:") && !is_topic_arn(t) {
            return Err(format!(
                "'{t}' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
            ));
        }
        lpipe_aws::fifo::validate(queue)
    }
}

/// `arn:PARTITION:sns:REGION:ACCOUNT:NAME`.
fn is_topic_arn(arn: &str) -> bool {
    lpipe_aws::parse_arn(arn, "sns").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn fifo_topics_group_and_deduplicate_as_fifo_queues_do() {
        let q = Queue::sns("arn:aws:sns:us-east-1:1:t.fifo").message_group_id_from("user");
        let m = msg(&q, r#"{"user": "ann"}"#);
        assert_eq!(SnsSink::new().order_key(&m), Some("ann".to_owned()));
        let routing = SnsSink::new().routing(&m);
        assert_eq!(routing[0], ("MessageGroupId", "ann".to_owned()));
        assert_eq!(routing[1].1, deduplication_id(&m));
        assert_eq!(SnsSink::new().calls_in_flight(&q), 1);
        let q = Queue::sns("t").message_group_id_from("user");
        assert_eq!(SnsSink::new().order_key(&msg(&q, "{}")), None);
        assert!(SnsSink::new().routing(&msg(&q, "{}")).is_empty());
    }

    #[test]
    fn validation_names_a_bad_arn() {
        let e = SnsSink::new()
            .validate(&Queue::sns("arn:aws:sqs:us-east-1:1:q"))
            .unwrap_err();
        assert!(e.contains("not an SNS topic ARN"), "{e}");
        assert!(SnsSink::new()
            .validate(&Queue::sns("arn:aws:sns:us-east-1:123456789012:t"))
            .is_ok());
        assert!(SnsSink::new().validate(&Queue::sns("t")).is_ok());
    }
}
