//! What a source says about a record beyond its body.

/// What the event source says about a record beyond its body, id and ordering key; functions
/// read it from their [`Context`](crate::Context) (`ctx.record().sqs()`, …).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum RecordMeta {
    /// Nothing (direct invocations, sources of your own).
    #[default]
    None,
    /// An SQS message's attributes.
    Sqs(SqsMeta),
    /// A Kinesis record's.
    Kinesis(KinesisMeta),
    /// An EventBridge event's (boxed: one per invocation, and larger than the others).
    EventBridge(Box<EventBridgeMeta>),
    /// A DynamoDB stream record's (boxed: the largest, and on its source's records only).
    DynamoDb(Box<DynamoDbMeta>),
    /// An SNS notification's (boxed: one per invocation).
    Sns(Box<SnsMeta>),
}

/// An SQS message's attributes (the FIFO `MessageGroupId` is the record's ordering key).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SqsMeta {
    /// `ApproximateReceiveCount`: how many times the message has been received, this time
    /// included.
    pub receive_count: Option<u32>,
    /// `SentTimestamp`, in Unix milliseconds.
    pub sent_timestamp_ms: Option<u64>,
    /// The message attributes that have a string value, by name.
    pub message_attributes: Vec<(String, String)>,
    /// `AWSTraceHeader`: the X-Ray trace header its sender attached
    /// (`Root=1-…;Parent=…;Sampled=…`).
    pub trace_header: Option<String>,
    /// The SNS notification the message was unwrapped from, on a source that declares the
    /// SNS envelope (boxed: most SQS messages have none).
    pub sns: Option<Box<SnsMeta>>,
    /// The EventBridge event the record was unwrapped from, on a source that declares the
    /// EventBridge envelope.
    pub eventbridge: Option<Box<EventBridgeMeta>>,
}

impl SqsMeta {
    /// Its metadata from these values.
    pub fn new(
        receive_count: Option<u32>,
        sent_timestamp_ms: Option<u64>,
        message_attributes: Vec<(String, String)>,
    ) -> Self {
        SqsMeta {
            receive_count,
            sent_timestamp_ms,
            message_attributes,
            trace_header: None,
            sns: None,
            eventbridge: None,
        }
    }

    /// With the SNS notification the message was unwrapped from.
    pub fn with_sns(mut self, sns: SnsMeta) -> Self {
        self.sns = Some(Box::new(sns));
        self
    }

    /// With this `AWSTraceHeader`.
    pub fn with_trace_header(mut self, trace_header: Option<String>) -> Self {
        self.trace_header = trace_header;
        self
    }

    /// The message attributes that have a string value, by name.
    pub fn message_attributes(&self) -> &[(String, String)] {
        &self.message_attributes
    }

    /// A message attribute's string value.
    pub fn message_attribute(&self, name: &str) -> Option<&str> {
        self.message_attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `AWSTraceHeader`: the X-Ray trace header its sender attached.
    pub fn trace_header(&self) -> Option<&str> {
        self.trace_header.as_deref()
    }
}

/// An SNS notification's metadata (its `MessageId` is the record's id).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SnsMeta {
    /// `MessageId`: the notification's id (the same in every delivery of it).
    pub message_id: Option<String>,
    /// `TopicArn`: the topic it was published to.
    pub topic_arn: Option<String>,
    /// `Subject`, when the publisher gave one.
    pub subject: Option<String>,
    /// `Timestamp`: when it was published (ISO 8601).
    pub timestamp: Option<String>,
    /// The message attributes of type `String` or `Number`, by name, with their values.
    pub message_attributes: Vec<(String, String)>,
}

impl SnsMeta {
    /// Its metadata from these values.
    pub fn new(
        topic_arn: Option<String>,
        subject: Option<String>,
        timestamp: Option<String>,
        message_attributes: Vec<(String, String)>,
    ) -> Self {
        SnsMeta {
            message_id: None,
            topic_arn,
            subject,
            timestamp,
            message_attributes,
        }
    }

    /// With this `MessageId`.
    pub fn with_message_id(mut self, message_id: Option<String>) -> Self {
        self.message_id = message_id;
        self
    }

