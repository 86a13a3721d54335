#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod action;
pub mod borrow;
mod context;
mod dispatch;
mod error;
mod function;
pub mod idempotency;
mod kwargs;
mod kwargs_de;
mod log_scope;
mod logging;
mod mermaid;
mod metrics;
mod outbox;
mod params;
mod path;
mod pipeline;
mod plugins;
mod queue;
mod registry;
mod report;
mod runtime;
mod sink;
mod source;

#[cfg(feature = "test-kit")]
pub mod testing;

pub use action::{Action, Param};
pub use context::{Context, RecordInfo};
pub use error::{
    BoxError, ErrorKind, FailButContinue, FailCatastrophically, InvalidConfigurationError,
    InvocationError, OnError, Outcome, Place, QueueProblem, RecordError,
};
pub use function::{function, Function, IntoFunction, IntoReturn, Output, Returned, State};
pub use idempotency::{
    HeldKeys, Idempotency, IdempotencyKey, IdempotencyStore, MemoryIdempotencyStore,
};
pub use kwargs::{Kwargs, KwargsError};
pub use logging::{init_logging, LogFormat, LogSettings};
pub use metrics::{Metrics, Unit};
pub use params::{NoParams, Params};
pub use path::{IntoPathName, PathName};
pub use pipeline::{Pipeline, PipelineBuilder, AUTO_PATH};
pub use queue::{Payload, Queue, QueueKind, Target};
pub use registry::{Registry, SinkRegistration, SourceRegistration};
pub use report::{NoReporter, Report, Reporter};
pub use runtime::{
    lambda_config_from_env, run, run_lambda, run_local, usage, Command, LocalOptions,
};
pub use sink::{
    stable_digest, MemorySink, OutboundMessage, RetryPolicy, SendError, Sink, SinkLimits,
    DEAD_LETTER_ATTRIBUTES, MESSAGE_ID_ATTRIBUTE,
};
pub use source::{decode_records, trace_id};
pub use source::{
    BatchResult, Body, DynamoDbMeta, EventBridgeMeta, EventProbe, EventSource, InvalidEvent,
    KinesisMeta, Ordering, RawSource, Record, RecordMeta, RecordResult, SqsMeta, Stats,
};

/// Re-exported for implementing [`EventSource`], [`Sink`] and [`Reporter`].
pub use async_trait::async_trait;
/// Re-exported for plugin registration.
pub use inventory;
/// Re-exported: the Lambda runtime's types (`Context`, `Config`).
pub use lambda_runtime;
