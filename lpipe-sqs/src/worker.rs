//! The SQS worker: the same pipeline as under Lambda, consuming a queue itself with the
//! semantics of Lambda's event source mapping.
//!
//! - Long-polling `ReceiveMessage` (up to 10 messages, every attribute and message attribute);
//!   each batch becomes the SQS event Lambda would send and goes through the pipeline's
//!   [`SqsSource`](crate::SqsSource) and dispatcher, as under Lambda.
//! - Successes and dropped records are deleted (`DeleteMessageBatch`); failed and not-started
//!   ones are left to reappear after their visibility timeout, and so reach the queue's
//!   redrive dead-letter queue after its `maxReceiveCount`. FIFO queues keep group order.
//! - While a batch runs, its messages are kept invisible (`ChangeMessageVisibilityBatch` every
//!   third of the visibility timeout), so a slow record is not delivered twice while it runs;
//!   no record starts after the visibility timeout (at least 30 s) from the batch's receipt
//!   (the batch's deadline). The same heartbeats extend the locks of the idempotency keys its
//!   records hold (to a visibility timeout from each heartbeat, `HeldKeys::extend_locks`), so
//!   a duplicate of a record still running past the deadline does not run beside it.
//! - Up to `in_flight` batches at once, each of at most `batch_size` messages: never more than
//!   their product held.
//! - On shutdown (SIGTERM or SIGINT from [`run_until_signal`]): no new receive; the batches in
//!   flight finish and are acknowledged within the grace period. A message not finished is
//!   never deleted: it reappears.
//! - Faults of SQS itself (throttling, 5xx, dropped connections, failed delete entries) are
//!   retried with backoff and logged; the worker keeps going. A delete that finally fails
//!   means the message is delivered again: it is logged and counted
//!   ([`WorkerStats::undeleted`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use lpipe_core::{HeldKeys, Pipeline};
use serde_json::{json, Map, Value};

/// How a worker consumes its queue (the `worker` subcommand's flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerOptions {
    /// The queue: its name or URL.
    pub queue: String,
    /// Messages per receive, 1 to 10 (`--batch-size`, default 10).
    pub batch_size: i32,
    /// Long-poll wait of a receive, 0 to 20 seconds (`--wait-seconds`, default 20).
    pub wait_seconds: i32,
    /// The visibility timeout of received messages (`--visibility-timeout`); the queue's own
    /// when not set.
    pub visibility_timeout: Option<i32>,
    /// Batches in flight at once (`--in-flight`, default 1).
    pub in_flight: usize,
    /// How long batches in flight have to finish after a shutdown signal (`--grace-seconds`,
    /// default 25: ECS and Kubernetes wait 30 before they kill).
    pub grace: Duration,
    /// Create the queue (by name; CreateQueue returns an existing one as it is) instead of
    /// only looking it up (`--create-queue`): for local runs.
    pub create_queue: bool,
}

impl WorkerOptions {
    /// The defaults, for this queue.
    pub fn new(queue: impl Into<String>) -> Self {
        WorkerOptions {
            queue: queue.into(),
            batch_size: 10,
            wait_seconds: 20,
            visibility_timeout: None,
            in_flight: 1,
            grace: Duration::from_secs(25),
            create_queue: false,
        }
    }

