//! Batch scheduling: the records of a batch run in lanes (one per ordering key when records
//! run side by side), in order within a lane; a record runs unless its ordering or the
//! invocation's deadline says not; what it produced is collected in record order.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::graph::{outbound_id, Exec, Produced, PLAUSIBLE_DEADLINE_MS};
use crate::context::{Invocation, RecordInfo};
use crate::error::{ErrorKind, Outcome, RecordError};
use crate::idempotency::Claimed;
use crate::kwargs::Kwargs;
use crate::outbox::Staged;
use crate::path::PathName;
use crate::payload::PayloadPointer;
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

/// What running (or not running) one record produced.
pub(super) struct RecordRun<'e> {
    /// Its place in the batch.
    pub(super) index: usize,
    /// Its id, outcome, error and output.
    pub(super) result: RecordResult<'e>,
    /// Its kwargs, kept only when it did not succeed (for reports).
    pub(super) kwargs: Option<Kwargs>,
    /// The messages it staged (sent once the batch has run), its dead letter included.
    pub(super) staged: Vec<Staged>,
    /// The path it entered by, when metrics ask.
    pub(super) path: Option<PathName>,
    /// A dead letter of it was staged.
    pub(super) dead_lettered: bool,
    /// The idempotency key it holds until its outcome is final.
    pub(super) claim: Option<Claimed>,
    /// It was a duplicate, not run.
    pub(super) duplicate: bool,
    /// Its ordering key, on a source that keeps an order.
    pub(super) key: Option<Cow<'e, str>>,
    /// The earlier record of the batch whose idempotency key it shares (see `Exec::twin_of`).
    pub(super) twin_of: Option<usize>,
    /// Where its payload was fetched from, when its message was a pointer to S3 (boxed: rare).
    pub(super) payload: Option<Box<PayloadPointer>>,
}

impl<'e> RecordRun<'e> {
    /// A record that ends without running: acknowledged (`Ok(None)`, see
    /// [`Record::acknowledge`]) or not run (`Err`, why). No kwargs kept, no messages, no key
    /// held.
    fn without_running(
        index: usize,
        record: Record<'e>,
        result: Result<Option<Box<serde_json::Value>>, RecordError>,
    ) -> RecordRun<'e> {
        RecordRun {
            index,
            result: RecordResult::from_run(record.id, result),
            kwargs: None,
            staged: Vec::new(),
            path: None,
            dead_lettered: false,
            claim: None,
            duplicate: false,
            key: record.ordering_key,
            twin_of: None,
            payload: None,
        }
    }
}

/// A batch's records, run: each record's result in record order, and what some records have
/// besides, by record index, in record order (most records have no claim, no kwargs kept, no
/// key, no twin).
#[derive(Default)]
pub(super) struct RanBatch<'e> {
    /// Each record's id, outcome, error and output.
    pub(super) results: Vec<RecordResult<'e>>,
    /// The kwargs of the records that did not succeed (for reports).
    pub(super) kwargs: Vec<(usize, Kwargs)>,
    /// The messages the records staged, in record order.
    pub(super) staged: Vec<Staged>,
    /// For metrics: the path each record entered by.
    pub(super) paths: Vec<(usize, PathName)>,
    /// The records whose dead letter was staged.
    pub(super) dead_lettered: Vec<usize>,
    /// The idempotency keys the records hold until their outcomes are final.
    pub(super) claims: Vec<(usize, Claimed)>,
    /// Records not run because their idempotency key was completed.
    pub(super) duplicates: usize,
    /// The ordering keys of the records, on a source that keeps an order.
    pub(super) keys: Vec<(usize, Cow<'e, str>)>,
    /// Records that wait for an earlier record of the batch with their idempotency key: (the
    /// record, the earlier one).
    pub(super) twins: Vec<(usize, usize)>,
    /// Where the payloads of the records whose messages were pointers were fetched from.
    pub(super) payloads: Vec<(usize, PayloadPointer)>,
    /// For metrics: what the outbox did, per queue kind.
    pub(super) message_counts: std::collections::BTreeMap<String, crate::outbox::MessageCounts>,
}

impl<'e> RanBatch<'e> {
    /// Keeps a record's run; records come in record order.
    fn push(&mut self, run: RecordRun<'e>) {
        let index = run.index;
        debug_assert_eq!(index, self.results.len(), "records are kept in order");
        self.results.push(run.result);
        self.kwargs.extend(run.kwargs.map(|k| (index, k)));
        self.staged.extend(run.staged);
        self.paths.extend(run.path.map(|p| (index, p)));
        if run.dead_lettered {
            self.dead_lettered.push(index);
        }
        self.claims.extend(run.claim.map(|c| (index, c)));
        self.duplicates += usize::from(run.duplicate);
        self.keys.extend(run.key.map(|k| (index, k)));
        self.twins.extend(run.twin_of.map(|holder| (index, holder)));
        self.payloads.extend(run.payload.map(|p| (index, *p)));
    }
}

