//! The signup Lambda of the `graph` example (see `lpipe_examples::graph`).
//! Locally: `graph [--send] [EVENT_FILE]`; `graph graph` (or `--mermaid`) prints the diagram;
//! `graph --help` says so.
use std::process::ExitCode;

use lpipe_examples::graph;

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(graph::signup()).await
}
