#![doc = include_str!("../../README.md")]
#![warn(missing_docs)]

/// The guide: how to use lpipe, a topic a page.
pub mod guide {
    #[doc = include_str!("guide/graph.md")]
    pub mod graph {}
    #[doc = include_str!("guide/outcomes.md")]
    pub mod outcomes {}
    #[doc = include_str!("guide/idempotency.md")]
    pub mod idempotency {}
    #[doc = include_str!("guide/sources_and_sinks.md")]
    pub mod sources_and_sinks {}
    #[doc = include_str!("guide/sqs.md")]
    pub mod sqs {}
    #[doc = include_str!("guide/kinesis.md")]
    pub mod kinesis {}
    #[doc = include_str!("guide/eventbridge.md")]
    pub mod eventbridge {}
    #[doc = include_str!("guide/dynamodb.md")]
    pub mod dynamodb {}
    #[doc = include_str!("guide/sns.md")]
    pub mod sns {}
    #[doc = include_str!("guide/s3.md")]
    pub mod s3 {}
    #[doc = include_str!("guide/large_payloads.md")]
    pub mod large_payloads {}
    #[doc = include_str!("guide/sentry.md")]
    pub mod sentry {}
    #[doc = include_str!("guide/observability.md")]
    pub mod observability {}
    #[doc = include_str!("guide/worker.md")]
    pub mod worker {}
    #[doc = include_str!("guide/local.md")]
    pub mod local {}
    #[doc = include_str!("guide/systems.md")]
    pub mod systems {}
    #[doc = include_str!("guide/testing.md")]
    pub mod testing {}
    #[doc = include_str!("guide/deploying.md")]
    pub mod deploying {}
    #[doc = include_str!("guide/python_lpipe.md")]
    pub mod python_lpipe {}
}

#[doc(inline)]
pub use lpipe_core::*;

/// Amazon SQS: event source and sink (feature `sqs`; the source alone: `sqs-source`).
#[cfg(feature = "sqs-source")]
#[doc(inline)]
pub use lpipe_sqs as sqs;

/// Amazon Kinesis Data Streams: event source and sink (feature `kinesis`; the source alone:
/// `kinesis-source`).
#[cfg(feature = "kinesis-source")]
#[doc(inline)]
pub use lpipe_kinesis as kinesis;

/// CloudWatch Events / EventBridge: event source and sink (feature `cloudwatch`).
#[cfg(feature = "cloudwatch")]
#[doc(inline)]
pub use lpipe_cloudwatch as cloudwatch;

/// Amazon DynamoDB: the idempotency store and the DynamoDB Streams event source (feature
/// `dynamodb`).
#[cfg(feature = "dynamodb")]
#[doc(inline)]
pub use lpipe_dynamodb as dynamodb;

/// Amazon SNS: the event source of a Lambda a topic triggers (feature `sns-source`), and the
/// sink that publishes to topics (feature `sns`).
#[cfg(feature = "sns-source")]
#[doc(inline)]
pub use lpipe_sns as sns;

/// Amazon S3: the event source of a Lambda a bucket's notifications trigger (feature
/// `s3-source`), and the store of payloads over a service's limit (feature `s3`).
#[cfg(feature = "s3-source")]
#[doc(inline)]
pub use lpipe_s3 as s3;

/// Sentry: a reporter for dropped and failed records (feature `sentry`).
#[cfg(feature = "sentry")]
#[doc(inline)]
pub use lpipe_sentry as sentry;

use std::process::ExitCode;

use lpipe_core::registry::Registry;
use lpipe_core::runtime::LocalOptions;

