//! A local stream poller for `lpipe up` (Kinesis, DynamoDB Streams): a development tool, not
//! a production consumer.
//!
//! For each shard it reads batches from the trigger's starting position (checkpoints in
//! memory), hands each batch to the Lambda's binary as the event Lambda's event source mapping
//! would (`my-lambda --send EVENT_FILE`, so its outbound messages are sent), and moves on by the
//! answer as the mapping does: past the batch when it succeeded, else from the lowest failed
//! sequence number (a partial batch response) or the whole batch again (a failed invocation),
//! up to `maximum_retry_attempts` times (default: 3 here), after which the batch is skipped,
//! saying so.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// The stream a poller reads.
#[derive(Clone, Debug)]
pub enum Stream {
    /// A Kinesis stream, by name.
    Kinesis(aws_sdk_kinesis::Client, String),
    /// A DynamoDB table's stream, by its ARN.
    DynamoDb(aws_sdk_dynamodbstreams::Client, String),
}

/// One poller: a Lambda's binary fed by one stream.
pub struct Poller {
    /// The Lambda.
    pub lambda: String,
    /// Its binary.
    pub exe: PathBuf,
    /// The stream.
    pub stream: Stream,
    /// Records per batch.
    pub batch_size: i32,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: String,
    /// Tries of a failing batch before it is skipped.
    pub maximum_retry_attempts: u32,
    /// Environment for the binary.
    pub env: Vec<(String, String)>,
}

impl Poller {
    fn name(&self) -> &str {
        match &self.stream {
            Stream::Kinesis(_, name) | Stream::DynamoDb(_, name) => name,
        }
    }
}

/// A batch read from a shard: each record's sequence number and event record, and where the
/// shard goes on.
struct Batch {
    records: Vec<(String, Value)>,
    next: Option<String>,
}

