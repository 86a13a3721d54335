//! The plugins lpipe ships (their facade features and crates), for the hints of errors that
//! name a source or sink kind whose plugin is not linked.

/// A built-in plugin: the lpipe feature, the crate, what it registers.
pub(crate) struct BuiltIn {
    pub(crate) feature: &'static str,
    pub(crate) krate: &'static str,
    pub(crate) source: &'static str,
    /// The queue kind of its sink, if it has one.
    pub(crate) sink: Option<&'static str>,
    /// The lpipe feature of its source alone, without the sink (and the AWS SDK), if any.
    pub(crate) source_only: Option<&'static str>,
}

/// The built-in plugins.
pub(crate) const BUILT_IN_PLUGINS: [BuiltIn; 6] = [
    BuiltIn {
        feature: "sqs",
        krate: "lpipe_sqs",
        source: "sqs",
        sink: Some("sqs"),
        source_only: Some("sqs-source"),
    },
    BuiltIn {
        feature: "kinesis",
        krate: "lpipe_kinesis",
        source: "kinesis",
        sink: Some("kinesis"),
        source_only: Some("kinesis-source"),
    },
    BuiltIn {
        feature: "cloudwatch",
        krate: "lpipe_cloudwatch",
        source: "cloudwatch",
        sink: Some("eventbridge"),
        source_only: None,
    },
    BuiltIn {
        feature: "sns",
        krate: "lpipe_sns",
        source: "sns",
        sink: Some("sns"),
        source_only: Some("sns-source"),
    },
    BuiltIn {
        feature: "s3-source",
        krate: "lpipe_s3",
        source: "s3",
        sink: None,
        source_only: None,
    },
    BuiltIn {
        feature: "dynamodb",
        krate: "lpipe_dynamodb",
        source: "dynamodb",
        sink: None,
        source_only: None,
    },
];

/// How to get a built-in plugin registered, for errors: a crate that nothing in the program
/// names is not linked at all (rustc loads a dependency only when the code names it), and its
/// registrations are not seen.
pub(crate) fn plugin_hint(feature: &str, krate: &str) -> String {
    format!(
        "enable the lpipe feature '{feature}', or, if {krate} is a dependency of its own, add `use {krate} as _;` to the program: a crate nothing names is not linked, and its registrations are not seen"
    )
}

/// The hint for a queue kind without a sink, when a built-in plugin provides it.
pub(crate) fn sink_plugin_hint(kind: &str) -> Option<String> {
    BUILT_IN_PLUGINS
        .iter()
        .find(|p| p.sink == Some(kind))
        .map(|p| {
            let hint = plugin_hint(p.feature, p.krate);
            match p.source_only {
                Some(source_only) => format!(
                    "{hint} (the feature '{source_only}' is the event source alone, without the sink; {} without its feature 'client' too)",
                    p.krate
                ),
                None => hint,
            }
        })
}
