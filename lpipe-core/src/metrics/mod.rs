//! Metrics in CloudWatch's Embedded Metric Format (EMF): aggregated per invocation, written
//! as JSON documents to stdout under Lambda (where CloudWatch Logs turns them into metrics)
//! and to stderr in local mode (stdout stays the response).
//!
//! Per invocation, one document per dimension set:
//!
//! | dimensions | metrics (unit) |
//! | --- | --- |
//! | `service` | `RecordsReceived`, `RecordsSucceeded`, `RecordsDropped`, `RecordsFailed`, `RecordsNotStarted`, `RecordsDeadLettered`, `RecordsDuplicate` (idempotent records not run again; only when there are some) (Count); `BatchDuration` (Milliseconds); the functions' own metrics |
//! | `service`, `path` | the five `Records…` counts of the records that entered by that path |
//! | `service`, `function` | `FunctionDuration` (Milliseconds, one value per call) |
//! | `service`, `queue_kind` | `MessagesSent`, `MessagesRetried`, `MessagesUndeliverable` (Count) |
//!
//! EMF's limits are kept by splitting into more documents, never by emitting an invalid one:
//! at most 100 metrics per document, 100 values per metric, and 255 KiB per document (at most
//! three dimensions per set, of EMF's 30).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod emf;

/// EMF: metrics per directive.
const MAX_METRICS: usize = 100;
/// EMF: values in one metric's array.
const MAX_VALUES: usize = 100;
/// The size of a document lpipe writes at most (CloudWatch Logs takes events up to 256 KiB).
const MAX_DOCUMENT_BYTES: usize = 256 * 1024 - 1024;

/// A metric's unit, as CloudWatch names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MetricUnit {
    /// `Count`.
    Count,
    /// `Milliseconds`.
    Milliseconds,
    /// `Seconds`.
    Seconds,
    /// `Microseconds`.
    Microseconds,
    /// `Bytes`.
    Bytes,
    /// `Percent`.
    Percent,
    /// `None`.
    None,
}

impl MetricUnit {
    /// The unit's name in EMF.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricUnit::Count => "Count",
            MetricUnit::Milliseconds => "Milliseconds",
            MetricUnit::Seconds => "Seconds",
            MetricUnit::Microseconds => "Microseconds",
            MetricUnit::Bytes => "Bytes",
            MetricUnit::Percent => "Percent",
            MetricUnit::None => "None",
        }
    }
}

/// Where documents go.
#[derive(Clone)]
enum Output {
    /// stdout, or stderr in local mode.
    Standard,
    /// A function of the user's (tests).
    Custom(Arc<dyn Fn(&str) + Send + Sync>),
}

/// Metrics for a pipeline: give it with
/// [`PipelineBuilder::metrics`](crate::PipelineBuilder::metrics), or set
/// `LPIPE_METRICS_NAMESPACE` (and optionally `LPIPE_METRICS_SERVICE`).
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, Metrics, NoParams, Pipeline};
/// async fn ok(_: NoParams) -> Result<(), std::convert::Infallible> { Ok(()) }
/// let pipeline = Pipeline::builder()
///     .path("A", [Action::new().function(ok)])
///     .metrics(Metrics::new("Signups").service("signup"));
/// ```
#[derive(Clone)]
pub struct Metrics {
    pub(crate) namespace: String,
    pub(crate) service: String,
    output: Output,
    max_bytes: usize,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("namespace", &self.namespace)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics in this CloudWatch namespace; the `service` dimension is
    /// `AWS_LAMBDA_FUNCTION_NAME` (else `lpipe`) unless [`service`](Self::service) says.
    pub fn new(namespace: impl Into<String>) -> Self {
        let service = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "lpipe".to_owned());
        Metrics {
            namespace: namespace.into(),
            service,
            output: Output::Standard,
            max_bytes: MAX_DOCUMENT_BYTES,
        }
    }

    /// The value of the `service` dimension.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Sends each document (one line of JSON) to `write` instead of stdout (for tests).
    pub fn write_to(mut self, write: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.output = Output::Custom(Arc::new(write));
        self
    }

    /// Metrics as the environment asks: on when `LPIPE_METRICS_NAMESPACE` is set, with
    /// `LPIPE_METRICS_SERVICE` as the service when set.
    pub fn from_env() -> Option<Self> {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let metrics = Metrics::new(set("LPIPE_METRICS_NAMESPACE")?);
        Some(match set("LPIPE_METRICS_SERVICE") {
            Some(service) => metrics.service(service),
            None => metrics,
        })
    }

    /// Checks the namespace and service (EMF: 1 to 255 characters).
    pub(crate) fn check(&self) -> Result<(), String> {
        for (what, value) in [("namespace", &self.namespace), ("service", &self.service)] {
            if value.is_empty() || value.chars().count() > 255 {
                return Err(format!(
                    "the metrics {what} '{value}' must have 1 to 255 characters"
                ));
            }
        }
        Ok(())
    }

    /// Writes the documents: to the user's function, or to stdout (stderr when `local`).
    pub(crate) fn write(&self, documents: &[String], local: bool) {
        if let Output::Custom(write) = &self.output {
            documents.iter().for_each(|d| write(d));
            return;
        }
        // One write of every line (a large batch makes thousands); print!/eprint! rather than
        // locked writers, so that tests capture them.
        let mut lines = String::with_capacity(documents.iter().map(|d| d.len() + 1).sum());
        for d in documents {
            lines.push_str(d);
            lines.push('\n');
        }
        if local {
            eprint!("{lines}");
        } else {
            print!("{lines}");
        }
    }
}

