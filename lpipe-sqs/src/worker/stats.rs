//! What a worker did: its counters and the stats it returns.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a worker did, for its final log line and for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Batches handled.
    pub batches: u64,
    /// Messages received.
    pub received: u64,
    /// Messages deleted (successes and dropped records).
    pub deleted: u64,
    /// Messages left to reappear (failed or not started records, or a batch that failed).
    pub left: u64,
    /// Messages acknowledged whose delete finally failed: they will be delivered again.
    pub undeleted: u64,
    /// SQS calls that failed and were retried.
    pub retried_calls: u64,
    /// Messages of the batches still running when the grace period ran out, abandoned: not
    /// deleted, they reappear after their visibility timeout (and run again).
    pub abandoned: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) batches: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) deleted: AtomicU64,
    pub(super) left: AtomicU64,
    pub(super) undeleted: AtomicU64,
    pub(super) retried_calls: AtomicU64,
    /// Messages of the batches running now.
    pub(super) in_flight: AtomicU64,
    pub(super) abandoned: AtomicU64,
}

impl Counters {
    pub(super) fn stats(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            batches: get(&self.batches),
            received: get(&self.received),
            deleted: get(&self.deleted),
            left: get(&self.left),
            undeleted: get(&self.undeleted),
            retried_calls: get(&self.retried_calls),
            abandoned: get(&self.abandoned),
        }
    }
}
