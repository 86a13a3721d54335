//! What makes records idempotent: the settings, and the claim a record's run makes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::key::IdempotencyKey;
use super::store::{Claim, HeldKey, IdempotencyStore};
use crate::kwargs::Kwargs;
use crate::path::PathName;

/// How long a completed key keeps its record from running again, unless set
/// ([`Idempotency::expires_after`]): one hour.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);

/// How long an in-progress item locks its key when the invocation has no deadline (a local
/// run), unless set ([`Idempotency::lock_timeout`]): one minute.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// What makes records idempotent: a store, how a record's key is made, and how long keys last.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lpipe_core::{Idempotency, Pipeline, idempotency::MemoryIdempotencyStore};
///
/// # #[derive(serde::Deserialize)] struct Order { order_id: String }
/// # async fn place(_: Order) -> Result<(), lpipe_core::BoxError> { Ok(()) }
/// let store = MemoryIdempotencyStore::new();
/// let pipeline = Pipeline::builder()
///     .path_fn("PLACE_ORDER", place)
///     .idempotent_in(
///         "PLACE_ORDER",
///         Idempotency::new(store)
///             .key_from(["order_id"])
///             .expires_after(Duration::from_secs(24 * 3600)),
///     )
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
#[derive(Clone)]
pub struct Idempotency {
    pub(crate) store: Arc<dyn IdempotencyStore>,
    key_fields: Option<Vec<String>>,
    /// Keyed by the record's message id instead of its kwargs.
    by_message_id: bool,
    pub(crate) expires_after: Duration,
    lock_timeout: Option<Duration>,
    /// What keys are namespaced by instead of the function's name.
    namespace: Option<String>,
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("key_fields", &self.key_fields)
            .field("by_message_id", &self.by_message_id)
            .field("expires_after", &self.expires_after)
            .field("lock_timeout", &self.lock_timeout)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Idempotency {
    /// Records keyed by their whole message (their kwargs), kept in this store for
    /// [`DEFAULT_EXPIRY`].
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self::shared(Arc::new(store))
    }

    /// As [`Idempotency::new`], with a store shared with other pipelines or paths.
    pub fn shared(store: Arc<dyn IdempotencyStore>) -> Self {
        Idempotency {
            store,
            key_fields: None,
            by_message_id: false,
            expires_after: DEFAULT_EXPIRY,
            lock_timeout: None,
            namespace: None,
        }
    }

