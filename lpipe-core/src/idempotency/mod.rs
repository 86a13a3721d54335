//! Idempotent records: each record's effects once, on sources that deliver at least once.
//!
//! A pipeline (or one path of it) made idempotent with
//! [`PipelineBuilder::idempotent`](crate::PipelineBuilder::idempotent) or
//! [`PipelineBuilder::idempotent_in`](crate::PipelineBuilder::idempotent_in) keys each record
//! whose run reaches it, by the kwargs named with [`Idempotency::key_from`] or by the whole
//! message ([`IdempotencyKey`]), and keeps what it did with that key in an
//! [`IdempotencyStore`]: a claim before the record runs (with an owner token), then a
//! completion with its output if it succeeded, or a release if it did not. What each state of a
//! key does to a record (new, completed, in progress, a store that cannot answer, duplicates
//! within one batch, locks that outlive a deadline) is the table of the guide's Idempotency
//! page (`lpipe::guide::idempotency`).

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
