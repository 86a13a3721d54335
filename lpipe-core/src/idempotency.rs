//! Idempotent records: each record's effects once, on sources that deliver at least once.
//!
//! A pipeline (or one path of it) made idempotent with
//! [`PipelineBuilder::idempotent`](crate::PipelineBuilder::idempotent) or
//! [`PipelineBuilder::idempotent_in`](crate::PipelineBuilder::idempotent_in) keys each record
//! whose run reaches it (the first idempotent path a run reaches claims the key: entered, run
//! by another path, or reached by a returned payload), by the kwargs named with
//! [`Idempotency::key_from`] or by the whole message, namespaced by the function's (or
//! [`Idempotency::namespace`]'s) and the path's names and digested (128 bits, in hex: SHA-256's
//! first, or for a store that keeps keys only as long as its process, as the in-memory one, a
//! digest keyed per process; see [`KeyDigest`]), and keeps what it did with that key in an
//! [`IdempotencyStore`]:
//!
//! | the key is… | what happens to the record |
//! | --- | --- |
//! | new, expired, or locked by a run whose lock has timed out | an in-progress item is written (one conditional write), then the record runs |
//! | … and the record succeeds, its messages delivered | the item becomes completed, with the record's output and its expiry (one write) |
//! | … and the record is dropped or fails | the item is deleted, so that a retry or a new delivery runs it |
//! | completed, not expired | the record succeeds without running: its stored output is its output, nothing is sent again; `stats.duplicates` counts it |
//! | in progress (another invocation is running it now) | the record fails (kept, retried later): it never runs twice at once, and is never dropped for this |
//! | unknown: the store is unreachable or throttling | the record fails (kept): it never runs unguarded |
//!
//! A store that fails to complete an item after its record succeeded leaves the in-progress
//! item to its lock timeout (logged as an error): the record succeeded and its messages were
//! sent; a redelivery within the lock timeout fails, and after it runs again.
//!
//! Records of one batch that share a key: the first runs, and the others fail and come back
//! as duplicates (completion is written once the batch's messages are delivered).
//!
//! A lock lasts until the invocation's deadline (see [`Idempotency::lock_timeout`]). A runner
//! that keeps a batch going past its deadline keeps its keys locked with [`HeldKeys`] and
//! [`IdempotencyStore::extend`]: the SQS worker does, with each heartbeat.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::kwargs::Kwargs;
use crate::path::PathName;

/// How long a key's digest is: 16 bytes (32 hex digits).
const DIGEST_BYTES: usize = 16;

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
/// use lpipe_core::{Idempotency, MemoryIdempotencyStore, Pipeline};
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
    pub(crate) expires_after: Duration,
    lock_timeout: Option<Duration>,
    /// How the store wants its keys digested.
    digest: KeyDigest,
    /// The one key field, when [`short_key`](Self::short_key) can look for it.
    short_field: Option<ShortField>,
    /// The keys' namespaces made so far, shared by clones.
    namespaces: Arc<Namespaces>,
    /// What keys are namespaced by instead of the function's name.
    namespace: Option<String>,
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("key_fields", &self.key_fields)
            .field("expires_after", &self.expires_after)
            .field("lock_timeout", &self.lock_timeout)
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
            digest: store.key_digest(),
            store,
            key_fields: None,
            expires_after: DEFAULT_EXPIRY,
            lock_timeout: None,
            short_field: None,
            namespaces: Arc::default(),
            namespace: None,
        }
    }

    /// Records keyed by these kwargs only (their values, as canonical JSON, in this order). A
    /// record without one of them (or with `null`) is dropped with an error naming it.
    pub fn key_from<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        let fields: Vec<String> = fields.into_iter().map(Into::into).collect();
        self.short_field = match (self.digest, fields.as_slice()) {
            (KeyDigest::ProcessLocal, [field]) => ShortField::new(field),
            _ => None,
        };
        self.key_fields = Some(fields);
        self
    }

    /// Namespaces keys by this name instead of the function's: a key is
    /// `{namespace}.{path}#{digest}`. By default the namespace is the function's name
    /// (`AWS_LAMBDA_FUNCTION_NAME` under Lambda, and in the SQS worker and a local run, which
    /// read the same variable; see [`lambda_config_from_env`](crate::lambda_config_from_env)).
    /// Set it where the function's name does not say what a record is: services that share
    /// one table and may run under any name, or a Lambda renamed without wanting its records
    /// to run again.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Idempotency, MemoryIdempotencyStore};
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
    /// it over (the run is presumed dead). Unless set: until the invocation's deadline under
    /// Lambda, or the batch's deadline in the SQS worker (its visibility timeout from receipt,
    /// at least 30 s; the worker's heartbeats, which keep a slow batch's messages invisible
    /// past it, extend its keys' locks as far: see [`HeldKeys`]), else
    /// [`DEFAULT_LOCK_TIMEOUT`].
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// The fields the key is made of, if not the whole message.
    pub fn key_fields(&self) -> Option<&[String]> {
        self.key_fields.as_deref()
    }

    /// A record's key: its namespace, `{function name}.{path}` (the function name is that of
    /// the invocation's configuration), and the 128-bit digest of its canonical JSON that the
    /// store asks for ([`KeyDigest`]; collisions need 2^64 keys).
    ///
    /// # Errors
    ///
    /// A message naming the first key field the kwargs lack.
    #[inline]
    pub(crate) fn key_in(
        &self,
        config: &Arc<lambda_runtime::Config>,
        path: &PathName,
        kwargs: &Kwargs,
    ) -> Result<IdempotencyKey, String> {
        let digest = match self.short_key(kwargs) {
            Some(digest) => digest,
            None => self.gathered_key(kwargs)?,
        };
        let namespace = match &self.namespace {
            Some(namespace) => self.namespaces.of(namespace, path),
            None => self.namespaces.of_config(config, path),
        };
        Ok(IdempotencyKey { namespace, digest })
    }

    /// The digest of any key that [`short_key`](Self::short_key) does not make: its text
    /// gathered, then digested. Out of line: its buffer would otherwise weigh on the frame of
    /// every key, short ones too.
    #[inline(never)]
    fn gathered_key(&self, kwargs: &Kwargs) -> Result<[u8; DIGEST_BYTES], String> {
        let mut text = KeyText::new();
        self.material(kwargs, &mut text)?;
        Ok(text.digest(self.digest))
    }

    /// The digest of the commonest key in memory without gathering its text: one kwarg of at
    /// most 16 bytes whose value is canonical as written and short enough that `[value]` is
    /// permuted whole (see [`KeyText::digest`], which gives the same digest for the same text);
    /// `None` for any other key (or a missing field, which [`material`](Self::material) names).
    ///
    /// The field's key and an integer value are read 16 bytes of text at a time (see
    /// [`ShortField`] and [`all_digits`]): no call to compare or copy bytes.
    #[inline]
    fn short_key(&self, kwargs: &Kwargs) -> Option<[u8; DIGEST_BYTES]> {
        let field = self.short_field.as_ref()?;
        let text = kwargs.as_str().as_bytes();
        let entry = kwargs
            .index()?
            .iter()
            .rev()
            .find(|e| field.is_at(text, e.key))?;
        let (start, len) = (entry.value.0 as usize, entry.value.1 as usize);
        if len + 2 >= DIGEST_BYTES {
            return None;
        }
        let value = window(text, start)? & lanes(len);
        let canonical = match value as u8 {
            // An integer: its digits (after a sign), all of them.
            b'-' => all_digits(value, lanes(len) & !0xff),
            b'0'..=b'9' => all_digits(value, lanes(len)),
            _ => {
                let written = text.get(start..start + len)?;
                written != b"null" && canonical_as_written(written)
            }
        };
        if !canonical {
            return None;
        }
        // `[value]`, as the gathered text would be.
        let block = u128::from(b'[') | (value << 8) | (u128::from(b']') << (8 * (len + 1)));
        Some(sealed(block.to_le_bytes(), len + 2))
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
        self.key_in(&Arc::new(config), path, kwargs)
    }

    /// Writes what the key hashes: the canonical JSON of the named fields' values as an array,
    /// or of the whole kwargs object.
    fn material(&self, kwargs: &Kwargs, out: &mut impl Out) -> Result<(), String> {
        match kwargs.raw_entries() {
            Some(_) => self.material_from_raw(kwargs, out),
            None => self.material_from_value(&kwargs.to_value(), out),
        }
    }

    /// The key's canonical JSON from the kwargs' raw entries (no tree is built for scalar
    /// values): the named fields' values as an array, or every entry as an object with its
    /// keys sorted (the last of a repeated key wins, as when parsing).
    fn material_from_raw(&self, kwargs: &Kwargs, out: &mut impl Out) -> Result<(), String> {
        let entries = || kwargs.raw_entries().into_iter().flatten();
        match &self.key_fields {
            Some(fields) => {
                out.put("[");
                for (n, field) in fields.iter().enumerate() {
                    match kwargs.raw_last(field).flatten() {
                        Some(v) if v != "null" => {
                            if n > 0 {
                                out.put(",");
                            }
                            canonical_raw(v, out);
                        }
                        found => return Err(missing_field(field, found.is_some())),
                    }
                }
                out.put("]");
            }
            None => {
                let mut sorted: Vec<(&str, &str)> = entries().collect();
                // Stable: the last of a repeated key stays last in its run.
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                out.put("{");
                let mut first = true;
                for (i, (k, v)) in sorted.iter().enumerate() {
                    if sorted.get(i + 1).is_some_and(|next| next.0 == *k) {
                        continue;
                    }
                    if !first {
                        out.put(",");
                    }
                    first = false;
                    out.put("\"");
                    out.put(k);
                    out.put("\":");
                    canonical_raw(v, out);
                }
                out.put("}");
            }
        }
        Ok(())
    }

    /// As [`material_from_raw`](Self::material_from_raw), from a parsed tree (kwargs whose keys
    /// have escapes).
    fn material_from_value(&self, value: &Value, out: &mut impl Out) -> Result<(), String> {
        match &self.key_fields {
            None => canonical_json(value, out),
            Some(fields) => {
                out.put("[");
                for (n, field) in fields.iter().enumerate() {
                    match value.get(field) {
                        Some(v) if !v.is_null() => {
                            if n > 0 {
                                out.put(",");
                            }
                            canonical_json(v, out);
                        }
                        found => return Err(missing_field(field, found.is_some())),
                    }
                }
                out.put("]");
            }
        }
        Ok(())
    }

    /// The claim a record makes on its key, now.
    pub(crate) fn claim(&self, key: IdempotencyKey, deadline_ms: Option<u64>) -> Claim {
        let now_ms = now_ms();
        let lock_until_ms = match (self.lock_timeout, deadline_ms) {
            (Some(timeout), _) => now_ms + timeout.as_millis() as u64,
            (None, Some(deadline)) if deadline > now_ms => deadline,
            _ => now_ms + DEFAULT_LOCK_TIMEOUT.as_millis() as u64,
        };
        Claim {
            key,
            now_ms,
            lock_until_ms,
            expires_at_s: self.expiry_from(now_ms),
        }
    }
}

