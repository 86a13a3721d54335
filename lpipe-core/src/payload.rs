//! Payloads over a service's size limit, kept in S3 the way AWS's extended client libraries
//! keep them (the Java and Python "SQS/SNS extended client", the payload offloading library).
//!
//! A producer puts the message in an S3 object and sends a pointer instead:
//! `["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": B, "s3Key": K}]`,
//! with the message attribute `ExtendedPayloadSize` (older clients:
//! `com.amazon.sqs.javamessaging.MessageS3Pointer` and `SQSLargePayloadSize`). The attribute, not
//! the body's shape, says that a body is a pointer.
//!
//! - **Reading**: the SQS and SNS sources mark a record whose message has the attribute
//!   ([`Record::offloaded`](crate::source::Record::offloaded)); before it runs, the pipeline
//!   fetches the object through its [`LargePayloads`] (see
//!   [`PipelineBuilder::large_payloads`](crate::PipelineBuilder::large_payloads)), only from
//!   the buckets allowed there. A pointer that cannot be read, a bucket not allowed, a missing
//!   object, or a pipeline without large payloads drops the record (dead-lettered as it came:
//!   the pointer, with its attribute); a fault of the store that may pass (throttling, a
//!   timeout) fails it, kept for retry. With
//!   [`delete_after_success`](LargePayloads::delete_after_success) the object is deleted once its
//!   record succeeded.
//! - **Writing**: with [`offload_to`](LargePayloads::offload_to), a message over the threshold
//!   (by default the sink's own limit) for a queue whose sink takes pointers (SQS, SNS: see
//!   [`Sink::takes_payload_pointers`](crate::sink::Sink::takes_payload_pointers)) is put in the
//!   bucket and the pointer sent in its place, so that consumers built on AWS's extended
//!   clients read it, and lpipe consumers too.
//!
//! The store is a [`PayloadStore`]: `lpipe_s3::S3PayloadStore` (the `s3` feature of `lpipe`),
//! or [`MemoryPayloadStore`] in tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

/// The message attribute that marks a pointer, and holds the payload's size in bytes.
pub const SIZE_ATTRIBUTE: &str = "ExtendedPayloadSize";
/// The older clients' name for [`SIZE_ATTRIBUTE`].
pub const LEGACY_SIZE_ATTRIBUTE: &str = "SQSLargePayloadSize";
/// Both names of the attribute that marks a pointer.
pub const SIZE_ATTRIBUTES: [&str; 2] = [SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE];
/// The class name at the head of a pointer.
pub const POINTER_CLASS: &str = "software.amazon.payloadoffloading.PayloadS3Pointer";
/// The older clients' class name.
pub const LEGACY_POINTER_CLASS: &str = "com.amazon.sqs.javamessaging.MessageS3Pointer";

/// The size a message's attributes declare for its payload, when they mark its body as a
/// pointer (an attribute of [`SIZE_ATTRIBUTES`]): for sources, with a lookup of the message's
/// attributes by name.
///
/// # Examples
///
/// ```
/// use lpipe_core::payload::offloaded_size;
/// let attributes = [("ExtendedPayloadSize", "300000")];
/// let lookup = |name: &str| attributes.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
/// assert_eq!(offloaded_size(lookup), Some("300000"));
/// assert_eq!(offloaded_size(|_| None), None);
/// ```
pub fn offloaded_size<'a>(attribute: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    SIZE_ATTRIBUTES.iter().find_map(|name| attribute(name))
}

/// The size a record's SQS or SNS metadata declares for its payload, when its attributes (the
/// SQS message's, or the SNS notification's) mark its body as a pointer (see
/// [`offloaded_size`]): for sources, and for the dead letter of a pointer.
pub fn declared_size(meta: &crate::source::RecordMeta) -> Option<&str> {
    use crate::source::RecordMeta;
    match meta {
        RecordMeta::Sqs(m) => offloaded_size(|name| m.message_attribute(name)).or_else(|| {
            let sns = m.sns.as_deref()?;
            offloaded_size(|name| sns.message_attribute(name))
        }),
        RecordMeta::Sns(m) => offloaded_size(|name| m.message_attribute(name)),
        _ => None,
    }
}

