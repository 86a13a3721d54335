//! Queues (where messages are forwarded) and payloads (what functions return to run next).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::kwargs::{Kwargs, KwargsError};
use crate::path::{IntoPathName, PathName};

/// The kind of a queue: which [`Sink`](crate::sink::Sink) sends to it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKind(Cow<'static, str>);

impl QueueKind {
    /// Amazon SQS (the `lpipe-sqs` crate).
    pub const SQS: QueueKind = QueueKind(Cow::Borrowed("sqs"));
    /// Amazon Kinesis Data Streams (the `lpipe-kinesis` crate).
    pub const KINESIS: QueueKind = QueueKind(Cow::Borrowed("kinesis"));
    /// Amazon EventBridge (the `lpipe-cloudwatch` crate).
    pub const EVENTBRIDGE: QueueKind = QueueKind(Cow::Borrowed("eventbridge"));
    /// Amazon SNS topics (the `lpipe-sns` crate).
    pub const SNS: QueueKind = QueueKind(Cow::Borrowed("sns"));

    /// A kind of the user's own (their own [`Sink`](crate::sink::Sink)).
    pub fn custom(name: impl Into<Cow<'static, str>>) -> Self {
        QueueKind(name.into())
    }

    /// The kind's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A destination for outbound messages: a kind, a target (a queue name, URL or ARN; a stream
/// name or ARN; a bus name or ARN; whatever a custom sink understands), an optional path, and
/// sink-specific options.
///
/// With a path the message sent is `{"path": PATH, "kwargs": {…}}`; without one, the bare
/// kwargs (for a consumer with a default path).
///
/// # Examples
///
/// ```
/// use lpipe_core::Queue;
/// let q = Queue::sqs("emails").path("SEND_WELCOME").message_group_id("welcome");
/// assert_eq!(q.kind().as_str(), "sqs");
/// assert_eq!(q.target(), "emails");
/// assert_eq!(q.get_option("message_group_id"), Some("welcome"));
/// ```
///
/// A queue is a cheap handle: cloning one (every outbound message names its queue) copies a
/// pointer.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Queue(Arc<QueueSpec>);

/// What a [`Queue`] is: its kind, target, consumer path and options.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct QueueSpec {
    kind: QueueKind,
    target: String,
    /// The environment variable the target was read from, and the default it replaced.
    env: Option<(String, String)>,
    path: Option<PathName>,
    options: BTreeMap<Cow<'static, str>, String>,
}

impl Queue {
    /// A queue of any kind.
    pub fn new(kind: QueueKind, target: impl AsRef<str>) -> Self {
        Queue(Arc::new(QueueSpec {
            kind,
            target: target.as_ref().into(),
            env: None,
            path: None,
            options: BTreeMap::new(),
        }))
    }

    /// An SQS queue by name, URL or ARN.
    pub fn sqs(target: impl AsRef<str>) -> Self {
        Self::new(QueueKind::SQS, target)
    }

    /// A Kinesis stream by name or ARN.
    pub fn kinesis(target: impl AsRef<str>) -> Self {
        Self::new(QueueKind::KINESIS, target)
    }

    /// An SNS topic by ARN or name (a name is looked up, in the Lambda's own account and
    /// region). FIFO topics (`.fifo`) take a group as SQS FIFO queues do
    /// ([`message_group_id_from`](Self::message_group_id_from)).
    pub fn sns(target: impl AsRef<str>) -> Self {
        Self::new(QueueKind::SNS, target)
    }

    /// An EventBridge bus by name or ARN.
    pub fn eventbridge(target: impl AsRef<str>) -> Self {
        Self::new(QueueKind::EVENTBRIDGE, target)
    }

    /// Reads the target from this environment variable when it is set (and not empty); the
    /// target given is the default. The description of the Lambda (`my-lambda describe`) names
    /// the variable and the default, so that tools can tell which resource a deployment uses.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::Queue;
    /// let q = Queue::sqs("lpipe-graph-mailer").target_from_env("LPIPE_DOC_UNSET_VARIABLE");
    /// assert_eq!(q.target(), "lpipe-graph-mailer");
    /// assert_eq!(q.target_env(), Some(("LPIPE_DOC_UNSET_VARIABLE", "lpipe-graph-mailer")));
    /// ```
    pub fn target_from_env(mut self, var: impl Into<String>) -> Self {
        let var = var.into();
        let spec = Arc::make_mut(&mut self.0);
        let default = spec.target.clone();
        if let Some(value) = std::env::var(&var).ok().filter(|v| !v.is_empty()) {
            spec.target = value;
        }
        spec.env = Some((var, default));
        self
    }

    /// The environment variable the target is read from, and its default (see
    /// [`target_from_env`](Self::target_from_env)).
    pub fn target_env(&self) -> Option<(&str, &str)> {
        self.0.env.as_ref().map(|(v, d)| (v.as_str(), d.as_str()))
    }

    /// Sets the path the consumer runs (the outbound message becomes `{"path", "kwargs"}`).
    pub fn path(mut self, path: impl IntoPathName) -> Self {
        Arc::make_mut(&mut self.0).path = Some(path.into_path_name());
        self
    }

