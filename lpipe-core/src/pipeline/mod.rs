//! Declaring and building a pipeline: the graph is validated as a whole at build time.

use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::context::StateMap;
use crate::function::IntoFunction;
use crate::queue::{Queue, QueueKind};
use crate::registry::Registry;
use crate::report::Reporter;
use crate::sink::{RetryPolicy, Sink};
use crate::source::EventSource;

mod builder;
mod policy;
mod validate;

pub use builder::PipelineBuilder;
pub(crate) use policy::{ErrorPolicy, IdempotencyPolicy};
pub(crate) use validate::check_queue;

pub use crate::action::{Action, RequiredParam};
pub use crate::path::{IntoPathName, PathName};
pub use crate::queue::PayloadTarget;

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
    /// Payloads kept in S3: read before records run, written for large outbound messages.
    pub(crate) large_payloads: Option<crate::payload::LargePayloads>,
    /// Run by the local mode: metrics go to stderr, not stdout.
    pub(crate) local: bool,
}

/// The paths by name.
pub(crate) type Paths = HashMap<PathName, Vec<Action>>;

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
    pub(crate) fn routing(
        &self,
        message: &crate::sink::OutboundMessage,
    ) -> Vec<(&'static str, String)> {
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
