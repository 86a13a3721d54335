//! The outbox: sends the messages the records of a batch staged, batched per queue within each
//! sink's limits, retrying what the sink refused retryably, and says which records' messages
//! could not be delivered (those records fail).
//!
//! Per queue ([`QueueOutbox`]), messages over the threshold are first put in S3 and made
//! pointers when the pipeline offloads large payloads ([`QueueOutbox::offload_large`]; one
//! that cannot be put is undeliverable), then, in rounds (one per attempt):
//! 1. [`QueueOutbox::next_call`] takes the next messages in staging order that fit the sink's
//!    limits, holding back those whose order key has an undelivered message before them;
//! 2. the sink sends the call (one after another; when no message of the round has an order
//!    key, up to [`Sink::calls_in_flight`] at once), and [`QueueOutbox::apply`] sorts its
//!    results as it returns: delivered, refused retryably (retried next round, and its key
//!    held back), refused for good (its key is given up: nothing staged after it with that key
//!    is sent);
//! 3. when a round leaves messages to retry, the outbox waits (exponential backoff with
//!    jitter) and runs another, until the attempts or the deadline run out
//!    ([`QueueOutbox::give_up_on`]).

use std::collections::{BTreeMap, BTreeSet};
use std::iter::Peekable;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::payload::LargePayloads;
use crate::queue::Queue;
use crate::sink::{OutboundMessage, RetryPolicy, SendError, Sink, SinkLimits};

mod offload;

use offload::Offload;

/// A staged message and the record that produced it.
pub(crate) struct Staged {
    pub(crate) record: usize,
    pub(crate) message: OutboundMessage,
}

/// The outcome of flushing: per record, the first delivery error.
pub(crate) type Undelivered = BTreeMap<usize, String>;

/// What happened to the messages of one queue kind (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MessageCounts {
    /// Delivered.
    pub(crate) sent: usize,
    /// Refused retryably, and offered again (once per refusal).
    pub(crate) retried: usize,
    /// Never delivered.
    pub(crate) undeliverable: usize,
}

impl MessageCounts {
    pub(crate) fn add(&mut self, other: MessageCounts) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.undeliverable += other.undeliverable;
    }
}

/// What a flush did: the records whose messages were not delivered, and the message counts
/// per queue kind.
#[derive(Debug, Default)]
pub(crate) struct Flushed {
    pub(crate) undelivered: Undelivered,
    pub(crate) counts: BTreeMap<String, MessageCounts>,
}

/// Sends the staged messages, batched per queue within each sink's limits (those over the
/// threshold put in S3 first when `payloads` offloads), retrying retryable failures with
/// backoff and jitter until `deadline`; returns what could not be delivered.
pub(crate) async fn flush(
    staged: Vec<Staged>,
    sink_for: impl Fn(&Queue) -> Option<Arc<dyn Sink>>,
    (retry, deadline): (RetryPolicy, Option<Instant>),
    payloads: Option<&LargePayloads>,
) -> Flushed {
    let mut flushed = Flushed::default();
    let mut by_queue: BTreeMap<Queue, Vec<Staged>> = BTreeMap::new();
    for s in staged {
        by_queue.entry(s.message.queue.clone()).or_default().push(s);
    }
    let mut sends = Vec::new();
    for (queue, entries) in by_queue {
        match sink_for(&queue) {
            Some(sink) => {
                let outbox = QueueOutbox::new(queue, entries, sink, payloads);
                sends.push(outbox.send(retry, deadline));
            }
            None => {
                let counts = flushed
                    .counts
                    .entry(queue.kind().as_str().to_owned())
                    .or_default();
                counts.undeliverable += entries.len();
                for e in entries {
                    flushed
                        .undelivered
                        .entry(e.record)
                        .or_insert_with(|| format!("no sink for queue kind '{}'", queue.kind()));
                }
            }
        }
    }
    for (kind, undelivered, counts) in futures::future::join_all(sends).await {
        flushed.counts.entry(kind).or_default().add(counts);
        for (record, why) in undelivered {
            flushed.undelivered.entry(record).or_insert(why);
        }
    }
    flushed
}

