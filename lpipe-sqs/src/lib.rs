//! Amazon SQS for [lpipe](https://crates.io/crates/lpipe): an event source and a sink.
//!
//! - [`SqsSource`] decodes SQS Lambda events (`eventSource: "aws:sqs"`; the lpipe message is
//!   the record's `body`) and answers with a partial batch response
//!   (`{"batchItemFailures": [{"itemIdentifier": messageId}], "stats": …}`) for mappings with
//!   `ReportBatchItemFailures`, or, in the classic mode of Python lpipe
//!   ([`SqsSource::classic`]), deletes the acknowledged messages and fails the invocation so
//!   only the failed ones return. FIFO records (`MessageGroupId`) run in group order; after a
//!   failure the rest of that group is not run and is reported as failed too.
//! - [`SqsSink`] sends to queues of kind `sqs` (name, URL or ARN) with SendMessageBatch,
//!   within the API's limits, retrying the entries AWS says can be retried.
//!
//! - [`worker`]: the same pipeline as a long-running SQS consumer (`my-lambda worker --queue
//!   NAME`), with the semantics of Lambda's event source mapping.
//!
//! Both register themselves with the lpipe registry when this crate is linked (the `sqs`
//! feature of the `lpipe` facade). Clients are built once per process from the standard AWS
//! configuration (`aws-config`: region, credentials, `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_SQS`).
//!
//! The feature `client` (on by default) brings the AWS SDK and what needs it: the sink, the
//! worker, the classic mode and backoff. Without it (the facade's `sqs-source`), the crate is
//! the event source with partial batch responses alone: a Lambda that only consumes SQS builds
//! without the SDK, in a fraction of the binary and of the cold start.
#![warn(missing_docs)]

#[cfg(feature = "client")]
mod acks;
#[cfg(feature = "client")]
mod sink;
mod source;
#[cfg(feature = "client")]
mod urls;
#[cfg(feature = "client")]
pub mod worker;

use std::sync::Arc;

use lpipe_core::{registry::SourceRegistration, source::EventSource};

#[cfg(feature = "client")]
pub use lpipe_core::sink::Backoff;
#[cfg(feature = "client")]
pub use sink::{
    SqsSink, SQS_CALLS_IN_FLIGHT, SQS_MAX_BATCH_BYTES, SQS_MAX_ENTRIES, SQS_MAX_MESSAGE_BYTES,
};
pub use source::{SqsEnvelope, SqsMode, SqsSource};

/// The SQS client shared by everything in this crate that was not given one: built once per
/// process from the standard AWS configuration.
#[cfg(feature = "client")]
pub async fn shared_client() -> aws_sdk_sqs::Client {
    static CLIENT: tokio::sync::OnceCell<aws_sdk_sqs::Client> = tokio::sync::OnceCell::const_new();
    CLIENT
        .get_or_init(|| async { aws_sdk_sqs::Client::new(&lpipe_aws::sdk_config().await) })
        .await
        .clone()
}

fn build_source() -> Arc<dyn EventSource> {
    Arc::new(SqsSource::new())
}

#[cfg(feature = "client")]
fn build_sink() -> Arc<dyn lpipe_core::sink::Sink> {
    static SINK: std::sync::OnceLock<SqsSink> = std::sync::OnceLock::new();
    Arc::new(SINK.get_or_init(SqsSink::new).clone())
}

lpipe_core::registry::inventory::submit! { SourceRegistration { name: SqsSource::NAME, build: build_source } }
#[cfg(feature = "client")]
lpipe_core::registry::inventory::submit! { lpipe_core::registry::SinkRegistration { kind: "sqs", build: build_sink } }

/// Refers to this crate, so that it is linked and its registrations (its event source and
/// sink) are seen; returns the source's name. A program that depends on this crate directly
/// and names nothing of it would not link it (rustc links a dependency only when the program
/// names it): `use lpipe_sqs as _;` once in the program does it, and so does calling this.
/// Through the `lpipe` facade nothing is needed.
#[inline(never)]
pub fn link() -> &'static str {
    SqsSource::NAME
}
