//! The system as one graph: each Lambda's paths (from its description), the queues its actions
//! forward to, and which Lambda consumes each queue (from the system file's triggers).

use std::collections::{BTreeMap, BTreeSet};

use lpipe_core::pipeline::PathName;
use serde_json::Value;

use crate::system::{resource, System, Trigger};

/// A queue (stream, topic, bus) as `kind:name`.
pub type Resource = String;

/// The system: its Lambdas' descriptions, and who consumes what.
pub struct Model<'s> {
    /// The system file.
    pub system: &'s System,
    /// Each Lambda's description, by name.
    pub descriptions: &'s BTreeMap<String, Value>,
    /// The Lambdas each resource feeds, with the trigger that says so.
    pub consumers: BTreeMap<Resource, Vec<(&'s str, &'s Trigger)>>,
    /// Every forward of every Lambda, in order.
    forwards: Vec<Forward<'s>>,
}

/// One forward: a Lambda's action sending to a queue.
pub struct Forward<'d> {
    /// The forwarding Lambda.
    pub lambda: &'d str,
    /// Its path.
    pub path: &'d str,
    /// The action's place in the path, from 1.
    pub action: usize,
    /// The action (its description).
    pub action_json: &'d Value,
    /// The queue (its description).
    pub queue: &'d Value,
}

impl Forward<'_> {
    /// The queue as `kind:name`.
    pub fn resource(&self) -> Resource {
        resource_of(self.queue)
    }
}

/// A queue's description as `kind:name`.
pub fn resource_of(queue: &Value) -> Resource {
    let kind = queue["kind"].as_str().unwrap_or("?");
    resource(&format!(
        "{kind}:{}",
        queue["target"].as_str().unwrap_or("?")
    ))
}

impl<'s> Model<'s> {
    /// The model of a system and its descriptions.
    pub fn new(system: &'s System, descriptions: &'s BTreeMap<String, Value>) -> Self {
        let mut consumers: BTreeMap<Resource, Vec<(&str, &Trigger)>> = BTreeMap::new();
        for (name, lambda) in &system.lambdas {
            for trigger in &lambda.triggers {
                if let Some(resource) = trigger.resource() {
                    consumers
                        .entry(resource)
                        .or_default()
                        .push((name.as_str(), trigger));
                }
                // A queue subscribed to a topic (or a bus's rule): the topic feeds it too.
                if let Some(topic) = trigger.subscription() {
                    consumers
                        .entry(topic)
                        .or_default()
                        .push((name.as_str(), trigger));
                }
            }
        }
        Model {
            system,
            descriptions,
            consumers,
            forwards: forwards(descriptions),
        }
    }

    /// Every forward of every Lambda, in order.
    pub fn forwards(&self) -> &[Forward<'s>] {
        &self.forwards
    }

    /// A Lambda's path of this name, by the dispatcher's rules (case-insensitive, the part
    /// after the last `.`).
    pub fn path<'a>(&'a self, lambda: &str, name: &str) -> Option<&'a Value> {
        let wanted = PathName::new(name);
        self.descriptions.get(lambda)?["paths"]
            .as_array()?
            .iter()
            .find(|p| {
                p["name"]
                    .as_str()
                    .is_some_and(|n| PathName::new(n) == wanted)
            })
    }

    /// The path a message to this queue runs in a consumer: the queue's path, else the
    /// consumer's default path.
    pub fn target_path(&self, consumer: &str, queue: &Value) -> Option<String> {
        queue["path"]
            .as_str()
            .or_else(|| self.descriptions.get(consumer)?["default_path"].as_str())
            .map(str::to_owned)
    }

    /// The paths of a Lambda its sources route to (S3 and EventBridge routes, envelopes'); only
    /// those of the source of this name, if given.
    pub fn routed_paths(&self, lambda: &str, source: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        let Some(d) = self.descriptions.get(lambda) else {
            return out;
        };
        fn collect(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (key, v) in map {
                        match (key.as_str(), v) {
                            ("path", Value::String(p)) => out.push(p.clone()),
                            ("routes", Value::Object(routes)) => out.extend(
                                routes
                                    .values()
                                    .filter_map(|p| p.as_str().map(str::to_owned)),
                            ),
                            _ => collect(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        for s in d["sources"].as_array().into_iter().flatten() {
            if source.is_none_or(|name| s["name"] == name) {
                collect(s, &mut out);
            }
        }
        out
    }
}

/// Every forward of every Lambda, in order.
fn forwards(descriptions: &BTreeMap<String, Value>) -> Vec<Forward<'_>> {
    let mut out = Vec::new();
    for (lambda, d) in descriptions {
        for path in d["paths"].as_array().into_iter().flatten() {
            let path_name = path["name"].as_str().unwrap_or("?");
            for (i, action) in path["actions"].as_array().into_iter().flatten().enumerate() {
                for queue in action["queues"].as_array().into_iter().flatten() {
                    out.push(Forward {
                        lambda,
                        path: path_name,
                        action: i + 1,
                        action_json: action,
                        queue,
                    });
                }
            }
        }
    }
    out
}

/// Every queue (stream, topic, bus) a Lambda's description says it sends to: its actions'
/// queues, then its dead-letter queue.
pub fn sent_to(description: &Value) -> Vec<&Value> {
    let mut queues: Vec<&Value> = description["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|path| path["actions"].as_array().into_iter().flatten())
        .flat_map(|action| action["queues"].as_array().into_iter().flatten())
        .collect();
    if !description["dead_letter_queue"].is_null() {
        queues.push(&description["dead_letter_queue"]);
    }
    queues
}

/// A Lambda's description's source of this name (`sqs`, `kinesis`, `s3`, …).
pub fn source<'d>(description: &'d Value, name: &str) -> Option<&'d Value> {
    description["sources"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// A DynamoDB idempotency table a Lambda's code names (`DynamoDbStore`): its name, key
/// attribute and TTL attribute.
pub struct StoreTable<'d> {
    /// The table's name, as the code names it.
    pub name: &'d str,
    /// Its hash key attribute.
    pub key: &'d str,
    /// Its TTL attribute.
    pub ttl: &'d str,
}

/// The DynamoDB tables of the idempotency stores a Lambda's description names.
pub fn store_tables(description: &Value) -> Vec<StoreTable<'_>> {
    description["idempotency"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|scope| &scope["store"])
        .filter(|store| store["kind"] == "dynamodb")
        .filter_map(|store| {
            Some(StoreTable {
                name: store["table"].as_str()?,
                key: store["key_attribute"].as_str()?,
                ttl: store["ttl_attribute"].as_str()?,
            })
        })
        .collect()
}

/// The S3 notifications a Lambda's `s3` source routes (`s3:ObjectCreated:*`, …); every object
/// created when it names none.
pub fn s3_events(description: &Value) -> Vec<String> {
    let mut events: BTreeSet<String> = source(description, "s3")
        .and_then(|s| s["routes"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r["event"].as_str())
        .map(|e| format!("s3:{e}"))
        .collect();
    if events.is_empty() {
        events.insert("s3:ObjectCreated:*".to_owned());
    }
    events.into_iter().collect()
}
