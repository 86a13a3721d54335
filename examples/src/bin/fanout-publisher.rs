//! The publisher Lambda of the `fanout` example: publishes orders to an SNS topic.
//! Locally: `fanout-publisher [EVENT_FILE]`.
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(lpipe_examples::fanout::publisher()).await
}
