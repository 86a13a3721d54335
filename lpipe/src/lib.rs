//! # lpipe
//!
//! Clearly defined, multi-function AWS Lambdas: declare a directed graph of **paths** (named
//! lists of **actions**); an action calls your async functions with typed parameters (a serde
//! struct is the signature), runs further paths, and forwards messages to **queues** that
//! usually feed other lpipe Lambdas. Every record of a batch ends as a success, is dropped
//! (logged and reported) or fails and is kept for retry.
//!
//! A Rust port of the Python package lpipe 4.2.0, in its vocabulary.
//!
//! ## Quickstart
//!
//! ```no_run
//! use lpipe::{Action, FailButContinue, Pipeline, Queue};
//!
//! #[derive(serde::Deserialize)]
//! struct Subscribe {
//!     name: String,
//!     email: String,
//! }
//!
//! async fn subscribe(args: Subscribe) -> Result<(), FailButContinue> {
//!     if !args.email.contains('@') {
//!         return Err(FailButContinue::new(format!("{}: bad email", args.name)));
//!     }
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     lpipe::run(
//!         Pipeline::builder()
//!             .path("SUBSCRIBE", [Action::new().function(subscribe).path("WELCOME")])
//!             .path("WELCOME", [Action::new().required_param("email").queue(Queue::sqs("emails"))]),
//!     )
//!     .await
//! }
//! ```
//!
//! `lpipe::run` serves the pipeline under the Lambda runtime when `AWS_LAMBDA_RUNTIME_API` is
//! set; otherwise it reads an event from the file named on the command line (or stdin), prints
//! the response, and prints the messages it would forward instead of sending them.
//!
//! ## Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `test-kit` | event builders for tests (`lpipe::testing`) |
//!
//! The event source of direct invocations (`raw`), the in-memory sink and the capturing
//! reporter are always available. The SQS, Kinesis, CloudWatch/EventBridge and Sentry plugins
//! arrive as the features `sqs`, `kinesis`, `cloudwatch` and `sentry`.
#![warn(missing_docs)]

#[doc(inline)]
pub use lpipe_core::*;
