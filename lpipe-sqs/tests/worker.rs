//! The worker against moto_server: records it keeps come back as the queue says, or, with
//! backoff, later and later as their receive count grows; a FIFO group's later records wait
//! for a failed one; a shutdown stops it cleanly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lpipe_core::idempotency::MemoryItem;
use lpipe_core::testing::{message, moto_endpoint, unique_name};
use lpipe_core::{
    idempotency::MemoryIdempotencyStore, registry::Registry, Action, Context, FailCatastrophically,
    Idempotency, NoParams, Pipeline,
};
use lpipe_sqs::worker::{self, WorkerOptions};
use lpipe_sqs::{Backoff, SqsSource};

type Calls = Arc<Mutex<Vec<(Instant, u32)>>>;

/// Notes that a record ran now, with its receive count.
fn note_run(calls: &Calls, ctx: &Context) {
    let count = ctx
        .record()
        .sqs()
        .and_then(|m| m.receive_count)
        .unwrap_or(0);
    calls.lock().unwrap().push((Instant::now(), count));
}

/// A pipeline whose one path always keeps its record, noting when and with which receive
/// count it ran.
fn failing(calls: &Calls, source: SqsSource) -> Pipeline {
    let calls = calls.clone();
    let keep = move |_: NoParams, ctx: Context| {
        let calls = calls.clone();
        async move {
            note_run(&calls, &ctx);
            Err::<(), _>(FailCatastrophically::new("kept for the test"))
        }
    };
    Pipeline::builder()
        .path("KEEP", [Action::new().function(keep)])
        .registry(Registry::from_inventory().with_source(Arc::new(source)))
        .build()
        .unwrap()
}

async fn client() -> aws_sdk_sqs::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_sqs::Client::new(&config)
}

