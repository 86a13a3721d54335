//! Outcomes: a batch's outbound messages are delivered (a record whose messages could not be
//! fails), then the outcomes are counted, logged and reported, ready for the source's response.

use super::batch::Collected;
use crate::error::{ErrorKind, Outcome, RecordError};
use crate::outbox;
use crate::pipeline::Pipeline;
use crate::report::Report;
use crate::source::{BatchResult, Stats};

/// What a dropped record sends to the dead-letter queue: its body as it came, or, when its
/// source chose its path, the message that names that path.
pub(super) fn dead_letter_body(body: &str, source_path: Option<&str>) -> String {
    match source_path {
        Some(path) if serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok() => {
            let path = serde_json::to_string(path).expect("a string serializes");
            format!("{{\"path\":{path},\"kwargs\":{body}}}")
        }
        _ => body.to_owned(),
    }
}

impl Pipeline {
    /// Sends what the records staged; a record whose messages could not be delivered fails
    /// (a dropped one whose dead letter could not be sent is kept instead).
    pub(super) async fn deliver(
        &self,
        collected: &mut Collected,
        deadline: Option<std::time::Instant>,
    ) {
        if collected.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut collected.staged);
        let undelivered = outbox::flush(
            staged,
            |q| self.sink_for(q.kind()),
            self.inner.retry,
            deadline,
        )
        .await;
        for (index, why) in undelivered {
            let r = &mut collected.results[index];
            let why = match (r.outcome, &r.error) {
                (Outcome::Failed, _) => continue,
                // Only its dead-letter message was staged: say why it was going there.
                (Outcome::Dropped, Some(dropped)) => {
                    format!("{why} (the record was dropped, and is kept because it could not be sent to the dead-letter queue: {dropped})")
                }
                _ => why,
            };
            r.outcome = Outcome::Failed;
            r.output = None;
            r.error = Some(RecordError::new(ErrorKind::Undeliverable, why));
        }
    }

    /// Counts the outcomes, logs and reports each record that did not succeed, and flushes the
    /// reporter.
    pub(super) async fn conclude(
        &self,
        collected: Collected,
        source: &'static str,
        request_id: &str,
    ) -> BatchResult {
        let Collected {
            results, kwargs_of, ..
        } = collected;
        let reporter = &self.inner.reporter;
        let mut stats = Stats {
            received: results.len(),
            ..Stats::default()
        };
        for (i, r) in results.iter().enumerate() {
            match r.outcome {
                Outcome::Success => stats.successes += 1,
                Outcome::Dropped => stats.dropped += 1,
                Outcome::Failed => stats.failed += 1,
            }
            if let Some(output) = &r.output {
                tracing::debug!(record = r.id.as_deref().unwrap_or(""), %output, "record output");
            }
            if let Some(e) = &r.error {
                let id = r.id.as_deref().unwrap_or("");
                match r.outcome {
                    Outcome::Dropped => tracing::warn!(record = id, "record dropped: {e}"),
                    _ => tracing::error!(record = id, "record failed: {e}"),
                }
                reporter.report(&Report {
                    record_id: r.id.as_deref(),
                    source,
                    request_id,
                    outcome: r.outcome,
                    error: e,
                    kwargs: kwargs_of.get(i).and_then(Option::as_ref),
                });
            }
        }
        reporter.flush().await;
        tracing::info!(
            source,
            received = stats.received,
            successes = stats.successes,
            dropped = stats.dropped,
            failed = stats.failed,
            "batch finished"
        );
        BatchResult {
            records: results,
            stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_name_the_path_their_source_chose() {
        assert_eq!(dead_letter_body(r#"{"a": 1}"#, None), r#"{"a": 1}"#);
        assert_eq!(
            dead_letter_body(r#"{"a": 1}"#, Some("NIGHTLY")),
            r#"{"path":"NIGHTLY","kwargs":{"a": 1}}"#
        );
        // Not JSON: as it came.
        assert_eq!(dead_letter_body("{oops", Some("NIGHTLY")), "{oops");
    }
}