/// A key a record's run holds: completed or released once the record's outcome is known.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    pub(crate) key: IdempotencyKey,
    /// Which of the pipeline's idempotency settings (see `IdempotencyPolicy`).
    pub(crate) policy: usize,
}

/// A key field of at most 16 bytes, as [`Idempotency::short_key`] looks for it: an entry's
/// key is compared with it 16 bytes of text at once (a key is followed by at least `":` and a
/// value, so text that ends sooner is compared as bytes).
#[derive(Clone, Copy, Debug)]
struct ShortField {
    /// The field's bytes, zeros after them (little-endian: the first byte lowest).
    bytes: u128,
    /// Its length.
    len: usize,
}

impl ShortField {
    /// The field, if it has at most 16 bytes.
    fn new(field: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        bytes
            .get_mut(..field.len())?
            .copy_from_slice(field.as_bytes());
        Some(ShortField {
            bytes: u128::from_le_bytes(bytes),
            len: field.len(),
        })
    }

    /// Whether the key at this range of `text` is the field.
    #[inline(always)]
    fn is_at(&self, text: &[u8], (start, len): (u32, u32)) -> bool {
        if len as usize != self.len {
            return false;
        }
        match window(text, start as usize) {
            Some(window) => window & lanes(self.len) == self.bytes,
            None => {
                text.get(start as usize..start as usize + self.len)
                    == Some(&self.bytes.to_le_bytes()[..self.len])
            }
        }
    }
}

/// The 16 bytes of `text` from `at`, if it has them, as a little-endian number.
#[inline(always)]
fn window(text: &[u8], at: usize) -> Option<u128> {
    let bytes: &[u8; 16] = text.get(at..)?.first_chunk()?;
    Some(u128::from_le_bytes(*bytes))
}

/// The mask of the first `len` (at most 16) bytes of a [`window`].
#[inline(always)]
fn lanes(len: usize) -> u128 {
    match len {
        16.. => u128::MAX,
        _ => (1u128 << (8 * len)) - 1,
    }
}

/// Whether every byte of `bytes` in `lanes` (a mask of whole bytes) is an ASCII digit. Each
/// byte less `0` is at most 9 for a digit: adding `0x76` sets the top bit of any greater one
/// (a byte with the top bit set already is caught as it is; its carry into the next byte can
/// only change a result that is already "no").
#[inline(always)]
fn all_digits(bytes: u128, lanes: u128) -> bool {
    const EACH: u128 = u128::from_le_bytes([1; 16]);
    let offsets = (bytes ^ (EACH * u128::from(b'0'))) & lanes;
    (offsets.wrapping_add(EACH * 0x76) | offsets) & (EACH * 0x80) & lanes == 0
}

/// The idempotency keys that the records of a running batch hold, for whoever keeps the batch
/// going past its deadline and must keep its keys locked as long: the SQS worker, whose
/// heartbeats keep a slow batch's messages invisible. [`Pipeline::handle_holding`] adds a
/// record's key when its claim starts it, with the store it is in, and takes it out once the
/// key is settled; [`extend_locks`](Self::extend_locks) extends the locks of those held now.
/// Clones share their keys.
///
/// [`Pipeline::handle_holding`]: crate::Pipeline::handle_holding
#[derive(Clone, Default)]
pub struct HeldKeys {
    /// The keys held, by the store they are in (few stores: one per idempotency setting).
    stores: Arc<Mutex<Vec<StoreKeys>>>,
}

/// A store's keys held in a [`HeldKeys`].
type StoreKeys = (Arc<dyn IdempotencyStore>, HashSet<IdempotencyKey>);

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
    /// What each store that could not said (the locks of its keys time out as claimed).
    pub async fn extend_locks(&self, lock_until_ms: u64) -> Result<(), String> {
        // Copied out: the stores are awaited without the lock.
        let held: Vec<(Arc<dyn IdempotencyStore>, Vec<IdempotencyKey>)> = {
            let stores = self.stores.lock().expect("held keys");
            stores
                .iter()
                .filter(|(_, keys)| !keys.is_empty())
                .map(|(store, keys)| (store.clone(), keys.iter().copied().collect()))
                .collect()
        };
        let mut failed = Vec::new();
        for (store, keys) in held {
            let keys: Vec<&IdempotencyKey> = keys.iter().collect();
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
    pub(crate) fn hold(&self, store: &Arc<dyn IdempotencyStore>, key: &IdempotencyKey) {
        let mut stores = self.stores.lock().expect("held keys");
        match stores.iter_mut().find(|(s, _)| Arc::ptr_eq(s, store)) {
            Some((_, keys)) => {
                keys.insert(*key);
            }
            None => stores.push((store.clone(), HashSet::from([*key]))),
        }
    }

    /// These keys of this store are settled.
    pub(crate) fn let_go<'a>(
        &self,
        store: &Arc<dyn IdempotencyStore>,
        settled: impl IntoIterator<Item = &'a Claimed>,
    ) {
        let mut stores = self.stores.lock().expect("held keys");
        if let Some((_, keys)) = stores.iter_mut().find(|(s, _)| Arc::ptr_eq(s, store)) {
            for claim in settled {
                keys.remove(&claim.key);
            }
        }
    }
}

/// The namespaces keys were made in: one `{function name}.{path}` string per path, made once
/// (see [`interned`]) and shared by the path's keys.
#[derive(Debug, Default)]
struct Namespaces {
    /// The first namespace asked for by configuration, found again without a lock or a text
    /// comparison: a Lambda's records share one configuration and a pipeline's paths are the
    /// same from record to record (both are held here, so their addresses stay theirs).
    first: OnceLock<First>,
}

/// See [`Namespaces::first`].
#[derive(Debug)]
struct First {
    config: Arc<lambda_runtime::Config>,
    path: PathName,
    namespace: &'static str,
}

/// The one copy of a namespace's text, kept for the life of the process: equal namespaces are
/// the same string, so keys compare and copy them as addresses (no reference count to touch per
/// key). A process makes few namespaces (one per function and idempotent path), so keeping them
/// costs nothing that grows.
fn interned(text: &str) -> &'static str {
    interned_as(|known| known == text, || text.to_owned())
}

/// [`interned`], of the text `is` recognises: `make` writes it only if no copy is kept yet.
fn interned_as(is: impl Fn(&str) -> bool, make: impl FnOnce() -> String) -> &'static str {
    static INTERNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = interned.iter().find(|known| is(known)) {
        return known;
    }
    let kept: &'static str = Box::leak(make().into_boxed_str());
    interned.push(kept);
    kept
}

impl Namespaces {
    /// The namespace of this path, for an invocation with this configuration.
    fn of_config(&self, config: &Arc<lambda_runtime::Config>, path: &PathName) -> &'static str {
        if let Some(first) = self.first.get() {
            if Arc::ptr_eq(&first.config, config) && first.path.same(path) {
                return first.namespace;
            }
        }
        let namespace = self.of(&config.function_name, path);
        // Only the first time: later ones keep it, and the others take the way above.
        let _ = self.first.set(First {
            config: config.clone(),
            path: path.clone(),
            namespace,
        });
        namespace
    }

    /// The namespace of this function's path (its text is written only the first time).
    fn of(&self, function_name: &str, path: &PathName) -> &'static str {
        let path = path.as_str();
        let is = |ns: &str| {
            ns.len() == function_name.len() + 1 + path.len()
                && ns.starts_with(function_name)
                && ns[function_name.len()..].starts_with('.')
                && ns.ends_with(path)
        };
        interned_as(is, || format!("{function_name}.{path}"))
    }
}

/// A record's idempotency key: the namespace it is unique in (`{function name}.{path}`) and
/// a 128-bit digest of the record's canonical JSON (the first 128 bits of its SHA-256, unless
/// the store keeps keys only in its process: see [`KeyDigest`]). Its text (`Display`),
/// `{namespace}#{the digest in hex}`, names it in a store (the DynamoDB item's `id`).
///
/// Cheap to make and copy: the namespace is made once per path and kept for the life of the
/// process (one copy of each text, shared by every key that has it), so a key allocates
/// nothing and holds no reference count. Equal keys have equal [`digest`](Self::digest)s,
/// whose first bytes make a good hash.
///
/// ```
/// use lpipe_core::IdempotencyKey;
///
/// let key = IdempotencyKey::new("orders.PLACE_ORDER", [0xab; 16]);
/// assert_eq!(
///     key.to_string(),
///     "orders.PLACE_ORDER#abababababababababababababababab"
/// );
/// ```
#[derive(Clone, Copy)]
pub struct IdempotencyKey {
    /// Interned (see [`interned`]): equal namespaces are the same string.
    namespace: &'static str,
    digest: [u8; DIGEST_BYTES],
}

impl IdempotencyKey {
    /// A key of this namespace and digest (for stores' own tests). The namespace's text is
    /// kept for the life of the process, once however many keys have it: a store's tests
    /// make a few.
    pub fn new(namespace: impl AsRef<str>, digest: [u8; DIGEST_BYTES]) -> Self {
        IdempotencyKey {
            namespace: interned(namespace.as_ref()),
            digest,
        }
    }

    /// Its namespace: `{function name}.{path}`.
    pub fn namespace(&self) -> &str {
        self.namespace
    }

    /// The digest of the record's canonical JSON (see [`KeyDigest`]).
    pub fn digest(&self) -> &[u8; DIGEST_BYTES] {
        &self.digest
    }
}

impl PartialEq for IdempotencyKey {
    fn eq(&self, other: &Self) -> bool {
        // Interned namespaces: the same text is the same string.
        self.digest == other.digest && std::ptr::eq(self.namespace, other.namespace)
    }
}

impl Eq for IdempotencyKey {}

impl std::hash::Hash for IdempotencyKey {
    /// The digest's first 8 bytes: already uniformly spread, and equal keys' are equal.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(digest_prefix(&self.digest));
    }
}

/// A digest's first 8 bytes, as the hash of the keys that end in it.
fn digest_prefix(digest: &[u8; DIGEST_BYTES]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 2 * DIGEST_BYTES];
        for (pair, b) in hex.chunks_exact_mut(2).zip(&self.digest) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        let hex = std::str::from_utf8(&hex).expect("hex digits");
        write!(f, "{}#{hex}", self.namespace())
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({self})")
    }
}

