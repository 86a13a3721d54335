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

use lpipe::idempotency::MemoryIdempotencyStore;
use lpipe::sqs::{SqsEnvelope, SqsSource};
use lpipe::{Action, Context, FailButContinue, Idempotency, Pipeline, PipelineBuilder, Queue};
use serde::Deserialize;

lpipe::path_enum! {
    /// The paths of the two Lambdas.
    pub enum Path { PUBLISH_ORDER, RECORD_ORDER }
}

/// The topic the publisher publishes to (`FANOUT_TOPIC`).
pub fn topic() -> String {
    std::env::var("FANOUT_TOPIC").unwrap_or_else(|_| "lpipe-fanout-orders".to_owned())
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

/// The publisher Lambda: checks each order and publishes it to the topic.
pub fn publisher() -> PipelineBuilder {
    Pipeline::builder()
        .path(
            Path::PUBLISH_ORDER,
            [Action::new()
                .function(check_order)
                .include_all_params()
                .queue(Queue::sns(topic()).path(Path::RECORD_ORDER))],
        )
        .only_source("sqs")
}

/// The consumer Lambda: records each order once. Its queue is subscribed to the topic; the SNS
/// envelope is declared unless `FANOUT_RAW_DELIVERY` is `true`.
pub fn consumer() -> PipelineBuilder {
    let raw = std::env::var("FANOUT_RAW_DELIVERY").is_ok_and(|v| v == "true");
    consumer_of(raw)
}

/// The consumer Lambda, for a subscription with raw message delivery or without.
pub fn consumer_of(raw_delivery: bool) -> PipelineBuilder {
    let source = if raw_delivery {
        SqsSource::new()
    } else {
        SqsSource::new().envelope(SqsEnvelope::Sns)
    };
    Pipeline::builder()
        .path(Path::RECORD_ORDER, [Action::new().function(record_order)])
        .event_source(source)
        .only_source("sqs")
        // A DynamoDbStore under Lambda (see the `orders` example); in memory here.
        .idempotent(Idempotency::new(MemoryIdempotencyStore::new()).key_from_message_id())
}
