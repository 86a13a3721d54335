//! The system file (`lpipe.toml`): the Lambdas of a system, the trigger of each, and the
//! resources outside the system they may send to.
//!
//! ```toml
//! [lambdas.graph]
//! package = "lpipe-examples"   # the cargo package and binary `describe` is asked of
//! binary = "graph"
//!
//! [[lambdas.graph.triggers]]
//! sqs = "lpipe-graph-signups"  # the queue that feeds it (or kinesis, sns, s3, eventbridge, dynamodb)
//! paths = ["SIGNUP"]           # what producers outside the system send it
//! batch_size = 10
//! max_receive_count = 3        # the queue's redrive policy…
//! dead_letter_queue = "lpipe-graph-signups-dlq"  # …and where it redrives to
//!
//! [external]
//! queues = ["sqs:lpipe-graph-signup-dropped"]    # kind:name of what it may send outside
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A system: its Lambdas by name, and what is outside it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    /// The Lambdas, by name.
    pub lambdas: BTreeMap<String, Lambda>,
    /// What the Lambdas may send to outside the system.
    #[serde(default)]
    pub external: External,
    /// What `lpipe template` writes beside what it generates.
    #[serde(default)]
    pub template: TemplateSettings,
}

/// `[template]`: the generated template's properties a team sets itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// Values set at dotted paths of the template, after it is generated
    /// (`"Resources.GraphFunction.Properties.MemorySize" = 512`): they override what is
    /// generated there, or add to it.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
}

/// A DynamoDB table a Lambda reads the name of from an environment variable (an idempotency
/// store the code builds at run time, such as `DynamoDbStore::from_env(table)`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The table's name.
    pub name: String,
    /// The environment variable the Lambda reads it from.
    pub env: String,
}

/// One Lambda of the system.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lambda {
    /// The cargo package of its binary.
    pub package: Option<String>,
    /// Its binary (default: the Lambda's name).
    pub binary: Option<String>,
    /// A description file to read instead of asking the binary (`my-lambda describe > FILE`),
    /// relative to the system file.
    pub description: Option<PathBuf>,
    /// What feeds it.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Its timeout in seconds, in the template (default 30).
    pub timeout: Option<u32>,
    /// Its memory in MB, in the template (default 256).
    pub memory: Option<u32>,
    /// Its architecture, in the template: `arm64` (the default) or `x86_64`.
    pub architecture: Option<String>,
    /// Its idempotency table, when the code reads the name from the environment (a store
    /// built in the code with a fixed table is in its description).
    pub idempotency_table: Option<Table>,
}

/// What feeds a Lambda: one resource (a queue, stream, topic, bucket, bus rule or table), and
/// its event source mapping's settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// An SQS queue (name).
    pub sqs: Option<String>,
    /// A Kinesis stream.
    pub kinesis: Option<String>,
    /// An SNS topic that invokes the Lambda directly.
    pub sns: Option<String>,
    /// An S3 bucket whose notifications invoke the Lambda directly.
    pub s3: Option<String>,
    /// An EventBridge bus whose rule targets the Lambda.
    pub eventbridge: Option<String>,
    /// A DynamoDB table whose stream feeds the Lambda.
    pub dynamodb: Option<String>,
    /// For an SQS trigger: the SNS topic (`sns:NAME`) or bus the queue is subscribed to.
    pub subscribed_to: Option<String>,
    /// With `subscribed_to` a topic: the subscription's raw message delivery.
    #[serde(default)]
    pub raw_message_delivery: bool,
    /// The paths producers outside the system send it (entry points).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The mapping's batch size.
    pub batch_size: Option<u32>,
    /// The mapping's batching window.
    pub window_seconds: Option<u32>,
    /// Kinesis / DynamoDB Streams: the mapping's retries.
    pub maximum_retry_attempts: Option<i32>,
    /// SQS: the queue's redrive policy's receive count.
    pub max_receive_count: Option<u32>,
    /// SQS: where the queue redrives to.
    pub dead_letter_queue: Option<String>,
    /// Kinesis / DynamoDB Streams: where the mapping starts, `TRIM_HORIZON` or `LATEST`
    /// (`lpipe up` and the template start from `TRIM_HORIZON` unless told).
    pub starting_position: Option<String>,
    /// EventBridge: the rule's event pattern (the template's rule).
    pub pattern: Option<toml::Value>,
    /// DynamoDB Streams: the table's hash key (a string attribute), for `lpipe up` to create
    /// the table with its stream when it is not there (default `id`).
    pub table_key: Option<String>,
}

impl Trigger {
    /// Whether the service invokes the Lambda itself, asynchronously (a topic, a bucket's
    /// notifications, a rule), rather than an event source mapping polling for it.
    pub fn invokes_asynchronously(&self) -> bool {
        self.sns.is_some() || self.s3.is_some() || self.eventbridge.is_some()
    }

    /// The topic (or bus) its queue is subscribed to, as `kind:name`.
    pub fn subscription(&self) -> Option<String> {
        self.subscribed_to.as_deref().map(resource)
    }

    /// The resource, as `kind:name`.
    pub fn resource(&self) -> Option<String> {
        let named = [
            ("sqs", &self.sqs),
            ("kinesis", &self.kinesis),
            ("sns", &self.sns),
            ("s3", &self.s3),
            ("eventbridge", &self.eventbridge),
            ("dynamodb", &self.dynamodb),
        ];
        let mut found = named
            .iter()
            .filter_map(|(kind, name)| name.as_ref().map(|n| resource(&format!("{kind}:{n}"))));
        let first = found.next();
        first.filter(|_| found.next().is_none())
    }
}

/// What the Lambdas may send to outside the system.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct External {
    /// Queues, streams, topics and buses, as `kind:name`.
    #[serde(default)]
    pub queues: Vec<String>,
}

/// A resource as the system names it, `kind:name`, from `kind:` and a name, URL or ARN (a
/// spec without a kind is taken as it is).
pub fn resource(spec: &str) -> String {
    match spec.split_once(':') {
        Some((kind, target)) => format!("{kind}:{}", short(target)),
        None => spec.to_owned(),
    }
}

/// A resource's name from a name, URL or ARN: the last `:` or `/` segment.
pub fn short(target: &str) -> &str {
    target.rsplit([':', '/']).next().unwrap_or(target)
}

impl System {
    /// Reads a system file.
    ///
    /// # Errors
    ///
    /// What is wrong with it, naming the file (and the line, for TOML errors).
    pub fn read(path: &Path) -> Result<System, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let system: System =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (name, lambda) in &system.lambdas {
            for (i, trigger) in lambda.triggers.iter().enumerate() {
                if trigger.resource().is_none() {
                    return Err(format!(
                        "{}: lambda '{name}', trigger {}: name exactly one of sqs, kinesis, sns, s3, eventbridge, dynamodb",
                        path.display(),
                        i + 1
                    ));
                }
            }
        }
        Ok(system)
    }
}
