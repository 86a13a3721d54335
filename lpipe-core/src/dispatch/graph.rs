//! Graph execution: a record's path runs its actions in order; an action calls its functions
//! with typed kwargs, runs further paths and stages messages for its queues; a function's
//! returned payloads run next. Paths and payloads nest up to the pipeline's depth bound.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::action::Action;
use crate::context::{Context, Invocation, RecordInfo};
use crate::error::{ErrorKind, RecordError};
use crate::function::{ParamError, Returned, Signature};
use crate::idempotency::{ClaimStatus, Claimed};
use crate::kwargs::Kwargs;
use crate::path::PathName;
use crate::pipeline::Pipeline;
use crate::queue::{Payload, PayloadTarget};
use crate::sink::OutboundMessage;

/// What a record, path, action or function produced: the record's output, if any.
pub(super) type Produced = Option<Box<serde_json::Value>>;

/// What a record's execution carries through the graph: its invocation, its identity, and the
/// messages it staged so far.
pub(super) struct Exec<'r> {
    pub(super) invocation: &'r Arc<Invocation>,
    pub(super) record: Arc<RecordInfo>,
    pub(super) outbox: &'r mut Vec<OutboundMessage>,
    /// What its outbound messages carry on (see [`OutboundMessage::trace_header`]).
    pub(super) trace_header: Option<Arc<str>>,
    /// The path the record entered by, once its message is read.
    pub(super) entry_path: Option<PathName>,
    /// The idempotency key its run holds, if its path is idempotent.
    pub(super) claim: Option<Claimed>,
    /// Its key was completed: it did not run again.
    pub(super) duplicate: bool,
    /// Its key is held by this earlier record of the same batch: it did not run, and ends as
    /// that record does (a duplicate if it succeeds, failed otherwise).
    pub(super) twin_of: Option<usize>,
}

impl<'r> Exec<'r> {
    /// A record's execution, before it runs: its trace header is the record's, else its
    /// invocation's.
    pub(super) fn new(
        invocation: &'r Arc<Invocation>,
        record: Arc<RecordInfo>,
        outbox: &'r mut Vec<OutboundMessage>,
    ) -> Self {
        let trace_header = record
            .meta
            .trace_header()
            .map(Arc::from)
            .or_else(|| invocation.trace_header.clone());
        Exec {
            invocation,
            record,
            outbox,
            trace_header,
            entry_path: None,
            claim: None,
            duplicate: false,
            twin_of: None,
        }
    }

    fn push(&mut self, queue: crate::Queue, body: String) {
        let id = outbound_id(
            self.invocation,
            self.record.id(),
            self.record.index,
            self.outbox.len(),
        );
        self.outbox.push(OutboundMessage {
            queue,
            body,
            id,
            trace_header: self.trace_header.clone(),
            attributes: Vec::new(),
            kept_kwargs: Vec::new(),
        });
    }
}

/// Deadlines before this (2001-09-09 in Unix milliseconds) are not timestamps: local
/// emulators send the timeout itself (`cargo lambda watch` sends 600000). Those are ignored.
pub(super) const PLAUSIBLE_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The id of a record's `n`th outbound message (see [`OutboundMessage::id`]).
pub(super) fn outbound_id(
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

/// The kwargs an action's required params select (renamed as asked), or `None` when it names
/// none.
fn required_kwargs(action: &Action, kwargs: &Kwargs) -> Result<Option<Kwargs>, RecordError> {
    if action.required_params.is_empty() {
        return Ok(None);
    }
    let names = action
        .required_params
        .iter()
        .map(|p| (p.from.as_str(), p.to.as_str()));
    kwargs
        .select(names, true)
        .map(Some)
        .map_err(|m| RecordError::invalid_payload(format!("missing required parameter '{}'", m.0)))
}

/// What an action without required params passes on to its paths and queues: the kwargs its
/// functions take (all of them when one takes any kwargs; none when it has no function).
fn forwarded_kwargs<'k>(action: &Action, kwargs: &'k Kwargs) -> Cow<'k, Kwargs> {
    if action.functions.is_empty() {
        return Cow::Owned(Kwargs::empty());
    }
    if action.functions.iter().any(|f| f.params == Signature::Any) {
        return Cow::Borrowed(kwargs);
    }
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
}

