//! The dispatch benchmark's workload: path PROCESS = [validate, enrich], [store], with typed
//! arguments (see `bench/` at the repository's root, whose floor program does the same work
//! by hand).

use lpipe::{Action, FailButContinue, Pipeline, PipelineBuilder};
use serde::Deserialize;

/// `validate(user_id: int, email: str)`.
#[derive(Deserialize)]
pub struct Validate {
    /// The user.
    pub user_id: i64,
    /// Must contain an `@`.
    pub email: String,
}

/// Drops the record when the email has no `@`.
pub async fn validate(args: Validate) -> Result<(), FailButContinue> {
    if args.email.contains('@') {
        Ok(())
    } else {
        Err(FailButContinue::new(format!(
            "user {}: bad email",
            args.user_id
        )))
    }
}

/// `enrich(user_id: int, name: str, score: float = 0.0)`.
#[derive(Deserialize)]
pub struct Enrich {
    /// The user.
    pub user_id: i64,
    /// Their name.
    pub name: String,
    /// Their score.
    #[serde(default)]
    pub score: f64,
}

/// Does nothing (observably).
pub async fn enrich(args: Enrich) -> Result<(), FailButContinue> {
    std::hint::black_box((args.user_id, &args.name, args.score));
    Ok(())
}

/// `store(user_id: int, tags: list)`.
#[derive(Deserialize)]
pub struct Store {
    /// The user.
    pub user_id: i64,
    /// Their tags.
    pub tags: Vec<String>,
}

/// Does nothing (observably).
pub async fn store(args: Store) -> Result<(), FailButContinue> {
    std::hint::black_box((args.user_id, &args.tags));
    Ok(())
}

/// `store`, waiting `ms` milliseconds first as a call to a database would (the I/O-bound row).
pub async fn store_waiting(args: Store, ms: u64) -> Result<(), FailButContinue> {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    store(args).await
}

/// The I/O-bound variant: `store` waits `ms` milliseconds; `concurrency` records at once.
pub fn io_pipeline(ms: u64, concurrency: usize) -> PipelineBuilder {
    Pipeline::builder()
        .path(
            "PROCESS",
            [
                Action::new().function(validate).function(enrich),
                Action::new().function(move |args: Store| store_waiting(args, ms)),
            ],
        )
        .concurrency(concurrency)
        .sources(["sqs", "kinesis"])
}

/// The benchmark pipeline.
pub fn pipeline() -> PipelineBuilder {
    // One program for the SQS and the Kinesis rows: it takes either event.
    Pipeline::builder()
        .path(
            "PROCESS",
            [
                Action::new().function(validate).function(enrich),
                Action::new().function(store),
            ],
        )
        .sources(["sqs", "kinesis"])
}
