//! The smallest lpipe Lambda: one function, fed by SQS, messages are bare kwargs.
//! Locally: `quickstart [EVENT_FILE]` (try `examples/events/quickstart-sqs.json`).
use std::process::ExitCode;

use lpipe::{FailButContinue, Pipeline};
use serde::Deserialize;

#[derive(Deserialize)]
struct Greet {
    name: String,
    #[serde(default)]
    excited: bool,
}

async fn greet(args: Greet) -> Result<String, FailButContinue> {
    if args.name.is_empty() {
        return Err(FailButContinue::new("nobody to greet"));
    }
    Ok(format!(
        "Hello, {}{}",
        args.name,
        if args.excited { "!" } else { "." }
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(Pipeline::from_function(greet).only_source("sqs")).await
}