impl Pipeline {
    /// Runs a record's body: parses it, then runs its path.
    pub(super) async fn run_record(
        &self,
        body: &str,
        source_path: Option<&str>,
        exec: &mut Exec<'_>,
    ) -> (Result<Produced, RecordError>, Option<Kwargs>) {
        let parsed = match source_path {
            Some(path) => self.parse_kwargs_for(path, body),
            None => self.parse_message(body),
        };
        let (path, actions, kwargs) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return (Err(e), None),
        };
        crate::log_scope::set_path(path);
        if self.inner.metrics.is_some() {
            exec.entry_path = Some(path.clone());
        }
        tracing::debug!(kwargs = %kwargs, "record received");
        if let Some(done) = self.claim_key(path, &kwargs, exec).await {
            return (done, Some(kwargs));
        }
        let result = self.run_actions(path, actions, &kwargs, 0, exec).await;
        (result, Some(kwargs))
    }

    /// When the record's path is idempotent, claims its key: `None` when the record is to run
    /// (holding the key), else what it comes to without running (see [`crate::idempotency`]).
    async fn claim_key(
        &self,
        path: &PathName,
        kwargs: &Kwargs,
        exec: &mut Exec<'_>,
    ) -> Option<Result<Produced, RecordError>> {
        let (policy, idempotency) = self.inner.idempotency.of(path)?;
        let lambda = &exec.invocation.lambda;
        // A record's id names it beyond this invocation only where the source says so.
        let message_id = exec
            .record
            .message_id()
            .filter(|_| exec.invocation.message_scope.is_none());
        let key = match idempotency.key_in(&lambda.env_config, path, (kwargs, message_id)) {
            Ok(key) => key,
            Err(why) => return Some(Err(RecordError::invalid_payload(why).at_path(path))),
        };
        let deadline = (lambda.deadline >= PLAUSIBLE_DEADLINE_MS).then_some(lambda.deadline);
        if self.is_twin(&key, exec) {
            return Some(Ok(None));
        }
        let claim = idempotency.claim(key, deadline);
        match idempotency.store.begin(&claim).await {
            Ok(ClaimStatus::Started) => {
                exec.invocation
                    .claimed
                    .lock()
                    .expect("claimed keys")
                    .insert(claim.key.clone(), exec.record.index);
                let held = claim.held();
                if let Some(keys) = &exec.invocation.held {
                    keys.hold(&idempotency.store, &held);
                }
                exec.claim = Some(Claimed { held, policy });
                None
            }
            Ok(ClaimStatus::Completed(output)) => {
                tracing::info!(key = %claim.key, "record already handled (its idempotency key is completed): not run again");
                exec.duplicate = true;
                Some(Ok(output.map(Box::new)))
            }
            // Claimed by an earlier record of this batch meanwhile (records side by side).
            Ok(ClaimStatus::InProgress { .. }) if self.is_twin(&claim.key, exec) => Some(Ok(None)),
            Ok(ClaimStatus::InProgress { lock_until_ms }) => Some(Err(RecordError::new(
                ErrorKind::InProgress,
                format!(
                    "its idempotency key {} is held by another run in progress (the lock times out in {} ms): not run now, kept for retry",
                    claim.key,
                    lock_until_ms.saturating_sub(claim.now_ms)
                ),
            )
            .at_path(path))),
            Err(e) => Some(Err(RecordError::new(
                ErrorKind::IdempotencyStore,
                format!(
                    "the idempotency store could not take key {}: {e}; the record is not run unguarded, kept for retry",
                    claim.key
                ),
            )
            .at_path(path))),
        }
    }

    /// Whether an earlier record of this batch holds the key: then the record does not run,
    /// and waits for that one's outcome (noted in [`Exec::twin_of`]).
    fn is_twin(&self, key: &crate::idempotency::IdempotencyKey, exec: &mut Exec<'_>) -> bool {
        let claimed = exec.invocation.claimed.lock().expect("claimed keys");
        let Some(&holder) = claimed.get(key) else {
            return false;
        };
        drop(claimed);
        tracing::info!(
            key = %key,
            holder,
            "a duplicate of an earlier record of this batch (its idempotency key is that record's): not run, answered as that record ends"
        );
        exec.twin_of = Some(holder);
        true
    }

    /// Runs a path nested in another (boxed: paths recurse).
    fn run_path<'a>(
        &'a self,
        path: &'a PathName,
        kwargs: &'a Kwargs,
        depth: usize,
        exec: &'a mut Exec<'_>,
    ) -> BoxFuture<'a, Result<Produced, RecordError>> {
        async move {
            let (name, actions) = self
                .lookup(path.as_str())
                .ok_or_else(|| self.unknown_path(path.as_str()))?;
            // The first idempotent path a record's run reaches claims its key, whether the
            // record entered by it, another path ran it, or a function returned a payload to
            // it (see `PipelineBuilder::idempotent_in`).
            if exec.claim.is_none() && !exec.duplicate {
                if let Some(done) = self.claim_key(name, kwargs, exec).await {
                    return done;
                }
            }
            self.run_actions(name, actions, kwargs, depth, exec).await
        }
        .boxed()
    }

    /// Runs a path's actions in order.
    async fn run_actions(
        &self,
        name: &PathName,
        actions: &[Action],
        kwargs: &Kwargs,
        depth: usize,
        exec: &mut Exec<'_>,
    ) -> Result<Produced, RecordError> {
        if depth > self.inner.max_depth {
            return Err(self.too_deep(name));
        }
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

    /// Runs an action: its functions (with the kwargs they take), then its paths and queues
    /// (with the kwargs it passes on).
    async fn run_action(
        &self,
        path: &PathName,
        action: &Action,
        kwargs: &Kwargs,
        depth: usize,
        exec: &mut Exec<'_>,
    ) -> Result<Produced, RecordError> {
        let required = required_kwargs(action, kwargs).map_err(|e| e.at_path(path))?;
        let fn_kwargs: Cow<'_, Kwargs> = match &required {
            Some(r) if action.include_all_params => Cow::Owned(kwargs.merged_with(r)),
            Some(r) => Cow::Borrowed(r),
            None => Cow::Borrowed(kwargs),
        };
        let mut output = self
            .call_functions(path, action, &fn_kwargs, depth, exec)
            .await?;
        if action.paths.is_empty() && action.queues.is_empty() {
            return Ok(output);
        }
        let forward = if action.include_all_params || required.is_some() {
            fn_kwargs
        } else {
            forwarded_kwargs(action, kwargs)
        };
        for p in &action.paths {
            output = self.run_path(p, &forward, depth + 1, exec).await?;
        }
        for q in &action.queues {
            self.check_named_kwargs(q, &forward, path)?;
            let body = q.message_body(&forward);
            exec.push(q.clone(), body);
            output = None;
        }
        Ok(output)
    }

    /// Calls an action's functions in order; every function's parameters are checked before
    /// any of them runs. The last one's output is the action's.
    async fn call_functions(
        &self,
        path: &PathName,
        action: &Action,
        fn_kwargs: &Kwargs,
        depth: usize,
        exec: &mut Exec<'_>,
    ) -> Result<Produced, RecordError> {
        let context = |exec: &Exec<'_>| Context {
            invocation: exec.invocation.clone(),
            record: exec.record.clone(),
            path: path.clone(),
        };
        if let [f] = action.functions.as_slice() {
            // The common case: one function, no list of prepared calls.
            let call = f
                .inner
                .prepare(fn_kwargs, &|| context(exec))
                .map_err(|e| param_error(e, f.name, path))?;
            return self
                .call_function(f.name, call, (path, action), depth, exec)
                .await;
        }
        let mut prepared = Vec::with_capacity(action.functions.len());
        for f in &action.functions {
            let call = f
                .inner
                .prepare(fn_kwargs, &|| context(exec))
                .map_err(|e| param_error(e, f.name, path))?;
            prepared.push((f.name, call));
        }
        let mut output = None;
        for (name, call) in prepared {
            output = self
                .call_function(name, call, (path, action), depth, exec)
                .await?;
        }
        Ok(output)
    }

    /// Runs one prepared function call, turning panics and errors into record errors and
    /// running the payloads it returns.
    async fn call_function(
        &self,
        name: &'static str,
        call: crate::function::Prepared<'_>,
        (path, action): (&PathName, &Action),
        depth: usize,
        exec: &mut Exec<'_>,
    ) -> Result<Produced, RecordError> {
        let started = exec.invocation.metrics.as_ref().map(|_| Instant::now());
        let result =
            crate::log_scope::with_function(name, AssertUnwindSafe(call).catch_unwind()).await;
        if let (Some(m), Some(started)) = (&exec.invocation.metrics, started) {
            m.function_took(name, started.elapsed());
        }
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
                let kind = match ErrorKind::classify(&*e) {
                    ErrorKind::Unhandled if self.inner.errors.retries(path, &*e) => {
                        ErrorKind::Retryable
                    }
                    kind => kind,
                };
                return Err(RecordError::new(kind, e.to_string())
                    .at_path(path)
                    .in_function(name)
                    .with_source(e));
            }
            Ok(Ok(r)) => r,
        };
        Ok(match returned {
            Returned::Nothing => None,
            Returned::Output(v) => Some(Box::new(v)),
            Returned::Payloads(payloads) => {
                let mut last = None;
                for p in payloads {
                    self.check_declared_return(&p, action)
                        .map_err(|e| e.at_path(path).in_function(name))?;
                    last = self
                        .run_payload(p, path, depth + 1, exec)
                        .await
                        .map_err(|e| e.in_function(name))?;
                }
                last
            }
        })
    }

    /// A message for a queue whose options name a kwarg (`message_group_id_from`,
    /// `partition_key_from`: options ending in `_from`) must have it: without it the record
    /// fails with an error naming it (an ordinary error: kept or dropped by the error policy),
    /// never a silent fallback to another group or key.
    fn check_named_kwargs(
        &self,
        queue: &crate::Queue,
        kwargs: &Kwargs,
        path: &PathName,
    ) -> Result<(), RecordError> {
        for (option, field) in queue.kwarg_options() {
            if kwargs.value_of(field).is_some_and(|v| !v.is_null()) {
                continue;
            }
            let kind = if self.inner.errors.keeps(path) {
                ErrorKind::Retryable
            } else {
                ErrorKind::Unhandled
            };
            return Err(RecordError::new(
                kind,
                format!(
                    "queue {queue}: {option} names the kwarg '{field}', which this message lacks (or is null); not sent"
                ),
            ));
        }
        Ok(())
    }

    /// A payload to a path the function's action does not declare (when it declares any, see
    /// [`Action::returns_to`]) is an error.
    fn check_declared_return(&self, payload: &Payload, action: &Action) -> Result<(), RecordError> {
        let PayloadTarget::Path(to) = &payload.target else {
            return Ok(());
        };
        if action.returns_to.is_empty() {
            return Ok(());
        }
        let declared = match self.lookup(to.as_str()) {
            Some((name, _)) => action.returns_to.contains(name),
            None => false,
        };
        if declared {
            return Ok(());
        }
        let names: Vec<&str> = action.returns_to.iter().map(PathName::as_str).collect();
        Err(RecordError::new(
            ErrorKind::InvalidPath,
            format!(
                "returned a payload to path {to}, which its action does not declare (it returns to: {})",
                names.join(", ")
            ),
        ))
    }

    fn run_payload<'a>(
        &'a self,
        payload: Payload,
        from: &'a PathName,
        depth: usize,
        exec: &'a mut Exec<'_>,
    ) -> BoxFuture<'a, Result<Produced, RecordError>> {
        async move {
            match payload.target {
                PayloadTarget::Path(path) => {
                    if depth > self.inner.max_depth {
                        return Err(self.too_deep(&path));
                    }
                    let Some((name, _)) = self.lookup(path.as_str()) else {
                        return Err(self.unknown_path(path.as_str()));
                    };
                    let name = name.clone();
                    self.run_path(&name, &payload.kwargs, depth, exec).await
                }
                PayloadTarget::Queue(queue) => {
                    crate::pipeline::check_queue(
                        &queue,
                        &self.inner.registry,
                        self.inner
                            .catch_all_sink
                            .as_ref()
                            .or(self.inner.fallback_sink.as_ref()),
                    )
                    .map_err(|problem| {
                        RecordError::new(
                            ErrorKind::Undeliverable,
                            format!("returned payload: {}", problem.describe(&queue)),
                        )
                    })?;
                    self.check_named_kwargs(&queue, &payload.kwargs, from)?;
                    let body = queue.message_body(&payload.kwargs);
                    exec.push(queue, body);
                    Ok(None)
                }
            }
        }
        .boxed()
    }
}
