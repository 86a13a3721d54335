//! The outbox, against a sink that fails generated subsets of entries (retryably or not, per
//! entry and per call, over several attempts): no call breaks the sink's limits, a message is
//! delivered at most once, a record succeeds exactly when all its messages were delivered, and
//! messages sharing an order key are delivered in order and never after one that failed;
//! with the sink's calls side by side (up to 4) where no message has a key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lpipe::testing::lambda_context;
use lpipe::{
    async_trait,
    sink::{OutboundMessage, RetryPolicy, SendError, Sink, SinkLimits},
    Action, BoxError, Payload, Pipeline, Queue, QueueKind,
};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::{block_on, config};

/// What the sink answers when offered a message (or a whole call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Accept,
    Retryable,
    Permanent,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => Just(Answer::Accept),
        2 => Just(Answer::Retryable),
        1 => Just(Answer::Permanent),
    ]
}

/// One outbound message a record forwards.
#[derive(Clone, Debug)]
struct Message {
    /// Its order key (`None`: no order to keep).
    key: Option<u8>,
    /// Padding, to vary its size (some are over the sink's limits).
    pad: usize,
    /// The sink's answers to its first offers (accepted after these).
    answers: Vec<Answer>,
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop::option::weighted(0.8, 0u8..3),
        prop_oneof![8 => 0usize..40, 1 => 150usize..400],
        prop::collection::vec(answer(), 0..4),
    )
        .prop_map(|(key, pad, answers)| Message { key, pad, answers })
}

#[derive(Clone, Debug)]
struct Case {
    /// Per record, the messages it forwards.
    records: Vec<Vec<Message>>,
    limits: SinkLimits,
    max_attempts: u32,
    /// Whole calls that fail (by call number; later calls are answered per entry).
    failed_calls: Vec<Option<bool>>,
    /// The sink's [`Sink::calls_in_flight`] (side by side only for messages without keys).
    in_flight: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::collection::vec(message(), 0..4), 0..40),
        1usize..=10,
        60usize..=200,
        0usize..=600,
        1u32..=4,
        prop::collection::vec(prop::option::weighted(0.15, any::<bool>()), 0..10),
        (1usize..=4, prop::bool::weighted(0.3)),
    )
        .prop_map(
            |(
                mut records,
                max_entries,
                max_entry_bytes,
                extra,
                max_attempts,
                failed_calls,
                (in_flight, no_keys),
            )| {
                // Some cases without keys at all, whose calls may go side by side.
                if no_keys {
                    records.iter_mut().flatten().for_each(|m| m.key = None);
                }
                Case {
                    records,
                    limits: SinkLimits {
                        max_entries,
                        max_entry_bytes,
                        max_batch_bytes: max_entry_bytes + extra,
                    },
                    max_attempts,
                    failed_calls,
                    in_flight,
                }
            },
        )
}

/// The body of a generated message: equal for equal key and padding, so that equal bodies
/// occur (they must never be collapsed).
fn body(m: &Message) -> Value {
    let mut body = json!({"pad": "x".repeat(m.pad)});
    if let Some(k) = m.key {
        body["k"] = json!(format!("k{k}"));
    }
    body
}

#[derive(Deserialize)]
struct Forward {
    bodies: Vec<Value>,
}

async fn forward(args: Forward) -> Result<Vec<Payload>, BoxError> {
    args.bodies
        .iter()
        .map(|b| Ok(Payload::to_queue(scripted_queue(), b)?))
        .collect()
}

fn scripted_queue() -> Queue {
    Queue::new(QueueKind::custom("scripted"), "out")
}

/// A message's place: its record and its position among that record's messages.
type Place = (usize, usize);

/// An entry of a call as the sink saw it.
#[derive(Clone, Debug)]
struct Offered {
    place: Place,
    size: usize,
    answer: Answer,
}

#[derive(Default)]
struct Log {
    calls: Vec<Vec<Offered>>,
    offers: HashMap<Place, usize>,
}

/// A sink that answers from the generated script and logs every call.
#[derive(Clone)]
struct Scripted {
    limits: SinkLimits,
    answers: Arc<HashMap<Place, Vec<Answer>>>,
    failed_calls: Arc<Vec<Option<bool>>>,
    in_flight: usize,
    log: Arc<Mutex<Log>>,
}

/// `"<request>/<record>:<n>"` → (record, n).
fn place_of(id: &str) -> Place {
    let tail = id.rsplit('/').next().expect("an id");
    let (record, n) = tail.split_once(':').expect("record:n");
    (
        record.parse().expect("a record index"),
        n.parse().expect("a position"),
    )
}

