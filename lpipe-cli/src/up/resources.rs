//! What `lpipe up` creates in moto: queues (redrive, FIFO), streams, topics and their
//! subscriptions, buses and rules, buckets and their notifications, tables.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use super::{named, Up};
use crate::model::{sent_to, store_tables, Model};
use crate::system::{short, Trigger};

/// The clients `lpipe up` creates resources with.
pub(super) struct Clients {
    pub(super) sqs: aws_sdk_sqs::Client,
    pub(super) sns: aws_sdk_sns::Client,
    pub(super) kinesis: aws_sdk_kinesis::Client,
    pub(super) s3: aws_sdk_s3::Client,
    pub(super) events: aws_sdk_cloudwatchevents::Client,
    pub(super) dynamodb: aws_sdk_dynamodb::Client,
    pub(super) dynamodb_streams: aws_sdk_dynamodbstreams::Client,
}

impl Clients {
    pub(super) fn new(config: &aws_config::SdkConfig) -> Self {
        // moto serves buckets by path, not by host name.
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build();
        Clients {
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            kinesis: aws_sdk_kinesis::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            events: aws_sdk_cloudwatchevents::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            dynamodb_streams: aws_sdk_dynamodbstreams::Client::new(config),
        }
    }
}

/// Creates the Kinesis streams the system names (forwarded to, or triggering a Lambda), one
/// shard each.
pub(super) async fn create_streams(
    model: &Model<'_>,
    up: &Up,
    kinesis: &aws_sdk_kinesis::Client,
) -> Result<(), String> {
    let mut streams: Vec<String> = model
        .forwards()
        .iter()
        .filter(|f| f.queue["kind"] == "kinesis")
        .map(|f| short(f.queue["target"].as_str().unwrap_or("")).to_owned())
        .collect();
    for lambda in model.system.lambdas.values() {
        streams.extend(lambda.triggers.iter().filter_map(|t| t.kinesis.clone()));
    }
    streams.sort();
    streams.dedup();
    for stream in streams {
        let name = named(up, &stream);
        let created = kinesis
            .create_stream()
            .stream_name(&name)
            .shard_count(1)
            .send()
            .await;
        if let Err(e) = created {
            let e = aws_sdk_kinesis::error::DisplayErrorContext(e).to_string();
            if !e.contains("ResourceInUse") {
                return Err(format!("creating the stream {name}: {e}"));
            }
        }
    }
    Ok(())
}

/// Creates the queues (with their redrive policies and dead-letter queues, FIFO attributes),
/// topics (with their subscriptions) and rules feeding queues the system names; returns the queues' URLs by
/// `sqs:NAME` (the name in the system file).
pub(super) async fn create_resources(
    model: &Model<'_>,
    up: &Up,
    clients: &Clients,
) -> Result<BTreeMap<String, String>, String> {
    let (sqs, sns) = (&clients.sqs, &clients.sns);
    let mut queues: BTreeMap<String, String> = BTreeMap::new();
    // The triggers' dead-letter queues first, then the triggers' queues redriven to them.
    for lambda in model.system.lambdas.values() {
        for dlq in lambda
            .triggers
            .iter()
            .filter_map(|t| t.dead_letter_queue.as_ref())
        {
            let url = create_queue(sqs, &named(up, dlq), Vec::new()).await?;
            queues.insert(format!("sqs:{}", short(dlq)), url);
        }
    }
    for lambda in model.system.lambdas.values() {
        for t in &lambda.triggers {
            let Some(name) = &t.sqs else { continue };
            let mut attributes = Vec::new();
            if let (Some(dlq), Some(count)) = (&t.dead_letter_queue, t.max_receive_count) {
                let arn = queue_arn(sqs, &queues[&format!("sqs:{dlq}")]).await?;
                attributes.push((
                    QueueAttributeName::RedrivePolicy,
                    format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{count}"}}"#),
                ));
            }
            let url = create_queue(sqs, &named(up, name), attributes).await?;
            queues.insert(format!("sqs:{}", short(name)), url);
        }
    }
    // Every other queue something sends to: outside the system, or a dead-letter queue.
    let others = model
        .descriptions
        .values()
        .flat_map(sent_to)
        .filter(|queue| queue["kind"] == "sqs")
        .map(|queue| short(queue["target"].as_str().unwrap_or("")).to_owned());
    for name in others {
        if let std::collections::btree_map::Entry::Vacant(slot) =
            queues.entry(format!("sqs:{name}"))
        {
            slot.insert(create_queue(sqs, &named(up, &name), Vec::new()).await?);
        }
    }
    subscribe_topics(model, up, (sqs, sns), &queues).await?;
    subscribe_buses(model, up, clients, &queues).await?;
    Ok(queues)
}

