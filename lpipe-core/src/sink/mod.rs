//! Sinks send outbound messages for one kind of queue (the [`Sink`] trait, its limits and
//! errors); [`MemorySink`] keeps them in memory. The outbox (`crate::outbox`) batches and
//! retries what the records of a batch staged.

use std::time::Duration;

use async_trait::async_trait;

use crate::queue::Queue;

mod memory;

pub use memory::MemorySink;

/// A sink's batch limits; the outbox never sends a call that breaks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkLimits {
    /// Messages per call.
    pub max_entries: usize,
    /// Bytes per message (as the sink counts them; see [`Sink::entry_size`]).
    pub max_entry_bytes: usize,
    /// Bytes per call.
    pub max_batch_bytes: usize,
}

impl Default for SinkLimits {
    fn default() -> Self {
        SinkLimits {
            max_entries: 10,
            max_entry_bytes: 256 * 1024,
            max_batch_bytes: 256 * 1024,
        }
    }
}

/// One outbound message.
#[derive(Clone, Debug)]
pub struct OutboundMessage {
    /// Where it goes.
    pub queue: Queue,
    /// The JSON body: `{"path": …, "kwargs": …}`, or bare kwargs for a queue without a path.
    pub body: String,
    /// A stable identity: the id of the record that produced it and its position among that
    /// record's messages (`"<record id>:<n>"`, prefixed with the Lambda request id,
    /// `"<request id>/<record id>:<n>"`, for sources whose record ids are positions; see
    /// [`EventSource::stable_record_ids`](crate::source::EventSource::stable_record_ids)). The same
    /// when the record is retried, so sinks can derive deduplication ids from it (SQS FIFO).
    pub id: String,
    /// The X-Ray trace header to carry on, where the service has a place for one (SQS
    /// `AWSTraceHeader`, EventBridge `TraceHeader`): the producing record's, else its
    /// invocation's.
    pub trace_header: Option<std::sync::Arc<str>>,
    /// Message attributes to send with it, where the service has them (SQS): a dead letter's
    /// reason (see [`DEAD_LETTER_ATTRIBUTES`]). Empty for forwarded messages.
    pub attributes: Vec<(&'static str, String)>,
    /// The values of the kwargs the queue's options name (`message_group_id_from`, …), kept
    /// when the body was replaced by a pointer to it in S3 (see [`crate::payload`]);
    /// [`kwarg_value`](Self::kwarg_value) reads them first. Empty otherwise.
    pub kept_kwargs: Vec<(String, String)>,
}

impl OutboundMessage {
    /// The value of one of the message's kwargs, as a string (strings as they are, other
    /// values as JSON): for sinks that derive a group or partition key from a kwarg.
    pub fn kwarg_value(&self, name: &str) -> Option<String> {
        if let Some((_, value)) = self.kept_kwargs.iter().find(|(n, _)| n == name) {
            return Some(value.clone());
        }
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        let kwargs = if self.queue.consumer_path().is_some() {
            &v["kwargs"]
        } else {
            &v
        };
        match &kwargs[name] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// The message attribute that carries a forwarded message's [`OutboundMessage::id`] where
/// the service has attributes (SQS): the same on every resend of the message after its record
/// is retried, so that a consumer can tell a resend from a new message
/// (`SqsMeta::message_attribute(MESSAGE_ID_ATTRIBUTE)`).
pub const MESSAGE_ID_ATTRIBUTE: &str = "lpipe.message_id";

/// The data type a sink gives a message attribute where the service types them (SQS, SNS):
/// `Number` for the size attributes of payloads kept in S3 ([`crate::payload`]), as AWS's
/// extended client libraries send them, `String` for every other.
pub fn attribute_data_type(name: &str) -> &'static str {
    if crate::payload::SIZE_ATTRIBUTES.contains(&name) {
        "Number"
    } else {
        "String"
    }
}

/// The message attributes of a dead letter (a dropped record sent, as it came, to the
/// pipeline's dead-letter queue), where the queue's service has attributes (SQS): why it was
/// dropped (the error's class and message), where (path and function, when known), and the
/// source record's id.
pub const DEAD_LETTER_ATTRIBUTES: [&str; 5] = [
    "lpipe.error_type",
    "lpipe.error_message",
    "lpipe.path",
    "lpipe.function",
    "lpipe.record_id",
];

/// A digest of some strings, 32 hex characters (the first half of their SHA-256, each string
/// followed by a 0xff byte, which no UTF-8 text contains), the same in every build and
/// process: for sinks that derive keys and deduplication ids from messages.
///
/// # Examples
///
/// ```
/// use lpipe_core::sink::content_digest;
/// let a = content_digest(&["record-1:0", "{}"]);
/// assert_eq!(a, content_digest(&["record-1:0", "{}"]));
/// assert_ne!(a, content_digest(&["record-1:1", "{}"]));
/// assert_ne!(content_digest(&["ab", "c"]), content_digest(&["a", "bc"]));
/// assert_eq!(a.len(), 32);
/// ```
pub fn content_digest(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let mut sha = Sha256::new();
    for part in parts {
        sha.update(part.as_bytes());
        sha.update([0xff]);
    }
    sha.finalize()[..16]
        .iter()
        .fold(String::with_capacity(32), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Why a message (or a whole call) was not sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Whether sending again may succeed (throttling, a service fault), as opposed to a fault
    /// of the sender (a queue that does not exist, a message that is too large).
    pub retryable: bool,
    /// What went wrong, as the service said it.
    pub message: String,
}

impl SendError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        SendError {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure that retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        SendError {
            retryable: false,
            message: message.into(),
        }
    }
}

/// Sends messages to queues of one kind. Built-in: SQS, Kinesis, EventBridge (in their
/// crates) and [`MemorySink`]; users implement their own (a webhook, a database).
///
/// # Examples
///
/// ```
/// use lpipe_core::{async_trait, Queue, sink::{OutboundMessage, SendError, Sink}};
///
/// struct Stdout;
///
/// #[async_trait]
/// impl Sink for Stdout {
///     async fn send(&self, queue: &Queue, batch: &[OutboundMessage])
///         -> Result<Vec<Result<(), SendError>>, SendError> {
///         Ok(batch.iter().map(|m| { println!("{queue}: {}", m.body); Ok(()) }).collect())
///     }
/// }
/// ```
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Sends one batch (within [`Sink::limits`]) to one queue, and returns one result per
    /// message, in order. `Err` means the whole call failed (every message gets that error).
    async fn send(
        &self,
        queue: &Queue,
        batch: &[OutboundMessage],
    ) -> Result<Vec<Result<(), SendError>>, SendError>;

