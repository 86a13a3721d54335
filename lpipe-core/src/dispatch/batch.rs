//! Batch scheduling: the records of a batch run in lanes (one per ordering key when records
//! run side by side), in order within a lane; a record runs unless its ordering or the
//! invocation's deadline says not; what it produced is collected in record order.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::graph::{outbound_id, Exec, Produced, PLAUSIBLE_DEADLINE_MS};
use crate::context::{Invocation, RecordInfo, ShortText};
use crate::error::{ErrorKind, Outcome, RecordError};
use crate::idempotency::Claimed;
use crate::kwargs::Kwargs;
use crate::outbox::Staged;
use crate::path::PathName;
use crate::pipeline::Pipeline;
use crate::sink::OutboundMessage;
use crate::source::{EventSource, Record, RecordOrder, RecordResult};

/// What the records of one batch share while they run.
pub(super) struct BatchRun<'b> {
    pub(super) source: &'b dyn EventSource,
    pub(super) invocation: &'b Arc<Invocation>,
    pub(super) ordering: RecordOrder,
    pub(super) deadline: Option<Instant>,
    /// For [`RecordOrder::StopOnFailure`]: why records no longer start.
    stopped: Mutex<Option<String>>,
}

impl<'b> BatchRun<'b> {
    pub(super) fn new(source: &'b dyn EventSource, invocation: &'b Arc<Invocation>) -> Self {
        let deadline = deadline_of(&invocation.lambda);
        tracing::debug!(
            deadline_ms = invocation.lambda.deadline,
            remaining_ms = ?deadline.map(|d| d.saturating_duration_since(Instant::now()).as_millis()),
            "invocation deadline"
        );
        BatchRun {
            source,
            invocation,
            ordering: source.ordering(),
            deadline,
            stopped: Mutex::new(None),
        }
    }

    /// A record failed: by the source's ordering, later records of its key (or of the batch)
    /// will not run.
    fn note_failure(
        &self,
        id: Option<&str>,
        key: Option<String>,
        failed_keys: &mut HashSet<String>,
    ) {
        match self.ordering {
            RecordOrder::StopOnFailure => {
                let mut stopped = self.stopped.lock().expect("stop lock");
                if stopped.is_none() {
                    *stopped = Some(format!("record {} failed", id.unwrap_or("?")));
                }
            }
            RecordOrder::PerKey => {
                if let Some(k) = key {
                    failed_keys.insert(k);
                }
            }
            RecordOrder::Unordered => {}
        }
    }
}

fn deadline_of(ctx: &lambda_runtime::Context) -> Option<Instant> {
    if ctx.deadline < PLAUSIBLE_DEADLINE_MS {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(ctx.deadline.saturating_sub(now_ms)))
}

/// One record, run (or not).
pub(super) struct Done<'e> {
    index: usize,
    result: RecordResult<'e>,
    /// Kept only for reporting what did not succeed.
    kwargs: Option<Kwargs>,
    staged: Vec<Staged>,
    /// The path it entered by, when known.
    path: Option<PathName>,
    /// A dead letter of it was staged.
    dead_lettered: bool,
    /// The idempotency key it holds.
    claim: Option<Claimed>,
    /// It was a duplicate, not run.
    duplicate: bool,
    /// Its ordering key, on a source that keeps an order.
    key: Option<Cow<'e, str>>,
    /// The earlier record of the batch whose key it shares (see `Exec::twin_of`).
    twin_of: Option<usize>,
}

/// Where the records of a lane go once run.
pub(super) trait Collect<'e>: Send {
    fn collect(&mut self, done: Done<'e>);
}

