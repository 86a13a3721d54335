//! Outcomes: a batch's outbound messages are delivered (a record whose messages could not be
//! fails), then the outcomes are counted, logged and reported, ready for the source's response.

use std::collections::HashMap;

use super::batch::{Collected, Collecting};
use crate::error::{ErrorKind, Outcome, RecordError};
use crate::idempotency::{Claimed, HeldKeys, Settlement, StoreError};
use crate::metrics::{InvocationSummary, RecordCounts};
use crate::outbox;
use crate::pipeline::Pipeline;
use crate::report::Report;
use crate::source::{BatchResult, BatchStats, RecordResult};

/// How many idempotency keys are settled in one call to their store.
const SETTLE_CHUNK: usize = 1024;

/// A batch's staged messages in waves, in record order: a wave ends before the first record
/// whose ordering key already has a record with messages in it, so each record's messages go
/// after those of the earlier records of its key, and each queue's messages stay in record
/// order.
fn waves(staged: Vec<outbox::Staged>, keys: &HashMap<usize, &str>) -> Vec<Vec<outbox::Staged>> {
    let mut waves: Vec<Vec<outbox::Staged>> = vec![Vec::new()];
    // The records of the current wave, by key.
    let mut in_wave: HashMap<&str, usize> = HashMap::new();
    for s in staged {
        if let Some(&key) = keys.get(&s.record) {
            match in_wave.get(key) {
                Some(&record) if record != s.record => {
                    waves.push(Vec::new());
                    in_wave.clear();
                }
                _ => {}
            }
            in_wave.insert(key, s.record);
        }
        waves.last_mut().expect("a wave").push(s);
    }
    waves
}

/// Why a record is held back: an earlier record of its ordering key did not succeed (its
/// messages could not be delivered, or it was a duplicate of a record that failed).
fn held_back(key: &str, first: usize, collecting: &Collecting<'_>) -> String {
    let id = collecting.record_id(first).unwrap_or("?");
    format!(
        "held back: an earlier record of ordering key {key} ({id}) did not succeed; kept for retry, to keep the key's order"
    )
}

/// Answers the records that shared an idempotency key with an earlier record of the batch, now
/// that its outcome is final: a duplicate of it (its output) if it succeeded, failed (kept for
/// retry) otherwise. On a source that keeps an order, a duplicate that fails holds back the
/// later records of its own ordering key, as any failed record does.
pub(super) fn answer_twins(collecting: &mut Collecting<'_>) {
    let twins = std::mem::take(&mut collecting.collected.twins);
    for (twin, holder) in twins {
        let (succeeded, output, holder_id) = match collecting.result_mut(holder) {
            Some(r) => (
                r.outcome == Outcome::Success,
                r.output.clone(),
                r.id.as_deref().unwrap_or("?").to_owned(),
            ),
            None => (false, None, "?".to_owned()),
        };
        let Some(r) = collecting.result_mut(twin) else {
            continue;
        };
        if r.outcome != Outcome::Success {
            continue;
        }
        if succeeded {
            tracing::info!(
                record_id = r.id.as_deref().unwrap_or(""),
                "a duplicate of record {holder_id} of this batch, which succeeded: not run again"
            );
            r.output = output;
            collecting.collected.duplicates += 1;
            continue;
        }
        tracing::info!(
            record_id = r.id.as_deref().unwrap_or(""),
            "a duplicate of record {holder_id} of this batch, which did not succeed: kept for retry"
        );
        r.outcome = Outcome::Failed;
        r.error = Some(RecordError::new(
            ErrorKind::InProgress,
            format!("a duplicate of record {holder_id} of this batch, which did not succeed: not run, kept for retry"),
        ));
        let keys = &collecting.collected.ordering_keys;
        let Some(key) = keys
            .iter()
            .find(|(i, _)| *i == twin)
            .map(|(_, k)| k.to_string())
        else {
            continue;
        };
        let later: Vec<usize> = keys
            .iter()
            .filter(|(i, k)| *i > twin && *k == key)
            .map(|(i, _)| *i)
            .collect();
        for index in later {
            let why = held_back(&key, twin, collecting);
            fail_undelivered(collecting, index, why);
        }
    }
}

