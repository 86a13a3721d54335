//! Amazon Kinesis Data Streams for [lpipe](https://crates.io/crates/lpipe): an event source and
//! a sink.
//!
//! - [`KinesisSource`] decodes Kinesis Lambda events (`eventSource: "aws:kinesis"`; the lpipe
//!   message is the base64 `kinesis.data`). Records run in batch order; after a record fails,
//!   the later records are not run (Lambda replays the shard from the lowest failed sequence
//!   number, so running them would only repeat side effects) and are reported with it. The
//!   response is a partial batch response (`{"batchItemFailures": [{"itemIdentifier":
//!   sequenceNumber}], "stats": …}`), or, for mappings without `ReportBatchItemFailures`
//!   ([`KinesisSource::without_partial_responses`]), a failed invocation.
//! - [`KinesisSink`] sends to queues of kind `kinesis` (a stream name or ARN) with PutRecords,
//!   within the API's limits, retrying the records AWS reports as throttled or failed
//!   internally.
//!
//! Both register themselves when this crate is linked (the `kinesis` feature of `lpipe`).
//!
//! The feature `client` (on by default) brings the AWS SDK and the sink. Without it (the
//! facade's `kinesis-source`), the crate is the event source alone: a Lambda that only
//! consumes a stream builds without the SDK, in a fraction of the binary and of the cold start.
#![warn(missing_docs)]

#[cfg(feature = "client")]
mod sink;
mod source;

use std::sync::Arc;

use lpipe_core::{registry::SourceRegistration, source::EventSource};

#[cfg(feature = "client")]
pub use sink::{
    KinesisSink, KINESIS_MAX_BATCH_BYTES, KINESIS_MAX_RECORDS, KINESIS_MAX_RECORD_BYTES,
};
pub use source::KinesisSource;

/// The Kinesis client shared by everything in this crate that was not given one: built once per
/// process from the standard AWS configuration (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_KINESIS`
/// included).
#[cfg(feature = "client")]
pub async fn shared_client() -> aws_sdk_kinesis::Client {
    static CLIENT: tokio::sync::OnceCell<aws_sdk_kinesis::Client> =
        tokio::sync::OnceCell::const_new();
    CLIENT
        .get_or_init(|| async { aws_sdk_kinesis::Client::new(&lpipe_aws::sdk_config().await) })
        .await
        .clone()
}

fn build_source() -> Arc<dyn EventSource> {
    Arc::new(KinesisSource::new())
}

#[cfg(feature = "client")]
fn build_sink() -> Arc<dyn lpipe_core::sink::Sink> {
    static SINK: std::sync::OnceLock<KinesisSink> = std::sync::OnceLock::new();
    Arc::new(SINK.get_or_init(KinesisSink::new).clone())
}

lpipe_core::registry::inventory::submit! { SourceRegistration { name: KinesisSource::NAME, build: build_source } }
#[cfg(feature = "client")]
lpipe_core::registry::inventory::submit! { lpipe_core::registry::SinkRegistration { kind: "kinesis", build: build_sink } }

/// Refers to this crate, so that it is linked and its registrations (its event source and
/// sink) are seen; returns the source's name. A program that depends on this crate directly
/// and names nothing of it would not link it (rustc links a dependency only when the program
/// names it): `use lpipe_kinesis as _;` once in the program does it, and so does calling this.
/// Through the `lpipe` facade nothing is needed.
#[inline(never)]
pub fn link() -> &'static str {
    KinesisSource::NAME
}