    /// A message attribute's value.
    pub fn message_attribute(&self, name: &str) -> Option<&str> {
        self.message_attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A Kinesis record's metadata (the partition key is the record's ordering key).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct KinesisMeta {
    /// `approximateArrivalTimestamp`, in Unix seconds.
    pub arrival_timestamp: Option<f64>,
    /// The shard, from the record's `eventID` (`shardId-000000000000`).
    pub shard_id: Option<std::sync::Arc<str>>,
}

impl KinesisMeta {
    /// Its metadata from these values.
    pub fn new(arrival_timestamp: Option<f64>, shard_id: Option<std::sync::Arc<str>>) -> Self {
        KinesisMeta {
            arrival_timestamp,
            shard_id,
        }
    }
}

/// An EventBridge event's envelope (its `id` is the record's id).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct EventBridgeMeta {
    /// `source`.
    pub source: Option<String>,
    /// `detail-type`.
    pub detail_type: Option<String>,
    /// `time`.
    pub time: Option<String>,
}

impl EventBridgeMeta {
    /// Its metadata from these values.
    pub fn new(source: Option<String>, detail_type: Option<String>, time: Option<String>) -> Self {
        EventBridgeMeta {
            source,
            detail_type,
            time,
        }
    }
}

/// A DynamoDB stream record's metadata (its `SequenceNumber` is the record's id). Keys and
/// images are plain JSON (DynamoDB's attribute values turned into JSON, numbers with their
/// exact digits), read like kwargs: `meta.keys.deserialize::<OrderKey>()`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DynamoDbMeta {
    /// `eventName`: `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: String,
    /// The item's key attributes (`dynamodb.Keys`).
    pub keys: crate::Kwargs,
    /// The item before the change (`dynamodb.OldImage`), when the stream carries it.
    pub old_image: Option<crate::Kwargs>,
    /// `dynamodb.ApproximateCreationDateTime`, in Unix seconds.
    pub creation_time: Option<f64>,
    /// `eventSourceARN`: the table's stream.
    pub event_source_arn: Option<String>,
}

impl DynamoDbMeta {
    /// Its metadata from these values.
    pub fn new(event_name: impl Into<String>, keys: crate::Kwargs) -> Self {
        DynamoDbMeta {
            event_name: event_name.into(),
            keys,
            old_image: None,
            creation_time: None,
            event_source_arn: None,
        }
    }

    /// With the item's old image.
    pub fn with_old_image(mut self, old_image: Option<crate::Kwargs>) -> Self {
        self.old_image = old_image;
        self
    }

    /// With its creation time (Unix seconds) and stream ARN.
    pub fn with_origin(
        mut self,
        creation_time: Option<f64>,
        event_source_arn: Option<String>,
    ) -> Self {
        self.creation_time = creation_time;
        self.event_source_arn = event_source_arn;
        self
    }
}

impl RecordMeta {
    /// The X-Ray trace header the record arrived with (SQS `AWSTraceHeader`), if any.
    pub fn trace_header(&self) -> Option<&str> {
        match self {
            RecordMeta::Sqs(m) => m.trace_header(),
            _ => None,
        }
    }
}

/// The trace id of an X-Ray trace header: its `Root=` value (`1-5759e988-bd862e3fe1be46a994272793`).
///
/// # Examples
///
/// ```
/// let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
/// assert_eq!(lpipe_core::source::trace_id(header), Some("1-5759e988-bd862e3fe1be46a994272793"));
/// assert_eq!(lpipe_core::source::trace_id("Parent=1"), None);
/// ```
pub fn trace_id(header: &str) -> Option<&str> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .filter(|root| !root.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_metadata_keeps_attributes_and_trace_header() {
        let meta = SqsMeta::new(Some(1), None, Vec::new());
        assert_eq!(meta.trace_header(), None);
        let traced = meta.clone().with_trace_header(Some("Root=1-a".into()));
        assert_eq!(traced.trace_header(), Some("Root=1-a"));
        assert_eq!(traced.with_trace_header(None), meta);
        let tagged = SqsMeta::new(None, None, vec![("tenant".into(), "t1".into())])
            .with_trace_header(Some("Root=1-b".into()));
        assert_eq!(tagged.message_attribute("tenant"), Some("t1"));
        assert_eq!(tagged.trace_header(), Some("Root=1-b"));
    }
}
