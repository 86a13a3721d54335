//! The Kinesis sink: PutRecords within the API's limits.

use std::sync::Arc;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use lpipe_core::{
    async_trait,
    sink::{content_digest, OutboundMessage, SendError, Sink, SinkLimits},
    Queue,
};

/// Records per PutRecords call.
pub const KINESIS_MAX_RECORDS: usize = 500;
/// Bytes per record, data and partition key together.
pub const KINESIS_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Bytes per PutRecords call.
pub const KINESIS_MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;

/// Sends to queues of kind `kinesis`, targeted by stream name or ARN, with PutRecords.
///
/// Per queue options ([`Queue::option`]):
/// - `partition_key`: the partition key of every record;
/// - `partition_key_from`: a kwarg whose value is the partition key (e.g. `user_id`).
///
/// Without either, the partition key is derived from the message's body, so equal messages
/// land on one shard and keep their order.
#[derive(Clone, Default)]
pub struct KinesisSink {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    client: Option<aws_sdk_kinesis::Client>,
    state: lpipe_aws::SinkState,
}

impl KinesisSink {
    /// A sink using the shared client (see [`shared_client`](crate::shared_client)).
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink using this client.
    pub fn with_client(client: aws_sdk_kinesis::Client) -> Self {
        KinesisSink {
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

    /// PutRecords calls made so far.
    pub fn put_records_calls(&self) -> usize {
        self.inner.state.calls()
    }
}

fn partition_key(message: &OutboundMessage) -> String {
    let queue = &message.queue;
    if let Some(k) = queue.get_option("partition_key") {
        return k.to_owned();
    }
    if let Some(name) = queue.get_option("partition_key_from") {
        if let Some(value) = message.kwarg_value(name) {
            return value.chars().take(256).collect();
        }
    }
    content_digest(&[&message.body])
}

/// Error codes worth retrying.
const RETRYABLE: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
    "LimitExceededException",
    "ThrottlingException",
];

#[async_trait]
impl Sink for KinesisSink {
    async fn send(
        &self,
        queue: &Queue,
        batch: &[OutboundMessage],
    ) -> Result<Vec<Result<(), SendError>>, SendError> {
        let client = match &self.inner.client {
            Some(c) => c.clone(),
            None => crate::shared_client().await,
        };
        let mut entries = Vec::with_capacity(batch.len());
        for m in batch {
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(m.body.as_bytes()))
                .partition_key(partition_key(m))
                .build()
                .map_err(|e| SendError::permanent(format!("bad Kinesis record: {e}")))?;
            entries.push(entry);
        }
        let target = queue.target();
        let mut request = client.put_records().set_records(Some(entries));
        request = if target.starts_with("arn:") {
            request.stream_arn(target)
        } else {
            request.stream_name(target)
        };
        self.inner.state.count_call();
        let out = request.send().await.map_err(|e| {
            lpipe_aws::classify(&e, &format!("PutRecords to stream '{target}'"), RETRYABLE)
        })?;
        if out.records.len() != batch.len() {
            return Err(SendError::retryable(format!(
                "PutRecords returned {} results for {} records",
                out.records.len(),
                batch.len()
            )));
        }
        Ok(out
            .records
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

    fn limits(&self, _queue: &Queue) -> SinkLimits {
        self.inner.state.limits_or(SinkLimits {
            max_entries: KINESIS_MAX_RECORDS,
            max_entry_bytes: KINESIS_MAX_RECORD_BYTES,
            max_batch_bytes: KINESIS_MAX_BATCH_BYTES,
        })
    }

    fn entry_size(&self, message: &OutboundMessage) -> usize {
        message.body.len() + partition_key(message).len()
    }

    fn validate(&self, queue: &Queue) -> Result<(), String> {
        let t = queue.target();
        if t.starts_with("arn:") && !t.contains(":kinesis:") {
            return Err(format!(
                "'{t}' is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"
            ));
        }
        if queue.get_option("partition_key").is_some()
            && queue.get_option("partition_key_from").is_some()
        {
            return Err("set partition_key or partition_key_from, not both".into());
        }
        if queue
            .get_option("partition_key")
            .is_some_and(|k| k.is_empty() || k.chars().count() > 256)
        {
            return Err("partition_key must have 1 to 256 characters".into());
        }
        Ok(())
    }

    fn options(&self) -> Option<&'static [&'static str]> {
        Some(&["partition_key", "partition_key_from"])
    }

    fn routing(&self, message: &OutboundMessage) -> Vec<(&'static str, String)> {
        vec![("PartitionKey", partition_key(message))]
    }

    fn order_key(&self, message: &OutboundMessage) -> Option<String> {
        // Kinesis keeps order per partition key (one shard each).
        Some(partition_key(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_come_from_the_options_or_the_body() {
        let m = |q: Queue, body: &str| OutboundMessage {
            queue: q,
            body: body.into(),
            id: "0:0".into(),
            trace_header: None,
            attributes: Vec::new(),
            kept_kwargs: Vec::new(),
        };
        assert_eq!(
            partition_key(&m(Queue::kinesis("s").partition_key("k"), "{}")),
            "k"
        );
        assert_eq!(
            partition_key(&m(
                Queue::kinesis("s").partition_key_from("u"),
                r#"{"u": 5}"#
            )),
            "5"
        );
        let a = partition_key(&m(Queue::kinesis("s"), r#"{"a": 1}"#));
        assert_eq!(a, partition_key(&m(Queue::kinesis("s"), r#"{"a": 1}"#)));
        assert_ne!(a, partition_key(&m(Queue::kinesis("s"), r#"{"a": 2}"#)));
        // The outbox keeps order per partition key.
        let q = Queue::kinesis("s").partition_key_from("u");
        assert_eq!(
            KinesisSink::new().order_key(&m(q, r#"{"u": "ann"}"#)),
            Some("ann".to_owned())
        );
    }
}
