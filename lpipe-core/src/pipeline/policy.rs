//! Which records are idempotent, and what ordinary errors do to them.

use std::collections::HashMap;

use crate::error::OnError;
use crate::idempotency::Idempotency;
use crate::path::PathName;

/// Which records are idempotent, and how (see [`crate::idempotency`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct IdempotencyPolicy {
    /// Every setting, by the index records' claims name it with.
    pub(super) all: Vec<Idempotency>,
    pub(crate) pipeline: Option<usize>,
    pub(crate) by_path: HashMap<PathName, usize>,
}

impl IdempotencyPolicy {
    /// The idempotency of records entering by this path, if any, and its index.
    #[inline]
    pub(crate) fn of(&self, path: &PathName) -> Option<(usize, &Idempotency)> {
        // Most pipelines are idempotent as a whole or not at all: no path to hash then.
        let i = if self.by_path.is_empty() {
            self.pipeline?
        } else {
            self.of_path(path)?
        };
        Some((i, &self.all[i]))
    }

    /// [`of`](Self::of)'s index when some paths have their own setting.
    fn of_path(&self, path: &PathName) -> Option<usize> {
        self.by_path.get(path).copied().or(self.pipeline)
    }

    /// How many settings there are (claims name them 0 to this).
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// The setting at this index.
    pub(crate) fn get(&self, i: usize) -> &Idempotency {
        &self.all[i]
    }

    pub(super) fn add(&mut self, idempotency: Idempotency) -> usize {
        self.all.push(idempotency);
        self.all.len() - 1
    }
}

/// What ordinary errors do to their records (see [`OnError`]).
#[derive(Clone, Default)]
pub(crate) struct ErrorPolicy {
    pub(crate) pipeline: OnError,
    pub(crate) by_path: HashMap<PathName, OnError>,
    /// Error types kept whatever the policy: each tells whether an error is of its type.
    pub(super) retried_types: Vec<fn(&(dyn std::error::Error + 'static)) -> bool>,
    /// Their names, for the description.
    pub(crate) retried_type_names: Vec<&'static str>,
}

impl ErrorPolicy {
    /// Whether an ordinary error a function returned on `path` keeps its record for retry.
    pub(crate) fn retries(
        &self,
        path: &PathName,
        error: &(dyn std::error::Error + 'static),
    ) -> bool {
        let mut current = Some(error);
        while let Some(e) = current {
            if self.retried_types.iter().any(|is| is(e)) {
                return true;
            }
            current = e.source();
        }
        self.keeps(path)
    }

    /// Whether an ordinary error on `path` keeps its record for retry, by the policy alone.
    pub(crate) fn keeps(&self, path: &PathName) -> bool {
        self.by_path.get(path).copied().unwrap_or(self.pipeline) == OnError::Retry
    }
}

pub(super) fn is_type<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    error.is::<E>()
}
