//! `lpipe up`: the whole system on one machine, against moto: its queues and topics created,
//! each SQS-triggered Lambda run as an SQS worker, their logs side by side; `lpipe send` puts
//! messages on a queue of the running system.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::model::Model;
use crate::system::{short, Trigger};

/// Where `lpipe up` writes the endpoint it runs against, for `lpipe send`: beside the system
/// file.
pub fn state_file(system_file: &Path) -> PathBuf {
    let dir = system_file.parent().unwrap_or(Path::new("."));
    dir.join(".lpipe-up-endpoint")
}

/// The settings of `lpipe up`.
pub struct Up {
    /// A prefix for every resource name, so that several systems (or test runs) share one
    /// moto.
    pub prefix: String,
    /// How long workers have to finish their batches after Ctrl-C.
    pub grace_seconds: u64,
}

/// A resource's name in the running system.
fn named(up: &Up, name: &str) -> String {
    format!("{}{}", up.prefix, short(name))
}

/// Runs the system until Ctrl-C or SIGTERM. `endpoint`: moto's, started by the caller when
/// not given.
///
/// # Errors
///
/// A resource that could not be created or a Lambda that could not start, naming it.
pub async fn up(
    model: &Model<'_>,
    exes: &BTreeMap<String, PathBuf>,
    up: &Up,
    endpoint: &str,
) -> Result<(), String> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let queues = create_resources(model, up, &sqs, &sns).await?;
    create_streams(model, up, &kinesis).await?;
    let mut running = Running::default();
    for (name, lambda) in &model.system.lambdas {
        let exe = exes
            .get(name.as_str())
            .ok_or_else(|| format!("lambda '{name}': no binary"))?;
        let mut env: Vec<(String, String)> = env_targets(&model.descriptions[name.as_str()])
            .into_iter()
            .map(|(var, target)| (var, named(up, &target)))
            .collect();
        env.push(("AWS_ENDPOINT_URL".into(), endpoint.into()));
        env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), name.clone()));
        for trigger in &lambda.triggers {
            let lambda = (name.as_str(), exe.as_path(), env.clone());
            if trigger.kinesis.is_some() {
                running.poll(lambda, trigger, up, &kinesis);
            } else if let Some(queue) = &trigger.sqs {
                let url = &queues[&format!("sqs:{}", short(queue))];
                running.work(lambda, url, up)?;
            } else {
                eprintln!(
                    "lpipe up: lambda {name}: its trigger {} is not run locally yet (SQS and Kinesis triggers are)",
                    trigger.resource().unwrap_or_default()
                );
            }
        }
    }
    println!(
        "lpipe up: {} workers and {} stream pollers running against {endpoint}; Ctrl-C stops them",
        running.workers.len(),
        running.pollers.len()
    );
    wait_for_signal().await;
    println!("lpipe up: stopping");
    running.stop(up.grace_seconds).await
}

/// What `lpipe up` runs: SQS workers (processes) and stream pollers (tasks).
#[derive(Default)]
struct Running {
    workers: Vec<(String, Child)>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
}

/// A Lambda to run: its name, binary and environment.
type ToRun<'a> = (&'a str, &'a Path, Vec<(String, String)>);

impl Running {
    /// Runs the Lambda's binary as an SQS worker on the queue at `url`.
    fn work(&mut self, (name, exe, env): ToRun<'_>, url: &str, up: &Up) -> Result<(), String> {
        let mut child = Command::new(exe)
            .args([
                "worker",
                "--queue",
                url,
                "--wait-seconds",
                "1",
                "--grace-seconds",
            ])
            .arg(up.grace_seconds.to_string())
            // Every queue the Lambda names by an environment variable, renamed as created.
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("lambda '{name}': cannot start {}: {e}", exe.display()))?;
        prefix_output(name, &mut child);
        self.workers.push((name.to_owned(), child));
        Ok(())
    }

    /// Runs the Lambda behind a poller of the trigger's Kinesis stream.
    fn poll(
        &mut self,
        (name, exe, env): ToRun<'_>,
        trigger: &Trigger,
        up: &Up,
        kinesis: &aws_sdk_kinesis::Client,
    ) {
        let poller = crate::stream::Poller {
            lambda: name.to_owned(),
            exe: exe.to_owned(),
            stream: named(up, trigger.kinesis.as_deref().unwrap_or_default()),
            batch_size: trigger.batch_size.unwrap_or(100) as i32,
            starting_position: trigger
                .starting_position
                .clone()
                .unwrap_or_else(|| "TRIM_HORIZON".into()),
            maximum_retry_attempts: trigger
                .maximum_retry_attempts
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(3),
            env,
        };
        let task = tokio::spawn(crate::stream::run(poller, kinesis.clone()));
        self.pollers.push(task);
    }

    /// Stops the pollers, and the workers with SIGTERM, giving them `grace_seconds` (and 5 more)
    /// to finish their batches.
    async fn stop(self, grace_seconds: u64) -> Result<(), String> {
        for poller in &self.pollers {
            poller.abort();
        }
        for (_, child) in &self.workers {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        let mut failed = Vec::new();
        for (name, mut child) in self.workers {
            let grace = Duration::from_secs(grace_seconds + 5);
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => failed.push(format!("{name} ({status})")),
                _ => {
                    let _ = child.kill().await;
                    failed.push(format!("{name} (killed)"));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "workers that did not stop cleanly: {}",
                failed.join(", ")
            ))
        }
    }
}