/// A batch's records, run, in record order.
pub(super) struct Collected<'e> {
    /// Each record's result (empty while the records run: see [`Collecting`]).
    pub(super) results: Vec<RecordResult<'e>>,
    /// The kwargs of the records that did not succeed (for reports), by record index.
    pub(super) kwargs_of: Vec<(usize, Kwargs)>,
    pub(super) staged: Vec<Staged>,
    /// For metrics: the path each record entered by, and the records dead-lettered.
    pub(super) paths: Vec<(usize, PathName)>,
    pub(super) dead_lettered: Vec<usize>,
    /// For metrics: what the outbox did, per queue kind.
    pub(super) message_counts: std::collections::BTreeMap<String, crate::outbox::MessageCounts>,
    /// Records not run because their key was completed.
    pub(super) duplicates: usize,
    /// The ordering keys of the records that have one, in record order, on a source that
    /// keeps an order (delivery holds back the rest of a key after a failure).
    pub(super) ordering_keys: Vec<(usize, Cow<'e, str>)>,
    /// Records that wait for an earlier record of the batch with their idempotency key:
    /// (the record, the earlier one).
    pub(super) twins: Vec<(usize, usize)>,
}

/// A record's place in its batch: the record until it runs, then what became of it. Results
/// are written over the records they came from (a result takes 48 bytes of a record's 128,
/// and the idempotency key it holds 40 more), so a batch holds one list of records, not a
/// second one of results, or of keys, beside it.
enum Slot<'e> {
    /// Not run yet.
    Waiting(Record<'e>),
    /// Taken to run.
    Running,
    /// Run (or not run, and why), and the idempotency key it holds until it is settled.
    Done(RecordResult<'e>, Option<Claimed>),
}

impl<'e> Slot<'e> {
    /// The record, to run it; `None` if it was taken before.
    fn take(&mut self) -> Option<Record<'e>> {
        match std::mem::replace(self, Slot::Running) {
            Slot::Waiting(record) => Some(record),
            other => {
                *self = other;
                None
            }
        }
    }

    /// What became of the record. Every record is collected once it has run, so the two
    /// other cases are a bug of the scheduler: the record is then failed (kept for retry), not
    /// lost.
    fn into_result(self) -> RecordResult<'e> {
        match self {
            Slot::Done(result, _) => result,
            Slot::Waiting(record) => lost(record.id),
            Slot::Running => lost(None),
        }
    }
}

/// The result of a record the scheduler lost track of (see [`Slot::into_result`]).
#[cold]
fn lost(id: Option<Cow<'_, str>>) -> RecordResult<'_> {
    debug_assert!(false, "a record of the batch was never collected");
    RecordResult {
        id,
        outcome: Outcome::Failed,
        error: Some(RecordError::new(
            ErrorKind::NotRun,
            "not run: lpipe lost track of this record (a bug; it is kept for retry)",
        )),
        output: None,
    }
}

/// What a batch's records produced: their results and keys in their slots, the rest in
/// [`Collected`] (whose results are filled from the slots once the records' messages are
/// delivered and their keys settled).
pub(super) struct Collecting<'e> {
    slots: Vec<Slot<'e>>,
    pub(super) collected: Collected<'e>,
}

impl<'e> Collecting<'e> {
    /// The result of the record at this index, once it has run.
    pub(super) fn result_mut(&mut self, index: usize) -> Option<&mut RecordResult<'e>> {
        match self.slots.get_mut(index) {
            Some(Slot::Done(result, _)) => Some(result),
            _ => None,
        }
    }

    /// The id of the record at this index, once it has run.
    pub(super) fn record_id(&self, index: usize) -> Option<&str> {
        match self.slots.get(index) {
            Some(Slot::Done(result, _)) => result.id.as_deref(),
            _ => None,
        }
    }

    /// The records that hold an idempotency key: result and key, in record order.
    pub(super) fn claims(&self) -> impl Iterator<Item = (&RecordResult<'e>, &Claimed)> {
        self.slots.iter().filter_map(|slot| match slot {
            Slot::Done(result, Some(claim)) => Some((result, claim)),
            _ => None,
        })
    }

    /// What the batch produced, its results in record order (the keys, settled, let go).
    pub(super) fn finish(self) -> Collected<'e> {
        let Collecting {
            slots,
            mut collected,
        } = self;
        // In place: a result is smaller than a slot, and the list keeps its allocation.
        collected.results = slots.into_iter().map(Slot::into_result).collect();
        collected
    }
}

