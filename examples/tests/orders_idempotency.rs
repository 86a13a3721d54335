//! The `orders` example's idempotency, with each store: in memory, and a DynamoDB table on
//! moto_server (those tests say `#[ignore = "needs moto_server: …"]`; `./scripts/test` starts
//! one and runs them with `--include-ignored`).
//!
//! What must hold, per store: a batch handled twice runs each record once and forwards each
//! message once; two invocations with the same record at the same moment run it once (the
//! other fails, and is a duplicate on retry); a failed record runs again on retry; an expired
//! key runs again; faults of the store fail the records and run none of them. With DynamoDB,
//! a record that runs costs one conditional PutItem and one UpdateItem.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use lpipe::dynamodb::DynamoDbStore;
use lpipe::testing::{
    lambda_context, message, moto_endpoint, unique_name, DownStore, DynamoDbEvent, SqsEvent,
};
use lpipe::{idempotency::MemoryIdempotencyStore, sink::MemorySink, Idempotency, Pipeline};
use lpipe_aws::testing::CountCalls;
use lpipe_examples::place_order::{self, Warehouse};
use serde_json::{json, Value};

/// A DynamoDB table on moto laid out as the store expects, and a store on it whose client
/// counts its calls.
async fn dynamodb_store(test: &str) -> (DynamoDbStore, CountCalls) {
    moto_endpoint(test);
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let calls = CountCalls::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(calls.clone())
            .build(),
    );
    let table = unique_name("lpipe-idempotency");
    client
        .create_table()
        .table_name(&table)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("the table is created on moto");
    calls.reset();
    (DynamoDbStore::new(client, table), calls)
}

/// The example's pipeline with this store (keyed by `order_id`), its warehouse, and what it
/// forwards, recorded.
struct Orders {
    pipeline: Pipeline,
    warehouse: Warehouse,
    forwarded: MemorySink,
}

fn orders(idempotency: Idempotency, warehouse: Warehouse) -> Orders {
    let forwarded = MemorySink::new();
    let pipeline = place_order::pipeline(warehouse.clone(), idempotency.key_from(["order_id"]))
        .record_outbound(forwarded.clone())
        .registry(lpipe::registry())
        .build()
        .expect("a valid pipeline");
    Orders {
        pipeline,
        warehouse,
        forwarded,
    }
}

fn order(id: &str, quantity: u32) -> Value {
    message(
        "PLACE_ORDER",
        json!({"order_id": id, "item": "teapot", "quantity": quantity}),
    )
}

fn batch(ids: &[&str]) -> String {
    ids.iter()
        .fold(SqsEvent::new(), |e, id| e.message(order(id, 1)))
        .to_string()
}

async fn handle(o: &Orders, event: &str) -> Value {
    o.pipeline
        .handle(event, lambda_context(30_000))
        .await
        .expect("a response")
}

fn failures(response: &Value) -> usize {
    response["batchItemFailures"].as_array().unwrap().len()
}