    /// Options from the arguments after `worker` (`--queue NAME_OR_URL [--batch-size N]
    /// [--wait-seconds S] [--visibility-timeout S] [--in-flight B] [--concurrency N]
    /// [--grace-seconds S] [--create-queue]`); also returns `--concurrency`, which the
    /// pipeline takes.
    ///
    /// # Errors
    ///
    /// A message naming the flag that is missing, unknown or out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_sqs::worker::WorkerOptions;
    /// let args = ["--queue", "signups", "--in-flight", "4", "--concurrency", "8"];
    /// let (opts, concurrency) = WorkerOptions::from_args(args.map(String::from)).unwrap();
    /// assert_eq!((opts.queue.as_str(), opts.in_flight, concurrency), ("signups", 4, Some(8)));
    /// assert!(WorkerOptions::from_args(["--batch-size", "11"].map(String::from)).is_err());
    /// ```
    pub fn from_args(
        args: impl IntoIterator<Item = String>,
    ) -> Result<(WorkerOptions, Option<usize>), String> {
        let mut opts = WorkerOptions::new("");
        let mut concurrency = None;
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--create-queue" {
                opts.create_queue = true;
                continue;
            }
            let value = args.next();
            let number =
                |range: std::ops::RangeInclusive<i64>| number(&flag, value.as_deref(), range);
            match flag.as_str() {
                "--queue" => {
                    opts.queue = value.ok_or("--queue needs a queue name or URL")?;
                }
                "--batch-size" => opts.batch_size = number(1..=10)? as i32,
                "--wait-seconds" => opts.wait_seconds = number(0..=20)? as i32,
                "--visibility-timeout" => {
                    opts.visibility_timeout = Some(number(1..=43_200)? as i32)
                }
                "--in-flight" => opts.in_flight = number(1..=1000)? as usize,
                "--concurrency" => concurrency = Some(number(1..=10_000)? as usize),
                "--grace-seconds" => opts.grace = Duration::from_secs(number(0..=3600)? as u64),
                other => return Err(format!("unknown worker option {other}")),
            }
        }
        if opts.queue.is_empty() {
            return Err("the worker needs --queue NAME_OR_URL".to_owned());
        }
        Ok((opts, concurrency))
    }
}

/// A flag's numeric value, in range.
fn number(
    flag: &str,
    value: Option<&str>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, String> {
    let v = value.ok_or_else(|| format!("{flag} needs a value"))?;
    let n: i64 = v
        .parse()
        .map_err(|_| format!("{flag} takes a number, not {v:?}"))?;
    if !range.contains(&n) {
        return Err(format!(
            "{flag} must be from {} to {}, not {n}",
            range.start(),
            range.end()
        ));
    }
    Ok(n)
}

/// What a worker did, for its final log line and for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Batches handled.
    pub batches: u64,
    /// Messages received.
    pub received: u64,
    /// Messages deleted (successes and dropped records).
    pub deleted: u64,
    /// Messages left to reappear (failed or not started records, or a batch that failed).
    pub left: u64,
    /// Messages acknowledged whose delete finally failed: they will be delivered again.
    pub undeleted: u64,
    /// SQS calls that failed and were retried.
    pub retried_calls: u64,
    /// Messages of the batches still running when the grace period ran out, abandoned: not
    /// deleted, they reappear after their visibility timeout (and run again).
    pub abandoned: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    received: AtomicU64,
    deleted: AtomicU64,
    left: AtomicU64,
    undeleted: AtomicU64,
    retried_calls: AtomicU64,
    /// Messages of the batches running now.
    in_flight: AtomicU64,
    abandoned: AtomicU64,
}

impl Counters {
    fn stats(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            batches: get(&self.batches),
            received: get(&self.received),
            deleted: get(&self.deleted),
            left: get(&self.left),
            undeleted: get(&self.undeleted),
            retried_calls: get(&self.retried_calls),
            abandoned: get(&self.abandoned),
        }
    }
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
#[error("the SQS worker cannot start: {0}")]
pub struct WorkerError(String);

/// The queue as the worker sees it.
struct QueueInfo {
    url: String,
    arn: String,
    region: String,
    visibility_timeout: i32,
}

/// What the batches of one worker share.
struct Shared {
    pipeline: Pipeline,
    client: aws_sdk_sqs::Client,
    queue: QueueInfo,
    options: WorkerOptions,
    counters: Counters,
    stopping: AtomicBool,
    stop: tokio::sync::Notify,
    /// The function's configuration, as Lambda would give it (read once at start).
    config: Arc<lpipe_core::lambda_runtime::Config>,
}