impl Idempotency {
    /// When a completion written now expires (Unix seconds).
    pub(crate) fn expires_at_s(&self) -> u64 {
        self.expiry_from(now_ms())
    }

    /// When an item written at this time (Unix milliseconds) expires (Unix seconds): at least a
    /// second later.
    fn expiry_from(&self, now_ms: u64) -> u64 {
        now_ms / 1000 + self.expires_after.as_secs().max(1)
    }
}

/// How a store's keys are digested (see [`IdempotencyStore::key_digest`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyDigest {
    /// The first 128 bits of SHA-256: the same key in every process, for a store that keeps
    /// keys beyond the process or shares them (DynamoDB). The default.
    #[default]
    Sha256,
    /// Keyed at random once per process: SipHash-2-4 with 128-bit output, or, for canonical
    /// text shorter than 16 bytes (a key by one integer, say), a keyed permutation of the text
    /// itself, which no two short texts share. No one outside the process knows the key, so no
    /// one can make two records collide (as with SHA-256, collisions need about 2^64 keys), and
    /// it is cheaper than SHA-256; but a key means nothing in another process. For a store that
    /// lives and dies with its process ([`MemoryIdempotencyStore`]).
    ProcessLocal,
}

/// The process's key for [`KeyDigest::ProcessLocal`], drawn once.
fn process_key() -> (u64, u64) {
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    *KEY.get_or_init(rand::random)
}

/// The [`KeyDigest::ProcessLocal`] digest of text shorter than [`DIGEST_BYTES`], written at
/// the start of the block (zeros after it): the text itself, its length in the last byte,
/// through a keyed permutation. Two short texts never share a digest, and the digest is as
/// spread, and as unknowable outside the process, as a hash's.
#[inline]
fn sealed(mut block: [u8; DIGEST_BYTES], len: usize) -> [u8; DIGEST_BYTES] {
    block[DIGEST_BYTES - 1] = len as u8;
    permuted(u128::from_le_bytes(block)).to_le_bytes()
}

/// A keyed permutation of 128 bits (two rounds of a Feistel network whose round function is a
/// folded multiply, keyed with the process's key): distinct inputs give distinct outputs, and
/// each output's first 64 bits depend on all of its input, so they serve as a table's hash.
#[inline(always)]
fn permuted(x: u128) -> u128 {
    /// Odd and without pattern: the first digits of pi's fraction.
    const SPREAD: u64 = 0x243f_6a88_85a3_08d3;
    fn round(x: u64) -> u64 {
        let wide = u128::from(x) * u128::from(SPREAD);
        (wide as u64) ^ ((wide >> 64) as u64)
    }
    let (k0, k1) = process_key();
    let (mut lo, mut hi) = (x as u64, (x >> 64) as u64);
    hi ^= round(lo ^ k0);
    lo ^= round(hi ^ k1);
    u128::from(lo) | (u128::from(hi) << 64)
}

/// A key's canonical text, gathered before it is digested in one go: on the stack while it
/// is short (most keys: one field's value), on the heap beyond. Digesting whole text rather than
/// streaming it piece by piece into a hasher saves the hasher's buffering of each piece (with
/// SHA-256, text that fits one block, 55 bytes before the padding, is padded in a block on the
/// stack and compressed once).
struct KeyText {
    short: [u8; KeyText::SHORT],
    len: usize,
    /// All of the text once it outgrows `short`.
    long: Vec<u8>,
}

impl KeyText {
    /// How much text the stack holds.
    const SHORT: usize = 64;
    /// The most text one SHA-256 block holds with its padding.
    const ONE_BLOCK: usize = 55;

    fn new() -> Self {
        KeyText {
            short: [0; Self::SHORT],
            len: 0,
            long: Vec::new(),
        }
    }

    #[inline(always)]
    fn put_bytes(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end <= Self::SHORT {
            self.short[self.len..end].copy_from_slice(bytes);
        } else {
            if self.long.is_empty() {
                self.long.extend_from_slice(&self.short[..self.len]);
            }
            self.long.extend_from_slice(bytes);
        }
        self.len = end;
    }

    fn text(&self) -> &[u8] {
        if self.len <= Self::SHORT {
            &self.short[..self.len]
        } else {
            &self.long
        }
    }

    /// The first [`DIGEST_BYTES`] of the text's digest.
    fn digest(&self, digest: KeyDigest) -> [u8; DIGEST_BYTES] {
        let text = self.text();
        let mut prefix = [0u8; DIGEST_BYTES];
        match digest {
            KeyDigest::Sha256 if text.len() <= Self::ONE_BLOCK => {
                /// SHA-256's initial state (FIPS 180-4, 5.3.3).
                const INITIAL: [u32; 8] = [
                    0x6a09_e667,
                    0xbb67_ae85,
                    0x3c6e_f372,
                    0xa54f_f53a,
                    0x510e_527f,
                    0x9b05_688c,
                    0x1f83_d9ab,
                    0x5be0_cd19,
                ];
                // The text, a 1 bit, zeros, and the text's length in bits (big-endian).
                let mut block = [0u8; 64];
                block[..text.len()].copy_from_slice(text);
                block[text.len()] = 0x80;
                block[56..].copy_from_slice(&(text.len() as u64 * 8).to_be_bytes());
                let mut state = INITIAL;
                sha2::block_api::compress256(&mut state, std::slice::from_ref(&block));
                for (out, word) in prefix.chunks_exact_mut(4).zip(state) {
                    out.copy_from_slice(&word.to_be_bytes());
                }
            }
            KeyDigest::Sha256 => prefix.copy_from_slice(&Sha256::digest(text)[..DIGEST_BYTES]),
            KeyDigest::ProcessLocal if text.len() < DIGEST_BYTES => {
                let mut block = [0u8; DIGEST_BYTES];
                block[..text.len()].copy_from_slice(text);
                prefix = sealed(block, text.len());
            }
            KeyDigest::ProcessLocal => {
                use siphasher::sip128::Hasher128;
                let (k0, k1) = process_key();
                let mut hasher = siphasher::sip128::SipHasher24::new_with_keys(k0, k1);
                std::hash::Hasher::write(&mut hasher, text);
                prefix = u128::from(hasher.finish128()).to_le_bytes();
            }
        }
        prefix
    }
}

/// Where canonical JSON goes: the key's hasher (or a string, in tests).
trait Out {
    fn put(&mut self, s: &str);
}

impl Out for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl Out for KeyText {
    #[inline(always)]
    fn put(&mut self, s: &str) {
        self.put_bytes(s.as_bytes());
    }
}

fn missing_field(field: &str, null: bool) -> String {
    format!(
        "the idempotency key needs the kwarg '{field}', which this record {}",
        if null { "has as null" } else { "lacks" }
    )
}

/// Writes a raw JSON value as [`canonical_json`] would, parsing only what needs it: objects
/// and arrays (their keys are sorted), strings with escapes, and numbers (`1.50` is `1.5`).
/// The common values (an integer, a string without escapes, `true`, `false`, `null`) are
/// canonical as they are written (JSON has no leading zeros), and are written without a call.
#[inline]
fn canonical_raw(raw: &str, out: &mut impl Out) {
    if canonical_as_written(raw.as_bytes()) {
        out.put(raw);
    } else {
        canonical_raw_parsed(raw, out);
    }
}

/// Whether a raw JSON value is canonical as it is written: an integer, a string without
/// escapes, `true`, `false` or `null`.
#[inline]
fn canonical_as_written(bytes: &[u8]) -> bool {
    match bytes.first() {
        Some(b'-' | b'0'..=b'9') => bytes[1..].iter().all(u8::is_ascii_digit),
        Some(b'"') => !bytes.contains(&b'\\'),
        Some(b'{' | b'[') | None => false,
        Some(_) => true,
    }
}

/// [`canonical_raw`] of a value that needs parsing: an object, an array, a string with escapes,
/// a number with a fraction or an exponent.
#[inline(never)]
fn canonical_raw_parsed(raw: &str, out: &mut impl Out) {
    match raw.as_bytes().first() {
        Some(b'{' | b'[') => match serde_json::from_str::<Value>(raw) {
            Ok(v) => canonical_json(&v, out),
            Err(_) => out.put(raw),
        },
        Some(b'"') => match serde_json::from_str::<String>(raw) {
            Ok(s) => write_json_string(&s, out),
            Err(_) => out.put(raw),
        },
        Some(b'-' | b'0'..=b'9') => match serde_json::from_str::<serde_json::Number>(raw) {
            Ok(n) => out.put(&n.to_string()),
            Err(_) => out.put(raw),
        },
        _ => out.put(raw),
    }
}

fn write_json_string(s: &str, out: &mut impl Out) {
    out.put(&serde_json::to_string(s).expect("a string serializes"));
}

/// Writes a JSON value with its objects' keys sorted and no whitespace: equal values, equal
/// text.
fn canonical_json(value: &Value, out: &mut impl Out) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.put("{");
            for (n, (k, v)) in entries.into_iter().enumerate() {
                if n > 0 {
                    out.put(",");
                }
                write_json_string(k, out);
                out.put(":");
                canonical_json(v, out);
            }
            out.put("}");
        }
        Value::Array(items) => {
            out.put("[");
            for (n, v) in items.iter().enumerate() {
                if n > 0 {
                    out.put(",");
                }
                canonical_json(v, out);
            }
            out.put("]");
        }
        other => out.put(&other.to_string()),
    }
}

/// Now, in Unix milliseconds: on Linux from the kernel's coarse clock (a read of memory the
/// kernel updates each timer tick, through the C library: 6-10 ns a claim, where the precise
/// clock costs ~30), which lags by at most a tick (a few milliseconds). That only makes a lock
/// or an expiry look alive as much longer, and a lock taken now as much shorter: nothing next
/// to seconds of locks and expiries.
fn now_ms() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        let (s, ns) = (u64::try_from(t.tv_sec), u64::try_from(t.tv_nsec));
        s.unwrap_or(0) * 1000 + ns.unwrap_or(0) / 1_000_000
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// What a record's run asks of the store before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claim {
    /// The record's key.
    pub key: IdempotencyKey,
    /// Now, in Unix milliseconds.
    pub now_ms: u64,
    /// Until when, in Unix milliseconds, the in-progress item locks the key.
    pub lock_until_ms: u64,
    /// When, in Unix seconds, the item expires (the TTL attribute's value).
    pub expires_at_s: u64,
}

impl Claim {
    /// A claim with these values (for stores' own tests).
    pub fn new(key: IdempotencyKey, now_ms: u64, lock_until_ms: u64, expires_at_s: u64) -> Self {
        Claim {
            key,
            now_ms,
            lock_until_ms,
            expires_at_s,
        }
    }
}