/// Where a payload is kept: an S3 bucket and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadPointer {
    /// The bucket.
    pub bucket: String,
    /// The object's key.
    pub key: String,
}

impl PayloadPointer {
    /// Reads a pointer body (either class name).
    ///
    /// # Errors
    ///
    /// What is wrong with it, for the record's error.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::payload::PayloadPointer;
    /// let body = r#"["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "big", "s3Key": "k1"}]"#;
    /// let pointer = PayloadPointer::parse(body).unwrap();
    /// assert_eq!((pointer.bucket.as_str(), pointer.key.as_str()), ("big", "k1"));
    /// assert_eq!(PayloadPointer::parse(&pointer.to_body()).unwrap(), pointer);
    /// assert!(PayloadPointer::parse(r#"{"path": "A"}"#).is_err());
    /// ```
    pub fn parse(body: &str) -> Result<PayloadPointer, String> {
        #[derive(serde::Deserialize)]
        struct Location {
            #[serde(rename = "s3BucketName")]
            bucket: String,
            #[serde(rename = "s3Key")]
            key: String,
        }
        let expected = format!(
            "a payload pointer ([\"{POINTER_CLASS}\", {{\"s3BucketName\": …, \"s3Key\": …}}])"
        );
        let (class, location): (String, Location) = serde_json::from_str(body).map_err(|e| {
            format!("the message is marked as kept in S3 but is not {expected}: {e}")
        })?;
        if class != POINTER_CLASS && class != LEGACY_POINTER_CLASS {
            return Err(format!(
                "the message is marked as kept in S3 but names the class '{class}', not {expected}"
            ));
        }
        if location.bucket.is_empty() || location.key.is_empty() {
            return Err(format!("the pointer names no bucket or no key: {body}"));
        }
        Ok(PayloadPointer {
            bucket: location.bucket,
            key: location.key,
        })
    }

    /// The pointer body, as AWS's extended clients write it.
    pub fn to_body(&self) -> String {
        serde_json::json!([
            POINTER_CLASS,
            {"s3BucketName": self.bucket, "s3Key": self.key}
        ])
        .to_string()
    }
}

/// Why a payload could not be read, written or deleted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PayloadError {
    /// Whether trying again may succeed (throttling, a fault of the service), as opposed to a
    /// missing object or a refused bucket.
    pub retryable: bool,
    /// What went wrong.
    pub message: String,
}

impl PayloadError {
    /// An error that may pass.
    pub fn retryable(message: impl Into<String>) -> Self {
        PayloadError {
            retryable: true,
            message: message.into(),
        }
    }

    /// An error that will not pass by trying again.
    pub fn permanent(message: impl Into<String>) -> Self {
        PayloadError {
            retryable: false,
            message: message.into(),
        }
    }
}

/// Where payloads are kept: S3 (`lpipe_s3::S3PayloadStore`) or memory ([`MemoryPayloadStore`]).
#[async_trait]
pub trait PayloadStore: Send + Sync + 'static {
    /// The object's text.
    async fn get(&self, bucket: &str, key: &str) -> Result<String, PayloadError>;
    /// Writes the object (again, if it exists: a retried message writes the same key).
    async fn put(&self, bucket: &str, key: &str, body: &str) -> Result<(), PayloadError>;
    /// Deletes the object.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PayloadError>;
}

