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
const RESERVED: [&str; 18] = [
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

/// One metric of a document: name, unit, values.
type Metric = (String, MetricUnit, Vec<f64>);

impl Metrics {
    /// The EMF documents for one invocation.
    pub(crate) fn documents(
        &self,
        summary: &InvocationSummary,
        measured: Option<&InvocationMetrics>,
        timestamp_ms: u64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let counts = |c: &RecordCounts| -> Vec<Metric> {
            [
                ("RecordsReceived", c.received),
                ("RecordsSucceeded", c.succeeded),
                ("RecordsDropped", c.dropped),
                ("RecordsFailed", c.failed),
                ("RecordsNotStarted", c.not_started),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), MetricUnit::Count, vec![v as f64]))
            .collect()
        };
        let mut measured =
            measured.map(|m| std::mem::take(&mut *m.inner.lock().expect("metrics lock")));

        let mut totals = counts(&summary.total);
        totals.push((
            "RecordsDeadLettered".into(),
            MetricUnit::Count,
            vec![summary.dead_lettered as f64],
        ));
        if summary.duplicates > 0 {
            totals.push((
                "RecordsDuplicate".into(),
                MetricUnit::Count,
                vec![summary.duplicates as f64],
            ));
        }
        totals.push((
            "BatchDuration".into(),
            MetricUnit::Milliseconds,
            vec![summary.batch_ms],
        ));
        if let Some(m) = &mut measured {
            totals.extend(
                std::mem::take(&mut m.user)
                    .into_iter()
                    .map(|(n, (u, v))| (n, u, v)),
            );
        }
        self.emit(&[], totals, timestamp_ms, &mut out);
        for (path, c) in &summary.by_path {
            self.emit(&[("path", path)], counts(c), timestamp_ms, &mut out);
        }
        if let Some(m) = &mut measured {
            m.function_ms.sort_unstable_by_key(|(n, _)| *n);
            for (function, ms) in &mut m.function_ms {
                // The measurements were taken out of the invocation: move, not copy.
                let metric = (
                    "FunctionDuration".to_owned(),
                    MetricUnit::Milliseconds,
                    std::mem::take(ms),
                );
                self.emit(
                    &[("function", function)],
                    vec![metric],
                    timestamp_ms,
                    &mut out,
                );
            }
        }
        for (kind, c) in &summary.messages {
            let metrics = [
                ("MessagesSent", c.sent),
                ("MessagesRetried", c.retried),
                ("MessagesUndeliverable", c.undeliverable),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), MetricUnit::Count, vec![v as f64]))
            .collect();
            self.emit(&[("queue_kind", kind)], metrics, timestamp_ms, &mut out);
        }
        out
    }

    /// The documents for one dimension set: as few as EMF's limits allow.
    fn emit(
        &self,
        dimensions: &[(&str, &str)],
        metrics: Vec<Metric>,
        timestamp_ms: u64,
        out: &mut Vec<String>,
    ) {
        // No metric with more values than a document may hold: split the values.
        let mut split: Vec<(&str, MetricUnit, &[f64])> = Vec::new();
        for (name, unit, values) in &metrics {
            for chunk in values.chunks(MAX_VALUES) {
                split.push((name, *unit, chunk));
            }
        }
        // Fill documents: a name at most once per document, at most MAX_METRICS each.
        let mut docs: Vec<Vec<(&str, MetricUnit, &[f64])>> = Vec::new();
        for metric in split {
            let fits = docs
                .iter_mut()
                .find(|d| d.len() < MAX_METRICS && !d.iter().any(|(n, _, _)| *n == metric.0));
            match fits {
                Some(doc) => doc.push(metric),
                None => docs.push(vec![metric]),
            }
        }
        for doc in &docs {
            self.render(dimensions, doc, timestamp_ms, out);
        }
    }

    /// One document, halved until it is within the size limit. Written directly rather than
    /// through `serde_json::Value`: a large batch makes thousands of these.
    fn render(
        &self,
        dimensions: &[(&str, &str)],
        metrics: &[(&str, MetricUnit, &[f64])],
        timestamp_ms: u64,
        out: &mut Vec<String>,
    ) {
        use std::io::Write as _;
        let string = |s: &str| serde_json::to_string(s).expect("a string serializes");
        // Bytes, not a String: digits are pushed one by one (see `write_number`).
        let mut text: Vec<u8> = Vec::with_capacity(256 + metrics.len() * 64);
        let _ = write!(
            text,
            "{{\"_aws\":{{\"Timestamp\":{timestamp_ms},\"CloudWatchMetrics\":[{{\"Namespace\":{},\"Dimensions\":[[\"service\"",
            string(&self.namespace)
        );
        for (key, _) in dimensions {
            let _ = write!(text, ",{}", string(key));
        }
        text.extend_from_slice(b"]],\"Metrics\":[");
        for (i, (name, unit, _)) in metrics.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                text,
                "{sep}{{\"Name\":{},\"MetricUnit\":\"{}\"}}",
                string(name),
                unit.as_str()
            );
        }
        let _ = write!(text, "]}}]}},\"service\":{}", string(&self.service));
        for (key, value) in dimensions {
            let _ = write!(text, ",{}:{}", string(key), string(value));
        }
        for (name, _, values) in metrics {
            let _ = write!(text, ",{}:", string(name));
            match values {
                [one] => write_number(&mut text, *one),
                many => {
                    text.push(b'[');
                    for (i, v) in many.iter().enumerate() {
                        if i > 0 {
                            text.push(b',');
                        }
                        write_number(&mut text, *v);
                    }
                    text.push(b']');
                }
            }
        }
        text.push(b'}');
        if text.len() <= self.max_bytes {
            out.push(String::from_utf8(text).expect("JSON text is UTF-8"));
            return;
        }
        // Too big: halve by metrics, else by values.
        if metrics.len() > 1 {
            let (first, second) = metrics.split_at(metrics.len() / 2);
            self.render(dimensions, first, timestamp_ms, out);
            self.render(dimensions, second, timestamp_ms, out);
        } else if let Some((name, unit, values)) = metrics.first() {
            if values.len() > 1 {
                let (a, b) = values.split_at(values.len() / 2);
                self.render(dimensions, &[(name, *unit, a)], timestamp_ms, out);
                self.render(dimensions, &[(name, *unit, b)], timestamp_ms, out);
            } else {
                tracing::warn!(
                    metric = name,
                    "metric not written: its document would exceed {} bytes",
                    self.max_bytes
                );
            }
        }
    }
}

