//! The signup Lambda of the `graph` example (see `lpipe_examples::graph`).
//! Locally: `graph [--send] [EVENT_FILE]`; `graph --mermaid` prints the graph as a diagram.
use std::process::ExitCode;

use lpipe_examples::graph;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--mermaid") {
        return match graph::signup()
            .record_outbound(lpipe::MemorySink::new())
            .build()
        {
            Ok(p) => {
                print!("{}", p.to_mermaid());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    lpipe::run(graph::signup()).await
}
