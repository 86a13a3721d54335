//! Declaring a pipeline: the builder's settings, and `build`, which checks them.

use crate::metrics::Metrics;
use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::Duration;

use crate::action::Action;
use crate::context::StateMap;
use crate::error::{GraphLocation, InvalidConfigurationError, OnError};
use crate::function::IntoFunction;
use crate::idempotency::Idempotency;
use crate::path::{IntoPathName, PathName};
use crate::queue::{Queue, QueueKind};
use crate::registry::Registry;
use crate::report::{NoReporter, Reporter};
use crate::sink::{MemorySink, RetryPolicy, Sink};
use crate::source::EventSource;

use super::policy::is_type;
use super::validate::{
    check_action, check_dead_letter_queue, check_policies, collect_paths, find_cycle,
    named_sources, Recording,
};
use super::{ErrorPolicy, IdempotencyPolicy, Inner, Pipeline};

/// Builds a [`Pipeline`]. Every problem of the graph is found by [`PipelineBuilder::build`].
#[must_use]
pub struct PipelineBuilder {
    pub(crate) paths: Vec<(PathName, Vec<Action>)>,
    default_path: Option<PathName>,
    registry: Option<Registry>,
    sinks: Vec<(QueueKind, Arc<dyn Sink>)>,
    sources: Vec<Arc<dyn EventSource>>,
    record_outbound: Option<MemorySink>,
    record_unsendable: Option<MemorySink>,
    source: Vec<String>,
    detect_source: bool,
    reporter: Arc<dyn Reporter>,
    max_depth: usize,
    retry: RetryPolicy,
    state: StateMap,
    deadline_margin: Duration,
    pub(crate) dead_letter: Option<Queue>,
    concurrency: usize,
    errors: ErrorPolicy,
    metrics: Option<Metrics>,
    idempotency: IdempotencyPolicy,
    large_payloads: Option<crate::payload::LargePayloads>,
    local: bool,
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        PipelineBuilder {
            paths: Vec::new(),
            default_path: None,
            registry: None,
            sinks: Vec::new(),
            sources: Vec::new(),
            record_outbound: None,
            record_unsendable: None,
            source: Vec::new(),
            detect_source: false,
            reporter: Arc::new(NoReporter),
            max_depth: 32,
            retry: RetryPolicy::default(),
            state: StateMap::new(),
            deadline_margin: Duration::from_millis(500),
            dead_letter: None,
            concurrency: 1,
            errors: ErrorPolicy::default(),
            metrics: None,
            idempotency: IdempotencyPolicy::default(),
            large_payloads: None,
            local: false,
        }
    }
}

impl PipelineBuilder {
    /// Declares a path: a name (a string or a [`path_enum!`](crate::path_enum) variant) and its
    /// actions, in order. An action calling several functions is one
    /// `Action::new().function(a).function(b)`; a path of one action calling one function is
    /// [`path_fn`](Self::path_fn).
    ///
    /// A [`Function`](crate::function::Function) is not an action: a list of functions does not make a path.
    ///
    /// ```compile_fail
    /// use lpipe_core::{function, NoParams, Pipeline};
    /// async fn a(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
    /// let _ = Pipeline::builder().path("A", [function(a)]);
    /// ```
    pub fn path(
        mut self,
        name: impl IntoPathName,
        actions: impl IntoIterator<Item = Action>,
    ) -> Self {
        self.paths
            .push((name.into_path_name(), actions.into_iter().collect()));
        self
    }

    /// Declares a path of one action that calls one function: the short form of
    /// `.path(name, [Action::new().function(f)])`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{NoParams, Pipeline};
    /// async fn ping(_: NoParams) -> Result<&'static str, lpipe_core::BoxError> { Ok("pong") }
    /// let pipeline = Pipeline::builder().path_fn("PING", ping).build().unwrap();
    /// assert_eq!(pipeline.paths().next().unwrap().1.len(), 1);
    /// ```
    pub fn path_fn<M>(self, name: impl IntoPathName, f: impl IntoFunction<M>) -> Self {
        self.path(name, [Action::new().function(f)])
    }

    /// Makes messages bare kwargs for this path (Python lpipe's `default_path`).
    pub fn default_path(mut self, name: impl IntoPathName) -> Self {
        self.default_path = Some(name.into_path_name());
        self
    }

    /// Uses this registry instead of the one `inventory` collected.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Sends queues of this kind with this sink (a custom kind, or replacing a built-in).
    pub fn sink(mut self, kind: QueueKind, sink: impl Sink) -> Self {
        self.sinks.push((kind, Arc::new(sink)));
        self
    }