    /// The batch limits for this queue.
    fn limits(&self, _queue: &Queue) -> SinkLimits {
        SinkLimits::default()
    }

    /// The size of a message as the service counts it against the limits.
    fn entry_size(&self, message: &OutboundMessage) -> usize {
        message.body.len()
    }

    /// Checks a queue of the graph when the pipeline is built (a malformed ARN, a missing
    /// option). The message is reported as an `InvalidConfigurationError`.
    fn validate(&self, _queue: &Queue) -> Result<(), String> {
        Ok(())
    }

    /// The ordering key of a message, for queues that keep order per key (an SQS FIFO queue's
    /// `MessageGroupId`, a Kinesis partition key); `None` (the default) for no order to keep.
    ///
    /// Messages with the same key reach the queue in the order they were staged, across
    /// retries: once one of them fails, the outbox sends none of the later ones with that key
    /// until it has been delivered, and if it cannot be, the later ones are not sent either
    /// (their records fail and are retried by the source rather than overtake it). Messages
    /// with other keys carry on. A retried message is the last of its key in its call. One
    /// gap remains: in a message's first call, the service may accept entries with its key that
    /// follow it in that call although it failed; ruling that out would take one call per
    /// message and key.
    fn order_key(&self, _message: &OutboundMessage) -> Option<String> {
        None
    }

    /// How many calls to this queue the outbox may have on their way at once. It uses more
    /// than one only for messages without an [order key](Sink::order_key): messages with keys
    /// go one call after another, so that none overtakes an earlier one with its key. The
    /// default, 1, sends every call after the one before; the SQS and EventBridge sinks allow
    /// 8, so a batch forwarding thousands of messages does not wait for each round trip in
    /// turn. Read once per queue and round; 0 counts as 1.
    fn calls_in_flight(&self, _queue: &Queue) -> usize {
        1
    }

    /// The queue option keys this sink understands ([`Queue::option`](crate::Queue::option)):
    /// a queue with any other key fails the build, naming these. `None` (the default) accepts
    /// any key, for sinks that read options of their own.
    fn options(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Whether the queue's consumers read payloads kept in S3 from pointers (the message
    /// attribute `ExtendedPayloadSize` marks them; see [`crate::payload`]): the outbox then
    /// offloads the messages over the threshold when the pipeline asks
    /// ([`LargePayloads::offload_to`](crate::payload::LargePayloads::offload_to)). The SQS and
    /// SNS sinks do; the default is `false` (the message is refused as too large instead).
    fn takes_payload_pointers(&self, _queue: &Queue) -> bool {
        false
    }

    /// How the service would route this message, for people reading it: the local mode
    /// prints it beside each message it records instead of sending (an SQS FIFO queue's
    /// `MessageGroupId` and `MessageDeduplicationId`, a Kinesis `PartitionKey`). Default:
    /// nothing.
    fn routing(&self, _message: &OutboundMessage) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// Exponential backoff: the `n`th retry (from 0) waits `base × 2^n`, at most `cap`, less a
/// random part of up to half (jitter). Sinks retry failed entries with it
/// ([`RetryPolicy`]); the SQS source can delay kept records with it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lpipe_core::sink::Backoff;
/// let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
/// assert_eq!(b.ceiling(0), Duration::from_secs(2));
/// assert_eq!(b.ceiling(2), Duration::from_secs(8));
/// assert_eq!(b.ceiling(30), Duration::from_secs(60));
/// let d = b.delay(2);
/// assert!(d >= Duration::from_secs(4) && d <= Duration::from_secs(8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's delay.
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Backoff {
    /// A backoff from `base`, doubling up to `cap`.
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Backoff { base, cap }
    }

    /// The longest delay before retry `n` (from 0): `base × 2^n`, at most `cap`.
    pub fn ceiling(&self, n: u32) -> Duration {
        self.base.saturating_mul(1u32 << n.min(30)).min(self.cap)
    }

    /// The delay before retry `n` (from 0): between half of [`ceiling`](Self::ceiling) and
    /// all of it, at random.
    pub fn delay(&self, n: u32) -> Duration {
        self.ceiling(n).mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// How failed entries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
        }
    }
}
