//! Payloads kept in S3 (see [`lpipe_core::payload`]): the store that reads and writes them.

use async_trait::async_trait;
use lpipe_core::payload::{PayloadError, PayloadStore};

/// Reads, writes and deletes the payloads kept in S3 with GetObject, PutObject and
/// DeleteObject: the store of [`LargePayloads`](lpipe_core::payload::LargePayloads).
///
/// The Lambda's role needs `s3:GetObject` on the buckets it reads from (and `s3:DeleteObject`
/// with `delete_after_success`), `s3:PutObject` on the bucket it offloads to.
///
/// # Examples
///
/// ```
/// use lpipe_core::payload::LargePayloads;
/// use lpipe_s3::S3PayloadStore;
/// let payloads = LargePayloads::new(S3PayloadStore::new()).allow_bucket("orders-payloads");
/// # let _ = payloads;
/// ```
#[derive(Clone, Debug, Default)]
pub struct S3PayloadStore {
    client: Option<aws_sdk_s3::Client>,
}

impl S3PayloadStore {
    /// A store using the shared client (see [`shared_client`](crate::shared_client)).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store using this client.
    pub fn with_client(client: aws_sdk_s3::Client) -> Self {
        S3PayloadStore {
            client: Some(client),
        }
    }

    async fn client(&self) -> aws_sdk_s3::Client {
        match &self.client {
            Some(c) => c.clone(),
            None => crate::shared_client().await,
        }
    }
}

/// S3 error codes worth retrying.
const RETRYABLE: &[&str] = &[
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "Throttling",
];

fn classify<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>, what: &str) -> PayloadError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let e = lpipe_aws::classify(e, what, RETRYABLE);
    PayloadError {
        retryable: e.retryable,
        message: e.message,
    }
}

#[async_trait]
impl PayloadStore for S3PayloadStore {
    async fn get(&self, bucket: &str, key: &str) -> Result<String, PayloadError> {
        let what = format!("GetObject s3://{bucket}/{key}");
        let out = self
            .client()
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&e, &what))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| PayloadError::retryable(format!("{what}: reading the object: {e}")))?
            .into_bytes();
        String::from_utf8(bytes.to_vec())
            .map_err(|e| PayloadError::permanent(format!("{what}: the object is not UTF-8: {e}")))
    }

    async fn put(&self, bucket: &str, key: &str, body: &str) -> Result<(), PayloadError> {
        let what = format!("PutObject s3://{bucket}/{key}");
        self.client()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .map_err(|e| classify(&e, &what))?;
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), PayloadError> {
        let what = format!("DeleteObject s3://{bucket}/{key}");
        self.client()
            .await
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&e, &what))?;
        Ok(())
    }
}