/// A message waiting to be sent to one queue (the message itself waits in
/// [`QueueOutbox::messages`], at `seq`).
struct Pending {
    /// Its place in staging order (within its queue).
    seq: usize,
    size: usize,
    key: Option<String>,
    /// The record that staged it.
    record: usize,
    /// Why it is waiting, if an earlier attempt did not deliver it.
    why: Option<String>,
    /// Whether the service refused it before (not merely held back).
    failed: bool,
    /// It is to be put in S3 and sent as a pointer.
    offload: bool,
}

/// One round of calls: the messages still to offer, and what is left for the next round.
struct Round {
    queued: Peekable<std::vec::IntoIter<Pending>>,
    /// Keys with a message waiting for a retry: later messages with that key wait too.
    waiting: BTreeSet<String>,
    /// What the next round offers again.
    retry_next: Vec<Pending>,
}

/// The messages of one queue on their way out.
struct QueueOutbox {
    queue: Queue,
    sink: Arc<dyn Sink>,
    limits: SinkLimits,
    /// Where its large messages go, if anywhere.
    offload: Option<Offload>,
    /// Not yet delivered, in staging order.
    pending: Vec<Pending>,
    /// The messages, by `seq`: each is moved into the call that offers it, and back if it is
    /// to be offered again.
    messages: Vec<Option<OutboundMessage>>,
    /// Keys whose message failed for good, with the first such message's place and why:
    /// nothing staged after it with that key is sent (what was staged before still is).
    given_up: BTreeMap<String, (usize, String)>,
    undelivered: Undelivered,
    /// Messages staged, delivered, and refused retryably.
    staged: usize,
    sent: usize,
    retried: usize,
}

impl QueueOutbox {
    /// Sizes and keys the messages; one over the sink's limits is undeliverable at once, and
    /// gives its key up, unless it is to be offloaded.
    fn new(
        queue: Queue,
        entries: Vec<Staged>,
        sink: Arc<dyn Sink>,
        payloads: Option<&LargePayloads>,
    ) -> Self {
        let limits = sink.limits(&queue);
        let offload = Offload::for_queue(payloads, sink.as_ref(), &queue, limits);
        let threshold = offload.as_ref().map(|o| o.threshold);
        let mut outbox = QueueOutbox {
            queue,
            limits,
            offload,
            pending: Vec::with_capacity(entries.len()),
            messages: Vec::with_capacity(entries.len()),
            given_up: BTreeMap::new(),
            undelivered: Undelivered::new(),
            sink,
            staged: entries.len(),
            sent: 0,
            retried: 0,
        };
        for (seq, staged) in entries.into_iter().enumerate() {
            let size = outbox.sink.entry_size(&staged.message);
            let key = outbox.sink.order_key(&staged.message);
            let offload = threshold.is_some_and(|t| size > t);
            if !offload && (size > limits.max_entry_bytes || size > limits.max_batch_bytes) {
                let why = format!(
                    "message to {} is {size} bytes, over the sink's limit of {} bytes",
                    outbox.queue,
                    limits.max_entry_bytes.min(limits.max_batch_bytes)
                );
                // It will never be sent: later messages of its key must not overtake it.
                if let Some(key) = &key {
                    outbox.give_up(key, seq, &why);
                }
                outbox.undelivered.entry(staged.record).or_insert(why);
                outbox.messages.push(None);
            } else {
                outbox.pending.push(Pending {
                    seq,
                    size,
                    key,
                    record: staged.record,
                    why: None,
                    failed: false,
                    offload,
                });
                outbox.messages.push(Some(staged.message));
            }
        }
        outbox
    }

    /// Sends everything, in rounds, until it is delivered, refused for good, or out of
    /// attempts or time; returns the queue's kind, what was not delivered, and the counts.
    async fn send(
        mut self,
        retry: RetryPolicy,
        deadline: Option<Instant>,
    ) -> (String, Undelivered, MessageCounts) {
        self.offload_large().await;
        let mut attempt = 0u32;
        while !self.pending.is_empty() {
            attempt += 1;
            let retry_next = self.round(attempt).await;
            if retry_next.is_empty() {
                break;
            }
            let delay = retry.backoff.delay(attempt - 1);
            let out_of_time = deadline.is_some_and(|d| Instant::now() + delay >= d);
            if attempt >= retry.max_attempts || out_of_time {
                self.give_up_on(retry_next, attempt);
                break;
            }
            tokio::time::sleep(delay).await;
            self.pending = retry_next;
        }
        let counts = MessageCounts {
            sent: self.sent,
            retried: self.retried,
            undeliverable: self.staged - self.sent,
        };
        (
            self.queue.kind().as_str().to_owned(),
            self.undelivered,
            counts,
        )
    }

