//! Declaring and building a pipeline: the graph is validated as a whole at build time.

use crate::metrics::Metrics;
use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::action::Action;
use crate::context::StateMap;
use crate::error::{InvalidConfigurationError, OnError, Place, QueueProblem};
use crate::function::IntoFunction;
use crate::idempotency::Idempotency;
use crate::path::{IntoPathName, PathName};
use crate::queue::{Queue, QueueKind};
use crate::registry::Registry;
use crate::report::{NoReporter, Reporter};
use crate::sink::{MemorySink, RetryPolicy, Sink};
use crate::source::EventSource;

/// The path name used by [`Pipeline::from_function`].
pub const AUTO_PATH: &str = "AUTO_PATH";

/// A built, validated pipeline. Cheap to clone; build it once per process.
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, Pipeline, FailButContinue};
/// #[derive(serde::Deserialize)]
/// struct Subscribe { name: String, email: String }
///
/// async fn subscribe(args: Subscribe) -> Result<(), FailButContinue> {
///     if !args.email.contains('@') {
///         return Err(FailButContinue::new("bad email"));
///     }
///     Ok(())
/// }
///
/// # tokio_test();
/// # fn tokio_test() { tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let pipeline = Pipeline::builder()
///     .path("SUBSCRIBE", [Action::new().function(subscribe)])
///     .build()
///     .unwrap();
/// let event = r#"[{"path": "subscribe", "kwargs": {"name": "Ann", "email": "ann@example.com"}}]"#;
/// let response = pipeline.handle(event, Default::default()).await.unwrap();
/// assert_eq!(response["stats"]["successes"], 1);
/// # }) }
/// ```
#[derive(Clone)]
pub struct Pipeline {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Pipeline")
            .field("paths", &inner.path_order)
            .field("default_path", &inner.default_path)
            .field("sources", &inner.registry.source_names())
            .field("sink_kinds", &inner.registry.sink_kinds())
            .field("dead_letter", &inner.dead_letter)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) paths: Paths,
    pub(crate) path_order: Vec<PathName>,
    pub(crate) default_path: Option<PathName>,
    pub(crate) registry: Registry,
    pub(crate) catch_all_sink: Option<Arc<dyn Sink>>,
    pub(crate) fallback_sink: Option<Arc<dyn Sink>>,
    /// The sources it consumes (named with `only_source` / `sources`); empty: any registered
    /// one, detected by each event's shape (`detect_source`).
    pub(crate) sources: Vec<Arc<dyn EventSource>>,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) max_depth: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) state: Arc<StateMap>,
    pub(crate) deadline_margin: Duration,
    pub(crate) dead_letter: Option<Queue>,
    pub(crate) concurrency: usize,
    pub(crate) errors: ErrorPolicy,
    pub(crate) metrics: Option<Metrics>,
    /// Idempotency of the records entering by a path, then of all records.
    pub(crate) idempotency: IdempotencyPolicy,
    /// Run by the local mode: metrics go to stderr, not stdout.
    pub(crate) local: bool,
}

/// The paths by name.
pub(crate) type Paths = HashMap<PathName, Vec<Action>>;

/// Which records are idempotent, and how (see [`crate::idempotency`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct IdempotencyPolicy {
    /// Every setting, by the index records' claims name it with.
    all: Vec<Idempotency>,
    pipeline: Option<usize>,
    by_path: HashMap<PathName, usize>,
}

impl IdempotencyPolicy {
    /// The idempotency of records entering by this path, if any, and its index.
    #[inline]
    pub(crate) fn of(&self, path: &PathName) -> Option<(usize, &Idempotency)> {
        // Most pipelines are idempotent as a whole or not at all: no path to hash then.
        let i = if self.by_path.is_empty() {
            self.pipeline?
        } else {
            self.of_path(path)?
        };
        Some((i, &self.all[i]))
    }

    /// [`of`](Self::of)'s index when some paths have their own setting.
    fn of_path(&self, path: &PathName) -> Option<usize> {
        self.by_path.get(path).copied().or(self.pipeline)
    }

    /// How many settings there are (claims name them 0 to this).
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// The setting at this index.
    pub(crate) fn get(&self, i: usize) -> &Idempotency {
        &self.all[i]
    }

    fn add(&mut self, idempotency: Idempotency) -> usize {
        self.all.push(idempotency);
        self.all.len() - 1
    }
}

