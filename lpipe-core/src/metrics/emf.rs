//! The EMF documents of an invocation, split to keep EMF's limits.

use serde::ser::SerializeMap;
use serde::Serialize;

use super::{
    InvocationMetrics, InvocationSummary, MetricUnit, Metrics, RecordCounts, MAX_METRICS,
    MAX_VALUES,
};

/// One metric of a document: name, unit, values.
type Metric = (String, MetricUnit, Vec<f64>);

/// A count, as a metric.
fn count(name: &str, n: usize) -> Metric {
    (name.to_owned(), MetricUnit::Count, vec![n as f64])
}

/// The five record counts of a set of records.
fn counts(c: &RecordCounts) -> Vec<Metric> {
    vec![
        count("RecordsReceived", c.received),
        count("RecordsSucceeded", c.succeeded),
        count("RecordsDropped", c.dropped),
        count("RecordsFailed", c.failed),
        count("RecordsNotStarted", c.not_started),
    ]
}

impl Metrics {
    /// The EMF documents for one invocation.
    pub(crate) fn documents(
        &self,
        summary: &InvocationSummary,
        measured: Option<&InvocationMetrics>,
        timestamp_ms: u64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut measured =
            measured.map(|m| std::mem::take(&mut *m.inner.lock().expect("metrics lock")));
        let mut totals = counts(&summary.total);
        totals.push(count("RecordsDeadLettered", summary.dead_lettered));
        if summary.duplicates > 0 {
            totals.push(count("RecordsDuplicate", summary.duplicates));
        }
        let batch_ms = vec![summary.batch_ms];
        totals.push(("BatchDuration".into(), MetricUnit::Milliseconds, batch_ms));
        if let Some(m) = &mut measured {
            let user = std::mem::take(&mut m.user).into_iter();
            totals.extend(user.map(|(n, (u, v))| (n, u, v)));
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
            let metrics = vec![
                count("MessagesSent", c.sent),
                count("MessagesRetried", c.retried),
                count("MessagesUndeliverable", c.undeliverable),
            ];
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

    /// One document, halved until it is within the size limit.
    fn render(
        &self,
        dimensions: &[(&str, &str)],
        metrics: &[(&str, MetricUnit, &[f64])],
        timestamp_ms: u64,
        out: &mut Vec<String>,
    ) {
        let document = Document {
            timestamp_ms,
            namespace: &self.namespace,
            service: &self.service,
            dimensions,
            metrics,
        };
        let text = serde_json::to_string(&document).expect("an EMF document serializes");
        if text.len() <= self.max_bytes {
            out.push(text);
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

/// One EMF document: the `_aws` directive, then the dimensions' values and the metrics'.
struct Document<'a> {
    timestamp_ms: u64,
    namespace: &'a str,
    service: &'a str,
    dimensions: &'a [(&'a str, &'a str)],
    metrics: &'a [(&'a str, MetricUnit, &'a [f64])],
}

/// The `_aws` member of a [`Document`].
#[derive(Serialize)]
struct Directive<'a> {
    #[serde(rename = "Timestamp")]
    timestamp: u64,
    #[serde(rename = "CloudWatchMetrics")]
    cloudwatch_metrics: [MetricDirective<'a>; 1],
}

#[derive(Serialize)]
struct MetricDirective<'a> {
    #[serde(rename = "Namespace")]
    namespace: &'a str,
    #[serde(rename = "Dimensions")]
    dimensions: [Vec<&'a str>; 1],
    #[serde(rename = "Metrics")]
    metrics: Vec<MetricDefinition<'a>>,
}

#[derive(Serialize)]
struct MetricDefinition<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Unit")]
    unit: &'static str,
}

impl Serialize for Document<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut keys = vec!["service"];
        keys.extend(self.dimensions.iter().map(|(key, _)| *key));
        let directive = Directive {
            timestamp: self.timestamp_ms,
            cloudwatch_metrics: [MetricDirective {
                namespace: self.namespace,
                dimensions: [keys],
                metrics: self
                    .metrics
                    .iter()
                    .map(|(name, unit, _)| MetricDefinition {
                        name,
                        unit: unit.as_str(),
                    })
                    .collect(),
            }],
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("_aws", &directive)?;
        map.serialize_entry("service", self.service)?;
        for (key, value) in self.dimensions {
            map.serialize_entry(key, value)?;
        }
        for (name, _, values) in self.metrics {
            match values {
                [one] => map.serialize_entry(name, &Number(*one))?,
                many => {
                    let many: Vec<Number> = many.iter().copied().map(Number).collect();
                    map.serialize_entry(name, &many)?
                }
            }
        }
        map.end()
    }
}

/// A metric's value, to the thousandth (a microsecond, for milliseconds); whole numbers are
/// written as integers.
struct Number(f64);

impl Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let thousandths = (self.0 * 1000.0).round();
        // Exactly representable: below 2^53.
        if !thousandths.is_finite() || thousandths.abs() >= 9_007_199_254_740_992.0 {
            return serializer.serialize_f64(self.0);
        }
        if thousandths % 1000.0 == 0.0 {
            serializer.serialize_i64((thousandths / 1000.0) as i64)
        } else {
            serializer.serialize_f64(thousandths / 1000.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::InvocationMetrics;
    use crate::testing::check_emf;
    use serde_json::{json, Value};
    use std::time::Duration;

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
        let definitions = &total["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert!(
            definitions
                .as_array()
                .unwrap()
                .contains(&json!({"Name": "BatchDuration", "Unit": "Milliseconds"})),
            "{definitions}"
        );
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
        let readme = include_str!("../../../lpipe/src/guide/observability.md");
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
        let written = |v: f64| serde_json::to_string(&Number(v)).unwrap();
        assert_eq!(written(4.0), "4");
        assert_eq!(written(0.0), "0");
        assert_eq!(written(12.5), "12.5");
        assert_eq!(written(0.139), "0.139");
        assert_eq!(written(0.0204), "0.02");
        assert_eq!(written(1.0005), "1.001");
        assert_eq!(written(0.05), "0.05");
        assert_eq!(written(-2.25), "-2.25");
        assert_eq!(written(1e300).parse::<f64>().unwrap(), 1e300);
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
