//! The in-memory store, for local runs and tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use super::key::IdempotencyKey;
use super::store::{Claim, ClaimStatus, HeldKey, IdempotencyStore, Settlement, StoreError};

/// An item of [`MemoryIdempotencyStore`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MemoryItem {
    /// A run holds the key.
    InProgress {
        /// Until when (Unix milliseconds).
        lock_until_ms: u64,
        /// When it expires (Unix seconds).
        expires_at_s: u64,
        /// The owner token of the run that holds it.
        owner: Arc<str>,
    },
    /// The key's record succeeded.
    Completed {
        /// Its output.
        output: Option<Value>,
        /// When it expires (Unix seconds).
        expires_at_s: u64,
    },
}

impl MemoryItem {
    fn expires_at_s(&self) -> u64 {
        match self {
            MemoryItem::InProgress { expires_at_s, .. }
            | MemoryItem::Completed { expires_at_s, .. } => *expires_at_s,
        }
    }

    fn is_owned_by(&self, owner: &str) -> bool {
        matches!(self, MemoryItem::InProgress { owner: o, .. } if &**o == owner)
    }
}

/// An [`IdempotencyStore`] in memory, for local runs and tests: keys last until they expire,
/// at most as long as the process. Expired keys are swept out each time the store has doubled
/// since the last sweep, so a long-running process holds at most about twice the keys still
/// alive. Clones share their items.
#[derive(Clone, Debug, Default)]
pub struct MemoryIdempotencyStore {
    items: Arc<Mutex<Items>>,
}

#[derive(Debug, Default)]
struct Items {
    by_key: HashMap<IdempotencyKey, MemoryItem>,
    /// How many items there were after the last sweep.
    swept_at: usize,
}

/// The fewest items the store sweeps at.
const SWEEP_FROM: usize = 1024;

impl Items {
    /// Sweeps out expired items once the store has doubled since the last sweep.
    fn sweep_if_due(&mut self, now_s: u64) {
        if self.by_key.len() < SWEEP_FROM.max(2 * self.swept_at) {
            return;
        }
        self.by_key.retain(|_, item| item.expires_at_s() > now_s);
        self.swept_at = self.by_key.len();
    }

    /// Completes or releases a key this run holds; [`StoreError::Lost`] if it no longer does.
    fn settle(&mut self, settlement: &Settlement<'_>) -> Result<(), StoreError> {
        let held = settlement.held();
        match self.by_key.get_mut(&held.key) {
            Some(item) if item.is_owned_by(&held.owner) => match *settlement {
                Settlement::Complete {
                    output,
                    expires_at_s,
                    ..
                } => {
                    *item = MemoryItem::Completed {
                        output: output.cloned(),
                        expires_at_s,
                    };
                }
                Settlement::Release { .. } => {
                    self.by_key.remove(&held.key);
                }
            },
            _ => return Err(StoreError::lost(&held.key)),
        }
        Ok(())
    }
}

impl MemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The items, by key (as [`IdempotencyKey`] writes it).
    pub fn items(&self) -> HashMap<String, MemoryItem> {
        let items = self.items.lock().expect("store lock");
        items
            .by_key
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"kind": "memory"})
    }

    async fn begin(&self, claim: &Claim) -> Result<ClaimStatus, StoreError> {
        let mut items = self.items.lock().expect("store lock");
        items.sweep_if_due(claim.now_ms / 1000);
        let live = |item: &MemoryItem| item.expires_at_s() > claim.now_ms / 1000;
        match items.by_key.get(&claim.key) {
            Some(item @ MemoryItem::Completed { output, .. }) if live(item) => {
                return Ok(ClaimStatus::Completed(output.clone()));
            }
            Some(item @ MemoryItem::InProgress { lock_until_ms, .. })
                if live(item) && *lock_until_ms > claim.now_ms =>
            {
                return Ok(ClaimStatus::InProgress {
                    lock_until_ms: *lock_until_ms,
                });
            }
            // Absent, expired, or its lock timed out: taken.
            _ => {}
        }
        items.by_key.insert(
            claim.key.clone(),
            MemoryItem::InProgress {
                lock_until_ms: claim.lock_until_ms,
                expires_at_s: claim.expires_at_s,
                owner: claim.owner.clone(),
            },
        );
        Ok(ClaimStatus::Started)
    }

    async fn complete(
        &self,
        held: &HeldKey,
        output: Option<&Value>,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        let settlement = Settlement::Complete {
            held,
            output,
            expires_at_s,
        };
        self.items.lock().expect("store lock").settle(&settlement)
    }

    async fn release(&self, held: &HeldKey) -> Result<(), StoreError> {
        let settlement = Settlement::Release { held };
        self.items.lock().expect("store lock").settle(&settlement)
    }

    /// A batch's settlements under one lock.
    async fn settle(&self, settlements: &[Settlement<'_>]) -> Vec<Result<(), StoreError>> {
        let mut items = self.items.lock().expect("store lock");
        settlements.iter().map(|s| items.settle(s)).collect()
    }

    async fn extend(&self, held: &[&HeldKey], lock_until_ms: u64) -> Result<(), StoreError> {
        let mut items = self.items.lock().expect("store lock");
        let mut lost = Vec::new();
        for h in held {
            match items.by_key.get_mut(&h.key) {
                Some(MemoryItem::InProgress {
                    lock_until_ms: until,
                    owner,
                    ..
                }) if **owner == *h.owner => {
                    *until = (*until).max(lock_until_ms);
                }
                // Settled meanwhile: left alone.
                Some(MemoryItem::Completed { .. }) | None => {}
                Some(MemoryItem::InProgress { .. }) => lost.push(h.key.to_string()),
            }
        }
        match lost.is_empty() {
            true => Ok(()),
            false => Err(StoreError::Lost {
                key: lost.join(", "),
            }),
        }
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
