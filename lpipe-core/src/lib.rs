#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod action;
pub mod borrow;
mod context;
pub mod describe;
mod dispatch;
pub mod error;
pub mod function;
pub mod idempotency;
mod kwargs;
mod kwargs_de;
mod log_scope;
mod logging;
mod mermaid;
pub mod metrics;
mod outbox;
mod params;
mod path;
pub mod payload;
pub mod pipeline;
mod plugins;
mod queue;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod sink;
pub mod source;

#[cfg(feature = "test-kit")]
pub mod testing;

// What a Lambda's code names; the rest is in the modules above (`source`, `sink`,
// `idempotency`, `report`, `runtime`, `registry`, `error`, `function`, `pipeline`, `metrics`).
pub use action::Action;
pub use context::Context;
pub use error::{
    BoxError, ErrorKind, FailButContinue, FailCatastrophically, InvalidConfigurationError, OnError,
    Outcome, RecordError,
};
#[cfg(feature = "schemars")]
pub use function::with_schema;
pub use function::{function, RecordOutput, State};
pub use idempotency::Idempotency;
pub use kwargs::Kwargs;
pub use metrics::{MetricUnit, Metrics};
pub use params::NoParams;
pub use pipeline::{Pipeline, PipelineBuilder};
pub use queue::{Payload, Queue, QueueKind};
pub use runtime::run;

/// Re-exported for implementing [`EventSource`](source::EventSource),
/// [`Sink`](sink::Sink) and [`Reporter`](report::Reporter).
pub use async_trait::async_trait;
/// Re-exported: the Lambda runtime's types (`Context`, `Config`).
pub use lambda_runtime;