/// What the store said to a claim.
#[derive(Clone, Debug, PartialEq)]
pub enum Begun {
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

/// Why a store could not answer: the record fails, and is retried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// An error with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        StoreError(message.to_string())
    }
}

/// Where idempotency keys are kept: [`MemoryIdempotencyStore`] here, a DynamoDB table in
/// `lpipe-dynamodb`. See the [module docs](self) for what each answer means.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Writes an in-progress item for the claim's key unless a live one is there (one
    /// conditional write): the key is free when it is absent, its item expired
    /// (`expires_at_s` ≤ now), or it is in progress with a lock that timed out. Otherwise says
    /// what holds it.
    async fn begin(&self, claim: &Claim) -> Result<Begun, StoreError>;

    /// The key's record succeeded: its item becomes completed, with this output, until
    /// `expires_at_s` (Unix seconds).
    async fn complete(
        &self,
        key: &IdempotencyKey,
        output: Option<&Value>,
        expires_at_s: u64,
    ) -> Result<(), StoreError>;

    /// The key's record did not succeed: its in-progress item is deleted.
    async fn release(&self, key: &IdempotencyKey) -> Result<(), StoreError>;

    /// How this store's keys are digested: SHA-256 (the default), the same in every process;
    /// a store that keeps keys only as long as its process may take the cheaper
    /// [`KeyDigest::ProcessLocal`].
    fn key_digest(&self) -> KeyDigest {
        KeyDigest::Sha256
    }

    /// Answers a claim as [`begin`](Self::begin) would, when the store can without waiting
    /// (a store in memory): the dispatcher asks this first, and awaits `begin` only when it
    /// says `None`, which the default always does. It saves an allocation and a poll per
    /// record; a store that does I/O leaves it alone.
    fn begin_now(&self, claim: &Claim) -> Option<Result<Begun, StoreError>> {
        let _ = claim;
        None
    }

    /// A batch of about this many records is about to claim keys: a store may make room
    /// (the in-memory store does). The default does nothing.
    fn reserve(&self, records: usize) {
        let _ = records;
    }

    /// Extends the locks of these keys' in-progress items until `lock_until_ms` (Unix
    /// milliseconds), for runs that outlive the lock they claimed (the SQS worker's: its
    /// heartbeats keep a slow batch's messages invisible past the batch's deadline, and extend
    /// its keys' locks with them; see [`HeldKeys::extend_locks`]). A lock is never shortened,
    /// and an item that is not in progress (completed, released, expired) is left alone. The
    /// default cannot extend: it says so, and the caller warns that the locks will time out.
    async fn extend(&self, keys: &[&IdempotencyKey], lock_until_ms: u64) -> Result<(), StoreError> {
        let _ = (keys, lock_until_ms);
        Err(StoreError::new(
            "this idempotency store cannot extend locks: they time out as claimed",
        ))
    }

    /// Settles keys of a batch, one result per settlement, in order; a batch of more than
    /// 1,024 claims is settled in calls of up to 1,024 keys. The default calls
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
            key,
            output,
            expires_at_s,
        } => store.complete(key, output, expires_at_s).await,
        Settlement::Release { key } => store.release(key).await,
    }
}

/// What becomes of a key once its record's outcome is known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Settlement<'a> {
    /// The record succeeded: [`IdempotencyStore::complete`].
    Complete {
        /// The key.
        key: &'a IdempotencyKey,
        /// The record's output.
        output: Option<&'a Value>,
        /// When the completed item expires (Unix seconds).
        expires_at_s: u64,
    },
    /// The record did not succeed: [`IdempotencyStore::release`].
    Release {
        /// The key.
        key: &'a IdempotencyKey,
    },
}

#[async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for Arc<S> {
    async fn begin(&self, claim: &Claim) -> Result<Begun, StoreError> {
        (**self).begin(claim).await
    }
    async fn complete(
        &self,
        key: &IdempotencyKey,
        output: Option<&Value>,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        (**self).complete(key, output, expires_at_s).await
    }
    async fn release(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        (**self).release(key).await
    }
    async fn settle(&self, settlements: &[Settlement<'_>]) -> Vec<Result<(), StoreError>> {
        (**self).settle(settlements).await
    }
    async fn extend(&self, keys: &[&IdempotencyKey], lock_until_ms: u64) -> Result<(), StoreError> {
        (**self).extend(keys, lock_until_ms).await
    }
    fn key_digest(&self) -> KeyDigest {
        (**self).key_digest()
    }
    fn begin_now(&self, claim: &Claim) -> Option<Result<Begun, StoreError>> {
        (**self).begin_now(claim)
    }
    fn reserve(&self, records: usize) {
        (**self).reserve(records);
    }
}

/// An item of [`MemoryIdempotencyStore`].
#[derive(Clone, Debug, PartialEq)]
pub enum MemoryItem {
    /// A run holds the key.
    InProgress {
        /// Until when (Unix milliseconds).
        lock_until_ms: u64,
        /// When it expires (Unix seconds).
        expires_at_s: u64,
    },
    /// The key's record succeeded.
    Completed {
        /// Its output.
        output: Option<Box<Value>>,
        /// When it expires (Unix seconds).
        expires_at_s: u64,
    },
}

/// An [`IdempotencyStore`] in memory, for local runs and tests: keys last until they expire,
/// at most as long as the process. Expired keys are swept out each time the store has doubled
/// since the last sweep, so a long-running process holds at most about twice the keys still
/// alive. Clones share their items.
#[derive(Clone, Debug, Default)]
pub struct MemoryIdempotencyStore {
    items: Arc<Mutex<Items>>,
}

/// The store's items, by key. A key and its item are kept in 32 bytes, nothing on the heap
/// (see [`Entry`]), in a list in the order keys were claimed; a table of 8-byte places in
/// that list finds them (see [`Place`]). A batch's claims append to the list and its
/// settlements walk it in the same order, so only the smaller table is written at random
/// (10,000 keys: 150 KB, where a table of the entries themselves takes 530 KB), and that in
/// passes over a few hundred keys (see [`Items::fresh`]).
///
/// Expired items are swept out once the list has doubled since the last sweep and its
/// earliest expiry has passed (see [`Items::sweep`]), so a long-running process keeps at most
/// about twice the items that are alive, and a batch whose keys all live pays one comparison
/// and one minimum a claim for it.
#[derive(Debug)]
struct Items {
    /// The keys' namespaces, by number (interned, as the keys': found by address).
    namespaces: Vec<&'static str>,
    /// Places in `entries`, by their key's hash: those before `placed`.
    places: hashbrown::HashTable<Place>,
    /// How many of `entries` (the first ones) `places` finds; the rest are [`Items::fresh`].
    placed: usize,
    /// The places of the entries after `placed`, by their key's hash: a small table (open
    /// addressing, `0` empty, else the entry's place after `placed` plus one) that stays in
    /// the core's nearest cache. A claim of a new key writes here, and every
    /// [`FRESH`] claims they move to `places` together, where the writes' cache misses
    /// overlap instead of each holding up its record (100,000 keys take 1.1 MB of `places`,
    /// out of a core's L2 cache once the event streams through it).
    fresh: Vec<u16>,
    /// The keys and their items, in the order they were written (a deleted one's place is
    /// taken by the last).
    entries: Vec<Entry>,
    /// The outputs of the completed items that have one (few records return one).
    outputs: HashMap<StoredKey, Box<Value>, crate::fast_hash::FastHash>,
    /// Where the next completion's key most likely is: just after the last one's (a batch
    /// settles its keys in the order it claimed them), found there without a probe of the
    /// table.
    next: usize,
    /// When a sweep may first find an expired entry (Unix seconds; `u32::MAX` when there are
    /// none): the earliest expiry of the keys claimed since the last sweep and of those it
    /// left. An item written over later (completed, or taken over) is not counted: its expiry
    /// is set from a later time by the same path's setting, so it is rarely earlier, and if it
    /// is, the item is only swept later than it could be (a sweep deletes only what expired).
    earliest_expiry: u32,
    /// How many entries there must be before the next sweep is considered (see
    /// [`Items::sweep_if_due`]).
    sweep_at: usize,
}

impl Default for Items {
    fn default() -> Self {
        Items {
            namespaces: Vec::new(),
            places: hashbrown::HashTable::new(),
            placed: 0,
            fresh: Vec::new(),
            entries: Vec::new(),
            outputs: HashMap::default(),
            next: 0,
            earliest_expiry: u32::MAX,
            sweep_at: SWEEP_FLOOR,
        }
    }
}

/// The fewest entries [`Items::sweep`] runs on: smaller stores are not worth it.
const SWEEP_FLOOR: usize = 1024;

/// How many new keys [`Items::fresh`] holds before they move to [`Items::places`].
const FRESH: usize = 256;
/// The room of [`Items::fresh`]: a power of two, twice [`FRESH`], so probes stay short.
const FRESH_ROOM: usize = 2 * FRESH;

/// A key as [`MemoryIdempotencyStore`] keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StoredKey {
    namespace: u32,
    digest: [u8; DIGEST_BYTES],
}

impl StoredKey {
    /// As [`IdempotencyKey`]'s hash: the digest's first bytes, spread already.
    fn hash(&self) -> u64 {
        digest_prefix(&self.digest)
    }
}

/// A key and its [`MemoryItem`], in 32 bytes.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: StoredKey,
    /// When the item expires, in Unix seconds (up to the year 2106: a later expiry is kept as
    /// then).
    expires_at_s: u32,
    /// In progress: until when its lock holds (Unix milliseconds). Completed: [`COMPLETED`],
    /// or [`COMPLETED_WITH_OUTPUT`] (the output is in [`Items::outputs`]).
    lock_until_ms: u64,
}

/// A place in [`Items::entries`] as [`Items::places`] keeps it: the entry's index (low 32
/// bits) and the high 32 bits of its key's hash. A probe compares those bits before it reads
/// the entry, so it reads only its own key's entry (the table's own 7-bit tags let one probe
/// in ten or so read another key's entry, a cache miss in a large list).
#[derive(Clone, Copy, Debug)]
struct Place(u64);

impl Place {
    /// The place of the entry at `at` (less than 2^32), whose key hashes to `hash`.
    #[inline]
    fn new(hash: u64, at: usize) -> Self {
        Place((hash & !u64::from(u32::MAX)) | at as u64)
    }

    /// The entry's index.
    #[inline]
    fn at(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }

    /// Whether a key hashing to `hash` may be this place's.
    #[inline]
    fn holds(self, hash: u64) -> bool {
        (self.0 ^ hash) >> 32 == 0
    }
}

/// [`Entry::lock_until_ms`] of a completed item without an output.
const COMPLETED: u64 = u64::MAX;
/// [`Entry::lock_until_ms`] of a completed item with an output.
const COMPLETED_WITH_OUTPUT: u64 = u64::MAX - 1;

