//! Which event sources and sink kinds each feature set registers. Run with each feature set
//! (`scripts/test` does): the expectation follows the features this test was compiled with.

#[test]
fn the_registry_matches_the_enabled_features() {
    let registry = lpipe::registry();
    let mut sources = vec!["raw"];
    let mut sinks: Vec<String> = Vec::new();
    // `sqs-source` and `kinesis-source`: the source without the sink (and the SDK).
    if cfg!(feature = "sqs-source") {
        sources.push("sqs");
    }
    if cfg!(feature = "sqs") {
        sinks.push("sqs".into());
    }
    if cfg!(feature = "kinesis-source") {
        sources.push("kinesis");
    }
    if cfg!(feature = "kinesis") {
        sinks.push("kinesis".into());
    }
    if cfg!(feature = "cloudwatch") {
        sources.push("cloudwatch");
        sinks.push("eventbridge".into());
    }
    if cfg!(feature = "dynamodb") {
        sources.push("dynamodb");
    }
    if cfg!(feature = "sns-source") {
        sources.push("sns");
    }
    if cfg!(feature = "sns") {
        sinks.push("sns".into());
    }
    if cfg!(feature = "s3-source") {
        sources.push("s3");
    }
    sinks.sort_unstable();
    #[cfg(feature = "sentry")]
    {
        // The reporter is there, and off without a DSN.
        assert!(!lpipe::sentry::SentryReporter::disabled().is_enabled());
    }
    sources.sort_unstable();
    assert_eq!(registry.source_names(), sources);
    assert_eq!(registry.sink_kinds(), sinks);
}
