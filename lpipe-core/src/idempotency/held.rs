//! The keys a batch's records hold while it runs, for runners that keep their locks alive.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::store::{HeldKey, IdempotencyStore};

/// The idempotency keys a batch's records hold until each is settled, with the store each is
/// in: for a runner that keeps a batch going past its deadline and must keep its keys locked
/// as long (the SQS worker, whose heartbeats keep a slow batch's messages invisible).
/// [`Pipeline::handle_holding`] adds a record's key when its claim starts it and takes it out
/// once the key is settled; [`extend_locks`](Self::extend_locks) extends the locks of those
/// held now. Clones share their keys.
///
/// [`Pipeline::handle_holding`]: crate::Pipeline::handle_holding
#[derive(Clone, Default)]
pub struct HeldKeys {
    /// The keys held, by the store they are in (few stores: one per idempotency setting).
    stores: Arc<Mutex<Vec<StoreKeys>>>,
}

/// A store's keys held in a [`HeldKeys`].
type StoreKeys = (Arc<dyn IdempotencyStore>, HashSet<HeldKey>);

impl fmt::Debug for HeldKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldKeys")
            .field("keys", &self.len())
            .finish()
    }
}

impl HeldKeys {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are held now.
    pub fn len(&self) -> usize {
        let stores = self.stores.lock().expect("held keys");
        stores.iter().map(|(_, keys)| keys.len()).sum()
    }

    /// Whether no key is held now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Extends until `lock_until_ms` (Unix milliseconds) the locks of the keys held now, in
    /// their stores ([`IdempotencyStore::extend`]): a lock is never shortened, and a key
    /// settled meanwhile is left alone.
    ///
    /// # Errors
    ///
    /// What each store that could not said (the locks of its keys time out as claimed; a key
    /// another run took over is named).
    pub async fn extend_locks(&self, lock_until_ms: u64) -> Result<(), String> {
        // Copied out: the stores are awaited without the lock.
        let held: Vec<(Arc<dyn IdempotencyStore>, Vec<HeldKey>)> = {
            let stores = self.stores.lock().expect("held keys");
            stores
                .iter()
                .filter(|(_, keys)| !keys.is_empty())
                .map(|(store, keys)| (store.clone(), keys.iter().cloned().collect()))
                .collect()
        };
        let mut failed = Vec::new();
        for (store, keys) in held {
            let keys: Vec<&HeldKey> = keys.iter().collect();
            if let Err(e) = store.extend(&keys, lock_until_ms).await {
                failed.push(format!(
                    "the locks of {} idempotency keys could not be extended: {e}",
                    keys.len()
                ));
            }
        }
        match failed.is_empty() {
            true => Ok(()),
            false => Err(failed.join("; ")),
        }
    }

    /// A record holds this key, in this store.
    pub(crate) fn hold(&self, store: &Arc<dyn IdempotencyStore>, key: &HeldKey) {
        let mut stores = self.stores.lock().expect("held keys");
        match stores.iter_mut().find(|(s, _)| Arc::ptr_eq(s, store)) {
            Some((_, keys)) => {
                keys.insert(key.clone());
            }
            None => stores.push((store.clone(), HashSet::from([key.clone()]))),
        }
    }

    /// These keys of this store are settled.
    pub(crate) fn let_go<'a>(
        &self,
        store: &Arc<dyn IdempotencyStore>,
        settled: impl IntoIterator<Item = &'a HeldKey>,
    ) {
        let mut stores = self.stores.lock().expect("held keys");
        if let Some((_, keys)) = stores.iter_mut().find(|(s, _)| Arc::ptr_eq(s, store)) {
            for key in settled {
                keys.remove(key);
            }
        }
    }
}