    /// Records keyed by these kwargs only (their values, as canonical JSON, in this order). A
    /// record without one of them (or with `null`) is dropped with an error naming it; a field
    /// that no function of the idempotent path takes fails the build.
    pub fn key_from<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.key_fields = Some(fields.into_iter().map(Into::into).collect());
        self.by_message_id = false;
        self
    }

    /// Records keyed by the id of the message they carry
    /// ([`RecordInfo::message_id`](crate::source::RecordInfo::message_id)): the lpipe message
    /// id a forwarding lpipe Lambda gave it, else the SNS `MessageId` of the notification it
    /// came in, else the record's id (the SQS `messageId`, …). For messages whose kwargs may
    /// repeat although each message is new (two identical orders), or where the producer's id
    /// is what says a message was sent twice. A record of a source whose ids do not outlive
    /// the invocation (direct invocations) is dropped, saying so: key those by their kwargs.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Idempotency, idempotency::MemoryIdempotencyStore};
    /// let idempotency = Idempotency::new(MemoryIdempotencyStore::new()).key_from_message_id();
    /// assert!(idempotency.keyed_by_message_id());
    /// ```
    pub fn key_from_message_id(mut self) -> Self {
        self.by_message_id = true;
        self.key_fields = None;
        self
    }

    /// Whether records are keyed by their message id ([`key_from_message_id`](Self::key_from_message_id)).
    pub fn keyed_by_message_id(&self) -> bool {
        self.by_message_id
    }

    /// Namespaces keys by this name instead of the function's: a key is
    /// `{namespace}.{path}#{digest}`. By default the namespace is the function's name
    /// (`AWS_LAMBDA_FUNCTION_NAME` under Lambda, and in the SQS worker and a local run, which
    /// read the same variable; see [`lambda_config_from_env`](crate::runtime::lambda_config_from_env)).
    /// Set it where the function's name does not say what a record is: services that share
    /// one table and may run under any name, or a Lambda renamed without wanting its records
    /// to run again.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Idempotency, idempotency::MemoryIdempotencyStore};
    /// let idempotency = Idempotency::new(MemoryIdempotencyStore::new())
    ///     .namespace("orders-intake")
    ///     .key_from(["order_id"]);
    /// assert_eq!(idempotency.namespace_name(), Some("orders-intake"));
    /// ```
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The namespace set with [`namespace`](Self::namespace), if any.
    pub fn namespace_name(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// How long a completed key keeps its record from running again.
    pub fn expires_after(mut self, expiry: Duration) -> Self {
        self.expires_after = expiry;
        self
    }

    /// How long a run's in-progress item locks its key, after which another delivery may take
    /// it over (the run is presumed dead; if it was not, its settlement is refused, see
    /// [`StoreError::Lost`](super::StoreError::Lost)). Unless set: until the invocation's
    /// deadline under Lambda, or the batch's deadline in the SQS worker (its visibility
    /// timeout from receipt, at least 30 s; the worker's heartbeats, which keep a slow batch's
    /// messages invisible past it, extend its keys' locks as far: see
    /// [`HeldKeys`](super::HeldKeys)), else [`DEFAULT_LOCK_TIMEOUT`].
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// The fields the key is made of, if not the whole message.
    pub fn key_fields(&self) -> Option<&[String]> {
        self.key_fields.as_deref()
    }

    /// A record's key: its namespace, `{function name}.{path}` (the function name is that of
    /// the invocation's configuration, unless [`namespace`](Self::namespace) is set), and the
    /// digest of its canonical JSON (or of its message id, `message_id`: `None` when its source's
    /// ids do not outlive the invocation).
    ///
    /// # Errors
    ///
    /// A message naming the first key field the kwargs lack, or saying the record has no
    /// message id.
    pub(crate) fn key_in(
        &self,
        config: &lambda_runtime::Config,
        path: &PathName,
        (kwargs, message_id): (&Kwargs, Option<&str>),
    ) -> Result<IdempotencyKey, String> {
        let name = self.namespace.as_deref().unwrap_or(&config.function_name);
        let namespace: Arc<str> = Arc::from(format!("{name}.{path}"));
        if !self.by_message_id {
            return IdempotencyKey::of(namespace, self.key_fields(), kwargs);
        }
        match message_id {
            Some(id) => Ok(IdempotencyKey::of_text(namespace, id)),
            None => Err("the path is idempotent by message id, and this record has no id that outlives its invocation (direct invocations number their records): key it by its kwargs (`key_from`)".to_owned()),
        }
    }

    /// [`key_in`](Self::key_in) for an invocation of this function.
    #[cfg(test)]
    pub(crate) fn key(
        &self,
        function_name: &str,
        path: &PathName,
        kwargs: &Kwargs,
    ) -> Result<IdempotencyKey, String> {
        let config = lambda_runtime::Config {
            function_name: function_name.to_owned(),
            ..Default::default()
        };
        self.key_in(&config, path, (kwargs, None))
    }

    /// The claim a record makes on its key, now.
    pub(crate) fn claim(&self, key: IdempotencyKey, deadline_ms: Option<u64>) -> Claim {
        let now_ms = super::now_ms();
        let lock_until_ms = match (self.lock_timeout, deadline_ms) {
            (Some(timeout), _) => now_ms + timeout.as_millis() as u64,
            (None, Some(deadline)) if deadline > now_ms => deadline,
            _ => now_ms + DEFAULT_LOCK_TIMEOUT.as_millis() as u64,
        };
        Claim::new(key, now_ms, lock_until_ms, self.expiry_from(now_ms))
    }

    /// When a key completed now expires (Unix seconds).
    pub(crate) fn expires_at_s(&self) -> u64 {
        self.expiry_from(super::now_ms())
    }

    /// When an item written at this time (Unix milliseconds) expires (Unix seconds): at least a
    /// second later.
    fn expiry_from(&self, now_ms: u64) -> u64 {
        now_ms / 1000 + self.expires_after.as_secs().max(1)
    }
}

/// A key a record's run holds: completed or released once the record's outcome is known.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    pub(crate) held: HeldKey,
    /// Which of the pipeline's idempotency settings (see `IdempotencyPolicy`).
    pub(crate) policy: usize,
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
