#![doc = include_str!("../../README.md")]
#![warn(missing_docs)]

#[doc(inline)]
pub use lpipe_core::*;

/// Amazon SQS: event source and sink (feature `sqs`).
#[cfg(feature = "sqs")]
#[doc(inline)]
pub use lpipe_sqs as sqs;

/// Amazon Kinesis Data Streams: event source and sink (feature `kinesis`).
#[cfg(feature = "kinesis")]
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

/// Sentry: a reporter for dropped and failed records (feature `sentry`).
#[cfg(feature = "sentry")]
#[doc(inline)]
pub use lpipe_sentry as sentry;

use std::process::ExitCode;

/// Refers to every enabled plugin crate. The `pub use`s above already make rustc link them
/// (so their registrations are seen); this keeps that true in the entry points should the
/// re-exports ever change.
fn link_plugins() {
    #[cfg(feature = "sqs")]
    std::hint::black_box(lpipe_sqs::link());
    #[cfg(feature = "kinesis")]
    std::hint::black_box(lpipe_kinesis::link());
    #[cfg(feature = "cloudwatch")]
    std::hint::black_box(lpipe_cloudwatch::link());
    #[cfg(feature = "dynamodb")]
    std::hint::black_box(lpipe_dynamodb::link());
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

/// Runs a pipeline under Lambda or locally; see [`lpipe_core::run`].
pub async fn run(builder: PipelineBuilder) -> ExitCode {
    link_plugins();
    lpipe_core::run(builder).await
}

/// Runs a pipeline under the Lambda runtime; see [`lpipe_core::run_lambda`].
pub async fn run_lambda(builder: PipelineBuilder) -> ExitCode {
    link_plugins();
    lpipe_core::run_lambda(builder).await
}

/// Runs a pipeline once on a local event; see [`lpipe_core::run_local`].
pub async fn run_local(builder: PipelineBuilder, opts: LocalOptions) -> ExitCode {
    link_plugins();
    lpipe_core::run_local(builder, opts).await
}

/// Without the `test-kit` feature the test doubles are not part of the API; the plain recorder
/// the local mode uses is:
///
/// ```
/// let sink = lpipe::MemorySink::new();
/// assert!(sink.messages().is_empty());
/// ```
///
/// ```compile_fail
/// lpipe::MemorySink::new().fail_next(1, true);
/// ```
///
/// ```compile_fail
/// lpipe::MemorySink::new().fail_bodies_containing("x", true);
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