/// Runs a worker on the queue until SIGTERM or SIGINT, then lets the batches in flight finish
/// within the grace period; returns what it did.
///
/// # Errors
///
/// [`WorkerError`] when the queue cannot be found or read at start.
pub async fn run_until_signal(
    pipeline: Pipeline,
    client: aws_sdk_sqs::Client,
    options: WorkerOptions,
) -> Result<WorkerStats, WorkerError> {
    run(pipeline, client, options, shutdown_signal()).await
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing the batches in flight"),
            _ = int.recv() => tracing::info!("SIGINT: finishing the batches in flight"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs a worker on the queue until `shutdown` completes, then lets the batches in flight
/// finish within the grace period; returns what it did.
///
/// # Errors
///
/// [`WorkerError`] when the queue cannot be found or read at start.
pub async fn run(
    pipeline: Pipeline,
    client: aws_sdk_sqs::Client,
    options: WorkerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<WorkerStats, WorkerError> {
    let queue = queue_info(&client, &options).await?;
    let config = Arc::new(lpipe_core::lambda_config_from_env());
    tracing::info!(
        queue = %queue.url,
        function_name = %config.function_name,
        batch_size = options.batch_size,
        in_flight = options.in_flight,
        visibility_timeout_s = queue.visibility_timeout,
        "SQS worker started"
    );
    let shared = Arc::new(Shared {
        pipeline,
        client,
        queue,
        options,
        counters: Counters::default(),
        stopping: AtomicBool::new(false),
        stop: tokio::sync::Notify::new(),
        config,
    });
    let mut pollers = tokio::task::JoinSet::new();
    for n in 0..shared.options.in_flight {
        pollers.spawn(poll(shared.clone(), n));
    }
    shutdown.await;
    shared.stopping.store(true, Ordering::SeqCst);
    shared.stop.notify_waiters();
    let grace = shared.options.grace;
    let finished = tokio::time::timeout(grace, async {
        while pollers.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        pollers.abort_all();
        while pollers.join_next().await.is_some() {}
        let abandoned = shared.counters.in_flight.swap(0, Ordering::SeqCst);
        shared
            .counters
            .abandoned
            .fetch_add(abandoned, Ordering::SeqCst);
        tracing::warn!(
            grace_s = grace.as_secs(),
            abandoned,
            "batches still running after the grace period are abandoned: their {abandoned} messages are not deleted, and reappear after their visibility timeout"
        );
    }
    let stats = shared.counters.stats();
    tracing::info!(?stats, "SQS worker stopped");
    Ok(stats)
}

async fn queue_info(
    client: &aws_sdk_sqs::Client,
    options: &WorkerOptions,
) -> Result<QueueInfo, WorkerError> {
    let url = if options.queue.starts_with("https://") || options.queue.starts_with("http://") {
        options.queue.clone()
    } else if options.create_queue {
        let mut create = client.create_queue().queue_name(&options.queue);
        if options.queue.ends_with(".fifo") {
            create = create.attributes(QueueAttributeName::FifoQueue, "true");
        }
        with_retries("CreateQueue", || create.clone().send())
            .await
            .map_err(|e| WorkerError(format!("queue {}: {e}", options.queue)))?
            .queue_url
            .ok_or_else(|| {
                WorkerError(format!(
                    "queue {}: CreateQueue returned no URL",
                    options.queue
                ))
            })?
    } else {
        with_retries("GetQueueUrl", || {
            client.get_queue_url().queue_name(&options.queue).send()
        })
        .await
        .map_err(|e| WorkerError(format!("queue {}: {e}", options.queue)))?
        .queue_url
        .ok_or_else(|| {
            WorkerError(format!(
                "queue {}: GetQueueUrl returned no URL",
                options.queue
            ))
        })?
    };
    let attributes = with_retries("GetQueueAttributes", || {
        client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
    })
    .await
    .map_err(|e| WorkerError(format!("queue {url}: {e}")))?;
    let attributes = attributes.attributes.unwrap_or_default();
    let arn = attributes
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .unwrap_or_default();
    let region = arn.split(':').nth(3).unwrap_or_default().to_owned();
    let visibility_timeout = match options.visibility_timeout {
        Some(v) => v,
        None => attributes
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    };
    Ok(QueueInfo {
        url,
        arn,
        region,
        visibility_timeout,
    })
}

/// Backoff before the `attempt`th retry (from 1): 100 ms doubling to 5 s, jittered (half to
/// all of it).
fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6)))
        .min(Duration::from_secs(5));
    cap.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

/// Calls an SQS operation up to 5 times, with backoff, while it fails.
async fn with_retries<T, E, F, Fut>(what: &str, mut call: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, aws_sdk_sqs::error::SdkError<E>>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 4 => {
                attempt += 1;
                tracing::warn!(
                    attempt,
                    "{what} failed, retrying: {}",
                    DisplayErrorContext(&e)
                );
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(format!("{what}: {}", DisplayErrorContext(&e))),
        }
    }
}