impl<'e> Collect<'e> for Collecting<'e> {
    #[inline]
    fn collect(&mut self, done: Done<'e>) {
        let Done {
            index,
            result,
            kwargs,
            staged,
            path,
            dead_lettered,
            claim,
            duplicate,
            key,
            twin_of,
        } = done;
        match self.slots.get_mut(index) {
            Some(slot) => *slot = Slot::Done(result, claim),
            None => debug_assert!(false, "record {index} is not of this batch"),
        }
        let collected = &mut self.collected;
        if dead_lettered {
            collected.dead_lettered.push(index);
        }
        if let Some(kwargs) = kwargs {
            collected.kwargs_of.push((index, kwargs));
        }
        collected.staged.extend(staged);
        if let Some(path) = path {
            collected.paths.push((index, path));
        }
        collected.duplicates += usize::from(duplicate);
        if let Some(key) = key {
            collected.ordering_keys.push((index, key));
        }
        if let Some(holder) = twin_of {
            collected.twins.push((index, holder));
        }
    }
}

impl<'e> Collect<'e> for Vec<Done<'e>> {
    #[inline]
    fn collect(&mut self, done: Done<'e>) {
        self.push(done);
    }
}

/// Splits a batch into lanes that may run concurrently; the records of a lane run one after
/// another. Unordered records get a lane each, and keyed records share their key's lane (a
/// record without a key gets its own).
fn lanes<'e>(
    numbered: impl Iterator<Item = (usize, Record<'e>)>,
    ordering: RecordOrder,
) -> Vec<Vec<(usize, Record<'e>)>> {
    match ordering {
        RecordOrder::Unordered => numbered.map(|r| vec![r]).collect(),
        RecordOrder::PerKey | RecordOrder::StopOnFailure => {
            let mut lanes: Vec<Vec<(usize, Record<'_>)>> = Vec::new();
            let mut lane_of: HashMap<String, usize> = HashMap::new();
            for (index, record) in numbered {
                match record.ordering_key.as_deref() {
                    Some(key) => match lane_of.get(key) {
                        Some(&lane) => lanes[lane].push((index, record)),
                        None => {
                            lane_of.insert(key.to_owned(), lanes.len());
                            lanes.push(vec![(index, record)]);
                        }
                    },
                    None => lanes.push(vec![(index, record)]),
                }
            }
            lanes
        }
    }
}

/// What a lane keeps while its records run: the ordering keys that failed in it, and where
/// its records go once run.
struct Lane<'o, C> {
    failed_keys: HashSet<String>,
    out: &'o mut C,
}

/// What running (or not running) one record produced.
struct Ran<'e> {
    id: Option<Cow<'e, str>>,
    key: Option<Cow<'e, str>>,
    result: Result<Produced, RecordError>,
    kwargs: Option<Kwargs>,
    staged: Vec<Staged>,
    path: Option<PathName>,
    dead_lettered: bool,
    claim: Option<Claimed>,
    duplicate: bool,
    twin_of: Option<usize>,
}

