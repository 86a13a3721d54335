//! Sentry for [lpipe](https://crates.io/crates/lpipe): a [`Reporter`] that sends the error of
//! every dropped and failed record to Sentry.
//!
//! Each event is tagged with the path, the function, the event source, the record id, the
//! Lambda request id and the outcome; the record's kwargs are attached only when you opt in
//! ([`SentryReporter::include_kwargs`]), since they may hold personal data. Events are flushed
//! before each invocation returns, because Lambda freezes the process between invocations.
//! The transport is reqwest with rustls.
//!
//! # Examples
//!
//! ```no_run
//! use lpipe_core::{Action, NoParams, Pipeline};
//! use lpipe_sentry::SentryReporter;
//! async fn f(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
//! // Configured from SENTRY_DSN; without it reporting is off (one log line says so).
//! let pipeline = Pipeline::builder()
//!     .path("A", [Action::new().function(f)])
//!     .reporter(SentryReporter::from_env())
//!     .build();
//! ```
#![warn(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lpipe_core::{
    report::{Report, Reporter},
    Outcome,
};
use sentry::protocol::{Event, Exception, Level};
use sentry::{ClientOptions, Hub, Scope};

/// Sends dropped and failed records to Sentry. See the [crate docs](crate).
#[derive(Clone)]
pub struct SentryReporter {
    hub: Option<Arc<Hub>>,
    include_kwargs: bool,
    flush_timeout: Duration,
    /// Why reporting is off, said once (at the first invocation: logging may not be set up
    /// yet when the reporter is built).
    off_reason: Option<Arc<(String, std::sync::Once)>>,
}

impl std::fmt::Debug for SentryReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentryReporter")
            .field("enabled", &self.is_enabled())
            .field("include_kwargs", &self.include_kwargs)
            .finish()
    }
}

impl SentryReporter {
    /// A reporter configured from `SENTRY_DSN` (and the `sentry` crate's other environment
    /// variables). Without a DSN, or with one that does not parse, reporting is off and one log
    /// line says why.
    pub fn from_env() -> Self {
        Self::from_dsn(std::env::var("SENTRY_DSN").ok().as_deref())
    }

    /// A reporter for this DSN, as [`from_env`](Self::from_env) makes one from `SENTRY_DSN`:
    /// off (with one log line saying why) when there is none or it is not valid.
    pub fn from_dsn(dsn: Option<&str>) -> Self {
        match dsn {
            Some(dsn) if !dsn.trim().is_empty() => match dsn.trim().parse() {
                Ok(dsn) => {
                    let mut options = ClientOptions::default();
                    options.dsn = Some(dsn);
                    Self::with_options(options)
                }
                Err(e) => Self::off(format!(
                    "SENTRY_DSN is not a valid DSN ({e}): reporting to Sentry is off"
                )),
            },
            _ => Self::off("SENTRY_DSN is not set: reporting to Sentry is off".to_owned()),
        }
    }

    /// A reporter with these client options (the default transport, reqwest with rustls, unless
    /// `options.transport` is set).
    pub fn with_options(options: ClientOptions) -> Self {
        let options = sentry::apply_defaults(options);
        let client = Arc::new(sentry::Client::with_options(options));
        let enabled = client.is_enabled();
        SentryReporter {
            hub: enabled.then(|| Arc::new(Hub::new(Some(client), Arc::new(Scope::default())))),
            include_kwargs: false,
            flush_timeout: Duration::from_secs(2),
            off_reason: (!enabled).then(|| {
                Arc::new((
                    "the Sentry client is disabled (no DSN)".to_owned(),
                    std::sync::Once::new(),
                ))
            }),
        }
    }

    /// A reporter that reports nothing.
    pub fn disabled() -> Self {
        SentryReporter {
            hub: None,
            include_kwargs: false,
            flush_timeout: Duration::from_secs(2),
            off_reason: None,
        }
    }

    fn off(reason: String) -> Self {
        SentryReporter {
            off_reason: Some(Arc::new((reason, std::sync::Once::new()))),
            ..Self::disabled()
        }
    }

    /// Attaches the record's kwargs to each event (off by default: they may hold personal data).
    pub fn include_kwargs(mut self, include: bool) -> Self {
        self.include_kwargs = include;
        self
    }

    /// How long flushing at the end of an invocation may take (default 2 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Whether events are sent.
    pub fn is_enabled(&self) -> bool {
        self.hub.is_some()
    }

    /// The event for a report.
    fn event(&self, r: &Report<'_>) -> Event<'static> {
        let error = r.error;
        let mut event = Event {
            level: if r.outcome == Outcome::Failed {
                Level::Error
            } else {
                Level::Warning
            },
            message: Some(error.to_string()),
            ..Event::default()
        };
        event.exception = vec![Exception {
            ty: error.kind().as_str().to_owned(),
            value: Some(error.message().to_owned()),
            ..Exception::default()
        }]
        .into();
        let mut tag = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                event.tags.insert(k.to_owned(), v.to_owned());
            }
        };
        tag("lpipe.path", error.path().map(|p| p.as_str()));
        tag("lpipe.function", error.function());
        tag("lpipe.event_source", Some(r.source));
        tag("lpipe.record_id", r.record_id);
        tag(
            "lpipe.outcome",
            Some(if r.outcome == Outcome::Failed {
                "failed"
            } else {
                "dropped"
            }),
        );
        tag(
            "aws.request_id",
            Some(r.request_id).filter(|s| !s.is_empty()),
        );
        if self.include_kwargs {
            if let Some(kwargs) = r.kwargs {
                event.extra.insert("kwargs".to_owned(), kwargs.to_value());
            }
        }
        event
    }
}

#[async_trait]
impl Reporter for SentryReporter {
    fn report(&self, report: &Report<'_>) {
        if let Some(hub) = &self.hub {
            hub.capture_event(self.event(report));
        }
    }

    async fn flush(&self) {
        if let Some(off) = &self.off_reason {
            off.1.call_once(|| tracing::info!("{}", off.0));
        }
        let Some(client) = self.hub.as_ref().and_then(|h| h.client()) else {
            return;
        };
        let timeout = self.flush_timeout;
        let flushed = tokio::task::spawn_blocking(move || client.flush(Some(timeout)))
            .await
            .unwrap_or(false);
        if !flushed {
            tracing::warn!("Sentry events were not all sent within {timeout:?}");
        }
    }
}
