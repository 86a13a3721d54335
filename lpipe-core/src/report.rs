//! Reporters: where dropped and failed records are reported (Python lpipe's
//! `exception_handler`; Sentry plugs in here).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::{ErrorKind, Outcome, RecordError};
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

/// A reported record, as kept by [`CapturingReporter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedReport {
    /// The record's identity.
    pub record_id: Option<String>,
    /// Dropped or failed.
    pub outcome: Outcome,
    /// The error's class.
    pub kind: ErrorKind,
    /// The error, displayed.
    pub message: String,
}

/// Keeps every report in memory (for tests).
#[derive(Clone, Default)]
pub struct CapturingReporter {
    reports: Arc<Mutex<Vec<CapturedReport>>>,
}

impl CapturingReporter {
    /// An empty reporter.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was reported so far.
    pub fn reports(&self) -> Vec<CapturedReport> {
        self.reports.lock().expect("reporter lock").clone()
    }
}

impl Reporter for CapturingReporter {
    fn report(&self, r: &Report<'_>) {
        self.reports
            .lock()
            .expect("reporter lock")
            .push(CapturedReport {
                record_id: r.record_id.map(str::to_owned),
                outcome: r.outcome,
                kind: r.error.kind(),
                message: r.error.to_string(),
            });
    }
}