/// What one invocation measured besides its outcomes: function durations and the functions'
/// own metrics. Shared by the records of the invocation.
#[derive(Debug, Default)]
pub(crate) struct InvocationMetrics {
    inner: Mutex<Measured>,
}

#[derive(Debug, Default)]
struct Measured {
    /// Per function (few), in the order first called.
    function_ms: Vec<(&'static str, Vec<f64>)>,
    /// The functions' own, by name: unit and values (a count keeps one value, its sum).
    user: BTreeMap<String, (MetricUnit, Vec<f64>)>,
}

/// Names lpipe uses as dimensions or for its own metrics: a function's metric may not take
/// them.
const RESERVED: [&str; 19] = [
    "_aws",
    "service",
    "path",
    "function",
    "queue_kind",
    "RecordsReceived",
    "RecordsSucceeded",
    "RecordsDropped",
    "RecordsFailed",
    "RecordsNotStarted",
    "RecordsDeadLettered",
    "RecordsDuplicate",
    "BatchDuration",
    "FunctionDuration",
    "MessagesSent",
    "MessagesRetried",
    "MessagesUndeliverable",
    "Timestamp",
    "CloudWatchMetrics",
];

impl InvocationMetrics {
    pub(crate) fn function_took(&self, function: &'static str, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        let mut m = self.inner.lock().expect("metrics lock");
        // Names are `&'static str`s of the functions: the same pointer, almost always.
        let found = m
            .function_ms
            .iter_mut()
            .find(|(n, _)| std::ptr::eq(*n, function) || *n == function);
        match found {
            Some((_, values)) => values.push(ms),
            None => m.function_ms.push((function, vec![ms])),
        }
    }

    /// A function's own metric: counts add up, other units keep every value.
    pub(crate) fn add(&self, name: &str, value: f64, unit: MetricUnit) {
        if name.is_empty() || name.chars().count() > 255 || RESERVED.contains(&name) {
            tracing::warn!(
                metric = name,
                "metric not recorded: its name must have 1 to 255 characters and not be one of lpipe's ({})",
                RESERVED.join(", ")
            );
            return;
        }
        if !value.is_finite() {
            tracing::warn!(
                metric = name,
                value,
                "metric not recorded: not a finite number"
            );
            return;
        }
        let mut m = self.inner.lock().expect("metrics lock");
        let (first_unit, values) = m
            .user
            .entry(name.to_owned())
            .or_insert_with(|| (unit, Vec::new()));
        if *first_unit != unit {
            tracing::warn!(
                metric = name,
                unit = unit.as_str(),
                first = first_unit.as_str(),
                "metric not recorded: it was recorded with another unit in this invocation"
            );
            return;
        }
        match (unit, values.first_mut()) {
            (MetricUnit::Count, Some(total)) => *total += value,
            _ => values.push(value),
        }
    }
}

/// The record counts of one set of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecordCounts {
    pub(crate) received: usize,
    pub(crate) succeeded: usize,
    pub(crate) dropped: usize,
    pub(crate) failed: usize,
    pub(crate) not_started: usize,
}

/// Everything one invocation's documents say.
#[derive(Debug, Default)]
pub(crate) struct InvocationSummary {
    pub(crate) total: RecordCounts,
    pub(crate) by_path: BTreeMap<String, RecordCounts>,
    pub(crate) dead_lettered: usize,
    /// Records not run because their idempotency key was completed.
    pub(crate) duplicates: usize,
    pub(crate) batch_ms: f64,
    pub(crate) messages: BTreeMap<String, crate::outbox::MessageCounts>,
}