    /// Puts the messages to offload in S3 and makes them pointers; one that cannot be put is
    /// undeliverable, and gives its key up.
    async fn offload_large(&mut self) {
        let Some(offload) = self.offload.take() else {
            return;
        };
        let mut kept = Vec::with_capacity(self.pending.len());
        for mut p in std::mem::take(&mut self.pending) {
            if !p.offload {
                kept.push(p);
                continue;
            }
            let mut message = self.messages[p.seq].take().expect("a pending message");
            match offload.put(&mut message).await {
                Ok(()) => {
                    p.size = self.sink.entry_size(&message);
                    p.offload = false;
                    self.messages[p.seq] = Some(message);
                    kept.push(p);
                }
                Err(why) => {
                    tracing::warn!(queue = %self.queue, "{why}");
                    if let Some(key) = &p.key {
                        self.give_up(key, p.seq, &why);
                    }
                    self.undelivered.entry(p.record).or_insert(why);
                }
            }
        }
        self.pending = kept;
    }

    /// One attempt: calls until every pending message was offered or held back; returns what
    /// to offer again.
    async fn round(&mut self, attempt: u32) -> Vec<Pending> {
        let in_flight = self.sink.calls_in_flight(&self.queue).max(1);
        // Only messages without an order key may overtake each other.
        let unordered = in_flight > 1 && self.pending.iter().all(|p| p.key.is_none());
        let mut round = Round {
            queued: std::mem::take(&mut self.pending).into_iter().peekable(),
            waiting: BTreeSet::new(),
            retry_next: Vec::new(),
        };
        if unordered {
            self.calls_side_by_side(in_flight, attempt, &mut round)
                .await;
            return round.retry_next;
        }
        loop {
            let call = self.next_call(&mut round);
            if call.is_empty() {
                break;
            }
            let messages = self.take_messages(&call);
            let results = self.sink.send(&self.queue, &messages).await;
            self.apply(call, messages, results, attempt, &mut round);
        }
        round.retry_next
    }

    /// Sends the round's calls (of messages without order keys), up to `in_flight` at once,
    /// sorting each call's results as it returns.
    async fn calls_side_by_side(&mut self, in_flight: usize, attempt: u32, round: &mut Round) {
        let mut calls = Vec::new();
        loop {
            let call = self.next_call(round);
            if call.is_empty() {
                break;
            }
            let messages = self.take_messages(&call);
            calls.push((call, messages));
        }
        let (sink, queue) = (Arc::clone(&self.sink), self.queue.clone());
        let mut returned = futures::stream::iter(calls)
            .map(|(call, messages)| {
                let (sink, queue) = (&sink, &queue);
                async move {
                    let results = sink.send(queue, &messages).await;
                    (call, messages, results)
                }
            })
            .buffer_unordered(in_flight);
        while let Some((call, messages, results)) = returned.next().await {
            self.apply(call, messages, results, attempt, round);
        }
        // Calls return in any order: the next round offers in staging order again.
        round.retry_next.sort_unstable_by_key(|p| p.seq);
    }

