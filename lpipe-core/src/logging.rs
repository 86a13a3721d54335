//! Logs: Lambda's advanced logging controls, in text or one JSON object per line.
//!
//! [`LogSettings::from_env`] reads what Lambda sets for a function (and what a user sets
//! locally): `AWS_LAMBDA_LOG_FORMAT` (`Text`, the default, or `JSON`) and
//! `AWS_LAMBDA_LOG_LEVEL` (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`); `RUST_LOG`,
//! when set, overrides the level with a full filter.
//!
//! While lpipe runs an invocation, its lines carry what it is running: `request_id` and
//! `trace_id` (the invocation's, or the record's own trace when it arrived with one),
//! `record_id`, `path` (the path the record entered by) and `function`. lpipe keeps these in
//! a thread-local scope set around each poll (see `log_scope`), not in `tracing` spans, which
//! would cost more than a record's own work. In text they read `lpipe{request_id=… …}:`
//! after the spans and before the message; in JSON they are keys of the line's object, beside
//! `timestamp`, `level`, `target`, `message`, your spans' fields and the event's own fields
//! (under `fields` when one is named like one of those: the AWS SDK logs a `request_id` of its
//! own). A task your function spawns does not carry the scope.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable text, one line per event, with the spans' fields before the message.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The log format and filter a process uses; see [`LogSettings::from_env`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// Text or JSON.
    pub format: LogFormat,
    /// An `EnvFilter` directive: a level (`info`) or `RUST_LOG`'s full syntax.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

impl LogSettings {
    /// The settings the environment asks for: `AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`,
    /// and `RUST_LOG` (which overrides the level).
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings these variables ask for (`var` returns a variable's value).
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{runtime::{LogFormat, LogSettings}};
    /// let vars = |name: &str| match name {
    ///     "AWS_LAMBDA_LOG_FORMAT" => Some("JSON".to_owned()),
    ///     "AWS_LAMBDA_LOG_LEVEL" => Some("DEBUG".to_owned()),
    ///     _ => None,
    /// };
    /// let settings = LogSettings::from_vars(vars);
    /// assert_eq!(settings.format, LogFormat::Json);
    /// assert_eq!(settings.filter, "debug");
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let format = match set("AWS_LAMBDA_LOG_FORMAT") {
            Some(f) if f.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let level =
            set("AWS_LAMBDA_LOG_LEVEL").map(|l| match l.trim().to_ascii_lowercase().as_str() {
                "fatal" => "error".to_owned(),
                l @ ("trace" | "debug" | "info" | "warn" | "error") => l.to_owned(),
                _ => "info".to_owned(),
            });
        let filter = set("RUST_LOG")
            .or(level)
            .unwrap_or_else(|| "info".to_owned());
        LogSettings { format, filter }
    }

    /// A subscriber with these settings, writing to `writer` (each line in one write).
    pub fn subscriber<W>(&self, writer: W) -> Box<dyn Subscriber + Send + Sync>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        use tracing_subscriber::layer::SubscriberExt;
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        match self.format {
            LogFormat::Text => Box::new(
                tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(writer)
                    .with_ansi(false)
                    .event_format(TextFormat)
                    .finish(),
            ),
            LogFormat::Json => Box::new(
                tracing_subscriber::registry()
                    .with(filter)
                    .with(JsonLayer { writer }),
            ),
        }
    }
}

/// Installs a `tracing` subscriber writing to stderr with the settings the environment asks
/// for ([`LogSettings::from_env`]), unless one is installed already.
pub fn init_logging() {
    let settings = LogSettings::from_env();
    let _ = tracing::subscriber::set_global_default(settings.subscriber(std::io::stderr));
}

/// The log format the process was started with (for output lpipe writes itself, such as the
/// messages local mode would send).
pub(crate) fn format_from_env() -> LogFormat {
    LogSettings::from_env().format
}

/// Writes events as text: time, level, the spans, what lpipe is running (as
/// `lpipe{request_id=… record_id=… path=… function=…}`), the message and its fields.
struct TextFormat;

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'l> LookupSpan<'l>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "{} {:>5} ", rfc3339_now(), event.metadata().level())?;
        // Spans (outermost first: the Lambda runtime's, yours), then what lpipe is running.
        if let Some(spans) = ctx.event_scope() {
            for span in spans.from_root() {
                write!(writer, "{}", span.name())?;
                let extensions = span.extensions();
                match extensions.get::<FormattedFields<N>>() {
                    Some(fields) if !fields.is_empty() => write!(writer, "{{{fields}}}:")?,
                    _ => write!(writer, ":")?,
                }
            }
        }
        let mut scope = String::new();
        crate::log_scope::fields(|name, value| {
            let sep = if scope.is_empty() { "" } else { " " };
            let _ = write!(scope, "{sep}{name}={value:?}");
        });
        if !scope.is_empty() {
            write!(writer, "lpipe{{{scope}}}:")?;
        }
        writer.write_char(' ')?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Writes events as JSON objects, one per line, with the fields of their spans.
struct JsonLayer<W> {
    writer: W,
}

