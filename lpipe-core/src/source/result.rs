//! The outcome of a batch, from which a source builds its response.

use std::borrow::Cow;

use serde::Serialize;

use crate::error::{InvocationError, Outcome, RecordError};

/// What happened to one record.
#[derive(Debug)]
pub struct RecordResult<'e> {
    /// Its identity (see [`Record::id`](super::Record::id)), borrowed from the event where the record's was.
    pub id: Option<Cow<'e, str>>,
    /// The outcome.
    pub outcome: Outcome,
    /// The error, unless it succeeded.
    pub error: Option<RecordError>,
    /// Its output (see [`Returned::Output`](crate::function::Returned::Output)), if any (boxed: most
    /// records have none, and every record has a result).
    pub output: Option<Box<serde_json::Value>>,
}

impl<'e> RecordResult<'e> {
    /// The result of a record that ran to this end (or was not run, and why).
    pub(crate) fn from_run(
        id: Option<Cow<'e, str>>,
        run: Result<Option<Box<serde_json::Value>>, RecordError>,
    ) -> Self {
        match run {
            Ok(output) => RecordResult {
                id,
                outcome: Outcome::Success,
                error: None,
                output,
            },
            Err(e) => RecordResult {
                id,
                outcome: e.outcome(),
                error: Some(e),
                output: None,
            },
        }
    }
}

/// Counts of a batch's outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchStats {
    /// Records in the batch.
    pub received: usize,
    /// Records that succeeded.
    pub successes: usize,
    /// Records dropped (acknowledged, never retried).
    pub dropped: usize,
    /// Records failed (kept for retry).
    pub failed: usize,
    /// Of the successes, records not run because their idempotency key was completed (see
    /// [`Idempotency`](crate::Idempotency)); left out of the JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub duplicates: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The outcome of a batch, handed to [`EventSource::respond`](super::EventSource::respond); `'e` is the event's text.
#[derive(Debug)]
pub struct BatchResult<'e> {
    /// One entry per record, in batch order.
    pub records: Vec<RecordResult<'e>>,
    /// The counts.
    pub stats: BatchStats,
}

impl<'e> BatchResult<'e> {
    /// The records that failed (kept for retry).
    pub fn failed(&self) -> impl Iterator<Item = (usize, &RecordResult<'e>)> {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.outcome == Outcome::Failed)
    }

    /// The outputs in record order (`null` where a record produced none), when at least one
    /// record produced one.
    pub fn outputs(&self) -> Option<Vec<serde_json::Value>> {
        if self.records.iter().any(|r| r.output.is_some()) {
            Some(
                self.records
                    .iter()
                    .map(|r| {
                        r.output
                            .as_deref()
                            .cloned()
                            .unwrap_or(serde_json::Value::Null)
                    })
                    .collect(),
            )
        } else {
            None
        }
    }

    /// The error that fails an invocation because records failed (for sources that report
    /// failures by failing the invocation): names the failed records and gives the stats.
    pub fn catastrophic_error(&self, detail: Option<&str>) -> InvocationError {
        let mut message = format!(
            "Encountered catastrophic exceptions while handling one or more records: {}",
            self.describe_failures()
        );
        if let Some(detail) = detail {
            message.push_str("; ");
            message.push_str(detail);
        }
        message.push_str("; stats: ");
        message.push_str(&serde_json::to_string(&self.stats).unwrap_or_default());
        InvocationError::new("FailCatastrophically", message)
    }

    /// Python lpipe's response to a direct invocation:
    /// `{"event": "Finished.", "stats": {…}, "output": […]}`, `output` only when a record
    /// produced one.
    pub fn finished_response(&self) -> serde_json::Value {
        let mut response = serde_json::json!({"event": "Finished.", "stats": self.stats});
        if let Some(outputs) = self.outputs() {
            response["output"] = serde_json::Value::Array(outputs);
        }
        response
    }

    /// The answer of a source whose invocations are not answered record by record (direct and
    /// asynchronous invocations: SNS, S3, EventBridge): the [finished
    /// response](Self::finished_response) when no record failed, else the [catastrophic
    /// error](Self::catastrophic_error) (with `detail`), so that the invocation is retried.
    ///
    /// # Errors
    ///
    /// When a record failed (was kept for retry).
    pub fn finished_or_failed(
        &self,
        detail: Option<&str>,
    ) -> Result<serde_json::Value, InvocationError> {
        if self.stats.failed > 0 {
            return Err(self.catastrophic_error(detail));
        }
        Ok(self.finished_response())
    }

    /// The partial batch response Lambda's SQS, Kinesis and DynamoDB Streams mappings read:
    /// `{"batchItemFailures": [{"itemIdentifier": id}, …], "stats": {…}}`, the failed records
    /// named by their ids (`id_name` names the id in the error).
    ///
    /// # Errors
    ///
    /// As [`failed_ids`](Self::failed_ids): a failed record without an id.
    pub fn partial_batch_response(
        &self,
        id_name: &str,
    ) -> Result<serde_json::Value, InvocationError> {
        let failures: Vec<serde_json::Value> = self
            .failed_ids(id_name)?
            .into_iter()
            .map(|id| serde_json::json!({ "itemIdentifier": id }))
            .collect();
        Ok(serde_json::json!({ "batchItemFailures": failures, "stats": self.stats }))
    }

    /// The identities to list in a partial batch response: each failed record's id, once.
    ///
    /// # Errors
    ///
    /// When a failed record has no id (`id_name` says what it should have been, e.g.
    /// `messageId`), it cannot be reported alone: the error fails the invocation so that the
    /// whole batch is retried rather than the record lost.
    pub fn failed_ids(&self, id_name: &str) -> Result<Vec<&str>, InvocationError> {
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut unreportable = Vec::new();
        for (index, record) in self.failed() {
            match record.id.as_deref() {
                Some(id) if !id.is_empty() => {
                    if seen.insert(id) {
                        ids.push(id);
                    }
                }
                _ => unreportable.push(index),
            }
        }
        if unreportable.is_empty() {
            return Ok(ids);
        }
        tracing::error!(
            records = ?unreportable,
            "failed records have no {id_name} and cannot be reported individually; failing the whole invocation so they are retried"
        );
        Err(InvocationError::new(
            "UnreportableFailure",
            format!(
                "records at positions {unreportable:?} failed and have no {id_name} to report: {}",
                self.describe_failures()
            ),
        ))
    }

    /// A one-line summary of the failed records, for invocation errors:
    /// `record 0 (FailCatastrophically on path X: why); record 3 (…)`.
    pub fn describe_failures(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.failed() {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let id = r.id.as_deref().map_or_else(|| i.to_string(), str::to_owned);
            match &r.error {
                Some(e) => out.push_str(&format!("record {id} ({e})")),
                None => out.push_str(&format!("record {id}")),
            }
        }
        out
    }
}
