//! `lpipe graph`: the whole system as one Mermaid flowchart.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

use crate::model::{resource_of, Model};

fn id(parts: &[&str]) -> String {
    parts
        .join("_")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn label(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// The system as a Mermaid flowchart: each Lambda a subgraph of its paths; queues, streams,
/// topics and buses as nodes between them (what feeds a Lambda drawn into the paths producers
/// send it); dead-letter queues and idempotency tables.
pub fn mermaid(model: &Model<'_>) -> String {
    let mut chart = Chart {
        out: String::from("flowchart LR\n"),
        resources: BTreeMap::new(),
    };
    for (lambda, d) in model.descriptions {
        chart.subgraph(lambda, d);
    }
    for (lambda, d) in model.descriptions {
        chart.edges(model, lambda, d);
    }
    chart.triggers(model);
    chart.out
}

/// A chart being drawn: its text, and the resources drawn so far (each once).
struct Chart {
    out: String,
    resources: BTreeMap<String, String>,
}

impl Chart {
    /// The node of a resource (`kind:name`), drawn the first time.
    fn node(&mut self, resource: &str) -> String {
        if let Some(rid) = self.resources.get(resource) {
            return rid.clone();
        }
        let rid = id(&["r", resource]);
        let shape = if resource.starts_with("dynamodb:") {
            format!("{rid}[(\"{}\")]", label(resource))
        } else {
            format!("{rid}[[\"{}\"]]", label(resource))
        };
        let _ = writeln!(self.out, "  {shape}");
        self.resources.insert(resource.to_owned(), rid.clone());
        rid
    }

    /// A Lambda as a subgraph of its paths.
    fn subgraph(&mut self, lambda: &str, d: &Value) {
        let _ = writeln!(
            self.out,
            "  subgraph {}[\"{}\"]",
            id(&["l", lambda]),
            label(lambda)
        );
        for path in d["paths"].as_array().into_iter().flatten() {
            let name = path["name"].as_str().unwrap_or("?");
            let _ = writeln!(
                self.out,
                "    {}([\"{}\"])",
                id(&["p", lambda, name]),
                label(name)
            );
        }
        let _ = writeln!(self.out, "  end");
    }

    /// A Lambda's edges: its paths' runs, returns and forwards, its idempotency tables and its
    /// dead-letter queue.
    fn edges(&mut self, model: &Model<'_>, lambda: &str, d: &Value) {
        for path in d["paths"].as_array().into_iter().flatten() {
            let name = path["name"].as_str().unwrap_or("?");
            let from = id(&["p", lambda, name]);
            for action in path["actions"].as_array().into_iter().flatten() {
                for p in action["paths"].as_array().into_iter().flatten() {
                    let to = own_path(model, lambda, p.as_str().unwrap_or("?"));
                    let _ = writeln!(self.out, "  {from} --> {to}");
                }
                for p in action["returns_to"].as_array().into_iter().flatten() {
                    let to = own_path(model, lambda, p.as_str().unwrap_or("?"));
                    let _ = writeln!(self.out, "  {from} -.->|\"returns\"| {to}");
                }
                for queue in action["queues"].as_array().into_iter().flatten() {
                    let rid = self.node(&resource_of(queue));
                    match queue["path"].as_str() {
                        Some(p) => {
                            let _ = writeln!(self.out, "  {from} -->|\"{}\"| {rid}", label(p));
                        }
                        None => {
                            let _ = writeln!(self.out, "  {from} --> {rid}");
                        }
                    }
                }
            }
            for store in idempotency_tables(d, name) {
                let rid = self.node(&store);
                let _ = writeln!(self.out, "  {from} -.-|\"idempotency\"| {rid}");
            }
        }
        if !d["dead_letter_queue"].is_null() {
            let rid = self.node(&resource_of(&d["dead_letter_queue"]));
            let _ = writeln!(self.out, "  {} -.->|\"dropped\"| {rid}", id(&["l", lambda]));
        }
    }

    /// What feeds each Lambda (through the topic its queue is subscribed to), into the paths the
    /// messages name, or into the Lambda.
    fn triggers(&mut self, model: &Model<'_>) {
        for (lambda, spec) in &model.system.lambdas {
            for trigger in &spec.triggers {
                let Some(resource) = trigger.resource() else {
                    continue;
                };
                let rid = self.node(&resource);
                let mut feeds = vec![resource.clone()];
                if let Some(topic) = trigger.subscription() {
                    let tid = self.node(&topic);
                    let _ = writeln!(self.out, "  {tid} -->|\"subscription\"| {rid}");
                    feeds.push(topic);
                }
                let mut targets: Vec<String> = trigger
                    .paths
                    .iter()
                    .map(|p| own_path(model, lambda, p))
                    .collect();
                for f in model.forwards() {
                    if feeds.contains(&f.resource()) {
                        if let Some(p) = model.target_path(lambda, f.queue) {
                            targets.push(own_path(model, lambda, &p));
                        }
                    }
                }
                if targets.is_empty() {
                    // A bucket or a rule: the paths its source routes to.
                    let source = match resource.split_once(':').map(|(kind, _)| kind) {
                        Some("eventbridge") => "cloudwatch",
                        Some(kind) => kind,
                        None => "",
                    };
                    for p in model.routed_paths(lambda, Some(source)) {
                        targets.push(own_path(model, lambda, &p));
                    }
                }
                targets.sort();
                targets.dedup();
                if targets.is_empty() {
                    targets.push(id(&["l", lambda]));
                }
                for t in targets {
                    let _ = writeln!(self.out, "  {rid} --> {t}");
                }
                if let Some(dlq) = &trigger.dead_letter_queue {
                    let dlq = self.node(&format!("sqs:{}", crate::system::short(dlq)));
                    let _ = writeln!(self.out, "  {rid} -.->|\"redrive\"| {dlq}");
                }
            }
        }
    }
}

/// The node of a Lambda's path, by the dispatcher's matching rules (its declared name).
fn own_path(model: &Model<'_>, lambda: &str, name: &str) -> String {
    let declared = model
        .path(lambda, name)
        .and_then(|p| p["name"].as_str())
        .unwrap_or(name);
    id(&["p", lambda, declared])
}

/// The DynamoDB tables that hold a path's idempotency keys, as `dynamodb:TABLE`.
fn idempotency_tables(d: &Value, path: &str) -> Vec<String> {
    let settings = d["idempotency"].as_array();
    let own = settings
        .into_iter()
        .flatten()
        .find(|i| i["path"].as_str() == Some(path));
    let setting = own.or_else(|| settings.into_iter().flatten().find(|i| i["path"].is_null()));
    setting
        .and_then(|s| s["store"]["table"].as_str())
        .map(|t| vec![format!("dynamodb:{t}")])
        .unwrap_or_default()
}