#[async_trait]
impl Sink for Scripted {
    async fn send(
        &self,
        _queue: &Queue,
        batch: &[OutboundMessage],
    ) -> Result<Vec<Result<(), SendError>>, SendError> {
        // Calls on their way at once interleave here (their number is the order they reach it).
        tokio::task::yield_now().await;
        let mut log = self.log.lock().unwrap();
        let call = log.calls.len();
        let whole = self.failed_calls.get(call).copied().flatten();
        let mut offered = Vec::new();
        let mut results = Vec::new();
        for m in batch {
            let place = place_of(&m.id);
            let n = log.offers.entry(place).or_default();
            let scripted = self.answers[&place]
                .get(*n)
                .copied()
                .unwrap_or(Answer::Accept);
            *n += 1;
            let answer = match whole {
                Some(true) => Answer::Retryable,
                Some(false) => Answer::Permanent,
                None => scripted,
            };
            offered.push(Offered {
                place,
                size: self.entry_size(m),
                answer,
            });
            results.push(match answer {
                Answer::Accept => Ok(()),
                Answer::Retryable => Err(SendError::retryable("scripted")),
                Answer::Permanent => Err(SendError::permanent("scripted")),
            });
        }
        log.calls.push(offered);
        match whole {
            Some(retryable) => Err(SendError {
                retryable,
                message: "scripted call failure".into(),
            }),
            None => Ok(results),
        }
    }

    fn limits(&self, _queue: &Queue) -> SinkLimits {
        self.limits
    }

    fn order_key(&self, message: &OutboundMessage) -> Option<String> {
        message.kwarg_value("k")
    }

    fn calls_in_flight(&self, _queue: &Queue) -> usize {
        self.in_flight
    }
}

fn run(case: &Case) -> (Value, Log) {
    let answers: HashMap<Place, Vec<Answer>> = case
        .records
        .iter()
        .enumerate()
        .flat_map(|(r, ms)| {
            ms.iter()
                .enumerate()
                .map(move |(n, m)| ((r, n), m.answers.clone()))
        })
        .collect();
    let sink = Scripted {
        limits: case.limits,
        answers: Arc::new(answers),
        failed_calls: Arc::new(case.failed_calls.clone()),
        in_flight: case.in_flight,
        log: Arc::default(),
    };
    let pipeline = Pipeline::builder()
        .detect_source()
        .path("FORWARD", [Action::new().function(forward)])
        .sink(QueueKind::custom("scripted"), sink.clone())
        .retry_policy(RetryPolicy {
            max_attempts: case.max_attempts,
            backoff: lpipe::sink::Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(100),
            ),
        })
        .registry(lpipe::registry())
        .build()
        .expect("a valid pipeline");
    let messages: Vec<Value> = case
        .records
        .iter()
        .map(|ms| {
            json!({"path": "FORWARD", "kwargs": {"bodies": ms.iter().map(body).collect::<Vec<_>>()}})
        })
        .collect();
    let event = serde_json::to_string(&messages).unwrap();
    let response = match block_on(pipeline.handle(&event, lambda_context(0))) {
        Ok(response) => response["stats"].clone(),
        // Failed records fail a direct invocation; the stats are in the message.
        Err(e) => {
            let stats = e.error_message.rsplit_once("stats: ").expect("stats").1;
            let mut stats: Value = serde_json::from_str(stats).expect("stats JSON");
            // Which records failed: "record 3 (…)".
            stats["failed_records"] = json!((0..case.records.len())
                .filter(|i| e.error_message.contains(&format!("record {i} (")))
                .collect::<Vec<_>>());
            stats
        }
    };
    let log = std::mem::take(&mut *sink.log.lock().unwrap());
    (response, log)
}