/// Creates the topics forwarded to, and subscribes the queues the system file says are
/// subscribed to them.
async fn subscribe_topics(
    model: &Model<'_>,
    up: &Up,
    (sqs, sns): (&aws_sdk_sqs::Client, &aws_sdk_sns::Client),
    queues: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut topics: BTreeMap<String, String> = BTreeMap::new();
    for f in model.forwards() {
        if f.queue["kind"] == "sns" {
            let name = short(f.queue["target"].as_str().unwrap_or("")).to_owned();
            if let std::collections::btree_map::Entry::Vacant(slot) = topics.entry(name) {
                let arn = create_topic(sns, &named(up, slot.key())).await?;
                slot.insert(arn);
            }
        }
    }
    for lambda in model.system.lambdas.values() {
        for t in &lambda.triggers {
            let (Some(queue), Some(topic)) = (&t.sqs, &t.subscribed_to) else {
                continue;
            };
            if topic.starts_with("eventbridge:") {
                continue; // a rule: subscribe_buses
            }
            let topic = short(topic);
            let topic_arn = match topics.get(topic) {
                Some(arn) => arn.clone(),
                None => create_topic(sns, &named(up, topic)).await?,
            };
            let queue_arn = queue_arn(sqs, &queues[&format!("sqs:{}", short(queue))]).await?;
            sns.subscribe()
                .topic_arn(&topic_arn)
                .protocol("sqs")
                .endpoint(queue_arn)
                .attributes("RawMessageDelivery", t.raw_message_delivery.to_string())
                .send()
                .await
                .map_err(|e| format!("subscribing {queue} to {topic}: {e}"))?;
        }
    }
    Ok(())
}

/// Creates a queue (FIFO when its name says so) with these attributes; its URL.
async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<String, String> {
    let mut create = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.into_iter().collect()));
    if name.ends_with(".fifo") {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    create
        .send()
        .await
        .map_err(|e| {
            let e = aws_sdk_sqs::error::DisplayErrorContext(e);
            format!("creating the queue {name}: {e}")
        })?
        .queue_url
        .ok_or_else(|| format!("creating the queue {name}: no URL"))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("the ARN of {url}: {e}"))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| format!("the ARN of {url}: none"))
}

async fn create_topic(sns: &aws_sdk_sns::Client, name: &str) -> Result<String, String> {
    let mut create = sns.create_topic().name(name);
    if name.ends_with(".fifo") {
        create = create.attributes("FifoTopic", "true");
    }
    create
        .send()
        .await
        .map_err(|e| format!("creating the topic {name}: {e}"))?
        .topic_arn
        .ok_or_else(|| format!("creating the topic {name}: no ARN"))
}

/// The queue a topic, bucket or rule delivers to for a Lambda it invokes, wired to it: a
/// subscription (not raw), a bucket notification of the events the Lambda routes, a rule with
/// the trigger's pattern.
pub(super) async fn bridge_queue(
    up: &Up,
    clients: &Clients,
    (lambda, index): (&str, usize),
    trigger: &Trigger,
    description: &Value,
) -> Result<(String, crate::bridge::Invoker), String> {
    use crate::bridge::Invoker;
    let resource = trigger.resource().unwrap_or_default();
    let (kind, name) = resource.split_once(':').unwrap_or(("", ""));
    let queue = named(up, &format!("lpipe-up-{lambda}-{kind}-{}", index + 1));
    // Redelivered soon after a failed invocation, as Lambda retries one.
    let visibility = vec![(QueueAttributeName::VisibilityTimeout, "2".to_owned())];
    let url = create_queue(&clients.sqs, &queue, visibility).await?;
    let arn = queue_arn(&clients.sqs, &url).await?;
    let invoker = match kind {
        "sns" => {
            let topic = create_topic(&clients.sns, &named(up, name)).await?;
            clients
                .sns
                .subscribe()
                .topic_arn(&topic)
                .protocol("sqs")
                .endpoint(&arn)
                .send()
                .await
                .map_err(|e| format!("subscribing {queue} to {name}: {e}"))?;
            Invoker::Sns
        }
        "s3" => {
            let events = crate::model::s3_events(description);
            notify_bucket(&clients.s3, &named(up, name), &arn, &events).await?;
            Invoker::S3
        }
        _ => {
            let rule = format!("{queue}-rule");
            target_rule(&clients.events, (up, name), &rule, trigger, &arn).await?;
            Invoker::EventBridge
        }
    };
    Ok((url, invoker))
}

