//! The `orders` Lambda: each order placed once, however often it is delivered.
//!
//! PLACE_ORDER (kwargs `order_id`, `item`, `quantity`) reserves the order in the
//! [`Warehouse`] (a quantity of 0 is `FailButContinue`: dropped; a warehouse that is
//! unavailable is a passing fault: kept for retry), then forwards the placed order to the SQS
//! queue `ORDERS_OUT_QUEUE` (default `lpipe-orders-out`), path ORDER_PLACED.
//!
//! The path is idempotent by `order_id`: an order delivered again (a retried batch, a producer
//! that sent it twice, a second event from a stream) is acknowledged without being placed or
//! forwarded again, with the output of its first run. The keys are kept in the DynamoDB table
//! named by `IDEMPOTENCY_TABLE` when it is set ([`lpipe::dynamodb::DynamoDbStore`]), else in
//! memory (a local run).
//!
//! It takes SQS events of lpipe messages and DynamoDB Streams events of an orders table: a new
//! item (`INSERT`) runs PLACE_ORDER with the item as kwargs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lpipe::dynamodb::{DynamoDbSource, DynamoDbStore};
use lpipe::{
    idempotency::MemoryIdempotencyStore, Action, FailButContinue, FailCatastrophically,
    Idempotency, Pipeline, PipelineBuilder, Queue, RecordOutput, State,
};
use serde::{Deserialize, Serialize};

lpipe::path_enum! {
    /// The paths of the `orders` Lambda and of its consumer.
    pub enum Path { PLACE_ORDER, ORDER_PLACED }
}

/// The queue placed orders go to: `lpipe-orders-out`, or `ORDERS_OUT_QUEUE`.
pub fn out_queue() -> String {
    placed_orders().target().to_owned()
}

fn placed_orders() -> Queue {
    Queue::sqs("lpipe-orders-out").target_from_env("ORDERS_OUT_QUEUE")
}

/// How long an order id keeps its order from being placed again: a day.
pub const KEY_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// An order to place.
#[derive(Debug, Deserialize)]
pub struct PlaceOrder {
    /// Its id: the idempotency key.
    pub order_id: String,
    /// What is ordered.
    pub item: String,
    /// How many.
    pub quantity: u32,
}

/// What placing an order returns: the record's output, stored with its key and returned again
/// for a duplicate.
#[derive(Debug, Serialize)]
pub struct Placed {
    /// The order's id.
    pub order_id: String,
    /// The warehouse's reservation.
    pub reservation: String,
}

/// A stand-in for the warehouse: counts the reservations of each order (the side effect that
/// must happen once), and can be made unavailable.
#[derive(Clone, Debug, Default)]
pub struct Warehouse {
    reservations: Arc<Mutex<HashMap<String, u32>>>,
    unavailable: Arc<AtomicBool>,
    delay: Duration,
}

impl Warehouse {
    /// How many times each order was reserved.
    pub fn reservations(&self) -> HashMap<String, u32> {
        self.reservations.lock().expect("warehouse lock").clone()
    }

    /// A warehouse that takes this long to reserve an order.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Makes the warehouse unavailable (orders fail and are kept for retry), or available.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }
}

/// Reserves an order in the warehouse.
pub async fn place(
    order: PlaceOrder,
    warehouse: State<Warehouse>,
) -> Result<RecordOutput<Placed>, lpipe::BoxError> {
    if order.quantity == 0 {
        return Err(
            FailButContinue::new(format!("order {} has a quantity of 0", order.order_id)).into(),
        );
    }
    if !warehouse.delay.is_zero() {
        tokio::time::sleep(warehouse.delay).await;
    }
    if warehouse.unavailable.load(Ordering::SeqCst) {
        return Err(FailCatastrophically::new("the warehouse is unavailable").into());
    }
    *warehouse
        .reservations
        .lock()
        .expect("warehouse lock")
        .entry(order.order_id.clone())
        .or_default() += 1;
    tracing::info!(
        order_id = %order.order_id,
        item = %order.item,
        quantity = order.quantity,
        "order placed"
    );
    Ok(RecordOutput(Placed {
        reservation: format!("r-{}", order.order_id),
        order_id: order.order_id,
    }))
}

/// The pipeline, with this warehouse and idempotency: PLACE_ORDER places the order, then
/// forwards it to [`out_queue`]. DynamoDB Streams `INSERT`s run PLACE_ORDER.
pub fn pipeline(warehouse: Warehouse, idempotency: Idempotency) -> PipelineBuilder {
    Pipeline::builder()
        .path(
            Path::PLACE_ORDER,
            [
                Action::new().function(place),
                Action::new()
                    .include_all_params()
                    .queue(placed_orders().path(Path::ORDER_PLACED)),
            ],
        )
        .idempotent_in(Path::PLACE_ORDER, idempotency)
        .event_source(DynamoDbSource::new().route("INSERT", Path::PLACE_ORDER.as_str()))
        // Fed by an SQS queue and by a table's stream: either, and nothing else.
        .sources(["sqs", "dynamodb"])
        .state(warehouse)
}

/// The idempotency the binary uses: keyed by `order_id` for [`KEY_EXPIRY`], in the DynamoDB
/// table `IDEMPOTENCY_TABLE` when it is set, else in memory.
pub async fn idempotency_from_env() -> Idempotency {
    let idempotency = match std::env::var("IDEMPOTENCY_TABLE") {
        Ok(table) if !table.is_empty() => Idempotency::new(DynamoDbStore::from_env(table).await),
        _ => Idempotency::new(MemoryIdempotencyStore::new()),
    };
    idempotency.key_from(["order_id"]).expires_after(KEY_EXPIRY)
}