    /// Sets a sink-specific option by name, for sinks of your own; the built-in sinks' options
    /// have setters ([`message_group_id_from`](Self::message_group_id_from),
    /// [`partition_key_from`](Self::partition_key_from), …). A key the queue's sink does not
    /// know fails the build, naming the ones it knows (see [`Sink::options`](crate::sink::Sink::options)).
    pub fn option(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.0)
            .options
            .insert(key.into(), value.into());
        self
    }

    /// SQS FIFO queues and SNS FIFO topics: the `MessageGroupId` of every message.
    pub fn message_group_id(self, group: impl Into<String>) -> Self {
        self.option("message_group_id", group)
    }

    /// SQS FIFO queues and SNS FIFO topics: the `MessageGroupId` is the value of this kwarg (e.g. `customer_id`),
    /// so that each customer's messages keep their order.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::Queue;
    /// let q = Queue::sqs("orders.fifo").message_group_id_from("customer_id");
    /// assert_eq!(q.get_option("message_group_id_from"), Some("customer_id"));
    /// ```
    pub fn message_group_id_from(self, kwarg: impl Into<String>) -> Self {
        self.option("message_group_id_from", kwarg)
    }

    /// Kinesis streams: the partition key of every record.
    pub fn partition_key(self, key: impl Into<String>) -> Self {
        self.option("partition_key", key)
    }

    /// Kinesis streams: the partition key is the value of this kwarg (e.g. `customer_id`).
    pub fn partition_key_from(self, kwarg: impl Into<String>) -> Self {
        self.option("partition_key_from", kwarg)
    }

    /// EventBridge buses: the events' `source` (default `lpipe`).
    pub fn event_source(self, source: impl Into<String>) -> Self {
        self.option("source", source)
    }

    /// EventBridge buses: the events' `detail-type` (default: the consumer's path, or `lpipe`).
    pub fn detail_type(self, detail_type: impl Into<String>) -> Self {
        self.option("detail_type", detail_type)
    }

    /// The kind.
    pub fn kind(&self) -> &QueueKind {
        &self.0.kind
    }

    /// The target.
    pub fn target(&self) -> &str {
        &self.0.target
    }

    /// The consumer's path, if any.
    pub fn consumer_path(&self) -> Option<&PathName> {
        self.0.path.as_ref()
    }

    /// A sink-specific option.
    pub fn get_option(&self, key: &str) -> Option<&str> {
        self.0.options.get(key).map(String::as_str)
    }

    /// The keys of its options.
    pub fn option_keys(&self) -> impl Iterator<Item = &str> {
        self.0.options.keys().map(|k| k.as_ref())
    }

    /// The options that name a kwarg (`message_group_id_from`, `partition_key_from`: any
    /// option whose name ends in `_from`), with the kwarg each names.
    pub(crate) fn kwarg_options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .options
            .iter()
            .filter(|(k, _)| k.ends_with("_from"))
            .map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// The body of the message that forwards `kwargs` to this queue.
    pub fn message_body(&self, kwargs: &Kwargs) -> String {
        match &self.0.path {
            Some(p) => {
                let mut s = String::with_capacity(kwargs.as_str().len() + p.as_str().len() + 24);
                s.push_str("{\"path\":");
                s.push_str(&serde_json::to_string(p.as_str()).expect("a string serializes"));
                s.push_str(",\"kwargs\":");
                s.push_str(kwargs.as_str());
                s.push('}');
                s
            }
            None => kwargs.as_str().to_owned(),
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0.kind, self.0.target)?;
        if let Some(p) = &self.0.path {
            write!(f, " (path {p})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a [`Payload`] goes.
#[derive(Clone, Debug, PartialEq)]
pub enum PayloadTarget {
    /// Run this path next, in this invocation.
    Path(PathName),
    /// Forward to this queue.
    Queue(Queue),
}

/// A path or queue plus kwargs: what a function returns to have more work done, as in Python
/// lpipe.
///
/// # Examples
///
/// ```
/// use lpipe_core::{Payload, Queue};
/// use serde_json::json;
/// let next = Payload::to_path("SEND_WELCOME", &json!({"email": "ann@example.com"})).unwrap();
/// let out = Payload::to_queue(Queue::sqs("audit"), &json!({"event": "subscribed"})).unwrap();
/// # let _ = (next, out);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    /// Where it goes.
    pub target: PayloadTarget,
    /// Its kwargs.
    pub kwargs: Kwargs,
}

impl Payload {
    /// A payload that runs a path of this pipeline next.
    ///
    /// # Errors
    ///
    /// When `kwargs` does not serialize to a JSON object.
    pub fn to_path(
        path: impl IntoPathName,
        kwargs: &(impl Serialize + ?Sized),
    ) -> Result<Self, KwargsError> {
        Ok(Payload {
            target: PayloadTarget::Path(path.into_path_name()),
            kwargs: Kwargs::from_serialize(kwargs)?,
        })
    }

    /// A payload forwarded to a queue.
    ///
    /// # Errors
    ///
    /// When `kwargs` does not serialize to a JSON object.
    pub fn to_queue(queue: Queue, kwargs: &(impl Serialize + ?Sized)) -> Result<Self, KwargsError> {
        Ok(Payload {
            target: PayloadTarget::Queue(queue),
            kwargs: Kwargs::from_serialize(kwargs)?,
        })
    }
}
