//! CloudWatch Events / Amazon EventBridge for [lpipe](https://crates.io/crates/lpipe): an event
//! source for events delivered by a rule, and a sink that puts events on a bus.
//!
//! - [`CloudWatchSource`] handles scheduled events and custom events delivered by a rule
//!   (`source`, `detail-type`, `detail`; or `source` and `detail` alone). The lpipe message is the event's `detail`: the
//!   directed-graph form when it has `path` and `kwargs`, otherwise bare kwargs for the
//!   pipeline's default path; or the source routes by `detail-type` to a path
//!   ([`CloudWatchSource::route`]). One event per invocation: a catastrophic failure fails the
//!   invocation (so the rule's retry policy and dead-letter queue apply); a dropped event
//!   returns normally. (A rule with constant JSON input delivers a plain lpipe message: that is
//!   the raw source's job.)
//! - [`EventBridgeSink`] sends to queues of kind `eventbridge` (a bus name or ARN) with
//!   PutEvents, the message as `detail`, retrying entries that failed for throttling or an
//!   internal failure.
//!
//! Both register themselves when this crate is linked (the `cloudwatch` feature of `lpipe`).
#![warn(missing_docs)]

mod sink;
mod source;

use std::sync::{Arc, OnceLock};

use lpipe_core::{
    registry::{SinkRegistration, SourceRegistration},
    sink::Sink,
    source::EventSource,
};

pub use sink::{
    EventBridgeSink, EVENTBRIDGE_CALLS_IN_FLIGHT, EVENTBRIDGE_MAX_BATCH_BYTES,
    EVENTBRIDGE_MAX_ENTRIES,
};
pub use source::CloudWatchSource;

/// The CloudWatch Events client shared by everything in this crate that was not given one:
/// built once per process from the standard AWS configuration (`AWS_ENDPOINT_URL` /
/// `AWS_ENDPOINT_URL_CLOUDWATCH_EVENTS` included).
pub async fn shared_client() -> aws_sdk_cloudwatchevents::Client {
    static CLIENT: tokio::sync::OnceCell<aws_sdk_cloudwatchevents::Client> =
        tokio::sync::OnceCell::const_new();
    CLIENT
        .get_or_init(|| async {
            aws_sdk_cloudwatchevents::Client::new(&lpipe_aws::sdk_config().await)
        })
        .await
        .clone()
}

fn build_source() -> Arc<dyn EventSource> {
    Arc::new(CloudWatchSource::new())
}

fn build_sink() -> Arc<dyn Sink> {
    static SINK: OnceLock<EventBridgeSink> = OnceLock::new();
    Arc::new(SINK.get_or_init(EventBridgeSink::new).clone())
}

lpipe_core::registry::inventory::submit! { SourceRegistration { name: CloudWatchSource::NAME, build: build_source } }
lpipe_core::registry::inventory::submit! { SinkRegistration { kind: "eventbridge", build: build_sink } }

/// Refers to this crate, so that it is linked and its registrations (its event source and
/// sink) are seen; returns the source's name. A program that depends on this crate directly
/// and names nothing of it would not link it (rustc links a dependency only when the program
/// names it): `use lpipe_cloudwatch as _;` once in the program does it, and so does calling this.
/// Through the `lpipe` facade nothing is needed.
#[inline(never)]
pub fn link() -> &'static str {
    CloudWatchSource::NAME
}