/// Runs a poller until its task is dropped.
pub async fn run(poller: Poller) {
    let shards = loop {
        match shards(&poller.stream).await {
            Ok(shards) => break shards,
            Err(e) => {
                eprintln!(
                    "[{}] listing the shards of {}: {e}",
                    poller.lambda,
                    poller.name()
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let poller = std::sync::Arc::new(poller);
    let mut tasks = Vec::new();
    for shard in shards {
        let poller = poller.clone();
        tasks.push(tokio::spawn(async move {
            poll_shard(&poller, &shard).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn shards(stream: &Stream) -> Result<Vec<String>, String> {
    match stream {
        Stream::Kinesis(client, name) => {
            let out = client.list_shards().stream_name(name).send().await;
            let out =
                out.map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(e).to_string())?;
            Ok(out
                .shards()
                .iter()
                .map(|s| s.shard_id().to_owned())
                .collect())
        }
        Stream::DynamoDb(client, arn) => {
            let out = client.describe_stream().stream_arn(arn).send().await;
            let out = out
                .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
            Ok(out
                .stream_description()
                .map(|d| {
                    d.shards()
                        .iter()
                        .filter_map(|s| s.shard_id().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default())
        }
    }
}

/// A shard iterator at the starting position, or at a sequence number.
async fn iterator(poller: &Poller, shard: &str, at: Option<&str>) -> Option<String> {
    let got = match &poller.stream {
        Stream::Kinesis(client, name) => {
            use aws_sdk_kinesis::types::ShardIteratorType as T;
            let request = client
                .get_shard_iterator()
                .stream_name(name)
                .shard_id(shard);
            let request = match at {
                Some(seq) => request
                    .shard_iterator_type(T::AtSequenceNumber)
                    .starting_sequence_number(seq),
                None => request.shard_iterator_type(T::from(poller.starting_position.as_str())),
            };
            request
                .send()
                .await
                .map(|o| o.shard_iterator)
                .map_err(|e| e.to_string())
        }
        Stream::DynamoDb(client, arn) => {
            use aws_sdk_dynamodbstreams::types::ShardIteratorType as T;
            let request = client.get_shard_iterator().stream_arn(arn).shard_id(shard);
            let request = match at {
                Some(seq) => request
                    .shard_iterator_type(T::AtSequenceNumber)
                    .sequence_number(seq),
                None => request.shard_iterator_type(T::from(poller.starting_position.as_str())),
            };
            request
                .send()
                .await
                .map(|o| o.shard_iterator)
                .map_err(|e| e.to_string())
        }
    };
    got.unwrap_or_else(|e| {
        eprintln!(
            "[{}] a shard iterator of {}: {e}",
            poller.lambda,
            poller.name()
        );
        None
    })
}

/// Up to a batch of records from an iterator, as the event source mapping puts them in its
/// event.
async fn records(poller: &Poller, shard: &str, iterator: &str) -> Result<Batch, String> {
    match &poller.stream {
        Stream::Kinesis(client, name) => {
            let out = client
                .get_records()
                .shard_iterator(iterator)
                .limit(poller.batch_size)
                .send()
                .await;
            let out =
                out.map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(e).to_string())?;
            let records = out
                .records()
                .iter()
                .map(|r| {
                    (
                        r.sequence_number().to_owned(),
                        kinesis_record(name, shard, r),
                    )
                })
                .collect();
            Ok(Batch {
                records,
                next: out.next_shard_iterator,
            })
        }
        Stream::DynamoDb(client, arn) => {
            let out = client
                .get_records()
                .shard_iterator(iterator)
                .limit(poller.batch_size)
                .send()
                .await;
            let out = out
                .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
            let records = out
                .records()
                .iter()
                .map(|r| {
                    let seq = r
                        .dynamodb()
                        .and_then(|d| d.sequence_number())
                        .unwrap_or_default();
                    (seq.to_owned(), crate::dynamodb_json::record(arn, r))
                })
                .collect();
            Ok(Batch {
                records,
                next: out.next_shard_iterator,
            })
        }
    }
}

async fn poll_shard(poller: &Poller, shard: &str) {
    let mut next = iterator(poller, shard, None).await;
    let mut tries = 0;
    while let Some(it) = next.take() {
        let batch = match records(poller, shard, &it).await {
            Ok(batch) => batch,
            Err(e) => {
                eprintln!("[{}] GetRecords on {}: {e}", poller.lambda, poller.name());
                tokio::time::sleep(Duration::from_secs(1)).await;
                next = Some(it);
                continue;
            }
        };
        if batch.records.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            next = batch.next;
            continue;
        }
        let event = json!({"Records": batch.records.iter().map(|(_, r)| r).collect::<Vec<_>>()});
        match invoke(poller, shard, &event).await {
            Ok(failed) if failed.is_empty() => {
                tries = 0;
                next = batch.next;
            }
            outcome => {
                tries += 1;
                let from = match &outcome {
                    // From the lowest failed sequence number; else the whole batch.
                    Ok(failed) => failed.iter().min().cloned(),
                    Err(_) => None,
                }
                .unwrap_or_else(|| batch.records[0].0.clone());
                if tries > poller.maximum_retry_attempts {
                    eprintln!(
                        "[{}] skipping the batch from {from} of {} after {tries} tries",
                        poller.lambda,
                        poller.name()
                    );
                    tries = 0;
                    next = batch.next;
                } else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    next = iterator(poller, shard, Some(&from)).await;
                }
            }
        }
    }
}

/// A Kinesis record, as the event source mapping puts it in its event.
fn kinesis_record(stream: &str, shard: &str, r: &aws_sdk_kinesis::types::Record) -> Value {
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r.partition_key(),
            "sequenceNumber": r.sequence_number(),
            "data": base64::engine::general_purpose::STANDARD.encode(r.data().as_ref()),
            "approximateArrivalTimestamp": r.approximate_arrival_timestamp()
                .map_or(0.0, |t| t.as_secs_f64()),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{shard}:{}", r.sequence_number()),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lpipe-up",
        "awsRegion": "us-east-1",
        "eventSourceARN": format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}"),
    })
}

/// Runs the binary on the event of a shard's batch; the sequence numbers its answer lists as
/// failed.
async fn invoke(poller: &Poller, shard: &str, event: &Value) -> Result<Vec<String>, String> {
    // One file per Lambda and shard: the shards of a stream are polled side by side.
    let lambda = (
        poller.lambda.as_str(),
        poller.exe.as_path(),
        poller.env.as_slice(),
    );
    let response = invoke_binary(lambda, shard, event).await?;
    Ok(response["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect())
}

/// Runs a Lambda's binary (name, executable, environment) on one event, as Lambda would
/// invoke it (`my-lambda --send EVENT_FILE`: its outbound messages are sent), its log lines
/// printed prefixed with its name; its response. `tag` keeps the event files of invocations
/// side by side apart.
///
/// # Errors
///
/// The binary could not run, or the invocation failed (its response, or its exit status).
pub async fn invoke_binary(
    (lambda, exe, env): (&str, &std::path::Path, &[(String, String)]),
    tag: &str,
    event: &Value,
) -> Result<Value, String> {
    let file = std::env::temp_dir().join(format!(
        "lpipe-up-{}-{lambda}-{tag}.json",
        std::process::id(),
    ));
    std::fs::write(&file, event.to_string()).map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new(exe)
        .arg("--send")
        .arg(&file)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .map_err(|e| format!("running {}: {e}", exe.display()))?;
    let _ = std::fs::remove_file(&file);
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        println!("[{lambda}] {line}");
    }
    let response: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if !out.status.success() {
        return Err(format!(
            "the invocation failed ({}): {response}",
            out.status
        ));
    }
    Ok(response)
}
