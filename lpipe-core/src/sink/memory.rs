//! [`MemorySink`]: a sink that keeps messages in memory, for the local mode and tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{OutboundMessage, SendError, Sink, SinkLimits};
use crate::queue::Queue;

/// A sink that keeps what it is sent, in memory: the local mode records outbound messages with
/// it instead of sending them, and tests inspect it. Failures can be programmed.
///
/// # Examples
///
/// ```
/// use lpipe_core::sink::MemorySink;
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
    pointers: bool,
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

    #[cfg(feature = "test-kit")]
    /// The next `n` messages offered fail (retryably or not), then sending succeeds again.
    pub fn fail_next(&self, n: usize, retryable: bool) {
        let mut g = self.inner.lock().expect("memory sink lock");
        g.fail_next.extend(std::iter::repeat_n(retryable, n));
    }

    #[cfg(feature = "test-kit")]
    /// Every message whose body contains `needle` fails, on every attempt.
    pub fn fail_bodies_containing(&self, needle: impl Into<String>, retryable: bool) {
        self.inner
            .lock()
            .expect("memory sink lock")
            .fail_bodies
            .push((needle.into(), retryable, None));
    }

    #[cfg(feature = "test-kit")]
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

    /// Declares that its queues' consumers read payloads kept in S3 (as SQS and SNS do; see
    /// [`Sink::takes_payload_pointers`]), so that a pipeline offloading large payloads sends
    /// it pointers.
    pub fn taking_payload_pointers(self) -> Self {
        self.inner.lock().expect("memory sink lock").pointers = true;
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

    fn takes_payload_pointers(&self, _queue: &Queue) -> bool {
        self.inner.lock().expect("memory sink lock").pointers
    }

    fn order_key(&self, message: &OutboundMessage) -> Option<String> {
        match &self.inner.lock().expect("memory sink lock").order {
            MemoryOrder::None => None,
            MemoryOrder::Whole => Some(String::new()),
            MemoryOrder::ByKwarg(name) => message.kwarg_value(name),
        }
    }
}