/// What ordinary errors do to their records (see [`OnError`]).
#[derive(Clone, Default)]
pub(crate) struct ErrorPolicy {
    pipeline: OnError,
    by_path: HashMap<PathName, OnError>,
    /// Error types kept whatever the policy: each tells whether an error is of its type.
    retried_types: Vec<fn(&(dyn std::error::Error + 'static)) -> bool>,
}

impl ErrorPolicy {
    /// Whether an ordinary error a function returned on `path` keeps its record for retry.
    pub(crate) fn retries(
        &self,
        path: &PathName,
        error: &(dyn std::error::Error + 'static),
    ) -> bool {
        let mut current = Some(error);
        while let Some(e) = current {
            if self.retried_types.iter().any(|is| is(e)) {
                return true;
            }
            current = e.source();
        }
        self.keeps(path)
    }

    /// Whether an ordinary error on `path` keeps its record for retry, by the policy alone.
    pub(crate) fn keeps(&self, path: &PathName) -> bool {
        self.by_path.get(path).copied().unwrap_or(self.pipeline) == OnError::Retry
    }
}

fn is_type<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<E>()
}

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
            local: false,
        }
    }
}

impl Pipeline {
    /// Starts declaring a pipeline.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The single-function form (Python lpipe's `call=`): messages are bare kwargs and every
    /// record calls `f`. The path is named [`AUTO_PATH`].
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::Pipeline;
    /// #[derive(serde::Deserialize)]
    /// struct Ping { n: u32 }
    /// async fn ping(args: Ping) -> Result<u32, std::convert::Infallible> { Ok(args.n + 1) }
    /// let pipeline = Pipeline::from_function(ping).build().unwrap();
    /// # let _ = pipeline;
    /// ```
    pub fn from_function<M>(f: impl IntoFunction<M>) -> PipelineBuilder {
        PipelineBuilder::default()
            .path(AUTO_PATH, [Action::new().function(f)])
            .default_path(AUTO_PATH)
    }

    /// The paths, in declaration order, with their actions.
    pub fn paths(&self) -> impl Iterator<Item = (&PathName, &[Action])> {
        self.inner
            .path_order
            .iter()
            .map(|p| (p, self.inner.paths[p].as_slice()))
    }

    /// The default path, if messages are bare kwargs.
    pub fn default_path(&self) -> Option<&PathName> {
        self.inner.default_path.as_ref()
    }

    /// The registry the pipeline uses.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn sink_for(&self, kind: &QueueKind) -> Option<Arc<dyn Sink>> {
        self.inner
            .catch_all_sink
            .clone()
            .or_else(|| self.inner.registry.sink(kind))
            .or_else(|| self.inner.fallback_sink.clone())
    }

    /// How the sink of its queue kind would route a message (see [`Sink::routing`]), even when
    /// the message was recorded instead of sent: the local mode prints it.
    pub(crate) fn routing(&self, message: &crate::OutboundMessage) -> Vec<(&'static str, String)> {
        self.inner
            .registry
            .sink(message.queue.kind())
            .map(|sink| sink.routing(message))
            .unwrap_or_default()
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<(&PathName, &[Action])> {
        let found = if crate::path::needs_normalizing(name) {
            self.inner
                .paths
                .get_key_value(crate::path::normalize(name).as_str())
        } else {
            self.inner.paths.get_key_value(name)
        };
        found.map(|(k, v)| (k, v.as_slice()))
    }
}

impl PipelineBuilder {
    /// Declares a path: a name (a string or a [`path_enum!`](crate::path_enum) variant) and its
    /// actions, in order. An action calling several functions is one
    /// `Action::new().function(a).function(b)`; a path of one action calling one function is
    /// [`path_fn`](Self::path_fn).
    ///
    /// A [`Function`](crate::Function) is not an action: a list of functions does not make a path.
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
    ///     .record_outbound(lpipe_core::MemorySink::new())
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn dead_letter_queue(mut self, queue: Queue) -> Self {
        self.dead_letter = Some(queue);
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
                let at = Place::Action {
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
                local: self.local,
            }),
        })
    }
}

/// The sinks that record messages instead of sending them: every message (`catch_all`, the
/// local mode and tests), or those of kinds without a sink (`fallback`, the local mode with
/// `--send`).
struct Recording {
    catch_all: Option<Arc<dyn Sink>>,
    fallback: Option<Arc<dyn Sink>>,
}

impl Recording {
    /// The sink that takes a queue's messages in place of its own, if any.
    fn any(&self) -> Option<&Arc<dyn Sink>> {
        self.catch_all.as_ref().or(self.fallback.as_ref())
    }
}

