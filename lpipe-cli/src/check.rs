//! `lpipe check`: what would break across the Lambdas of a system.

use std::collections::{BTreeMap, BTreeSet};

use lpipe_core::pipeline::PathName;
use serde::Serialize;
use serde_json::Value;

use crate::model::{resource_of, Model};
use crate::system::resource;

/// How bad a problem is: errors fail the check, warnings are said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Breaks the system (messages lost, dropped or looping).
    Error,
    /// Likely a mistake.
    Warning,
}

/// One problem, and where it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// Error or warning.
    pub level: Level,
    /// The rule it breaks (`unconsumed-queue`, `missing-path`, …).
    pub rule: &'static str,
    /// The Lambda.
    pub lambda: String,
    /// The path, if one.
    pub path: Option<String>,
    /// The queue, as `kind:name`, if one.
    pub queue: Option<String>,
    /// The field (kwarg), if one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level}[{}]: lambda {}", self.rule, self.lambda)?;
        if let Some(p) = &self.path {
            write!(f, ", path {p}")?;
        }
        if let Some(q) = &self.queue {
            write!(f, ", queue {q}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(
        &mut self,
        (level, rule): (Level, &'static str),
        (lambda, path, queue, field): (&str, Option<&str>, Option<&str>, Option<&str>),
        message: String,
    ) {
        self.0.push(Problem {
            level,
            rule,
            lambda: lambda.to_owned(),
            path: path.map(str::to_owned),
            queue: queue.map(str::to_owned),
            field: field.map(str::to_owned),
            message,
        });
    }
}

/// Every problem of the system, errors first.
pub fn check(model: &Model<'_>) -> Vec<Problem> {
    let mut problems = Problems(Vec::new());
    forwards(model, &mut problems);
    dead_letter_queues(model, &mut problems);
    redrive(model, &mut problems);
    unreached_paths(model, &mut problems);
    cycles(model, &mut problems);
    let mut all = problems.0;
    all.sort();
    all.dedup();
    all
}

/// Each forward reaches a consumer that has its path and gets the kwargs it needs; FIFO queues
/// get a group.
fn forwards(model: &Model<'_>, problems: &mut Problems) {
    let external: BTreeSet<String> = external(model);
    for f in model.forwards() {
        let resource = f.resource();
        let at = (f.lambda, Some(f.path), Some(resource.as_str()), None);
        let fifo = f.queue["target"].as_str().unwrap_or("").ends_with(".fifo");
        let options = &f.queue["options"];
        if fifo
            && options.get("message_group_id").is_none()
            && options.get("message_group_id_from").is_none()
        {
            problems.add(
                (Level::Error, "fifo-without-group"),
                at,
                format!("action {} sends to a FIFO queue without a message group (set message_group_id_from or message_group_id): every message would be grouped by a digest of its body, so related messages keep no order", f.action),
            );
        }
        let consumers = model.consumers.get(&resource);
        let Some(consumers) = consumers.filter(|c| !c.is_empty()) else {
            if !external.contains(&resource) {
                problems.add(
                    (Level::Error, "unconsumed-queue"),
                    at,
                    format!("action {} forwards to {resource}, which no Lambda of the system consumes and which is not declared external ([external] queues)", f.action),
                );
            }
            continue;
        };
        for (consumer, _) in consumers {
            let Some(target) = model.target_path(consumer, f.queue) else {
                problems.add(
                    (Level::Error, "missing-path"),
                    at,
                    format!(
                        "action {} sends bare kwargs to {consumer}, which has no default path",
                        f.action
                    ),
                );
                continue;
            };
            match model.path(consumer, &target) {
                None => {
                    let has: Vec<&str> = model.descriptions[*consumer]["paths"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["name"].as_str())
                        .collect();
                    problems.add(
                        (Level::Error, "missing-path"),
                        at,
                        format!(
                            "action {} sends path {target} to {consumer}, which has no such path (it has: {})",
                            f.action,
                            has.join(", ")
                        ),
                    );
                }
                Some(path) => {
                    params(f, consumer, path, problems);
                    types(model, f, consumer, path, problems);
                }
            }
        }
    }
}

/// The kwargs the target path's first action needs, against what the forward passes.
fn params(f: &crate::model::Forward<'_>, consumer: &str, path: &Value, problems: &mut Problems) {
    let Some(passed) = f.action_json["passes"].as_array() else {
        return; // every kwarg is passed on
    };
    let passed: BTreeSet<&str> = passed.iter().filter_map(Value::as_str).collect();
    let Some(first) = path["actions"].get(0) else {
        return;
    };
    if first["include_all_params"] == true {
        return;
    }
    let target = path["name"].as_str().unwrap_or("?");
    let resource = f.resource();
    let at = |field: &'static str| (f.lambda, Some(f.path), Some(resource.as_str()), field);
    // Required parameters must be there (the consumer drops the record otherwise).
    for required in first["required_params"].as_array().into_iter().flatten() {
        let from = required["from"].as_str().unwrap_or("");
        if !passed.contains(from) {
            let (lambda, path, queue, _) = at("");
            problems.add(
                (Level::Error, "missing-param"),
                (lambda, path, queue, Some(from)),
                format!("action {} does not pass {from}, which {consumer}'s path {target} requires (it passes: {})", f.action, list(&passed)),
            );
        }
    }
    // The functions' fields, but those their types can do without.
    for function in first["functions"].as_array().into_iter().flatten() {
        if function["params"]["kind"] != "fields" {
            continue;
        }
        let optional: BTreeSet<&str> = function["params"]["optional"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for field in function["params"]["fields"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let field = field.as_str().unwrap_or("");
            if !passed.contains(field) && !optional.contains(field) {
                let (lambda, path, queue, _) = at("");
                problems.add(
                    (Level::Error, "missing-param"),
                    (lambda, path, queue, Some(field)),
                    format!(
                        "action {} does not pass {field}, which {}, the first function of {consumer}'s path {target}, requires: the consumer would drop every such record (it passes: {})",
                        f.action,
                        function["name"].as_str().unwrap_or("?"),
                        list(&passed)
                    ),
                );
            }
        }
    }
}

/// Where both sides have schemas (`with_schema`): the type of each kwarg the forward passes,
/// as the forwarding path's functions take it, against the type the target path's first
/// action takes.
fn types(
    model: &Model<'_>,
    f: &crate::model::Forward<'_>,
    consumer: &str,
    path: &Value,
    problems: &mut Problems,
) {
    let Some(passed) = f.action_json["passes"].as_array() else {
        return;
    };
    let Some(forwarding_path) = model.path(f.lambda, f.path) else {
        return;
    };
    fn functions(actions: &[Value]) -> Vec<&Value> {
        actions
            .iter()
            .flat_map(|a| a["functions"].as_array().into_iter().flatten())
            .collect()
    }
    let upstream: Vec<&Value> = forwarding_path["actions"]
        .as_array()
        .map(|a| functions(a))
        .unwrap_or_default();
    // The target path's first action: what the forwarded kwargs meet.
    let downstream: Vec<&Value> = path["actions"]
        .get(0)
        .map(|first| functions(std::slice::from_ref(first)))
        .unwrap_or_default();
    let target = path["name"].as_str().unwrap_or("?");
    let resource = f.resource();
    for field in passed.iter().filter_map(Value::as_str) {
        // The kwarg the forward renames to `field`, if it does.
        let from = f.action_json["required_params"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["to"] == field)
            .and_then(|p| p["from"].as_str())
            .unwrap_or(field);
        let Some((sender, sent)) = upstream
            .iter()
            .find_map(|u| Some((u, crate::types::field_types(u, from)?)))
        else {
            continue;
        };
        for &taker in &downstream {
            let Some(taken) = crate::types::field_types(taker, field) else {
                continue;
            };
            if !crate::types::accepted(&sent, &taken) {
                let name = |v: &Value| v["name"].as_str().unwrap_or("?").to_owned();
                problems.add(
                    (Level::Error, "type-mismatch"),
                    (f.lambda, Some(f.path), Some(resource.as_str()), Some(field)),
                    format!(
                        "action {} passes {field} as {} ({} takes {from} as such), but {}, the first function of {consumer}'s path {target}, takes it as {}: the consumer would drop every such record",
                        f.action,
                        crate::types::describe(&sent),
                        name(sender),
                        name(taker),
                        crate::types::describe(&taken),
                    ),
                );
            }
        }
    }
}

fn list(fields: &BTreeSet<&str>) -> String {
    if fields.is_empty() {
        "nothing".to_owned()
    } else {
        fields.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

fn external(model: &Model<'_>) -> BTreeSet<String> {
    model
        .system
        .external
        .queues
        .iter()
        .map(|q| resource(q))
        .collect()
}

/// A dead-letter queue that nothing reads is where dropped records are lost from sight.
fn dead_letter_queues(model: &Model<'_>, problems: &mut Problems) {
    let external = external(model);
    for (lambda, d) in model.descriptions {
        let queue = &d["dead_letter_queue"];
        if queue.is_null() {
            continue;
        }
        let resource = resource_of(queue);
        if !external.contains(&resource) && !model.consumers.contains_key(&resource) {
            problems.add(
                (Level::Warning, "unconsumed-dead-letter-queue"),
                (lambda, None, Some(&resource), None),
                "the dead-letter queue is neither consumed by a Lambda of the system nor declared external".to_owned(),
            );
        }
    }
}

/// A queue a Lambda consumes needs a redrive policy, or a poison message is retried until it
/// expires.
fn redrive(model: &Model<'_>, problems: &mut Problems) {
    for (name, lambda) in &model.system.lambdas {
        if lambda.triggers.is_empty() {
            problems.add(
                (Level::Warning, "no-trigger"),
                (name, None, None, None),
                "the system file names no trigger for it".to_owned(),
            );
        }
        for trigger in &lambda.triggers {
            if trigger.sqs.is_some()
                && (trigger.dead_letter_queue.is_none() || trigger.max_receive_count.is_none())
            {
                let resource = trigger.resource().unwrap_or_default();
                problems.add(
                    (Level::Error, "no-redrive"),
                    (name, None, Some(&resource), None),
                    "the queue it consumes has no redrive policy (set dead_letter_queue and max_receive_count on the trigger): a record kept for retry would come back until it expires".to_owned(),
                );
            }
        }
    }
}

/// Paths nothing reaches: no producer outside the system (a trigger's `paths`), no queue, no
/// other path, no route, and not the default path.
fn unreached_paths(model: &Model<'_>, problems: &mut Problems) {
    let mut reached: BTreeMap<&str, BTreeSet<PathName>> = BTreeMap::new();
    for (name, lambda) in &model.system.lambdas {
        let set = reached.entry(name.as_str()).or_default();
        for trigger in &lambda.triggers {
            set.extend(trigger.paths.iter().map(PathName::new));
        }
    }
    for f in model.forwards() {
        for (consumer, _) in model.consumers.get(&f.resource()).into_iter().flatten() {
            if let Some(p) = model.target_path(consumer, f.queue) {
                reached
                    .entry(consumer)
                    .or_default()
                    .insert(PathName::new(p));
            }
        }
    }
    for (lambda, d) in model.descriptions {
        let set = reached.entry(lambda.as_str()).or_default();
        if let Some(p) = d["default_path"].as_str() {
            set.insert(PathName::new(p));
        }
        set.extend(model.routed_paths(lambda, None).iter().map(PathName::new));
        for path in d["paths"].as_array().into_iter().flatten() {
            for action in path["actions"].as_array().into_iter().flatten() {
                for key in ["paths", "returns_to"] {
                    for p in action[key].as_array().into_iter().flatten() {
                        set.extend(p.as_str().map(PathName::new));
                    }
                }
            }
        }
        for path in d["paths"].as_array().into_iter().flatten() {
            let name = path["name"].as_str().unwrap_or("?");
            if !set.contains(&PathName::new(name)) {
                problems.add(
                    (Level::Warning, "unreached-path"),
                    (lambda, Some(name), None, None),
                    "nothing reaches it: no queue of the system, no other path, no route, and no trigger's `paths` (what producers outside the system send)".to_owned(),
                );
            }
        }
    }
}

/// A cycle through queues: messages that could go round for ever.
fn cycles(model: &Model<'_>, problems: &mut Problems) {
    // Nodes: (lambda, path). Edges: a path's actions' paths and returns, and forwards.
    let mut edges: BTreeMap<(String, PathName), BTreeSet<(String, PathName)>> = BTreeMap::new();
    for (lambda, d) in model.descriptions {
        for path in d["paths"].as_array().into_iter().flatten() {
            let from = (
                lambda.clone(),
                PathName::new(path["name"].as_str().unwrap_or("?")),
            );
            let to = edges.entry(from).or_default();
            for action in path["actions"].as_array().into_iter().flatten() {
                for key in ["paths", "returns_to"] {
                    for p in action[key].as_array().into_iter().flatten() {
                        to.extend(p.as_str().map(|p| (lambda.clone(), PathName::new(p))));
                    }
                }
            }
        }
    }
    for f in model.forwards() {
        let from = (f.lambda.to_owned(), PathName::new(f.path));
        for (consumer, _) in model.consumers.get(&f.resource()).into_iter().flatten() {
            if let Some(p) = model.target_path(consumer, f.queue) {
                let to = ((*consumer).to_owned(), PathName::new(p));
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let crosses = cycle.windows(2).any(|w| w[0].0 != w[1].0);
        if crosses {
            let text: Vec<String> = cycle.iter().map(|(l, p)| format!("{l}:{p}")).collect();
            let (lambda, path) = &cycle[0];
            problems.add(
                (Level::Error, "cycle"),
                (lambda, Some(path.as_str()), None, None),
                format!("messages can go round for ever: {}", text.join(" -> ")),
            );
        }
    }
}

type Node = (String, PathName);

/// A cycle, as its nodes with the first repeated at the end.
fn find_cycle(edges: &BTreeMap<Node, BTreeSet<Node>>) -> Option<Vec<Node>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &Node,
        edges: &BTreeMap<Node, BTreeSet<Node>>,
        marks: &mut BTreeMap<Node, Mark>,
        stack: &mut Vec<Node>,
    ) -> Option<Vec<Node>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|n| n == node)?;
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}
