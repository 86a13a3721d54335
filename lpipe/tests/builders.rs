//! The test kit's event builders make events that AWS's own types read, and that each source
//! recognises and answers as it would the real thing.

use lpipe::testing::{
    lambda_context, message, EventBridgeEvent, KinesisEvent, KinesisRecord, SqsEvent, SqsRecord,
};
use lpipe::{Action, BoxError, FailCatastrophically, Pipeline};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Order {
    order: i64,
}

async fn take(args: Order) -> Result<i64, BoxError> {
    Ok(args.order)
}

async fn refuse(_: Order) -> Result<(), FailCatastrophically> {
    Err(FailCatastrophically::new("kept"))
}

fn pipeline() -> Pipeline {
    Pipeline::builder()
        .detect_source()
        .path("TAKE", [Action::new().function(take)])
        .path("REFUSE", [Action::new().function(refuse)])
        .registry(lpipe::registry())
        .build()
        .unwrap()
}

async fn handle(event: &str) -> Value {
    pipeline()
        .handle(event, lambda_context(0))
        .await
        .expect("a response")
}

fn failures(response: &Value) -> Vec<&str> {
    response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn sqs_events_are_aws_events_with_settable_ids_and_groups() {
    let event = SqsEvent::fifo()
        .record(
            SqsRecord::new(message("REFUSE", json!({"order": 1})))
                .group("g1")
                .id("first"),
        )
        .record(SqsRecord::new(message("TAKE", json!({"order": 2}))).group("g1"))
        .record(
            SqsRecord::new(message("TAKE", json!({"order": 3})))
                .group("g2")
                .receive_count(3)
                .attribute("tenant", "acme"),
        )
        .to_string();
    let parsed: aws_lambda_events::sqs::SqsEvent = serde_json::from_str(&event).unwrap();
    assert_eq!(parsed.records.len(), 3);
    let third = &parsed.records[2];
    assert_eq!(third.attributes["MessageGroupId"], "g2");
    assert_eq!(third.attributes["ApproximateReceiveCount"], "3");
    assert_eq!(
        third.message_attributes["tenant"].string_value.as_deref(),
        Some("acme")
    );
    assert!(third
        .event_source_arn
        .as_deref()
        .unwrap()
        .ends_with(":lpipe-test.fifo"));
    let second_id = parsed.records[1].message_id.clone().unwrap();

    // The FIFO group of the failed record is failed from there on; the other group is not.
    let response = handle(&event).await;
    assert_eq!(failures(&response), ["first", second_id.as_str()]);
    assert_eq!(response["stats"]["successes"], 1);

    // A standard queue: ids are unique UUIDs, and only the failed record is reported.
    let event = SqsEvent::new()
        .message(message("REFUSE", json!({"order": 1})))
        .message(message("TAKE", json!({"order": 2})))
        .record(SqsRecord::without_body())
        .to_string();
    let parsed: aws_lambda_events::sqs::SqsEvent = serde_json::from_str(&event).unwrap();
    let ids: Vec<String> = parsed
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    let response = handle(&event).await;
    assert_eq!(failures(&response), [ids[0].as_str()]);
    assert_eq!(
        response["stats"],
        json!({"received": 3, "successes": 1, "dropped": 1, "failed": 1})
    );
}

#[tokio::test]
async fn kinesis_events_are_aws_events_with_base64_data_and_increasing_sequence_numbers() {
    let event = KinesisEvent::new()
        .stream("orders")
        .record(KinesisRecord::new(message("TAKE", json!({"order": 1}))).partition_key("c1"))
        .record(KinesisRecord::new(message("REFUSE", json!({"order": 2}))))
        .record(KinesisRecord::bytes(vec![0xff, 0xfe]))
        .to_string();
    let parsed: aws_lambda_events::kinesis::KinesisEvent = serde_json::from_str(&event).unwrap();
    assert_eq!(parsed.records.len(), 3);
    assert_eq!(parsed.records[0].kinesis.partition_key, "c1");
    assert_eq!(
        parsed.records[0].event_source_arn.as_deref(),
        Some("arn:aws:kinesis:us-east-1:123456789012:stream/orders")
    );
    assert_eq!(
        String::from_utf8(parsed.records[0].kinesis.data.0.clone()).unwrap(),
        message("TAKE", json!({"order": 1})).to_string()
    );
    let sequence: Vec<&str> = parsed
        .records
        .iter()
        .map(|r| r.kinesis.sequence_number.as_str())
        .collect();
    assert!(sequence.windows(2).all(|w| w[0] < w[1]), "{sequence:?}");

    // After the failure, the rest of the shard is not run: both are reported.
    let response = handle(&event).await;
    assert_eq!(failures(&response), [sequence[1], sequence[2]]);
    assert_eq!(response["stats"]["successes"], 1);
}

#[tokio::test]
async fn eventbridge_events_are_aws_events_carrying_their_detail() {
    let event = EventBridgeEvent::new("Order Placed", message("TAKE", json!({"order": 7})))
        .source("shop.orders")
        .id("ev-1")
        .to_string();
    let parsed: aws_lambda_events::eventbridge::EventBridgeEvent =
        serde_json::from_str(&event).unwrap();
    assert_eq!(parsed.detail_type, "Order Placed");
    assert_eq!(parsed.source, "shop.orders");
    assert_eq!(parsed.id.as_deref(), Some("ev-1"));
    let response = handle(&event).await;
    assert_eq!(response["output"], json!([7]));
}

#[tokio::test]
async fn dynamodb_stream_events_are_aws_events_in_attribute_value_json() {
    use lpipe::testing::DynamoDbEvent;
    let event = DynamoDbEvent::new()
        .table("orders")
        .keys(["customer", "order"])
        .insert(json!({"customer": "c-1", "order": 7, "total": 12.50, "gift": true, "note": null, "lines": [{"sku": "tea"}]}))
        .remove(json!({"customer": "c-1", "order": 6}))
        .to_string();
    let parsed: aws_lambda_events::dynamodb::Event = serde_json::from_str(&event).unwrap();
    assert_eq!(parsed.records.len(), 2);
    let insert = &parsed.records[0];
    assert_eq!(insert.event_name, "INSERT");
    assert_eq!(insert.event_source.as_deref(), Some("aws:dynamodb"));
    let raw: Value = serde_json::from_str(&event).unwrap();
    let image = &raw["Records"][0]["dynamodb"]["NewImage"];
    assert_eq!(image["total"], json!({"N": "12.5"}));
    assert_eq!(image["gift"], json!({"BOOL": true}));
    assert_eq!(image["note"], json!({"NULL": true}));
    assert_eq!(image["lines"], json!({"L": [{"M": {"sku": {"S": "tea"}}}]}));
    assert_eq!(
        raw["Records"][1]["dynamodb"]["Keys"],
        json!({"customer": {"S": "c-1"}, "order": {"N": "6"}})
    );
    // The DynamoDB source takes it: the items are not lpipe messages (the pipeline has no
    // routes), so both are dropped, and the response is a partial batch response.
    let response = handle(&event).await;
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(
        response["stats"],
        json!({"received": 2, "successes": 0, "dropped": 2, "failed": 0})
    );
}

type Seen = std::sync::Mutex<Vec<Value>>;

#[tokio::test]
async fn functions_read_their_records_metadata() {
    let seen = std::sync::Arc::new(Seen::default());
    let pipeline = {
        let seen = seen.clone();
        Pipeline::builder()
            .detect_source()
            .path(
                "NOTE",
                [Action::new().function(move |_: lpipe::NoParams, ctx: lpipe::Context| {
                    let seen = seen.clone();
                    async move {
                        let r = ctx.record();
                        let meta = if let Some(m) = r.sqs() {
                            json!({"receive_count": m.receive_count, "sent": m.sent_timestamp_ms,
                                   "tenant": m.message_attribute("tenant"), "group": r.ordering_key()})
                        } else if let Some(m) = r.kinesis() {
                            json!({"arrival": m.arrival_timestamp, "shard": m.shard_id.as_deref(), "key": r.ordering_key()})
                        } else if let Some(m) = r.eventbridge() {
                            json!({"source": m.source, "detail_type": m.detail_type, "time": m.time, "id": r.id()})
                        } else {
                            json!(null)
                        };
                        seen.lock().unwrap().push(meta);
                        Ok::<_, BoxError>(())
                    }
                })],
            )
            .registry(lpipe::registry())
            .build()
            .unwrap()
    };
    let note = || message("NOTE", json!({}));
    let sqs = SqsEvent::fifo()
        .record(
            SqsRecord::new(note())
                .group("g1")
                .receive_count(4)
                .attribute("tenant", "acme"),
        )
        .to_string();
    let kinesis = KinesisEvent::new()
        .record(KinesisRecord::new(note()).partition_key("p7"))
        .message(note())
        .to_string();
    let eventbridge = EventBridgeEvent::new("Order Placed", note())
        .source("shop")
        .id("ev-9")
        .time("2026-11-28T12:00:00Z")
        .to_string();
    for event in [&sqs, &kinesis, &eventbridge] {
        pipeline.handle(event, lambda_context(0)).await.unwrap();
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [
            json!({"receive_count": 4, "sent": 1_796_212_800_000u64, "tenant": "acme", "group": "g1"}),
            json!({"arrival": 1_796_212_800.0, "shard": "shardId-000000000000", "key": "p7"}),
            json!({"arrival": 1_796_212_800.001, "shard": "shardId-000000000000", "key": "partition-0"}),
            json!({"source": "shop", "detail_type": "Order Placed", "time": "2026-11-28T12:00:00Z", "id": "ev-9"}),
        ]
    );
}
