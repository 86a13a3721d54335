//! What a Lambda is, as JSON: the description `my-lambda describe` prints (schema
//! [`DESCRIBE_SCHEMA`]), for tools that see a system of Lambdas at once.
//!
//! The description names the sources the Lambda consumes (with their envelopes and settings),
//! its paths with their actions, functions and the parameters each takes, the queues it
//! forwards to (kind, target and the environment variable the target is read from, the path
//! the consumer runs, the options, the kwargs passed on), the dead-letter queue, idempotency,
//! concurrency and the error policy. The JSON Schema of the format is
//! `lpipe-core/describe.schema.json` in the repository; the format's name changes when a
//! change would break a reader.

use serde_json::{json, Value};

use crate::action::Action;
use crate::error::OnError;
use crate::function::Signature;
use crate::pipeline::Pipeline;
use crate::queue::Queue;

/// The name and version of the description's format.
pub const DESCRIBE_SCHEMA: &str = "lpipe.describe/1";

impl Pipeline {
    /// The Lambda's description (see [the module](crate::describe)); `name` is the Lambda's
    /// (its binary's) name.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Action, NoParams, Pipeline, Queue};
    /// # async fn check(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
    /// let pipeline = Pipeline::builder()
    ///     .path("IN", [Action::new().function(check).queue(
    ///         Queue::sqs("next").target_from_env("NEXT_QUEUE").path("CONSUME"))])
    ///     .record_outbound(lpipe_core::sink::MemorySink::new())
    ///     .only_source("raw")
    ///     .build()
    ///     .unwrap();
    /// let described = pipeline.describe("intake");
    /// assert_eq!(described["schema"], "lpipe.describe/1");
    /// let queue = &described["paths"][0]["actions"][0]["queues"][0];
    /// assert_eq!(queue["env"]["var"], "NEXT_QUEUE");
    /// assert_eq!(queue["path"], "CONSUME");
    /// ```
    pub fn describe(&self, name: &str) -> Value {
        let inner = &self.inner;
        let sources: Vec<Value> = inner
            .sources
            .iter()
            .map(|s| with_name(s.name(), s.describe()))
            .collect();
        let paths: Vec<Value> = inner
            .path_order
            .iter()
            .map(|p| json!({"name": p.as_str(), "actions": inner.paths[p].iter().map(action).collect::<Vec<_>>()}))
            .collect();
        json!({
            "schema": DESCRIBE_SCHEMA,
            "lambda": name,
            "sources": sources,
            "detect_source": inner.sources.is_empty(),
            "default_path": inner.default_path.as_ref().map(|p| p.as_str()),
            "paths": paths,
            "dead_letter_queue": inner.dead_letter.as_ref().map(queue),
            "idempotency": self.describe_idempotency(),
            "concurrency": inner.concurrency,
            "max_depth": inner.max_depth,
            "errors": {
                "default": on_error(inner.errors.pipeline),
                "paths": inner.errors.by_path.iter()
                    .map(|(p, e)| (p.as_str().to_owned(), Value::from(on_error(*e))))
                    .collect::<serde_json::Map<_, _>>(),
                "retried_types": inner.errors.retried_type_names.clone(),
            },
            "large_payloads": inner.large_payloads.as_ref().map(|l| json!({
                "read_from": l.allowed_buckets(),
                "offload_to": l.offload_bucket,
                "threshold": l.threshold,
                "delete_after_success": l.delete_after_success,
            })),
        })
    }

    fn describe_idempotency(&self) -> Vec<Value> {
        let policy = &self.inner.idempotency;
        let mut by_path: Vec<_> = policy.by_path.iter().collect();
        by_path.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let scopes = policy
            .pipeline
            .map(|i| (None, i))
            .into_iter()
            .chain(by_path.into_iter().map(|(p, &i)| (Some(p.as_str()), i)));
        scopes
            .map(|(path, i)| {
                let setting = policy.get(i);
                let key = if setting.keyed_by_message_id() {
                    json!({"message_id": true})
                } else {
                    match setting.key_fields() {
                        Some(fields) => json!({"fields": fields}),
                        None => json!({"whole_message": true}),
                    }
                };
                json!({
                    "path": path,
                    "store": setting.store.describe(),
                    "key": key,
                    "namespace": setting.namespace_name(),
                    "expires_after_seconds": setting.expires_after.as_secs(),
                })
            })
            .collect()
    }
}

/// `{"name": name}` and what the thing says of itself.
fn with_name(name: &str, described: Value) -> Value {
    let mut object = match described {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    object.insert("name".to_owned(), name.into());
    Value::Object(object)
}

fn on_error(policy: OnError) -> &'static str {
    match policy {
        OnError::Drop => "drop",
        OnError::Retry => "retry",
    }
}

fn action(action: &Action) -> Value {
    let functions: Vec<Value> = action
        .functions
        .iter()
        .map(|f| {
            let mut params = signature(f.params(), f.optional_params());
            if let Some(schema) = f.schema() {
                params["schema"] = schema.clone();
            }
            json!({"name": f.name(), "params": params})
        })
        .collect();
    let required: Vec<Value> = action
        .required_params
        .iter()
        .map(|p| json!({"from": p.from, "to": p.to}))
        .collect();
    let passes = action.forwarded_fields();
    json!({
        "functions": functions,
        "required_params": required,
        "include_all_params": action.include_all_params,
        "passes": passes,
        "paths": action.paths.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "returns_to": action.returns_to.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "queues": action.queues.iter().map(queue).collect::<Vec<_>>(),
    })
}

fn signature(signature: &Signature, optional: &[&str]) -> Value {
    match signature {
        Signature::Fields(fields) => {
            json!({"kind": "fields", "fields": fields, "optional": optional})
        }
        Signature::Any => json!({"kind": "any"}),
        Signature::None => json!({"kind": "none"}),
    }
}

fn queue(queue: &Queue) -> Value {
    let options: serde_json::Map<String, Value> = queue
        .option_keys()
        .map(|k| (k.to_owned(), queue.get_option(k).unwrap_or("").into()))
        .collect();
    json!({
        "kind": queue.kind().as_str(),
        "target": queue.target(),
        "env": queue.target_env().map(|(var, default)| json!({"var": var, "default": default})),
        "path": queue.consumer_path().map(|p| p.as_str()),
        "options": options,
    })
}
