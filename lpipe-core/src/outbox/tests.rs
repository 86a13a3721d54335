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
            kept_kwargs: Vec::new(),
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
        None,
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
    call.iter().map(|p| p.record).collect()
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
    let messages = outbox.take_messages(&call);
    assert_eq!(records(&call), [0, 1, 2, 3, 4]);
    let results = Ok(vec![
        Err(SendError::retryable("throttled")),
        Err(SendError::permanent("no such queue")),
        Ok(()),
        Ok(()),
        Ok(()),
    ]);
    outbox.apply(call, messages, results, 1, &mut round);
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
    let messages = outbox.take_messages(&call);
    let ((), text) = logs_of(|| outbox.apply(call, messages, Ok(vec![Ok(())]), 1, &mut round));
    assert_eq!(outbox.undelivered.len(), 2);
    assert_contains(&outbox.undelivered[&0], "returned 1 results for 2 messages");
    assert_eq!(text.matches("outbound call failed").count(), 1, "{text}");

    let mut outbox = self::outbox(MemorySink::new(), &["{}", "{}"]);
    let mut round = self::round(&mut outbox);
    let call = outbox.next_call(&mut round);
    let messages = outbox.take_messages(&call);
    let ((), text) = logs_of(|| {
        outbox.apply(
            call,
            messages,
            Err(SendError::retryable("down")),
            1,
            &mut round,
        )
    });
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
    let messages = outbox.take_messages(&call);
    let throttled = || Err(SendError::retryable("throttled"));
    let ((), text) = logs_of(|| {
        outbox.apply(
            call,
            messages,
            Ok(vec![throttled(), throttled()]),
            1,
            &mut round,
        )
    });
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
        (
            RetryPolicy {
                max_attempts: 100,
                ..RetryPolicy::default()
            },
            None,
        ),
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
        None,
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
