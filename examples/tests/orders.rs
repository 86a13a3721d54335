//! The `orders` example, tested as a user would, with the test kit's event builders only: SQS
//! orders in, enriched orders out to Kinesis and an SQS FIFO queue, and the Kinesis consumer
//! storing them.

use lpipe::testing::CapturingReporter;
use lpipe::testing::{lambda_context, message, KinesisEvent, KinesisRecord, SqsEvent, SqsRecord};
use lpipe::{
    sink::{MemorySink, OutboundMessage},
    ErrorKind, QueueKind,
};
use lpipe_examples::orders::{self, Database};
use serde_json::{json, Value};

fn order(id: &str, customer: &str, items: Value) -> Value {
    message(
        "ORDER",
        json!({"order_id": id, "customer_id": customer, "items": items}),
    )
}

fn tea(qty: u32) -> Value {
    json!({"sku": "tea", "qty": qty, "unit_price_cents": 450})
}

fn of_kind(messages: &[OutboundMessage], kind: &QueueKind) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m.queue.kind() == kind)
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect()
}

#[tokio::test]
async fn intake_validates_prices_and_forwards_to_kinesis_and_fifo() {
    let sink = MemorySink::new();
    let reporter = CapturingReporter::new();
    let intake = orders::intake()
        .record_outbound(sink.clone())
        .reporter(reporter.clone())
        .build()
        .unwrap();
    let event = SqsEvent::new()
        .record(SqsRecord::new(order("o-1", "c-1", json!([tea(2)]))).id("m-1"))
        .record(SqsRecord::new(order("o-2", "c-1", json!([]))).id("m-2"))
        .record(SqsRecord::new(order("o-3", "c-2", json!([tea(0)]))).id("m-3"))
        .record(SqsRecord::new(order("o-4", "c-2", json!([tea(1)]))).id("m-4"))
        .to_string();
    let response = intake.handle(&event, lambda_context(0)).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(
        response["stats"],
        json!({"received": 4, "successes": 2, "dropped": 2, "failed": 0})
    );
    let reports = reporter.reports();
    let dropped: Vec<(&str, &str)> = reports
        .iter()
        .map(|r| (r.record_id.as_deref().unwrap(), r.message.as_str()))
        .collect();
    assert_eq!(
        dropped,
        [
            (
                "m-2",
                "FailButContinue in validate on path ORDER: order o-2 has no items"
            ),
            (
                "m-3",
                "FailButContinue in validate on path ORDER: order o-3: tea has a quantity of 0"
            ),
        ]
    );

    let messages = sink.messages();
    let priced = |id: &str, customer: &str, qty: u32, total: u64, path: &str| json!({"path": path, "kwargs": {"order_id": id, "customer_id": customer, "items": [tea(qty)], "total_cents": total}});
    assert_eq!(
        of_kind(&messages, &QueueKind::KINESIS),
        [
            priced("o-1", "c-1", 2, 900, "STORE"),
            priced("o-4", "c-2", 1, 450, "STORE")
        ]
    );
    assert_eq!(
        of_kind(&messages, &QueueKind::SQS),
        [
            priced("o-1", "c-1", 2, 900, "NOTIFY"),
            priced("o-4", "c-2", 1, 450, "NOTIFY")
        ]
    );
    assert!(messages
        .iter()
        .filter(|m| m.queue.kind() == &QueueKind::SQS)
        .all(|m| m.queue.target() == "lpipe-orders-notify.fifo"));
}

#[tokio::test]
async fn what_intake_sends_the_store_lambda_stores() {
    let sink = MemorySink::new();
    let intake = orders::intake()
        .record_outbound(sink.clone())
        .build()
        .unwrap();
    let event = SqsEvent::new()
        .message(order("o-1", "c-1", json!([tea(2)])))
        .message(order("o-2", "c-2", json!([tea(3)])))
        .to_string();
    intake.handle(&event, lambda_context(0)).await.unwrap();

    // The Kinesis messages, as the stream delivers them to the store Lambda.
    let stream = sink
        .messages()
        .into_iter()
        .filter(|m| m.queue.kind() == &QueueKind::KINESIS)
        .fold(
            KinesisEvent::new().stream("lpipe-orders-enriched"),
            |event, m| {
                let customer = m.kwarg_value("customer_id").unwrap();
                event.record(KinesisRecord::new(m.body).partition_key(customer))
            },
        )
        .to_string();
    let db = Database::default();
    let store = orders::store(db.clone()).build().unwrap();
    let response = store.handle(&stream, lambda_context(0)).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(response["stats"]["successes"], 2);
    assert_eq!(db.total_of("o-1"), Some(900));
    assert_eq!(db.total_of("o-2"), Some(1350));
}

