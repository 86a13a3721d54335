//! Error classes and record outcomes.
//!
//! The vocabulary is Python lpipe's: a user function asks for its record to be kept and retried
//! with [`FailCatastrophically`], or to be dropped with [`FailButContinue`]; any other error
//! drops the record too. [`RecordError`] is what the dispatcher records for a record that did
//! not succeed, and [`ErrorKind::outcome`] says what happens to it.

use std::fmt;

use crate::path::PathName;

mod config;

pub use crate::kwargs::KwargsError;
pub use config::{GraphLocation, InvalidConfigurationError, QueueProblem};

/// A boxed error, the error type user functions may return (anything `Into<BoxError>`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

macro_rules! user_error_class {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        #[error("{message}")]
        pub struct $name {
            message: String,
            #[source]
            source: Option<BoxError>,
        }

        impl $name {
            /// An error with this message.
            pub fn new(message: impl Into<String>) -> Self {
                Self { message: message.into(), source: None }
            }

            /// Wraps another error (the user's own error type, say), keeping it as the source.
            /// The message is the wrapped error's.
            pub fn wrap(source: impl Into<BoxError>) -> Self {
                let source = source.into();
                Self { message: source.to_string(), source: Some(source) }
            }

            /// An error with this message and this source.
            pub fn with_source(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
                Self { message: message.into(), source: Some(source.into()) }
            }

            /// The message.
            pub fn message(&self) -> &str {
                &self.message
            }
        }

    };
}

user_error_class!(
    /// Returned by a user function to keep its record: the record is reported as failed and
    /// its event source retries it (SQS redrive, Kinesis replay, a failed invocation).
    ///
    /// Found anywhere in an error's `source()` chain, so a user's own error type that wraps
    /// it (Python lpipe's `class MyError(FailCatastrophically)`) is classified the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::FailCatastrophically;
    /// # #[derive(serde::Deserialize)] struct Args {}
    /// async fn charge(_args: Args) -> Result<(), FailCatastrophically> {
    ///     Err(FailCatastrophically::new("the payment service is down; retry later"))
    /// }
    /// ```
    FailCatastrophically
);

user_error_class!(
    /// Returned by a user function to drop its record: it is logged, reported and
    /// acknowledged, never retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::FailButContinue;
    /// # #[derive(serde::Deserialize)] struct Args { email: String }
    /// async fn validate(args: Args) -> Result<(), FailButContinue> {
    ///     if !args.email.contains('@') {
    ///         return Err(FailButContinue::new(format!("bad email {:?}", args.email)));
    ///     }
    ///     Ok(())
    /// }
    /// ```
    FailButContinue
);

/// What an ordinary error does to its record: an error that is neither [`FailButContinue`]
/// nor [`FailCatastrophically`] (a `?` on an I/O error, a timeout of your database). Set for
/// the pipeline with [`on_error`](crate::PipelineBuilder::on_error) and per path with
/// [`on_error_in`](crate::PipelineBuilder::on_error_in); types marked with
/// [`retry_on`](crate::PipelineBuilder::retry_on) are kept whatever the policy. Panics are
/// always dropped: a panic is a bug, not a passing fault.
///
/// Keeping errors for retry trades one risk for another: a record that fails every time (a
/// poison message) comes back until the queue's redrive policy moves it to its dead-letter
/// queue (`maxReceiveCount`), or, for Kinesis, until the mapping's `MaximumRetryAttempts`
/// (while it blocks its shard). Set those before choosing [`OnError::Retry`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnError {
    /// Drop the record (acknowledged, never retried; logged and reported), as Python lpipe
    /// does. The default.
    #[default]
    Drop,
    /// Keep the record for retry ([`ErrorKind::Retryable`]; it fails, and its source
    /// retries it).
    Retry,
}

/// What happened to a record in the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every action ran and every outbound message was delivered: acknowledged.
    Success,
    /// The record was dropped: acknowledged (never retried), logged and reported.
    Dropped,
    /// The record failed and is kept: the event source retries it.
    Failed,
}

/// The class of a [`RecordError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The record's body or kwargs are not what the path needs (bad JSON, missing or mistyped
    /// parameter). Dropped.
    InvalidPayload,
    /// The message names a path the pipeline does not have. Dropped.
    InvalidPath,
    /// A user function returned [`FailButContinue`]. Dropped.
    FailButContinue,
    /// A user function returned [`FailCatastrophically`]. Failed (kept).
    FailCatastrophically,
    /// A user function returned any other error. Dropped, unless the pipeline's error policy
    /// keeps it ([`ErrorKind::Retryable`]).
    Unhandled,
    /// A user function returned an ordinary error that the pipeline keeps for retry: its type
    /// was marked with [`retry_on`](crate::PipelineBuilder::retry_on), or the path's or
    /// pipeline's policy is [`OnError::Retry`]. Failed (kept).
    Retryable,
    /// A user function panicked. Dropped, like any other error.
    Panic,
    /// Returned payloads or paths nested deeper than the pipeline's bound. Failed (kept).
    DepthExceeded,
    /// An outbound message could not be delivered. Failed (kept).
    Undeliverable,
    /// The record was not run: the invocation's deadline was too close, or an earlier record
    /// it is ordered after failed. Failed (kept).
    NotRun,
    /// The record's idempotency key is held by another run in progress (see
    /// [`Idempotency`](crate::Idempotency)): it is not run now. Failed (kept).
    InProgress,
    /// The idempotency store could not be asked or written (unreachable, throttling): the
    /// record is not run unguarded. Failed (kept).
    IdempotencyStore,
    /// The record's payload, kept in S3 (see [`crate::payload`]), could not be fetched for a
    /// fault that may pass (throttling, a timeout). Failed (kept). A pointer that cannot be
    /// followed (a missing object, a bucket not allowed) is [`ErrorKind::InvalidPayload`].
    PayloadStore,
}