    /// Adds an event source (beside the registered ones).
    pub fn event_source(mut self, source: impl EventSource) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Serves only the source of this name, with no detection among the others.
    ///
    /// The source must still recognise each event ([`EventSource::matches`]): an event of
    /// another kind (a Kinesis event handed to a pipeline pinned to `sqs`, say, by a
    /// misconfigured event source mapping) fails the invocation with `InvalidEvent`, so that
    /// its records come back instead of being dropped and acknowledged.
    ///
    /// A binary that links more than one event source (besides `raw`: several features of
    /// one crate, shared by its Lambdas) must name the one each pipeline consumes, with this
    /// call, or ask for detection with [`detect_source`](Self::detect_source); otherwise
    /// [`build`](Self::build) fails naming them.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{NoParams, Pipeline};
    /// # async fn work(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
    /// let pipeline = Pipeline::builder().path_fn("WORK", work).only_source("raw").build();
    /// assert!(pipeline.is_ok());
    /// ```
    pub fn only_source(mut self, name: impl Into<String>) -> Self {
        self.source = vec![name.into()];
        self
    }

    /// Serves only the sources of these names: a Lambda fed by more than one kind of
    /// trigger (an SQS queue and a DynamoDB stream, say). Each event is taken by the one of
    /// them that recognises it; an event none of them recognises fails the invocation with
    /// `InvalidEvent`, as with [`only_source`](Self::only_source).
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{NoParams, Pipeline};
    /// # async fn work(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
    /// let unknown = Pipeline::builder().path_fn("WORK", work).sources(["raw", "sqs"]).build();
    /// // lpipe-core alone registers only `raw`.
    /// assert!(unknown.unwrap_err().to_string().contains("'sqs' is not registered"));
    /// ```
    pub fn sources<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.source = names.into_iter().map(Into::into).collect();
        self
    }

    /// Picks each event's source among the registered ones by the event's shape, instead of
    /// consuming one named source ([`only_source`](Self::only_source)). Only for a Lambda
    /// that is meant to take events of several sources: an event of a source it was not
    /// meant to take (a misconfigured mapping) is then taken by the source it looks like, and
    /// its records, with paths this pipeline may not have, are dropped and acknowledged.
    pub fn detect_source(mut self) -> Self {
        self.detect_source = true;
        self
    }

    /// Writes CloudWatch metrics (Embedded Metric Format) for every invocation: records
    /// received, succeeded, dropped, failed and not started (in total and per path), function
    /// and batch durations, outbound messages per queue kind, and the functions' own (see
    /// [`Context::count`](crate::Context::count)). Without this call, metrics are on when
    /// `LPIPE_METRICS_NAMESPACE` is set ([`Metrics::from_env`]).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The local mode runs this pipeline: metrics go to stderr (stdout is the response).
    pub(crate) fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Records every outbound message, of any queue kind, in this sink instead of sending it
    /// (the local mode; tests).
    pub fn record_outbound(mut self, sink: MemorySink) -> Self {
        self.record_outbound = Some(sink);
        self
    }

    /// Records the messages of queue kinds that have no sink in this sink instead of failing
    /// the build (the local mode with `--send`: kinds whose plugin is not enabled are recorded
    /// and printed, with a warning, while the others are sent).
    pub fn record_unsendable(mut self, sink: MemorySink) -> Self {
        self.record_unsendable = Some(sink);
        self
    }

    /// Reports dropped and failed records to this reporter.
    pub fn reporter(mut self, reporter: impl Reporter) -> Self {
        self.reporter = Arc::new(reporter);
        self
    }

    /// Bounds the nesting of paths and returned payloads (default 32); past it the record
    /// fails with [`ErrorKind::DepthExceeded`](crate::ErrorKind::DepthExceeded).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// How failed outbound messages are retried.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Shared state for functions (SDK clients, configuration, built once at start-up), one
    /// value per type (a second value of the same type replaces the first). A function takes
    /// it as [`State<T>`](crate::State), which [`build`](Self::build) checks is given, or reads
    /// it with [`Context::state`](crate::Context::state).
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Action, NoParams, Pipeline, State};
    /// struct Table(String);
    /// async fn store(_: NoParams, table: State<Table>) -> Result<String, lpipe_core::BoxError> {
    ///     Ok(format!("stored in {}", table.0))
    /// }
    /// let pipeline = Pipeline::builder()
    ///     .path("STORE", [Action::new().function(store)])
    ///     .state(Table("orders".into()))
    ///     .build();
    /// assert!(pipeline.is_ok());
    /// let without = Pipeline::builder().path("STORE", [Action::new().function(store)]).build();
    /// assert!(without.unwrap_err().to_string().contains("takes State<"));
    /// ```
    pub fn state<T: Any + Send + Sync>(mut self, state: T) -> Self {
        self.state.insert(TypeId::of::<T>(), Arc::new(state));
        self
    }

    /// Records are not started when less than this remains before the Lambda deadline
    /// (default 500 ms); they are reported as failed so the source retries them.
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// Runs up to `n` records of a batch at once (default 1: one after another). Worth it when
    /// functions wait on I/O (HTTP calls, databases).
    ///
    /// Order is kept where the source has one: records sharing an ordering key (an SQS FIFO
    /// message group, a Kinesis partition key) still run one after another, and after one
    /// fails the rest of its key are not run, as with `n = 1`. Unordered records (standard SQS
    /// queues, direct invocations) run independently. For Kinesis, where a failure stops the
    /// batch, a failure stops records from *starting*; records of other partition keys that
    /// were already running finish (Lambda replays the shard from the lowest failed sequence
    /// number, which may repeat them). The response and outputs stay in record order, and
    /// so do each queue's outbound messages. `n = 0` is refused by [`build`](Self::build).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Forwards every dropped record to this queue, as it came: the record's body verbatim
    /// (for a record whose path its source chose, such as an EventBridge route, the message
    /// `{"path": …, "kwargs": body}`), so that it can be inspected and replayed, for example
    /// by an SQS redrive to the source queue. Why it was dropped is logged and reported as
    /// usual.
    ///
    /// The message goes out with the batch's other outbound messages; if it cannot be
    /// delivered, the record fails instead (kept and retried by its source). A record whose
    /// body could not be read at all (invalid base64, not UTF-8) is only dropped, with a
    /// warning. The queue must have no path.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Action, Pipeline, Queue};
    /// # async fn work(_: lpipe_core::NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
    /// let pipeline = Pipeline::builder()
    ///     .path("WORK", [Action::new().function(work)])
    ///     .dead_letter_queue(Queue::sqs("work-dropped"))
    ///     .record_outbound(lpipe_core::sink::MemorySink::new())
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn dead_letter_queue(mut self, queue: Queue) -> Self {
        self.dead_letter = Some(queue);
        self
    }

    /// Reads and writes payloads kept in S3 as AWS's extended client libraries keep them: a
    /// record whose message is a pointer (marked by the `ExtendedPayloadSize` attribute) runs
    /// with the payload fetched from an allowed bucket, and, with
    /// [`offload_to`](crate::payload::LargePayloads::offload_to), outbound messages over the
    /// threshold are put in the bucket and sent as pointers. See [`crate::payload`].
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::payload::{LargePayloads, MemoryPayloadStore};
    /// use lpipe_core::Pipeline;
    /// # async fn work(_: lpipe_core::NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
    /// let pipeline = Pipeline::builder()
    ///     .path_fn("WORK", work)
    ///     .large_payloads(LargePayloads::new(MemoryPayloadStore::new()).allow_bucket("payloads"))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn large_payloads(mut self, payloads: crate::payload::LargePayloads) -> Self {
        self.large_payloads = Some(payloads);
        self
    }

    /// What an ordinary error (neither [`FailButContinue`](crate::FailButContinue) nor
    /// [`FailCatastrophically`](crate::FailCatastrophically)) does to its record, on every path
    /// that does not say otherwise with [`on_error_in`](Self::on_error_in): dropped
    /// ([`OnError::Drop`], the default, as in Python lpipe) or kept for retry
    /// ([`OnError::Retry`]). See [`OnError`] for the poison-message trade-off.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Action, OnError, Pipeline};
    /// async fn store(_: lpipe_core::NoParams) -> Result<(), std::io::Error> {
    ///     Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "database timed out"))
    /// }
    /// let pipeline = Pipeline::builder()
    ///     .path("STORE", [Action::new().function(store)])
    ///     .on_error(OnError::Retry)
    ///     .build()
    ///     .unwrap();
    /// # let _ = pipeline;
    /// ```
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.errors.pipeline = policy;
        self
    }

    /// What an ordinary error raised by the functions of this path's actions does to its
    /// record (overrides [`on_error`](Self::on_error) for that path). The path must be
    /// declared.
    pub fn on_error_in(mut self, path: impl IntoPathName, policy: OnError) -> Self {
        self.errors.by_path.insert(path.into_path_name(), policy);
        self
    }

    /// Keeps for retry every record whose function fails with an error of type `E` (found
    /// anywhere in the error's `source()` chain), whatever the policy: mark your transient
    /// errors once instead of wrapping each call site in
    /// [`FailCatastrophically`](crate::FailCatastrophically).
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Action, Pipeline};
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("the database is busy")]
    /// struct Busy;
    /// async fn store(_: lpipe_core::NoParams) -> Result<(), lpipe_core::BoxError> {
    ///     Err(Busy.into())
    /// }
    /// let pipeline = Pipeline::builder()
    ///     .path("STORE", [Action::new().function(store)])
    ///     .retry_on::<Busy>()
    ///     .build()
    ///     .unwrap();
    /// # let _ = pipeline;
    /// ```
    pub fn retry_on<E: std::error::Error + 'static>(mut self) -> Self {
        self.errors.retried_types.push(is_type::<E>);
        self.errors
            .retried_type_names
            .push(std::any::type_name::<E>());
        self
    }

    /// Makes every record idempotent: its effects happen once, however often it is delivered
    /// (see [`crate::idempotency`] for what each state of its key does). Paths may say
    /// otherwise with [`idempotent_in`](Self::idempotent_in).
    pub fn idempotent(mut self, idempotency: Idempotency) -> Self {
        self.idempotency.pipeline = Some(self.idempotency.add(idempotency));
        self
    }

    /// Makes this path idempotent (overrides [`idempotent`](Self::idempotent) for it); the
    /// path must be declared. The first idempotent path a record's run reaches claims the
    /// record's key, by that path's kwargs: whether the record entered by it, another path ran
    /// it, or a function returned a [`Payload`](crate::Payload) to it. What the run did before
    /// it reached the path is the record's, unguarded; a duplicate does not run the path again
    /// (its stored output is the path's result). Once a run holds a key, later idempotent
    /// paths of the same run are part of it, not keyed again.
    pub fn idempotent_in(mut self, path: impl IntoPathName, idempotency: Idempotency) -> Self {
        let i = self.idempotency.add(idempotency);
        self.idempotency.by_path.insert(path.into_path_name(), i);
        self
    }

    /// Validates the graph and builds the pipeline.
    ///
    /// # Errors
    ///
    /// [`InvalidConfigurationError`] naming the offender: no paths; a duplicate path name; a
    /// path with no actions; an action with nothing to do; an action or the default path
    /// naming an unknown path; paths that run each other in a cycle; a queue whose kind has
    /// no sink, or that its sink rejects; a dead-letter queue with a path or without a sink; a
    /// concurrency of 0; an unknown event source name, or none named where several are linked
    /// (see [`only_source`](Self::only_source)); `on_error_in` or `idempotent_in`
    /// naming an unknown path; an idempotency key of no fields.
    pub fn build(self) -> Result<Pipeline, InvalidConfigurationError> {
        use InvalidConfigurationError as E;
        if self.paths.is_empty() {
            return Err(E::NoPaths);
        }
        let metrics = self.metrics.or_else(Metrics::from_env);
        if let Some(m) = &metrics {
            m.check().map_err(|why| E::InvalidMetrics { why })?;
        }
        let mut registry = self.registry.unwrap_or_else(Registry::from_inventory);
        for s in self.sources {
            registry = registry.with_source(s);
        }
        for (kind, sink) in self.sinks {
            registry.sinks_mut().insert(kind, sink);
        }
        let (paths, path_order) = collect_paths(self.paths)?;
        let sinks = Recording {
            catch_all: self.record_outbound.map(|s| Arc::new(s) as Arc<dyn Sink>),
            fallback: self.record_unsendable.map(|s| Arc::new(s) as Arc<dyn Sink>),
        };
        for name in &path_order {
            for (i, action) in paths[name].iter().enumerate() {
                let at = GraphLocation::Action {
                    path: name.clone(),
                    action: i + 1,
                };
                check_action(at, action, &paths, &registry, &sinks, &self.state)?;
            }
        }
        if self.concurrency == 0 {
            return Err(E::ZeroConcurrency);
        }
        if let Some(q) = &self.dead_letter {
            check_dead_letter_queue(q, &registry, &sinks)?;
        }
        if let Some(d) = &self.default_path {
            if !paths.contains_key(d) {
                return Err(E::UnknownDefaultPath { path: d.clone() });
            }
        }
        if let Some(cycle) = find_cycle(&path_order, &paths) {
            return Err(E::Cycle { paths: cycle });
        }
        check_policies(&self.errors, &self.idempotency, &paths, &path_order)?;
        let sources = named_sources(self.source, self.detect_source, &registry)?;
        Ok(Pipeline {
            inner: Arc::new(Inner {
                paths,
                path_order,
                default_path: self.default_path,
                registry,
                catch_all_sink: sinks.catch_all,
                fallback_sink: sinks.fallback,
                sources,
                reporter: self.reporter,
                max_depth: self.max_depth,
                retry: self.retry,
                state: Arc::new(self.state),
                deadline_margin: self.deadline_margin,
                dead_letter: self.dead_letter,
                concurrency: self.concurrency,
                errors: self.errors,
                metrics,
                idempotency: self.idempotency,
                large_payloads: self.large_payloads,
                local: self.local,
            }),
        })
    }
}