#[tokio::test]
async fn an_unavailable_database_keeps_the_record_and_the_rest_of_the_shard() {
    let stored = |id: &str, customer: &str| {
        message(
            "STORE",
            json!({"order_id": id, "customer_id": customer, "items": [], "total_cents": 100}),
        )
    };
    let event = KinesisEvent::new()
        .message(stored("o-1", "c-1"))
        .message(stored("o-2", "flaky-2"))
        .message(stored("o-3", "c-3"))
        .to_string();
    let reporter = CapturingReporter::new();
    let db = Database::default();
    let response = orders::store(db.clone())
        .reporter(reporter.clone())
        .build()
        .unwrap()
        .handle(&event, lambda_context(0))
        .await
        .unwrap();
    // Kept, not dropped: Lambda replays the shard from the first failure.
    assert_eq!(
        response["batchItemFailures"],
        json!([
            {"itemIdentifier": KinesisEvent::sequence_number_of(1)},
            {"itemIdentifier": KinesisEvent::sequence_number_of(2)},
        ])
    );
    let kinds: Vec<ErrorKind> = reporter.reports().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ErrorKind::Retryable, ErrorKind::NotRun]);
    assert_eq!(db.total_of("o-1"), Some(100));
    assert_eq!(db.total_of("o-3"), None);
}

#[test]
fn the_diagram_shows_the_computed_hop_from_order_to_route() {
    let chart = orders::intake().to_mermaid();
    assert!(chart.contains("  path_ORDER_2[\"price\"]\n  path_ORDER_1 --> path_ORDER_2\n  path_ORDER_2 -.->|\"returns\"| path_ROUTE\n"), "{chart}");
    assert!(
        chart.contains("path_ROUTE_1[\"forward all kwargs\"]"),
        "{chart}"
    );
}

/// The store Lambda is built for Kinesis; a misconfigured mapping hands it an SQS event. Its
/// records must come back (the invocation fails), never be dropped and acknowledged.
#[tokio::test]
async fn an_sqs_event_to_the_kinesis_consumer_is_refused_whole() {
    let db = Database::default();
    let store = orders::store(db.clone()).build().unwrap();
    let event = (0..5)
        .fold(SqsEvent::new(), |e, i| {
            e.message(message("STORE", json!({"order_id": format!("o-{i}")})))
        })
        .to_string();
    let e = store
        .handle(&event, lambda_context(0))
        .await
        .expect_err("an SQS event is not the Kinesis consumer's");
    assert_eq!(e.error_type, "InvalidEvent");
    lpipe::testing::assert_contains(&e.error_message, "takes only 'kinesis' events");
}

/// A binary that links several sources (this crate links them all) cannot build a pipeline
/// that names none: the error names them and the line to add.
#[test]
fn a_pipeline_that_names_no_source_among_several_does_not_build() {
    async fn noop(_: lpipe::NoParams) -> Result<(), lpipe::BoxError> {
        Ok(())
    }
    let e = lpipe::Pipeline::builder()
        .path_fn("STORE", noop)
        .build()
        .unwrap_err();
    // The sources linked besides `raw` (`sns` too when the workspace is built with all features).
    let registry = lpipe::registry();
    let sources: Vec<&str> = registry
        .source_names()
        .into_iter()
        .filter(|s| *s != "raw")
        .collect();
    assert!(sources.len() >= 4, "{sources:?}");
    assert!(
        matches!(&e, lpipe::InvalidConfigurationError::SourceNotNamed { linked } if linked == &sources),
        "{e}"
    );
    lpipe::testing::assert_contains(e.to_string(), sources.join(", "));
    lpipe::testing::assert_contains(e.to_string(), ".only_source(\"NAME\")");
    lpipe::testing::assert_contains(e.to_string(), ".detect_source()");
    let detecting = lpipe::Pipeline::builder()
        .path_fn("STORE", noop)
        .detect_source()
        .build();
    assert!(detecting.is_ok());
}
