//! Idempotency's configuration errors and bad keys; its semantics per store are tested with
//! the `orders` example (examples/tests/orders_idempotency.rs).

use std::sync::Arc;
use std::time::Duration;

use lpipe_core::idempotency::{Claim, ClaimStatus, HeldKey, MemoryItem, StoreError};
use lpipe_core::testing::{lambda_context, message, raw_event, CapturingReporter};
use lpipe_core::{
    async_trait,
    idempotency::{HeldKeys, IdempotencyStore, MemoryIdempotencyStore},
    Action, BoxError, ErrorKind, Idempotency, InvalidConfigurationError, NoParams, Pipeline,
};
use serde_json::{json, Value};
use tokio::sync::Notify;

async fn ok(_: NoParams) -> Result<(), BoxError> {
    Ok(())
}

/// The kwarg records are keyed by (a key field must be one the path's functions take).
#[derive(serde::Deserialize)]
struct Keyed {
    #[serde(default)]
    #[allow(dead_code)]
    order_id: Option<Value>,
}

async fn keyed(_: Keyed) -> Result<(), BoxError> {
    Ok(())
}

fn idempotency() -> Idempotency {
    Idempotency::new(MemoryIdempotencyStore::new())
}

#[test]
fn the_build_names_an_unknown_idempotent_path_and_an_empty_key() {
    let e = Pipeline::builder()
        .path("A", [Action::new().function(ok)])
        .idempotent_in("B", idempotency())
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, InvalidConfigurationError::UnknownIdempotentPath { path } if path.as_str() == "B"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "InvalidConfigurationError: idempotent_in names path B, which is not declared"
    );
    let e = Pipeline::builder()
        .path("A", [Action::new().function(ok)])
        .idempotent(idempotency().key_from(Vec::<String>::new()))
        .build()
        .unwrap_err();
    assert!(
        matches!(e, InvalidConfigurationError::EmptyIdempotencyKey),
        "{e}"
    );
}

#[tokio::test]
async fn a_record_without_its_key_is_dropped_naming_the_kwarg() {
    let reporter = CapturingReporter::new();
    let store = MemoryIdempotencyStore::new();
    let pipeline = Pipeline::builder()
        .path("A", [Action::new().function(keyed)])
        .idempotent(Idempotency::new(store.clone()).key_from(["order_id"]))
        .reporter(reporter.clone())
        .build()
        .unwrap();
    let response = pipeline
        .handle(
            &raw_event(&[
                message("A", json!({"order_id": "o-1"})),
                message("A", json!({"id": 1})),
            ]),
            lambda_context(0),
        )
        .await
        .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 1, "dropped": 1, "failed": 0})
    );
    let reports = reporter.reports();
    assert_eq!(reports[0].kind, ErrorKind::InvalidPayload);
    lpipe_core::testing::assert_contains(
        &reports[0].message,
        "the idempotency key needs the kwarg 'order_id', which this record lacks",
    );
    assert_eq!(store.items().len(), 1);
    // A path that is not idempotent is not keyed: the pipeline-wide setting covers paths that
    // do not say otherwise, and a path's own replaces it.
    let other = MemoryIdempotencyStore::new();
    let pipeline = Pipeline::builder()
        .path("A", [Action::new().function(ok)])
        .path("B", [Action::new().function(ok)])
        .idempotent(Idempotency::new(store.clone()))
        .idempotent_in("B", Idempotency::new(other.clone()))
        .build()
        .unwrap();
    pipeline
        .handle(
            &raw_event(&[message("A", json!({"n": 1})), message("B", json!({"n": 1}))]),
            lambda_context(0),
        )
        .await
        .unwrap();
    assert_eq!(store.items().len(), 2);
    assert_eq!(other.items().len(), 1);
    assert!(
        other.items().keys().all(|k| k.contains(".B#")),
        "{:?}",
        other.items()
    );
}

