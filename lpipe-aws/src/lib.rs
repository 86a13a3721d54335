//! Plumbing shared by lpipe's AWS plugins (`lpipe-sqs`, `lpipe-sns`, `lpipe-kinesis`, `lpipe-cloudwatch`, `lpipe-s3`):
//! the AWS configuration loaded once per process whichever plugins are enabled, the
//! classification of SDK errors into retryable and permanent [`SendError`]s, and the limits and
//! call counter every sink keeps; with the feature `test-kit`, an interceptor that counts a
//! client's calls for their tests (`testing::CountCalls`) and the fault proxy the tests put in
//! front of moto (`testing::FaultProxy`). Not for direct use.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lpipe_core::sink::{SendError, SinkLimits};

#[cfg(feature = "test-kit")]
pub mod testing;

/// The standard AWS configuration (`aws-config`: region, credentials, `AWS_ENDPOINT_URL` and
/// the service-specific endpoint variables), loaded once per process and shared by every
/// plugin's client.
pub async fn sdk_config() -> aws_config::SdkConfig {
    static CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> =
        tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
        .await
        .clone()
}

/// The service's error code, when the service answered with one.
pub fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// Turns an SDK error from `what` (e.g. "PutRecords to stream 's'") into a [`SendError`]:
/// a service error is retryable when its code is one of `retryable_codes`; timeouts,
/// connection and response failures are retryable; anything else (missing credentials among
/// them) is permanent.
pub fn classify<E, R>(e: &SdkError<E, R>, what: &str, retryable_codes: &[&str]) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    // The SDK's own rendering (DisplayErrorContext) is the whole chain plus a debug dump, about
    // a kilobyte: that goes to the debug log; the message says the kind and the cause.
    tracing::debug!(error = %DisplayErrorContext(e), "{what}: the AWS SDK's error in full");
    let detail = short_chain(e);
    match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            SendError {
                retryable: retryable_codes.contains(&code),
                message: format!("{what} failed ({code}): {detail}"),
            }
        }
        _ => SendError {
            // Connection failures and timeouts may pass; a request that could not be signed
            // (no credentials, an unusable credentials provider) and other local faults will not.
            retryable: match e {
                SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
                SdkError::DispatchFailure(f) => f.is_io() || f.is_timeout(),
                _ => false,
            },
            message: format!("{what} failed: {detail}"),
        },
    }
}