impl<'e> Ran<'e> {
    fn not_run(record: Record<'e>, why: String) -> Ran<'e> {
        Ran {
            id: record.id,
            key: record.ordering_key,
            result: Err(RecordError::new(ErrorKind::NotRun, why)),
            kwargs: None,
            staged: Vec::new(),
            path: None,
            dead_lettered: false,
            claim: None,
            duplicate: false,
            twin_of: None,
        }
    }
}

impl Pipeline {
    /// Runs every record of the batch (side by side, up to the pipeline's concurrency);
    /// returns what they produced, in record order.
    pub(super) async fn run_records<'e>(
        &self,
        records: Vec<Record<'e>>,
        batch: &BatchRun<'_>,
    ) -> Collecting<'e> {
        let collected = Collected {
            results: Vec::new(),
            kwargs_of: Vec::new(),
            staged: Vec::new(),
            paths: Vec::new(),
            dead_lettered: Vec::new(),
            message_counts: Default::default(),
            duplicates: 0,
            ordering_keys: Vec::new(),
            twins: Vec::new(),
        };
        // In place: a slot is the size of a record.
        let slots: Vec<Slot<'e>> = records.into_iter().map(Slot::Waiting).collect();
        let mut collecting = Collecting { slots, collected };
        let concurrency = self.inner.concurrency;
        if concurrency <= 1 || collecting.slots.len() <= 1 {
            let mut lane = Lane {
                failed_keys: HashSet::new(),
                out: &mut collecting,
            };
            for index in 0..lane.out.slots.len() {
                if let Some(record) = lane.out.slots[index].take() {
                    self.run_one(index, record, batch, &mut lane).await;
                }
            }
            return collecting;
        }
        // Up to `concurrency` lanes at once. A loop over named async fns rather than stream
        // combinators with closures: with those, rustc cannot prove the future `Send` for every
        // lifetime of the records, and `handle` could not be spawned.
        use futures::StreamExt;
        let taken = collecting.slots.iter_mut().map(Slot::take).enumerate();
        let numbered = taken.filter_map(|(index, record)| Some((index, record?)));
        let mut waiting = lanes(numbered, batch.ordering).into_iter();
        let mut running = futures::stream::FuturesUnordered::new();
        for lane in waiting.by_ref().take(concurrency) {
            running.push(self.run_lane_collected(lane, batch));
        }
        let mut done: Vec<Done<'e>> = Vec::new();
        while let Some(lane_done) = running.next().await {
            done.extend(lane_done);
            if let Some(lane) = waiting.next() {
                running.push(self.run_lane_collected(lane, batch));
            }
        }
        done.sort_unstable_by_key(|d| d.index);
        for d in done {
            collecting.collect(d);
        }
        collecting
    }

    /// Runs the records of one lane in order; returns what they produced.
    async fn run_lane_collected<'e>(
        &self,
        lane: Vec<(usize, Record<'e>)>,
        batch: &BatchRun<'_>,
    ) -> Vec<Done<'e>> {
        let mut done = Vec::with_capacity(lane.len());
        self.run_lane(lane.into_iter(), batch, &mut done).await;
        done
    }

    /// Runs the records of one lane in order.
    async fn run_lane<'e>(
        &self,
        records: impl Iterator<Item = (usize, Record<'e>)> + Send,
        batch: &BatchRun<'_>,
        out: &mut impl Collect<'e>,
    ) {
        let mut lane = Lane {
            failed_keys: HashSet::new(),
            out,
        };
        for (index, record) in records {
            self.run_one(index, record, batch, &mut lane).await;
        }
    }

    /// Runs one record, unless its ordering or the deadline says not, and collects it.
    async fn run_one<'e>(
        &self,
        index: usize,
        record: Record<'e>,
        batch: &BatchRun<'_>,
        lane: &mut Lane<'_, impl Collect<'e>>,
    ) {
        let ran = match self.why_not_run(&record, batch, &lane.failed_keys) {
            Some(why) => Ran::not_run(record, why),
            None => self.execute(index, record, batch).await,
        };
        let (outcome, error, output) = match ran.result {
            Ok(output) => (Outcome::Success, None, output),
            Err(e) => (e.outcome(), Some(e), None),
        };
        let key = match batch.ordering {
            RecordOrder::Unordered => None,
            RecordOrder::PerKey | RecordOrder::StopOnFailure => ran.key,
        };
        if outcome == Outcome::Failed {
            let failed = key.as_deref().map(str::to_owned);
            batch.note_failure(ran.id.as_deref(), failed, &mut lane.failed_keys);
        }
        lane.out.collect(Done {
            index,
            result: RecordResult {
                id: ran.id,
                outcome,
                error,
                output,
            },
            kwargs: ran.kwargs.filter(|_| outcome != Outcome::Success),
            staged: ran.staged,
            path: ran.path,
            dead_lettered: ran.dead_lettered,
            claim: ran.claim,
            duplicate: ran.duplicate,
            key,
            twin_of: ran.twin_of,
        });
    }

    /// Why a record is not run: an earlier failure its ordering waits on, or a deadline too
    /// close.
    fn why_not_run(
        &self,
        record: &Record<'_>,
        batch: &BatchRun<'_>,
        failed_keys: &HashSet<String>,
    ) -> Option<String> {
        match (batch.ordering, record.ordering_key.as_deref()) {
            (RecordOrder::StopOnFailure, _) => {
                let stopped = batch.stopped.lock().expect("stop lock").clone();
                if let Some(why) = stopped {
                    return Some(format!("not run: {why}"));
                }
            }
            (RecordOrder::PerKey, Some(k)) if failed_keys.contains(k) => {
                return Some(format!(
                    "not run: an earlier record of ordering key {k} failed"
                ));
            }
            _ => {}
        }
        let late = batch
            .deadline
            .is_some_and(|d| Instant::now() + self.inner.deadline_margin >= d);
        late.then(|| "not run: the invocation's deadline is too close".to_owned())
    }

    /// Runs a record through the graph; stages its outbound messages if it succeeded, and its
    /// dead letter if it was dropped. The record is consumed: its body is freed as soon as it
    /// has run.
    async fn execute<'e>(&self, index: usize, record: Record<'e>, batch: &BatchRun<'_>) -> Ran<'e> {
        let Record {
            id,
            ordering_key,
            body,
            path: source_path,
            meta,
        } = record;
        let source_path = source_path.as_deref();
        let trace_header = meta
            .trace_header()
            .map(Arc::from)
            .or_else(|| batch.invocation.trace_header.clone());
        // The record's context owns copies (a function may keep it); the result keeps the
        // id as the event has it.
        let info = Arc::new(RecordInfo {
            index,
            id: id.as_deref().map(ShortText::new),
            source: batch.source.name(),
            ordering_key: ordering_key.as_deref().map(ShortText::new),
            meta,
        });
        let mut outbox = Vec::new();
        let mut exec = Exec {
            invocation: batch.invocation,
            record: info,
            outbox: &mut outbox,
            trace_header,
            entry_path: None,
            claim: None,
            duplicate: false,
            twin_of: None,
        };
        let scope = crate::log_scope::Scope {
            invocation: batch.invocation.clone(),
            record: Some(exec.record.clone()),
            path: None,
        };
        let (result, kwargs, body) = match body.into_text() {
            Ok(body) => {
                // Built in place: a future held in a local as well would take its room twice.
                let (result, kwargs) = crate::log_scope::with_scope(
                    scope,
                    self.run_record(&body, source_path, &mut exec),
                )
                .await;
                (result, kwargs, Some(body))
            }
            Err(e) => (Err(e), None, None),
        };
        let trace_header = exec.trace_header;
        let path = exec.entry_path;
        let (claim, duplicate, twin_of) = (exec.claim, exec.duplicate, exec.twin_of);
        drop(exec.record);
        let mut staged = Vec::new();
        match &result {
            Ok(_) => staged.extend(outbox.into_iter().map(|message| Staged {
                record: index,
                message,
            })),
            Err(e) if !outbox.is_empty() => {
                tracing::warn!(
                    record = id.as_deref().unwrap_or(""),
                    discarded = outbox.len(),
                    "{e}; its outbound messages are not sent"
                );
            }
            Err(_) => {}
        }
        let mut dead_lettered = false;
        if let Err(e) = &result {
            if e.outcome() == Outcome::Dropped {
                let before = staged.len();
                staged.extend(self.dead_letter(
                    index,
                    (id.as_deref(), e),
                    body.as_deref(),
                    source_path,
                    batch,
                    trace_header,
                ));
                dead_lettered = staged.len() > before;
            }
        }
        Ran {
            id,
            key: ordering_key,
            result,
            kwargs,
            staged,
            path,
            dead_lettered,
            claim,
            duplicate,
            twin_of,
        }
    }

    /// A dropped record's message to the dead-letter queue, if the pipeline has one and the
    /// record's body could be read.
    fn dead_letter(
        &self,
        index: usize,
        (id, error): (Option<&str>, &RecordError),
        body: Option<&str>,
        source_path: Option<&str>,
        batch: &BatchRun<'_>,
        trace_header: Option<Arc<str>>,
    ) -> Option<Staged> {
        let queue = self.inner.dead_letter.as_ref()?;
        let Some(body) = body else {
            tracing::warn!(
                record = id.unwrap_or(""),
                "the record's body could not be read, so it is not sent to the dead-letter queue {queue}"
            );
            return None;
        };
        Some(Staged {
            record: index,
            message: OutboundMessage {
                queue: queue.clone(),
                body: dead_letter_body(body, source_path),
                id: outbound_id(batch.invocation, id, index, "dead-letter"),
                trace_header,
                attributes: dead_letter_attributes(id, error),
            },
        })
    }
}

