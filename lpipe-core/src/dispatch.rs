//! Running a batch: records through the graph, outbound messages through the outbox, outcomes
//! into the response.

use std::borrow::Cow;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::value::RawValue;
use tracing::Instrument;

use crate::action::Action;
use crate::context::{Context, Invocation, RecordInfo};
use crate::error::{ErrorKind, InvocationError, Outcome, RecordError};
use crate::function::{ParamError, Returned};
use crate::kwargs::Kwargs;
use crate::path::PathName;
use crate::pipeline::Pipeline;
use crate::queue::{Payload, Target};
use crate::report::Report;
use crate::sink::{self, OutboundMessage, Staged};
use crate::source::{BatchResult, EventProbe, Ordering, Record, RecordResult, Stats};

type Output = Option<serde_json::Value>;

struct Exec<'r> {
    invocation: Arc<Invocation>,
    record: Arc<RecordInfo>,
    outbox: &'r mut Vec<OutboundMessage>,
}

impl Exec<'_> {
    fn push(&mut self, queue: crate::Queue, body: String) {
        let id = outbound_id(
            &self.invocation,
            self.record.id.as_deref(),
            self.record.index,
            self.outbox.len(),
        );
        self.outbox.push(OutboundMessage { queue, body, id });
    }
}

/// The id of a record's `n`th outbound message (see [`OutboundMessage::id`]).
fn outbound_id(
    invocation: &Invocation,
    record_id: Option<&str>,
    index: usize,
    n: impl std::fmt::Display,
) -> String {
    match (record_id, invocation.message_scope.as_deref()) {
        (Some(id), None) => format!("{id}:{n}"),
        (Some(id), Some(scope)) => format!("{scope}/{id}:{n}"),
        // Without an id, the position is all there is: scope it by the request.
        (None, _) => format!("{}/{index}:{n}", invocation.lambda.request_id),
    }
}

/// What the records of one batch share while they run.
struct BatchRun<'b> {
    source: &'b dyn crate::EventSource,
    invocation: &'b Arc<Invocation>,
    ordering: Ordering,
    deadline: Option<Instant>,
    /// For [`Ordering::StopOnFailure`]: why records no longer start.
    stopped: std::sync::Mutex<Option<String>>,
}

/// One record, run (or not).
struct Done {
    index: usize,
    result: RecordResult,
    /// Kept only for reporting what did not succeed.
    kwargs: Option<Kwargs>,
    staged: Vec<Staged>,
}

/// Where the records of a lane go once run.
trait Collect: Send {
    fn collect(&mut self, done: Done);
}

/// A batch's records, run, in record order.
struct Collected {
    results: Vec<RecordResult>,
    kwargs_of: Vec<Option<Kwargs>>,
    staged: Vec<Staged>,
}

impl Collect for Collected {
    #[inline]
    fn collect(&mut self, done: Done) {
        self.results.push(done.result);
        self.kwargs_of.push(done.kwargs);
        self.staged.extend(done.staged);
    }
}

impl Collect for Vec<Done> {
    #[inline]
    fn collect(&mut self, done: Done) {
        self.push(done);
    }
}

