//! Outcomes: a batch's outbound messages are delivered (a record whose messages could not be
//! fails), then the outcomes are counted, logged and reported, ready for the source's response.

use super::batch::{Collected, Collecting};
use crate::error::{ErrorKind, Outcome, RecordError};
use crate::idempotency::{Claimed, HeldKeys, Settlement};
use crate::metrics::{InvocationSummary, RecordCounts};
use crate::outbox;
use crate::pipeline::Pipeline;
use crate::report::Report;
use crate::source::{BatchResult, RecordResult, Stats};

/// How many idempotency keys are settled in one call to their store.
const SETTLE_CHUNK: usize = 1024;

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

/// What the metrics say of a batch, once its messages were delivered (the batch's duration
/// is filled in later).
pub(super) fn summary(collected: &Collected<'_>) -> InvocationSummary {
    let mut summary = InvocationSummary {
        messages: collected.message_counts.clone(),
        duplicates: collected.duplicates,
        ..InvocationSummary::default()
    };
    fn count(c: &mut RecordCounts, r: &crate::source::RecordResult<'_>) {
        c.received += 1;
        match r.outcome {
            Outcome::Success => c.succeeded += 1,
            Outcome::Dropped => c.dropped += 1,
            Outcome::Failed => c.failed += 1,
        }
        if r.error
            .as_ref()
            .is_some_and(|e| e.kind() == ErrorKind::NotRun)
        {
            c.not_started += 1;
        }
    }
    // Few paths, many records: count by reference, name them once.
    let mut by_path: Vec<(&crate::path::PathName, RecordCounts)> = Vec::new();
    for r in &collected.results {
        count(&mut summary.total, r);
    }
    for (i, path) in &collected.paths {
        let r = &collected.results[*i];
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, c)) => count(c, r),
            None => {
                let mut c = RecordCounts::default();
                count(&mut c, r);
                by_path.push((path, c));
            }
        }
    }
    summary.by_path = by_path
        .into_iter()
        .map(|(p, c)| (p.to_string(), c))
        .collect();
    // A dead letter that could not be sent left its record failed, not dropped.
    summary.dead_lettered = collected
        .dead_lettered
        .iter()
        .filter(|&&i| collected.results[i].outcome == Outcome::Dropped)
        .count();
    summary
}