/// The declared paths by name, and their names in declaration order.
fn collect_paths(
    declared: Vec<(PathName, Vec<Action>)>,
) -> Result<(Paths, Vec<PathName>), InvalidConfigurationError> {
    use InvalidConfigurationError as E;
    let mut paths = HashMap::default();
    let mut order = Vec::new();
    for (name, actions) in declared {
        if name.as_str().is_empty() {
            return Err(E::EmptyPathName);
        }
        if paths.contains_key(&name) {
            return Err(E::DuplicatePath { path: name });
        }
        if actions.is_empty() {
            return Err(E::NoActions { path: name });
        }
        order.push(name.clone());
        paths.insert(name, actions);
    }
    Ok((paths, order))
}

/// One action: something to do, paths that exist, queues that can be sent to (and whose
/// `*_from` options name kwargs it passes on), the state its functions take, named params.
fn check_action(
    at: Place,
    action: &Action,
    paths: &Paths,
    registry: &Registry,
    sinks: &Recording,
    state: &StateMap,
) -> Result<(), InvalidConfigurationError> {
    use InvalidConfigurationError as E;
    if action.is_empty() {
        return Err(E::EmptyAction { at });
    }
    if let Some(p) = action.paths.iter().find(|p| !paths.contains_key(*p)) {
        let path = p.clone();
        return Err(E::UnknownPath { at, path });
    }
    for p in &action.returns_to {
        let path = p.clone();
        if action.functions.is_empty() {
            return Err(E::ReturnWithoutFunctions { at, path });
        }
        if !paths.contains_key(p) {
            return Err(E::UnknownReturnPath { at, path });
        }
    }
    for q in &action.queues {
        check_kwarg_options(q, action).map_err(|problem| queue_error(at.clone(), q, problem))?;
        if sinks.catch_all.is_none()
            && sinks.fallback.is_some()
            && registry.sink(q.kind()).is_none()
        {
            tracing::warn!(queue = %q, "no sink for queue kind '{}': its messages are recorded, not sent", q.kind());
        }
        check_queue(q, registry, sinks.any())
            .map_err(|problem| queue_error(at.clone(), q, problem))?;
    }
    for f in &action.functions {
        if let Some((type_id, type_name)) = f.state {
            if !state.contains_key(&type_id) {
                let function = f.name;
                return Err(E::MissingState {
                    at,
                    function,
                    type_name,
                });
            }
        }
    }
    if action
        .required_params
        .iter()
        .any(|p| p.from.is_empty() || p.to.is_empty())
    {
        return Err(E::EmptyParamName { at });
    }
    Ok(())
}

/// The dead-letter queue: no path, and a sink that takes it.
fn check_dead_letter_queue(
    q: &Queue,
    registry: &Registry,
    sinks: &Recording,
) -> Result<(), InvalidConfigurationError> {
    if q.consumer_path().is_some() {
        return Err(InvalidConfigurationError::DeadLetterWithPath {
            queue: q.to_string(),
        });
    }
    check_queue(q, registry, sinks.any())
        .map_err(|problem| queue_error(Place::DeadLetterQueue, q, problem))
}

/// The per-path policies name declared paths, and idempotency keys are made of fields their
/// paths take.
fn check_policies(
    errors: &ErrorPolicy,
    idempotency: &IdempotencyPolicy,
    paths: &Paths,
    path_order: &[PathName],
) -> Result<(), InvalidConfigurationError> {
    use InvalidConfigurationError as E;
    if let Some(unknown) = errors.by_path.keys().find(|p| !paths.contains_key(*p)) {
        let path = unknown.clone();
        return Err(E::UnknownErrorPolicyPath { path });
    }
    if let Some(unknown) = idempotency.by_path.keys().find(|p| !paths.contains_key(*p)) {
        let path = unknown.clone();
        return Err(E::UnknownIdempotentPath { path });
    }
    if idempotency
        .all
        .iter()
        .any(|i| i.key_fields().is_some_and(<[String]>::is_empty))
    {
        return Err(E::EmptyIdempotencyKey);
    }
    for name in path_order {
        if let Some((_, setting)) = idempotency.of(name) {
            check_key_fields(name, &paths[name], setting)?;
        }
    }
    Ok(())
}

/// The sources a pipeline consumes: those it names; none (any, by detection) only when it asks
/// for detection or the binary links at most one source besides `raw`.
fn named_sources(
    names: Vec<String>,
    detect: bool,
    registry: &Registry,
) -> Result<Vec<Arc<dyn EventSource>>, InvalidConfigurationError> {
    let mut sources = Vec::new();
    for name in names {
        match registry.source(&name) {
            Some(s) => sources.push(s),
            None => {
                let registered = registry.source_names();
                return Err(InvalidConfigurationError::UnknownSource { name, registered });
            }
        }
    }
    if sources.is_empty() && !detect {
        let linked: Vec<&'static str> = registry
            .source_names()
            .into_iter()
            .filter(|name| *name != crate::source::RawSource::NAME)
            .collect();
        if linked.len() > 1 {
            return Err(InvalidConfigurationError::SourceNotNamed { linked });
        }
    }
    Ok(sources)
}

