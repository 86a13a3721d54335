//! Reporters: where dropped and failed records are reported (Python lpipe's
//! `exception_handler`; Sentry plugs in here).

use async_trait::async_trait;

use crate::error::{Outcome, RecordError};
use crate::kwargs::Kwargs;

/// A dropped or failed record, as handed to a [`Reporter`].
#[derive(Debug)]
pub struct Report<'a> {
    /// The record's identity.
    pub record_id: Option<&'a str>,
    /// The name of its event source.
    pub source: &'static str,
    /// The Lambda request id.
    pub request_id: &'a str,
    /// Dropped or failed.
    pub outcome: Outcome,
    /// The error.
    pub error: &'a RecordError,
    /// The message's kwargs, when known. Reporters should attach them only when their user
    /// opted in: they may hold personal data.
    pub kwargs: Option<&'a Kwargs>,
}

/// Receives every dropped and failed record.
#[async_trait]
pub trait Reporter: Send + Sync + 'static {
    /// Reports one record. Called once per dropped or failed record, after it finished.
    fn report(&self, report: &Report<'_>);

    /// Called before the invocation returns (Lambda freezes the process between invocations).
    async fn flush(&self) {}
}

/// Reports nothing (the dispatcher logs every dropped and failed record anyway).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {
    fn report(&self, _: &Report<'_>) {}
}
