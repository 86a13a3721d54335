//! The DynamoDB Streams event source.

use std::borrow::Cow;
use std::collections::HashMap;

use lpipe_core::{
    async_trait,
    error::InvocationError,
    source::{
        BatchResult, DynamoDbMeta, EventProbe, EventSource, InvalidEvent, Record, RecordMeta,
        RecordOrder,
    },
    ErrorKind, Kwargs, RecordError,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::attribute::item_to_json;

/// The DynamoDB Streams event source. See the [crate docs](crate).
///
/// # Examples
///
/// ```
/// use lpipe_dynamodb::DynamoDbSource;
/// // New items run PLACE_ORDER with the item as kwargs; removed ones run CANCEL_ORDER with the
/// // item as it was.
/// let source = DynamoDbSource::new()
///     .route("INSERT", "PLACE_ORDER")
///     .route("REMOVE", "CANCEL_ORDER");
/// # let _ = source;
/// ```
#[derive(Clone, Debug)]
pub struct DynamoDbSource {
    routes: HashMap<String, String>,
    partial_responses: bool,
}

impl Default for DynamoDbSource {
    fn default() -> Self {
        DynamoDbSource {
            routes: HashMap::new(),
            partial_responses: true,
        }
    }
}

impl DynamoDbSource {
    /// The name it registers under.
    pub const NAME: &'static str = "dynamodb";

    /// Without routes (each item is an lpipe message, or bare kwargs for the pipeline's default
    /// path); partial batch responses (the mapping has `ReportBatchItemFailures`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records of this `eventName` (`INSERT`, `MODIFY`, `REMOVE`) run this path, with the item
    /// as kwargs (`NewImage`; `OldImage` for `REMOVE`; `Keys` when the stream carries no
    /// images). Once a source has routes, a record of an event name without one is dropped,
    /// with an error naming it: filter those out in the event source mapping (`FilterCriteria`
    /// on `eventName`) rather than paying for invocations that drop them.
    pub fn route(mut self, event_name: impl Into<String>, path: impl Into<String>) -> Self {
        self.routes.insert(event_name.into(), path.into());
        self
    }

    /// For mappings without `ReportBatchItemFailures`: a record kept for retry fails the
    /// invocation, and Lambda retries the batch.
    pub fn without_partial_responses(mut self) -> Self {
        self.partial_responses = false;
        self
    }
}

#[derive(Deserialize)]
struct StreamRecord {
    #[serde(rename = "eventSource", alias = "EventSource", default)]
    event_source: Option<String>,
    #[serde(rename = "eventName", default)]
    event_name: Option<String>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<String>,
    #[serde(default)]
    dynamodb: Option<StreamData>,
}

#[derive(Deserialize)]
struct StreamData {
    #[serde(rename = "Keys", default)]
    keys: Option<Value>,
    #[serde(rename = "NewImage", default)]
    new_image: Option<Value>,
    #[serde(rename = "OldImage", default)]
    old_image: Option<Value>,
    #[serde(rename = "SequenceNumber", default)]
    sequence_number: Option<String>,
    #[serde(rename = "ApproximateCreationDateTime", default)]
    creation_time: Option<Value>,
}

/// What every record of a DynamoDB Streams event names as its `eventSource`.
const EVENT_SOURCE: &str = "aws:dynamodb";

fn item(value: Option<&Value>, what: &str) -> Result<Option<Kwargs>, RecordError> {
    let Some(value) = value else { return Ok(None) };
    let map: &Map<String, Value> = value.as_object().ok_or_else(|| {
        RecordError::invalid_payload(format!("the stream record's {what} is not an object"))
    })?;
    let json = item_to_json(map)
        .map_err(|e| RecordError::invalid_payload(format!("the stream record's {what}: {e}")))?;
    Kwargs::from_json(&json)
        .map(Some)
        .map_err(|e| RecordError::invalid_payload(format!("the stream record's {what}: {e}")))
}

impl DynamoDbSource {
    /// A record's body (the item as JSON) and metadata.
    fn body_and_meta(
        &self,
        event_name: Option<&str>,
        data: &StreamData,
        arn: Option<String>,
    ) -> Result<(String, Option<String>, Option<String>, DynamoDbMeta), RecordError> {
        let event_name = event_name
            .ok_or_else(|| RecordError::invalid_payload("the stream record has no eventName"))?;
        let path = if self.routes.is_empty() {
            None
        } else {
            let mut routes: Vec<String> = self
                .routes
                .iter()
                .map(|(e, p)| format!("{e} -> {p}"))
                .collect();
            routes.sort();
            Some(self.routes.get(event_name).cloned().ok_or_else(|| {
                RecordError::new(
                    ErrorKind::InvalidPath,
                    format!(
                        "no route for DynamoDB stream records of eventName '{event_name}' (routes: {}); filter them out in the event source mapping, or add a route",
                        routes.join(", ")
                    ),
                )
            })?)
        };
        let keys = item(data.keys.as_ref(), "Keys")?.unwrap_or_else(Kwargs::empty);
        let new_image = item(data.new_image.as_ref(), "NewImage")?;
        let old_image = item(data.old_image.as_ref(), "OldImage")?;
        let image = if event_name == "REMOVE" {
            old_image.as_ref().or(new_image.as_ref())
        } else {
            new_image.as_ref().or(old_image.as_ref())
        };
        let body = match image {
            Some(image) => image.as_str().to_owned(),
            None if data.keys.is_some() => keys.as_str().to_owned(),
            None => {
                return Err(RecordError::invalid_payload(
                    "the stream record has no NewImage, OldImage or Keys",
                ))
            }
        };
        let ordering_key = (keys.as_str() != "{}").then(|| keys.as_str().to_owned());
        let creation_time = data.creation_time.as_ref().and_then(|t| match t {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
        let meta = DynamoDbMeta::new(event_name, keys)
            .with_old_image(old_image)
            .with_origin(creation_time, arn);
        Ok((body, path, ordering_key, meta))
    }
}

#[async_trait]
impl EventSource for DynamoDbSource {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn describe(&self) -> serde_json::Value {
        let mut routes: Vec<(&String, &String)> = self.routes.iter().collect();
        routes.sort();
        let routes: serde_json::Map<String, serde_json::Value> = routes
            .into_iter()
            .map(|(event, path)| (event.clone(), path.as_str().into()))
            .collect();
        serde_json::json!({ "routes": routes, "partial_responses": self.partial_responses })
    }

    fn matches(&self, probe: &EventProbe) -> bool {
        // An empty batch names no source; pinned to this one, it is taken (nothing to run).
        probe.first_event_source.as_deref() == Some(EVENT_SOURCE) || probe.empty_records
    }

    fn decode<'e>(&self, event: &'e str) -> Result<Vec<Record<'e>>, InvalidEvent> {
        lpipe_core::source::decode_records(Self::NAME, event, |index, r: StreamRecord| {
            InvalidEvent::check_record_source(
                Self::NAME,
                EVENT_SOURCE,
                index,
                r.event_source.as_deref(),
            )?;
            let Some(data) = r.dynamodb else {
                return Ok(Record::new(
                    None,
                    Err(RecordError::invalid_payload(
                        "the record has no 'dynamodb' object",
                    )),
                ));
            };
            let id = data
                .sequence_number
                .clone()
                .filter(|s| !s.is_empty())
                .map(Cow::Owned);
            Ok(
                match self.body_and_meta(r.event_name.as_deref(), &data, r.event_source_arn) {
                    Ok((body, path, ordering_key, meta)) => {
                        let record = Record::new(id, Ok(Cow::Owned(body)))
                            .ordering_key(ordering_key.map(Cow::Owned))
                            .meta(RecordMeta::DynamoDb(Box::new(meta)));
                        match path {
                            Some(path) => record.with_path(Cow::Owned(path)),
                            None => record,
                        }
                    }
                    Err(e) => Record::new(id, Err(e)),
                },
            )
        })
    }

    fn ordering(&self) -> RecordOrder {
        // Lambda resumes a shard from the first failed record: later ones would only run twice.
        RecordOrder::StopOnFailure
    }

    async fn respond(
        &self,
        _event: &str,
        batch: &BatchResult<'_>,
    ) -> Result<serde_json::Value, InvocationError> {
        if !self.partial_responses && batch.stats.failed > 0 {
            return Err(batch.catastrophic_error(None));
        }
        batch.partial_batch_response("dynamodb.SequenceNumber")
    }
}
