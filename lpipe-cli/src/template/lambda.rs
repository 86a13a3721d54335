//! Each Lambda of the template: its function, log group, role (the grants of its mappings,
//! sinks, dead-letter queue and stores) and events.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::{
    get_att, logical_id, reference, resource_id, Builder, DEFAULT_STREAM_RETRIES, DEFAULT_TIMEOUT,
};
use crate::model::{resource_of, s3_events, sent_to, source, store_tables};
use crate::system::{short, Lambda, Trigger};

/// The IAM statements of one function: actions by resource (the resource's JSON as key).
#[derive(Default)]
struct Grants(BTreeMap<String, (Value, BTreeSet<&'static str>)>);

impl Grants {
    fn allow(&mut self, resource: Value, actions: &[&'static str]) {
        let entry = self
            .0
            .entry(resource.to_string())
            .or_insert_with(|| (resource, BTreeSet::new()));
        entry.1.extend(actions.iter().copied());
    }

    fn statements(self) -> Vec<Value> {
        self.0
            .into_values()
            .map(|(resource, actions)| {
                json!({"Effect": "Allow", "Action": actions.into_iter().collect::<Vec<_>>(), "Resource": resource})
            })
            .collect()
    }
}

impl Builder<'_, '_> {
    /// A Lambda: its function, log group, role and mappings.
    pub(super) fn function(&mut self, name: &str, lambda: &Lambda) -> Result<(), String> {
        let description = &self.model.descriptions[name];
        let function_name = self.name(name);
        let id = logical_id(name, "Function");
        self.claim(&id, &format!("lambda {name}"));
        let log_group = logical_id(name, "LogGroup");
        self.resources.insert(
            log_group.clone(),
            json!({"Type": "AWS::Logs::LogGroup", "Properties": {
                "LogGroupName": format!("/aws/lambda/{function_name}"), "RetentionInDays": 30}}),
        );
        let mut grants = Grants::default();
        grants.allow(
            get_att(&log_group, "Arn"),
            &["logs:CreateLogStream", "logs:PutLogEvents"],
        );
        let mut env = Map::new();
        let mut events = Map::new();
        for (i, trigger) in lambda.triggers.iter().enumerate() {
            let (event_id, event) = self.event(name, trigger, &mut grants)?;
            let event_id = if events.contains_key(&event_id) {
                format!("{event_id}{}", i + 1)
            } else {
                event_id
            };
            events.insert(event_id, event);
        }
        self.sends(description, &mut grants, &mut env);
        self.stores(lambda, description, &mut grants, &mut env);
        let invoke_config = self.async_failures(name, lambda, &mut grants);
        let role = logical_id(name, "Role");
        self.role(&role, name, grants);
        let binary = lambda.binary.as_deref().unwrap_or(name);
        let mut properties = json!({
            "FunctionName": function_name,
            "CodeUri": format!("{}/{binary}/", self.options.code_dir.trim_end_matches('/')),
            "Handler": "bootstrap",
            "Runtime": "provided.al2023",
            "Architectures": [lambda.architecture.as_deref().unwrap_or("arm64")],
            "Timeout": lambda.timeout.unwrap_or(DEFAULT_TIMEOUT),
            "MemorySize": lambda.memory.unwrap_or(256),
            "Role": get_att(&role, "Arn"),
            "LoggingConfig": {"LogGroup": reference(&log_group)},
            "Events": events,
        });
        if !env.is_empty() {
            properties["Environment"] = json!({"Variables": env});
        }
        if let Some(config) = invoke_config {
            properties["EventInvokeConfig"] = config;
        }
        self.resources.insert(
            id,
            json!({"Type": "AWS::Serverless::Function", "Properties": properties}),
        );
        Ok(())
    }

    /// For a Lambda a topic, bucket or rule invokes (asynchronously): Lambda's two retries,
    /// then the event to a queue of its own (`LAMBDA-async-failures`) instead of nowhere.
    fn async_failures(
        &mut self,
        name: &str,
        lambda: &Lambda,
        grants: &mut Grants,
    ) -> Option<Value> {
        if !lambda.triggers.iter().any(|t| t.invokes_asynchronously()) {
            return None;
        }
        let failures = format!("sqs:{name}-async-failures");
        self.ensure(&failures);
        let arn = self.arn(&failures);
        grants.allow(arn.clone(), &["sqs:SendMessage"]);
        Some(json!({
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": arn}},
        }))
    }

    fn role(&mut self, id: &str, lambda: &str, grants: Grants) {
        self.resources.insert(
            id.to_owned(),
            json!({"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }]},
                "Policies": [{"PolicyName": format!("{lambda}-lpipe"), "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": grants.statements(),
                }}],
            }}),
        );
    }

    /// A trigger as a SAM event (the event source mapping, or the subscription, notification
    /// or rule that invokes the function), with what the mapping needs of the role.
    fn event(
        &mut self,
        name: &str,
        trigger: &Trigger,
        grants: &mut Grants,
    ) -> Result<(String, Value), String> {
        let res = trigger.resource().expect("the system file was checked");
        let (kind, _) = res.split_once(':').expect("kind:name");
        let id = resource_id(&res);
        let description = &self.model.descriptions[name];
        let at = format!("lambda '{name}', trigger {res}");
        let event = match kind {
            "sqs" => self.sqs_event(&res, trigger, description, grants, &at)?,
            "kinesis" | "dynamodb" => self.stream_event(name, &res, trigger, grants),
            "sns" => json!({"Type": "SNS", "Properties": {"Topic": self.arn(&res)}}),
            "s3" => {
                let events = s3_events(description);
                json!({"Type": "S3", "Properties": {"Bucket": reference(&id), "Events": events}})
            }
            "eventbridge" => {
                let pattern = trigger.pattern.as_ref().ok_or_else(|| {
                    format!("{at}: an EventBridge trigger needs the rule's `pattern`")
                })?;
                let mut properties = json!({"Pattern": serde_json::to_value(pattern).map_err(|e| format!("{at}: {e}"))?});
                if short(&res) != "default" {
                    properties["EventBusName"] = self.target(&res);
                }
                json!({"Type": "EventBridgeRule", "Properties": properties})
            }
            _ => return Err(format!("{at}: unknown kind")),
        };
        Ok((id, event))
    }

    fn sqs_event(
        &mut self,
        res: &str,
        trigger: &Trigger,
        description: &Value,
        grants: &mut Grants,
        at: &str,
    ) -> Result<Value, String> {
        let batch_size = trigger.batch_size.unwrap_or(10);
        if short(res).ends_with(".fifo") && batch_size > 10 {
            return Err(format!(
                "{at}: a FIFO queue's mapping takes at most 10 messages a batch (batch_size = {batch_size})"
            ));
        }
        if batch_size > 10 && trigger.window_seconds.unwrap_or(0) < 1 {
            return Err(format!(
                "{at}: Lambda reads more than 10 messages a batch (batch_size = {batch_size}) only with a batching window: set window_seconds to 1 or more"
            ));
        }
        let arn = self.arn(res);
        grants.allow(
            arn.clone(),
            &[
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
            ],
        );
        let source = source(description, "sqs");
        if source.is_some_and(|s| s["mode"] == "classic") {
            grants.allow(arn.clone(), &["sqs:GetQueueUrl"]);
        }
        if source.is_some_and(|s| !s["backoff"].is_null()) {
            grants.allow(
                arn.clone(),
                &["sqs:GetQueueUrl", "sqs:ChangeMessageVisibility"],
            );
        }
        // ReportBatchItemFailures always: a Lambda in classic mode answers with an error or
        // with no failures, which the setting reads as before.
        let mut properties = json!({
            "Queue": arn, "BatchSize": batch_size, "Enabled": true,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        });
        if let Some(window) = trigger.window_seconds {
            properties["MaximumBatchingWindowInSeconds"] = window.into();
        }
        Ok(json!({"Type": "SQS", "Properties": properties}))
    }

    /// A Kinesis or DynamoDB Streams mapping: bisect on error, bounded retries, and a queue of
    /// its own for the batches it gives up on.
    fn stream_event(
        &mut self,
        name: &str,
        res: &str,
        trigger: &Trigger,
        grants: &mut Grants,
    ) -> Value {
        let kinesis = res.starts_with("kinesis:");
        let stream = if kinesis {
            let arn = self.arn(res);
            grants.allow(
                arn.clone(),
                &[
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetRecords",
                    "kinesis:GetShardIterator",
                    "kinesis:ListShards",
                    "kinesis:SubscribeToShard",
                ],
            );
            arn
        } else {
            // A table of the user's (its keys are theirs): its stream's ARN is a parameter.
            let parameter = format!("{}StreamArn", resource_id(res));
            self.parameters.entry(parameter.clone()).or_insert_with(|| {
                json!({"Type": "String", "Description": format!("The stream ARN of the DynamoDB table {}", short(res))})
            });
            let arn = reference(&parameter);
            grants.allow(
                arn.clone(),
                &[
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                ],
            );
            arn
        };
        let failures = format!("sqs:{}-{name}-failures", short(res));
        self.ensure(&failures);
        let failures_arn = self.arn(&failures);
        grants.allow(failures_arn.clone(), &["sqs:SendMessage"]);
        let mut properties = json!({
            "Stream": stream,
            "StartingPosition": trigger.starting_position.as_deref().unwrap_or("TRIM_HORIZON"),
            "BatchSize": trigger.batch_size.unwrap_or(100),
            "BisectBatchOnFunctionError": true,
            "MaximumRetryAttempts": trigger.maximum_retry_attempts.unwrap_or(DEFAULT_STREAM_RETRIES),
            "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": failures_arn}},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "Enabled": true,
        });
        if let Some(window) = trigger.window_seconds {
            properties["MaximumBatchingWindowInSeconds"] = window.into();
        }
        json!({"Type": if kinesis { "Kinesis" } else { "DynamoDB" }, "Properties": properties})
    }

    /// The queues, streams, topics and buses a Lambda sends to (its forwards and its
    /// dead-letter queue): what it may call on each, and the variable naming each.
    fn sends(&mut self, description: &Value, grants: &mut Grants, env: &mut Map<String, Value>) {
        for queue in sent_to(description) {
            let res = resource_of(queue);
            let arn = self.arn(&res);
            let external = self.is_external(&res);
            let actions: &[&'static str] = match (queue["kind"].as_str(), external) {
                // Given an ARN, the sink looks the queue's URL up.
                (Some("sqs"), true) => &["sqs:SendMessage", "sqs:GetQueueUrl"],
                (Some("sqs"), false) => &["sqs:SendMessage"],
                (Some("kinesis"), _) => &["kinesis:PutRecords"],
                (Some("sns"), _) => &["sns:Publish"],
                (Some("eventbridge"), _) => &["events:PutEvents"],
                _ => &[],
            };
            grants.allow(arn, actions);
            if let Some(var) = queue["env"]["var"].as_str() {
                let target = self.target(&res);
                env.insert(var.to_owned(), target);
            }
        }
    }

    /// Idempotency tables and large payloads' buckets.
    fn stores(
        &mut self,
        lambda: &Lambda,
        description: &Value,
        grants: &mut Grants,
        env: &mut Map<String, Value>,
    ) {
        const ITEMS: &[&str] = &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ];
        if let Some(table) = &lambda.idempotency_table {
            let table_name = self.name(&table.name);
            let id = self.table((&table.name, &table_name), "id", "expiration");
            grants.allow(get_att(&id, "Arn"), ITEMS);
            env.insert(table.env.clone(), reference(&id));
        }
        for t in store_tables(description) {
            // Named in the code: as it is named, without the prefix.
            let id = self.table((t.name, t.name), t.key, t.ttl);
            grants.allow(get_att(&id, "Arn"), ITEMS);
        }
        let large = &description["large_payloads"];
        for bucket in large["read_from"].as_array().into_iter().flatten() {
            let Some(bucket) = bucket.as_str() else {
                continue;
            };
            let objects = self.objects(bucket);
            grants.allow(objects.clone(), &["s3:GetObject"]);
            if large["delete_after_success"] == true {
                grants.allow(objects, &["s3:DeleteObject"]);
            }
        }
        if let Some(bucket) = large["offload_to"].as_str() {
            let objects = self.objects(bucket);
            grants.allow(objects, &["s3:PutObject"]);
        }
    }

    /// A bucket's objects, as an IAM resource.
    fn objects(&mut self, bucket: &str) -> Value {
        let res = format!("s3:{bucket}");
        if self.is_external(&res) {
            let parameter = self.parameter(&res);
            return json!({"Fn::Sub": format!("${{{parameter}}}/*")});
        }
        self.ensure(&res);
        json!({"Fn::Sub": format!("${{{}.Arn}}/*", resource_id(&res))})
    }
}
