//! What `PipelineBuilder::build` checks: the paths, each action and its queues, the
//! dead-letter queue, the per-path policies and the sources, before any record is touched.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::action::Action;
use crate::context::StateMap;
use crate::error::{GraphLocation, InvalidConfigurationError, QueueProblem};
use crate::idempotency::Idempotency;
use crate::path::PathName;
use crate::queue::Queue;
use crate::registry::Registry;
use crate::sink::Sink;
use crate::source::EventSource;

use super::{ErrorPolicy, IdempotencyPolicy, Paths};

/// The sinks that record messages instead of sending them: every message (`catch_all`, the
/// local mode and tests), or those of kinds without a sink (`fallback`, the local mode with
/// `--send`).
pub(super) struct Recording {
    pub(super) catch_all: Option<Arc<dyn Sink>>,
    pub(super) fallback: Option<Arc<dyn Sink>>,
}

impl Recording {
    /// The sink that takes a queue's messages in place of its own, if any.
    fn any(&self) -> Option<&Arc<dyn Sink>> {
        self.catch_all.as_ref().or(self.fallback.as_ref())
    }
}

/// The declared paths by name, and their names in declaration order.
pub(super) fn collect_paths(
    declared: Vec<(PathName, Vec<Action>)>,
) -> Result<(Paths, Vec<PathName>), InvalidConfigurationError> {
    use InvalidConfigurationError as E;
    let mut paths = HashMap::default();
    let mut order = Vec::new();
    for (name, actions) in declared {
        if name.as_str().is_empty() {
            return Err(E::EmptyPathName);
        }
        if paths.contains_key(&name) {
            return Err(E::DuplicatePath { path: name });
        }
        if actions.is_empty() {
            return Err(E::NoActions { path: name });
        }
        order.push(name.clone());
        paths.insert(name, actions);
    }
    Ok((paths, order))
}

/// One action: something to do, paths that exist, queues that can be sent to (and whose
/// `*_from` options name kwargs it passes on), the state its functions take, named params.
pub(super) fn check_action(
    at: GraphLocation,
    action: &Action,
    paths: &Paths,
    registry: &Registry,
    sinks: &Recording,
    state: &StateMap,
) -> Result<(), InvalidConfigurationError> {
    use InvalidConfigurationError as E;
    if action.is_empty() {
        return Err(E::EmptyAction { at });
    }
    if let Some(p) = action.paths.iter().find(|p| !paths.contains_key(*p)) {
        let path = p.clone();
        return Err(E::UnknownPath { at, path });
    }
    for p in &action.returns_to {
        let path = p.clone();
        if action.functions.is_empty() {
            return Err(E::ReturnWithoutFunctions { at, path });
        }
        if !paths.contains_key(p) {
            return Err(E::UnknownReturnPath { at, path });
        }
    }
    for q in &action.queues {
        check_kwarg_options(q, action).map_err(|problem| queue_error(at.clone(), q, problem))?;
        if sinks.catch_all.is_none()
            && sinks.fallback.is_some()
            && registry.sink(q.kind()).is_none()
        {
            tracing::warn!(queue = %q, "no sink for queue kind '{}': its messages are recorded, not sent", q.kind());
        }
        check_queue(q, registry, sinks.any())
            .map_err(|problem| queue_error(at.clone(), q, problem))?;
    }
    for f in &action.functions {
        if let Some((type_id, type_name)) = f.state {
            if !state.contains_key(&type_id) {
                let function = f.name;
                return Err(E::MissingState {
                    at,
                    function,
                    type_name,
                });
            }
        }
    }
    if action
        .required_params
        .iter()
        .any(|p| p.from.is_empty() || p.to.is_empty())
    {
        return Err(E::EmptyParamName { at });
    }
    Ok(())
}

/// The dead-letter queue: no path, and a sink that takes it.
pub(super) fn check_dead_letter_queue(
    q: &Queue,
    registry: &Registry,
    sinks: &Recording,
) -> Result<(), InvalidConfigurationError> {
    if q.consumer_path().is_some() {
        return Err(InvalidConfigurationError::DeadLetterWithPath {
            queue: q.to_string(),
        });
    }
    check_queue(q, registry, sinks.any())
        .map_err(|problem| queue_error(GraphLocation::DeadLetterQueue, q, problem))
}

/// The per-path policies name declared paths, and idempotency keys are made of fields their
/// paths take.
pub(super) fn check_policies(
    errors: &ErrorPolicy,
    idempotency: &IdempotencyPolicy,
    paths: &Paths,
    path_order: &[PathName],
) -> Result<(), InvalidConfigurationError> {
    use InvalidConfigurationError as E;
    if let Some(unknown) = errors.by_path.keys().find(|p| !paths.contains_key(*p)) {
        let path = unknown.clone();
        return Err(E::UnknownErrorPolicyPath { path });
    }
    if let Some(unknown) = idempotency.by_path.keys().find(|p| !paths.contains_key(*p)) {
        let path = unknown.clone();
        return Err(E::UnknownIdempotentPath { path });
    }
    if idempotency
        .all
        .iter()
        .any(|i| i.key_fields().is_some_and(<[String]>::is_empty))
    {
        return Err(E::EmptyIdempotencyKey);
    }
    for name in path_order {
        if let Some((_, setting)) = idempotency.of(name) {
            check_key_fields(name, &paths[name], setting)?;
        }
    }
    Ok(())
}

