//! Idempotent records: each record's effects once, on sources that deliver at least once.
//!
//! A pipeline (or one path of it) made idempotent with
//! [`PipelineBuilder::idempotent`](crate::PipelineBuilder::idempotent) or
//! [`PipelineBuilder::idempotent_in`](crate::PipelineBuilder::idempotent_in) keys each record
//! whose run reaches it (the first idempotent path a run reaches claims the key: entered, run
//! by another path, or reached by a returned payload), by the kwargs named with
//! [`Idempotency::key_from`] or by the whole message, namespaced by the function's (or
//! [`Idempotency::namespace`]'s) and the path's names and digested (the first 128 bits of the
//! SHA-256 of its canonical JSON, in hex: the same in every process and store), and keeps what
//! it did with that key in an [`IdempotencyStore`]:
//!
//! | the key is… | what happens to the record |
//! | --- | --- |
//! | new, expired, or locked by a run whose lock has timed out | an in-progress item is written (one conditional write), with the run's owner token, then the record runs |
//! | … and the record succeeds, its messages delivered | the item becomes completed, with the record's output and its expiry (one write, on condition that the run still owns it) |
//! | … and the record is dropped or fails | the item is deleted (on the same condition), so that a retry or a new delivery runs it |
//! | completed, not expired | the record succeeds without running: its stored output is its output, nothing is sent again; `stats.duplicates` counts it |
//! | in progress (another invocation is running it now) | the record fails (kept, retried later): it never runs twice at once, and is never dropped for this |
//! | unknown: the store is unreachable or throttling | the record fails (kept): it never runs unguarded |
//!
//! Every claim writes an owner token (random, one per claim) into the item, and the store
//! completes, releases or extends a key only for the run whose token is there: a run whose lock
//! timed out and whose key another run took over is told so ([`StoreError::Lost`]) and logs it,
//! and leaves the new run's item alone.
//!
//! A store that fails to complete an item after its record succeeded leaves the in-progress
//! item to its lock timeout (logged as an error): the record succeeded and its messages were
//! sent; a redelivery within the lock timeout fails, and after it runs again.
//!
//! Records of one batch that share a key: the first runs, and the others wait for its outcome
//! in the same invocation (they do not run): once the batch's messages are delivered, they are
//! its duplicates if it succeeded (its output is theirs; logged at info), or fail with it
//! (kept for retry) if it did not.
//!
//! A lock lasts until the invocation's deadline (see [`Idempotency::lock_timeout`]). A runner
//! that keeps a batch going past its deadline keeps its keys locked with [`HeldKeys`] and
//! [`IdempotencyStore::extend`]: the SQS worker does, with each heartbeat.

mod held;
mod key;
mod memory;
mod settings;
mod store;

pub use held::HeldKeys;
pub use key::IdempotencyKey;
pub use memory::{MemoryIdempotencyStore, MemoryItem};
pub use settings::{Idempotency, DEFAULT_EXPIRY, DEFAULT_LOCK_TIMEOUT};
pub use store::{Claim, ClaimStatus, HeldKey, IdempotencyStore, Settlement, StoreError};

pub(crate) use settings::Claimed;

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
