//! The S3 event source.

use std::borrow::Cow;

use lpipe_core::{
    async_trait,
    error::InvocationError,
    pipeline::IntoPathName,
    source::{
        BatchResult, Body, EventProbe, EventSource, InvalidEvent, Record, S3Envelope, S3Unwrapped,
    },
};
use serde_json::value::RawValue;

/// The S3 event source. See the [crate docs](crate).
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, NoParams, Pipeline};
/// use lpipe_s3::S3Source;
/// async fn ingest(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
/// let pipeline = Pipeline::builder()
///     .path("INGEST", [Action::new().function(ingest)])
///     .event_source(S3Source::new().route("ObjectCreated:*", "INGEST"))
///     .only_source(S3Source::NAME)
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
#[derive(Clone, Debug, Default)]
pub struct S3Source {
    routes: S3Envelope,
}

impl S3Source {
    /// The name it registers under.
    pub const NAME: &'static str = "s3";

    /// A source without routes: every event is dropped, naming its event name, until routes
    /// are given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `path` for events of this name: `ObjectCreated:Put`, or a prefix and `*`
    /// (`ObjectCreated:*`); the first route that matches wins.
    pub fn route(mut self, event_name: impl Into<String>, path: impl IntoPathName) -> Self {
        self.routes = self.routes.route(event_name, path);
        self
    }

    /// Runs `path` for the events this matches: an event name, and optionally a bucket and a
    /// key prefix (see [`S3Match`](lpipe_core::source::S3Match)).
    pub fn route_matching(
        mut self,
        matching: lpipe_core::source::S3Match,
        path: impl IntoPathName,
    ) -> Self {
        self.routes = self.routes.route_matching(matching, path);
        self
    }
}

/// What every record of an S3 event names as its `eventSource`.
const EVENT_SOURCE: &str = "aws:s3";

#[async_trait]
impl EventSource for S3Source {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn matches(&self, probe: &EventProbe) -> bool {
        probe.first_event_source.as_deref() == Some(EVENT_SOURCE)
    }

    fn describe(&self) -> serde_json::Value {
        self.routes.describe()
    }

    fn stable_record_ids(&self) -> bool {
        // Record ids are positions in the event (an S3 record has no id of its own); a retry
        // of the asynchronous invocation keeps its request id, by which they are scoped.
        false
    }

    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        lpipe_core::source::decode_records(Self::NAME, event, |index, raw: &'e RawValue| {
            #[derive(serde::Deserialize)]
            struct Source<'a> {
                #[serde(rename = "eventSource", borrow, default)]
                event_source: Option<Cow<'a, str>>,
            }
            let source: Source<'_> = serde_json::from_str(raw.get()).map_err(|e| InvalidEvent {
                source_name: Self::NAME,
                message: format!("record {index}: {e}"),
            })?;
            InvalidEvent::check_record_source(
                Self::NAME,
                EVENT_SOURCE,
                index,
                source.event_source.as_deref(),
            )?;
            let id = Some(Cow::Owned(index.to_string()));
            Ok(match self.routes.unwrap_record(raw.get()) {
                Ok(S3Unwrapped::Object { path, kwargs, .. }) => {
                    Record::new(id, Body::Text(Cow::Owned(kwargs))).with_path(Cow::Owned(path))
                }
                Ok(_) => Record::new(id, Body::Text(Cow::Borrowed("{}")))
                    .acknowledge("the s3:TestEvent S3 sends when a notification is configured"),
                Err(e) => Record::new(id, Body::Invalid(e)),
            }
            .as_it_came(Cow::Borrowed(raw.get())))
        })
    }

    async fn respond(
        &self,
        _event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError> {
        // S3 reads no response: a failed record fails the invocation, so that it is retried.
        batch.finished_or_failed(None)
    }
}