/// Creates the Kinesis streams the system names (forwarded to, or triggering a Lambda), one
/// shard each.
async fn create_streams(
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

/// The environment variables a Lambda reads queue targets from, with the default target.
fn env_targets(description: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut add = |queue: &Value| {
        if let (Some(var), Some(default)) = (
            queue["env"]["var"].as_str(),
            queue["env"]["default"].as_str(),
        ) {
            out.insert(var.to_owned(), default.to_owned());
        }
    };
    for path in description["paths"].as_array().into_iter().flatten() {
        for action in path["actions"].as_array().into_iter().flatten() {
            action["queues"]
                .as_array()
                .into_iter()
                .flatten()
                .for_each(&mut add);
        }
    }
    add(&description["dead_letter_queue"]);
    out
}

/// Creates the queues (with their redrive policies and dead-letter queues, FIFO attributes)
/// and topics (with their subscriptions) the system names; returns the queues' URLs by
/// `sqs:NAME` (the name in the system file).
async fn create_resources(
    model: &Model<'_>,
    up: &Up,
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
) -> Result<BTreeMap<String, String>, String> {
    let mut queues: BTreeMap<String, String> = BTreeMap::new();
    // The triggers' dead-letter queues first, then the triggers' queues redriven to them.
    for lambda in model.system.lambdas.values() {
        for dlq in lambda
            .triggers
            .iter()
            .filter_map(|t| t.dead_letter_queue.as_ref())
        {
            let url = create_queue(sqs, &named(up, dlq), None).await?;
            queues.insert(format!("sqs:{}", short(dlq)), url);
        }
    }
    for lambda in model.system.lambdas.values() {
        for t in &lambda.triggers {
            let Some(name) = &t.sqs else { continue };
            let redrive = match (&t.dead_letter_queue, t.max_receive_count) {
                (Some(dlq), Some(count)) => {
                    let arn = queue_arn(sqs, &queues[&format!("sqs:{dlq}")]).await?;
                    Some(format!(
                        r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{count}"}}"#
                    ))
                }
                _ => None,
            };
            let url = create_queue(sqs, &named(up, name), redrive).await?;
            queues.insert(format!("sqs:{}", short(name)), url);
        }
    }
    // Every other queue something sends to: outside the system, or a dead-letter queue.
    let mut others: Vec<String> = Vec::new();
    for f in model.forwards() {
        if f.queue["kind"] == "sqs" {
            others.push(short(f.queue["target"].as_str().unwrap_or("")).to_owned());
        }
    }
    for d in model.descriptions.values() {
        if d["dead_letter_queue"]["kind"] == "sqs" {
            others.push(short(d["dead_letter_queue"]["target"].as_str().unwrap_or("")).to_owned());
        }
    }
    for name in others {
        if let std::collections::btree_map::Entry::Vacant(slot) =
            queues.entry(format!("sqs:{name}"))
        {
            slot.insert(create_queue(sqs, &named(up, &name), None).await?);
        }
    }
    subscribe_topics(model, up, (sqs, sns), &queues).await?;
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

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    redrive: Option<String>,
) -> Result<String, String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let mut create = sqs.create_queue().queue_name(name);
    if name.ends_with(".fifo") {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    if let Some(policy) = redrive {
        create = create.attributes(QueueAttributeName::RedrivePolicy, policy);
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
    use aws_sdk_sqs::types::QueueAttributeName;
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

/// Prints a child's output lines prefixed with its Lambda's name.
fn prefix_output(name: &str, child: &mut Child) {
    let streams: [Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>; 2] = [
        child.stdout.take().map(|s| Box::new(s) as _),
        child.stderr.take().map(|s| Box::new(s) as _),
    ];
    for stream in streams.into_iter().flatten() {
        let name = name.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                println!("[{name}] {line}");
            }
        });
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// `lpipe send`: puts the messages of a file (one JSON message, or an array of them) on a queue
/// of the running system (`sqs:NAME` or `NAME`).
///
/// # Errors
///
/// A file that is not JSON, or a queue that cannot be sent to, naming it.
pub async fn send(endpoint: &str, queue: &str, file: &Path, prefix: &str) -> Result<usize, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    let messages = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!(
        "{prefix}{}",
        short(queue.strip_prefix("sqs:").unwrap_or(queue))
    );
    let url = sqs
        .get_queue_url()
        .queue_name(&name)
        .send()
        .await
        .map_err(|e| format!("the queue {name}: {e}"))?
        .queue_url
        .unwrap_or_default();
    for m in &messages {
        sqs.send_message()
            .queue_url(&url)
            .message_body(m.to_string())
            .send()
            .await
            .map_err(|e| format!("sending to {name}: {e}"))?;
    }
    Ok(messages.len())
}