/// A memory store that notes how many keys each `settle` call was given.
#[derive(Clone, Default)]
struct Chunks {
    store: MemoryIdempotencyStore,
    sizes: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

#[lpipe_core::async_trait]
impl lpipe_core::idempotency::IdempotencyStore for Chunks {
    async fn begin(
        &self,
        claim: &lpipe_core::idempotency::Claim,
    ) -> Result<lpipe_core::idempotency::ClaimStatus, lpipe_core::idempotency::StoreError> {
        self.store.begin(claim).await
    }
    async fn complete(
        &self,
        held: &lpipe_core::idempotency::HeldKey,
        output: Option<&serde_json::Value>,
        expires_at_s: u64,
    ) -> Result<(), lpipe_core::idempotency::StoreError> {
        self.store.complete(held, output, expires_at_s).await
    }
    async fn release(
        &self,
        held: &lpipe_core::idempotency::HeldKey,
    ) -> Result<(), lpipe_core::idempotency::StoreError> {
        self.store.release(held).await
    }
    async fn settle(
        &self,
        settlements: &[lpipe_core::idempotency::Settlement<'_>],
    ) -> Vec<Result<(), lpipe_core::idempotency::StoreError>> {
        self.sizes.lock().unwrap().push(settlements.len());
        self.store.settle(settlements).await
    }
}

#[tokio::test]
async fn a_large_batch_settles_every_key_a_chunk_at_a_time() {
    let store = Chunks::default();
    let pipeline = Pipeline::builder()
        .path("A", [Action::new().function(ok)])
        .idempotent(Idempotency::new(store.clone()))
        .build()
        .unwrap();
    let messages: Vec<_> = (0..2500).map(|n| message("A", json!({ "n": n }))).collect();
    let response = pipeline
        .handle(&raw_event(&messages), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["successes"], 2500);
    // Every key completed, in calls of at most 1,024 keys (bounded memory), none left out.
    let items = store.store.items();
    assert_eq!(items.len(), 2500);
    assert!(items
        .values()
        .all(|i| matches!(i, lpipe_core::idempotency::MemoryItem::Completed { .. })));
    assert_eq!(*store.sizes.lock().unwrap(), [1024, 1024, 452]);
    // Handled again: every record a duplicate, nothing left to settle.
    let response = pipeline
        .handle(&raw_event(&messages), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(response["stats"]["duplicates"], 2500);
    assert_eq!(store.sizes.lock().unwrap().len(), 3);
}

/// A memory store that does not extend locks (the trait's default).
struct NoExtend(MemoryIdempotencyStore);

#[async_trait]
impl IdempotencyStore for NoExtend {
    async fn begin(&self, claim: &Claim) -> Result<ClaimStatus, StoreError> {
        self.0.begin(claim).await
    }
    async fn complete(
        &self,
        held: &HeldKey,
        output: Option<&Value>,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        self.0.complete(held, output, expires_at_s).await
    }
    async fn release(&self, held: &HeldKey) -> Result<(), StoreError> {
        self.0.release(held).await
    }
}

/// A pipeline whose one path `A` waits for `go` once it has started (which it says on
/// `started`), idempotent by `order_id` in `store`.
fn waiting(store: impl IdempotencyStore, started: &Arc<Notify>, go: &Arc<Notify>) -> Pipeline {
    let (started, go) = (started.clone(), go.clone());
    let wait = move |_: Keyed| {
        let (started, go) = (started.clone(), go.clone());
        async move {
            started.notify_one();
            go.notified().await;
            Ok::<(), BoxError>(())
        }
    };
    Pipeline::builder()
        .path("A", [Action::new().function(wait)])
        .idempotent(
            Idempotency::new(store)
                .key_from(["order_id"])
                .lock_timeout(Duration::from_secs(60)),
        )
        .build()
        .unwrap()
}

/// The lock of the store's one item, in progress.
fn lock_of(store: &MemoryIdempotencyStore) -> u64 {
    match store.items().into_values().next() {
        Some(MemoryItem::InProgress { lock_until_ms, .. }) => lock_until_ms,
        other => panic!("not in progress: {other:?}"),
    }
}

#[tokio::test]
async fn keys_are_held_while_their_records_run_and_their_locks_can_be_extended() {
    let store = MemoryIdempotencyStore::new();
    let (started, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let pipeline = waiting(store.clone(), &started, &go);
    let held = HeldKeys::new();
    let event = raw_event(&[message("A", json!({"order_id": "o-1"}))]);
    let lock = || lock_of(&store);
    let check = async {
        started.notified().await;
        assert_eq!(held.len(), 1, "the running record's key is held");
        let claimed = lock();
        held.extend_locks(claimed + 3_600_000).await.unwrap();
        assert_eq!(lock(), claimed + 3_600_000);
        // Never shortened.
        held.extend_locks(claimed).await.unwrap();
        assert_eq!(lock(), claimed + 3_600_000);
        go.notify_one();
    };
    let (response, ()) = tokio::join!(
        pipeline.handle_holding(&event, lambda_context(0), &held),
        check
    );
    assert_eq!(response.unwrap()["stats"]["successes"], 1);
    assert!(held.is_empty(), "settled keys are let go");
    assert!(matches!(
        store.items().into_values().next(),
        Some(MemoryItem::Completed { .. })
    ));
    // Nothing held: nothing to extend.
    held.extend_locks(u64::MAX).await.unwrap();
}

#[tokio::test]
async fn a_store_that_cannot_extend_locks_says_so() {
    let (started, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let pipeline = waiting(NoExtend(MemoryIdempotencyStore::new()), &started, &go);
    let held = HeldKeys::new();
    let event = raw_event(&[message("A", json!({"order_id": "o-1"}))]);
    let check = async {
        started.notified().await;
        let e = held.extend_locks(u64::MAX).await.unwrap_err();
        lpipe_core::testing::assert_contains(
            &e,
            "the locks of 1 idempotency keys could not be extended: this idempotency store cannot extend locks",
        );
        go.notify_one();
    };
    let (response, ()) = tokio::join!(
        pipeline.handle_holding(&event, lambda_context(0), &held),
        check
    );
    assert_eq!(response.unwrap()["stats"]["successes"], 1);
}

#[tokio::test]
async fn keys_held_by_two_pipelines_are_extended_each_in_its_own_store() {
    let (first, second) = (MemoryIdempotencyStore::new(), MemoryIdempotencyStore::new());
    let (started, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (started2, go2) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let one = waiting(first.clone(), &started, &go);
    let two = waiting(second.clone(), &started2, &go2);
    let held = HeldKeys::new();
    let event = |id: &str| raw_event(&[message("A", json!({"order_id": id}))]);
    let (a, b) = (event("o-1"), event("o-2"));
    let check = async {
        started.notified().await;
        started2.notified().await;
        assert_eq!(held.len(), 2);
        held.extend_locks(u64::MAX / 2).await.unwrap();
        assert_eq!(
            (lock_of(&first), lock_of(&second)),
            (u64::MAX / 2, u64::MAX / 2)
        );
        go.notify_one();
        go2.notify_one();
    };
    let (r1, r2, ()) = tokio::join!(
        one.handle_holding(&a, lambda_context(0), &held),
        two.handle_holding(&b, lambda_context(0), &held),
        check
    );
    assert_eq!(r1.unwrap()["stats"]["successes"], 1);
    assert_eq!(r2.unwrap()["stats"]["successes"], 1);
    assert!(held.is_empty());
}

/// An SNS notification as a queue delivers it without raw message delivery.
#[derive(serde::Deserialize)]
struct Notification {
    #[serde(rename = "Message")]
    message: String,
}

#[derive(serde::Deserialize)]
struct Order {
    order_id: String,
}

async fn unwrap(n: Notification) -> Result<lpipe_core::Payload, BoxError> {
    let order: Value = serde_json::from_str(&n.message)?;
    Ok(lpipe_core::Payload::to_path("ORDER", &order)?)
}

async fn accept(order: Order) -> Result<String, BoxError> {
    Ok(order.order_id)
}

/// A path reached by a returned payload (or run by another path) claims its record's key: the
/// same order delivered twice, in two invocations and twice in one, is forwarded once.
#[tokio::test]
async fn an_idempotent_path_reached_by_a_returned_payload_claims_the_key() {
    let store = MemoryIdempotencyStore::new();
    let sent = lpipe_core::sink::MemorySink::new();
    let pipeline = Pipeline::builder()
        .path(
            "UNWRAP",
            [Action::new().function(unwrap).returns_to("ORDER")],
        )
        .path(
            "ORDER",
            [Action::new()
                .function(accept)
                .queue(lpipe_core::Queue::sqs("orders"))],
        )
        .default_path("UNWRAP")
        .idempotent_in(
            "ORDER",
            Idempotency::new(store.clone()).key_from(["order_id"]),
        )
        .record_outbound(sent.clone())
        .build()
        .unwrap();
    let notification = json!({"Message": "{\"order_id\": \"o-1\"}", "Type": "Notification"});
    let first = pipeline
        .handle(
            &raw_event(std::slice::from_ref(&notification)),
            lambda_context(0),
        )
        .await
        .unwrap();
    assert_eq!(first["stats"]["successes"], 1, "{first}");
    assert_eq!(sent.messages().len(), 1);
    assert_eq!(store.items().len(), 1, "the key of ORDER is claimed");
    let again = pipeline
        .handle(&raw_event(&[notification]), lambda_context(0))
        .await
        .unwrap();
    assert_eq!(again["stats"]["successes"], 1, "{again}");
    assert_eq!(again["stats"]["duplicates"], 1, "{again}");
    assert_eq!(
        sent.messages().len(),
        1,
        "the duplicate is not forwarded again"
    );
}

async fn refuse(order: Order) -> Result<(), lpipe_core::FailCatastrophically> {
    Err(lpipe_core::FailCatastrophically::new(format!(
        "{} cannot be placed now",
        order.order_id
    )))
}

/// A record whose key an earlier record of the same batch holds waits for that record's
/// outcome instead of failing on the key in progress: a duplicate if it succeeded, kept for
/// retry if not; logged at info, not as an error.
#[tokio::test]
async fn a_duplicate_within_a_batch_is_answered_as_its_first_record_ends() {
    let pipeline = |f: bool| {
        let builder = Pipeline::builder();
        let builder = if f {
            builder.path("ORDER", [Action::new().function(refuse)])
        } else {
            builder.path("ORDER", [Action::new().function(accept)])
        };
        builder
            .idempotent(Idempotency::new(MemoryIdempotencyStore::new()).key_from(["order_id"]))
            .build()
            .unwrap()
    };
    let event = raw_event(&[
        message("ORDER", json!({"order_id": "o-1"})),
        message("ORDER", json!({"order_id": "o-2"})),
        message("ORDER", json!({"order_id": "o-1"})),
    ]);
    let logs = lpipe_core::testing::CapturedLogs::new();
    let settings = lpipe_core::runtime::LogSettings {
        format: lpipe_core::runtime::LogFormat::Text,
        filter: "info".into(),
    };
    let _guard = tracing::subscriber::set_default(settings.subscriber(logs.clone()));
    let ok = pipeline(false)
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    assert_eq!(
        ok["stats"],
        json!({"received": 3, "successes": 3, "dropped": 0, "failed": 0, "duplicates": 1}),
        "{ok}"
    );
    assert_eq!(
        ok["output"][2], ok["output"][0],
        "the duplicate's output is the first's"
    );
    let text = logs.text();
    assert!(!text.contains("ERROR"), "{text}");
    lpipe_core::testing::assert_contains(
        &text,
        "a duplicate of record 0 of this batch, which succeeded",
    );
    // The first fails (kept): so does its duplicate, waiting for the retry.
    let failed = pipeline(true)
        .handle(&event, lambda_context(0))
        .await
        .unwrap_err();
    lpipe_core::testing::assert_contains(
        &failed.error_message,
        "a duplicate of record 0 of this batch, which did not succeed",
    );
}
