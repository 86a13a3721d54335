//! Error classes and record outcomes.
//!
//! The vocabulary is Python lpipe's: a user function asks for its record to be kept and retried
//! with [`FailCatastrophically`], or to be dropped with [`FailButContinue`]; any other error
//! drops the record too. [`RecordError`] is what the dispatcher records for a record that did
//! not succeed, and [`ErrorKind::outcome`] says what happens to it.

use std::fmt;

use crate::path::PathName;

pub use crate::kwargs::KwargsError;

/// A boxed error, the error type user functions may return (anything `Into<BoxError>`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

macro_rules! user_error_class {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            message: String,
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

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.message)
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
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
            | ErrorKind::IdempotencyStore => Outcome::Failed,
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
/// One pointer wide (its parts are boxed): every record carries room for one, and few use it.
pub struct RecordError(Box<ErrorParts>);

#[derive(Debug)]
struct ErrorParts {
    kind: ErrorKind,
    message: String,
    path: Option<PathName>,
    function: Option<&'static str>,
    source: Option<BoxError>,
}

impl fmt::Debug for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordError")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("path", &self.0.path)
            .field("function", &self.0.function)
            .field("source", &self.0.source)
            .finish()
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

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.kind)?;
        match (&self.0.path, self.0.function) {
            (Some(p), Some(func)) => write!(f, " in {func} on path {p}")?,
            (Some(p), None) => write!(f, " on path {p}")?,
            (None, Some(func)) => write!(f, " in {func}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.0.message)
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Where in the graph a configuration error is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphLocation {
    /// An action: its path, and its position in the path (from 1).
    Action {
        /// The path.
        path: PathName,
        /// The action's position, from 1.
        action: usize,
    },
    /// The pipeline's dead-letter queue.
    DeadLetterQueue,
}

impl fmt::Display for GraphLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphLocation::Action { path, action } => write!(f, "action {action} of path {path}"),
            GraphLocation::DeadLetterQueue => f.write_str("the dead-letter queue"),
        }
    }
}

/// What is wrong with a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueProblem {
    /// Its target (queue name, stream, bus) is empty.
    EmptyTarget,
    /// No sink sends queues of its kind.
    NoSink {
        /// The kinds that have a sink.
        registered: Vec<String>,
    },
    /// An option its sink does not know (see [`Sink::options`](crate::sink::Sink::options)).
    UnknownOption {
        /// The option.
        option: String,
        /// The options the sink knows.
        known: Vec<&'static str>,
    },
    /// Its sink rejects it (see [`Sink::validate`](crate::sink::Sink::validate)): a malformed ARN,
    /// options that conflict, …
    Rejected(String),
    /// An option that names a kwarg (`message_group_id_from`, `partition_key_from`, any
    /// option whose name ends in `_from`) names one its action never passes on.
    FieldNotForwarded {
        /// The option.
        option: String,
        /// The kwarg it names.
        field: String,
        /// The kwargs the action passes on.
        forwarded: Vec<String>,
    },
}

impl QueueProblem {
    /// The problem, said of this queue.
    pub fn describe(&self, queue: &crate::Queue) -> String {
        let kind = queue.kind();
        match self {
            QueueProblem::EmptyTarget => format!("queue of kind '{kind}' has an empty target"),
            QueueProblem::NoSink { registered } => {
                let how = match crate::plugins::sink_plugin_hint(kind.as_str()) {
                    Some(hint) => format!("{hint}; or add one with PipelineBuilder::sink"),
                    None => "add one with PipelineBuilder::sink".to_owned(),
                };
                format!(
                    "queue {queue} has kind '{kind}', which has no sink (registered: {}; {how})",
                    list_or_none(registered)
                )
            }
            QueueProblem::UnknownOption { option, known } => format!(
                "queue {queue} has an unknown option '{option}' (the {kind} sink knows: {})",
                list_or_none(known)
            ),
            QueueProblem::Rejected(why) => format!("queue {queue}: {why}"),
            QueueProblem::FieldNotForwarded {
                option,
                field,
                forwarded,
            } => format!(
                "queue {queue}: {option} names the kwarg '{field}', which this action never passes on (it passes: {}); a misspelt name?",
                list_or_none(forwarded)
            ),
        }
    }
}