fn forwarded_ids(sink: &MemorySink) -> Vec<String> {
    let mut ids: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(&m.body).unwrap();
            body["kwargs"]["order_id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids
}

fn reservations(o: &Orders) -> Vec<(String, u32)> {
    let mut r: Vec<_> = o.warehouse.reservations().into_iter().collect();
    r.sort();
    r
}

fn once(ids: &[&str]) -> Vec<(String, u32)> {
    ids.iter().map(|id| (id.to_string(), 1)).collect()
}

async fn a_batch_handled_twice_runs_and_forwards_each_record_once(idempotency: Idempotency) {
    let o = orders(idempotency, Warehouse::default());
    let event = batch(&["o-1", "o-2", "o-3"]);
    let first = handle(&o, &event).await;
    assert_eq!(
        first["stats"],
        json!({"received": 3, "successes": 3, "dropped": 0, "failed": 0})
    );
    let second = handle(&o, &event).await;
    assert_eq!(
        second["stats"],
        json!({"received": 3, "successes": 3, "dropped": 0, "failed": 0, "duplicates": 3})
    );
    assert_eq!(reservations(&o), once(&["o-1", "o-2", "o-3"]));
    assert_eq!(forwarded_ids(&o.forwarded), ["o-1", "o-2", "o-3"]);
    // A new batch with one old order and one new: only the new one runs.
    let third = handle(&o, &batch(&["o-2", "o-4"])).await;
    assert_eq!(third["stats"]["duplicates"], 1);
    assert_eq!(reservations(&o), once(&["o-1", "o-2", "o-3", "o-4"]));
    assert_eq!(forwarded_ids(&o.forwarded), ["o-1", "o-2", "o-3", "o-4"]);
}

async fn the_same_record_at_the_same_moment_runs_once(idempotency: Idempotency) {
    let o = orders(
        idempotency,
        Warehouse::default().with_delay(Duration::from_millis(300)),
    );
    let event = batch(&["o-1"]);
    let (a, b) = tokio::join!(handle(&o, &event), handle(&o, &event));
    assert_eq!(reservations(&o), once(&["o-1"]), "{a} {b}");
    assert_eq!(
        failures(&a) + failures(&b),
        1,
        "one of them is kept: {a} {b}"
    );
    let kept = if failures(&a) == 1 { &a } else { &b };
    assert_eq!(kept["stats"]["failed"], 1, "{kept}");
    // Its retry, once the first is done, is a duplicate.
    let retry = handle(&o, &event).await;
    assert_eq!(retry["stats"]["duplicates"], 1, "{retry}");
    assert_eq!(failures(&retry), 0);
    assert_eq!(reservations(&o), once(&["o-1"]));
    assert_eq!(forwarded_ids(&o.forwarded), ["o-1"]);
}

async fn a_failed_record_runs_again_on_retry(idempotency: Idempotency) {
    let o = orders(idempotency, Warehouse::default());
    let event = batch(&["o-1"]);
    o.warehouse.set_unavailable(true);
    let failed = handle(&o, &event).await;
    assert_eq!(failures(&failed), 1, "{failed}");
    assert!(reservations(&o).is_empty());
    assert!(o.forwarded.messages().is_empty());
    o.warehouse.set_unavailable(false);
    let retried = handle(&o, &event).await;
    assert_eq!(failures(&retried), 0, "{retried}");
    assert!(retried["stats"].get("duplicates").is_none(), "{retried}");
    assert_eq!(reservations(&o), once(&["o-1"]));
    // A dropped record releases its key too: sent again (corrected or not), it runs again.
    let zero = SqsEvent::new().message(order("o-9", 0)).to_string();
    assert_eq!(handle(&o, &zero).await["stats"]["dropped"], 1);
    assert_eq!(handle(&o, &zero).await["stats"]["dropped"], 1);
    assert_eq!(forwarded_ids(&o.forwarded), ["o-1"]);
}

async fn an_expired_key_runs_again(idempotency: Idempotency) {
    let o = orders(
        idempotency.expires_after(Duration::from_secs(1)),
        Warehouse::default(),
    );
    let event = batch(&["o-1"]);
    handle(&o, &event).await;
    assert_eq!(handle(&o, &event).await["stats"]["duplicates"], 1);
    // Keys expire by the second (DynamoDB's TTL attribute is in seconds).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = handle(&o, &event).await;
    assert!(again["stats"].get("duplicates").is_none(), "{again}");
    assert_eq!(reservations(&o), vec![("o-1".to_owned(), 2)]);
    assert_eq!(forwarded_ids(&o.forwarded), ["o-1", "o-1"]);
}

async fn faults_of_the_store_fail_every_record_and_run_none(idempotency: Idempotency) {
    let o = orders(idempotency, Warehouse::default());
    let response = handle(&o, &batch(&["o-1", "o-2"])).await;
    assert_eq!(failures(&response), 2, "{response}");
    assert_eq!(response["stats"]["failed"], 2, "{response}");
    assert!(reservations(&o).is_empty());
    assert!(o.forwarded.messages().is_empty());
}

async fn stream_inserts_are_placed_once(idempotency: Idempotency) {
    let o = orders(idempotency, Warehouse::default());
    let event = DynamoDbEvent::new()
        .keys(["order_id"])
        .insert(json!({"order_id": "o-7", "item": "tray", "quantity": 3}))
        .to_string();
    let first = handle(&o, &event).await;
    assert_eq!(first["stats"]["successes"], 1, "{first}");
    assert_eq!(first["batchItemFailures"], json!([]));
    // Redelivered from the stream (a retried batch): not placed again.
    let second = handle(&o, &event).await;
    assert_eq!(second["stats"]["duplicates"], 1, "{second}");
    assert_eq!(reservations(&o), once(&["o-7"]));
    assert_eq!(forwarded_ids(&o.forwarded), ["o-7"]);
}

fn memory() -> Idempotency {
    Idempotency::new(MemoryIdempotencyStore::new())
}

#[tokio::test]
async fn memory_a_batch_handled_twice_runs_and_forwards_each_record_once() {
    a_batch_handled_twice_runs_and_forwards_each_record_once(memory()).await;
}

#[tokio::test]
async fn memory_the_same_record_at_the_same_moment_runs_once() {
    the_same_record_at_the_same_moment_runs_once(memory()).await;
}

#[tokio::test]
async fn memory_a_failed_record_runs_again_on_retry() {
    a_failed_record_runs_again_on_retry(memory()).await;
}

#[tokio::test]
async fn memory_an_expired_key_runs_again() {
    an_expired_key_runs_again(memory()).await;
}

#[tokio::test]
async fn memory_faults_of_the_store_fail_every_record_and_run_none() {
    faults_of_the_store_fail_every_record_and_run_none(Idempotency::new(DownStore::new(
        "throttled",
    )))
    .await;
}

#[tokio::test]
async fn memory_stream_inserts_are_placed_once() {
    stream_inserts_are_placed_once(memory()).await;
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dynamodb_a_batch_handled_twice_runs_and_forwards_each_record_once() {
    let (store, calls) =
        dynamodb_store("dynamodb_a_batch_handled_twice_runs_and_forwards_each_record_once").await;
    a_batch_handled_twice_runs_and_forwards_each_record_once(Idempotency::new(store)).await;
    // 4 records ran (o-1..o-4): a PutItem and an UpdateItem each; 4 duplicates: a PutItem
    // each, answered by the failed condition's item; nothing else.
    assert_eq!(calls.get("PutItem"), 8, "{calls:?}");
    assert_eq!(calls.get("UpdateItem"), 4, "{calls:?}");
    assert_eq!(calls.get("GetItem"), 0, "{calls:?}");
    assert_eq!(calls.get("DeleteItem"), 0, "{calls:?}");
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dynamodb_the_same_record_at_the_same_moment_runs_once() {
    let (store, _) = dynamodb_store("dynamodb_the_same_record_at_the_same_moment_runs_once").await;
    the_same_record_at_the_same_moment_runs_once(Idempotency::new(store)).await;
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dynamodb_a_failed_record_runs_again_on_retry() {
    let (store, calls) = dynamodb_store("dynamodb_a_failed_record_runs_again_on_retry").await;
    a_failed_record_runs_again_on_retry(Idempotency::new(store)).await;
    // The failed run and the two dropped ones deleted their in-progress items.
    assert_eq!(calls.get("DeleteItem"), 3, "{calls:?}");
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dynamodb_an_expired_key_runs_again() {
    let (store, _) = dynamodb_store("dynamodb_an_expired_key_runs_again").await;
    an_expired_key_runs_again(Idempotency::new(store)).await;
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dynamodb_faults_of_the_store_fail_every_record_and_run_none() {
    let (store, _) =
        dynamodb_store("dynamodb_faults_of_the_store_fail_every_record_and_run_none").await;
    // A table that does not exist: every PutItem fails (ResourceNotFoundException).
    let missing = DynamoDbStore::new(
        aws_sdk_dynamodb::Client::new(
            &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
        ),
        format!("{}-missing", store.table()),
    );
    faults_of_the_store_fail_every_record_and_run_none(Idempotency::new(missing)).await;
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dynamodb_extends_the_locks_in_progress_it_is_asked_to_and_no_other() {
    use lpipe::idempotency::{Claim, ClaimStatus, IdempotencyStore};
    let (store, calls) =
        dynamodb_store("dynamodb_extends_the_locks_in_progress_it_is_asked_to_and_no_other").await;
    let key = |n: u8| lpipe::idempotency::IdempotencyKey::new("orders.PLACE_ORDER", [n; 16]);
    let (a, b) = (key(1), key(2));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // A claim at `at` (ms after now) that would lock for a minute.
    let claim = |k: &lpipe::idempotency::IdempotencyKey, at: u64| {
        Claim::new(k.clone(), now + at, now + at + 60_000, now / 1000 + 3600)
    };
    let (claim_a, claim_b) = (claim(&a, 0), claim(&b, 0));
    for c in [&claim_a, &claim_b] {
        assert_eq!(store.begin(c).await.unwrap(), ClaimStatus::Started);
    }
    let held_a = claim_a.held();
    calls.reset();
    store.extend(&[&held_a], now + 600_000).await.unwrap();
    assert_eq!(
        calls.get("UpdateItem"),
        1,
        "one conditional UpdateItem a key"
    );
    // Two minutes on, `a` is still held (until its extended lock); `b`'s lock timed out.
    assert_eq!(
        store.begin(&claim(&a, 120_000)).await.unwrap(),
        ClaimStatus::InProgress {
            lock_until_ms: now + 600_000
        }
    );
    assert_eq!(
        store.begin(&claim(&b, 120_000)).await.unwrap(),
        ClaimStatus::Started
    );
    // Never shortened.
    store.extend(&[&held_a], now + 300_000).await.unwrap();
    assert_eq!(
        store.begin(&claim(&a, 400_000)).await.unwrap(),
        ClaimStatus::InProgress {
            lock_until_ms: now + 600_000
        }
    );
    // Completed, or never claimed: left alone, and no error.
    store
        .complete(&held_a, None, now / 1000 + 3600)
        .await
        .unwrap();
    let never_claimed = claim(&key(3), 0).held();
    store
        .extend(&[&held_a, &never_claimed], now + 900_000)
        .await
        .unwrap();
    assert_eq!(
        store.begin(&claim(&a, 0)).await.unwrap(),
        ClaimStatus::Completed(None)
    );
    assert_eq!(
        store.begin(&claim(&key(3), 0)).await.unwrap(),
        ClaimStatus::Started
    );
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dynamodb_stream_inserts_are_placed_once() {
    let (store, _) = dynamodb_store("dynamodb_stream_inserts_are_placed_once").await;
    stream_inserts_are_placed_once(Idempotency::new(store)).await;
}

/// With records side by side, a dead-letter queue, and the same order twice in one batch: the
/// order runs once (its second record waits for the first, in the same invocation, and is
/// answered as its duplicate), and a dropped order is dead-lettered with its key released.
#[tokio::test]
async fn memory_works_with_concurrency_the_outbox_and_the_dead_letter_queue() {
    let warehouse = Warehouse::default().with_delay(Duration::from_millis(50));
    let forwarded = MemorySink::new();
    let store = MemoryIdempotencyStore::new();
    let pipeline = place_order::pipeline(
        warehouse.clone(),
        Idempotency::new(store.clone()).key_from(["order_id"]),
    )
    .concurrency(4)
    .dead_letter_queue(lpipe::Queue::sqs("orders-dropped"))
    .record_outbound(forwarded.clone())
    .registry(lpipe::registry())
    .build()
    .unwrap();
    let event = SqsEvent::new()
        .message(order("o-1", 1))
        .message(order("o-2", 1))
        .message(order("o-1", 1))
        .message(order("o-9", 0))
        .to_string();
    let response = pipeline
        .handle(&event, lambda_context(30_000))
        .await
        .unwrap();
    assert_eq!(
        response["stats"],
        json!({"received": 4, "successes": 3, "dropped": 1, "failed": 0, "duplicates": 1}),
        "{response}"
    );
    let o = Orders {
        pipeline,
        warehouse,
        forwarded,
    };
    assert_eq!(reservations(&o), once(&["o-1", "o-2"]));
    let queues: Vec<String> = o
        .forwarded
        .messages()
        .iter()
        .map(|m| m.queue.target().to_owned())
        .collect();
    assert_eq!(queues.iter().filter(|q| *q == "orders-dropped").count(), 1);
    // Only the two placed orders hold completed keys; the dropped one released its key.
    let items = store.items();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items
        .values()
        .all(|i| matches!(i, lpipe::idempotency::MemoryItem::Completed { .. })));
    // A later delivery is a duplicate.
    let retry = handle(&o, &batch(&["o-1"])).await;
    assert_eq!(retry["stats"]["duplicates"], 1, "{retry}");
    assert_eq!(reservations(&o), once(&["o-1", "o-2"]));
}

/// A record whose forwarded message cannot be delivered fails, and its key is released, not
/// completed: its retry runs it again (the effects before the forward happen again: a record
/// is done when its messages are delivered).
#[tokio::test]
async fn memory_an_undeliverable_record_releases_its_key() {
    let store = MemoryIdempotencyStore::new();
    let o = orders(Idempotency::new(store.clone()), Warehouse::default());
    // Its first send fails for good (not a throttle: no retry within the invocation).
    o.forwarded.fail_bodies_containing_times("o-2", false, 1);
    let response = handle(&o, &batch(&["o-1", "o-2"])).await;
    assert_eq!(failures(&response), 1, "{response}");
    assert_eq!(
        store.items().len(),
        1,
        "only o-1 completed: {:?}",
        store.items()
    );
    let retry = handle(&o, &batch(&["o-2"])).await;
    assert_eq!(failures(&retry), 0, "{retry}");
    assert!(retry["stats"].get("duplicates").is_none(), "{retry}");
    assert_eq!(
        reservations(&o),
        vec![("o-1".to_owned(), 1), ("o-2".to_owned(), 2)]
    );
    assert_eq!(forwarded_ids(&o.forwarded), ["o-1", "o-2"]);
}

/// A run whose lock lapsed and whose key another run took over settles late: its release and
/// its completion are refused as lost, and the new run's item stays as it is.
#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn dynamodb_a_lapsed_runs_release_leaves_the_new_owners_item() {
    use lpipe::idempotency::{Claim, ClaimStatus, IdempotencyStore, StoreError};
    let (store, _) =
        dynamodb_store("dynamodb_a_lapsed_runs_release_leaves_the_new_owners_item").await;
    let key = lpipe::idempotency::IdempotencyKey::new("orders.PLACE_ORDER", [9; 16]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let old = Claim::new(key.clone(), now, now + 1_000, now / 1000 + 3600);
    assert_eq!(store.begin(&old).await.unwrap(), ClaimStatus::Started);
    // Two seconds on the old run's lock has timed out: a new run takes the key over.
    let new = Claim::new(key.clone(), now + 2_000, now + 60_000, now / 1000 + 3600);
    assert_eq!(store.begin(&new).await.unwrap(), ClaimStatus::Started);
    // The old run finishes and settles: refused, told so.
    assert!(matches!(
        store.release(&old.held()).await,
        Err(StoreError::Lost { .. })
    ));
    assert!(matches!(
        store.complete(&old.held(), None, now / 1000 + 3600).await,
        Err(StoreError::Lost { .. })
    ));
    assert!(matches!(
        store.extend(&[&old.held()], now + 900_000).await,
        Err(StoreError::Lost { .. })
    ));
    // The new run's item is in place, its lock as it claimed it.
    let later = Claim::new(key.clone(), now + 3_000, now + 63_000, now / 1000 + 3600);
    assert_eq!(
        store.begin(&later).await.unwrap(),
        ClaimStatus::InProgress {
            lock_until_ms: now + 60_000
        }
    );
    // The new run completes it as its own.
    store
        .complete(&new.held(), None, now / 1000 + 3600)
        .await
        .unwrap();
    assert_eq!(
        store.begin(&later).await.unwrap(),
        ClaimStatus::Completed(None)
    );
}

/// On a FIFO source, a duplicate in one group of a record of another group that fails at
/// delivery fails with it, and holds back the later records of its own group, in a batch that
/// has messages to deliver as in one that has none.
#[tokio::test]
async fn memory_a_failed_duplicate_holds_back_the_rest_of_its_group() {
    let o = orders(
        Idempotency::new(MemoryIdempotencyStore::new()),
        Warehouse::default(),
    );
    // o-1's message is refused for good: its record fails at delivery.
    o.forwarded.fail_bodies_containing("\"o-1\"", false);
    let event = lpipe::testing::SqsEvent::fifo()
        .record(
            lpipe::testing::SqsRecord::new(order("o-1", 1))
                .id("m-0")
                .group("A"),
        )
        .record(
            lpipe::testing::SqsRecord::new(order("o-1", 1))
                .id("m-1")
                .group("B"),
        )
        .record(
            lpipe::testing::SqsRecord::new(order("o-2", 1))
                .id("m-2")
                .group("B"),
        )
        .to_string();
    let response = handle(&o, &event).await;
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]),
        "{response}"
    );
}
