//! The context a user function may take as its second argument.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::path::PathName;

/// What a function knows besides its kwargs: the Lambda context, the record it is running
/// for, the current path, and the user's shared state (SDK clients built once at start-up).
///
/// Cloning is cheap (reference counts).
///
/// # Examples
///
/// ```
/// use lpipe_core::{Context, NoParams};
///
/// async fn store(_: NoParams, ctx: Context) -> Result<(), lpipe_core::BoxError> {
///     tracing::info!(record = ?ctx.record().id(), path = %ctx.path(), "storing");
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Context {
    pub(crate) invocation: Arc<Invocation>,
    pub(crate) record: Arc<RecordInfo>,
    pub(crate) path: PathName,
}

pub(crate) struct Invocation {
    pub(crate) lambda: lambda_runtime::Context,
    pub(crate) state: Arc<StateMap>,
    /// Prefixes outbound message ids when record ids are not stable (see
    /// [`EventSource::stable_record_ids`](crate::source::EventSource::stable_record_ids)).
    pub(crate) message_scope: Option<String>,
    /// The invocation's X-Ray trace header: the runtime's, or `_X_AMZN_TRACE_ID` locally.
    pub(crate) trace_header: Option<Arc<str>>,
    /// What the invocation measures, when the pipeline has metrics.
    pub(crate) metrics: Option<crate::metrics::InvocationMetrics>,
    /// Where its records' idempotency keys are noted while held, for a caller that extends
    /// their locks ([`crate::Pipeline::handle_holding`]).
    pub(crate) held: Option<crate::idempotency::HeldKeys>,
    /// The idempotency keys its records claimed, with the record that holds each: a later
    /// record of the batch with the same key waits for that one's outcome.
    pub(crate) claimed: std::sync::Mutex<HashMap<crate::idempotency::IdempotencyKey, usize>>,
}

/// The pipeline's shared state, one value per type.
pub(crate) type StateMap = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// The record a function is running for.
#[derive(Clone, Debug, Default)]
pub struct RecordInfo {
    pub(crate) index: usize,
    pub(crate) id: Option<Arc<str>>,
    pub(crate) source: &'static str,
    pub(crate) ordering_key: Option<Arc<str>>,
    pub(crate) meta: crate::source::RecordMeta,
}

impl RecordInfo {
    /// The record's position in its batch, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The record's identity in its source (SQS `messageId`, Kinesis `sequenceNumber`, the
    /// position for a direct invocation).
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The id of the message the record carries, as its producer sent it: the lpipe message id
    /// a forwarding lpipe Lambda gave it (the attribute
    /// [`MESSAGE_ID_ATTRIBUTE`](crate::sink::MESSAGE_ID_ATTRIBUTE), the same when the producer's
    /// record is retried and the message sent again), else the SNS `MessageId` of the
    /// notification it came in (a topic's subscribers all see the same one), else the
    /// record's own id ([`id`](Self::id)). What
    /// [`Idempotency::key_from_message_id`](crate::Idempotency::key_from_message_id) keys by.
    pub fn message_id(&self) -> Option<&str> {
        use crate::sink::MESSAGE_ID_ATTRIBUTE;
        let lpipe_id = match &self.meta {
            crate::source::RecordMeta::Sqs(m) => m
                .message_attribute(MESSAGE_ID_ATTRIBUTE)
                .or_else(|| m.sns.as_deref()?.message_attribute(MESSAGE_ID_ATTRIBUTE))
                .or_else(|| m.sns.as_deref()?.message_id.as_deref()),
            crate::source::RecordMeta::Sns(m) => m
                .message_attribute(MESSAGE_ID_ATTRIBUTE)
                .or(m.message_id.as_deref()),
            _ => None,
        };
        lpipe_id.or(self.id.as_deref()).filter(|id| !id.is_empty())
    }

    /// The name of the event source that delivered it (`raw`, `sqs`, …).
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Its ordering key (FIFO `MessageGroupId`, Kinesis partition key), if any.
    pub fn ordering_key(&self) -> Option<&str> {
        self.ordering_key.as_deref()
    }

    /// What its source says about it besides.
    pub fn meta(&self) -> &crate::source::RecordMeta {
        &self.meta
    }

    /// Its SQS attributes, when an SQS message.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{BoxError, Context, FailButContinue, NoParams};
    /// async fn once_only(_: NoParams, ctx: Context) -> Result<(), BoxError> {
    ///     if ctx.record().sqs().and_then(|m| m.receive_count) > Some(3) {
    ///         return Err(FailButContinue::new("received more than 3 times").into());
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn sqs(&self) -> Option<&crate::source::SqsMeta> {
        match &self.meta {
            crate::source::RecordMeta::Sqs(m) => Some(m),
            _ => None,
        }
    }

