//! The Kinesis sink against a real Kinesis API: the moto_server started by the test command
//! (`./scripts/test`). Without it these tests say they are skipped, unless
//! `LPIPE_REQUIRE_MOTO=1`, when they fail.

use std::collections::BTreeMap;

use aws_sdk_kinesis::types::ShardIteratorType;
use lpipe_core::testing::{
    assert_contains, assert_not_contains, lambda_context, message, moto_endpoint, raw_event,
    unique_name,
};
use lpipe_core::{registry::Registry, source::RawSource, Action, Pipeline, Queue, QueueKind};
use lpipe_kinesis::KinesisSink;
use serde_json::{json, Value};

async fn client() -> aws_sdk_kinesis::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_kinesis::Client::new(&config)
}

async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str) -> String {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(2)
        .send()
        .await
        .expect("CreateStream");
    client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .expect("DescribeStreamSummary")
        .stream_description_summary
        .expect("a summary")
        .stream_arn
}

/// Every record of the stream, read from the start of each shard.
async fn read_all(client: &aws_sdk_kinesis::Client, name: &str) -> Vec<(String, Value)> {
    let shards = client
        .list_shards()
        .stream_name(name)
        .send()
        .await
        .expect("ListShards")
        .shards
        .unwrap_or_default();
    let mut all = Vec::new();
    for shard in shards {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(name)
            .shard_id(shard.shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator;
        while let Some(it) = iterator {
            let out = client
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("GetRecords");
            if out.records.is_empty() {
                break;
            }
            for r in out.records {
                let body: Value = serde_json::from_slice(r.data.as_ref()).expect("JSON data");
                all.push((r.partition_key.unwrap_or_default(), body));
            }
            iterator = out.next_shard_iterator;
        }
    }
    all
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn forwarding_n_records_arrives_complete_in_batches_of_500() {
    moto_endpoint("forwarding_n_records_arrives_complete_in_batches_of_500");
    let client = client().await;
    for n in [1usize, 500, 501, 5000] {
        let name = unique_name("fwd");
        create_stream(&client, &name).await;
        let sink = KinesisSink::with_client(client.clone());
        let pipeline = Pipeline::builder()
            .path(
                "FWD",
                [Action::new()
                    .include_all_params()
                    .queue(Queue::kinesis(&name).path("NEXT"))],
            )
            .registry(Registry::empty())
            .event_source(RawSource)
            .sink(QueueKind::KINESIS, sink.clone())
            .build()
            .unwrap();
        // Pairs of equal messages: both must arrive.
        let messages: Vec<Value> = (0..n)
            .map(|i| message("FWD", json!({"i": i / 2})))
            .collect();
        let response = pipeline
            .handle(&raw_event(&messages), lambda_context(0))
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], n, "n={n}: {response}");
        assert_eq!(
            sink.put_records_calls(),
            n.div_ceil(500),
            "n={n}: PutRecords calls"
        );
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        for m in &messages {
            *expected
                .entry(json!({"path": "NEXT", "kwargs": m["kwargs"]}).to_string())
                .or_default() += 1;
        }
        let mut received: BTreeMap<String, usize> = BTreeMap::new();
        for (_, body) in read_all(&client, &name).await {
            *received.entry(body.to_string()).or_default() += 1;
        }
        assert_eq!(received, expected, "n={n}: exactly the sent records");
    }
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn streams_are_targeted_by_name_or_arn_with_the_partition_key_asked_for() {
    moto_endpoint("streams_are_targeted_by_name_or_arn_with_the_partition_key_asked_for");
    let client = client().await;
    let name = unique_name("target");
    let arn = create_stream(&client, &name).await;
    for target in [name.clone(), arn] {
        let pipeline = Pipeline::builder()
            .path(
                "FWD",
                [Action::new()
                    .include_all_params()
                    .queue(Queue::kinesis(&target).option("partition_key_from", "user"))],
            )
            .registry(Registry::empty())
            .event_source(RawSource)
            .sink(QueueKind::KINESIS, KinesisSink::with_client(client.clone()))
            .build()
            .unwrap();
        let response = pipeline
            .handle(
                &raw_event(&[message("FWD", json!({"user": "ann", "t": target}))]),
                lambda_context(0),
            )
            .await
            .unwrap();
        assert_eq!(response["stats"]["successes"], 1, "{response}");
    }
    let records = read_all(&client, &name).await;
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|(key, _)| key == "ann"));
}

#[ignore = "needs moto_server: ./scripts/test starts one and runs this with --include-ignored"]
#[tokio::test]
async fn a_missing_stream_fails_the_records_that_targeted_it() {
    moto_endpoint("a_missing_stream_fails_the_records_that_targeted_it");
    let client = client().await;
    let pipeline = Pipeline::builder()
        .path(
            "FWD",
            [Action::new()
                .include_all_params()
                .queue(Queue::kinesis(unique_name("missing")))],
        )
        .path("OK", [Action::new().include_all_params().path("NOOP")])
        .path(
            "NOOP",
            [Action::new()
                .function(|_: lpipe_core::NoParams| async { Ok::<_, lpipe_core::BoxError>(()) })],
        )
        .registry(Registry::empty())
        .event_source(RawSource)
        .sink(QueueKind::KINESIS, KinesisSink::with_client(client))
        .build()
        .unwrap();
    let err = pipeline
        .handle(
            &raw_event(&[message("OK", json!({})), message("FWD", json!({"x": 1}))]),
            lambda_context(0),
        )
        .await
        .unwrap_err();
    assert_contains(&err.error_message, "record 1 (Undeliverable");
    assert_not_contains(&err.error_message, "record 0");
}
