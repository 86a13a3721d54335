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
#![warn(missing_docs)]

mod source;

use std::sync::Arc;

use lpipe_core::{registry::SourceRegistration, source::EventSource};

pub use source::S3Source;

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
