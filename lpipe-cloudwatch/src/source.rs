//! The CloudWatch Events / EventBridge event source.

use std::borrow::Cow;
use std::collections::HashMap;

use lpipe_core::{
    async_trait,
    error::InvocationError,
    pipeline::{IntoPathName, PathName},
    source::{
        BatchResult, EventBridgeMeta, EventProbe, EventSource, InvalidEvent, Record, RecordMeta,
        S3Envelope,
    },
    RecordError,
};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The CloudWatch Events / EventBridge source. See the [crate docs](crate).
///
/// # Examples
///
/// ```
/// use lpipe_cloudwatch::CloudWatchSource;
/// use lpipe_core::{Action, NoParams, Pipeline};
/// async fn nightly(_: NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
/// let pipeline = Pipeline::builder()
///     .path("NIGHTLY", [Action::new().function(nightly)])
///     .event_source(CloudWatchSource::new().route("Scheduled Event", "NIGHTLY"))
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
#[derive(Clone, Debug, Default)]
pub struct CloudWatchSource {
    routes: HashMap<String, PathName>,
    s3: Option<S3Envelope>,
}

impl CloudWatchSource {
    /// The name it registers under.
    pub const NAME: &'static str = "cloudwatch";

    /// A source without routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `path` for events of this `detail-type`, with the event's `detail` as kwargs.
    pub fn route(mut self, detail_type: impl Into<String>, path: impl IntoPathName) -> Self {
        self.routes
            .insert(detail_type.into(), path.into_path_name());
        self
    }

    /// Runs S3's events (`source: "aws.s3"`: a bucket with EventBridge notifications on, and a
    /// rule that targets this function) by these routes, named by `detail-type` (`Object
    /// Created`, …), with the kwargs `bucket`, `key`, `size`, `etag`, `version_id` and
    /// `sequencer` (see [`S3Envelope::unwrap_eventbridge`]). An S3 event no route takes is
    /// dropped, saying so.
    pub fn s3(mut self, routes: S3Envelope) -> Self {
        self.s3 = Some(routes);
        self
    }
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default, deserialize_with = "lpipe_core::borrow::option_str")]
    id: Option<Cow<'a, str>>,
    #[serde(
        rename = "detail-type",
        borrow,
        default,
        deserialize_with = "lpipe_core::borrow::option_str"
    )]
    detail_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lpipe_core::borrow::option_str")]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lpipe_core::borrow::option_str")]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Directed<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    kwargs: &'a RawValue,
}

#[async_trait]
impl EventSource for CloudWatchSource {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn describe(&self) -> serde_json::Value {
        let mut routes: Vec<(&String, &PathName)> = self.routes.iter().collect();
        routes.sort();
        let routes: serde_json::Map<String, serde_json::Value> = routes
            .into_iter()
            .map(|(t, p)| (t.clone(), p.as_str().into()))
            .collect();
        serde_json::json!({"routes": routes, "s3": self.s3.as_ref().map(S3Envelope::describe)})
    }

    fn matches(&self, probe: &EventProbe) -> bool {
        // Some hand-written samples leave `detail-type` out; `source` and `detail` still say
        // EventBridge.
        probe.is_object
            && !probe.has_records
            && (probe.has_detail_type || (probe.source.is_some() && probe.has_detail))
    }

    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        let event: Event<'e> = serde_json::from_str(event).map_err(|e| InvalidEvent {
            source_name: Self::NAME,
            message: e.to_string(),
        })?;
        // An empty id names nothing (as for the other sources).
        let id = event.id.filter(|id| !id.is_empty());
        let detail = event
            .detail
            .map(RawValue::get)
            .filter(|d| d.trim() != "null")
            .unwrap_or("{}");
        let detail_type = event.detail_type.as_deref().unwrap_or("");
        let s3 = self
            .s3
            .as_ref()
            .filter(|_| event.source.as_deref() == Some("aws.s3"));
        let record = if let Some(s3) = s3 {
            match s3.unwrap_eventbridge(detail_type, detail) {
                Ok((path, kwargs)) => {
                    Record::new(id, Ok(Cow::Owned(kwargs))).with_path(Cow::Owned(path))
                }
                Err(e) => Record::new(id, Err(e)),
            }
        } else if let Some(path) = self.routes.get(detail_type) {
            Record::new(id, Ok(Cow::Borrowed(detail)))
                .with_path(Cow::Owned(path.as_str().to_owned()))
        } else if let Ok(directed) = serde_json::from_str::<Directed<'e>>(detail) {
            Record::new(id, Ok(Cow::Borrowed(directed.kwargs.get()))).with_path(directed.path)
        } else if detail.trim_start().starts_with('{') {
            // Bare kwargs, for the pipeline's default path.
            Record::new(id, Ok(Cow::Borrowed(detail)))
        } else {
            Record::new(
                id,
                Err(RecordError::invalid_payload(format!(
                    "the event's detail must be a JSON object (detail-type '{detail_type}')"
                ))),
            )
        };
        let meta = EventBridgeMeta::new(
            event.source.map(Cow::into_owned),
            event.detail_type.map(Cow::into_owned),
            event.time.map(Cow::into_owned),
        );
        Ok(vec![record.meta(RecordMeta::EventBridge(Box::new(meta)))])
    }

    async fn respond(
        &self,
        _event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError> {
        batch.finished_or_failed(Some("the event is left to the rule's retry policy"))
    }
}
