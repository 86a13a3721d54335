//! Fan-out across Lambdas through an SNS topic.
//!
//! The *publisher* Lambda ([`publisher`]) takes orders from its queue and publishes each to an
//! SNS topic (`FANOUT_TOPIC`, an ARN or a name; default `lpipe-fanout-orders`), for the
//! subscribers' path RECORD_ORDER. Each subscriber has its own SQS queue subscribed to the
//! topic; the *consumer* Lambda ([`consumer`]) consumes one, with the SNS envelope declared
//! (`FANOUT_RAW_DELIVERY=true` for a subscription with raw message delivery, which needs no
//! envelope), and runs each order once: it is idempotent by the message's id (the lpipe message
//! id the publisher gave it, the same when the publisher's record is retried), so a
//! notification SNS delivers twice, or a message the publisher sent again, is not recorded twice.
//!
//! The consumer has a second trigger: the receipts bucket's notifications
//! (`ObjectCreated:*` under `receipts/`) invoke it directly, for the path RECEIPT_UPLOADED,
//! idempotent by the object (its bucket, key and sequencer).
//!
//! The binary keeps its idempotency keys in the DynamoDB table `FANOUT_IDEMPOTENCY_TABLE` when
//! it is set (the system's template sets it: `idempotency_table` in `examples/lpipe.toml`),
//! else in memory.

use std::sync::Arc;

use lpipe::dynamodb::DynamoDbStore;
use lpipe::idempotency::{IdempotencyStore, MemoryIdempotencyStore};
use lpipe::s3::S3Source;
use lpipe::source::S3Match;
use lpipe::sqs::{SqsEnvelope, SqsSource};
use lpipe::{Action, Context, FailButContinue, Idempotency, Pipeline, PipelineBuilder, Queue};
use serde::Deserialize;

lpipe::path_enum! {
    /// The paths of the two Lambdas.
    pub enum Path { PUBLISH_ORDER, RECORD_ORDER, RECEIPT_UPLOADED }
}

/// The topic the publisher publishes to: `lpipe-fanout-orders`, or `FANOUT_TOPIC`.
pub fn topic() -> Queue {
    Queue::sns("lpipe-fanout-orders").target_from_env("FANOUT_TOPIC")
}

/// An order.
#[derive(Debug, Deserialize)]
pub struct Order {
    /// Its id.
    pub order_id: String,
    /// What it costs, in cents.
    pub total_cents: u64,
}

/// Drops orders that cost nothing (FailButContinue: never retried).
pub async fn check_order(order: Order) -> Result<(), FailButContinue> {
    if order.total_cents == 0 {
        return Err(FailButContinue::new(format!(
            "order {} costs nothing",
            order.order_id
        )));
    }
    Ok(())
}

/// Records an order (here: logs it, counts it, and returns it), with the SNS topic it came
/// through when there is one.
pub async fn record_order(order: Order, ctx: Context) -> Result<String, FailButContinue> {
    let record = ctx.record();
    let topic = record
        .sns()
        .or_else(|| record.sqs().and_then(|m| m.sns.as_deref()))
        .and_then(|sns| sns.topic_arn.clone())
        .unwrap_or_else(|| "(raw delivery)".to_owned());
    tracing::info!(order_id = %order.order_id, %topic, "recording order");
    ctx.count("OrdersRecorded", 1);
    Ok(format!(
        "recorded {} ({} cents)",
        order.order_id, order.total_cents
    ))
}

/// An uploaded receipt, as the bucket's notification describes it.
#[derive(Debug, Deserialize)]
pub struct Receipt {
    /// The bucket.
    pub bucket: String,
    /// The object's key (URL-decoded).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// S3's order of the events of this key (with the bucket and key, the receipt's
    /// idempotency key).
    pub sequencer: String,
}

/// Files a receipt (here: logs it and returns it).
pub async fn file_receipt(receipt: Receipt) -> Result<String, FailButContinue> {
    tracing::info!(bucket = %receipt.bucket, key = %receipt.key, "filing receipt");
    Ok(format!(
        "filed s3://{}/{} ({} bytes)",
        receipt.bucket, receipt.key, receipt.size
    ))
}

/// The publisher Lambda: checks each order and publishes it to the topic (`FANOUT_TOPIC`).
pub fn publisher() -> PipelineBuilder {
    publisher_to(topic())
}

/// The publisher Lambda, publishing to this topic.
pub fn publisher_to(topic: Queue) -> PipelineBuilder {
    Pipeline::builder()
        .path(
            Path::PUBLISH_ORDER,
            [Action::new()
                .function(check_order)
                .include_all_params()
                .queue(topic.path(Path::RECORD_ORDER))],
        )
        .only_source("sqs")
}

/// The consumer Lambda: records each order once. Its queue is subscribed to the topic; the SNS
/// envelope is declared unless `FANOUT_RAW_DELIVERY` is `true`.
pub async fn consumer() -> PipelineBuilder {
    let raw = std::env::var("FANOUT_RAW_DELIVERY").is_ok_and(|v| v == "true");
    let store: Arc<dyn IdempotencyStore> = match std::env::var("FANOUT_IDEMPOTENCY_TABLE") {
        Ok(table) if !table.is_empty() => Arc::new(DynamoDbStore::from_env(table).await),
        _ => Arc::new(MemoryIdempotencyStore::new()),
    };
    consumer_in(raw, store)
}

/// The consumer Lambda, for a subscription with raw message delivery or without, its keys in
/// memory.
pub fn consumer_of(raw_delivery: bool) -> PipelineBuilder {
    consumer_in(raw_delivery, Arc::new(MemoryIdempotencyStore::new()))
}

/// The consumer Lambda, its idempotency keys in `store`.
pub fn consumer_in(raw_delivery: bool, store: Arc<dyn IdempotencyStore>) -> PipelineBuilder {
    let source = if raw_delivery {
        SqsSource::new()
    } else {
        SqsSource::new().envelope(SqsEnvelope::Sns)
    };
    let receipts = S3Source::new().route_matching(
        S3Match::event("ObjectCreated:*").key_prefix("receipts/"),
        Path::RECEIPT_UPLOADED,
    );
    Pipeline::builder()
        .path(Path::RECORD_ORDER, [Action::new().function(record_order)])
        .path(
            Path::RECEIPT_UPLOADED,
            [Action::new().function(file_receipt)],
        )
        .event_source(source)
        .event_source(receipts)
        .sources(["sqs", "s3"])
        .idempotent_in(
            Path::RECORD_ORDER,
            Idempotency::shared(store.clone()).key_from_message_id(),
        )
        .idempotent_in(
            Path::RECEIPT_UPLOADED,
            Idempotency::shared(store).key_from(["bucket", "key", "sequencer"]),
        )
}