/// What a record's functions see of it (see [`crate::Context::record`]). It owns copies (a
/// function may keep it); the record's result keeps the id as the event has it.
fn record_info(
    index: usize,
    (id, ordering_key): (Option<&str>, Option<&str>),
    meta: crate::source::RecordMeta,
    batch: &BatchRun<'_>,
) -> RecordInfo {
    RecordInfo {
        index,
        id: id.map(Arc::from),
        source: batch.source.name(),
        ordering_key: ordering_key.map(Arc::from),
        meta,
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

impl Pipeline {
    /// Runs every record of the batch (side by side, up to the pipeline's concurrency, one
    /// lane per ordering key); returns what they produced, in record order.
    pub(super) async fn run_records<'e>(
        &self,
        records: Vec<Record<'e>>,
        batch: &BatchRun<'_>,
    ) -> RanBatch<'e> {
        let mut ran = RanBatch {
            results: Vec::with_capacity(records.len()),
            ..RanBatch::default()
        };
        let concurrency = self.inner.concurrency;
        let numbered = records.into_iter().enumerate();
        if concurrency <= 1 {
            let mut failed_keys = HashSet::new();
            for (index, record) in numbered {
                ran.push(self.run_one(index, record, batch, &mut failed_keys).await);
            }
            return ran;
        }
        // Up to `concurrency` lanes at once.
        use futures::StreamExt;
        let mut waiting = lanes(numbered, batch.ordering).into_iter();
        let mut running = futures::stream::FuturesUnordered::new();
        for lane in waiting.by_ref().take(concurrency) {
            running.push(self.run_lane(lane, batch));
        }
        let mut runs = Vec::new();
        while let Some(lane_runs) = running.next().await {
            runs.extend(lane_runs);
            if let Some(lane) = waiting.next() {
                running.push(self.run_lane(lane, batch));
            }
        }
        runs.sort_unstable_by_key(|r: &RecordRun<'_>| r.index);
        runs.into_iter().for_each(|run| ran.push(run));
        ran
    }

    /// Runs the records of one lane in order.
    async fn run_lane<'e>(
        &self,
        lane: Vec<(usize, Record<'e>)>,
        batch: &BatchRun<'_>,
    ) -> Vec<RecordRun<'e>> {
        let mut failed_keys = HashSet::new();
        let mut runs = Vec::with_capacity(lane.len());
        for (index, record) in lane {
            runs.push(self.run_one(index, record, batch, &mut failed_keys).await);
        }
        runs
    }

    /// Runs one record, unless its ordering or the deadline says not. A record that fails
    /// stops the later records of its key (or of the batch), as the source's ordering says.
    async fn run_one<'e>(
        &self,
        index: usize,
        record: Record<'e>,
        batch: &BatchRun<'_>,
        failed_keys: &mut HashSet<String>,
    ) -> RecordRun<'e> {
        let mut run = if let Some(why) = &record.acknowledged {
            let id = record.id.as_deref().unwrap_or("");
            tracing::info!(record_id = id, "acknowledged without running: {why}");
            RecordRun::without_running(index, record, Ok(None))
        } else {
            match self.why_not_run(&record, batch, failed_keys) {
                Some(why) => {
                    let error = RecordError::new(ErrorKind::NotRun, why);
                    RecordRun::without_running(index, record, Err(error))
                }
                None => self.execute(index, record, batch).await,
            }
        };
        if batch.ordering == RecordOrder::Unordered {
            run.key = None;
        }
        if run.result.outcome == Outcome::Failed {
            let failed = run.key.as_deref().map(str::to_owned);
            batch.note_failure(run.result.id.as_deref(), failed, failed_keys);
        }
        run
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
    async fn execute<'e>(
        &self,
        index: usize,
        record: Record<'e>,
        batch: &BatchRun<'_>,
    ) -> RecordRun<'e> {
        let Record {
            id,
            ordering_key,
            body,
            path: source_path,
            meta,
            as_it_came,
            acknowledged: _,
            offloaded,
        } = record;
        // A payload kept in S3 is rare: its fetch is boxed, so that every record's run does not
        // carry the room of one.
        let (body, as_it_came, payload) = if offloaded {
            Box::pin(self.read_offloaded(body, as_it_came)).await
        } else {
            (body.into_text(), as_it_came, None)
        };
        let info = record_info(index, (id.as_deref(), ordering_key.as_deref()), meta, batch);
        let mut outbox = Vec::new();
        let mut exec = Exec::new(batch.invocation, Arc::new(info), &mut outbox);
        let scope = crate::log_scope::Scope {
            invocation: batch.invocation.clone(),
            record: Some(exec.record.clone()),
            path: None,
        };
        let (result, kwargs, body) = match body {
            Ok(body) => {
                // Built in place: a future kept in a local first would take its room twice.
                let (result, kwargs) = crate::log_scope::with_scope(
                    scope,
                    self.run_record(&body, source_path.as_deref(), &mut exec),
                )
                .await;
                (result, kwargs, Some(body))
            }
            Err(e) => (Err(e), None, None),
        };
        let Exec {
            record: info,
            trace_header,
            entry_path,
            claim,
            duplicate,
            twin_of,
            ..
        } = exec;
        let came = Came {
            as_it_came,
            body,
            source_path: source_path.as_deref(),
            pointer_meta: offloaded.then_some(&info.meta),
        };
        let ran = (index, id.as_deref(), &result);
        let staged = self.stage(ran, outbox, came, batch, trace_header);
        let result = RecordResult::from_run(id, result);
        RecordRun {
            index,
            dead_lettered: result.outcome == Outcome::Dropped && !staged.is_empty(),
            kwargs: kwargs.filter(|_| result.outcome != Outcome::Success),
            result,
            staged,
            path: entry_path,
            claim,
            duplicate,
            key: ordering_key,
            twin_of,
            payload,
        }
    }

    /// What a record's run sends: its outbound messages if it succeeded, else its dead letter
    /// if it was dropped (and its messages are not sent).
    fn stage(
        &self,
        (index, id, result): (usize, Option<&str>, &Result<Produced, RecordError>),
        outbox: Vec<OutboundMessage>,
        came: Came<'_, '_>,
        batch: &BatchRun<'_>,
        trace_header: Option<Arc<str>>,
    ) -> Vec<Staged> {
        match result {
            Ok(_) => outbox
                .into_iter()
                .map(|message| Staged {
                    record: index,
                    message,
                })
                .collect(),
            Err(e) => {
                if !outbox.is_empty() {
                    let (record, discarded) = (id.unwrap_or(""), outbox.len());
                    tracing::warn!(record, discarded, "{e}; its outbound messages are not sent");
                }
                let letter = self.dead_letter((index, id), e, came, batch, trace_header);
                letter.into_iter().collect()
            }
        }
    }

    /// A dropped record's message to the dead-letter queue, if the pipeline has one and the
    /// record's body could be read (`None` for a record that was not dropped): what a redrive
    /// would replay, the body as it came (a pointer to a payload in S3 with the attribute that
    /// says so).
    fn dead_letter(
        &self,
        (index, id): (usize, Option<&str>),
        error: &RecordError,
        came: Came<'_, '_>,
        batch: &BatchRun<'_>,
        trace_header: Option<Arc<str>>,
    ) -> Option<Staged> {
        if error.outcome() != Outcome::Dropped {
            return None;
        }
        let queue = self.inner.dead_letter.as_ref()?;
        let body = match (came.as_it_came, came.body) {
            (Some(original), _) => original.into_owned(),
            (None, Some(body)) => dead_letter_body(&body, came.source_path),
            (None, None) => {
                tracing::warn!(
                    record = id.unwrap_or(""),
                    "the record's body could not be read, so it is not sent to the dead-letter queue {queue}"
                );
                return None;
            }
        };
        let mut attributes = dead_letter_attributes(id, error);
        if let Some(meta) = came.pointer_meta {
            let size = crate::payload::declared_size(meta).unwrap_or("0");
            attributes.push((crate::payload::SIZE_ATTRIBUTE, size.to_owned()));
        }
        Some(Staged {
            record: index,
            message: OutboundMessage {
                queue: queue.clone(),
                body,
                id: outbound_id(batch.invocation, id, index, "dead-letter"),
                trace_header,
                attributes,
                kept_kwargs: Vec::new(),
            },
        })
    }
}

/// What a record came as, for its dead letter.
struct Came<'a, 'e> {
    /// The body as it came, when its source unwrapped it from an envelope (or it was a pointer).
    as_it_came: Option<Cow<'e, str>>,
    /// The body it ran with, if it could be read.
    body: Option<Cow<'e, str>>,
    /// The path its source chose, if any.
    source_path: Option<&'a str>,
    /// Its metadata, when its body was a pointer to a payload in S3.
    pointer_meta: Option<&'a crate::source::RecordMeta>,
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
}