/// The sources a pipeline consumes: those it names; none (any, by detection) only when it asks
/// for detection or the binary links at most one source besides `raw`.
pub(super) fn named_sources(
    names: Vec<String>,
    detect: bool,
    registry: &Registry,
) -> Result<Vec<Arc<dyn EventSource>>, InvalidConfigurationError> {
    let mut sources = Vec::new();
    for name in names {
        match registry.source(&name) {
            Some(s) => sources.push(s),
            None => {
                let registered = registry.source_names();
                return Err(InvalidConfigurationError::UnknownSource { name, registered });
            }
        }
    }
    if sources.is_empty() && !detect {
        let linked: Vec<&'static str> = registry
            .source_names()
            .into_iter()
            .filter(|name| *name != crate::source::RawSource::NAME)
            .collect();
        if linked.len() > 1 {
            return Err(InvalidConfigurationError::SourceNotNamed { linked });
        }
    }
    Ok(sources)
}

/// The options of a queue that name a kwarg (`message_group_id_from`, `partition_key_from`:
/// any option whose name ends in `_from`) must name one its action passes on, when that is
/// known at build time.
fn check_kwarg_options(queue: &Queue, action: &Action) -> Result<(), QueueProblem> {
    let Some(forwarded) = action.forwarded_fields() else {
        return Ok(());
    };
    for (option, field) in queue.kwarg_options() {
        if !forwarded.contains(field) {
            return Err(QueueProblem::FieldNotForwarded {
                option: option.to_owned(),
                field: field.to_owned(),
                forwarded: forwarded.iter().map(|f| (*f).to_owned()).collect(),
            });
        }
    }
    Ok(())
}

/// An idempotent path's key fields must be kwargs its functions (or required parameters)
/// take, when that is known at build time: a field none of them takes is a misspelt name, and
/// every record would be dropped for lacking it.
fn check_key_fields(
    path: &PathName,
    actions: &[Action],
    idempotency: &Idempotency,
) -> Result<(), InvalidConfigurationError> {
    let Some(fields) = idempotency.key_fields() else {
        return Ok(());
    };
    let mut taken = BTreeSet::new();
    for action in actions {
        match action.read_fields() {
            Some(read) => taken.extend(read),
            None => return Ok(()),
        }
    }
    match fields.iter().find(|f| !taken.contains(f.as_str())) {
        Some(field) => Err(InvalidConfigurationError::UnknownKeyField {
            path: path.clone(),
            field: field.clone(),
            taken: taken.iter().map(|f| (*f).to_owned()).collect(),
        }),
        None => Ok(()),
    }
}

fn queue_error(
    at: GraphLocation,
    queue: &Queue,
    problem: QueueProblem,
) -> InvalidConfigurationError {
    InvalidConfigurationError::Queue {
        at,
        queue: queue.clone(),
        problem,
    }
}

/// Whether a queue can be sent to: a target, a sink for its kind, options that sink knows and
/// a queue it accepts. The sink registered for the kind judges options and target even when
/// another sink records the messages (the local mode), so that a mistake shows before
/// deploying.
pub(crate) fn check_queue(
    q: &Queue,
    registry: &Registry,
    catch_all: Option<&Arc<dyn Sink>>,
) -> Result<(), QueueProblem> {
    if q.target().is_empty() {
        return Err(QueueProblem::EmptyTarget);
    }
    if let Some(own) = registry.sink(q.kind()) {
        if let Some(known) = own.options() {
            if let Some(unknown) = q.option_keys().find(|k| !known.contains(k)) {
                return Err(QueueProblem::UnknownOption {
                    option: unknown.to_owned(),
                    known: known.to_vec(),
                });
            }
        }
        if catch_all.is_some() {
            own.validate(q).map_err(QueueProblem::Rejected)?;
        }
    }
    let sink = catch_all
        .cloned()
        .or_else(|| registry.sink(q.kind()))
        .ok_or_else(|| QueueProblem::NoSink {
            registered: registry.sink_kinds(),
        })?;
    sink.validate(q).map_err(QueueProblem::Rejected)
}

pub(super) fn find_cycle(order: &[PathName], paths: &Paths) -> Option<Vec<PathName>> {
    // Depth-first search over "action runs path" edges; returned payloads are dynamic and are
    // bounded by max_depth instead.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    fn visit<'a>(
        p: &'a PathName,
        paths: &'a Paths,
        marks: &mut HashMap<&'a PathName, Mark>,
        stack: &mut Vec<&'a PathName>,
    ) -> Option<Vec<PathName>> {
        match marks.get(p) {
            Some(Mark::Done) => return None,
            Some(Mark::Active) => {
                let start = stack.iter().position(|s| *s == p).unwrap_or(0);
                let mut names: Vec<PathName> =
                    stack[start..].iter().map(|s| (*s).clone()).collect();
                names.push(p.clone());
                return Some(names);
            }
            None => {}
        }
        marks.insert(p, Mark::Active);
        stack.push(p);
        let next: BTreeSet<&PathName> = paths[p].iter().flat_map(|a| a.paths.iter()).collect();
        for n in next {
            if let Some(c) = visit(n, paths, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(p, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for p in order {
        let mut stack = Vec::new();
        if let Some(c) = visit(p, paths, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}
