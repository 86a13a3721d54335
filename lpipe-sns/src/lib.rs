//! Amazon SNS for [lpipe](https://crates.io/crates/lpipe): the event source of a Lambda that a
//! topic triggers directly, and a sink that publishes to topics.
//!
//! - [`SnsSource`] decodes SNS Lambda events (`EventSource: "aws:sns"`): the notification's
//!   `Message` is the record's body (an lpipe message, or bare kwargs for a default path), its
//!   `MessageId` the record's id, and its topic, subject, timestamp and message attributes are on
//!   the function's [`Context`](lpipe_core::Context) (`ctx.record().sns()`). SNS invokes the
//!   function asynchronously, with one notification per invocation: a record that fails
//!   (kept for retry) fails the invocation, so that Lambda's retries of asynchronous invocations
//!   and the function's on-failure destination take over; a dropped record is logged, reported
//!   and dead-lettered as on any source, and the invocation succeeds.
//!
//! - [`SnsSink`] publishes to topics of kind `sns` ([`Queue::sns`](lpipe_core::Queue::sns): an
//!   ARN or a name) with PublishBatch, within the API's limits, FIFO topics included.
//!
//! Both register themselves when this crate is linked (the `sns` feature of `lpipe`). The
//! feature `client` (on by default) brings the AWS SDK and the sink; without it (the facade's
//! `sns-source`) the crate is the event source alone. SNS notifications delivered to an SQS
//! queue are read by the SQS source with its SNS envelope (`lpipe_sqs::SqsEnvelope::Sns`).
#![warn(missing_docs)]

#[cfg(feature = "client")]
mod sink;
mod source;

use std::sync::Arc;

use lpipe_core::{registry::SourceRegistration, source::EventSource};

#[cfg(feature = "client")]
pub use sink::{
    SnsSink, SNS_CALLS_IN_FLIGHT, SNS_MAX_BATCH_BYTES, SNS_MAX_ENTRIES, SNS_MAX_MESSAGE_BYTES,
};
pub use source::SnsSource;

/// The SNS client shared by everything in this crate that was not given one: built once per
/// process from the standard AWS configuration (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SNS`
/// included).
#[cfg(feature = "client")]
pub async fn shared_client() -> aws_sdk_sns::Client {
    static CLIENT: tokio::sync::OnceCell<aws_sdk_sns::Client> = tokio::sync::OnceCell::const_new();
    CLIENT
        .get_or_init(|| async { aws_sdk_sns::Client::new(&lpipe_aws::sdk_config().await) })
        .await
        .clone()
}

fn build_source() -> Arc<dyn EventSource> {
    Arc::new(SnsSource::new())
}

#[cfg(feature = "client")]
fn build_sink() -> Arc<dyn lpipe_core::sink::Sink> {
    static SINK: std::sync::OnceLock<SnsSink> = std::sync::OnceLock::new();
    Arc::new(SINK.get_or_init(SnsSink::new).clone())
}

lpipe_core::registry::inventory::submit! { SourceRegistration { name: SnsSource::NAME, build: build_source } }
#[cfg(feature = "client")]
lpipe_core::registry::inventory::submit! { lpipe_core::registry::SinkRegistration { kind: "sns", build: build_sink } }

/// Refers to this crate, so that it is linked and its registrations are seen; returns the
/// source's name. A program that depends on this crate directly and names nothing of it would
/// not link it: `use lpipe_sns as _;` once in the program does it, and so does calling this.
/// Through the `lpipe` facade nothing is needed.
#[inline(never)]
pub fn link() -> &'static str {
    SnsSource::NAME
}