/// The options of a queue that name a kwarg (`message_group_id_from`, `partition_key_from`:
/// any option whose name ends in `_from`) must name one its action passes on, when that is
/// known at build time.
fn check_kwarg_options(queue: &Queue, action: &Action) -> Result<(), QueueProblem> {
    let Some(forwarded) = action.forwarded_fields() else {
        return Ok(());
    };
    for (option, field) in queue.kwarg_options() {
        if !forwarded.contains(field) {
            return Err(QueueProblem::FieldNotForwarded {
                option: option.to_owned(),
                field: field.to_owned(),
                forwarded: forwarded.iter().map(|f| (*f).to_owned()).collect(),
            });
        }
    }
    Ok(())
}

/// An idempotent path's key fields must be kwargs its functions (or required parameters)
/// take, when that is known at build time: a field none of them takes is a misspelt name, and
/// every record would be dropped for lacking it.
fn check_key_fields(
    path: &PathName,
    actions: &[Action],
    idempotency: &Idempotency,
) -> Result<(), InvalidConfigurationError> {
    let Some(fields) = idempotency.key_fields() else {
        return Ok(());
    };
    let mut taken = BTreeSet::new();
    for action in actions {
        match action.read_fields() {
            Some(read) => taken.extend(read),
            None => return Ok(()),
        }
    }
    match fields.iter().find(|f| !taken.contains(f.as_str())) {
        Some(field) => Err(InvalidConfigurationError::UnknownKeyField {
            path: path.clone(),
            field: field.clone(),
            taken: taken.iter().map(|f| (*f).to_owned()).collect(),
        }),
        None => Ok(()),
    }
}

fn queue_error(at: Place, queue: &Queue, problem: QueueProblem) -> InvalidConfigurationError {
    InvalidConfigurationError::Queue {
        at,
        queue: Box::new(queue.clone()),
        problem,
    }
}

/// Whether a queue can be sent to: a target, a sink for its kind, options that sink knows and
/// a queue it accepts. The sink registered for the kind judges options and target even when
/// another sink records the messages (the local mode), so that a mistake shows before
/// deploying.
pub(crate) fn check_queue(
    q: &Queue,
    registry: &Registry,
    catch_all: Option<&Arc<dyn Sink>>,
) -> Result<(), QueueProblem> {
    if q.target().is_empty() {
        return Err(QueueProblem::EmptyTarget);
    }
    if let Some(own) = registry.sink(q.kind()) {
        if let Some(known) = own.options() {
            if let Some(unknown) = q.option_keys().find(|k| !known.contains(k)) {
                return Err(QueueProblem::UnknownOption {
                    option: unknown.to_owned(),
                    known: known.to_vec(),
                });
            }
        }
        if catch_all.is_some() {
            own.validate(q).map_err(QueueProblem::Rejected)?;
        }
    }
    let sink = catch_all
        .cloned()
        .or_else(|| registry.sink(q.kind()))
        .ok_or_else(|| QueueProblem::NoSink {
            registered: registry.sink_kinds(),
        })?;
    sink.validate(q).map_err(QueueProblem::Rejected)
}

fn find_cycle(order: &[PathName], paths: &Paths) -> Option<Vec<PathName>> {
    // Depth-first search over "action runs path" edges; returned payloads are dynamic and are
    // bounded by max_depth instead.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit<'a>(
        p: &'a PathName,
        paths: &'a Paths,
        marks: &mut HashMap<&'a PathName, Mark>,
        stack: &mut Vec<&'a PathName>,
    ) -> Option<Vec<PathName>> {
        match marks.get(p) {
            Some(Mark::Done) => return None,
            Some(Mark::Active) => {
                let start = stack.iter().position(|s| *s == p).unwrap_or(0);
                let mut names: Vec<PathName> =
                    stack[start..].iter().map(|s| (*s).clone()).collect();
                names.push(p.clone());
                return Some(names);
            }
            None => {}
        }
        marks.insert(p, Mark::Active);
        stack.push(p);
        let next: BTreeSet<&PathName> = paths[p].iter().flat_map(|a| a.paths.iter()).collect();
        for n in next {
            if let Some(c) = visit(n, paths, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(p, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for p in order {
        let mut stack = Vec::new();
        if let Some(c) = visit(p, paths, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}
