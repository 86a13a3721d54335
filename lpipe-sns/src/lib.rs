//! Amazon SNS for [lpipe](https://crates.io/crates/lpipe): the event source of a Lambda that a
//! topic triggers directly.
//!
//! [`SnsSource`] decodes SNS Lambda events (`EventSource: "aws:sns"`): the notification's
//! `Message` is the record's body (an lpipe message, or bare kwargs for a default path), its
//! `MessageId` the record's id, and its topic, subject, timestamp and message attributes are on
//! the function's [`Context`](lpipe_core::Context) (`ctx.record().sns()`). SNS invokes the
//! function asynchronously, with one notification per invocation: a record that fails
//! (kept for retry) fails the invocation, so that Lambda's retries of asynchronous invocations
//! and the function's on-failure destination take over; a dropped record is logged, reported
//! and dead-lettered as on any source, and the invocation succeeds.
//!
//! It registers itself when this crate is linked (the `sns-source` feature of `lpipe`). It needs
//! no AWS SDK. (Publishing to topics, `Queue::sns`, and SNS notifications inside SQS messages are
//! not here yet.)
#![warn(missing_docs)]

mod source;

use std::sync::Arc;

use lpipe_core::{registry::SourceRegistration, source::EventSource};

pub use source::SnsSource;

fn build_source() -> Arc<dyn EventSource> {
    Arc::new(SnsSource::new())
}

lpipe_core::registry::inventory::submit! { SourceRegistration { name: SnsSource::NAME, build: build_source } }

/// Refers to this crate, so that it is linked and its registration is seen; returns the
/// source's name. A program that depends on this crate directly and names nothing of it would
/// not link it: `use lpipe_sns as _;` once in the program does it, and so does calling this.
/// Through the `lpipe` facade nothing is needed.
#[inline(never)]
pub fn link() -> &'static str {
    SnsSource::NAME
}
