//! The mailer Lambda of the `graph` example: consumes the welcome queue.
//! Locally: `graph-mailer [EVENT_FILE]`.
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(lpipe_examples::graph::mailer()).await
}