/// Splits a batch into lanes that may run concurrently; the records of a lane run one after
/// another. Unordered records get a lane each, and keyed records share their key's lane (a
/// record without a key gets its own).
fn lanes(records: Vec<Record<'_>>, ordering: Ordering) -> Vec<Vec<(usize, Record<'_>)>> {
    let numbered = records.into_iter().enumerate();
    match ordering {
        Ordering::Unordered => numbered.map(|r| vec![r]).collect(),
        Ordering::PerKey | Ordering::StopOnFailure => {
            let mut lanes: Vec<Vec<(usize, Record<'_>)>> = Vec::new();
            let mut lane_of: std::collections::HashMap<String, usize> = Default::default();
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

#[derive(serde::Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kwargs: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct IndexedMessage<'a> {
    #[serde(borrow, default)]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kwargs: Option<crate::kwargs_de::Entries<'a>>,
}

/// The kwargs object of a parsed message, from the positions of its entries in `body`: the
/// object runs from the `{` before the first key to the `}` after the last value (only
/// whitespace and the key's quote lie between). `None` for an empty object.
fn indexed_kwargs(body: &str, entries: &[(&str, &RawValue)]) -> Option<Kwargs> {
    let base = body.as_ptr() as usize;
    let offset = |s: &str| s.as_ptr() as usize - base;
    let (first_key, _) = entries.first()?;
    let (_, last_value) = entries.last()?;
    let open = body[..offset(first_key)].rfind('{')?;
    let after = offset(last_value.get()) + last_value.get().len();
    let close = after + body[after..].find('}')?;
    Some(Kwargs::from_parsed(&body[open..=close], entries))
}

/// Deadlines before this (2001-09-09 in Unix milliseconds) are not timestamps: local
/// emulators send the timeout itself (`cargo lambda watch` sends 600000). Those are ignored.
const PLAUSIBLE_DEADLINE_MS: u64 = 1_000_000_000_000;

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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

fn param_error(e: ParamError, function: &'static str, path: &PathName) -> RecordError {
    let field = e.path().to_string();
    let inner = e.into_inner();
    let message = if field == "." || field.is_empty() {
        format!("bad parameters: {inner}")
    } else {
        format!("bad parameter `{field}`: {inner}")
    };
    RecordError::new(ErrorKind::InvalidPayload, message)
        .at_path(path)
        .in_function(function)
}

impl Pipeline {
    /// Handles one Lambda event: decodes it with its event source, runs every record through
    /// the graph, sends the outbound messages, reports dropped and failed records, and builds
    /// the response.
    ///
    /// # Errors
    ///
    /// An [`InvocationError`] when the event cannot be read, or when the source reports
    /// failures by failing the invocation (direct invocations, EventBridge).
    pub async fn handle(
        &self,
        event: &str,
        lambda: lambda_runtime::Context,
    ) -> Result<serde_json::Value, InvocationError> {
        let inner = &self.inner;
        // A UTF-8 byte-order mark (some editors write one into event files) is not JSON.
        let event = event.strip_prefix('\u{feff}').unwrap_or(event);
        let source = self.source_for(event)?;
        let records = source
            .decode(event)
            .map_err(|e| InvocationError::new("InvalidEvent", e.to_string()))?;
        let deadline = deadline_of(&lambda);
        tracing::debug!(
            deadline_ms = lambda.deadline,
            remaining_ms = ?deadline.map(|d| d.saturating_duration_since(Instant::now()).as_millis()),
            "invocation deadline"
        );
        let request_id = lambda.request_id.clone();
        let message_scope = (!source.stable_record_ids()).then(|| request_id.clone());
        let invocation = Arc::new(Invocation {
            lambda,
            state: inner.state.clone(),
            message_scope,
        });
        let batch = BatchRun {
            source: source.as_ref(),
            invocation: &invocation,
            ordering: source.ordering(),
            deadline,
            stopped: std::sync::Mutex::new(None),
        };
        let mut collected = Collected {
            results: Vec::with_capacity(records.len()),
            kwargs_of: Vec::with_capacity(records.len()),
            staged: Vec::new(),
        };
        if inner.concurrency <= 1 || records.len() <= 1 {
            self.run_lane(records.into_iter().enumerate(), &batch, &mut collected)
                .await;
        } else {
            use futures::StreamExt;
            let lanes = lanes(records, batch.ordering);
            let mut done: Vec<Done> = futures::stream::iter(lanes)
                .map(|lane| async {
                    let mut done = Vec::with_capacity(lane.len());
                    self.run_lane(lane.into_iter(), &batch, &mut done).await;
                    done
                })
                .buffer_unordered(inner.concurrency)
                .flat_map(futures::stream::iter)
                .collect()
                .await;
            done.sort_unstable_by_key(|d| d.index);
            for d in done {
                collected.collect(d);
            }
        }
        let Collected {
            mut results,
            kwargs_of,
            staged,
        } = collected;

        if !staged.is_empty() {
            let undelivered =
                sink::flush(staged, |q| self.sink_for(q.kind()), inner.retry, deadline).await;
            for (index, why) in undelivered {
                let r = &mut results[index];
                let why = match (r.outcome, &r.error) {
                    (Outcome::Failed, _) => continue,
                    // Only its dead-letter message was staged: say why it was going there.
                    (Outcome::Dropped, Some(dropped)) => {
                        format!("{why} (the record was dropped, and is kept because it could not be sent to the dead-letter queue: {dropped})")
                    }
                    _ => why,
                };
                r.outcome = Outcome::Failed;
                r.output = None;
                r.error = Some(RecordError::new(ErrorKind::Undeliverable, why));
            }
        }

        let mut stats = Stats {
            received: results.len(),
            ..Stats::default()
        };
        for (i, r) in results.iter().enumerate() {
            match r.outcome {
                Outcome::Success => stats.successes += 1,
                Outcome::Dropped => stats.dropped += 1,
                Outcome::Failed => stats.failed += 1,
            }
            if let Some(e) = &r.error {
                let id = r.id.as_deref().unwrap_or("");
                match r.outcome {
                    Outcome::Dropped => tracing::warn!(record = id, "record dropped: {e}"),
                    _ => tracing::error!(record = id, "record failed: {e}"),
                }
                inner.reporter.report(&Report {
                    record_id: r.id.as_deref(),
                    source: source.name(),
                    request_id: &request_id,
                    outcome: r.outcome,
                    error: e,
                    kwargs: kwargs_of.get(i).and_then(Option::as_ref),
                });
            }
        }
        inner.reporter.flush().await;
        tracing::info!(
            source = source.name(),
            received = stats.received,
            successes = stats.successes,
            dropped = stats.dropped,
            failed = stats.failed,
            "batch finished"
        );
        let batch = BatchResult {
            records: results,
            stats,
        };
        source.respond(event, &batch).await
    }

    /// The source of an event: the pinned one if it recognises the event, else the registered
    /// one that does. A source never takes an event it does not recognise (see
    /// [`EventSource::matches`](crate::EventSource::matches)): decoded with the wrong layout,
    /// every record would be dropped and acknowledged, and lost.
    fn source_for(&self, event: &str) -> Result<Arc<dyn crate::EventSource>, InvocationError> {
        let inner = &self.inner;
        let probe = EventProbe::of(event);
        match &inner.source {
            Some(s) if s.matches(&probe) => Ok(s.clone()),
            Some(s) => Err(InvocationError::new(
                "InvalidEvent",
                format!(
                    "this pipeline takes only '{}' events, and this is not one ({}); no record of it is taken (is the event source mapping attached to the right function?)",
                    s.name(),
                    probe.describe()
                ),
            )),
            None => inner.registry.detect(&probe).ok_or_else(|| {
                InvocationError::new(
                    "InvalidEvent",
                    format!(
                        "no registered event source recognises this event ({}; registered: {})",
                        probe.describe(),
                        inner.registry.source_names().join(", ")
                    ),
                )
            }),
        }
    }

    /// Runs the records of one lane in order.
    async fn run_lane<'e>(
        &self,
        lane: impl Iterator<Item = (usize, Record<'e>)> + Send,
        batch: &BatchRun<'_>,
        out: &mut impl Collect,
    ) {
        let mut failed_keys: HashSet<String> = HashSet::new();
        for (index, record) in lane {
            let blocked = match (batch.ordering, record.ordering_key.as_deref()) {
                (Ordering::StopOnFailure, _) => batch
                    .stopped
                    .lock()
                    .expect("stop lock")
                    .clone()
                    .map(|why| format!("not run: {why}")),
                (Ordering::PerKey, Some(k)) if failed_keys.contains(k) => Some(format!(
                    "not run: an earlier record of ordering key {k} failed"
                )),
                _ => None,
            };
            self.run_one(index, record, blocked, batch, &mut failed_keys, out)
                .await;
        }
    }

    /// Runs one record, unless `blocked` says why not.
    async fn run_one(
        &self,
        index: usize,
        record: Record<'_>,
        blocked: Option<String>,
        batch: &BatchRun<'_>,
        failed_keys: &mut HashSet<String>,
        out: &mut impl Collect,
    ) {
        let inner = &self.inner;
        // The record is consumed: its body is freed as soon as it has run.
        let Record {
            id,
            ordering_key,
            body,
            path: source_path,
        } = record;
        let mut id: Option<String> = id.map(Cow::into_owned);
        let mut key: Option<String> = ordering_key.map(Cow::into_owned);
        let mut staged = Vec::new();
        let late = batch
            .deadline
            .is_some_and(|d| Instant::now() + inner.deadline_margin >= d);
        let (result, kwargs) = if let Some(why) = blocked {
            (Err(RecordError::new(ErrorKind::NotRun, why)), None)
        } else if late {
            (
                Err(RecordError::new(
                    ErrorKind::NotRun,
                    "not run: the invocation's deadline is too close",
                )),
                None,
            )
        } else {
            let span = if tracing::level_enabled!(tracing::Level::INFO) {
                tracing::info_span!(
                    "record",
                    id = id.as_deref().unwrap_or(""),
                    path = tracing::field::Empty
                )
            } else {
                tracing::Span::none()
            };
            let info = Arc::new(RecordInfo {
                index,
                id: id.take(),
                source: batch.source.name(),
                ordering_key: key.take(),
            });
            let mut outbox = Vec::new();
            let mut exec = Exec {
                invocation: batch.invocation.clone(),
                record: info,
                outbox: &mut outbox,
            };
            let (result, kwargs, body) = match body {
                Ok(body) => {
                    let (result, kwargs) = self
                        .run_record(&body, source_path.as_deref(), &mut exec)
                        .instrument(span)
                        .await;
                    (result, kwargs, Some(body))
                }
                Err(e) => (Err(e), None, None),
            };
            // Take the id and key back from the record's context (copies if a function kept it).
            (id, key) = match Arc::try_unwrap(exec.record) {
                Ok(info) => (info.id, info.ordering_key),
                Err(shared) => (shared.id.clone(), shared.ordering_key.clone()),
            };
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
            if let (Some(queue), Err(e)) = (&inner.dead_letter, &result) {
                if e.outcome() == Outcome::Dropped {
                    match &body {
                        Some(body) => staged.push(Staged {
                            record: index,
                            message: OutboundMessage {
                                queue: queue.clone(),
                                body: dead_letter_body(body, source_path.as_deref()),
                                id: outbound_id(
                                    batch.invocation,
                                    id.as_deref(),
                                    index,
                                    "dead-letter",
                                ),
                            },
                        }),
                        None => tracing::warn!(
                            record = id.as_deref().unwrap_or(""),
                            "the record's body could not be read, so it is not sent to the dead-letter queue {queue}"
                        ),
                    }
                }
            }
            (result, kwargs)
        };
        let (outcome, error, output) = match result {
            Ok(output) => (Outcome::Success, None, output),
            Err(e) => (e.outcome(), Some(e), None),
        };
        if outcome == Outcome::Failed {
            match batch.ordering {
                Ordering::StopOnFailure => {
                    let mut stopped = batch.stopped.lock().expect("stop lock");
                    if stopped.is_none() {
                        *stopped = Some(format!("record {} failed", id.as_deref().unwrap_or("?")));
                    }
                }
                Ordering::PerKey => {
                    if let Some(k) = key {
                        failed_keys.insert(k);
                    }
                }
                Ordering::Unordered => {}
            }
        }
        out.collect(Done {
            index,
            result: RecordResult {
                id,
                outcome,
                error,
                output,
            },
            kwargs: if outcome == Outcome::Success {
                None
            } else {
                kwargs
            },
            staged,
        });
    }

    async fn run_record(
        &self,
        body: &str,
        source_path: Option<&str>,
        exec: &mut Exec<'_>,
    ) -> (Result<Output, RecordError>, Option<Kwargs>) {
        let parsed = match source_path {
            Some(path) => self.parse_kwargs_for(path, body),
            None => self.parse_message(body),
        };
        let (path, kwargs) = match parsed {
            Ok(pk) => pk,
            Err(e) => return (Err(e), None),
        };
        tracing::Span::current().record("path", path.as_str());
        tracing::debug!(kwargs = %kwargs, "record received");
        let result = self.run_path_unboxed(&path, &kwargs, 0, exec).await;
        (result, Some(kwargs))
    }

    /// The body is the kwargs of a path the source chose.
    fn parse_kwargs_for(&self, path: &str, body: &str) -> Result<(PathName, Kwargs), RecordError> {
        let kwargs =
            Kwargs::from_json(body).map_err(|e| RecordError::invalid_payload(e.to_string()))?;
        match self.lookup(path) {
            Some((name, _)) => Ok((name.clone(), kwargs)),
            None => Err(self.unknown_path(path)),
        }
    }

    fn parse_message(&self, body: &str) -> Result<(PathName, Kwargs), RecordError> {
        if let Some(default) = &self.inner.default_path {
            let raw: Box<RawValue> = serde_json::from_str(body).map_err(|e| {
                RecordError::invalid_payload(format!("the record is not valid JSON: {e}"))
            })?;
            let kwargs =
                Kwargs::from_raw(raw).map_err(|e| RecordError::invalid_payload(e.to_string()))?;
            return Ok((default.clone(), kwargs));
        }
        // The fast path: one scan finds the path and every kwarg. It declines (and the general
        // path below runs, with its precise errors) on keys with escapes, empty kwargs or any
        // error.
        if let Ok(IndexedMessage {
            path: Some(path),
            kwargs: Some(entries),
        }) = serde_json::from_str::<IndexedMessage<'_>>(body)
        {
            if let Some(kwargs) = indexed_kwargs(body, &entries.0) {
                return match self.lookup(&path) {
                    Some((name, _)) => Ok((name.clone(), kwargs)),
                    None => Err(self.unknown_path(&path)),
                };
            }
        }
        let message: Message<'_> = serde_json::from_str(body).map_err(|e| {
            RecordError::invalid_payload(format!(
                "the record is not an lpipe message {{\"path\", \"kwargs\"}}: {e}"
            ))
        })?;
        let (Some(path), Some(kwargs)) = (message.path, message.kwargs) else {
            return Err(RecordError::invalid_payload(
                "'path' or 'kwargs' missing from payload",
            ));
        };
        let kwargs = Kwargs::from_raw(kwargs.to_owned())
            .map_err(|e| RecordError::invalid_payload(e.to_string()))?;
        match self.lookup(&path) {
            Some((name, _)) => Ok((name.clone(), kwargs)),
            None => Err(self.unknown_path(&path)),
        }
    }

    fn unknown_path(&self, path: &str) -> RecordError {
        let known: Vec<&str> = self
            .inner
            .path_order
            .iter()
            .take(20)
            .map(PathName::as_str)
            .collect();
        RecordError::new(
            ErrorKind::InvalidPath,
            format!(
                "unknown path '{path}' (this pipeline has: {}{})",
                known.join(", "),
                if self.inner.path_order.len() > 20 {
                    ", …"
                } else {
                    ""
                }
            ),
        )
    }

    /// Runs a path nested in another (boxed: paths recurse).
    fn run_path<'a>(
        &'a self,
        path: &'a PathName,
        kwargs: &'a Kwargs,
        depth: usize,
        exec: &'a mut Exec<'_>,
    ) -> BoxFuture<'a, Result<Output, RecordError>> {
        self.run_path_unboxed(path, kwargs, depth, exec).boxed()
    }

    /// Runs a path's actions in order.
    async fn run_path_unboxed(
        &self,
        path: &PathName,
        kwargs: &Kwargs,
        depth: usize,
        exec: &mut Exec<'_>,
    ) -> Result<Output, RecordError> {
        if depth > self.inner.max_depth {
            return Err(self.too_deep(path));
        }
        let (name, actions) = self
            .lookup(path.as_str())
            .ok_or_else(|| self.unknown_path(path.as_str()))?;
        let mut output = None;
        for action in actions {
            output = self
                .run_action(name, action, kwargs, depth, exec)
                .await
                .map_err(|e| e.at_path(name))?;
        }
        Ok(output)
    }

    fn too_deep(&self, path: &PathName) -> RecordError {
        RecordError::new(
            ErrorKind::DepthExceeded,
            format!(
                "paths and returned payloads nested deeper than the pipeline's bound of {} (a loop of returned payloads?)",
                self.inner.max_depth
            ),
        )
        .at_path(path)
    }

    async fn run_action(
        &self,
        path: &PathName,
        action: &Action,
        kwargs: &Kwargs,
        depth: usize,
        exec: &mut Exec<'_>,
    ) -> Result<Output, RecordError> {
        let required = if action.required_params.is_empty() {
            None
        } else {
            let names = action
                .required_params
                .iter()
                .map(|p| (p.from.as_str(), p.to.as_str()));
            Some(kwargs.select(names, true).map_err(|m| {
                RecordError::invalid_payload(format!("missing required parameter '{}'", m.0))
                    .at_path(path)
            })?)
        };
        let fn_kwargs: Cow<'_, Kwargs> = match &required {
            Some(r) if action.include_all_params => Cow::Owned(kwargs.merged_with(r)),
            Some(r) => Cow::Borrowed(r),
            None => Cow::Borrowed(kwargs),
        };

        let context = |exec: &Exec<'_>| Context {
            invocation: exec.invocation.clone(),
            record: exec.record.clone(),
            path: path.clone(),
        };
        let mut output = None;
        if let [f] = action.functions.as_slice() {
            // The common case, without collecting the prepared calls.
            let call = f
                .inner
                .prepare(&fn_kwargs, context(exec))
                .map_err(|e| param_error(e, f.name, path))?;
            output = self.call_function(f.name, call, path, depth, exec).await?;
        } else if !action.functions.is_empty() {
            // Every function's parameters are checked before any function runs.
            let mut prepared = Vec::with_capacity(action.functions.len());
            for f in &action.functions {
                let call = f
                    .inner
                    .prepare(&fn_kwargs, context(exec))
                    .map_err(|e| param_error(e, f.name, path))?;
                prepared.push((f.name, call));
            }
            for (name, call) in prepared {
                output = self.call_function(name, call, path, depth, exec).await?;
            }
        }

        if action.paths.is_empty() && action.queues.is_empty() {
            return Ok(output);
        }
        let forward: Cow<'_, Kwargs> = if action.include_all_params || required.is_some() {
            fn_kwargs
        } else if action.functions.is_empty() {
            Cow::Owned(Kwargs::empty())
        } else if action
            .functions
            .iter()
            .any(|f| f.params == crate::Params::Any)
        {
            Cow::Borrowed(kwargs)
        } else {
            let names = action
                .functions
                .iter()
                .filter_map(|f| f.params.fields())
                .flatten()
                .map(|n| (*n, *n));
            Cow::Owned(
                kwargs
                    .select(names, false)
                    .unwrap_or_else(|_| Kwargs::empty()),
            )
        };
        for p in &action.paths {
            output = self.run_path(p, &forward, depth + 1, exec).await?;
        }
        for q in &action.queues {
            let body = q.message_body(&forward);
            exec.push(q.clone(), body);
            output = None;
        }
        Ok(output)
    }

    /// Runs one prepared function call, turning panics and errors into record errors and
    /// running the payloads it returns.
    async fn call_function(
        &self,
        name: &'static str,
        call: crate::function::Prepared<'_>,
        path: &PathName,
        depth: usize,
        exec: &mut Exec<'_>,
    ) -> Result<Output, RecordError> {
        // A span per function only when someone listens at debug level: spans cost per call.
        let span = if tracing::level_enabled!(tracing::Level::DEBUG) {
            tracing::debug_span!("function", name)
        } else {
            tracing::Span::none()
        };
        let result = AssertUnwindSafe(call).catch_unwind().instrument(span).await;
        let returned = match result {
            Err(panic) => {
                return Err(RecordError::new(
                    ErrorKind::Panic,
                    format!("panicked: {}", panic_message(&*panic)),
                )
                .at_path(path)
                .in_function(name))
            }
            Ok(Err(e)) => {
                let kind = ErrorKind::classify(&*e);
                return Err(RecordError::new(kind, e.to_string())
                    .at_path(path)
                    .in_function(name)
                    .with_source(e));
            }
            Ok(Ok(r)) => r,
        };
        Ok(match returned {
            Returned::Nothing => None,
            Returned::Output(v) => Some(v),
            Returned::Payloads(payloads) => {
                let mut last = None;
                for p in payloads {
                    last = self
                        .run_payload(p, depth + 1, exec)
                        .await
                        .map_err(|e| e.in_function(name))?;
                }
                last
            }
        })
    }

    fn run_payload<'a>(
        &'a self,
        payload: Payload,
        depth: usize,
        exec: &'a mut Exec<'_>,
    ) -> BoxFuture<'a, Result<Output, RecordError>> {
        async move {
            match payload.target {
                Target::Path(path) => {
                    if depth > self.inner.max_depth {
                        return Err(self.too_deep(&path));
                    }
                    let Some((name, _)) = self.lookup(path.as_str()) else {
                        return Err(self.unknown_path(path.as_str()));
                    };
                    let name = name.clone();
                    self.run_path(&name, &payload.kwargs, depth, exec).await
                }
                Target::Queue(queue) => {
                    crate::pipeline::check_queue(
                        &queue,
                        &self.inner.registry,
                        self.inner
                            .catch_all_sink
                            .as_ref()
                            .or(self.inner.fallback_sink.as_ref()),
                    )
                    .map_err(|m| {
                        RecordError::new(ErrorKind::Undeliverable, format!("returned payload: {m}"))
                    })?;
                    let body = queue.message_body(&payload.kwargs);
                    exec.push(queue, body);
                    Ok(None)
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(body: &str) -> Option<String> {
        let m: IndexedMessage<'_> = serde_json::from_str(body).ok()?;
        indexed_kwargs(body, &m.kwargs?.0).map(|k| k.as_str().to_owned())
    }

    #[test]
    fn the_kwargs_slice_is_the_whole_object() {
        assert_eq!(
            index(r#"{"path":"X","kwargs": { "a" : 1 , "b":"x}" } , "z": 1}"#).as_deref(),
            Some(r#"{ "a" : 1 , "b":"x}" }"#)
        );
        assert_eq!(
            index(r#"{"kwargs":{"a":{"b":[1,{"c":2}]}},"path":"X"}"#).as_deref(),
            Some(r#"{"a":{"b":[1,{"c":2}]}}"#)
        );
        assert_eq!(index(r#"{"path":"X","kwargs":{}}"#), None);
        let k = index(r#"{"path":"X","kwargs":{ "a" : [1, 2] ,"b": null}}"#).unwrap();
        let kwargs = Kwargs::from_json(&k).unwrap();
        assert_eq!(
            kwargs.to_value(),
            serde_json::json!({"a": [1, 2], "b": null})
        );
    }

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