    /// Its Kinesis metadata, when a Kinesis record.
    pub fn kinesis(&self) -> Option<&crate::source::KinesisMeta> {
        match &self.meta {
            crate::source::RecordMeta::Kinesis(m) => Some(m),
            _ => None,
        }
    }

    /// Its EventBridge envelope, when an EventBridge event.
    pub fn eventbridge(&self) -> Option<&crate::source::EventBridgeMeta> {
        match &self.meta {
            crate::source::RecordMeta::EventBridge(m) => Some(m),
            crate::source::RecordMeta::Sqs(m) => m.eventbridge.as_deref(),
            _ => None,
        }
    }

    /// The DynamoDB stream record's event name, keys and old image, if it came from a
    /// DynamoDB stream.
    pub fn dynamodb(&self) -> Option<&crate::source::DynamoDbMeta> {
        match &self.meta {
            crate::source::RecordMeta::DynamoDb(m) => Some(m.as_ref()),
            _ => None,
        }
    }

    /// Its SNS notification's metadata (id, topic, subject, timestamp, message attributes),
    /// when an SNS notification: delivered by the `sns` source, or unwrapped from an SQS message
    /// by a source that declares the SNS envelope.
    pub fn sns(&self) -> Option<&crate::source::SnsMeta> {
        match &self.meta {
            crate::source::RecordMeta::Sns(m) => Some(m),
            crate::source::RecordMeta::Sqs(m) => m.sns.as_deref(),
            _ => None,
        }
    }
}

impl Context {
    /// A context for calling a function outside a pipeline (in unit tests of user code; feature
    /// `test-kit`).
    #[cfg(feature = "test-kit")]
    pub fn for_test() -> Self {
        Context {
            invocation: Arc::new(Invocation {
                lambda: lambda_runtime::Context::default(),
                state: Arc::default(),
                message_scope: None,
                trace_header: None,
                metrics: None,
                held: None,
                claimed: Default::default(),
            }),
            record: Arc::new(RecordInfo {
                source: "test",
                ..RecordInfo::default()
            }),
            path: PathName::new("TEST"),
        }
    }

    /// The Lambda context of the invocation (request id, deadline, function name…).
    pub fn lambda(&self) -> &lambda_runtime::Context {
        &self.invocation.lambda
    }

    /// The record being processed.
    pub fn record(&self) -> &RecordInfo {
        &self.record
    }

    /// The X-Ray trace header this record belongs to: the one it arrived with (SQS
    /// `AWSTraceHeader`), else the invocation's. Outbound messages carry it on (SQS
    /// `AWSTraceHeader`, EventBridge `TraceHeader`).
    pub fn trace_header(&self) -> Option<&str> {
        self.record
            .meta
            .trace_header()
            .or(self.invocation.trace_header.as_deref())
    }

    /// The trace id (the `Root=` of [`trace_header`](Self::trace_header)), as logs show it.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_header().and_then(crate::source::trace_id)
    }

    /// Adds `n` to a count metric of this invocation (unit `Count`), written with lpipe's own
    /// metrics when the pipeline has them (see
    /// [`PipelineBuilder::metrics`](crate::PipelineBuilder::metrics)); nothing otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{BoxError, Context, NoParams};
    /// async fn send_mail(_: NoParams, ctx: Context) -> Result<(), BoxError> {
    ///     let started = std::time::Instant::now();
    ///     // … send it …
    ///     ctx.count("MailsSent", 1);
    ///     ctx.duration("MailApiLatency", started.elapsed());
    ///     Ok(())
    /// }
    /// ```
    pub fn count(&self, name: &str, n: u64) {
        self.metric(name, n as f64, crate::metrics::MetricUnit::Count);
    }

    /// Records a duration metric of this invocation, in milliseconds (one value per call).
    pub fn duration(&self, name: &str, took: std::time::Duration) {
        self.metric(
            name,
            took.as_secs_f64() * 1000.0,
            crate::metrics::MetricUnit::Milliseconds,
        );
    }

    /// Records a metric value with a unit: counts add up over the invocation, other units keep
    /// each value. A name lpipe uses itself, or used before with another unit, is not
    /// recorded (a warning says so).
    pub fn metric(&self, name: &str, value: f64, unit: crate::metrics::MetricUnit) {
        if let Some(m) = &self.invocation.metrics {
            m.add(name, value, unit);
        }
    }

    /// The path being run.
    pub fn path(&self) -> &PathName {
        &self.path
    }

    /// The shared state of type `T` given to
    /// [`PipelineBuilder::state`](crate::PipelineBuilder::state), if any. A function that
    /// always needs it should take [`State<T>`](crate::State) instead, which the build checks.
    pub fn state<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.invocation
            .state
            .get(&TypeId::of::<T>())
            .and_then(|s| s.downcast_ref::<T>())
    }

    /// The shared state of type `T`, shared (for [`State<T>`](crate::State)).
    pub(crate) fn shared_state<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.invocation
            .state
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|s| s.downcast::<T>().ok())
    }
}