impl Entry {
    fn in_progress(key: StoredKey, lock_until_ms: u64, expires_at_s: u64) -> Self {
        Entry {
            key,
            expires_at_s: u32::try_from(expires_at_s).unwrap_or(u32::MAX),
            lock_until_ms: lock_until_ms.min(COMPLETED_WITH_OUTPUT - 1),
        }
    }

    fn completed(key: StoredKey, with_output: bool, expires_at_s: u64) -> Self {
        Entry {
            key,
            expires_at_s: u32::try_from(expires_at_s).unwrap_or(u32::MAX),
            lock_until_ms: if with_output {
                COMPLETED_WITH_OUTPUT
            } else {
                COMPLETED
            },
        }
    }

    fn is_completed(&self) -> bool {
        self.lock_until_ms >= COMPLETED_WITH_OUTPUT
    }

    fn has_output(&self) -> bool {
        self.lock_until_ms == COMPLETED_WITH_OUTPUT
    }
}

impl Items {
    /// The key as kept, if its namespace has a number.
    #[inline]
    fn find(&self, key: &IdempotencyKey) -> Option<StoredKey> {
        // Few namespaces (one per idempotent path), the last one most often. Numbers fit in
        // 32 bits: `stored` numbers no more.
        let namespace = self
            .namespaces
            .iter()
            .rposition(|n| std::ptr::eq(*n, key.namespace))?;
        Some(StoredKey {
            namespace: namespace as u32,
            digest: key.digest,
        })
    }

    /// The key as kept, its namespace numbered if new.
    #[inline]
    fn stored(&mut self, key: &IdempotencyKey) -> StoredKey {
        if let Some(stored) = self.find(key) {
            return stored;
        }
        assert!(
            u32::try_from(self.namespaces.len()).is_ok(),
            "fewer than 2^32 namespaces"
        );
        self.namespaces.push(key.namespace);
        self.find(key).expect("just numbered")
    }

    /// The place of the key's entry, if it has one.
    fn place(&self, key: &StoredKey) -> Option<usize> {
        let hash = key.hash();
        self.placed(hash, key)
            .or_else(|| self.fresh_slot(hash, key).1)
    }

    /// The place of the key (whose hash this is) if [`Items::places`] has it.
    #[inline]
    fn placed(&self, hash: u64, key: &StoredKey) -> Option<usize> {
        let entries = &self.entries;
        self.places
            .find(hash, |p| p.holds(hash) && entries[p.at()].key == *key)
            .map(|p| p.at())
    }

    /// Where the key is in [`Items::fresh`]: the slot that holds it, and its place, or the
    /// empty slot where it would go.
    #[inline]
    fn fresh_slot(&self, hash: u64, key: &StoredKey) -> (usize, Option<usize>) {
        if self.fresh.is_empty() {
            return (0, None);
        }
        let mut slot = hash as usize & (FRESH_ROOM - 1);
        loop {
            match self.fresh[slot] {
                0 => return (slot, None),
                held => {
                    let at = self.placed + usize::from(held) - 1;
                    if self.entries[at].key == *key {
                        return (slot, Some(at));
                    }
                }
            }
            slot = (slot + 1) & (FRESH_ROOM - 1);
        }
    }

    /// The place of the entry's key if it has one, else `None` once the entry is written.
    #[inline(always)]
    fn place_or_insert(&mut self, entry: Entry) -> Option<usize> {
        let hash = entry.key.hash();
        if let Some(at) = self.placed(hash, &entry.key) {
            return Some(at);
        }
        if self.fresh.is_empty() {
            self.fresh = vec![0; FRESH_ROOM];
        }
        let slot = match self.fresh_slot(hash, &entry.key) {
            (_, Some(at)) => return Some(at),
            (slot, None) => slot,
        };
        assert!(
            u32::try_from(self.entries.len()).is_ok(),
            "fewer than 2^32 keys in memory"
        );
        self.earliest_expiry = self.earliest_expiry.min(entry.expires_at_s);
        self.entries.push(entry);
        self.fresh[slot] = u16::try_from(self.entries.len() - self.placed).expect("FRESH fits");
        if self.entries.len() - self.placed == FRESH {
            self.place_fresh();
        }
        None
    }

    /// Moves the fresh entries' places to [`Items::places`], in one pass (the large table's
    /// cache misses overlap).
    fn place_fresh(&mut self) {
        if self.placed == self.entries.len() {
            return;
        }
        let entries = &self.entries;
        for at in self.placed..entries.len() {
            let hash = entries[at].key.hash();
            self.places
                .insert_unique(hash, Place::new(hash, at), |p| entries[p.at()].key.hash());
        }
        self.placed = entries.len();
        self.fresh.fill(0);
    }

    /// Writes the entry at its key's place, letting go of the output the place held.
    fn set(&mut self, at: usize, entry: Entry) {
        let held = std::mem::replace(&mut self.entries[at], entry);
        self.let_go(&held);
    }

    /// The output of an entry that is no longer kept, if it had one, is let go.
    #[inline]
    fn let_go(&mut self, gone: &Entry) {
        if gone.has_output() {
            self.outputs.remove(&gone.key);
        }
    }

    /// The entry's output, if it is a completed one with an output.
    fn output(&self, entry: &Entry) -> Option<&Value> {
        if !entry.has_output() {
            return None;
        }
        self.outputs.get(&entry.key).map(|v| &**v)
    }

    /// Deletes the key's entry, if it has one; the last entry takes its place.
    fn remove(&mut self, key: &StoredKey) {
        // Rare (a record that did not succeed): every place in one table first.
        self.place_fresh();
        let entries = &self.entries;
        let hash = key.hash();
        let Ok(found) = self
            .places
            .find_entry(hash, |p| p.holds(hash) && entries[p.at()].key == *key)
        else {
            return;
        };
        let at = found.remove().0.at();
        let last = self.entries.len() - 1;
        if at != last {
            let moved = self.entries[last].key.hash();
            if let Some(place) = self.places.find_mut(moved, |p| p.at() == last) {
                *place = Place::new(moved, at);
            }
        }
        let removed = self.entries.swap_remove(at);
        self.placed = self.entries.len();
        self.let_go(&removed);
    }

    /// Sweeps out the expired entries once the list has doubled since the last sweep (and
    /// has [`SWEEP_FLOOR`] entries) if one of them may have expired; if none may, asks again
    /// [`FRESH`] entries later. An expired item answers as an absent one does (see
    /// [`MemoryIdempotencyStore::answer`]), so a sweep changes no answer; the run that may
    /// still hold an expired in-progress key completes or releases it as if it had been
    /// taken over.
    #[inline]
    fn sweep_if_due(&mut self, now_ms: u64) {
        if self.entries.len() >= self.sweep_at {
            self.sweep_or_wait(now_ms / 1000);
        }
    }

    /// Sweeps if an entry may have expired by `now_s`, else waits [`FRESH`] more entries.
    #[cold]
    fn sweep_or_wait(&mut self, now_s: u64) {
        if now_s >= u64::from(self.earliest_expiry) {
            self.sweep(now_s);
        } else {
            self.sweep_at = self.entries.len() + FRESH;
        }
    }

    /// Deletes every entry expired at `now_s` (and its output), keeping the others in their
    /// order, and finds them again.
    fn sweep(&mut self, now_s: u64) {
        let outputs = &mut self.outputs;
        self.entries.retain(|e| {
            let alive = u64::from(e.expires_at_s) > now_s;
            if !alive && e.has_output() {
                outputs.remove(&e.key);
            }
            alive
        });
        // Every place moved: the small table is emptied, and all are placed anew.
        self.places.clear();
        self.fresh.fill(0);
        self.placed = 0;
        self.place_fresh();
        self.next = 0;
        self.earliest_expiry = self
            .entries
            .iter()
            .map(|e| e.expires_at_s)
            .min()
            .unwrap_or(u32::MAX);
        self.sweep_at = (2 * self.entries.len()).max(SWEEP_FLOOR);
    }

    /// Makes room for this many more keys.
    fn reserve(&mut self, more: usize) {
        let entries = &self.entries;
        self.places.reserve(more, |p| entries[p.at()].key.hash());
        self.entries.reserve(more);
    }

    #[inline(always)]
    fn complete(&mut self, key: &IdempotencyKey, output: Option<&Value>, expires_at_s: u64) {
        let key = self.stored(key);
        let entry = Entry::completed(key, output.is_some(), expires_at_s);
        let next = self.next;
        let at = match self.entries.get(next) {
            Some(e) if e.key == key => Some(next),
            _ => self.place(&key).or_else(|| self.place_or_insert(entry)),
        };
        if let Some(at) = at {
            self.set(at, entry);
            self.next = at + 1;
        }
        if let Some(output) = output {
            self.outputs.insert(key, Box::new(output.clone()));
        }
    }

    /// Extends the key's lock until then, if its item is in progress and locked until earlier.
    fn extend(&mut self, key: &IdempotencyKey, lock_until_ms: u64) {
        let Some(key) = self.find(key) else { return };
        let Some(at) = self.place(&key) else { return };
        let entry = &mut self.entries[at];
        if !entry.is_completed() && entry.lock_until_ms < lock_until_ms {
            entry.lock_until_ms = lock_until_ms.min(COMPLETED_WITH_OUTPUT - 1);
        }
    }

    fn release(&mut self, key: &IdempotencyKey) {
        // A key of a namespace never seen has no item: nothing to number, nothing to delete.
        if let Some(key) = self.find(key) {
            self.remove(&key);
        }
    }

    /// The entry as a [`MemoryItem`].
    fn item(&self, entry: &Entry) -> MemoryItem {
        let expires_at_s = u64::from(entry.expires_at_s);
        if entry.is_completed() {
            MemoryItem::Completed {
                output: self.output(entry).map(|v| Box::new(v.clone())),
                expires_at_s,
            }
        } else {
            MemoryItem::InProgress {
                lock_until_ms: entry.lock_until_ms,
                expires_at_s,
            }
        }
    }
}

