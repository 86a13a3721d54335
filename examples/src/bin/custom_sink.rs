//! A pipeline with a user-written sink (an HTTP webhook; see `lpipe_examples::webhook`).
//! Locally: `custom_sink [--send] [EVENT_FILE]`; with `--send` it posts to `WEBHOOK_URL`.
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(lpipe_examples::webhook::pipeline()).await
}
