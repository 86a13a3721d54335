//! Event sources: how a Lambda event becomes records, and how the batch's outcome becomes the
//! Lambda response.
//!
//! A source turns one kind of Lambda event into [`Record`]s ([`EventSource::decode`]) and the
//! batch's [`BatchResult`] into the response ([`EventSource::respond`]). The AWS sources live
//! in their crates (`lpipe-sqs`, `lpipe-kinesis`, …); [`RawSource`] takes direct invocations.

use async_trait::async_trait;

use crate::error::InvocationError;

mod decode;
mod envelope;
mod meta;
mod probe;
mod raw;
mod record;
mod result;
mod unescape;

pub use crate::context::RecordInfo;
pub use decode::{decode_records, InvalidEvent};
pub use envelope::{
    EventBridgeEnvelope, EventBridgeUnwrapped, S3Envelope, S3Match, S3Unwrapped, SnsNotification,
};
pub use meta::{
    trace_id, DynamoDbMeta, EventBridgeMeta, KinesisMeta, RecordMeta, SnsMeta, SqsMeta,
};
pub use probe::EventProbe;
pub use raw::RawSource;
pub use record::{Body, Record};
pub use result::{BatchResult, BatchStats, RecordResult};

/// How a source orders its records, which decides what happens after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordOrder {
    /// No order: a failure touches only its own record.
    Unordered,
    /// Records sharing an ordering key run in order; after a record fails, the rest of its
    /// key are not run and are reported as failed too (SQS FIFO).
    PerKey,
    /// After a record fails, no later record of the batch is run; they are reported as failed
    /// (Kinesis: Lambda replays from the lowest failed sequence number anyway).
    StopOnFailure,
}

/// Turns Lambda events of one kind into records, and a batch's outcome into the response.
///
/// A source recognises its own events ([`EventSource::matches`]), so a pipeline can serve
/// several. Sources register with [`inventory`] (see [`SourceRegistration`](crate::registry::SourceRegistration)).
#[async_trait]
pub trait EventSource: Send + Sync + 'static {
    /// The source's name (`raw`, `sqs`, …).
    fn name(&self) -> &'static str;

    /// Whether this event is one of this source's. Asked of a pinned source too
    /// ([`only_source`](crate::PipelineBuilder::only_source)): return `false` for an event
    /// whose records name another service, so that it is refused rather than misread.
    fn matches(&self, probe: &EventProbe) -> bool;

    /// Splits the event into records. Borrow from the event where you can, and decode
    /// straight into records ([`decode_records`] does it for `{"Records": [...]}` events); a
    /// body that needs decoding is best left as [`Body::Encoded`], decoded when its record
    /// runs, so that a large batch does not hold all its decoded bodies at once.
    ///
    /// # Errors
    ///
    /// [`InvalidEvent`] when the event as a whole cannot be read; a single bad record is
    /// reported in its [`Record::body`] instead.
    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent>;

    /// What the source's description says of it beside its name (`my-lambda describe`; see
    /// [`crate::describe`]): its settings and envelope, as a JSON object. Default: nothing.
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    /// How records are ordered.
    fn ordering(&self) -> RecordOrder {
        RecordOrder::Unordered
    }

    /// Whether a record's id names it beyond this invocation, and stays the same when the
    /// record is delivered again (an SQS `messageId`, a Kinesis sequence number, an
    /// EventBridge event id). When not, the ids of the outbound messages (from which sinks
    /// derive deduplication ids) are scoped by the Lambda request id, which Lambda keeps
    /// across the retries of an asynchronous invocation.
    fn stable_record_ids(&self) -> bool {
        true
    }

    /// Builds the Lambda response, or fails the invocation.
    async fn respond(
        &self,
        event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError>;
}
