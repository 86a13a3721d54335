//! A local Kinesis stream poller for `lpipe up`: a development tool, not a production consumer.
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

use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine;
use serde_json::{json, Value};

/// One poller: a Lambda's binary fed by one stream.
pub struct Poller {
    /// The Lambda.
    pub lambda: String,
    /// Its binary.
    pub exe: PathBuf,
    /// The stream's name (as created).
    pub stream: String,
    /// Records per batch.
    pub batch_size: i32,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: String,
    /// Tries of a failing batch before it is skipped.
    pub maximum_retry_attempts: u32,
    /// Environment for the binary.
    pub env: Vec<(String, String)>,
}

/// Runs a poller until its task is dropped.
pub async fn run(poller: Poller, client: aws_sdk_kinesis::Client) {
    let shards = loop {
        match client
            .list_shards()
            .stream_name(&poller.stream)
            .send()
            .await
        {
            Ok(out) => break out.shards.unwrap_or_default(),
            Err(e) => {
                eprintln!(
                    "[{}] listing the shards of {}: {e}",
                    poller.lambda, poller.stream
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let poller = std::sync::Arc::new(poller);
    let mut tasks = Vec::new();
    for shard in shards {
        let (poller, client) = (poller.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            poll_shard(&poller, &client, shard.shard_id()).await;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn iterator(
    client: &aws_sdk_kinesis::Client,
    poller: &Poller,
    shard: &str,
    at: Option<&str>,
) -> Option<String> {
    let mut request = client
        .get_shard_iterator()
        .stream_name(&poller.stream)
        .shard_id(shard);
    request = match at {
        Some(seq) => request
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(seq),
        None => {
            request.shard_iterator_type(ShardIteratorType::from(poller.starting_position.as_str()))
        }
    };
    match request.send().await {
        Ok(out) => out.shard_iterator,
        Err(e) => {
            eprintln!(
                "[{}] a shard iterator of {}: {e}",
                poller.lambda, poller.stream
            );
            None
        }
    }
}

async fn poll_shard(poller: &Poller, client: &aws_sdk_kinesis::Client, shard: &str) {
    let mut next = iterator(client, poller, shard, None).await;
    let mut tries = 0;
    while let Some(it) = next.take() {
        let out = match client
            .get_records()
            .shard_iterator(&it)
            .limit(poller.batch_size)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("[{}] GetRecords on {}: {e}", poller.lambda, poller.stream);
                tokio::time::sleep(Duration::from_secs(1)).await;
                next = Some(it);
                continue;
            }
        };
        let records = out.records;
        if records.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            next = out.next_shard_iterator;
            continue;
        }
        let event = event(poller, shard, &records);
        match invoke(poller, shard, &event).await {
            Ok(failed) if failed.is_empty() => {
                tries = 0;
                next = out.next_shard_iterator;
            }
            outcome => {
                tries += 1;
                let from = match &outcome {
                    // From the lowest failed sequence number; else the whole batch.
                    Ok(failed) => failed.iter().min().cloned(),
                    Err(_) => None,
                }
                .unwrap_or_else(|| records[0].sequence_number().to_owned());
                if tries > poller.maximum_retry_attempts {
                    eprintln!(
                        "[{}] skipping the batch from {from} of {} after {tries} tries",
                        poller.lambda, poller.stream
                    );
                    tries = 0;
                    next = out.next_shard_iterator;
                } else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    next = iterator(client, poller, shard, Some(&from)).await;
                }
            }
        }
    }
}

/// The Lambda event of a batch, as the event source mapping delivers it.
fn event(poller: &Poller, shard: &str, records: &[aws_sdk_kinesis::types::Record]) -> Value {
    let arn = format!(
        "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
        poller.stream
    );
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
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
                "eventSourceARN": arn,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Runs the binary on the event of a shard's batch; the sequence numbers its answer lists as
/// failed.
async fn invoke(poller: &Poller, shard: &str, event: &Value) -> Result<Vec<String>, String> {
    // One file per Lambda and shard: the shards of a stream are polled side by side.
    let file = std::env::temp_dir().join(format!(
        "lpipe-up-{}-{}-{shard}.json",
        std::process::id(),
        poller.lambda
    ));
    std::fs::write(&file, event.to_string()).map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new(&poller.exe)
        .arg("--send")
        .arg(&file)
        .envs(poller.env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .map_err(|e| format!("running {}: {e}", poller.exe.display()))?;
    let _ = std::fs::remove_file(&file);
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        println!("[{}] {line}", poller.lambda);
    }
    let response: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if !out.status.success() {
        return Err(format!("the invocation failed: {response}"));
    }
    Ok(response["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect())
}
