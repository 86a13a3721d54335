//! `lpipe up`: the whole system on one machine, against moto: its queues, streams, topics,
//! buses, buckets and tables created; each SQS-triggered Lambda run as an SQS worker, each
//! stream-triggered one behind a stream poller, each one a topic, bucket or rule invokes behind
//! a bridge; their logs side by side. `lpipe send` puts messages on a queue of the running
//! system.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::model::Model;
use crate::system::{short, Trigger};

mod resources;
use resources::{
    bridge_queue, create_resources, create_streams, create_tables, table_stream, Clients,
};

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
    let clients = Clients::new(&config);
    let queues = create_resources(model, up, &clients).await?;
    create_streams(model, up, &clients.kinesis).await?;
    let tables = create_tables(model, up, &clients.dynamodb).await?;
    let mut running = Running::default();
    for (name, lambda) in &model.system.lambdas {
        let exe = exes
            .get(name.as_str())
            .ok_or_else(|| format!("lambda '{name}': no binary"))?;
        let mut env: Vec<(String, String)> = env_targets(&model.descriptions[name.as_str()])
            .into_iter()
            .map(|(var, target)| (var, named(up, &target)))
            .collect();
        env.extend(tables.get(name.as_str()).cloned().unwrap_or_default());
        env.push(("AWS_ENDPOINT_URL".into(), endpoint.into()));
        env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), name.clone()));
        for (i, trigger) in lambda.triggers.iter().enumerate() {
            let to_run = (name.as_str(), exe.as_path(), env.clone());
            if let Some(stream) = &trigger.kinesis {
                let stream =
                    crate::stream::Stream::Kinesis(clients.kinesis.clone(), named(up, stream));
                running.poll(to_run, trigger, stream);
            } else if let Some(table) = &trigger.dynamodb {
                let arn = table_stream(&clients.dynamodb, &named(up, table), trigger).await?;
                let stream = crate::stream::Stream::DynamoDb(clients.dynamodb_streams.clone(), arn);
                running.poll(to_run, trigger, stream);
            } else if let Some(queue) = &trigger.sqs {
                let url = &queues[&format!("sqs:{}", short(queue))];
                running.work(to_run, url, up)?;
            } else {
                let description = &model.descriptions[name.as_str()];
                let (queue_url, invoker) =
                    bridge_queue(up, &clients, (name, i), trigger, description).await?;
                let bridge = crate::bridge::Bridge {
                    lambda: name.clone(),
                    exe: exe.clone(),
                    env: env.clone(),
                    queue_url,
                    invoker,
                };
                running.pollers.push(tokio::spawn(crate::bridge::run(
                    bridge,
                    clients.sqs.clone(),
                )));
                running.bridges += 1;
            }
        }
    }
    println!(
        "lpipe up: {} workers, {} stream pollers and {} bridges running against {endpoint}; Ctrl-C stops them",
        running.workers.len(),
        running.pollers.len() - running.bridges,
        running.bridges,
    );
    wait_for_signal().await;
    println!("lpipe up: stopping");
    running.stop(up.grace_seconds).await
}

/// What `lpipe up` runs: SQS workers (processes), and stream pollers and bridges (tasks).
#[derive(Default)]
struct Running {
    workers: Vec<(String, Child)>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    /// How many of the tasks are bridges.
    bridges: usize,
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

    /// Runs the Lambda behind a poller of the trigger's stream.
    fn poll(
        &mut self,
        (name, exe, env): ToRun<'_>,
        trigger: &Trigger,
        stream: crate::stream::Stream,
    ) {
        let poller = crate::stream::Poller {
            lambda: name.to_owned(),
            exe: exe.to_owned(),
            stream,
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
        let task = tokio::spawn(crate::stream::run(poller));
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

/// The environment variables a Lambda reads queue targets from, with the default target.
fn env_targets(description: &Value) -> BTreeMap<String, String> {
    crate::model::sent_to(description)
        .into_iter()
        .filter_map(|queue| {
            let var = queue["env"]["var"].as_str()?;
            let default = queue["env"]["default"].as_str()?;
            Some((var.to_owned(), default.to_owned()))
        })
        .collect()
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
