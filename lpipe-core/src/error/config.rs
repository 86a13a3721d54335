//! What can be wrong with a pipeline's configuration, found when it is built.

use std::fmt;

use crate::path::PathName;

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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidConfigurationError {
    /// The pipeline has no paths.
    #[error("InvalidConfigurationError: the pipeline has no paths")]
    NoPaths,
    /// A path's name is empty.
    #[error("InvalidConfigurationError: a path has an empty name")]
    EmptyPathName,
    /// Two paths have the same name (names match case-insensitively).
    #[error(
        "InvalidConfigurationError: path {path} is declared twice (names match case-insensitively)"
    )]
    DuplicatePath {
        /// The name.
        path: PathName,
    },
    /// A path has no actions.
    #[error("InvalidConfigurationError: path {path} has no actions")]
    NoActions {
        /// The path.
        path: PathName,
    },
    /// An action has no functions, paths or queues.
    #[error("InvalidConfigurationError: {at} has no functions, paths or queues")]
    EmptyAction {
        /// The action.
        at: GraphLocation,
    },
    /// An action runs a path that is not declared.
    #[error("InvalidConfigurationError: {at} runs path {path}, which is not declared")]
    UnknownPath {
        /// The action.
        at: GraphLocation,
        /// The path it runs.
        path: PathName,
    },
    /// An action declares that its functions return to a path that is not declared.
    #[error("InvalidConfigurationError: {at} declares that its functions return to path {path}, which is not declared")]
    UnknownReturnPath {
        /// The action.
        at: GraphLocation,
        /// The path.
        path: PathName,
    },
    /// An action declares a path its functions return to, but has no functions.
    #[error("InvalidConfigurationError: {at} declares that it returns to path {path}, but has no functions to return anything")]
    ReturnWithoutFunctions {
        /// The action.
        at: GraphLocation,
        /// The path.
        path: PathName,
    },
    /// A queue cannot be sent to as configured.
    #[error("InvalidConfigurationError: {at}: {}", problem.describe(queue))]
    Queue {
        /// Where the queue is.
        at: GraphLocation,
        /// The queue.
        queue: crate::Queue,
        /// What is wrong.
        problem: QueueProblem,
    },
    /// A function takes [`State<T>`](crate::State), and no state of `T` was given.
    #[error("InvalidConfigurationError: function {function} in {at} takes State<{type_name}>, but the pipeline has no state of that type (give it with .state(…))")]
    MissingState {
        /// The action.
        at: GraphLocation,
        /// The function.
        function: &'static str,
        /// `T`'s name.
        type_name: &'static str,
    },
    /// A required parameter has an empty name.
    #[error("InvalidConfigurationError: {at} has a required parameter with an empty name")]
    EmptyParamName {
        /// The action.
        at: GraphLocation,
    },
    /// The concurrency is 0.
    #[error("InvalidConfigurationError: concurrency must be at least 1 (got 0)")]
    ZeroConcurrency,
    /// The dead-letter queue has a consumer path.
    #[error("InvalidConfigurationError: the dead-letter queue {queue} has a path: it receives records as they came, so give it none")]
    DeadLetterWithPath {
        /// The queue, displayed.
        queue: String,
    },
    /// The default path is not declared.
    #[error("InvalidConfigurationError: the default path {path} is not declared")]
    UnknownDefaultPath {
        /// The path.
        path: PathName,
    },
    /// Paths run each other in a cycle.
    #[error(
        "InvalidConfigurationError: paths run each other in a cycle: {}",
        cycle(paths)
    )]
    Cycle {
        /// The paths, the first repeated at the end.
        paths: Vec<PathName>,
    },
    /// `on_error_in` names a path that is not declared.
    #[error("InvalidConfigurationError: on_error_in names path {path}, which is not declared")]
    UnknownErrorPolicyPath {
        /// The path.
        path: PathName,
    },
    /// `idempotent_in` names a path that is not declared.
    #[error("InvalidConfigurationError: idempotent_in names path {path}, which is not declared")]
    UnknownIdempotentPath {
        /// The path.
        path: PathName,
    },
    /// An idempotency key made of no fields (`key_from([])`).
    #[error("InvalidConfigurationError: an idempotency key made of no fields (key_from with an empty list): every record would share one key")]
    EmptyIdempotencyKey,
    /// An idempotency key field (`key_from`) that no function of its path takes: every record
    /// would be dropped for lacking it.
    #[error("InvalidConfigurationError: the idempotency key of path {path} is made from the kwarg '{field}', which no function of the path takes (they take: {}); every record would be dropped for lacking it (a misspelt name?)", list_or_none(taken))]
    UnknownKeyField {
        /// The idempotent path.
        path: PathName,
        /// The field.
        field: String,
        /// The kwargs the path's functions and required parameters take.
        taken: Vec<String>,
    },
    /// The metrics' namespace or service is not a valid CloudWatch name.
    #[error("InvalidConfigurationError: {why}")]
    InvalidMetrics {
        /// Why.
        why: String,
    },
    /// The pinned event source is not registered.
    #[error(
        "InvalidConfigurationError: event source '{name}' is not registered (registered: {})",
        list_or_none(registered)
    )]
    UnknownSource {
        /// The name given.
        name: String,
        /// The registered sources.
        registered: Vec<&'static str>,
    },
    /// More than one event source is linked (besides `raw`) and the pipeline names none: an
    /// event of a source this Lambda is not built for (a misconfigured mapping) would be taken
    /// by another one, and its records dropped and acknowledged.
    #[error("InvalidConfigurationError: this binary links the event sources {} and the pipeline names none: add `.only_source(\"NAME\")` with the one this Lambda consumes (`.sources([…])` for several), or `.detect_source()` to pick one by each event's shape (then an event of a source the Lambda is not built for, from a misconfigured mapping, is taken by that source, and its records dropped and acknowledged)", linked.join(", "))]
    SourceNotNamed {
        /// The sources linked, other than `raw`.
        linked: Vec<&'static str>,
    },
}

/// The paths of a cycle, as `A -> B -> A`.
fn cycle(paths: &[PathName]) -> String {
    let names: Vec<&str> = paths.iter().map(PathName::as_str).collect();
    names.join(" -> ")
}