/// The messages a receive finds in the queue now.
async fn visible(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    client
        .receive_message()
        .queue_url(url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

/// A queue with this visibility timeout (seconds) holding one message for `path`; its URL.
async fn queue_with_one_message(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout: &str,
    path: &str,
) -> String {
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            visibility_timeout,
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    client
        .send_message()
        .queue_url(&url)
        .message_body(message(path, serde_json::json!({})).to_string())
        .send()
        .await
        .unwrap();
    url
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test(flavor = "multi_thread")]
async fn with_backoff_a_failing_record_comes_back_later_and_later() {
    moto_endpoint("with_backoff_a_failing_record_comes_back_later_and_later");
    let client = client().await;
    let name = unique_name("backoff");
    // A queue whose own visibility timeout (30 s) would bring the record back far later.
    queue_with_one_message(&client, &name, "30", "KEEP").await;
    let calls = Calls::default();
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
    let pipeline = failing(
        &calls,
        SqsSource::new()
            .with_backoff(backoff)
            .with_client(client.clone()),
    );
    let mut options = WorkerOptions::new(&name);
    options.wait_seconds = 1;
    let watched = calls.clone();
    let shutdown = async move {
        let started = Instant::now();
        while watched.lock().unwrap().len() < 4 && started.elapsed() < Duration::from_secs(40) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let stats = worker::run(pipeline, client, options, shutdown)
        .await
        .unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4, "ran 4 times within 40 s: {calls:?}");
    let counts: Vec<u32> = calls.iter().map(|c| c.1).collect();
    assert_eq!(counts, [1, 2, 3, 4], "one receive each");
    // The gaps follow 1, 2, 4 s (jittered down to half), plus a receive's wait; never the
    // queue's 30 s.
    let gaps: Vec<f64> = calls
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64())
        .collect();
    for (gap, ceiling) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            *gap >= ceiling / 2.0 - 0.6 && *gap <= ceiling + 2.5,
            "gap {gap:.2} s for a ceiling of {ceiling} s: {gaps:?}"
        );
    }
    assert!(gaps[2] > gaps[0], "the gaps grow: {gaps:?}");
    assert_eq!(
        (stats.received, stats.deleted, stats.left),
        (4, 0, 4),
        "{stats:?}"
    );
    println!("backoff gaps: {gaps:.2?}");
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_queue_stops_the_worker_with_its_name() {
    moto_endpoint("a_missing_queue_stops_the_worker_with_its_name");
    let calls = Calls::default();
    let name = unique_name("missing");
    let err = worker::run(
        failing(&calls, SqsSource::new()),
        client().await,
        WorkerOptions::new(&name),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    lpipe_core::testing::assert_contains(err.to_string(), &name);
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_record_is_not_delivered_again_while_it_runs() {
    moto_endpoint("a_slow_record_is_not_delivered_again_while_it_runs");
    let client = client().await;
    let name = unique_name("slow");
    // Visibility 2 s; the record takes 5 s. Without the worker's heartbeats it would be
    // received again after 2 s, by the second batch in flight.
    let url = queue_with_one_message(&client, &name, "2", "SLOW").await;
    let runs = Calls::default();
    let slow = {
        let runs = runs.clone();
        move |_: NoParams, ctx: Context| {
            let runs = runs.clone();
            async move {
                note_run(&runs, &ctx);
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<(), lpipe_core::BoxError>(())
            }
        }
    };
    let pipeline = Pipeline::builder()
        .path("SLOW", [Action::new().function(slow)])
        .registry(Registry::from_inventory())
        .build()
        .unwrap();
    let mut options = WorkerOptions::new(&name);
    options.wait_seconds = 1;
    options.in_flight = 2;
    let stats = worker::run(
        pipeline,
        client.clone(),
        options,
        tokio::time::sleep(Duration::from_secs(9)),
    )
    .await
    .unwrap();
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1, "ran once: {runs:?}");
    assert_eq!((stats.received, stats.deleted), (1, 1), "{stats:?}");
    let left = visible(&client, &url).await;
    assert!(left.is_empty(), "deleted once done: {left:?}");
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_records_idempotency_lock_is_extended_with_its_messages() {
    moto_endpoint("a_slow_records_idempotency_lock_is_extended_with_its_messages");
    let client = client().await;
    let name = unique_name("slow-lock");
    // Visibility 3 s: heartbeats every second. The record's lock is claimed for 1 s, and it
    // runs for 3.5 s; at its end the lock must still hold (extended to 3 s past the last
    // heartbeat), or a duplicate of it could run beside it.
    queue_with_one_message(&client, &name, "3", "SLOW").await;
    let store = MemoryIdempotencyStore::new();
    let seen: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let slow = {
        let (store, seen) = (store.clone(), seen.clone());
        move |_: NoParams| {
            let (store, seen) = (store.clone(), seen.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(3500)).await;
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                for item in store.items().into_values() {
                    if let MemoryItem::InProgress { lock_until_ms, .. } = item {
                        seen.lock().unwrap().push((now_ms, lock_until_ms));
                    }
                }
                Ok::<(), lpipe_core::BoxError>(())
            }
        }
    };
    let pipeline = Pipeline::builder()
        .path("SLOW", [Action::new().function(slow)])
        .idempotent(Idempotency::new(store.clone()).lock_timeout(Duration::from_secs(1)))
        .registry(Registry::from_inventory())
        .build()
        .unwrap();
    let mut options = WorkerOptions::new(&name);
    options.wait_seconds = 1;
    let stats = worker::run(
        pipeline,
        client.clone(),
        options,
        tokio::time::sleep(Duration::from_secs(6)),
    )
    .await
    .unwrap();
    assert_eq!((stats.received, stats.deleted), (1, 1), "{stats:?}");
    let seen = seen.lock().unwrap().clone();
    let [(now_ms, lock_until_ms)] = seen[..] else {
        panic!("one key in progress at the record's end: {seen:?}")
    };
    assert!(
        lock_until_ms > now_ms,
        "the lock holds at the record's end: until {lock_until_ms}, now {now_ms}"
    );
    // Once done, the key is completed.
    assert!(matches!(
        store.items().into_values().next(),
        Some(MemoryItem::Completed { .. })
    ));
}

/// The FIFO test's runs: (group, n, receive count, succeeded).
type Runs = Arc<Mutex<Vec<(String, u32, u32, bool)>>>;

/// One record of the FIFO test: which group, which message of it.
#[derive(serde::Deserialize)]
struct Step {
    group: String,
    n: u32,
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_queue_keeps_group_order_when_a_record_fails() {
    moto_endpoint("a_fifo_queue_keeps_group_order_when_a_record_fails");
    let client = client().await;
    let name = format!("{}.fifo", unique_name("fifo"));
    use aws_sdk_sqs::types::QueueAttributeName as Attr;
    let url = client
        .create_queue()
        .queue_name(&name)
        .attributes(Attr::FifoQueue, "true")
        .attributes(Attr::ContentBasedDeduplication, "true")
        .attributes(Attr::VisibilityTimeout, "2")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for (group, n) in [("A", 1), ("A", 2), ("B", 1)] {
        client
            .send_message()
            .queue_url(&url)
            .message_group_id(group)
            .message_body(message("STEP", serde_json::json!({"group": group, "n": n})).to_string())
            .send()
            .await
            .unwrap();
    }
    // A1 fails on its first delivery.
    let runs = Runs::default();
    let step = {
        let runs = runs.clone();
        move |s: Step, ctx: Context| {
            let runs = runs.clone();
            async move {
                let count = ctx
                    .record()
                    .sqs()
                    .and_then(|m| m.receive_count)
                    .unwrap_or(0);
                let fail = s.group == "A" && s.n == 1 && count == 1;
                runs.lock().unwrap().push((s.group, s.n, count, !fail));
                if fail {
                    return Err(FailCatastrophically::new("A1 fails once").into());
                }
                Ok::<(), lpipe_core::BoxError>(())
            }
        }
    };
    let pipeline = Pipeline::builder()
        .path("STEP", [Action::new().function(step)])
        .registry(Registry::from_inventory())
        .build()
        .unwrap();
    let mut options = WorkerOptions::new(&name);
    options.wait_seconds = 1;
    let watched = runs.clone();
    let shutdown = async move {
        let started = Instant::now();
        while watched.lock().unwrap().iter().filter(|r| r.3).count() < 3
            && started.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let stats = worker::run(pipeline, client.clone(), options, shutdown)
        .await
        .unwrap();
    let runs = runs.lock().unwrap().clone();
    let succeeded: Vec<(&str, u32)> = runs
        .iter()
        .filter(|r| r.3)
        .map(|r| (r.0.as_str(), r.1))
        .collect();
    assert_eq!(
        succeeded.len(),
        3,
        "every message ran once to success: {runs:?}"
    );
    // The first receive brings all three (one batch): A1 fails, so A2, after it in its
    // group, is not run but kept with it; B is not held back by A.
    let first: Vec<(&str, u32, bool)> = runs
        .iter()
        .filter(|r| r.2 == 1)
        .map(|r| (r.0.as_str(), r.1, r.3))
        .collect();
    assert_eq!(first, [("A", 1, false), ("B", 1, true)], "{runs:?}");
    // Both A messages come back and run once each. Their order on redelivery is the queue's
    // to keep; moto 5.2.5 does not keep it (of a group's messages that time out together it
    // delivers the last first), so it is not asserted here.
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert_eq!((stats.received, stats.deleted), (5, 3), "{stats:?}");
    let left = visible(&client, &url).await;
    assert!(left.is_empty(), "all deleted: {left:?}");
}

/// A batch still running when the grace period runs out is abandoned, and the worker's stats
/// count its messages (they are not deleted: they reappear).
#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_abandoned_at_the_grace_period_is_counted() {
    moto_endpoint("a_batch_abandoned_at_the_grace_period_is_counted");
    let client = client().await;
    let name = unique_name("abandoned");
    let url = queue_with_one_message(&client, &name, "2", "SLOW").await;
    let slow = |_: NoParams| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<(), lpipe_core::BoxError>(())
    };
    let pipeline = Pipeline::builder()
        .path("SLOW", [Action::new().function(slow)])
        .registry(Registry::from_inventory())
        .build()
        .unwrap();
    let mut options = WorkerOptions::new(&name);
    options.wait_seconds = 1;
    options.grace = Duration::from_secs(1);
    let stats = worker::run(
        pipeline,
        client.clone(),
        options,
        tokio::time::sleep(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    assert_eq!(
        (stats.received, stats.deleted, stats.abandoned),
        (1, 0, 1),
        "{stats:?}"
    );
    // Not deleted: it comes back once its visibility timeout (kept up by the heartbeat until
    // the batch was abandoned) runs out.
    let mut back = Vec::new();
    for _ in 0..20 {
        back = visible(&client, &url).await;
        if !back.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(back.len(), 1, "the abandoned message reappears");
}