impl ErrorKind {
    /// What a record that met this error becomes.
    pub fn outcome(self) -> Outcome {
        match self {
            ErrorKind::InvalidPayload
            | ErrorKind::InvalidPath
            | ErrorKind::FailButContinue
            | ErrorKind::Unhandled
            | ErrorKind::Panic => Outcome::Dropped,
            ErrorKind::FailCatastrophically
            | ErrorKind::Retryable
            | ErrorKind::DepthExceeded
            | ErrorKind::Undeliverable
            | ErrorKind::NotRun
            | ErrorKind::InProgress
            | ErrorKind::IdempotencyStore
            | ErrorKind::PayloadStore => Outcome::Failed,
        }
    }

    /// The name of the class, in Python lpipe's vocabulary where it has one.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidPayload => "InvalidPayloadError",
            ErrorKind::InvalidPath => "InvalidPathError",
            ErrorKind::FailButContinue => "FailButContinue",
            ErrorKind::FailCatastrophically => "FailCatastrophically",
            ErrorKind::Unhandled => "UnhandledError",
            ErrorKind::Retryable => "RetryableError",
            ErrorKind::Panic => "Panic",
            ErrorKind::DepthExceeded => "DepthExceeded",
            ErrorKind::Undeliverable => "Undeliverable",
            ErrorKind::NotRun => "NotRun",
            ErrorKind::InProgress => "InProgress",
            ErrorKind::IdempotencyStore => "IdempotencyStoreError",
            ErrorKind::PayloadStore => "PayloadStoreError",
        }
    }

    /// Classifies an error returned by a user function by looking for [`FailCatastrophically`]
    /// or [`FailButContinue`] in its `source()` chain; anything else is
    /// [`ErrorKind::Unhandled`].
    pub fn classify(error: &(dyn std::error::Error + 'static)) -> ErrorKind {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = current {
            if e.is::<FailCatastrophically>() {
                return ErrorKind::FailCatastrophically;
            }
            if e.is::<FailButContinue>() {
                return ErrorKind::FailButContinue;
            }
            current = e.source();
        }
        ErrorKind::Unhandled
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a record did not succeed: its class, a message, and where it happened.
///
/// Boxed: a record's result carries room for one, and few use it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct RecordError(Box<ErrorParts>);

/// What a [`RecordError`] says: `Kind in function on path P: message`.
#[derive(Debug, thiserror::Error)]
#[error("{kind}{}: {message}", location(path.as_ref(), *function))]
struct ErrorParts {
    kind: ErrorKind,
    message: String,
    path: Option<PathName>,
    function: Option<&'static str>,
    #[source]
    source: Option<BoxError>,
}

/// Where a record error happened: ` in f on path P`, ` on path P`, ` in f` or nothing.
fn location(path: Option<&PathName>, function: Option<&str>) -> String {
    match (path, function) {
        (Some(p), Some(f)) => format!(" in {f} on path {p}"),
        (Some(p), None) => format!(" on path {p}"),
        (None, Some(f)) => format!(" in {f}"),
        (None, None) => String::new(),
    }
}

impl RecordError {
    /// A record error of this class.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorParts {
            kind,
            message: message.into(),
            path: None,
            function: None,
            source: None,
        }))
    }

    /// An [`ErrorKind::InvalidPayload`] error.
    pub fn invalid_payload(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidPayload, message)
    }

    /// Sets the path the error happened on, unless one is set already.
    pub fn at_path(mut self, path: &PathName) -> Self {
        if self.0.path.is_none() {
            self.0.path = Some(path.clone());
        }
        self
    }

    /// Sets the function the error happened in, unless one is set already.
    pub fn in_function(mut self, function: &'static str) -> Self {
        if self.0.function.is_none() {
            self.0.function = Some(function);
        }
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: BoxError) -> Self {
        self.0.source = Some(source);
        self
    }

    /// The class.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// What the record becomes.
    pub fn outcome(&self) -> Outcome {
        self.0.kind.outcome()
    }

    /// The message, without path or function.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The path the error happened on, if known.
    pub fn path(&self) -> Option<&PathName> {
        self.0.path.as_ref()
    }

    /// The user function the error happened in, if any.
    pub fn function(&self) -> Option<&'static str> {
        self.0.function
    }
}

/// The invocation as a whole failed: the Lambda runtime reports it as
/// `{"errorType": …, "errorMessage": …}` and the event source retries what it retries.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize)]
#[error("{error_type}: {error_message}")]
#[serde(rename_all = "camelCase")]
pub struct InvocationError {
    /// The class, for example `FailCatastrophically` or `InvalidEvent`.
    pub error_type: String,
    /// What went wrong, naming the records concerned.
    pub error_message: String,
}

impl InvocationError {
    /// An invocation error.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(e: InvocationError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type,
            error_message: e.error_message,
        }
    }
}