/// One of the worker's `in_flight` loops: receive a batch, handle it, acknowledge it; until
/// the worker stops.
async fn poll(shared: Arc<Shared>, poller: usize) {
    let mut failures = 0u32;
    loop {
        // Registered before the flag is read, so that a shutdown between the two is not
        // missed.
        let stop = shared.stop.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let receive = shared
            .client
            .receive_message()
            .queue_url(&shared.queue.url)
            .max_number_of_messages(shared.options.batch_size)
            .wait_time_seconds(shared.options.wait_seconds)
            .visibility_timeout(shared.queue.visibility_timeout)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        // A shutdown abandons a receive in progress: what it would have returned stays
        // invisible until its timeout, then reappears.
        let received = tokio::select! {
            r = receive => r,
            _ = stop => break,
        };
        let received_at = Instant::now();
        let messages = match received {
            Ok(out) => {
                failures = 0;
                out.messages.unwrap_or_default()
            }
            Err(e) => {
                failures += 1;
                shared
                    .counters
                    .retried_calls
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    poller,
                    "ReceiveMessage failed, retrying: {}",
                    DisplayErrorContext(&e)
                );
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        handle_batch(&shared, messages, received_at).await;
    }
}

/// Handles one received batch as Lambda would, keeps its messages invisible while it runs,
/// and deletes the acknowledged ones.
async fn handle_batch(shared: &Arc<Shared>, messages: Vec<Message>, received_at: Instant) {
    let counters = &shared.counters;
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .received
        .fetch_add(messages.len() as u64, Ordering::Relaxed);
    counters
        .in_flight
        .fetch_add(messages.len() as u64, Ordering::SeqCst);
    let event = lambda_event(&messages, &shared.queue);
    let visibility = Duration::from_secs(shared.queue.visibility_timeout.max(1) as u64);
    let handles: Vec<(String, String)> = messages
        .iter()
        .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
        .collect();
    let held = HeldKeys::new();
    // Stopped when the batch is done, and when it is abandoned at the grace period (the
    // batch's future is dropped): its messages must then reappear.
    let heartbeat = AbortOnDrop(tokio::spawn(keep_invisible(
        shared.clone(),
        handles.clone(),
        held.clone(),
    )));
    let context = lambda_context(&shared.config, received_at, visibility);
    let response = shared.pipeline.handle_holding(&event, context, &held).await;
    drop(heartbeat);
    let acknowledged: Vec<&(String, String)> = match &response {
        Ok(response) => {
            let failed: Vec<&str> = response["batchItemFailures"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|f| f["itemIdentifier"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            handles
                .iter()
                .filter(|(id, _)| !failed.contains(&id.as_str()))
                .collect()
        }
        Err(e) => {
            tracing::error!(
                error_type = %e.error_type,
                "the batch failed as a whole; its messages reappear: {}",
                e.error_message
            );
            Vec::new()
        }
    };
    counters.left.fetch_add(
        (handles.len() - acknowledged.len()) as u64,
        Ordering::Relaxed,
    );
    delete(shared, &acknowledged).await;
    counters
        .in_flight
        .fetch_sub(messages.len() as u64, Ordering::SeqCst);
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The least time a batch has, whatever the visibility timeout: its heartbeats keep its
/// messages invisible meanwhile.
const MIN_BATCH_TIME: Duration = Duration::from_secs(30);

/// The Lambda context of a batch: the function's configuration as Lambda would give it (read
/// once from the environment, see [`lpipe_core::lambda_config_from_env`]: idempotency keys are
/// namespaced by its function name, as under Lambda), and a deadline of the visibility timeout
/// (at least [`MIN_BATCH_TIME`]) from its receipt.
fn lambda_context(
    config: &Arc<lpipe_core::lambda_runtime::Config>,
    received_at: Instant,
    visibility: Duration,
) -> lpipe_core::lambda_runtime::Context {
    let now_ms = now_ms();
    let left = visibility
        .max(MIN_BATCH_TIME)
        .saturating_sub(received_at.elapsed());
    let mut context = lpipe_core::lambda_runtime::Context::default();
    context.env_config = config.clone();
    context.request_id = format!("worker-{now_ms}-{}", std::process::id());
    context.deadline = now_ms + left.as_millis() as u64;
    context
}

/// Now, in Unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Extends the messages' visibility every third of the timeout, and the locks of the
/// idempotency keys the batch's records hold as far, until aborted.
async fn keep_invisible(shared: Arc<Shared>, handles: Vec<(String, String)>, held: HeldKeys) {
    let (client, url) = (&shared.client, &shared.queue.url);
    let visibility_timeout = shared.queue.visibility_timeout;
    let visibility_ms = visibility_timeout.max(1) as u64 * 1000;
    let every = Duration::from_millis(visibility_ms / 3);
    loop {
        tokio::time::sleep(every).await;
        for chunk in handles.chunks(10) {
            let entries = crate::acks::visibility_entries(
                chunk
                    .iter()
                    .map(|(_, handle)| (handle.as_str(), visibility_timeout)),
            );
            let out = with_retries("ChangeMessageVisibilityBatch", || {
                client
                    .change_message_visibility_batch()
                    .queue_url(url)
                    .set_entries(Some(entries.clone()))
                    .send()
            })
            .await;
            match out {
                Ok(out) if !out.failed.is_empty() => tracing::warn!(
                    failed = out.failed.len(),
                    "the visibility of some messages of a running batch could not be extended: they may be delivered again while they run"
                ),
                Ok(_) => tracing::debug!(messages = chunk.len(), "visibility extended"),
                Err(e) => tracing::warn!(
                    "{e}; the batch's messages may be delivered again while they run"
                ),
            }
        }
        if held.is_empty() {
            continue;
        }
        match held.extend_locks(now_ms() + visibility_ms).await {
            Ok(()) => tracing::debug!(keys = held.len(), "idempotency locks extended"),
            Err(e) => tracing::warn!(
                "{e}; a duplicate of a record still running may run beside it once they time out"
            ),
        }
    }
}

/// Deletes acknowledged messages, 10 a call, retrying failed calls and failed entries.
async fn delete(shared: &Shared, acknowledged: &[&(String, String)]) {
    let counters = &shared.counters;
    for chunk in acknowledged.chunks(10) {
        let mut pending: Vec<(usize, &str)> = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, handle))| (i, handle.as_str()))
            .collect();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let entries = crate::acks::delete_entries(pending.iter().copied());
            let out = shared
                .client
                .delete_message_batch()
                .queue_url(&shared.queue.url)
                .set_entries(Some(entries))
                .send()
                .await;
            let failed: Vec<(usize, String)> = match out {
                Ok(out) => {
                    let failed: HashMap<String, String> =
                        out.failed.into_iter().map(|f| (f.id, f.code)).collect();
                    let done = pending.len() - failed.len();
                    counters.deleted.fetch_add(done as u64, Ordering::Relaxed);
                    pending.retain(|(i, _)| failed.contains_key(&i.to_string()));
                    failed
                        .into_iter()
                        .filter_map(|(id, code)| Some((id.parse().ok()?, code)))
                        .collect()
                }
                Err(e) => {
                    let why = DisplayErrorContext(&e).to_string();
                    pending.iter().map(|(i, _)| (*i, why.clone())).collect()
                }
            };
            if pending.is_empty() {
                break;
            }
            attempt += 1;
            counters.retried_calls.fetch_add(1, Ordering::Relaxed);
            if attempt > 5 {
                counters
                    .undeleted
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                for (i, why) in &failed {
                    tracing::error!(
                        message_id = %chunk[*i].0,
                        "an acknowledged message could not be deleted ({why}): it will be delivered again"
                    );
                }
                break;
            }
            tracing::warn!(
                attempt,
                failed = pending.len(),
                "DeleteMessageBatch failed for some messages, retrying"
            );
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// The SQS event Lambda's event source mapping would send for these messages.
fn lambda_event(messages: &[Message], queue: &QueueInfo) -> String {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect();
            let message_attributes: Map<String, Value> = m
                .message_attributes
                .iter()
                .flatten()
                .map(|(name, v)| {
                    let mut a = json!({
                        "dataType": v.data_type,
                        "stringListValues": [],
                        "binaryListValues": [],
                    });
                    if let Some(s) = &v.string_value {
                        a["stringValue"] = json!(s);
                    }
                    if let Some(b) = &v.binary_value {
                        use base64::Engine;
                        a["binaryValue"] =
                            json!(base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
                    }
                    (name.clone(), a)
                })
                .collect();
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body.clone().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue.arn,
                "awsRegion": queue.region,
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}