/// A span's fields, kept for the events inside it.
struct SpanFields(Vec<(&'static str, Value)>);

struct JsonVisitor<'a>(&'a mut Vec<(&'static str, Value)>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'l> LookupSpan<'l>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Vec::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if attrs.metadata().name() == RUNTIME_SPAN {
            // The runtime's camelCase names for what lpipe's lines name in snake case: one
            // name per field in a line.
            for (name, _) in &mut fields {
                *name = match *name {
                    "requestId" => "request_id",
                    "xrayTraceId" => "xray_trace_id",
                    "tenantId" => "tenant_id",
                    other => other,
                };
            }
        }
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::from(rfc3339_now()));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        // What lpipe is running: invocation, record, path, function.
        crate::log_scope::fields(|name, value| {
            line.insert(name.to_owned(), Value::from(value));
        });
        // The spans' fields, outermost first, so an inner span's field wins.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (name, value) in fields {
                        line.insert((*name).to_owned(), value.clone());
                    }
                }
            }
        }
        let mut fields = Vec::new();
        event.record(&mut JsonVisitor(&mut fields));
        // An event's field named like a span's (the AWS SDK logs its own `request_id`) does
        // not hide it: it goes under `fields`.
        let mut clashing = Map::new();
        for (name, value) in fields {
            if line.contains_key(name) {
                clashing.insert(name.to_owned(), value);
            } else {
                line.insert(name.to_owned(), value);
            }
        }
        if !clashing.is_empty() {
            line.insert("fields".into(), Value::Object(clashing));
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let _ = self.writer.make_writer_for(meta).write_all(text.as_bytes());
    }
}

/// The span `lambda_runtime` opens around each invocation (`requestId`, `xrayTraceId`,
/// `tenantId`).
const RUNTIME_SPAN: &str = "Lambda runtime invoke";

/// Now, as RFC 3339 in UTC with milliseconds (`2026-11-28T17:57:50.123Z`).
pub(crate) fn rfc3339_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_millis() as u64)
}

/// A Unix time in milliseconds as RFC 3339 in UTC.
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), from 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_888_670_123), "2026-11-28T17:57:50.123Z");
    }

    #[test]
    fn lambda_variables_set_format_and_level_and_rust_log_overrides() {
        let settings = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            LogSettings::from_vars(move |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
        };
        assert_eq!(settings(&[]), LogSettings::default());
        assert_eq!(
            settings(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]).format,
            LogFormat::Text
        );
        assert_eq!(
            settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).format,
            LogFormat::Json
        );
        assert_eq!(settings(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")]).filter, "warn");
        assert_eq!(
            settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).filter,
            "error"
        );
        assert_eq!(
            settings(&[
                ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
                ("RUST_LOG", "lpipe_core=trace")
            ])
            .filter,
            "lpipe_core=trace"
        );
        assert_eq!(settings(&[("RUST_LOG", "")]).filter, "info");
    }

    fn logged(settings: LogSettings, f: impl FnOnce()) -> String {
        let logs = crate::testing::CapturedLogs::new();
        tracing::subscriber::with_default(settings.subscriber(logs.clone()), f);
        logs.text()
    }

    #[test]
    fn json_lines_carry_the_fields_of_their_spans_inner_ones_winning() {
        let settings = LogSettings {
            format: LogFormat::Json,
            filter: "info".into(),
        };
        let text = logged(settings, || {
            let outer = tracing::info_span!("invocation", request_id = "r1", trace_id = "t-outer");
            let _o = outer.enter();
            let inner = tracing::info_span!(
                "record",
                record_id = "m1",
                path = tracing::field::Empty,
                trace_id = "t-inner"
            );
            let _i = inner.enter();
            inner.record("path", "SIGNUP");
            tracing::info!(count = 3, request_id = "not-lambdas", "hello \"world\"");
            tracing::debug!("not at info");
        });
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "hello \"world\"");
        assert_eq!(line["count"], 3);
        assert_eq!(line["request_id"], "r1");
        assert_eq!(line["fields"]["request_id"], "not-lambdas");
        assert_eq!(line["record_id"], "m1");
        assert_eq!(line["path"], "SIGNUP");
        assert_eq!(line["trace_id"], "t-inner");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn json_lines_name_the_request_once_under_the_lambda_runtime() {
        let settings = LogSettings {
            format: LogFormat::Json,
            filter: "info".into(),
        };
        let text = logged(settings, || {
            let runtime = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "r1",
                xrayTraceId = "Root=1-x"
            );
            let _r = runtime.enter();
            tracing::info!("handled");
        });
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["request_id"], "r1", "{text}");
        assert_eq!(line["xray_trace_id"], "Root=1-x", "{text}");
        assert!(line.get("requestId").is_none(), "{text}");
        assert!(line.get("xrayTraceId").is_none(), "{text}");
    }

    #[test]
    fn text_lines_carry_the_fields_of_their_spans() {
        let text = logged(LogSettings::default(), || {
            let span = tracing::info_span!("record", record_id = "m1", path = "SIGNUP");
            let _e = span.enter();
            tracing::warn!("dropped");
        });
        assert!(
            text.contains("record{record_id=\"m1\" path=\"SIGNUP\"}: dropped"),
            "{text}"
        );
        assert!(serde_json::from_str::<Value>(text.trim()).is_err());
    }
}