/// What a dropped record sends to the dead-letter queue: its body as it came, or, when its
/// source chose its path, the message that names that path.
fn dead_letter_body(body: &str, source_path: Option<&str>) -> String {
    match source_path {
        Some(path) if serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok() => {
            let path = serde_json::to_string(path).expect("a string serializes");
            format!("{{\"path\":{path},\"kwargs\":{body}}}")
        }
        _ => body.to_owned(),
    }
}

/// Why a dead letter was dropped, as message attributes (see
/// [`DEAD_LETTER_ATTRIBUTES`](crate::sink::DEAD_LETTER_ATTRIBUTES)); the message is cut to 1 KiB.
fn dead_letter_attributes(id: Option<&str>, error: &RecordError) -> Vec<(&'static str, String)> {
    let [error_type, error_message, path, function, record_id] =
        crate::sink::DEAD_LETTER_ATTRIBUTES;
    let message: String = error.message().chars().take(1024).collect();
    let mut attributes = vec![
        (error_type, error.kind().as_str().to_owned()),
        (error_message, message),
    ];
    if let Some(p) = error.path() {
        attributes.push((path, p.to_string()));
    }
    if let Some(f) = error.function() {
        attributes.push((function, f.to_owned()));
    }
    if let Some(id) = id {
        attributes.push((record_id, id.to_owned()));
    }
    // SQS refuses an attribute with an empty value.
    attributes.retain(|(_, v)| !v.is_empty());
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_name_the_path_their_source_chose() {
        assert_eq!(dead_letter_body(r#"{"a": 1}"#, None), r#"{"a": 1}"#);
        assert_eq!(
            dead_letter_body(r#"{"a": 1}"#, Some("NIGHTLY")),
            r#"{"path":"NIGHTLY","kwargs":{"a": 1}}"#
        );
        // Not JSON: as it came.
        assert_eq!(dead_letter_body("{oops", Some("NIGHTLY")), "{oops");
    }

    #[test]
    fn results_take_the_room_of_their_records() {
        // A slot is no larger than a record (so records become slots in place), and a
        // result fits a slot's room (so slots become results in place).
        assert_eq!(
            std::mem::size_of::<Slot<'_>>(),
            std::mem::size_of::<Record<'_>>()
        );
        assert!(std::mem::size_of::<RecordResult<'_>>() <= std::mem::size_of::<Slot<'_>>());
        let records = vec![
            Record::new(Some("a".into()), Ok(Cow::Borrowed("{}"))),
            Record::new(Some("b".into()), Ok(Cow::Borrowed("{}"))),
        ];
        let room = records.as_ptr() as usize;
        let mut slots: Vec<Slot<'_>> = records.into_iter().map(Slot::Waiting).collect();
        assert_eq!(slots.as_ptr() as usize, room);
        for slot in &mut slots {
            let record = slot.take().expect("waiting");
            assert!(slot.take().is_none(), "a record is taken once");
            *slot = Slot::Done(
                RecordResult {
                    id: record.id,
                    outcome: Outcome::Success,
                    error: None,
                    output: None,
                },
                None,
            );
        }
        let results: Vec<RecordResult<'_>> = slots.into_iter().map(Slot::into_result).collect();
        assert_eq!(results.as_ptr() as usize, room);
        let ids: Vec<_> = results.iter().map(|r| r.id.as_deref()).collect();
        assert_eq!(ids, [Some("a"), Some("b")]);
    }
}