fn list_or_none<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The pipeline's graph or configuration is wrong. Raised when the pipeline is built, before
/// any record is touched; each variant names the offending path, action, queue or setting,
/// and its message says what to change.
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, InvalidConfigurationError, NoParams, Pipeline};
/// async fn a(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
/// let e = Pipeline::builder().path("A", [Action::new().function(a).path("B")]).build().unwrap_err();
/// assert!(matches!(&e, InvalidConfigurationError::UnknownPath { path, .. } if path.as_str() == "B"));
/// assert_eq!(e.to_string(), "InvalidConfigurationError: action 1 of path A runs path B, which is not declared");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidConfigurationError {
    /// The pipeline has no paths.
    NoPaths,
    /// A path's name is empty.
    EmptyPathName,
    /// Two paths have the same name (names match case-insensitively).
    DuplicatePath {
        /// The name.
        path: PathName,
    },
    /// A path has no actions.
    NoActions {
        /// The path.
        path: PathName,
    },
    /// An action has no functions, paths or queues.
    EmptyAction {
        /// The action.
        at: GraphLocation,
    },
    /// An action runs a path that is not declared.
    UnknownPath {
        /// The action.
        at: GraphLocation,
        /// The path it runs.
        path: PathName,
    },
    /// An action declares that its functions return to a path that is not declared.
    UnknownReturnPath {
        /// The action.
        at: GraphLocation,
        /// The path.
        path: PathName,
    },
    /// An action declares a path its functions return to, but has no functions.
    ReturnWithoutFunctions {
        /// The action.
        at: GraphLocation,
        /// The path.
        path: PathName,
    },
    /// A queue cannot be sent to as configured.
    Queue {
        /// Where the queue is.
        at: GraphLocation,
        /// The queue (boxed: it is large beside the other variants).
        queue: Box<crate::Queue>,
        /// What is wrong.
        problem: QueueProblem,
    },
    /// A function takes [`State<T>`](crate::State), and no state of `T` was given.
    MissingState {
        /// The action.
        at: GraphLocation,
        /// The function.
        function: &'static str,
        /// `T`'s name.
        type_name: &'static str,
    },
    /// A required parameter has an empty name.
    EmptyParamName {
        /// The action.
        at: GraphLocation,
    },
    /// The concurrency is 0.
    ZeroConcurrency,
    /// The dead-letter queue has a consumer path.
    DeadLetterWithPath {
        /// The queue, displayed.
        queue: String,
    },
    /// The default path is not declared.
    UnknownDefaultPath {
        /// The path.
        path: PathName,
    },
    /// Paths run each other in a cycle.
    Cycle {
        /// The paths, the first repeated at the end.
        paths: Vec<PathName>,
    },
    /// `on_error_in` names a path that is not declared.
    UnknownErrorPolicyPath {
        /// The path.
        path: PathName,
    },
    /// `idempotent_in` names a path that is not declared.
    UnknownIdempotentPath {
        /// The path.
        path: PathName,
    },
    /// An idempotency key made of no fields (`key_from([])`).
    EmptyIdempotencyKey,
    /// An idempotency key field (`key_from`) that no function of its path takes: every record
    /// would be dropped for lacking it.
    UnknownKeyField {
        /// The idempotent path.
        path: PathName,
        /// The field.
        field: String,
        /// The kwargs the path's functions and required parameters take.
        taken: Vec<String>,
    },
    /// The metrics' namespace or service is not a valid CloudWatch name.
    InvalidMetrics {
        /// Why.
        why: String,
    },
    /// The pinned event source is not registered.
    UnknownSource {
        /// The name given.
        name: String,
        /// The registered sources.
        registered: Vec<&'static str>,
    },
    /// More than one event source is linked (besides `raw`) and the pipeline names none: an
    /// event of a source this Lambda is not built for (a misconfigured mapping) would be taken
    /// by another one, and its records dropped and acknowledged.
    SourceNotNamed {
        /// The sources linked, other than `raw`.
        linked: Vec<&'static str>,
    },
}

impl fmt::Display for InvalidConfigurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InvalidConfigurationError as E;
        f.write_str("InvalidConfigurationError: ")?;
        match self {
            E::NoPaths => f.write_str("the pipeline has no paths"),
            E::EmptyPathName => f.write_str("a path has an empty name"),
            E::DuplicatePath { path } => write!(
                f,
                "path {path} is declared twice (names match case-insensitively)"
            ),
            E::NoActions { path } => write!(f, "path {path} has no actions"),
            E::EmptyAction { at } => write!(f, "{at} has no functions, paths or queues"),
            E::UnknownPath { at, path } => write!(f, "{at} runs path {path}, which is not declared"),
            E::UnknownReturnPath { at, path } => write!(
                f,
                "{at} declares that its functions return to path {path}, which is not declared"
            ),
            E::ReturnWithoutFunctions { at, path } => write!(
                f,
                "{at} declares that it returns to path {path}, but has no functions to return anything"
            ),
            E::Queue { at, queue, problem } => write!(f, "{at}: {}", problem.describe(queue)),
            E::MissingState {
                at,
                function,
                type_name,
            } => write!(
                f,
                "function {function} in {at} takes State<{type_name}>, but the pipeline has no state of that type (give it with .state(…))"
            ),
            E::EmptyParamName { at } => {
                write!(f, "{at} has a required parameter with an empty name")
            }
            E::ZeroConcurrency => f.write_str("concurrency must be at least 1 (got 0)"),
            E::InvalidMetrics { why } => f.write_str(why),
            E::DeadLetterWithPath { queue } => write!(
                f,
                "the dead-letter queue {queue} has a path: it receives records as they came, so give it none"
            ),
            E::UnknownDefaultPath { path } => {
                write!(f, "the default path {path} is not declared")
            }
            E::Cycle { paths } => {
                let names: Vec<&str> = paths.iter().map(PathName::as_str).collect();
                write!(f, "paths run each other in a cycle: {}", names.join(" -> "))
            }
            E::UnknownErrorPolicyPath { path } => {
                write!(f, "on_error_in names path {path}, which is not declared")
            }
            E::UnknownIdempotentPath { path } => {
                write!(f, "idempotent_in names path {path}, which is not declared")
            }
            E::EmptyIdempotencyKey => f.write_str(
                "an idempotency key made of no fields (key_from with an empty list): every record would share one key",
            ),
            E::UnknownSource { name, registered } => write!(
                f,
                "event source '{name}' is not registered (registered: {})",
                list_or_none(registered)
            ),
            E::UnknownKeyField { path, field, taken } => write!(
                f,
                "the idempotency key of path {path} is made from the kwarg '{field}', which no function of the path takes (they take: {}); every record would be dropped for lacking it (a misspelt name?)",
                list_or_none(taken)
            ),
            E::SourceNotNamed { linked } => write!(
                f,
                "this binary links the event sources {} and the pipeline names none: add `.only_source(\"NAME\")` with the one this Lambda consumes (`.sources([…])` for several), or `.detect_source()` to pick one by each event's shape (then an event of a source the Lambda is not built for, from a misconfigured mapping, is taken by that source, and its records dropped and acknowledged)",
                linked.join(", ")
            ),
        }
    }
}

impl std::error::Error for InvalidConfigurationError {}

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
