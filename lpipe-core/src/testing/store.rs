//! An idempotency store that is down.

use serde_json::Value;

use crate::idempotency::{Claim, ClaimStatus, HeldKey, IdempotencyStore, StoreError};

/// An [`IdempotencyStore`] whose every call fails with the same message, as one that is
/// unreachable or throttling does: for testing that its faults keep the records (failed, not
/// run).
///
/// # Examples
///
/// ```
/// use lpipe_core::{testing::DownStore, Idempotency};
/// let idempotency = Idempotency::new(DownStore::new("throttled"));
/// # let _ = idempotency;
/// ```
#[derive(Clone, Debug)]
pub struct DownStore {
    message: String,
}

impl DownStore {
    /// A store whose calls fail with this message.
    pub fn new(message: impl Into<String>) -> Self {
        DownStore {
            message: message.into(),
        }
    }

    fn fail<T>(&self) -> Result<T, StoreError> {
        Err(StoreError::new(&self.message))
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for DownStore {
    async fn begin(&self, _: &Claim) -> Result<ClaimStatus, StoreError> {
        self.fail()
    }

    async fn complete(&self, _: &HeldKey, _: Option<&Value>, _: u64) -> Result<(), StoreError> {
        self.fail()
    }

    async fn release(&self, _: &HeldKey) -> Result<(), StoreError> {
        self.fail()
    }
}
