//! What a store is asked, what it answers, and the trait stores implement.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::key::IdempotencyKey;

/// What a record's run asks of the store before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claim {
    /// The record's key.
    pub key: IdempotencyKey,
    /// This claim's owner token (random, one per claim): written into the in-progress item,
    /// and required by [`IdempotencyStore::complete`], [`release`](IdempotencyStore::release)
    /// and [`extend`](IdempotencyStore::extend).
    pub owner: Arc<str>,
    /// Now, in Unix milliseconds.
    pub now_ms: u64,
    /// Until when, in Unix milliseconds, the in-progress item locks the key.
    pub lock_until_ms: u64,
    /// When, in Unix seconds, the item expires (the TTL attribute's value).
    pub expires_at_s: u64,
}

impl Claim {
    /// A claim with these values and a new owner token.
    pub fn new(key: IdempotencyKey, now_ms: u64, lock_until_ms: u64, expires_at_s: u64) -> Self {
        Claim {
            key,
            owner: Arc::from(format!("{:032x}", rand::random::<u128>())),
            now_ms,
            lock_until_ms,
            expires_at_s,
        }
    }

    /// The key as this claim holds it, once the store said [`ClaimStatus::Started`].
    pub fn held(&self) -> HeldKey {
        HeldKey {
            key: self.key.clone(),
            owner: self.owner.clone(),
        }
    }
}

/// A key a run holds: the key, and the owner token its claim wrote.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeldKey {
    /// The key.
    pub key: IdempotencyKey,
    /// The owner token of the claim that holds it.
    pub owner: Arc<str>,
}

impl fmt::Display for HeldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.key, f)
    }
}

/// What the store said to a claim.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimStatus {
    /// The key was free (absent, expired, or its lock timed out): it is now in progress, and
    /// the record runs.
    Started,
    /// The key's record ran and succeeded, with this output: it does not run again.
    Completed(Option<Value>),
    /// Another run holds the key until this time (Unix milliseconds).
    InProgress {
        /// When its lock times out.
        lock_until_ms: u64,
    },
}

/// Why a store did not do what it was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not answer (unreachable, throttling, a malformed item): the record
    /// fails, and is retried.
    #[error("{0}")]
    Unavailable(String),
    /// The key is no longer this run's: its lock timed out and another run took it over (or
    /// it is gone). Nothing was changed.
    #[error("idempotency key {key} is no longer this run's: its lock timed out and another run took it over, or it is gone; left as it is")]
    Lost {
        /// The key.
        key: String,
    },
}

impl StoreError {
    /// An [`Unavailable`](StoreError::Unavailable) error with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        StoreError::Unavailable(message.to_string())
    }

    /// A [`Lost`](StoreError::Lost) error for this key.
    pub fn lost(key: &IdempotencyKey) -> Self {
        StoreError::Lost {
            key: key.to_string(),
        }
    }
}

/// Where idempotency keys are kept: [`MemoryIdempotencyStore`](super::MemoryIdempotencyStore)
/// here, a DynamoDB table in `lpipe-dynamodb`. See the [module docs](super) for what each
/// answer means.
///
/// Every write after the claim is conditional on the claim's owner token still being the
/// item's: a store answers [`StoreError::Lost`] (and changes nothing) otherwise.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Writes an in-progress item for the claim's key, with its owner token, unless a live one
    /// is there (one conditional write): the key is free when it is absent, its item expired
    /// (`expires_at_s` ≤ now), or it is in progress with a lock that timed out. Otherwise says
    /// what holds it.
    async fn begin(&self, claim: &Claim) -> Result<ClaimStatus, StoreError>;

    /// The key's record succeeded: its item becomes completed, with this output, until
    /// `expires_at_s` (Unix seconds), if this run still owns it.
    async fn complete(
        &self,
        held: &HeldKey,
        output: Option<&Value>,
        expires_at_s: u64,
    ) -> Result<(), StoreError>;

    /// The key's record did not succeed: its in-progress item is deleted, if this run still
    /// owns it.
    async fn release(&self, held: &HeldKey) -> Result<(), StoreError>;

    /// What the Lambda's description says of the store (`my-lambda describe`): its kind and
    /// where it keeps keys, as a JSON object. Default: `{"kind": "custom"}`.
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"kind": "custom"})
    }

    /// Extends the locks of these keys' in-progress items until `lock_until_ms` (Unix
    /// milliseconds), for runs that outlive the lock they claimed (the SQS worker's: its
    /// heartbeats keep a slow batch's messages invisible past the batch's deadline, and extend
    /// its keys' locks with them; see [`HeldKeys::extend_locks`](super::HeldKeys::extend_locks)).
    /// A lock is never shortened, and an item that is not in progress (completed, released,
    /// expired) or not this run's is left alone. The default cannot extend: it says so, and
    /// the caller warns that the locks will time out.
    async fn extend(&self, held: &[&HeldKey], lock_until_ms: u64) -> Result<(), StoreError> {
        let _ = (held, lock_until_ms);
        Err(StoreError::new(
            "this idempotency store cannot extend locks: they time out as claimed",
        ))
    }

    /// Settles keys of a batch, one result per settlement, in order. The default calls
    /// [`complete`](Self::complete) and [`release`](Self::release), up to 16 at once; a store
    /// that can do better (one lock, one call) overrides it.
    async fn settle(&self, settlements: &[Settlement<'_>]) -> Vec<Result<(), StoreError>> {
        // A loop over a named async fn rather than stream combinators with closures: with
        // those, rustc cannot prove the future `Send` for every lifetime.
        use futures::StreamExt;
        let mut pending = futures::stream::FuturesOrdered::new();
        let mut settled = Vec::with_capacity(settlements.len());
        for s in settlements {
            if pending.len() >= 16 {
                settled.extend(pending.next().await);
            }
            pending.push_back(settle_one(self, s));
        }
        while let Some(r) = pending.next().await {
            settled.push(r);
        }
        settled
    }
}

/// One settlement, by [`IdempotencyStore::complete`] or [`IdempotencyStore::release`].
async fn settle_one<S: IdempotencyStore + ?Sized>(
    store: &S,
    settlement: &Settlement<'_>,
) -> Result<(), StoreError> {
    match *settlement {
        Settlement::Complete {
            held,
            output,
            expires_at_s,
        } => store.complete(held, output, expires_at_s).await,
        Settlement::Release { held } => store.release(held).await,
    }
}

/// What becomes of a key once its record's outcome is known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Settlement<'a> {
    /// The record succeeded: [`IdempotencyStore::complete`].
    Complete {
        /// The key, as the run holds it.
        held: &'a HeldKey,
        /// The record's output.
        output: Option<&'a Value>,
        /// When the completed item expires (Unix seconds).
        expires_at_s: u64,
    },
    /// The record did not succeed: [`IdempotencyStore::release`].
    Release {
        /// The key, as the run holds it.
        held: &'a HeldKey,
    },
}

impl Settlement<'_> {
    /// The key it settles.
    pub fn held(&self) -> &HeldKey {
        match self {
            Settlement::Complete { held, .. } | Settlement::Release { held } => held,
        }
    }
}