impl Pipeline {
    /// Sends what the records staged; a record whose messages could not be delivered fails
    /// (a dropped one whose dead letter could not be sent is kept instead).
    pub(super) async fn deliver(
        &self,
        collecting: &mut Collecting<'_>,
        deadline: Option<std::time::Instant>,
    ) {
        let collected = &mut collecting.collected;
        if collected.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut collected.staged);
        let flushed = outbox::flush(
            staged,
            |q| self.sink_for(q.kind()),
            self.inner.retry,
            deadline,
        )
        .await;
        collected.message_counts = flushed.counts;
        for (index, why) in flushed.undelivered {
            // A record not collected (a bug of the scheduler) is failed when the batch is
            // finished.
            let Some(r) = collecting.result_mut(index) else {
                continue;
            };
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

    /// Settles the idempotency keys the records hold, once their outcomes are final: a
    /// record that succeeded (its messages delivered) completes its key, with its output; any
    /// other releases it, so that a retry runs it. Side by side, a few at a time.
    pub(super) async fn settle_claims(&self, collecting: &Collecting<'_>, held: Option<&HeldKeys>) {
        // One call per idempotency setting (paths may have their own), in record order. Most
        // pipelines have one: then the batch's records are not walked to find which.
        let mut policies: Vec<usize> = Vec::new();
        match self.inner.idempotency.len() {
            0 => return,
            1 => policies.push(0),
            _ => {
                for (_, c) in collecting.claims() {
                    if policies.last() != Some(&c.policy) && !policies.contains(&c.policy) {
                        policies.push(c.policy);
                    }
                }
                policies.sort_unstable();
            }
        }
        for policy in policies {
            let idempotency = self.inner.idempotency.get(policy);
            let store = &idempotency.store;
            let expires_at_s = idempotency.expires_at_s();
            let mut mine = collecting.claims().filter(|(_, c)| c.policy == policy);
            // A chunk at a time: the memory a batch's settlements take stays small however
            // many records it has (all at once, 100,000 records' took ~7 MB).
            let mut chunk: Vec<(&RecordResult<'_>, &Claimed)> = Vec::with_capacity(SETTLE_CHUNK);
            let mut settlements: Vec<Settlement<'_>> = Vec::with_capacity(SETTLE_CHUNK);
            loop {
                chunk.clear();
                chunk.extend(mine.by_ref().take(SETTLE_CHUNK));
                if chunk.is_empty() {
                    break;
                }
                settlements.clear();
                settlements.extend(chunk.iter().map(|(r, claim)| {
                    if r.outcome == Outcome::Success {
                        Settlement::Complete {
                            key: &claim.key,
                            output: r.output.as_deref(),
                            expires_at_s,
                        }
                    } else {
                        Settlement::Release { key: &claim.key }
                    }
                }));
                let settled = store.settle(&settlements).await;
                if let Some(held) = held {
                    held.let_go(store, chunk.iter().map(|(_, claim)| *claim));
                }
                for ((r, claim), result) in chunk.iter().zip(settled) {
                    let Err(e) = result else { continue };
                    let record_id = r.id.as_deref().unwrap_or("");
                    if r.outcome == Outcome::Success {
                        tracing::error!(
                            record_id,
                            key = %claim.key,
                            "the record succeeded, but its idempotency key could not be completed: {e}; a redelivery fails until the key's lock times out, and after that runs it again"
                        );
                    } else {
                        tracing::warn!(
                            record_id,
                            key = %claim.key,
                            "the record did not succeed, and its idempotency key could not be released: {e}; a retry fails until the key's lock times out"
                        );
                    }
                }
            }
        }
    }

    /// Counts the outcomes, logs and reports each record that did not succeed, and flushes the
    /// reporter.
    pub(super) async fn conclude<'e>(
        &self,
        collected: Collected<'e>,
        source: &'static str,
        request_id: &str,
    ) -> BatchResult<'e> {
        let Collected {
            results,
            kwargs_of,
            duplicates,
            ..
        } = collected;
        let reporter = &self.inner.reporter;
        let mut stats = Stats {
            received: results.len(),
            duplicates,
            ..Stats::default()
        };
        // The kwargs of the records that did not succeed, in record order.
        let mut kwargs_of = kwargs_of.into_iter().peekable();
        for (i, r) in results.iter().enumerate() {
            match r.outcome {
                Outcome::Success => stats.successes += 1,
                Outcome::Dropped => stats.dropped += 1,
                Outcome::Failed => stats.failed += 1,
            }
            let record_id = r.id.as_deref().unwrap_or("");
            if let Some(output) = &r.output {
                tracing::debug!(record_id, %output, "record output");
            }
            while kwargs_of.next_if(|(index, _)| *index < i).is_some() {}
            if let Some(e) = &r.error {
                // Logged after the batch ran, outside the record's span: its fields again.
                let path = e.path().map_or("", |p| p.as_str());
                let function = e.function().unwrap_or("");
                match r.outcome {
                    Outcome::Dropped => {
                        tracing::warn!(record_id, path, function, "record dropped: {e}")
                    }
                    _ => tracing::error!(record_id, path, function, "record failed: {e}"),
                }
                reporter.report(&Report {
                    record_id: r.id.as_deref(),
                    source,
                    request_id,
                    outcome: r.outcome,
                    error: e,
                    kwargs: kwargs_of
                        .next_if(|(index, _)| *index == i)
                        .as_ref()
                        .map(|(_, k)| k),
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
            duplicates = stats.duplicates,
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
