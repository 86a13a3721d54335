//! The intake Lambda of the `orders` example (see `lpipe_examples::orders`): SQS in, Kinesis
//! and SQS FIFO out. Locally: `orders-intake [--send] [EVENT_FILE]`, `orders-intake graph`,
//! `orders-intake --help`.
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(lpipe_examples::orders::intake()).await
}