/// How a pipeline reads and writes payloads kept in S3 (see [the module](self)).
///
/// # Examples
///
/// ```
/// use lpipe_core::payload::{LargePayloads, MemoryPayloadStore};
/// let payloads = LargePayloads::new(MemoryPayloadStore::new())
///     .allow_bucket("producers-payloads")
///     .offload_to("my-payloads")
///     .delete_after_success();
/// assert!(payloads.allows("producers-payloads") && payloads.allows("my-payloads"));
/// assert!(!payloads.allows("someone-elses"));
/// ```
#[derive(Clone)]
pub struct LargePayloads {
    pub(crate) store: Arc<dyn PayloadStore>,
    allowed: Vec<String>,
    pub(crate) delete_after_success: bool,
    pub(crate) offload_bucket: Option<String>,
    pub(crate) threshold: Option<usize>,
}

impl LargePayloads {
    /// Large payloads kept in this store. Reads nothing until a bucket is allowed, and writes
    /// nothing until [`offload_to`](Self::offload_to).
    pub fn new(store: impl PayloadStore) -> Self {
        LargePayloads {
            store: Arc::new(store),
            allowed: Vec::new(),
            delete_after_success: false,
            offload_bucket: None,
            threshold: None,
        }
    }

    /// Reads pointers to this bucket (a record pointing to any other is dropped, saying so).
    pub fn allow_bucket(mut self, bucket: impl Into<String>) -> Self {
        self.allowed.push(bucket.into());
        self
    }

    /// Deletes an object once the record it carried succeeded (as the extended clients do when
    /// a message is deleted). Off by default: other consumers of the same message (a topic's
    /// other subscriptions) may still need it; a lifecycle rule on the bucket is the usual way.
    pub fn delete_after_success(mut self) -> Self {
        self.delete_after_success = true;
        self
    }

    /// Puts outbound messages over the threshold in this bucket and sends pointers instead (for
    /// queues whose sink takes pointers: SQS, SNS). The bucket is allowed for reading too.
    pub fn offload_to(mut self, bucket: impl Into<String>) -> Self {
        let bucket = bucket.into();
        self.allowed.push(bucket.clone());
        self.offload_bucket = Some(bucket);
        self
    }

    /// Offloads messages larger than this many bytes (as the sink counts them, attributes
    /// included) instead of those over the sink's own limit.
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = Some(bytes);
        self
    }

    /// Whether pointers to this bucket are read.
    pub fn allows(&self, bucket: &str) -> bool {
        self.allowed.iter().any(|b| b == bucket)
    }

    /// The allowed buckets.
    pub fn allowed_buckets(&self) -> &[String] {
        &self.allowed
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn PayloadStore> {
        &self.store
    }
}

impl std::fmt::Debug for LargePayloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LargePayloads")
            .field("allowed", &self.allowed)
            .field("delete_after_success", &self.delete_after_success)
            .field("offload_bucket", &self.offload_bucket)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// Payloads in memory, for tests and local runs: objects by bucket and key.
#[derive(Clone, Debug, Default)]
pub struct MemoryPayloadStore {
    objects: Arc<Mutex<HashMap<(String, String), String>>>,
}

impl MemoryPayloadStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The object, if there is one.
    pub fn object(&self, bucket: &str, key: &str) -> Option<String> {
        let objects = self.objects.lock().expect("store lock");
        objects.get(&(bucket.to_owned(), key.to_owned())).cloned()
    }

    /// The number of objects kept.
    pub fn len(&self) -> usize {
        self.objects.lock().expect("store lock").len()
    }

    /// Whether it keeps no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl PayloadStore for MemoryPayloadStore {
    async fn get(&self, bucket: &str, key: &str) -> Result<String, PayloadError> {
        self.object(bucket, key).ok_or_else(|| {
            PayloadError::permanent(format!("no object s3://{bucket}/{key} (NoSuchKey)"))
        })
    }

    async fn put(&self, bucket: &str, key: &str, body: &str) -> Result<(), PayloadError> {
        let mut objects = self.objects.lock().expect("store lock");
        objects.insert((bucket.to_owned(), key.to_owned()), body.to_owned());
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PayloadError> {
        let mut objects = self.objects.lock().expect("store lock");
        objects.remove(&(bucket.to_owned(), key.to_owned()));
        Ok(())
    }
}
