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

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use lpipe_core::Pipeline;

mod batch;
mod options;
mod retry;
mod stats;

pub use options::WorkerOptions;
pub use stats::WorkerStats;

use batch::handle_batch;
use retry::{backoff, with_retries};
use stats::Counters;

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
    let config = Arc::new(lpipe_core::runtime::lambda_config_from_env());
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