/// Creates a bucket (unless it is there) whose notifications of `events` go to a queue.
async fn notify_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    queue_arn: &str,
    events: &[String],
) -> Result<(), String> {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    if let Err(e) = s3.create_bucket().bucket(bucket).send().await {
        let e = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
        if !e.contains("BucketAlreadyOwnedByYou") {
            return Err(format!("creating the bucket {bucket}: {e}"));
        }
    }
    let queue = QueueConfiguration::builder()
        .queue_arn(queue_arn)
        .set_events(Some(
            events.iter().map(|e| Event::from(e.as_str())).collect(),
        ))
        .build()
        .map_err(|e| format!("the notification of {bucket}: {e}"))?;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            format!(
                "the notification of {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        })?;
    Ok(())
}

/// A rule on a bus (created unless it is `default` or there) with the trigger's pattern,
/// targeting a queue.
async fn target_rule(
    events: &aws_sdk_cloudwatchevents::Client,
    (up, bus): (&Up, &str),
    rule: &str,
    trigger: &Trigger,
    queue_arn: &str,
) -> Result<(), String> {
    let pattern = trigger
        .pattern
        .as_ref()
        .ok_or_else(|| format!("the rule feeding {queue_arn} needs the trigger's `pattern`"))?;
    let pattern = serde_json::to_string(pattern).map_err(|e| e.to_string())?;
    let bus = if short(bus) == "default" {
        "default".to_owned()
    } else {
        let bus = named(up, bus);
        if let Err(e) = events.create_event_bus().name(&bus).send().await {
            let e = aws_sdk_cloudwatchevents::error::DisplayErrorContext(e).to_string();
            if !e.contains("ResourceAlreadyExists") {
                return Err(format!("creating the bus {bus}: {e}"));
            }
        }
        bus
    };
    events
        .put_rule()
        .name(rule)
        .event_bus_name(&bus)
        .event_pattern(pattern)
        .send()
        .await
        .map_err(|e| {
            format!(
                "the rule {rule}: {}",
                aws_sdk_cloudwatchevents::error::DisplayErrorContext(e)
            )
        })?;
    let target = aws_sdk_cloudwatchevents::types::Target::builder()
        .id("lpipe-up")
        .arn(queue_arn)
        .build()
        .map_err(|e| format!("the rule {rule}: {e}"))?;
    events
        .put_targets()
        .rule(rule)
        .event_bus_name(&bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| {
            format!(
                "the rule {rule}: {}",
                aws_sdk_cloudwatchevents::error::DisplayErrorContext(e)
            )
        })?;
    Ok(())
}

/// The SQS triggers the system file subscribes to a bus: a rule with the trigger's pattern
/// targeting each.
async fn subscribe_buses(
    model: &Model<'_>,
    up: &Up,
    clients: &Clients,
    queues: &BTreeMap<String, String>,
) -> Result<(), String> {
    for lambda in model.system.lambdas.values() {
        for t in &lambda.triggers {
            let (Some(queue), Some(bus)) = (&t.sqs, &t.subscribed_to) else {
                continue;
            };
            let Some(bus) = bus.strip_prefix("eventbridge:") else {
                continue;
            };
            let arn = queue_arn(&clients.sqs, &queues[&format!("sqs:{}", short(queue))]).await?;
            let rule = named(up, &format!("lpipe-up-{}", short(queue)));
            target_rule(&clients.events, (up, bus), &rule, t, &arn).await?;
        }
    }
    Ok(())
}

/// Creates the idempotency tables (a Lambda's `idempotency_table`, and the `DynamoDbStore`
/// tables its description names) with their TTL; the variables naming them, by Lambda.
pub(super) async fn create_tables(
    model: &Model<'_>,
    up: &Up,
    dynamodb: &aws_sdk_dynamodb::Client,
) -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
    let mut env: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (name, lambda) in &model.system.lambdas {
        if let Some(table) = &lambda.idempotency_table {
            let table_name = named(up, &table.name);
            create_table(dynamodb, &table_name, "id", "expiration").await?;
            env.entry(name.clone())
                .or_default()
                .push((table.env.clone(), table_name));
        }
        for t in store_tables(&model.descriptions[name.as_str()]) {
            // Named in the code: created as it is named.
            create_table(dynamodb, t.name, t.key, t.ttl).await?;
        }
    }
    Ok(env)
}

/// The stream ARN of a table that triggers a Lambda; the table is created (its hash key the
/// trigger's `table_key`, its stream with new and old images) when it is not there.
pub(super) async fn table_stream(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    trigger: &Trigger,
) -> Result<String, String> {
    use aws_sdk_dynamodb::types::{StreamSpecification, StreamViewType};
    let described = dynamodb.describe_table().table_name(table).send().await;
    let existing = described
        .ok()
        .and_then(|d| d.table)
        .and_then(|t| t.latest_stream_arn);
    if let Some(arn) = existing {
        return Ok(arn);
    }
    let key = trigger.table_key.as_deref().unwrap_or("id");
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .map_err(|e| format!("the table {table}: {e}"))?;
    let created = new_table(dynamodb, table, key)?
        .stream_specification(stream)
        .send()
        .await
        .map_err(|e| {
            format!(
                "creating the table {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        })?;
    created
        .table_description
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| format!("the table {table} has no stream"))
}

/// A table of one string hash key, on demand: the request, to send.
fn new_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder, String> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let fail = |e: String| format!("creating the table {table}: {e}");
    Ok(dynamodb
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        )
        .billing_mode(BillingMode::PayPerRequest))
}

async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    ttl: &str,
) -> Result<(), String> {
    use aws_sdk_dynamodb::types::TimeToLiveSpecification;
    let fail = |e: String| format!("creating the table {table}: {e}");
    let created = new_table(dynamodb, table, key)?.send().await;
    if let Err(e) = created {
        let e = aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string();
        if e.contains("ResourceInUse") {
            return Ok(()); // there already (a run before, sharing moto)
        }
        return Err(fail(e));
    }
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(ttl)
                .enabled(true)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| fail(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}
