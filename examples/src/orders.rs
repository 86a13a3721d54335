//! Two Lambdas a new user wrote from the docs: orders in from SQS, validated and enriched, out
//! to a Kinesis stream and an SQS FIFO queue; and the stream's consumer, which stores them.
//!
//! - The *intake* Lambda ([`intake`], SQS): ORDER validates an order (no items, or a quantity
//!   of 0: `FailButContinue`, dropped), then `price` computes its total, a new kwarg, and
//!   returns it as a payload to ROUTE (declared with `returns_to`). ROUTE forwards the order to
//!   the Kinesis stream `ORDERS_STREAM` (default `lpipe-orders-enriched`; partition key: the
//!   customer) for the *store* Lambda, and to the SQS FIFO queue `ORDERS_NOTIFY_QUEUE`
//!   (default `lpipe-orders-notify.fifo`; message group: the customer) for a notifier.
//! - The *store* Lambda ([`store`], Kinesis): STORE writes the order to a database. The
//!   database being unavailable is a passing fault: `retry_on::<Unavailable>()` keeps those
//!   records for retry, where any other error would drop them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lpipe::{
    Action, BoxError, FailButContinue, Payload, Pipeline, PipelineBuilder, Queue, RecordOutput,
    State,
};
use serde::{Deserialize, Serialize};

lpipe::path_enum! {
    /// The paths of the two Lambdas.
    pub enum Path { ORDER, ROUTE, STORE, NOTIFY }
}

/// The stream the store Lambda consumes: `lpipe-orders-enriched`, or `ORDERS_STREAM`.
pub fn stream() -> String {
    enriched_stream().target().to_owned()
}

fn enriched_stream() -> Queue {
    Queue::kinesis("lpipe-orders-enriched").target_from_env("ORDERS_STREAM")
}

/// The notifier's FIFO queue: `lpipe-orders-notify.fifo`, or `ORDERS_NOTIFY_QUEUE`.
pub fn notify_queue() -> String {
    notifications().target().to_owned()
}

fn notifications() -> Queue {
    Queue::sqs("lpipe-orders-notify.fifo").target_from_env("ORDERS_NOTIFY_QUEUE")
}

/// One line of an order.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Item {
    /// The product.
    pub sku: String,
    /// How many.
    pub qty: u32,
    /// The price of one, in cents.
    pub unit_price_cents: u64,
}

/// An order as it arrives.
#[derive(Debug, Deserialize, Serialize)]
pub struct Order {
    /// Its id.
    pub order_id: String,
    /// Who placed it.
    pub customer_id: String,
    /// What they ordered.
    pub items: Vec<Item>,
}

/// Drops orders without items or with a quantity of 0: they will never be valid.
pub async fn validate(order: Order) -> Result<(), FailButContinue> {
    if order.items.is_empty() {
        return Err(FailButContinue::new(format!(
            "order {} has no items",
            order.order_id
        )));
    }
    if let Some(item) = order.items.iter().find(|i| i.qty == 0) {
        return Err(FailButContinue::new(format!(
            "order {}: {} has a quantity of 0",
            order.order_id, item.sku
        )));
    }
    Ok(())
}

/// An order with its total: what ROUTE forwards.
#[derive(Debug, Deserialize, Serialize)]
pub struct Priced {
    /// The order's id.
    pub order_id: String,
    /// Who placed it.
    pub customer_id: String,
    /// What they ordered.
    pub items: Vec<Item>,
    /// The sum of the lines, in cents.
    pub total_cents: u64,
}

/// Computes the order's total, a new kwarg, and runs ROUTE with it.
pub async fn price(order: Order) -> Result<Payload, BoxError> {
    let total_cents = order
        .items
        .iter()
        .map(|i| u64::from(i.qty) * i.unit_price_cents)
        .sum();
    let priced = Priced {
        order_id: order.order_id,
        customer_id: order.customer_id,
        items: order.items,
        total_cents,
    };
    Ok(Payload::to_path(Path::ROUTE, &priced)?)
}

/// The intake Lambda: SQS in, Kinesis and SQS FIFO out.
pub fn intake() -> PipelineBuilder {
    Pipeline::builder()
        .only_source("sqs")
        .path(
            Path::ORDER,
            [
                Action::new().function(validate),
                Action::new().function(price).returns_to(Path::ROUTE),
            ],
        )
        .path(
            Path::ROUTE,
            [Action::new()
                .include_all_params()
                .queue(
                    enriched_stream()
                        .path(Path::STORE)
                        .partition_key_from("customer_id"),
                )
                .queue(
                    notifications()
                        .path(Path::NOTIFY)
                        .message_group_id_from("customer_id"),
                )],
        )
}

/// The database is unavailable for now: worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("the orders database is unavailable")]
pub struct Unavailable;

/// A stand-in for the orders database: stores orders in memory; customers named `flaky-…`
/// find it unavailable.
#[derive(Clone, Debug, Default)]
pub struct Database {
    orders: Arc<Mutex<HashMap<String, u64>>>,
}

impl Database {
    /// The stored total of an order.
    pub fn total_of(&self, order_id: &str) -> Option<u64> {
        self.orders.lock().unwrap().get(order_id).copied()
    }
}

/// What STORE needs.
#[derive(Debug, Deserialize)]
pub struct ToStore {
    /// The order's id.
    pub order_id: String,
    /// Who placed it.
    pub customer_id: String,
    /// Its total.
    pub total_cents: u64,
}

/// What STORE returns: the record's output.
#[derive(Debug, Serialize)]
pub struct Stored {
    /// The order's id.
    pub order_id: String,
    /// Its total, as stored.
    pub total_cents: u64,
}

/// Stores an order in the database given to the pipeline (`.state(db)`; the build fails
/// without one).
pub async fn save(order: ToStore, db: State<Database>) -> Result<RecordOutput<Stored>, BoxError> {
    if order.customer_id.starts_with("flaky") {
        return Err(Unavailable.into());
    }
    db.orders
        .lock()
        .unwrap()
        .insert(order.order_id.clone(), order.total_cents);
    tracing::info!(order_id = %order.order_id, total_cents = order.total_cents, "stored order");
    Ok(RecordOutput(Stored {
        order_id: order.order_id,
        total_cents: order.total_cents,
    }))
}

/// The store Lambda: Kinesis in.
pub fn store(db: Database) -> PipelineBuilder {
    Pipeline::builder()
        .path(Path::STORE, [Action::new().function(save)])
        .only_source("kinesis")
        .retry_on::<Unavailable>()
        .state(db)
}
