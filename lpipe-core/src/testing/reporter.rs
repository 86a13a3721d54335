//! [`CapturingReporter`]: keeps what the pipeline reports, for assertions.

use std::sync::{Arc, Mutex};

use crate::error::{ErrorKind, Outcome};
use crate::report::{Report, Reporter};

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
