//! Sinks send outbound messages for one kind of queue; the outbox batches and retries them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;

use crate::queue::Queue;

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
    /// [`EventSource::stable_record_ids`](crate::EventSource::stable_record_ids)). The same
    /// when the record is retried, so sinks can derive deduplication ids from it (SQS FIFO).
    pub id: String,
}

impl OutboundMessage {
    /// The value of one of the message's kwargs, as a string (strings as they are, other
    /// values as JSON): for sinks that derive a group or partition key from a kwarg.
    pub fn kwarg_value(&self, name: &str) -> Option<String> {
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

/// A digest of some strings, 32 hex characters, stable across builds and platforms (two
/// FNV-1a hashes): for sinks that derive keys and deduplication ids from messages.
///
/// # Examples
///
/// ```
/// let a = lpipe_core::stable_digest(&["record-1:0", "{}"]);
/// assert_eq!(a, lpipe_core::stable_digest(&["record-1:0", "{}"]));
/// assert_ne!(a, lpipe_core::stable_digest(&["record-1:1", "{}"]));
/// assert_eq!(a.len(), 32);
/// ```
pub fn stable_digest(parts: &[&str]) -> String {
    fn fnv1a(seed: u64, parts: &[&str]) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
        for part in parts {
            for b in part.bytes().chain(std::iter::once(0xff)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
    format!(
        "{:016x}{:016x}",
        fnv1a(0, parts),
        fnv1a(0x9e37_79b9_7f4a_7c15, parts)
    )
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
/// use lpipe_core::{async_trait, OutboundMessage, Queue, SendError, Sink};
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
}

/// How failed entries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; it doubles per attempt, with full jitter.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let millis = exp.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }
}

/// A sink that keeps what it is sent, in memory: the local mode records outbound messages with
/// it instead of sending them, and tests inspect it. Failures can be programmed.
///
/// # Examples
///
/// ```
/// use lpipe_core::MemorySink;
/// let sink = MemorySink::new();
/// sink.fail_next(2, true); // the next two messages fail, retryably
/// assert!(sink.messages().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct MemorySink {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    sent: Vec<OutboundMessage>,
    calls: usize,
    fail_next: VecDeque<bool>,
    /// (needle, retryable, failures left: None for always)
    fail_bodies: Vec<(String, bool, Option<usize>)>,
    limits: Option<SinkLimits>,
    order: MemoryOrder,
}

#[derive(Clone, Default)]
enum MemoryOrder {
    #[default]
    None,
    Whole,
    ByKwarg(String),
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` messages offered fail (retryably or not), then sending succeeds again.
    pub fn fail_next(&self, n: usize, retryable: bool) {
        let mut g = self.inner.lock().expect("memory sink lock");
        g.fail_next.extend(std::iter::repeat_n(retryable, n));
    }

    /// Every message whose body contains `needle` fails, on every attempt.
    pub fn fail_bodies_containing(&self, needle: impl Into<String>, retryable: bool) {
        self.inner
            .lock()
            .expect("memory sink lock")
            .fail_bodies
            .push((needle.into(), retryable, None));
    }

    /// The next `times` offers of messages whose body contains `needle` fail.
    pub fn fail_bodies_containing_times(
        &self,
        needle: impl Into<String>,
        retryable: bool,
        times: usize,
    ) {
        self.inner
            .lock()
            .expect("memory sink lock")
            .fail_bodies
            .push((needle.into(), retryable, Some(times)));
    }

    /// Overrides the limits it declares.
    pub fn with_limits(self, limits: SinkLimits) -> Self {
        self.inner.lock().expect("memory sink lock").limits = Some(limits);
        self
    }

    /// Declares every message of a queue to share one ordering key (see [`Sink::order_key`]).
    pub fn ordered(self) -> Self {
        self.inner.lock().expect("memory sink lock").order = MemoryOrder::Whole;
        self
    }

    /// Declares a message's ordering key to be the value of its kwarg `name` (like an SQS FIFO
    /// queue with `message_group_id_from`); messages without it keep no order.
    pub fn ordered_by_kwarg(self, name: impl Into<String>) -> Self {
        self.inner.lock().expect("memory sink lock").order = MemoryOrder::ByKwarg(name.into());
        self
    }

    /// The messages delivered so far, in order.
    pub fn messages(&self) -> Vec<OutboundMessage> {
        self.inner.lock().expect("memory sink lock").sent.clone()
    }

    /// How many calls to [`Sink::send`] were made.
    pub fn calls(&self) -> usize {
        self.inner.lock().expect("memory sink lock").calls
    }

    /// Forgets what was delivered.
    pub fn clear(&self) {
        let mut g = self.inner.lock().expect("memory sink lock");
        g.sent.clear();
        g.calls = 0;
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn send(
        &self,
        _queue: &Queue,
        batch: &[OutboundMessage],
    ) -> Result<Vec<Result<(), SendError>>, SendError> {
        let mut g = self.inner.lock().expect("memory sink lock");
        g.calls += 1;
        let mut results = Vec::with_capacity(batch.len());
        for m in batch {
            let body_failure = g
                .fail_bodies
                .iter_mut()
                .find(|(needle, _, left)| m.body.contains(needle.as_str()) && *left != Some(0))
                .map(|(_, retryable, left)| {
                    if let Some(n) = left {
                        *n -= 1;
                    }
                    *retryable
                });
            let failure = body_failure.or_else(|| g.fail_next.pop_front());
            match failure {
                Some(retryable) => results.push(Err(SendError {
                    retryable,
                    message: "programmed failure of the memory sink".into(),
                })),
                None => {
                    g.sent.push(m.clone());
                    results.push(Ok(()));
                }
            }
        }
        Ok(results)
    }

    fn limits(&self, _queue: &Queue) -> SinkLimits {
        self.inner
            .lock()
            .expect("memory sink lock")
            .limits
            .unwrap_or_default()
    }

    fn order_key(&self, message: &OutboundMessage) -> Option<String> {
        match &self.inner.lock().expect("memory sink lock").order {
            MemoryOrder::None => None,
            MemoryOrder::Whole => Some(String::new()),
            MemoryOrder::ByKwarg(name) => message.kwarg_value(name),
        }
    }
}

/// A staged message and the record that produced it.
pub(crate) struct Staged {
    pub(crate) record: usize,
    pub(crate) message: OutboundMessage,
}

/// The outcome of flushing: per record, the first delivery error.
pub(crate) type Undelivered = BTreeMap<usize, String>;

/// Sends the staged messages, batched per queue within each sink's limits, retrying retryable
/// failures with backoff and jitter until `deadline`; returns what could not be delivered.
pub(crate) async fn flush(
    staged: Vec<Staged>,
    sink_for: impl Fn(&Queue) -> Option<Arc<dyn Sink>>,
    retry: RetryPolicy,
    deadline: Option<Instant>,
) -> Undelivered {
    let mut undelivered = Undelivered::new();
    let mut groups: BTreeMap<Queue, Vec<Staged>> = BTreeMap::new();
    for s in staged {
        groups.entry(s.message.queue.clone()).or_default().push(s);
    }
    let mut sends = Vec::new();
    for (queue, entries) in groups {
        match sink_for(&queue) {
            Some(sink) => sends.push(flush_queue(queue, entries, sink, retry, deadline)),
            None => {
                for e in entries {
                    undelivered
                        .entry(e.record)
                        .or_insert_with(|| format!("no sink for queue kind '{}'", queue.kind()));
                }
            }
        }
    }
    for result in futures::future::join_all(sends).await {
        for (record, why) in result {
            undelivered.entry(record).or_insert(why);
        }
    }
    undelivered
}

/// A message waiting to be sent to one queue.
struct Pending {
    /// Its place in staging order (within its queue).
    seq: usize,
    size: usize,
    key: Option<String>,
    staged: Staged,
    /// Why it is waiting, if an earlier attempt did not deliver it.
    why: Option<String>,
    /// Whether the service refused it before (not merely held back).
    failed: bool,
}

async fn flush_queue(
    queue: Queue,
    entries: Vec<Staged>,
    sink: Arc<dyn Sink>,
    retry: RetryPolicy,
    deadline: Option<Instant>,
) -> Undelivered {
    let mut undelivered = Undelivered::new();
    let limits = sink.limits(&queue);
    let mut pending: Vec<Pending> = Vec::with_capacity(entries.len());
    // Ordering keys whose message failed for good, with the first such message's place and
    // why: nothing staged after it with that key is sent (what was staged before still is).
    let mut given_up: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let give_up = |given_up: &mut BTreeMap<String, (usize, String)>, key: &str, seq, why: &str| {
        let entry = given_up
            .entry(key.to_owned())
            .or_insert_with(|| (seq, why.to_owned()));
        if seq < entry.0 {
            *entry = (seq, why.to_owned());
        }
    };
    for (seq, e) in entries.into_iter().enumerate() {
        let size = sink.entry_size(&e.message);
        let key = sink.order_key(&e.message);
        if size > limits.max_entry_bytes || size > limits.max_batch_bytes {
            let why = format!(
                "message to {queue} is {size} bytes, over the sink's limit of {} bytes",
                limits.max_entry_bytes.min(limits.max_batch_bytes)
            );
            // It will never be sent: later messages of its key must not overtake it.
            if let Some(key) = &key {
                give_up(&mut given_up, key, seq, &why);
            }
            undelivered.entry(e.record).or_insert(why);
        } else {
            pending.push(Pending {
                seq,
                size,
                key,
                staged: e,
                why: None,
                failed: false,
            });
        }
    }
    let mut attempt = 0u32;
    while !pending.is_empty() {
        attempt += 1;
        // Keys with a message waiting for a retry: later messages with that key wait too.
        let mut waiting: BTreeSet<String> = BTreeSet::new();
        let mut retry_next: Vec<Pending> = Vec::new();
        let mut queued = pending.into_iter().peekable();
        loop {
            // The next call: messages in staging order, within the limits, leaving out (and
            // holding back) those whose key has an undelivered message before them.
            let mut batch: Vec<Pending> = Vec::new();
            let mut bytes = 0;
            // Keys of retried messages in this call: a later message with the same key goes
            // in a later call, once the retry is known to have been delivered.
            let mut retried: BTreeSet<String> = BTreeSet::new();
            while batch.len() < limits.max_entries.max(1) {
                let Some(next) = queued.peek() else { break };
                if let Some(key) = &next.key {
                    if let Some((_, why)) = given_up.get(key).filter(|(seq, _)| next.seq > *seq) {
                        let p = queued.next().expect("peeked");
                        undelivered.entry(p.staged.record).or_insert_with(|| {
                            format!("not sent to {queue}, so as not to overtake an earlier message with its ordering key, which could not be delivered: {why}")
                        });
                        continue;
                    }
                    if waiting.contains(key) {
                        let mut p = queued.next().expect("peeked");
                        p.why.get_or_insert_with(|| {
                            "held back behind an earlier message with its ordering key".into()
                        });
                        retry_next.push(p);
                        continue;
                    }
                }
                if bytes + next.size > limits.max_batch_bytes
                    || next.key.as_deref().is_some_and(|k| retried.contains(k))
                {
                    break;
                }
                bytes += next.size;
                let p = queued.next().expect("peeked");
                if let (true, Some(key)) = (p.failed, &p.key) {
                    retried.insert(key.clone());
                }
                batch.push(p);
            }
            if batch.is_empty() {
                break;
            }
            let messages: Vec<OutboundMessage> =
                batch.iter().map(|p| p.staged.message.clone()).collect();
            let results = match sink.send(&queue, &messages).await {
                Ok(r) if r.len() == messages.len() => r,
                Ok(r) => {
                    let msg = format!(
                        "the sink for {queue} returned {} results for {} messages",
                        r.len(),
                        messages.len()
                    );
                    vec![Err(SendError::permanent(msg)); messages.len()]
                }
                Err(e) => vec![Err(e); messages.len()],
            };
            for (mut p, result) in batch.into_iter().zip(results) {
                let Err(e) = result else { continue };
                tracing::warn!(queue = %queue, attempt, retryable = e.retryable, error = %e.message, "outbound message not sent");
                if e.retryable {
                    if let Some(key) = &p.key {
                        waiting.insert(key.clone());
                    }
                    p.why = Some(e.message);
                    p.failed = true;
                    retry_next.push(p);
                } else {
                    let why = format!("sending to {queue} failed: {}", e.message);
                    if let Some(key) = &p.key {
                        give_up(&mut given_up, key, p.seq, &why);
                    }
                    undelivered.entry(p.staged.record).or_insert(why);
                }
            }
        }
        if retry_next.is_empty() {
            break;
        }
        let delay = retry.backoff(attempt - 1);
        let out_of_time = deadline.is_some_and(|d| Instant::now() + delay >= d);
        if attempt >= retry.max_attempts || out_of_time {
            for p in retry_next {
                let why = p.why.unwrap_or_default();
                undelivered.entry(p.staged.record).or_insert_with(|| {
                    format!("sending to {queue} failed after {attempt} attempts: {why}")
                });
            }
            break;
        }
        tokio::time::sleep(delay).await;
        pending = retry_next;
    }
    undelivered
}
