//! The outbox: sends the messages the records of a batch staged, batched per queue within each
//! sink's limits, retrying what the sink refused retryably, and says which records' messages
//! could not be delivered (those records fail).
//!
//! Per queue ([`QueueOutbox`]), in rounds (one per attempt):
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

use crate::queue::Queue;
use crate::sink::{OutboundMessage, RetryPolicy, SendError, Sink, SinkLimits};

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

/// Sends the staged messages, batched per queue within each sink's limits, retrying retryable
/// failures with backoff and jitter until `deadline`; returns what could not be delivered.
pub(crate) async fn flush(
    staged: Vec<Staged>,
    sink_for: impl Fn(&Queue) -> Option<Arc<dyn Sink>>,
    retry: RetryPolicy,
    deadline: Option<Instant>,
) -> Flushed {
    let mut flushed = Flushed::default();
    let mut by_queue: BTreeMap<Queue, Vec<Staged>> = BTreeMap::new();
    for s in staged {
        by_queue.entry(s.message.queue.clone()).or_default().push(s);
    }
    let mut sends = Vec::new();
    for (queue, entries) in by_queue {
        match sink_for(&queue) {
            Some(sink) => sends.push(QueueOutbox::new(queue, entries, sink).send(retry, deadline)),
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

/// The messages of one call to a sink, in their order.
fn messages_of(call: &[Pending]) -> Vec<OutboundMessage> {
    call.iter().map(|p| p.staged.message.clone()).collect()
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
    /// Not yet delivered, in staging order.
    pending: Vec<Pending>,
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
    /// gives its key up.
    fn new(queue: Queue, entries: Vec<Staged>, sink: Arc<dyn Sink>) -> Self {
        let limits = sink.limits(&queue);
        let mut outbox = QueueOutbox {
            queue,
            limits,
            pending: Vec::with_capacity(entries.len()),
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
            if size > limits.max_entry_bytes || size > limits.max_batch_bytes {
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
            } else {
                outbox.pending.push(Pending {
                    seq,
                    size,
                    key,
                    staged,
                    why: None,
                    failed: false,
                });
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
        let mut attempt = 0u32;
        while !self.pending.is_empty() {
            attempt += 1;
            let retry_next = self.round(attempt).await;
            if retry_next.is_empty() {
                break;
            }
            let delay = retry.backoff(attempt - 1);
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
            let results = self.sink.send(&self.queue, &messages_of(&call)).await;
            self.apply(call, results, attempt, &mut round);
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
            calls.push(call);
        }
        let (sink, queue) = (Arc::clone(&self.sink), self.queue.clone());
        let mut returned = futures::stream::iter(calls)
            .map(|call| {
                let (sink, queue) = (&sink, &queue);
                async move {
                    let results = sink.send(queue, &messages_of(&call)).await;
                    (call, results)
                }
            })
            .buffer_unordered(in_flight);
        while let Some((call, results)) = returned.next().await {
            self.apply(call, results, attempt, round);
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
                    self.undelivered.entry(p.staged.record).or_insert(why);
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

    /// Sorts a call's results: delivered messages are done; retryable refusals go to the next
    /// round and hold their key back; permanent ones give their key up.
    fn apply(
        &mut self,
        call: Vec<Pending>,
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
        for (mut p, result) in call.into_iter().zip(results) {
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
                round.retry_next.push(p);
            } else {
                let why = format!("sending to {} failed: {}", self.queue, e.message);
                if let Some(key) = &p.key {
                    self.give_up(key, p.seq, &why);
                }
                self.undelivered.entry(p.staged.record).or_insert(why);
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
            self.undelivered.entry(p.staged.record).or_insert_with(|| {
                format!("sending to {queue} failed after {attempts} attempts: {why}")
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemorySink;
    use crate::testing::assert_contains;
    use crate::QueueKind;

    fn staged(record: usize, body: &str) -> Staged {
        Staged {
            record,
            message: OutboundMessage {
                queue: Queue::new(QueueKind::custom("memory"), "q"),
                body: body.to_owned(),
                id: format!("{record}:0"),
                trace_header: None,
                attributes: Vec::new(),
            },
        }
    }

    fn outbox(sink: MemorySink, bodies: &[&str]) -> QueueOutbox {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| staged(i, b))
            .collect();
        QueueOutbox::new(
            Queue::new(QueueKind::custom("memory"), "q"),
            entries,
            Arc::new(sink),
        )
    }

    fn round(outbox: &mut QueueOutbox) -> Round {
        Round {
            queued: std::mem::take(&mut outbox.pending).into_iter().peekable(),
            waiting: BTreeSet::new(),
            retry_next: Vec::new(),
        }
    }

    fn records(call: &[Pending]) -> Vec<usize> {
        call.iter().map(|p| p.staged.record).collect()
    }

    #[test]
    fn a_call_stays_within_the_entries_and_bytes_limits() {
        let sink = MemorySink::new().with_limits(SinkLimits {
            max_entries: 3,
            max_entry_bytes: 10,
            max_batch_bytes: 12,
        });
        let mut outbox = outbox(sink, &["aaaa", "bbbb", "cccc", "d", "e", "f", "g"]);
        let mut round = round(&mut outbox);
        assert_eq!(records(&outbox.next_call(&mut round)), [0, 1, 2]);
        assert_eq!(records(&outbox.next_call(&mut round)), [3, 4, 5]);
        assert_eq!(records(&outbox.next_call(&mut round)), [6]);
        assert!(outbox.next_call(&mut round).is_empty());
    }

    #[test]
    fn an_oversized_message_is_undeliverable_and_gives_its_key_up() {
        let sink = MemorySink::new()
            .ordered_by_kwarg("k")
            .with_limits(SinkLimits {
                max_entries: 10,
                max_entry_bytes: 20,
                max_batch_bytes: 100,
            });
        let big = r#"{"k": "a", "pad": "xxxxxxxxxxxxxx"}"#;
        let mut outbox = outbox(
            sink,
            &[r#"{"k": "a"}"#, big, r#"{"k": "a"}"#, r#"{"k": "b"}"#],
        );
        assert_eq!(outbox.undelivered.keys().copied().collect::<Vec<_>>(), [1]);
        let mut round = round(&mut outbox);
        // Before it: sent. After it, with its key: not. Another key: sent.
        assert_eq!(records(&outbox.next_call(&mut round)), [0, 3]);
        assert_contains(&outbox.undelivered[&2], "so as not to overtake");
    }

    #[test]
    fn a_retryable_refusal_holds_its_key_back_and_a_permanent_one_gives_it_up() {
        let sink = MemorySink::new().ordered_by_kwarg("k");
        let bodies = [
            r#"{"k": "a"}"#,
            r#"{"k": "b"}"#,
            r#"{"k": "a"}"#,
            r#"{"k": "b"}"#,
            r#"{"k": "c"}"#,
        ];
        let mut outbox = outbox(sink, &bodies);
        let mut round = round(&mut outbox);
        let call = outbox.next_call(&mut round);
        assert_eq!(records(&call), [0, 1, 2, 3, 4]);
        let results = Ok(vec![
            Err(SendError::retryable("throttled")),
            Err(SendError::permanent("no such queue")),
            Ok(()),
            Ok(()),
            Ok(()),
        ]);
        outbox.apply(call, results, 1, &mut round);
        assert_eq!(records(&round.retry_next), [0]);
        assert!(round.waiting.contains("a"));
        assert_eq!(outbox.given_up["b"].0, 1);
        assert_contains(&outbox.undelivered[&1], "no such queue");
    }

    #[test]
    fn a_whole_call_failure_or_a_wrong_count_of_results_touches_every_message() {
        let mut outbox = outbox(MemorySink::new(), &["{}", "{}"]);
        let mut round = round(&mut outbox);
        let call = outbox.next_call(&mut round);
        let ((), text) = logs_of(|| outbox.apply(call, Ok(vec![Ok(())]), 1, &mut round));
        assert_eq!(outbox.undelivered.len(), 2);
        assert_contains(&outbox.undelivered[&0], "returned 1 results for 2 messages");
        assert_eq!(text.matches("outbound call failed").count(), 1, "{text}");

        let mut outbox = self::outbox(MemorySink::new(), &["{}", "{}"]);
        let mut round = self::round(&mut outbox);
        let call = outbox.next_call(&mut round);
        let ((), text) =
            logs_of(|| outbox.apply(call, Err(SendError::retryable("down")), 1, &mut round));
        assert_eq!(records(&round.retry_next), [0, 1]);
        assert_eq!(text.matches("outbound call failed").count(), 1, "{text}");
        assert_eq!(
            text.matches("outbound message not sent").count(),
            0,
            "{text}"
        );
    }

    #[test]
    fn entries_refused_one_by_one_are_logged_one_by_one_even_when_alike() {
        let mut outbox = outbox(MemorySink::new(), &["{}", "{}"]);
        let mut round = round(&mut outbox);
        let call = outbox.next_call(&mut round);
        let throttled = || Err(SendError::retryable("throttled"));
        let ((), text) =
            logs_of(|| outbox.apply(call, Ok(vec![throttled(), throttled()]), 1, &mut round));
        assert_eq!(
            text.matches("outbound message not sent").count(),
            2,
            "{text}"
        );
        assert_eq!(text.matches("outbound call failed").count(), 0, "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn giving_up_after_the_attempts_names_them() {
        let sink = MemorySink::new();
        sink.fail_next(10, true);
        let (_, undelivered, counts) = outbox(sink.clone(), &["{}"])
            .send(
                RetryPolicy {
                    max_attempts: 3,
                    ..RetryPolicy::default()
                },
                None,
            )
            .await;
        assert_contains(&undelivered[&0], "failed after 3 attempts");
        assert_eq!(sink.calls(), 3);
        // Refused retryably three times; never delivered.
        assert_eq!(
            counts,
            MessageCounts {
                sent: 0,
                retried: 3,
                undeliverable: 1
            }
        );
    }

    /// A sink whose calls take a while (later messages' calls less, so calls return out of
    /// order), counting how many are on their way at once; it refuses (retryably) the first
    /// offer of every message whose body is a multiple of 7.
    struct Slow {
        in_flight: usize,
        keyed: bool,
        state: std::sync::Mutex<SlowState>,
    }

    #[derive(Default)]
    struct SlowState {
        now: usize,
        most: usize,
        offered: BTreeSet<String>,
        delivered: Vec<String>,
        calls: Vec<Vec<usize>>,
    }

    #[async_trait::async_trait]
    impl Sink for Slow {
        async fn send(
            &self,
            _queue: &Queue,
            batch: &[OutboundMessage],
        ) -> Result<Vec<Result<(), SendError>>, SendError> {
            let numbers: Vec<usize> = batch.iter().map(|m| m.body.parse().unwrap()).collect();
            {
                let mut s = self.state.lock().unwrap();
                s.now += 1;
                s.most = s.most.max(s.now);
                s.calls.push(numbers.clone());
            }
            let ms = 200 - numbers[0] as u64;
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            let mut s = self.state.lock().unwrap();
            s.now -= 1;
            let results = batch
                .iter()
                .map(|m| {
                    let first = s.offered.insert(m.body.clone());
                    if first && m.body.parse::<usize>().unwrap() % 7 == 0 {
                        return Err(SendError::retryable("throttled"));
                    }
                    s.delivered.push(m.body.clone());
                    Ok(())
                })
                .collect();
            Ok(results)
        }

        fn calls_in_flight(&self, _queue: &Queue) -> usize {
            self.in_flight
        }

        fn order_key(&self, _message: &OutboundMessage) -> Option<String> {
            self.keyed.then(|| "one key".to_owned())
        }
    }

    /// Flushes 100 messages through a [`Slow`] sink: the most calls it saw at once, and the
    /// calls it was given, in order.
    async fn through_slow(in_flight: usize, keyed: bool) -> (usize, Vec<Vec<usize>>) {
        let sink = Arc::new(Slow {
            in_flight,
            keyed,
            state: Default::default(),
        });
        let staged = (0..100).map(|i| staged(i, &i.to_string())).collect();
        let for_queue = Arc::clone(&sink) as Arc<dyn Sink>;
        let flushed = flush(
            staged,
            move |_| Some(Arc::clone(&for_queue)),
            // Enough attempts for a refusal per round of one key.
            RetryPolicy {
                max_attempts: 100,
                ..RetryPolicy::default()
            },
            None,
        )
        .await;
        assert!(flushed.undelivered.is_empty(), "{:?}", flushed.undelivered);
        // 15 multiples of 7 below 100, each refused once.
        assert_eq!(
            flushed.counts["memory"],
            MessageCounts {
                sent: 100,
                retried: 15,
                undeliverable: 0
            }
        );
        let state = sink.state.lock().unwrap();
        assert_eq!(state.now, 0);
        // Each message delivered once.
        let mut once = state.delivered.clone();
        once.sort_by_key(|b| b.parse::<usize>().unwrap());
        once.dedup();
        assert_eq!(once.len(), state.delivered.len());
        assert_eq!(once, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
        (state.most, state.calls.clone())
    }

    #[tokio::test(start_paused = true)]
    async fn calls_without_order_keys_go_side_by_side_up_to_the_sinks_number() {
        let (most, calls) = through_slow(4, false).await;
        assert_eq!(most, 4);
        // Ten calls of ten, then the refused ones, offered again in staging order although
        // their calls returned in another.
        assert_eq!(calls.len(), 12);
        let mut retried = calls[10..].to_vec();
        retried.sort();
        assert_eq!(
            retried,
            [
                vec![0, 7, 14, 21, 28, 35, 42, 49, 56, 63],
                vec![70, 77, 84, 91, 98]
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn calls_with_order_keys_go_one_after_another() {
        let (most, _) = through_slow(4, true).await;
        assert_eq!(most, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_sends_one_call_at_a_time_unless_it_says_otherwise() {
        let queue = Queue::new(QueueKind::custom("memory"), "q");
        assert_eq!(MemorySink::new().calls_in_flight(&queue), 1);
        let (most, _) = through_slow(1, false).await;
        assert_eq!(most, 1);
        // 0 counts as 1.
        let (most, _) = through_slow(0, false).await;
        assert_eq!(most, 1);
    }

    /// A sink whose every call fails as a whole.
    struct Down;

    #[async_trait::async_trait]
    impl Sink for Down {
        async fn send(
            &self,
            _queue: &Queue,
            _batch: &[OutboundMessage],
        ) -> Result<Vec<Result<(), SendError>>, SendError> {
            Err(SendError::permanent("no AWS credentials were found"))
        }
    }

    #[derive(Clone, Default)]
    struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    std::thread_local! {
        /// Where this thread's logs go while a test captures them.
        static CAPTURED: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
    }

    /// Writes to this thread's capture, if any, else nowhere.
    struct ThreadWriter;

    impl std::io::Write for ThreadWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            CAPTURED.with(|c| match c.borrow_mut().as_mut() {
                Some(logs) => logs.write(buf),
                None => Ok(buf.len()),
            })
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Captures this thread's logs while it lives.
    struct Capture;

    impl Drop for Capture {
        fn drop(&mut self) {
            CAPTURED.with(|c| *c.borrow_mut() = None);
        }
    }

    /// Keeps what this thread logs until the guard drops. One global subscriber serves every
    /// test (a subscriber per test, set as the thread's default, loses events now and then:
    /// tracing caches a callsite's interest globally, and a test on another thread without a
    /// subscriber can cache it as "never").
    fn capture() -> (Capture, Logs) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThreadWriter)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in these tests");
        });
        let logs = Logs::default();
        CAPTURED.with(|c| *c.borrow_mut() = Some(logs.clone()));
        (Capture, logs)
    }

    /// Runs `f`, returning what it logged.
    fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
        let (guard, logs) = capture();
        let out = f();
        drop(guard);
        (out, logs.text())
    }

    #[tokio::test]
    async fn a_failed_call_is_logged_once_not_once_per_message() {
        let (_guard, logs) = capture();
        let entries = (0..5).map(|i| staged(i, "{}")).collect();
        let (kind, undelivered, counts) = QueueOutbox::new(
            Queue::new(QueueKind::custom("down"), "q"),
            entries,
            Arc::new(Down),
        )
        .send(RetryPolicy::default(), None)
        .await;
        assert_eq!(undelivered.len(), 5);
        assert_eq!(kind, "down");
        assert_eq!(
            counts,
            MessageCounts {
                sent: 0,
                retried: 0,
                undeliverable: 5
            }
        );
        let text = logs.text();
        assert_eq!(text.matches("outbound call failed").count(), 1, "{text}");
        assert_contains(&text, "messages=5");
        assert_eq!(
            text.matches("outbound message not sent").count(),
            0,
            "{text}"
        );
    }
}