    /// The next call: messages in staging order, within the limits, leaving out (and holding
    /// back for the next round) those whose key has an undelivered message before them. A
    /// retried message is the last of its key in its call.
    fn next_call(&mut self, round: &mut Round) -> Vec<Pending> {
        let mut call: Vec<Pending> = Vec::new();
        let mut bytes = 0;
        // Keys of retried messages in this call: a later message with the same key goes in a
        // later call, once the retry is known to have been delivered.
        let mut retried: BTreeSet<String> = BTreeSet::new();
        while call.len() < self.limits.max_entries.max(1) {
            let Some(next) = round.queued.peek() else {
                break;
            };
            if let Some(key) = &next.key {
                let given_up = self.given_up.get(key).filter(|(seq, _)| next.seq > *seq);
                if let Some((_, why)) = given_up {
                    let why = format!("not sent to {}, so as not to overtake an earlier message with its ordering key, which could not be delivered: {why}", self.queue);
                    let p = round.queued.next().expect("peeked");
                    self.undelivered.entry(p.record).or_insert(why);
                    continue;
                }
                if round.waiting.contains(key) {
                    let mut p = round.queued.next().expect("peeked");
                    p.why.get_or_insert_with(|| {
                        "held back behind an earlier message with its ordering key".into()
                    });
                    round.retry_next.push(p);
                    continue;
                }
            }
            if bytes + next.size > self.limits.max_batch_bytes
                || next.key.as_deref().is_some_and(|k| retried.contains(k))
            {
                break;
            }
            bytes += next.size;
            let p = round.queued.next().expect("peeked");
            if let (true, Some(key)) = (p.failed, &p.key) {
                retried.insert(key.clone());
            }
            call.push(p);
        }
        call
    }

    /// Moves a call's messages out of their places, in the call's order.
    fn take_messages(&mut self, call: &[Pending]) -> Vec<OutboundMessage> {
        call.iter()
            .map(|p| {
                self.messages[p.seq]
                    .take()
                    .expect("a pending message is in its place")
            })
            .collect()
    }

    /// Sorts a call's results: delivered messages are done; retryable refusals go to the next
    /// round (their messages back in their places) and hold their key back; permanent ones
    /// give their key up.
    fn apply(
        &mut self,
        call: Vec<Pending>,
        messages: Vec<OutboundMessage>,
        results: Result<Vec<Result<(), SendError>>, SendError>,
        attempt: u32,
        round: &mut Round,
    ) {
        // A call that failed as a whole is logged once, not once per message.
        let (results, whole_call) = match results {
            Ok(r) if r.len() == call.len() => (r, false),
            Ok(r) => {
                let msg = format!(
                    "the sink for {} returned {} results for {} messages",
                    self.queue,
                    r.len(),
                    call.len()
                );
                (vec![Err(SendError::permanent(msg)); call.len()], true)
            }
            Err(e) => (vec![Err(e); call.len()], true),
        };
        if let (true, Some(Err(e))) = (whole_call, results.first()) {
            tracing::warn!(queue = %self.queue, attempt, retryable = e.retryable, messages = call.len(), error = %e.message, "outbound call failed");
        }
        for ((mut p, message), result) in call.into_iter().zip(messages).zip(results) {
            let Err(e) = result else {
                self.sent += 1;
                continue;
            };
            if !whole_call {
                tracing::warn!(queue = %self.queue, attempt, retryable = e.retryable, error = %e.message, "outbound message not sent");
            }
            if e.retryable {
                self.retried += 1;
                if let Some(key) = &p.key {
                    round.waiting.insert(key.clone());
                }
                p.why = Some(e.message);
                p.failed = true;
                self.messages[p.seq] = Some(message);
                round.retry_next.push(p);
            } else {
                let why = format!("sending to {} failed: {}", self.queue, e.message);
                if let Some(key) = &p.key {
                    self.give_up(key, p.seq, &why);
                }
                self.undelivered.entry(p.record).or_insert(why);
            }
        }
    }

    /// Gives a key up from the message at `seq` on (keeping the earliest such place).
    fn give_up(&mut self, key: &str, seq: usize, why: &str) {
        let entry = self
            .given_up
            .entry(key.to_owned())
            .or_insert_with(|| (seq, why.to_owned()));
        if seq < entry.0 {
            *entry = (seq, why.to_owned());
        }
    }

    /// Out of attempts or time: what is left is undelivered.
    fn give_up_on(&mut self, left: Vec<Pending>, attempts: u32) {
        for p in left {
            let why = p.why.unwrap_or_default();
            let queue = &self.queue;
            self.undelivered.entry(p.record).or_insert_with(|| {
                format!("sending to {queue} failed after {attempts} attempts: {why}")
            });
        }
    }
}

#[cfg(test)]
mod tests;
