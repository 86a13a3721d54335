//! Amazon S3 for [lpipe](https://crates.io/crates/lpipe): the event source of a Lambda that a
//! bucket's event notifications trigger directly.
//!
//! [`S3Source`] decodes S3 Lambda events (`eventSource: "aws:s3"`): each record runs the path its
//! event name is routed to ([`S3Source::route`]), with the kwargs `bucket`, `key` (URL-decoded),
//! `size`, `etag`, `version_id` and `sequencer` (see
//! [`S3Envelope`](lpipe_core::source::S3Envelope), which reads the same notifications when they
//! arrive through an SQS queue). S3 invokes the function asynchronously: a record that fails
//! (kept for retry) fails the invocation, so that Lambda's retries and the function's
//! on-failure destination take over; a dropped record (an event no route takes) is logged,
//! reported and dead-lettered, and the invocation succeeds.
//!
//! It registers itself when this crate is linked (the `s3-source` feature of `lpipe`), without
//! routes; a Lambda gives its own with `.event_source(S3Source::new().route(…))`. It needs no
//! AWS SDK.
//!
//! With the feature `client` (the facade's `s3`), [`S3PayloadStore`] keeps payloads over a
//! service's limit in S3, as AWS's extended client libraries do (see
//! [`lpipe_core::payload`]): a pipeline with
//! `.large_payloads(LargePayloads::new(S3PayloadStore::new()).allow_bucket(…))` reads the
//! pointers producers send, and, with `.offload_to(bucket)`, sends its own.
#![warn(missing_docs)]

#[cfg(feature = "client")]
mod payloads;
mod source;

use std::sync::Arc;

use lpipe_core::{registry::SourceRegistration, source::EventSource};

#[cfg(feature = "client")]
pub use payloads::S3PayloadStore;
pub use source::S3Source;

/// The S3 client shared by everything in this crate that was not given one: built once per
/// process from the standard AWS configuration. With an endpoint of its own
/// (`AWS_ENDPOINT_URL`, a local stand-in for S3) it addresses buckets by path, not by host
/// name.
#[cfg(feature = "client")]
pub async fn shared_client() -> aws_sdk_s3::Client {
    static CLIENT: tokio::sync::OnceCell<aws_sdk_s3::Client> = tokio::sync::OnceCell::const_new();
    CLIENT
        .get_or_init(|| async {
            let config = lpipe_aws::sdk_config().await;
            let path_style = config.endpoint_url().is_some();
            let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(path_style);
            aws_sdk_s3::Client::from_conf(s3.build())
        })
        .await
        .clone()
}

fn build_source() -> Arc<dyn EventSource> {
    Arc::new(S3Source::new())
}

lpipe_core::registry::inventory::submit! { SourceRegistration { name: S3Source::NAME, build: build_source } }

/// Refers to this crate, so that it is linked and its registration is seen; returns the
/// source's name. A program that depends on this crate directly and names nothing of it would
/// not link it: `use lpipe_s3 as _;` once in the program does it, and so does calling this.
/// Through the `lpipe` facade nothing is needed.
#[inline(never)]
pub fn link() -> &'static str {
    S3Source::NAME
}