/// The error's kind and causes, one line: `dispatch failure: io error: … Connection refused`.
/// A request that could not be signed says that no credentials were found, rather than the
/// SDK's advice on auth schemes.
fn short_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if text.contains("no identity resolver") || text.contains("no credentials") {
            parts.push(
                "no AWS credentials were found (the standard chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role)"
                    .to_owned(),
            );
            break;
        }
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        current = err.source();
    }
    let mut line = parts.join(": ");
    if line.len() > 400 {
        let cut = (0..=400)
            .rev()
            .find(|&i| line.is_char_boundary(i))
            .unwrap_or(0);
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// What every AWS sink keeps: limits overridden by the user, and the number of API calls made.
#[derive(Debug, Default)]
pub struct SinkState {
    limits: Mutex<Option<SinkLimits>>,
    calls: AtomicUsize,
}

impl SinkState {
    /// Overrides the sink's limits.
    pub fn set_limits(&self, limits: SinkLimits) {
        *self.limits.lock().expect("limits lock") = Some(limits);
    }

    /// The overridden limits, else `default`.
    pub fn limits_or(&self, default: SinkLimits) -> SinkLimits {
        self.limits.lock().expect("limits lock").unwrap_or(default)
    }

    /// Counts one API call.
    pub fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// API calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

/// Values looked up once per key and remembered (a queue's URL, a topic's ARN: they do not
/// change). Calls on their way at once wait for one lookup; a failed lookup is tried again by
/// the next call.
#[derive(Debug, Default)]
pub struct Lookups(Mutex<HashMap<String, Arc<tokio::sync::OnceCell<String>>>>);

impl Lookups {
    /// The value of `key`, looked up with `lookup` the first time.
    ///
    /// # Errors
    ///
    /// The lookup's, when it fails (nothing is remembered then).
    pub async fn get<E, F, Fut>(&self, key: &str, lookup: F) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, E>>,
    {
        let cell = {
            let mut cells = self.0.lock().expect("lookup cache lock");
            // A known key's cell without copying it: this runs on every call.
            match cells.get(key) {
                Some(cell) => Arc::clone(cell),
                None => Arc::clone(cells.entry(key.to_owned()).or_default()),
            }
        };
        cell.get_or_try_init(lookup).await.cloned()
    }
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:NAME` of this service → (account, name).
///
/// # Examples
///
/// ```
/// assert_eq!(
///     lpipe_aws::parse_arn("arn:aws:sqs:us-east-2:123456789012:q.fifo", "sqs"),
///     Some(("123456789012", "q.fifo"))
/// );
/// assert_eq!(lpipe_aws::parse_arn("arn:aws:sns:us-east-2:123456789012:t", "sqs"), None);
/// assert_eq!(lpipe_aws::parse_arn("my-queue", "sqs"), None);
/// ```
pub fn parse_arn<'a>(arn: &'a str, service: &str) -> Option<(&'a str, &'a str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some(s), Some(_region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (s == service && !account.is_empty() && !name.is_empty()).then_some((account, name))
}

/// What the SQS and SNS sinks share: FIFO groups and deduplication ids, and the size of a
/// message with its attributes as both services count it.
pub mod fifo {
    use lpipe_core::sink::{OutboundMessage, MESSAGE_ID_ATTRIBUTE};
    use lpipe_core::Queue;

    /// The queue options of a FIFO queue or topic.
    pub const OPTIONS: &[&str] = &["message_group_id", "message_group_id_from"];

    /// Whether a queue or topic (by name, URL or ARN) is FIFO.
    pub fn is_fifo(queue: &Queue) -> bool {
        queue.target().ends_with(".fifo")
    }

    /// A message's `MessageGroupId`: the queue's `message_group_id`, else the value of the kwarg
    /// its `message_group_id_from` names (at most 128 characters), else a digest of the body
    /// (so equal messages keep their order).
    pub fn group_id(queue: &Queue, message: &OutboundMessage) -> String {
        if let Some(g) = queue.get_option("message_group_id") {
            return g.to_owned();
        }
        if let Some(name) = queue.get_option("message_group_id_from") {
            if let Some(value) = message.kwarg_value(name) {
                return value.chars().take(128).collect();
            }
        }
        lpipe_core::sink::content_digest(&[&message.body])
    }

    /// A message's `MessageDeduplicationId`: a digest of its identity (the same when its record
    /// is retried) and body, so a resend is deduplicated and distinct messages never collide.
    pub fn deduplication_id(message: &OutboundMessage) -> String {
        lpipe_core::sink::content_digest(&[&message.id, &message.body])
    }

    /// The routing the local mode prints beside a message to a FIFO queue or topic.
    pub fn routing(message: &OutboundMessage) -> Vec<(&'static str, String)> {
        if !is_fifo(&message.queue) {
            return Vec::new();
        }
        vec![
            ("MessageGroupId", group_id(&message.queue, message)),
            ("MessageDeduplicationId", deduplication_id(message)),
        ]
    }

    /// A message's size as SQS and SNS count it: the body and every attribute's name, type and
    /// value (the lpipe message id among them).
    pub fn entry_size(message: &OutboundMessage) -> usize {
        let attribute = |name: &str, value: &str| name.len() + "String".len() + value.len();
        message.body.len()
            + attribute(MESSAGE_ID_ATTRIBUTE, &message.id)
            + message
                .attributes
                .iter()
                .map(|(name, value)| attribute(name, value))
                .sum::<usize>()
    }

    /// Refuses a queue with both group options.
    pub fn validate(queue: &Queue) -> Result<(), String> {
        if queue.get_option("message_group_id").is_some()
            && queue.get_option("message_group_id_from").is_some()
        {
            return Err("set message_group_id or message_group_id_from, not both".into());
        }
        Ok(())
    }
}
