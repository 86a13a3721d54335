//! Outcomes: a batch's outbound messages are delivered (a record whose messages could not be
//! fails), then the outcomes are counted, logged and reported, ready for the source's response.

use std::collections::HashMap;

use super::batch::RanBatch;
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
fn held_back(key: &str, first: usize, results: &[RecordResult<'_>]) -> String {
    let id = results.get(first).and_then(|r| r.id.as_deref());
    format!(
        "held back: an earlier record of ordering key {key} ({}) did not succeed; kept for retry, to keep the key's order",
        id.unwrap_or("?")
    )
}

/// Answers the records that shared an idempotency key with an earlier record of the batch, now
/// that its outcome is final: a duplicate of it (its output) if it succeeded, failed (kept for
/// retry) otherwise. On a source that keeps an order, a duplicate that fails holds back the
/// later records of its own ordering key, as any failed record does.
pub(super) fn answer_twins(ran: &mut RanBatch<'_>) {
    let twins = std::mem::take(&mut ran.twins);
    for (twin, holder) in twins {
        let (succeeded, output, holder_id) = match ran.results.get(holder) {
            Some(h) => (
                h.outcome == Outcome::Success,
                h.output.clone(),
                h.id.as_deref().unwrap_or("?").to_owned(),
            ),
            None => (false, None, "?".to_owned()),
        };
        let Some(r) = ran.results.get_mut(twin) else {
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
            ran.duplicates += 1;
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
        let Some(key) = ran
            .keys
            .iter()
            .find(|(i, _)| *i == twin)
            .map(|(_, k)| k.to_string())
        else {
            continue;
        };
        let later: Vec<(usize, String)> = ran
            .keys
            .iter()
            .filter(|(i, k)| *i > twin && *k == key)
            .map(|(i, _)| (*i, held_back(&key, twin, &ran.results)))
            .collect();
        for (index, why) in later {
            fail_undelivered(&mut ran.results, index, why);
        }
    }
}

/// A record whose messages could not be delivered fails (once: the first reason stays).
fn fail_undelivered(results: &mut [RecordResult<'_>], index: usize, why: String) {
    let Some(r) = results.get_mut(index) else {
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

/// Logs a key its store could not settle, and what follows for the record's redelivery.
fn log_unsettled(r: &RecordResult<'_>, claim: &Claimed, e: &StoreError) {
    let record_id = r.id.as_deref().unwrap_or("");
    if let StoreError::Lost { .. } = e {
        // Its lock timed out while it ran, and another run took the key over: that run's
        // item is left as it is.
        tracing::warn!(
            record_id,
            key = %claim.held,
            "this run lost its idempotency key before it was settled: {e}"
        );
    } else if r.outcome == Outcome::Success {
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

/// What the metrics say of a batch, once its messages were delivered (the batch's duration
/// is filled in later).
pub(super) fn summary(ran: &RanBatch<'_>) -> InvocationSummary {
    let mut summary = InvocationSummary {
        messages: ran.message_counts.clone(),
        duplicates: ran.duplicates,
        ..InvocationSummary::default()
    };
    fn count(c: &mut RecordCounts, r: &RecordResult<'_>) {
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
    for r in &ran.results {
        count(&mut summary.total, r);
    }
    // Few paths, many records: count by reference, name them once.
    let mut by_path: Vec<(&crate::path::PathName, RecordCounts)> = Vec::new();
    for (i, path) in &ran.paths {
        let r = &ran.results[*i];
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
    summary.dead_lettered = ran
        .dead_lettered
        .iter()
        .filter(|&&i| ran.results[i].outcome == Outcome::Dropped)
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
        ran: &mut RanBatch<'_>,
        deadline: Option<std::time::Instant>,
    ) {
        if ran.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut ran.staged);
        let RanBatch {
            results,
            keys,
            message_counts,
            ..
        } = ran;
        let keys: HashMap<usize, &str> = keys.iter().map(|(i, k)| (*i, k.as_ref())).collect();
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
                undelivered.push((s.record, held_back(key, failed_keys[key].0, results)));
            }
            let flushed = outbox::flush(
                send,
                |q| self.sink_for(q.kind()),
                (self.inner.retry, deadline),
                self.inner.large_payloads.as_ref(),
            )
            .await;
            for (kind, counts) in flushed.counts {
                message_counts.entry(kind).or_default().add(counts);
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
                    undelivered.push((index, held_back(key, first, results)));
                }
                _ => {}
            }
        }
        drop((keys, failed_keys));
        for (index, why) in undelivered {
            fail_undelivered(results, index, why);
        }
    }

    /// Settles the idempotency keys the records hold, once their outcomes are final: a
    /// record that succeeded (its messages delivered) completes its key, with its output; any
    /// other releases it, so that a retry runs it. Side by side, a few at a time.
    pub(super) async fn settle_claims(&self, ran: &RanBatch<'_>, held: Option<&HeldKeys>) {
        let claims = || {
            ran.claims
                .iter()
                .map(|(i, claim)| (&ran.results[*i], claim))
        };
        // One call per idempotency setting (paths may have their own), in record order. Most
        // pipelines have one: then the batch's records are not walked to find which.
        let mut policies: Vec<usize> = Vec::new();
        match self.inner.idempotency.len() {
            0 => return,
            1 => policies.push(0),
            _ => {
                for (_, c) in claims() {
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
            let mut mine = claims().filter(|(_, c)| c.policy == policy);
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
                    if let Err(e) = result {
                        log_unsettled(r, claim, &e);
                    }
                }
            }
        }
    }

    /// Counts the outcomes, logs and reports each record that did not succeed, and flushes the
    /// reporter.
    pub(super) async fn conclude<'e>(
        &self,
        ran: RanBatch<'e>,
        source: &'static str,
        request_id: &str,
    ) -> BatchResult<'e> {
        let reporter = &self.inner.reporter;
        let RanBatch {
            results,
            kwargs,
            duplicates,
            ..
        } = ran;
        let mut stats = BatchStats {
            received: results.len(),
            duplicates,
            ..BatchStats::default()
        };
        // The kwargs of the records that did not succeed, in record order.
        let mut kwargs = kwargs.into_iter().peekable();
        for (i, r) in results.iter().enumerate() {
            match r.outcome {
                Outcome::Success => stats.successes += 1,
                Outcome::Dropped => stats.dropped += 1,
                Outcome::Failed => stats.failed += 1,
            }
            let kept = kwargs.next_if(|(index, _)| *index == i);
            let record_id = r.id.as_deref().unwrap_or("");
            if let Some(output) = &r.output {
                tracing::debug!(record_id, %output, "record output");
            }
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
                    kwargs: kept.as_ref().map(|(_, k)| k),
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