/// Refers to every enabled plugin crate. The `pub use`s above already make rustc link them
/// (so their registrations are seen); this keeps that true in the entry points should the
/// re-exports ever change.
fn link_plugins() {
    #[cfg(feature = "sqs-source")]
    std::hint::black_box(lpipe_sqs::link());
    #[cfg(feature = "kinesis-source")]
    std::hint::black_box(lpipe_kinesis::link());
    #[cfg(feature = "cloudwatch")]
    std::hint::black_box(lpipe_cloudwatch::link());
    #[cfg(feature = "dynamodb")]
    std::hint::black_box(lpipe_dynamodb::link());
    #[cfg(feature = "sns-source")]
    std::hint::black_box(lpipe_sns::link());
    #[cfg(feature = "s3-source")]
    std::hint::black_box(lpipe_s3::link());
}

/// The event sources and sink kinds registered by the enabled features.
///
/// # Examples
///
/// ```
/// let registry = lpipe::registry();
/// assert!(registry.source_names().contains(&"raw"));
/// ```
pub fn registry() -> Registry {
    link_plugins();
    Registry::from_inventory()
}

/// Runs a pipeline under Lambda or locally; see [`lpipe_core::run`]. With the `sqs` feature,
/// `PROGRAM worker --queue NAME_OR_URL […]` runs it as a long-running SQS worker instead (see
/// [`sqs::worker`]).
pub async fn run(builder: PipelineBuilder) -> ExitCode {
    link_plugins();
    #[cfg(feature = "sqs")]
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none()
        && std::env::args().nth(1).as_deref() == Some("worker")
    {
        return run_worker(builder, std::env::args().skip(2)).await;
    }
    lpipe_core::run(builder).await
}

/// Runs a pipeline as an SQS worker with the options of the `worker` subcommand (see
/// [`sqs::worker::WorkerOptions::from_args`]) until SIGTERM or SIGINT; the AWS configuration
/// (endpoint, region, credentials) comes from the environment, as for the sinks.
#[cfg(feature = "sqs")]
pub async fn run_worker(
    builder: PipelineBuilder,
    args: impl IntoIterator<Item = String>,
) -> ExitCode {
    link_plugins();
    let (options, concurrency) = match sqs::worker::WorkerOptions::from_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n\nusage: PROGRAM worker --queue NAME_OR_URL [--batch-size N] [--wait-seconds S] [--visibility-timeout S] [--in-flight B] [--concurrency N] [--grace-seconds S] [--create-queue]");
            return ExitCode::from(2);
        }
    };
    lpipe_core::runtime::init_logging();
    let builder = match concurrency {
        Some(n) => builder.concurrency(n),
        None => builder,
    };
    let pipeline = match builder.build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let client = sqs::shared_client().await;
    match sqs::worker::run_until_signal(pipeline, client, options).await {
        Ok(stats) if stats.abandoned > 0 => {
            eprintln!(
                "the SQS worker stopped with {} messages abandoned at the grace period: they reappear after their visibility timeout",
                stats.abandoned
            );
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a pipeline under the Lambda runtime; see [`lpipe_core::runtime::run_lambda`].
pub async fn run_lambda(builder: PipelineBuilder) -> ExitCode {
    link_plugins();
    lpipe_core::runtime::run_lambda(builder).await
}

/// Runs a pipeline once on a local event; see [`lpipe_core::runtime::run_local`].
pub async fn run_local(builder: PipelineBuilder, opts: LocalOptions) -> ExitCode {
    link_plugins();
    lpipe_core::runtime::run_local(builder, opts).await
}

/// Without the `test-kit` feature the test doubles are not part of the API; the plain recorder
/// the local mode uses is:
///
/// ```
/// let sink = lpipe::sink::MemorySink::new();
/// assert!(sink.messages().is_empty());
/// ```
///
/// ```compile_fail
/// lpipe::sink::MemorySink::new().fail_next(1, true);
/// ```
///
/// ```compile_fail
/// lpipe::sink::MemorySink::new().fail_bodies_containing("x", true);
/// ```
///
/// ```compile_fail
/// let _ = lpipe::Context::for_test();
/// ```
///
/// ```compile_fail
/// let _ = lpipe::testing::CapturingReporter::new();
/// ```
#[cfg(not(feature = "test-kit"))]
#[allow(dead_code)]
fn test_doubles_need_the_test_kit() {}
