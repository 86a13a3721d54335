//! Logs kept for assertions.

use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

use crate::logging::{LogFormat, LogSettings};

/// A log destination that keeps what is written, for tests of what a pipeline logs.
///
/// # Examples
///
/// ```
/// use lpipe_core::testing::CapturedLogs;
/// use lpipe_core::runtime::LogFormat;
/// let logs = CapturedLogs::new();
/// tracing::subscriber::with_default(logs.subscriber(LogFormat::Json, "info"), || {
///     tracing::info!(answer = 42, "hello");
/// });
/// let lines = logs.json_lines();
/// assert_eq!(lines[0]["message"], "hello");
/// assert_eq!(lines[0]["answer"], 42);
/// ```
#[derive(Clone, Debug, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Nothing logged yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A subscriber writing here, in this format, with this filter (`info`, `debug`, …).
    pub fn subscriber(
        &self,
        format: LogFormat,
        filter: &str,
    ) -> Box<dyn tracing::Subscriber + Send + Sync> {
        LogSettings {
            format,
            filter: filter.to_owned(),
        }
        .subscriber(self.clone())
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }

    /// Every line, parsed as JSON.
    ///
    /// # Panics
    ///
    /// On a line that is not JSON, showing it.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'w self) -> CapturedLogs {
        self.clone()
    }
}
