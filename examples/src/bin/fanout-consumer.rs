//! The consumer Lambda of the `fanout` example: a queue subscribed to the topic.
//! Locally: `fanout-consumer [EVENT_FILE]`.
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(lpipe_examples::fanout::consumer().await).await
}