fn check(case: &Case, stats: &Value, log: &Log) -> Result<(), TestCaseError> {
    let limits = case.limits;
    // Where each message was delivered: (call, position in the call).
    let mut delivered: HashMap<Place, (usize, usize)> = HashMap::new();
    // The call in which each message was first offered, and whether it failed there.
    let mut first_offer: HashMap<Place, (usize, bool)> = HashMap::new();
    for (c, call) in log.calls.iter().enumerate() {
        prop_assert!(!call.is_empty(), "call {} is empty", c);
        prop_assert!(
            call.len() <= limits.max_entries,
            "call {} has {} entries",
            c,
            call.len()
        );
        let bytes: usize = call.iter().map(|o| o.size).sum();
        prop_assert!(
            bytes <= limits.max_batch_bytes,
            "call {} has {} bytes",
            c,
            bytes
        );
        for (p, o) in call.iter().enumerate() {
            prop_assert!(
                o.size <= limits.max_entry_bytes,
                "an entry of {} bytes",
                o.size
            );
            let (r, n) = o.place;
            prop_assert_eq!(o.size, body(&case.records[r][n]).to_string().len());
            first_offer
                .entry(o.place)
                .or_insert((c, o.answer != Answer::Accept));
            if o.answer == Answer::Accept {
                let again = delivered.insert(o.place, (c, p));
                prop_assert!(again.is_none(), "{:?} delivered twice", o.place);
            }
        }
    }

    // A record succeeds exactly when every one of its messages was delivered.
    let failed: Vec<usize> = stats
        .get("failed_records")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_u64().unwrap() as usize).collect())
        .unwrap_or_default();
    for (r, ms) in case.records.iter().enumerate() {
        let all_delivered = (0..ms.len()).all(|n| delivered.contains_key(&(r, n)));
        prop_assert_eq!(
            !failed.contains(&r),
            all_delivered,
            "record {}: {:?}",
            r,
            (0..ms.len())
                .map(|n| delivered.get(&(r, n)))
                .collect::<Vec<_>>()
        );
    }
    prop_assert_eq!(stats["failed"].as_u64().unwrap() as usize, failed.len());
    prop_assert_eq!(
        stats["successes"].as_u64().unwrap() as usize,
        case.records.len() - failed.len()
    );

    // No needless failure: a message is left undelivered only if it is over the limits, was
    // refused for good, ran out of attempts, or an earlier message of its key had trouble.
    let mut answers: HashMap<Place, Vec<Answer>> = HashMap::new();
    for call in &log.calls {
        for o in call {
            answers.entry(o.place).or_default().push(o.answer);
        }
    }
    let oversized = |m: &Message| {
        let size = body(m).to_string().len();
        size > limits.max_entry_bytes || size > limits.max_batch_bytes
    };
    let staged: Vec<(Place, &Message)> = case
        .records
        .iter()
        .enumerate()
        .flat_map(|(r, ms)| ms.iter().enumerate().map(move |(n, m)| ((r, n), m)))
        .collect();
    let had_trouble = |place: &Place, m: &Message| {
        oversized(m)
            || !delivered.contains_key(place)
            || answers
                .get(place)
                .is_some_and(|a| a.iter().any(|&x| x != Answer::Accept))
    };
    for (i, (place, m)) in staged.iter().enumerate() {
        if delivered.contains_key(place) {
            continue;
        }
        let trouble_before = m.key.is_some()
            && staged[..i]
                .iter()
                .any(|(p, e)| e.key == m.key && had_trouble(p, e));
        let offers = answers.get(place).map_or(&[][..], Vec::as_slice);
        let reason = oversized(m)
            || offers.contains(&Answer::Permanent)
            || offers.len() == case.max_attempts as usize;
        prop_assert!(
            trouble_before || reason,
            "{:?} was not delivered for no reason: offered {:?}",
            place,
            offers
        );
    }

    // Order per key: for a before b (staging order) with the same key, b is delivered only
    // after a, or in the call where a was first offered and refused (the documented gap: a
    // service may accept entries that follow a refused one in the same call).
    for (i, (a, ma)) in staged.iter().enumerate() {
        let Some(key) = ma.key else { continue };
        for (b, mb) in &staged[i + 1..] {
            if mb.key != Some(key) {
                continue;
            }
            let Some(&(cb, pb)) = delivered.get(b) else {
                continue;
            };
            let in_order = delivered
                .get(a)
                .is_some_and(|&(ca, pa)| (ca, pa) < (cb, pb));
            let in_the_gap = first_offer.get(a) == Some(&(cb, true));
            prop_assert!(
                in_order || in_the_gap,
                "{:?} (key k{}) delivered at {:?}, but {:?} before it was delivered at {:?}, first offered at {:?}",
                b,
                key,
                (cb, pb),
                a,
                delivered.get(a),
                first_offer.get(a)
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn the_outbox_keeps_limits_delivery_and_order(case in case()) {
        let (stats, log) = run(&case);
        check(&case, &stats, &log)?;
    }
}

/// A hand-written case: one message per record, roomy limits, no failed calls; returns the
/// records that failed, after checking the properties.
fn failed_records(messages: Vec<(u8, usize, Vec<Answer>)>, max_attempts: u32) -> Value {
    let case = Case {
        records: messages
            .into_iter()
            .map(|(key, pad, answers)| {
                vec![Message {
                    key: Some(key),
                    pad,
                    answers,
                }]
            })
            .collect(),
        limits: SinkLimits {
            max_entries: 10,
            max_entry_bytes: 100,
            max_batch_bytes: 1000,
        },
        max_attempts,
        failed_calls: vec![],
        in_flight: 1,
    };
    let (stats, log) = run(&case);
    check(&case, &stats, &log).unwrap();
    stats["failed_records"].clone()
}

/// A record whose only message is over the sink's limit fails, and a later message with its
/// key is not sent ahead of it.
#[test]
fn regression_an_oversized_message_holds_back_its_key() {
    let failed = failed_records(vec![(0, 300, vec![]), (0, 1, vec![]), (1, 1, vec![])], 1);
    assert_eq!(failed, json!([0, 1]));
}

/// A message refused for good does not fail the earlier messages of its key: here the first
/// is refused retryably and the second for good in the same call; the first is still retried
/// and delivered.
#[test]
fn regression_a_permanent_failure_spares_earlier_messages_of_its_key() {
    let failed = failed_records(
        vec![
            (0, 1, vec![Answer::Retryable]),
            (0, 1, vec![Answer::Permanent]),
        ],
        2,
    );
    assert_eq!(failed, json!([1]));
}
