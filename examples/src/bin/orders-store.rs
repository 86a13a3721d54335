//! The store Lambda of the `orders` example (see `lpipe_examples::orders`): consumes the Kinesis
//! stream. Locally: `orders-store [EVENT_FILE]`.
use std::process::ExitCode;

use lpipe_examples::orders;

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(orders::store(orders::Database::default())).await
}
