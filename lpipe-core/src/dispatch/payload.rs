//! Payloads kept in S3 (see [`crate::payload`]): fetched before their records run, deleted
//! once they succeeded when the pipeline asks.

use std::borrow::Cow;

use super::batch::RanBatch;
use crate::error::{ErrorKind, Outcome, RecordError};
use crate::payload::PayloadPointer;
use crate::pipeline::Pipeline;
use crate::source::Body;

/// A record's text, what a dead letter of it sends (the body as it came), and where its
/// payload was fetched from.
type ReadBody<'e> = (
    Result<Cow<'e, str>, RecordError>,
    Option<Cow<'e, str>>,
    Option<Box<PayloadPointer>>,
);

impl Pipeline {
    /// The text of a record whose body is a pointer: the payload it points to. The pointer is
    /// then what the record came as.
    pub(super) async fn read_offloaded<'e>(
        &self,
        body: Body<'e>,
        as_it_came: Option<Cow<'e, str>>,
    ) -> ReadBody<'e> {
        let pointer_text = match body.into_text() {
            Ok(text) => text,
            Err(e) => return (Err(e), as_it_came, None),
        };
        let fetched = self.fetch_payload(&pointer_text).await;
        let as_it_came = as_it_came.or(Some(pointer_text));
        match fetched {
            Ok((text, pointer)) => (Ok(Cow::Owned(text)), as_it_came, Some(Box::new(pointer))),
            Err(e) => (Err(e), as_it_came, None),
        }
    }

    async fn fetch_payload(&self, text: &str) -> Result<(String, PayloadPointer), RecordError> {
        let invalid = |message: String| RecordError::new(ErrorKind::InvalidPayload, message);
        let pointer = PayloadPointer::parse(text).map_err(invalid)?;
        let PayloadPointer { bucket, key } = &pointer;
        let Some(payloads) = &self.inner.large_payloads else {
            return Err(invalid(format!(
                "the message's payload is kept in S3 (s3://{bucket}/{key}) and this pipeline reads no payloads from S3: add `.large_payloads(LargePayloads::new(store).allow_bucket(\"{bucket}\"))` to the pipeline"
            )));
        };
        if !payloads.allows(bucket) {
            return Err(invalid(format!(
                "the message's payload is kept in the bucket '{bucket}', which this pipeline does not read from (allowed: {})",
                payloads.allowed_buckets().join(", ")
            )));
        }
        match payloads.store.get(bucket, key).await {
            Ok(payload) => Ok((payload, pointer)),
            Err(e) => {
                let kind = if e.retryable {
                    ErrorKind::PayloadStore
                } else {
                    ErrorKind::InvalidPayload
                };
                let message = format!("reading the payload s3://{bucket}/{key}: {e}");
                Err(RecordError::new(kind, message))
            }
        }
    }

    /// Deletes the payloads of the records that succeeded, when the pipeline asks; a failed
    /// delete is logged (the object stays, for the bucket's lifecycle rule to remove).
    pub(super) async fn delete_payloads(&self, ran: &RanBatch<'_>) {
        let Some(payloads) = &self.inner.large_payloads else {
            return;
        };
        if !payloads.delete_after_success {
            return;
        }
        for (index, pointer) in &ran.payloads {
            if ran.results[*index].outcome != Outcome::Success {
                continue;
            }
            let PayloadPointer { bucket, key } = pointer;
            if let Err(e) = payloads.store.delete(bucket, key).await {
                tracing::warn!("could not delete the payload s3://{bucket}/{key}: {e}");
            }
        }
    }
}
