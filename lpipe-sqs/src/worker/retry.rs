//! SQS calls of the worker's own, retried with backoff.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use lpipe_core::sink::Backoff;

/// Backoff before the `attempt`th retry (from 1): 100 ms doubling to 5 s, jittered.
pub(super) fn backoff(attempt: u32) -> Duration {
    const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    BACKOFF.delay(attempt)
}

/// Calls an SQS operation up to 5 times, with backoff, while it fails.
pub(super) async fn with_retries<T, E, F, Fut>(what: &str, mut call: F) -> Result<T, String>
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