impl MemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the store says to a claim (it never fails).
    #[inline(always)]
    fn answer(&self, claim: &Claim) -> Begun {
        let mut items = self.items.lock().expect("store lock");
        items.sweep_if_due(claim.now_ms);
        let key = items.stored(&claim.key);
        let started = Entry::in_progress(key, claim.lock_until_ms, claim.expires_at_s);
        let Some(at) = items.place_or_insert(started) else {
            return Begun::Started;
        };
        let held = items.entries[at];
        if u64::from(held.expires_at_s) > claim.now_ms / 1000 {
            if held.is_completed() {
                return Begun::Completed(items.output(&held).cloned());
            }
            if held.lock_until_ms > claim.now_ms {
                return Begun::InProgress {
                    lock_until_ms: held.lock_until_ms,
                };
            }
        }
        // Expired, or its lock timed out: taken over.
        items.set(at, started);
        Begun::Started
    }

    /// The items, by key (as [`IdempotencyKey`] writes it). The store keeps expiries up to
    /// the year 2106 (Unix seconds in 32 bits): a later one reads as `u32::MAX`.
    pub fn items(&self) -> HashMap<String, MemoryItem> {
        let items = self.items.lock().expect("store lock");
        items
            .entries
            .iter()
            .map(|e| {
                let key = IdempotencyKey {
                    namespace: items.namespaces[e.key.namespace as usize],
                    digest: e.key.digest,
                };
                (key.to_string(), items.item(e))
            })
            .collect()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    /// Its keys live and die with the process: [`KeyDigest::ProcessLocal`].
    fn key_digest(&self) -> KeyDigest {
        KeyDigest::ProcessLocal
    }

    fn begin_now(&self, claim: &Claim) -> Option<Result<Begun, StoreError>> {
        Some(Ok(self.answer(claim)))
    }

    async fn begin(&self, claim: &Claim) -> Result<Begun, StoreError> {
        Ok(self.answer(claim))
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        output: Option<&Value>,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        let mut items = self.items.lock().expect("store lock");
        items.complete(key, output, expires_at_s);
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.items.lock().expect("store lock").release(key);
        Ok(())
    }

    fn reserve(&self, records: usize) {
        self.items.lock().expect("store lock").reserve(records);
    }

    async fn extend(&self, keys: &[&IdempotencyKey], lock_until_ms: u64) -> Result<(), StoreError> {
        let mut items = self.items.lock().expect("store lock");
        for key in keys {
            items.extend(key, lock_until_ms);
        }
        Ok(())
    }

    async fn settle(&self, settlements: &[Settlement<'_>]) -> Vec<Result<(), StoreError>> {
        let mut items = self.items.lock().expect("store lock");
        for s in settlements {
            match *s {
                Settlement::Complete {
                    key,
                    output,
                    expires_at_s,
                } => items.complete(key, output, expires_at_s),
                Settlement::Release { key } => items.release(key),
            }
        }
        vec![Ok(()); settlements.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    fn kwargs(v: Value) -> Kwargs {
        Kwargs::from_serialize(&v).unwrap()
    }

    fn key(namespace: &str) -> IdempotencyKey {
        IdempotencyKey::new(namespace, [7; DIGEST_BYTES])
    }

    #[test]
    fn a_namespace_is_found_again_by_its_configuration_and_path() {
        let config = |name: &str| {
            Arc::new(lambda_runtime::Config {
                function_name: name.to_owned(),
                ..Default::default()
            })
        };
        let i = Idempotency::new(MemoryIdempotencyStore::new());
        let (orders, refunds) = (config("orders"), config("refunds"));
        let (a, b) = (PathName::new("A"), PathName::new("B"));
        let k = |config: &Arc<lambda_runtime::Config>, path: &PathName| {
            i.key_in(config, path, &kwargs(json!({"n": 1})))
                .unwrap()
                .namespace()
                .to_owned()
        };
        // The first: remembered, then found by address.
        assert_eq!(k(&orders, &a), "orders.A");
        assert_eq!(k(&orders, &a), "orders.A");
        // Other paths, other functions, and equal ones that are other objects: by their text.
        assert_eq!(k(&orders, &b), "orders.B");
        assert_eq!(k(&refunds, &a), "refunds.A");
        assert_eq!(k(&config("orders"), &PathName::new("A")), "orders.A");
        assert_eq!(k(&orders, &a), "orders.A");
        // One namespace string per text, shared by the keys.
        let first = i.key_in(&orders, &a, &kwargs(json!({"n": 1}))).unwrap();
        let again = i
            .key_in(
                &config("orders"),
                &PathName::new("A"),
                &kwargs(json!({"n": 2})),
            )
            .unwrap();
        assert!(std::ptr::eq(first.namespace, again.namespace));
    }

    #[test]
    fn equal_namespaces_are_one_string() {
        let text = String::from("orders.PLACE");
        let a = IdempotencyKey::new(&text, [1; DIGEST_BYTES]);
        let b = IdempotencyKey::new("orders.PLACE", [1; DIGEST_BYTES]);
        // Made from other strings of the same text: the same string, so the same key.
        assert!(std::ptr::eq(a.namespace, b.namespace));
        assert_eq!(a, b);
        assert_ne!(a, IdempotencyKey::new("orders.OTHER", [1; DIGEST_BYTES]));
        assert_ne!(a, IdempotencyKey::new("orders.PLACE", [2; DIGEST_BYTES]));
        // A key made by hand finds the item of one made for a record.
        let i = Idempotency::new(MemoryIdempotencyStore::new());
        let made = i
            .key("orders", &PathName::new("PLACE"), &kwargs(json!({"n": 1})))
            .unwrap();
        assert!(std::ptr::eq(made.namespace, a.namespace));
    }

    #[test]
    fn a_namespace_set_replaces_the_function_name_in_every_process() {
        let path = PathName::new("ORDER");
        let order = kwargs(json!({"order_id": "o-1"}));
        let plain = Idempotency::new(MemoryIdempotencyStore::new()).key_from(["order_id"]);
        let a = plain.key("orders-intake", &path, &order).unwrap();
        assert_eq!(a.namespace(), "orders-intake.ORDER");
        let named = plain.clone().namespace("orders");
        let under_lambda = named.key("orders-intake", &path, &order).unwrap();
        let in_a_worker = named.key("orders-worker", &path, &order).unwrap();
        assert_eq!(under_lambda, in_a_worker);
        assert_eq!(under_lambda.namespace(), "orders.ORDER");
        assert_eq!(under_lambda.digest(), a.digest());
    }

    #[test]
    fn keys_hash_as_sha256_does() {
        let digest = |pieces: &[&[u8]]| {
            let mut m = KeyText::new();
            for p in pieces {
                m.put_bytes(p);
            }
            m.digest(KeyDigest::Sha256)
        };
        // Both sides of the one-block limit (55 bytes), and the empty text; in one piece, and
        // in pieces that cross the limit.
        for len in 0..=130 {
            let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let whole = Sha256::digest(&text);
            assert_eq!(digest(&[&text])[..], whole[..DIGEST_BYTES], "{len} bytes");
            let (a, rest) = text.split_at(len / 3);
            let (b, c) = rest.split_at(rest.len() / 2);
            assert_eq!(
                digest(&[a, b, c])[..],
                whole[..DIGEST_BYTES],
                "{len} bytes in 3"
            );
        }
        // A known answer: SHA-256("abc").
        assert_eq!(
            digest(&[b"abc"]),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23
            ]
        );
    }

    #[test]
    fn keys_are_digested_as_their_store_asks() {
        let path = PathName::new("P");
        let short = kwargs(json!({"order_id": "o-1"}));
        let long = kwargs(json!({"order_id": "o-1".repeat(30)}));
        let sha = |text: &str| Sha256::digest(text.as_bytes())[..DIGEST_BYTES].to_vec();
        // By default (a store that does not say, as DynamoDB's), SHA-256 of the canonical
        // JSON, short or long.
        let lasting = Idempotency::new(crate::testing::DownStore::new("not for running"))
            .key_from(["order_id"]);
        assert_eq!(lasting.digest, KeyDigest::Sha256);
        let key = lasting.key("f", &path, &short).unwrap();
        assert_eq!(key.digest()[..], sha(r#"["o-1"]"#)[..]);
        let key = lasting.key("f", &path, &long).unwrap();
        assert_eq!(
            key.digest()[..],
            sha(&format!(r#"["{}"]"#, "o-1".repeat(30)))[..]
        );
        // In memory, this process's keyed digest: the same for the same text, another for
        // other text, and not SHA-256.
        let memory = Idempotency::new(MemoryIdempotencyStore::new()).key_from(["order_id"]);
        assert_eq!(memory.digest, KeyDigest::ProcessLocal);
        let a = memory.key("f", &path, &short).unwrap();
        let again = Idempotency::new(MemoryIdempotencyStore::new())
            .key_from(["order_id"])
            .key("f", &path, &short)
            .unwrap();
        assert_eq!(a, again);
        assert_ne!(a.digest()[..], sha(r#"["o-1"]"#)[..]);
        let b = memory.key("f", &path, &long).unwrap();
        assert_ne!(a, b);
        // Written in pieces or at once, the same digest.
        let mut pieces = KeyText::new();
        for p in ["[", "\"o-1\"", "]"] {
            pieces.put(p);
        }
        assert_eq!(pieces.digest(KeyDigest::ProcessLocal), *a.digest());
    }

    #[test]
    fn short_keys_digest_as_gathered_keys_do() {
        let by_id = Idempotency::new(MemoryIdempotencyStore::new()).key_from(["user_id"]);
        // (kwargs as written, whether the short path makes the key)
        let cases = [
            (r#"{"user_id":12345,"email":"a@example.com"}"#, true),
            (
                r#"{"email":"a@example.com","user_id":-7,"name":"Ann Lee"}"#,
                true,
            ),
            (r#"{"user_id":"u-1","name":"a longer tail"}"#, true),
            (r#"{"user_id":true,"name":"a longer tail"}"#, true),
            (r#"{"user_id":1234567890123,"more":"a longer tail"}"#, true),
            // The last of a repeated key, as parsing keeps it.
            (r#"{"user_id":1,"user_id":2,"name":"a longer tail"}"#, true),
            // Keys of the same length, other bytes.
            (r#"{"user_ix":1,"user_id":3,"name":"a longer tail"}"#, true),
            // The value ends the text: fewer than 16 bytes to read at once.
            (r#"{"name":"Ann","user_id":12}"#, false),
            // Too long for one block, or not canonical as written.
            (
                r#"{"user_id":12345678901234,"name":"a longer tail"}"#,
                false,
            ),
            (r#"{"user_id":1.50,"name":"a longer tail"}"#, false),
            (r#"{"user_id":1e3,"name":"a longer tail"}"#, false),
            (r#"{"user_id":12a4,"name":"a longer tail"}"#, false),
            (r#"{"user_id":"\u0041","name":"a longer tail"}"#, false),
            (r#"{"user_id":[2,1],"name":"a longer tail"}"#, false),
            (r#"{"user_id": 5 ,"name":"a longer tail"}"#, true),
        ];
        for (text, short) in cases {
            let Ok(k) = Kwargs::from_json(text) else {
                // `12a4` is not JSON: such kwargs never reach a key.
                assert!(text.contains("12a4"));
                continue;
            };
            let gathered = by_id.gathered_key(&k).unwrap();
            match by_id.short_key(&k) {
                Some(digest) => {
                    assert!(short, "{text}: made short");
                    assert_eq!(digest, gathered, "{text}");
                }
                None => assert!(!short, "{text}: not made short"),
            }
        }
        // A missing or null field is left to the gathered path, which names it.
        for text in [
            r#"{"id":1,"name":"a longer tail"}"#,
            r#"{"user_id":null,"n":"a longer tail"}"#,
        ] {
            let k = Kwargs::from_json(text).unwrap();
            assert_eq!(by_id.short_key(&k), None, "{text}");
            assert!(by_id.gathered_key(&k).unwrap_err().contains("user_id"));
        }
        // A field of more than 16 bytes, several fields, or SHA-256 digests: never short.
        let k = Kwargs::from_json(r#"{"a_rather_long_field":1,"user_id":1,"n":"a longer tail"}"#)
            .unwrap();
        let long =
            Idempotency::new(MemoryIdempotencyStore::new()).key_from(["a_rather_long_field"]);
        assert_eq!(long.short_key(&k), None);
        let two = Idempotency::new(MemoryIdempotencyStore::new()).key_from(["user_id", "n"]);
        assert_eq!(two.short_key(&k), None);
        let lasting = Idempotency::new(crate::testing::DownStore::new("not for running"))
            .key_from(["user_id"]);
        assert_eq!(lasting.short_key(&k), None);
        // Every byte that is not a digit is found, in every place of a number.
        let lanes8 = lanes(8);
        let digits = u128::from_le_bytes(*b"12345678\0\0\0\0\0\0\0\0");
        assert!(all_digits(digits, lanes8));
        for at in 0..8 {
            for bad in [b'/', b':', b'a', b'.', 0x80, 0xff, 0] {
                let mut bytes = digits.to_le_bytes();
                bytes[at] = bad;
                assert!(
                    !all_digits(u128::from_le_bytes(bytes), lanes8),
                    "{bad} at {at}"
                );
            }
        }
    }

    #[test]
    fn short_texts_in_memory_are_permuted_apart_and_spread() {
        let digest = |text: &[u8]| {
            let mut t = KeyText::new();
            t.put_bytes(text);
            t.digest(KeyDigest::ProcessLocal)
        };
        // Each length on both sides of the 16-byte limit, whole or in two pieces: one digest
        // per text, and never the text as written.
        let mut seen = HashSet::new();
        for len in 0..=20 {
            let text: Vec<u8> = (0..len).map(|i| b'0' + (i % 10) as u8).collect();
            let whole = digest(&text);
            let (a, b) = text.split_at(len / 2);
            let mut pieces = KeyText::new();
            pieces.put_bytes(a);
            pieces.put_bytes(b);
            assert_eq!(pieces.digest(KeyDigest::ProcessLocal), whole, "{len} bytes");
            if len > 0 {
                assert_ne!(
                    whole[..len.min(DIGEST_BYTES)],
                    text[..len.min(DIGEST_BYTES)]
                );
            }
            assert!(seen.insert(whole), "{len} bytes: a digest twice");
        }
        // A NUL more is another text (the length is part of what is permuted).
        assert_ne!(digest(b"[1]"), digest(b"[1]\0"));
        // Keys by integer, as most are: all apart, and their first 8 bytes (the store's hash)
        // fill a table's buckets and tags as random ones would. 100,000 keys in 65,536 buckets
        // leave ~21.7% empty at random; bunched ones would leave far more.
        let n = 100_000u32;
        let digests: HashSet<[u8; DIGEST_BYTES]> = (0..n)
            .map(|i| digest(format!("[{i}]").as_bytes()))
            .collect();
        assert_eq!(digests.len(), n as usize);
        let buckets: HashSet<u64> = digests.iter().map(|d| digest_prefix(d) & 0xffff).collect();
        assert!(
            buckets.len() > 49_000,
            "{} of 65,536 buckets",
            buckets.len()
        );
        let tags: HashSet<u64> = digests.iter().map(|d| digest_prefix(d) >> 57).collect();
        assert_eq!(tags.len(), 128);
    }

    #[test]
    fn keys_are_canonical_namespaced_and_hashed() {
        let i = Idempotency::new(MemoryIdempotencyStore::new());
        let path = PathName::new("PLACE");
        let a = i
            .key(
                "orders",
                &path,
                &kwargs(json!({"a": 1, "b": {"y": 2, "x": [1, {"q": 1, "p": 2}]}})),
            )
            .unwrap();
        let b = i
            .key(
                "orders",
                &path,
                &kwargs(json!({"b": {"x": [1, {"p": 2, "q": 1}], "y": 2}, "a": 1})),
            )
            .unwrap();
        assert_eq!(a, b, "key order does not matter");
        assert!(a.to_string().starts_with("orders.PLACE#"), "{a}");
        assert_eq!(a.to_string().len(), "orders.PLACE#".len() + 32);
        let other_path = i
            .key(
                "orders",
                &PathName::new("OTHER"),
                &kwargs(json!({"a": 1, "b": {"y": 2, "x": [1, {"q": 1, "p": 2}]}})),
            )
            .unwrap();
        assert!(
            other_path.to_string().starts_with("orders.OTHER#"),
            "{other_path}"
        );
        assert_ne!(a, other_path, "the namespace is part of the key");
        let c = i.key("orders", &path, &kwargs(json!({"a": 2}))).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn keys_from_fields_ignore_the_rest_and_name_what_is_missing() {
        let i = Idempotency::new(MemoryIdempotencyStore::new()).key_from(["order_id"]);
        let path = PathName::new("PLACE");
        let a = i
            .key("f", &path, &kwargs(json!({"order_id": "o-1", "n": 1})))
            .unwrap();
        let b = i
            .key("f", &path, &kwargs(json!({"n": 2, "order_id": "o-1"})))
            .unwrap();
        assert_eq!(a, b);
        let c = i
            .key("f", &path, &kwargs(json!({"order_id": "o-2"})))
            .unwrap();
        assert_ne!(a, c);
        let missing = i.key("f", &path, &kwargs(json!({"n": 1}))).unwrap_err();
        assert!(
            missing.contains("'order_id'") && missing.contains("lacks"),
            "{missing}"
        );
        let null = i
            .key("f", &path, &kwargs(json!({"order_id": null})))
            .unwrap_err();
        assert!(null.contains("null"), "{null}");
    }

    #[test]
    fn raw_and_parsed_kwargs_give_the_same_keys() {
        let path = PathName::new("P");
        let whole = Idempotency::new(MemoryIdempotencyStore::new());
        let fields = Idempotency::new(MemoryIdempotencyStore::new()).key_from(["b", "a"]);
        // Indexed (raw entries) and not (a key with an escape forces the parsed tree).
        let text = r#"{"a": 1.50, "b": "x\u0041", "c": {"z": 1, "y": [2, {"q": null}]}}"#;
        let indexed = Kwargs::from_json(text).unwrap();
        assert!(indexed.raw_entries().is_some());
        let escaped = Kwargs::from_json(
            r#"{"c": {"y": [2, {"q": null}], "z": 1}, "b": "xA", "a": 1.5, "\u0064": 0}"#,
        )
        .unwrap();
        assert!(escaped.raw_entries().is_none());
        let plain =
            Kwargs::from_json(r#"{"c": {"y": [2, {"q": null}], "z": 1}, "b": "xA", "a": 1.5}"#)
                .unwrap();
        assert_eq!(
            fields.key("f", &path, &indexed).unwrap(),
            fields.key("f", &path, &escaped).unwrap()
        );
        assert_eq!(
            whole.key("f", &path, &indexed).unwrap(),
            whole.key("f", &path, &plain).unwrap()
        );
        // A repeated key: the last wins, as when parsing.
        let repeated = Kwargs::from_json(
            r#"{"a": 0, "b": "xA", "c": {"z": 1, "y": [2, {"q": null}]}, "a": 1.5}"#,
        )
        .unwrap();
        assert_eq!(
            whole.key("f", &path, &repeated).unwrap(),
            whole.key("f", &path, &plain).unwrap()
        );
        assert_eq!(
            fields.key("f", &path, &repeated).unwrap(),
            fields.key("f", &path, &plain).unwrap()
        );
    }

    #[test]
    fn values_written_as_they_are_key_as_parsed_ones() {
        // Each value by itself, from the raw entries and from the parsed tree (an escaped key
        // forces it): the values written as they are and those that are parsed agree.
        let path = PathName::new("P");
        let by_v = Idempotency::new(MemoryIdempotencyStore::new()).key_from(["v"]);
        for v in [
            "0",
            "-12",
            "123456789",
            // Both sides of the shortest keys' limit: `[value]` under 16 bytes, or not.
            "1234567890123",
            "12345678901234",
            r#""abcdefghijk""#,
            r#""abcdefghijkl""#,
            "true",
            "false",
            r#""plain""#,
            r#""x\u0041""#,
            "1E2",
            "-0.5",
            "1.50",
            "[1, 2]",
            r#"{"b": 1, "a": 2}"#,
        ] {
            let raw = Kwargs::from_json(&format!(r#"{{"v": {v}}}"#)).unwrap();
            assert!(raw.raw_entries().is_some());
            let parsed = Kwargs::from_json(&format!(r#"{{"v": {v}, "\u0064": 0}}"#)).unwrap();
            assert!(parsed.raw_entries().is_none());
            assert_eq!(
                by_v.key("f", &path, &raw).unwrap(),
                by_v.key("f", &path, &parsed).unwrap(),
                "{v}"
            );
        }
    }

    #[test]
    fn claims_lock_until_the_deadline_or_the_timeout() {
        let i = Idempotency::new(MemoryIdempotencyStore::new());
        let now = now_ms();
        let c = i.claim(key("k"), Some(now + 5_000));
        assert_eq!(c.lock_until_ms, now + 5_000);
        assert!(c.expires_at_s >= now / 1000 + 3600);
        let c = i.claim(key("k"), None);
        assert!(c.lock_until_ms >= now + 60_000);
        let c = i
            .lock_timeout(Duration::from_secs(2))
            .claim(key("k"), Some(now + 900_000));
        assert!(c.lock_until_ms < now + 10_000);
    }

    /// Key number `n`, its digest spread as a real one's is (the store's table takes its
    /// first bytes as the hash).
    fn spread_key(n: u32) -> IdempotencyKey {
        let mut digest = [0; DIGEST_BYTES];
        let spread = (u64::from(n) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        digest[..8].copy_from_slice(&spread.to_le_bytes());
        digest[8..12].copy_from_slice(&n.to_le_bytes());
        IdempotencyKey::new("ns", digest)
    }

    #[tokio::test]
    async fn the_memory_store_finds_keys_before_and_after_they_move_tables() {
        let s = MemoryIdempotencyStore::new();
        let k = spread_key;
        let claim = |n: u32| Claim::new(k(n), 10_000_000, 10_060_000, 10_000 + 3600);
        let held = Begun::InProgress {
            lock_until_ms: 10_060_000,
        };
        // Past several moves from the small table to the large one, and some keys still in
        // the small one: each key is found again, wherever it is.
        let n = 3 * FRESH as u32 + 7;
        for i in 0..n {
            assert_eq!(s.begin(&claim(i)).await.unwrap(), Begun::Started, "{i}");
            assert_eq!(s.begin(&claim(i)).await.unwrap(), held, "{i} again");
        }
        let fresh = |s: &MemoryIdempotencyStore| {
            let items = s.items.lock().unwrap();
            items.entries.len() - items.placed
        };
        assert_eq!(fresh(&s), 7);
        for i in 0..n {
            assert_eq!(
                s.begin(&claim(i)).await.unwrap(),
                held,
                "{i} after the last move"
            );
        }
        // A release while keys are in the small table: all move first, the last key takes the
        // released one's place, and every key is found, the released one as new.
        s.release(&k(3)).await.unwrap();
        assert_eq!(fresh(&s), 0);
        for i in (0..n).filter(|&i| i != 3) {
            assert_eq!(
                s.begin(&claim(i)).await.unwrap(),
                held,
                "{i} after a release"
            );
        }
        assert_eq!(s.begin(&claim(3)).await.unwrap(), Begun::Started);
        assert_eq!(fresh(&s), 1);
        // Completions find keys in either table.
        for i in 0..n {
            s.complete(&k(i), None, 10_000 + 3600).await.unwrap();
        }
        for i in 0..n {
            assert_eq!(
                s.begin(&claim(i)).await.unwrap(),
                Begun::Completed(None),
                "{i}"
            );
        }
        assert_eq!(s.items().len(), n as usize);
    }

    #[tokio::test]
    async fn the_memory_store_keeps_its_places_and_outputs_straight() {
        let s = MemoryIdempotencyStore::new();
        let k = |n: u8| IdempotencyKey::new("ns", [n; DIGEST_BYTES]);
        let claim = |n: u8| Claim::new(k(n), 10_000_000, 10_060_000, 10_000 + 3600);
        for n in 0..5 {
            assert_eq!(s.begin(&claim(n)).await.unwrap(), Begun::Started);
        }
        s.complete(&k(1), Some(&json!({"n": 1})), 10_000 + 3600)
            .await
            .unwrap();
        s.complete(&k(3), None, 10_000 + 3600).await.unwrap();
        // The first deleted: the last takes its place, and each key is still found.
        s.release(&k(0)).await.unwrap();
        assert_eq!(
            s.begin(&claim(4)).await.unwrap(),
            Begun::InProgress {
                lock_until_ms: 10_060_000
            }
        );
        assert_eq!(
            s.begin(&claim(1)).await.unwrap(),
            Begun::Completed(Some(json!({"n": 1})))
        );
        assert_eq!(s.begin(&claim(3)).await.unwrap(), Begun::Completed(None));
        assert_eq!(s.begin(&claim(0)).await.unwrap(), Begun::Started);
        assert_eq!(s.items().len(), 5);
        // An output goes with its item: deleted, or taken over once expired.
        s.release(&k(1)).await.unwrap();
        assert!(s.items.lock().unwrap().outputs.is_empty());
        s.complete(&k(2), Some(&json!(2)), 10_000 + 3600)
            .await
            .unwrap();
        let expired = Claim::new(k(2), (10_000 + 3600) * 1000, 20_000_000, 20_000 + 3600);
        assert_eq!(s.begin(&expired).await.unwrap(), Begun::Started);
        assert!(s.items.lock().unwrap().outputs.is_empty());
        assert_eq!(s.items().len(), 4);
        // An expiry after 2106 is kept as then.
        s.complete(&k(9), None, u64::MAX).await.unwrap();
        let far = &s.items()[&k(9).to_string()];
        assert_eq!(
            *far,
            MemoryItem::Completed {
                output: None,
                expires_at_s: u64::from(u32::MAX)
            }
        );
    }

    #[tokio::test]
    async fn the_memory_store_sweeps_out_expired_keys_and_keeps_the_rest() {
        let s = MemoryIdempotencyStore::new();
        let k = spread_key;
        let t0: u64 = 10_000;
        let at = |n: u32, now_s: u64, expires_s: u64| {
            Claim::new(k(n), now_s * 1000, now_s * 1000 + 600_000, expires_s)
        };
        // 1,500 keys that expire at t0 + 100 (the first 100 left in progress, every tenth
        // completed with an output), then 600 that live until t0 + 10,000.
        for n in 0..2_100 {
            let expires = if n < 1_500 { t0 + 100 } else { t0 + 10_000 };
            assert_eq!(s.begin(&at(n, t0, expires)).await.unwrap(), Begun::Started);
            if n >= 100 {
                let output = (n % 10 == 0).then(|| json!({ "n": n }));
                s.complete(&k(n), output.as_ref(), expires).await.unwrap();
            }
        }
        assert_eq!(s.items().len(), 2_100);
        // Still alive at t0 + 99: a claim sweeps nothing.
        assert!(matches!(
            s.begin(&at(0, t0 + 99, t0 + 200)).await.unwrap(),
            Begun::InProgress { .. }
        ));
        assert_eq!(s.items().len(), 2_100);
        // At t0 + 100 the first 1,500 have expired: new claims sweep them out (within
        // `FRESH` claims of the list's last check).
        for n in 5_000..5_000 + FRESH as u32 {
            assert_eq!(
                s.begin(&at(n, t0 + 100, t0 + 3_700)).await.unwrap(),
                Begun::Started
            );
        }
        let items = s.items();
        assert_eq!(items.len(), 600 + FRESH);
        assert!(items.contains_key(&k(5_000).to_string()));
        assert_eq!(s.items.lock().unwrap().outputs.len(), 60);
        // What lives answers as before, outputs and all; what expired is free.
        for n in (1_500..2_100).step_by(7) {
            let output = (n % 10 == 0).then(|| json!({ "n": n }));
            assert_eq!(
                s.begin(&at(n, t0 + 100, t0 + 3_700)).await.unwrap(),
                Begun::Completed(output),
                "{n}"
            );
        }
        assert_eq!(
            s.begin(&at(1_400, t0 + 100, t0 + 3_700)).await.unwrap(),
            Begun::Started
        );
        // A run that held an expired key swept out completes it anew.
        s.complete(&k(50), None, t0 + 3_700).await.unwrap();
        assert_eq!(
            s.begin(&at(50, t0 + 101, t0 + 3_700)).await.unwrap(),
            Begun::Completed(None)
        );
    }

    #[tokio::test]
    async fn a_long_running_memory_store_stays_near_its_live_keys() {
        let s = MemoryIdempotencyStore::new();
        let k = spread_key;
        // Ten hours of a worker that takes 100 new keys a minute, each kept an hour: 6,000 are
        // alive at any time.
        let (per_minute, expiry_s) = (100u32, 3_600u64);
        let mut n = 0;
        for minute in 0..600u64 {
            let now_s = 1_000_000 + minute * 60;
            for _ in 0..per_minute {
                let claim = Claim::new(k(n), now_s * 1000, now_s * 1000 + 60_000, now_s + expiry_s);
                assert_eq!(s.begin(&claim).await.unwrap(), Begun::Started);
                s.complete(&k(n), None, now_s + expiry_s).await.unwrap();
                n += 1;
            }
            let len = s.items.lock().unwrap().entries.len();
            assert!(len <= 2 * 6_100, "minute {minute}: {len} items kept");
        }
    }

    #[tokio::test]
    async fn the_memory_store_follows_the_table_of_answers() {
        let s = MemoryIdempotencyStore::new();
        let claim = Claim::new(key("k"), 10_000_000, 10_060_000, 10_000 + 3600);
        assert_eq!(s.begin(&claim).await.unwrap(), Begun::Started);
        assert_eq!(
            s.begin(&claim).await.unwrap(),
            Begun::InProgress {
                lock_until_ms: 10_060_000
            }
        );
        // A lock that timed out is taken over.
        let later = Claim::new(key("k"), 10_060_001, 10_120_000, 10_060 + 3600);
        assert_eq!(s.begin(&later).await.unwrap(), Begun::Started);
        s.complete(&key("k"), Some(&json!({"n": 1})), 10_060 + 3600)
            .await
            .unwrap();
        assert_eq!(
            s.begin(&later).await.unwrap(),
            Begun::Completed(Some(json!({"n": 1})))
        );
        // Expired: free again.
        let expired = Claim::new(key("k"), (10_060 + 3600) * 1000, 0, 0);
        assert_eq!(s.begin(&expired).await.unwrap(), Begun::Started);
        s.release(&key("k")).await.unwrap();
        assert!(s.items().is_empty());
    }

    #[tokio::test]
    async fn the_memory_store_extends_only_locks_in_progress_and_never_shortens_one() {
        let s = MemoryIdempotencyStore::new();
        let lock = |s: &MemoryIdempotencyStore, k: &IdempotencyKey| match &s.items()[&k.to_string()]
        {
            MemoryItem::InProgress { lock_until_ms, .. } => Some(*lock_until_ms),
            MemoryItem::Completed { .. } => None,
        };
        let (a, b) = (key("a"), key("b"));
        for k in [&a, &b] {
            let claim = Claim::new(*k, 10_000_000, 10_060_000, 10_000 + 3600);
            assert_eq!(s.begin(&claim).await.unwrap(), Begun::Started);
        }
        s.extend(&[&a], 10_600_000).await.unwrap();
        assert_eq!(lock(&s, &a), Some(10_600_000));
        assert_eq!(lock(&s, &b), Some(10_060_000), "only the keys named");
        // Earlier than it holds: unchanged.
        s.extend(&[&a], 10_100_000).await.unwrap();
        assert_eq!(lock(&s, &a), Some(10_600_000));
        // Extended, the lock holds a claim off past its first end.
        let later = Claim::new(a, 10_300_000, 10_360_000, 10_300 + 3600);
        assert_eq!(
            s.begin(&later).await.unwrap(),
            Begun::InProgress {
                lock_until_ms: 10_600_000
            }
        );
        // Completed, released or never claimed: left alone.
        s.complete(&b, None, 10_000 + 3600).await.unwrap();
        s.release(&a).await.unwrap();
        s.extend(&[&a, &b, &key("never")], 10_900_000)
            .await
            .unwrap();
        assert_eq!(lock(&s, &b), None);
        assert_eq!(s.items().len(), 1);
    }
}
