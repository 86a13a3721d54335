//! The `orders` Lambda (see `lpipe_examples::place_order`): PLACE_ORDER, idempotent by
//! `order_id`, from SQS or from a DynamoDB stream's INSERTs; placed orders go to
//! `ORDERS_OUT_QUEUE`. The keys are kept in the DynamoDB table `IDEMPOTENCY_TABLE` when set,
//! else in memory. Locally: `orders [--send] [EVENT_FILE]`, `orders --help`.
use std::process::ExitCode;

use lpipe_examples::place_order;

#[tokio::main]
async fn main() -> ExitCode {
    let idempotency = place_order::idempotency_from_env().await;
    lpipe::run(place_order::pipeline(
        place_order::Warehouse::default(),
        idempotency,
    ))
    .await
}