/// A record whose messages could not be delivered fails (once: the first reason stays).
fn fail_undelivered(collecting: &mut Collecting<'_>, index: usize, why: String) {
    // A record not collected (a bug of the scheduler) is failed when the batch is finished.
    let Some(r) = collecting.result_mut(index) else {
        return;
    };
    let why = match (r.outcome, &r.error) {
        (Outcome::Failed, _) => return,
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
    ///
    /// On a source that keeps an order (SQS FIFO groups, Kinesis and DynamoDB Streams keys), a
    /// record's messages are sent only once those of the earlier records of its ordering key
    /// were delivered (in waves, in record order: a wave ends before a record whose key
    /// already has one in it; one wave when no key has two records with messages), and a
    /// record that cannot be delivered fails the later records of its key, whose messages are
    /// not sent: the key's order holds through delivery as it holds when a function fails.
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
        // Taken while the records' results are written, and put back at the end.
        let ordering_keys = std::mem::take(&mut collected.ordering_keys);
        let keys: HashMap<usize, &str> = ordering_keys
            .iter()
            .map(|(index, key)| (*index, key.as_ref()))
            .collect();
        // The first record of each key that could not be delivered, and why.
        let mut failed_keys: HashMap<&str, (usize, String)> = HashMap::new();
        let mut undelivered: Vec<(usize, String)> = Vec::new();
        for wave in waves(staged, &keys) {
            let (send, held): (Vec<_>, Vec<_>) = wave.into_iter().partition(|s| {
                keys.get(&s.record)
                    .is_none_or(|k| !failed_keys.contains_key(k))
            });
            for s in held {
                let key = keys[&s.record];
                undelivered.push((s.record, held_back(key, failed_keys[key].0, collecting)));
            }
            let flushed = outbox::flush(
                send,
                |q| self.sink_for(q.kind()),
                self.inner.retry,
                deadline,
            )
            .await;
            for (kind, counts) in flushed.counts {
                collecting
                    .collected
                    .message_counts
                    .entry(kind)
                    .or_default()
                    .add(counts);
            }
            for (index, why) in flushed.undelivered {
                if let Some(&key) = keys.get(&index) {
                    failed_keys.entry(key).or_insert((index, why.clone()));
                }
                undelivered.push((index, why));
            }
        }
        // Records of a failed key after its failure that staged nothing are held back too.
        for (&index, &key) in &keys {
            match failed_keys.get(key) {
                Some(&(first, _)) if index > first => {
                    undelivered.push((index, held_back(key, first, collecting)));
                }
                _ => {}
            }
        }
        // Put back: the duplicates of the batch are answered with them (`answer_twins`).
        collecting.collected.ordering_keys = ordering_keys;
        for (index, why) in undelivered {
            fail_undelivered(collecting, index, why);
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
                            held: &claim.held,
                            output: r.output.as_deref(),
                            expires_at_s,
                        }
                    } else {
                        Settlement::Release { held: &claim.held }
                    }
                }));
                let settled = store.settle(&settlements).await;
                if let Some(held) = held {
                    held.let_go(store, chunk.iter().map(|(_, claim)| &claim.held));
                }
                for ((r, claim), result) in chunk.iter().zip(settled) {
                    let Err(e) = result else { continue };
                    let record_id = r.id.as_deref().unwrap_or("");
                    if let StoreError::Lost { .. } = e {
                        // Its lock timed out while it ran, and another run took the key over:
                        // that run's item is left as it is.
                        tracing::warn!(
                            record_id,
                            key = %claim.held,
                            "this run lost its idempotency key before it was settled: {e}"
                        );
                        continue;
                    }
                    if r.outcome == Outcome::Success {
                        tracing::error!(
                            record_id,
                            key = %claim.held,
                            "the record succeeded, but its idempotency key could not be completed: {e}; a redelivery fails until the key's lock times out, and after that runs it again"
                        );
                    } else {
                        tracing::warn!(
                            record_id,
                            key = %claim.held,
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
        let mut stats = BatchStats {
            received: results.len(),
            duplicates,
            ..BatchStats::default()
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