/// Writes a value as JSON, to the thousandth (a microsecond, for milliseconds): whole numbers
/// as integers. Digits are written by hand: a large batch has many thousands of durations,
/// and `f64`'s shortest-representation formatting costs ten times as much.
fn write_number(text: &mut Vec<u8>, v: f64) {
    // Durations: positive and below 2^53 thousandths, the common case, rounded by a cast
    // (`round` is a libm call).
    let t: u64 = if (0.0..9.0e12).contains(&v) {
        (v * 1000.0 + 0.5) as u64
    } else {
        let thousandths = (v * 1000.0).round();
        if !thousandths.is_finite() || thousandths.abs() >= 9_007_199_254_740_992.0 {
            text.extend_from_slice(v.to_string().as_bytes());
            return;
        }
        let t = thousandths as i64;
        if t < 0 {
            text.push(b'-');
        }
        t.unsigned_abs()
    };
    push_digits(text, t / 1000, 1);
    let mut frac = t % 1000;
    if frac > 0 {
        let mut digits = 3;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        text.push(b'.');
        push_digits(text, frac, digits);
    }
}

/// Writes `n` in decimal, with at least `width` digits (zeros in front).
fn push_digits(text: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = 1;
    let mut scale = 1u64;
    while n / scale >= 10 {
        scale *= 10;
        digits += 1;
    }
    for _ in digits..width {
        text.push(b'0');
    }
    // Byte by byte: a copy of a few bytes costs more than the pushes.
    while scale > 0 {
        text.push(b'0' + (n / scale % 10) as u8);
        scale /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check_emf;
    use serde_json::{json, Value};

    fn metrics() -> Metrics {
        Metrics::new("Test").service("svc")
    }

    #[test]
    fn one_document_per_dimension_set_with_the_counts() {
        let summary = InvocationSummary {
            total: RecordCounts {
                received: 4,
                succeeded: 2,
                dropped: 1,
                failed: 1,
                not_started: 0,
            },
            by_path: [(
                "SIGNUP".to_owned(),
                RecordCounts {
                    received: 3,
                    succeeded: 2,
                    dropped: 0,
                    failed: 1,
                    not_started: 0,
                },
            )]
            .into(),
            dead_lettered: 1,
            duplicates: 1,
            batch_ms: 12.5,
            messages: [(
                "sqs".to_owned(),
                crate::outbox::MessageCounts {
                    sent: 2,
                    retried: 1,
                    undeliverable: 0,
                },
            )]
            .into(),
        };
        let measured = InvocationMetrics::default();
        measured.function_took("store_user", Duration::from_millis(3));
        measured.function_took("store_user", Duration::from_millis(5));
        measured.add("MailsSent", 1.0, MetricUnit::Count);
        measured.add("MailsSent", 2.0, MetricUnit::Count);
        measured.add("MailLatency", 7.0, MetricUnit::Milliseconds);
        measured.add("MailLatency", 9.0, MetricUnit::Milliseconds);
        measured.add("service", 1.0, MetricUnit::Count);
        let docs = metrics().documents(&summary, Some(&measured), 1_700_000_000_000);
        let docs: Vec<Value> = docs
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        for d in &docs {
            check_emf(d).unwrap();
        }
        assert_eq!(docs.len(), 4, "{docs:#?}");
        let total = &docs[0];
        assert_eq!(
            total["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["service"]])
        );
        assert_eq!(total["service"], "svc");
        assert_eq!(total["RecordsReceived"], 4);
        assert_eq!(total["RecordsFailed"], 1);
        assert_eq!(total["RecordsDeadLettered"], 1);
        assert_eq!(total["RecordsDuplicate"], 1);
        assert_eq!(total["BatchDuration"], 12.5);
        assert_eq!(total["MailsSent"], 3);
        assert_eq!(total["MailLatency"], json!([7, 9]));
        assert!(total.get("service").is_some_and(|s| s == "svc"));
        assert_eq!(docs[1]["path"], "SIGNUP");
        assert_eq!(docs[1]["RecordsReceived"], 3);
        assert_eq!(docs[2]["function"], "store_user");
        assert_eq!(docs[2]["FunctionDuration"].as_array().unwrap().len(), 2);
        assert_eq!(docs[3]["queue_kind"], "sqs");
        assert_eq!(docs[3]["MessagesRetried"], 1);
        // Every metric lpipe writes is in the guide's table (the user's own aside).
        let readme = include_str!("../../lpipe/src/guide/observability.md");
        let table = &readme[readme.find("| metric | unit | dimensions |").unwrap()..];
        let table = &table[..table.find("\n\n").unwrap()];
        for d in &docs {
            for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
            {
                let name = m["Name"].as_str().unwrap();
                if name.starts_with("Mail") {
                    continue;
                }
                assert!(
                    table.contains(&format!("`{name}`")),
                    "{name} is missing from the guide's metrics table"
                );
            }
        }
    }

    #[test]
    fn numbers_are_written_to_the_thousandth() {
        let written = |v: f64| {
            let mut s = Vec::new();
            write_number(&mut s, v);
            String::from_utf8(s).unwrap()
        };
        assert_eq!(written(4.0), "4");
        assert_eq!(written(0.0), "0");
        assert_eq!(written(12.5), "12.5");
        assert_eq!(written(0.139), "0.139");
        assert_eq!(written(0.0204), "0.02");
        assert_eq!(written(1.0005), "1.001");
        assert_eq!(written(0.05), "0.05");
        assert_eq!(written(-2.25), "-2.25");
        assert_eq!(written(1e300), format!("{}", 1e300));
        for v in [0.001, 3.07, 1234.567, 86_400_000.0] {
            assert_eq!(written(v).parse::<f64>().unwrap(), v);
        }
    }

    #[test]
    fn the_limits_split_documents_rather_than_break_them() {
        let measured = InvocationMetrics::default();
        for i in 0..250 {
            measured.function_took("f", Duration::from_micros(i));
        }
        for i in 0..150 {
            measured.add(&format!("Metric{i}"), 1.0, MetricUnit::Count);
        }
        let docs = metrics().documents(&InvocationSummary::default(), Some(&measured), 1);
        let docs: Vec<Value> = docs
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        for d in &docs {
            check_emf(d).unwrap();
        }
        // 7 lpipe totals + 150 of the function's: two documents; 250 durations: three.
        let with_service_only: Vec<&Value> = docs
            .iter()
            .filter(|d| d.get("function").is_none())
            .collect();
        assert_eq!(with_service_only.len(), 2);
        let durations: usize = docs
            .iter()
            .filter_map(|d| d["FunctionDuration"].as_array())
            .map(Vec::len)
            .sum();
        assert_eq!(durations, 250);
        assert_eq!(
            docs.iter().filter(|d| d.get("function").is_some()).count(),
            3
        );
    }

    #[test]
    fn a_document_over_the_size_limit_is_halved() {
        let measured = InvocationMetrics::default();
        // 90 metrics with 250-character names (each ~520 bytes in a document) do not fit in
        // documents of 8 KiB: they are spread over several, none over the limit.
        for i in 0..90 {
            measured.add(&format!("{i:0>250}"), 1.0, MetricUnit::Count);
        }
        let mut small = metrics();
        small.max_bytes = 8 * 1024;
        let docs = small.documents(&InvocationSummary::default(), Some(&measured), 1);
        assert!(docs.len() >= 6, "{}", docs.len());
        let mut names = 0;
        for d in &docs {
            assert!(d.len() <= 8 * 1024, "{}", d.len());
            let doc: Value = serde_json::from_str(d).unwrap();
            check_emf(&doc).unwrap();
            names += doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len();
        }
        assert_eq!(names, 90 + 7);
    }
}
