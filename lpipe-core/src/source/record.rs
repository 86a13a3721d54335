//! A record and its body.

use std::borrow::Cow;

use crate::error::RecordError;
use crate::source::RecordMeta;

/// One record of a batch, borrowed from the event's text where possible.
#[derive(Debug)]
pub struct Record<'e> {
    /// Its identity in the source (SQS `messageId`, Kinesis `sequenceNumber`…), used in the
    /// response to name failed records.
    pub id: Option<Cow<'e, str>>,
    /// Its ordering key (FIFO `MessageGroupId`, Kinesis partition key), if ordered.
    pub ordering_key: Option<Cow<'e, str>>,
    /// The lpipe message's JSON text (or still encoded, decoded when the record runs), or why
    /// it could not be extracted (bad base64, say). When the source chose the record's path
    /// ([`Record::with_path`]), the body is the kwargs object instead.
    pub body: Body<'e>,
    /// The path, when the source decided it (see [`Record::path`]).
    pub(crate) path: Option<Cow<'e, str>>,
    /// What the source says about the record besides (see [`RecordMeta`]).
    pub meta: RecordMeta,
    /// The body as it came, when the source unwrapped the record's message from an envelope
    /// (see [`Record::as_it_came`]).
    pub(crate) as_it_came: Option<Cow<'e, str>>,
    /// Why the record succeeds without running (see [`Record::acknowledge`]).
    pub(crate) acknowledged: Option<String>,
    /// The body is a pointer to the payload in S3 (see [`Record::offloaded`]).
    pub(crate) offloaded: bool,
}

/// A record's body as its source found it. A body still encoded in the event (an SQS body is
/// a JSON string with escapes; Kinesis data is base64) is decoded when its record runs and
/// freed when it has run, so a batch never holds all its decoded bodies at once.
#[derive(Debug)]
pub enum Body<'e> {
    /// The text.
    Text(Cow<'e, str>),
    /// Text still encoded as it sits in the event, and the function that decodes it.
    Encoded {
        /// The encoded text.
        raw: &'e str,
        /// Decodes it; an error says what is wrong with it (and drops the record).
        decode: fn(&str) -> Result<String, RecordError>,
    },
    /// Why the body could not be extracted (the record is dropped with this error).
    Invalid(RecordError),
}

impl<'e> Body<'e> {
    /// The text, decoding it if it is still encoded.
    ///
    /// # Errors
    ///
    /// Why the body could not be extracted or decoded.
    pub fn into_text(self) -> Result<Cow<'e, str>, RecordError> {
        match self {
            Body::Text(text) => Ok(text),
            Body::Encoded { raw, decode } => decode(raw).map(Cow::Owned),
            Body::Invalid(e) => Err(e),
        }
    }

    /// A JSON string literal as it sits in the event (`"…"`, quotes included): borrowed when
    /// it has no escapes, else unescaped when its record runs.
    pub fn json_string(literal: &'e str) -> Body<'e> {
        match literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
            Some(inner)
                if memchr::memchr2(b'\\', b'"', inner.as_bytes()).is_none()
                    && !inner.bytes().any(|b| b < 0x20) =>
            {
                Body::Text(Cow::Borrowed(inner))
            }
            _ => Body::Encoded {
                raw: literal,
                decode: super::unescape::unescape_json_string,
            },
        }
    }
}

impl<'e> From<Result<Cow<'e, str>, RecordError>> for Body<'e> {
    fn from(body: Result<Cow<'e, str>, RecordError>) -> Self {
        match body {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Invalid(e),
        }
    }
}

impl<'e> Record<'e> {
    /// A record whose body is an lpipe message (or bare kwargs for a default path): its text,
    /// a [`Body`], or why it could not be extracted.
    pub fn new(id: Option<Cow<'e, str>>, body: impl Into<Body<'e>>) -> Self {
        Record {
            id,
            ordering_key: None,
            body: body.into(),
            path: None,
            meta: RecordMeta::None,
            as_it_came: None,
            acknowledged: None,
            offloaded: false,
        }
    }

    /// Sets what the source says about the record besides.
    pub fn meta(mut self, meta: RecordMeta) -> Self {
        self.meta = meta;
        self
    }

    /// Sets the ordering key.
    pub fn ordering_key(mut self, key: Option<Cow<'e, str>>) -> Self {
        self.ordering_key = key;
        self
    }

    /// Sets the path chosen by the source; the body is then the kwargs.
    pub fn with_path(mut self, path: Cow<'e, str>) -> Self {
        self.path = Some(path);
        self
    }

    /// Sets the body as it came in the event, for a record whose message the source unwrapped
    /// from an envelope (an SNS notification in an SQS message, say): a dropped record is sent
    /// to the dead-letter queue as it came, so that a redrive replays the envelope.
    pub fn as_it_came(mut self, body: Cow<'e, str>) -> Self {
        self.as_it_came = Some(body);
        self
    }

    /// Marks the record as one that succeeds without running, logged at info with this reason:
    /// a message a service sends for its own purposes (S3's `s3:TestEvent` when a notification
    /// is configured), which is neither work nor a fault.
    pub fn acknowledge(mut self, why: impl Into<String>) -> Self {
        self.acknowledged = Some(why.into());
        self
    }

    /// Marks the body as a pointer to the payload in S3, as AWS's extended client libraries
    /// send it: for a message that has the attribute `ExtendedPayloadSize` (or the older
    /// `SQSLargePayloadSize`). The pipeline fetches the payload before the record runs (see
    /// [`crate::payload`]); a dead letter of it is the pointer with the attribute (the size the
    /// record's SQS or SNS metadata declares), as it came.
    pub fn offloaded(mut self) -> Self {
        self.offloaded = true;
        self
    }

    /// The path, when the source decided it (EventBridge routes by `detail-type`, or unpacks
    /// a directed message from `detail`; DynamoDB Streams routes by `eventName`); the body is
    /// then the kwargs. `None`: the body is a message, or bare kwargs for the pipeline's
    /// default path.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
}
